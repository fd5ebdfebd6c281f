#include "kernels/trainer.h"

#include "kernels/cpu/blas.h"
#include "kernels/cpu/microbench.h"
#include "kernels/checkpoint.h"
#include "kernels/rank_grid.h"
#include "kernels/rank_trainer.h"
#include "kernels/text_corpus.h"
#include "model/robust_statistics.h"
#include "model/accounting.h"
#include "model/atomic_file.h"
#include "model/input_error.h"
#include "model/pipeline_schedule.h"
#include "model/step_plan.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <tbb/global_control.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <ostream>
#include <random>
#include <set>
#include <thread>

namespace palmsim {

namespace fs = std::filesystem;

int trainer_threads(const TrainConfig& c) {
  if (c.threads > 0) return c.threads;
  const size_t cap = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  return int(std::max<size_t>(1, std::min<size_t>(cap, std::max(1u, std::thread::hardware_concurrency()))));
}

namespace {

// Ranks are threads: each rank's GEMMs then run unsplit, and oneTBB spreads the rest.
void set_threads(const TrainConfig& c) { cpu::set_gemm_threads(c.ranks() > 1 ? 1 : trainer_threads(c)); }

std::string fingerprint(const ModelSpec& m, const TrainConfig& c) {
  std::string f = fmt::format("L{} d{} H{} KV{} Q{} F{} V{} T{} parallel{} | dp{} tp{} zero1 {} batch{} mb{} seed{} lr{} const{}",
                              m.n_layers, m.d_model, m.n_heads, m.n_kv_heads, m.head_dim, m.d_ff, m.vocab, m.seq_len,
                              m.parallel_block, c.dp, c.tp, c.zero1, c.batch, c.microbatch_size(), c.seed,
                              c.optimizer.peak_lr, c.optimizer.constant_steps);
  if (m.moe.sparse())  // dense runs keep the fingerprint their checkpoints were written with
    f += fmt::format(" | moe E{} k{} F{} every{} ep{}", m.moe.n_experts, m.moe.top_k, m.moe.expert_d_ff,
                     m.moe.layer_freq, c.ep);
  if (c.cp > 1) f += fmt::format(" | cp{}", c.cp);  // ZeRO-1 shards and ranks' rows depend on it
  if (c.pp > 1) f += fmt::format(" | pp{}", c.pp);  // each rank holds one stage's tensors
  return f;
}

const std::set<std::string> kOwnFiles = {"metrics.jsonl", "checkpoint.bin", "checkpoint.bin.tmp",
                                         "tokenizer.model", "tokenizer.vocab", "tokenizer.corpus.txt"};

void prepare_out_dir(const std::string& dir) {
  std::error_code ec;  // the non-throwing call: a symbolic link loop is bad input, not a crash
  const fs::file_status st = fs::status(dir, ec);
  if (ec == std::errc::too_many_symbolic_link_levels) throw InputError("--out", "'" + dir + "' is a symbolic link loop");
  if (!fs::exists(st)) {
    fs::create_directories(dir, ec);
    if (ec) throw InputError("--out", "cannot create '" + dir + "': " + ec.message());
    return;
  }
  if (!fs::is_directory(dir)) throw InputError("--out", "'" + dir + "' exists and is not a folder");
  for (const auto& e : fs::directory_iterator(dir))
    if (!kOwnFiles.count(e.path().filename().string()))
      throw InputError("--out", "'" + dir + "' holds '" + e.path().filename().string() +
                                    "', which palmsim did not write; give a new or empty folder");
}

// Keeps the metrics of steps up to `step` (the resumed checkpoint); later lines are redone.
void trim_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t(0)) <= step) kept += line + "\n";
  }
  in.close();
  write_file_atomically(kept, path, "--out");
}

}  // namespace

double measured_sgemm_peak(int threads) {
  cpu::set_gemm_threads(threads);
  const int64_t n = 1536;
  std::vector<float> pool;
  return 2.0 * double(n) * n * n / time_sgemm(n, n, n, 3, pool);
}

namespace {

// What every rank of one training run shares.
struct TrainRun {
  const ModelSpec& model;
  const TrainConfig& config;
  const TokenizedCorpus& corpus;
  const Checkpoint& resume;
  bool resuming = false;
  std::string fingerprint, checkpoint_path;
  int64_t first_step = 1;
  double peak_flops = 0;
  std::ostream& log;
  TrainSummary& summary;
  std::ofstream metrics;
  std::vector<RankTrainer*> trainers;  // every rank's, for the checkpoint rank 0 writes
  std::atomic<bool> write_failed{false};
  std::string write_error;
};

// Every rank waits while rank 0 writes all ranks' state; a failed write stops every rank.
void save_checkpoint(TrainRun& run, const RankContext& ctx, int64_t step) {
  ctx.world->barrier();
  if (ctx.rank == 0) {
    try {
      Checkpoint c;
      c.step = step;
      c.fingerprint = run.fingerprint;
      for (RankTrainer* t : run.trainers)
        c.ranks.push_back({t->model().params(), t->optimizer().first_moment(), t->optimizer().second_moment()});
      write_checkpoint(c, run.checkpoint_path);
    } catch (const std::exception& e) {
      run.write_error = e.what();
      run.write_failed = true;
    }
  }
  ctx.world->barrier();
  if (run.write_failed) throw InputError("--out", run.write_error);
}

// Rank 0's metrics line and log line for one step; val_loss < 0: not evaluated this step.
void record_step(TrainRun& run, int64_t step, double loss, double val_loss, double seconds) {
  const TrainConfig& config = run.config;
  const double tokens_per_step = double(config.batch) * double(run.model.seq_len);
  const double tps = tokens_per_step / seconds;
  const double mfu = flops_utilization(tps, model_flops_per_token(run.model), run.peak_flops);
  nlohmann::json j = {{"step", step}, {"loss", loss}, {"step_time_s", seconds}, {"tokens_per_s", tps}, {"mfu", mfu}};
  if (val_loss >= 0) j["val_loss"] = val_loss;
  run.metrics << j.dump() << "\n" << std::flush;
  TrainSummary& summary = run.summary;
  summary.last_step = step;
  summary.last_loss = loss;
  summary.tokens_per_s = tps;
  summary.mfu = mfu;
  if (val_loss >= 0) summary.last_val_loss = val_loss;
  if (step % config.log_every == 0 || val_loss >= 0 || step == config.steps)
    run.log << fmt::format("step {:>5}/{}  loss {:.4f}{}  {:.0f} tokens/s  MFU {:.1f} %  {:.3f} s/step\n", step,
                           config.steps, loss, val_loss >= 0 ? fmt::format("  held-out {:.4f}", val_loss) : "", tps,
                           100 * mfu, seconds)
        << std::flush;
}

// One rank's steps: its share of each batch, the step, held-out evaluation, checkpoints.
void train_rank(TrainRun& run, const RankContext& ctx) {
  const TrainConfig& config = run.config;
  RankTrainer trainer(run.model, config, ctx);
  run.trainers[size_t(ctx.rank)] = &trainer;
  if (run.resuming) {
    const RankState& s = run.resume.ranks[size_t(ctx.rank)];
    trainer.model().params() = s.params;
    trainer.optimizer().first_moment() = s.first_moment;
    trainer.optimizer().second_moment() = s.second_moment;
  } else {
    trainer.model().init(config.seed);
  }
  const int64_t seq = run.model.seq_len, local = config.batch / config.dp;
  SequenceSampler sampler(run.corpus.train, seq, config.seed);
  const SequenceSampler held_out(run.corpus.held_out, seq, config.seed);
  std::vector<int32_t> tokens(size_t(local * seq)), targets(tokens.size());
  std::vector<int32_t> eval_tokens(size_t(local * config.eval_batches * seq)), eval_targets(eval_tokens.size());
  const int dp_rank = trainer.dp_rank();
  for (int64_t step = run.first_step; step <= config.steps; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t base = (step - 1) * config.batch + dp_rank * local;
    for (int64_t j = 0; j < local; ++j) sampler.fill(base + j, tokens.data() + j * seq, targets.data() + j * seq);
    const double loss = trainer.step(tokens.data(), targets.data(), step, nullptr);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!std::isfinite(loss)) {  // every rank sees the same reduced loss: all stop here
      if (ctx.rank == 0) {
        run.summary.stopped_on_nan = true;
        run.log << fmt::format("stopped: the loss is {} at step {}; the last good checkpoint is kept\n", loss, step);
      }
      return;
    }
    double val = -1;
    if (step % config.eval_every == 0 || step == config.steps) {
      const int64_t offset = int64_t(dp_rank) * local * config.eval_batches;
      for (int64_t j = 0; j < local * config.eval_batches; ++j)
        held_out.fill_in_order(offset + j, eval_tokens.data() + j * seq, eval_targets.data() + j * seq);
      val = trainer.evaluate(eval_tokens.data(), eval_targets.data(), local * config.eval_batches);
    }
    if (ctx.rank == 0) record_step(run, step, loss, val, seconds);
    if (step % config.checkpoint_every == 0 || step == config.steps) save_checkpoint(run, ctx, step);
  }
}

}  // namespace

TrainSummary train(const ModelSpec& model, const TrainConfig& config, const std::string& out_dir, std::ostream& log) {
  prepare_out_dir(out_dir);
  const std::string ckpt_path = (fs::path(out_dir) / "checkpoint.bin").string();
  const std::string metrics_path = (fs::path(out_dir) / "metrics.jsonl").string();
  Checkpoint resume;
  const bool resuming = read_checkpoint(ckpt_path, resume);
  const std::string print = fingerprint(model, config);
  if (resuming && resume.fingerprint != print)
    throw InputError("--out", "the checkpoint in '" + out_dir + "' belongs to another run (" + resume.fingerprint + ")");
  if (resuming && resume.ranks.size() != size_t(config.ranks()))
    throw InputError("--out", "the checkpoint in '" + out_dir + "' has a different number of ranks");

  const int threads = trainer_threads(config);
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(threads));
  const double peak = measured_sgemm_peak(threads);
  set_threads(config);

  log << fmt::format("train: {} ({} parameters{}) on {} thread(s), dp {} tp {}{}{}{}{}\n", model.name,
                     parameter_count(model),
                     model.moe.sparse() ? fmt::format(", {} active", active_parameter_count(model)) : "", threads,
                     config.dp, config.tp, config.cp > 1 ? fmt::format(" cp {}", config.cp) : "",
                     config.ep > 1 ? fmt::format(" ep {}", config.ep) : "",
                     config.pp > 1 ? fmt::format(" pp {} ({})", config.pp, to_string(config.schedule)) : "", config.zero1 ? " zero1" : "");
  const auto docs = read_fortune_documents(config.corpus);
  const TokenizedCorpus corpus =
      tokenize_corpus(docs, (fs::path(out_dir) / "tokenizer").string(), int(model.vocab), config.held_out_fraction);
  TrainSummary summary;
  summary.unigram_cross_entropy = unigram_cross_entropy(corpus.train, corpus.held_out, corpus.vocab);
  log << fmt::format("corpus: {} documents, {} training and {} held-out tokens; unigram entropy {:.3f} nats/token\n",
                     docs.size(), corpus.train.size(), corpus.held_out.size(), summary.unigram_cross_entropy);
  const int64_t first = resuming ? resume.step + 1 : 1;
  summary.first_step = first;
  summary.last_step = first - 1;
  if (resuming) {
    trim_metrics(metrics_path, resume.step);
    log << fmt::format("resuming from the checkpoint at step {}\n", resume.step);
  }
  if (first > config.steps) return summary;

  TrainRun run{model, config, corpus, resume, resuming, print, ckpt_path, first, peak, log, summary,
               std::ofstream(metrics_path, std::ios::app), std::vector<RankTrainer*>(size_t(config.ranks()), nullptr),
               {false}, {}};
  run_on_ranks(config.dp, config.cp, config.tp, [&](const RankContext& ctx) { train_rank(run, ctx); }, config.pp);
  return summary;
}

BenchResult bench_step(const ModelSpec& model, const TrainConfig& config, int steps,
                       const std::function<void()>& between_steps) {
  const int threads = trainer_threads(config);
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, size_t(threads));
  BenchResult result;
  result.peak_flops = measured_sgemm_peak(threads);
  result.peak_source = "OpenBLAS sgemm";
  result.device = cpu_device_name(threads);
  set_threads(config);
  const int64_t seq = model.seq_len, local = config.batch / config.dp;
  std::vector<int32_t> tokens(size_t(local * seq)), targets(tokens.size());
  std::mt19937 rng(config.seed);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(rng() % model.vocab), targets[i] = int32_t(rng() % model.vocab);
  std::vector<double> step_s;
  std::vector<std::map<std::string, double>> step_ops;
  // The timed rank is the first of the stage holding the loss: the chip the step plan describes
  // (model/step_plan.h), rank 0 without a pipeline or in ZB-V's V.
  const int timed = loss_stage(config.schedule, config.pp, config.vpp) * config.stage_ranks();
  run_on_ranks(
      config.dp, config.cp, config.tp,
      [&](const RankContext& ctx) {
        RankTrainer trainer(model, config, ctx);
        trainer.model().init(config.seed);
        trainer.step(tokens.data(), targets.data(), 1, nullptr);  // warm-up: first touches, thread pools
        // Rank 0 runs `between_steps` while the other ranks wait at the next barrier: the machine is
        // otherwise idle then, and the timed steps never include it.
        if (ctx.rank == 0 && between_steps) between_steps();
        for (int s = 0; s < steps; ++s) {
          OpTimer step_timer;
          ctx.world->barrier();
          const auto t0 = std::chrono::steady_clock::now();
          trainer.step(tokens.data(), targets.data(), 2 + s, ctx.rank == timed ? &step_timer : nullptr);
          ctx.world->barrier();
          if (ctx.rank == timed) {
            step_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            step_ops.push_back(step_timer.seconds());
          }
          ctx.world->barrier();  // the timed rank's figures are recorded before rank 0 samples
          if (ctx.rank == 0 && between_steps) between_steps();
        }
      },
      config.pp);
  record_steps(result, step_s, step_ops);
  result.tokens_per_s = double(config.batch) * double(seq) / result.step_time_s;
  result.mfu = flops_utilization(result.tokens_per_s, model_flops_per_token(model), result.peak_flops);
  result.gemm_flops_per_s = plan_gemm_flops_per_s(model, config, result.per_op_s, 4);
  return result;
}

}  // namespace palmsim
