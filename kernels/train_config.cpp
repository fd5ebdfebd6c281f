#include "kernels/train_config.h"

#include "model/layout.h"
#include "model/optimizer.h"
#include "model/yaml_fields.h"

namespace palmsim {

namespace {

// Reads key of section n into out when present; below `min` is an error naming the field.
void read_at_least(const YAML::Node& n, const std::string& section, const char* key, int64_t& out, int64_t min) {
  if (!n || !n[key]) return;
  const std::string field = section + "." + key;
  out = read_int(n[key], field);
  if (out < min) throw InputError(field, "must be >= " + std::to_string(min));
}

void parse_train(const YAML::Node& n, TrainConfig& c) {
  if (!n) return;
  if (!n.IsMap()) throw InputError("train", "must be a map of keys to values");  // before any lookup
  // The ranks and the batch are the scenario's: one dialect for trainer and scenarios.
  const std::pair<const char*, const char*> moved[] = {
      {"dp", "layout.dp"}, {"tp", "layout.tp"}, {"cp", "layout.cp"}, {"ep", "layout.ep"},
      {"microbatch", "layout.microbatch"}, {"zero1", "layout.sharding: zero1"}, {"batch", "training.global_batch"}};
  for (const auto& [key, now] : moved)
    if (n[key]) throw InputError(std::string("train.") + key, std::string("is ") + now + " now (the scenario's section)");
  check_keys(n, "train", {"steps", "lr", "lr_constant_steps", "seed", "log_every", "eval_every", "eval_batches",
                          "checkpoint_every", "threads", "corpus", "held_out_fraction"});
  read_at_least(n, "train", "steps", c.steps, 1);
  read_at_least(n, "train", "lr_constant_steps", c.optimizer.constant_steps, 0);
  read_at_least(n, "train", "log_every", c.log_every, 1);
  read_at_least(n, "train", "eval_every", c.eval_every, 1);
  read_at_least(n, "train", "eval_batches", c.eval_batches, 1);
  read_at_least(n, "train", "checkpoint_every", c.checkpoint_every, 1);
  int64_t seed = int64_t(c.seed), threads = c.threads;
  read_at_least(n, "train", "seed", seed, 0);
  read_at_least(n, "train", "threads", threads, 0);
  c.seed = uint64_t(seed), c.threads = int(threads);
  if (n["lr"]) {
    c.optimizer.peak_lr = read_double(n["lr"], "train.lr");
    if (!(c.optimizer.peak_lr > 0)) throw InputError("train.lr", "must be > 0");
  }
  if (n["corpus"]) c.corpus = read_string(n["corpus"], "train.corpus");
  if (n["held_out_fraction"]) {
    c.held_out_fraction = read_double(n["held_out_fraction"], "train.held_out_fraction");
    if (!(c.held_out_fraction > 0 && c.held_out_fraction < 0.5))
      throw InputError("train.held_out_fraction", "must be between 0 and 0.5");
  }
}

// The trainer's ranks: what a scenario's layout says, where the trainer runs it. Pipelines run the
// 1F1B, interleaved (vpp chunks a stage) or ZB-H1 schedule; no sequence parallelism, no
// recomputation: those layout keys are refused, not ignored.
void parse_layout(const YAML::Node& n, TrainConfig& c) {
  if (!n) return;
  check_keys(n, "layout", {"tp", "dp", "cp", "ep", "etp", "pp", "vpp", "microbatch", "sharding", "schedule"});
  int64_t dp = c.dp, tp = c.tp, ep = c.ep, cp = c.cp, pp = 1, vpp = 1, etp = 1;
  read_at_least(n, "layout", "etp", etp, 1);
  if (etp != 1)
    throw InputError("layout.etp", "must be 1: the trainer's experts are whole on their rank (expert tensor "
                                   "parallelism is modelled by predict and simulate, not trained)");
  read_at_least(n, "layout", "dp", dp, 1);
  read_at_least(n, "layout", "tp", tp, 1);
  read_at_least(n, "layout", "ep", ep, 1);
  read_at_least(n, "layout", "cp", cp, 1);
  read_at_least(n, "layout", "pp", pp, 1);
  read_at_least(n, "layout", "vpp", vpp, 1);
  read_at_least(n, "layout", "microbatch", c.microbatch, 1);
  c.dp = int(dp), c.tp = int(tp), c.ep = int(ep), c.cp = int(cp), c.pp = int(pp), c.vpp = int(vpp);
  if (vpp > 1) c.schedule = Schedule::interleaved;  // as a scenario's layout reads it
  if (n["schedule"]) {
    const Schedule s = parse_schedule(read_string(n["schedule"], "layout.schedule"), "layout.schedule");
    if (s == Schedule::gpipe)
      throw InputError("layout.schedule", "'gpipe': the trainer runs 1f1b, interleaved, zb-h1, zb-h2, zb-v or dualpipe-v");
    c.schedule = s;
  }
  if (n["sharding"]) {
    const Sharding s = parse_sharding(read_string(n["sharding"], "layout.sharding"), "layout.sharding");
    if (s != Sharding::none && s != Sharding::zero1)
      throw InputError("layout.sharding", std::string("'") + to_string(s) + "': the trainer runs none or zero1");
    c.zero1 = s == Sharding::zero1;
  }
}

void parse_training(const YAML::Node& n, TrainConfig& c) {
  if (!n) return;
  check_keys(n, "training", {"global_batch", "optimizer"});
  read_at_least(n, "training", "global_batch", c.batch, 1);
  if (n["optimizer"]) {
    const Optimizer o = parse_optimizer(read_string(n["optimizer"], "training.optimizer"), "training.optimizer");
    if (o != Optimizer::adafactor_unfactored)
      throw InputError("training.optimizer", std::string("'") + to_string(o) +
                                                 "': the trainer runs adafactor-unfactored (PaLM's: no factorization, "
                                                 "beta1 0.9; kernels/adafactor.h)");
  }
}

// A trainer config's stack is palmsim-cpu (hwmodels/stacks/palmsim-cpu.yaml); of its choices a
// config may set how context parallelism exchanges K/V, which the trainer runs either way.
void parse_stack(const YAML::Node& n, TrainConfig& c) {
  if (!n) return;
  if (!n.IsMap()) throw InputError("stack", "a trainer config's stack is palmsim-cpu: give a map with cp_comm");
  check_keys(n, "stack", {"cp_comm"});
  if (n["cp_comm"]) c.cp_comm = parse_context_comm(read_string(n["cp_comm"], "stack.cp_comm"), "stack.cp_comm");
}

}  // namespace

TrainConfig parse_train_sections(const YAML::Node& root) {
  TrainConfig c;
  parse_train(root["train"], c);
  parse_layout(root["layout"], c);
  parse_training(root["training"], c);
  parse_stack(root["stack"], c);
  if (c.batch % c.dp)
    throw InputError("training.global_batch", "must be a multiple of layout.dp (" + std::to_string(c.dp) + ")");
  if ((c.batch / c.dp) % c.microbatch_size())
    throw InputError("layout.microbatch", "must divide global_batch / dp (" + std::to_string(c.batch / c.dp) + ")");
  if (c.zero1 && c.gradient_ranks() == 1) throw InputError("layout.sharding", "zero1 needs dp x cp > 1");
  // Megatron's "parallel folding" with the expert group the whole data-parallel group: each expert
  // then lives on one rank, which gathers its gradient from every rank's tokens.
  if (c.ep != 1 && c.ep != c.dp)
    throw InputError("layout.ep", "must be 1 or layout.dp (" + std::to_string(c.dp) + "): experts are split over the data-parallel ranks");
  if (c.ep > 1 && c.zero1) throw InputError("layout.sharding", "zero1 is not implemented with expert parallelism (layout.ep > 1)");
  // The schedule's rules are the scenario's (model/layout.cpp); the trainer's shardings never
  // gather weights per layer.
  check_schedule_rules(c.schedule, c.pp, c.vpp, c.batch / c.dp / c.microbatch_size(),
                       c.zero1 ? Sharding::zero1 : Sharding::none);
  return c;
}

}  // namespace palmsim
