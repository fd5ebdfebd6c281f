#include "kernels/train_config.h"

#include "model/yaml_fields.h"

namespace palmsim {

TrainConfig parse_train_node(const YAML::Node& n) {
  TrainConfig c;
  if (!n) return c;
  check_keys(n, "train", {"steps", "batch", "microbatch", "lr", "lr_constant_steps", "seed", "log_every",
                          "eval_every", "eval_batches", "checkpoint_every", "threads", "dp", "tp", "ep", "cp", "zero1",
                          "corpus", "held_out_fraction"});
  auto positive = [&](const char* key, int64_t& out, int64_t min) {
    if (!n[key]) return;
    out = read_int(n[key], std::string("train.") + key);
    if (out < min) throw InputError(std::string("train.") + key, "must be >= " + std::to_string(min));
  };
  positive("steps", c.steps, 1);
  positive("batch", c.batch, 1);
  positive("microbatch", c.microbatch, 1);
  positive("lr_constant_steps", c.optimizer.constant_steps, 0);
  positive("log_every", c.log_every, 1);
  positive("eval_every", c.eval_every, 1);
  positive("eval_batches", c.eval_batches, 1);
  positive("checkpoint_every", c.checkpoint_every, 1);
  int64_t seed = int64_t(c.seed), threads = c.threads, dp = c.dp, tp = c.tp, ep = c.ep, cp = c.cp;
  positive("seed", seed, 0);
  positive("threads", threads, 0);
  positive("dp", dp, 1);
  positive("tp", tp, 1);
  positive("ep", ep, 1);
  positive("cp", cp, 1);
  c.seed = uint64_t(seed), c.threads = int(threads), c.dp = int(dp), c.tp = int(tp), c.ep = int(ep), c.cp = int(cp);
  if (n["lr"]) {
    c.optimizer.peak_lr = read_double(n["lr"], "train.lr");
    if (!(c.optimizer.peak_lr > 0)) throw InputError("train.lr", "must be > 0");
  }
  if (n["zero1"]) c.zero1 = read_bool(n["zero1"], "train.zero1");
  if (n["corpus"]) c.corpus = read_string(n["corpus"], "train.corpus");
  if (n["held_out_fraction"]) {
    c.held_out_fraction = read_double(n["held_out_fraction"], "train.held_out_fraction");
    if (!(c.held_out_fraction > 0 && c.held_out_fraction < 0.5))
      throw InputError("train.held_out_fraction", "must be between 0 and 0.5");
  }
  if (c.batch % c.dp) throw InputError("train.batch", "must be a multiple of train.dp (" + std::to_string(c.dp) + ")");
  if ((c.batch / c.dp) % c.microbatch_size())
    throw InputError("train.microbatch", "must divide batch / dp (" + std::to_string(c.batch / c.dp) + ")");
  if (c.zero1 && c.gradient_ranks() == 1) throw InputError("train.zero1", "needs dp x cp > 1");
  // Megatron's "parallel folding" with the expert group the whole data-parallel group: each expert
  // then lives on one rank, which gathers its gradient from every rank's tokens.
  if (c.ep != 1 && c.ep != c.dp)
    throw InputError("train.ep", "must be 1 or train.dp (" + std::to_string(c.dp) + "): experts are split over the data-parallel ranks");
  if (c.ep > 1 && c.zero1) throw InputError("train.zero1", "is not implemented with expert parallelism (train.ep > 1)");
  return c;
}

}  // namespace palmsim
