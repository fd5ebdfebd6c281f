#include "kernels/calibrate/calibrate_cpu.h"

#include "kernels/calibrate/progress_bar.h"
#include "kernels/calibrate/step_op_benchmarks.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/microbench.h"
#include "kernels/cpu/speed_reference.h"
#include "kernels/rank_grid.h"
#include "kernels/trainer.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <tbb/global_control.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <set>
#include <thread>
#include <tuple>

namespace palmsim {

StepPlan cpu_step_plan(const ModelSpec& model, int64_t microbatch, int tp, int dp, bool zero1, int ep, int cp,
                       int pp, Schedule schedule, int vpp, ContextComm cp_comm) {
  Layout layout;
  layout.tp = tp, layout.dp = dp, layout.ep = ep, layout.cp = cp, layout.pp = pp, layout.microbatch = int(microbatch);
  layout.schedule = schedule, layout.vpp = vpp;
  layout.sharding = zero1 ? Sharding::zero1 : Sharding::none;
  PlanOptions options;
  options.fused_attention = true;
  options.activation_bytes = 4;
  options.grad_reduce_bytes = 4;
  options.overlap_grad_reduce = false;
  options.vocab_parallel = false;
  options.cp_comm = cp_comm;
  return build_step_plan(model, layout, microbatch * dp, options);
}

namespace {

double gemm_flops(const GemmShape& s) {
  return 2.0 * double(std::get<0>(s)) * double(std::get<1>(s)) * double(std::get<2>(s));
}

ModelSpec default_model() {
  ModelSpec m;
  m.name = "calibration-default";
  m.n_layers = 2, m.d_model = 256, m.n_heads = 4, m.n_kv_heads = 1, m.head_dim = 64;
  m.d_ff = 1024, m.ffn = Ffn::swiglu, m.vocab = 4096, m.seq_len = 128;
  return m;
}

// Median timing of one collective over `ranks` thread ranks on `bytes` (floats): the buffer an
// all-reduce reduces, an all-gather gathers into, or an all-to-all sends from each rank.
double time_collective(const std::string& kind, int ranks, double bytes, int repetitions) {
  const size_t n = size_t(bytes / sizeof(float)) / size_t(ranks) * size_t(ranks);
  std::vector<double> seconds;
  run_on_ranks(1, 1, ranks, [&](const RankContext& ctx) {
    std::vector<float> in(n, 1.0f), out(n, 0.0f);
    const std::vector<size_t> blocks(size_t(ranks), n / size_t(ranks));  // all_to_all: n sent, n received
    Communicator* c = ctx.tp;
    for (int r = 0; r <= repetitions; ++r) {
      c->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      if (kind == "all_reduce") c->all_reduce(in.data(), n);
      else if (kind == "all_to_all") c->all_to_all(in.data(), blocks, out.data(), blocks);
      else if (kind == "reduce_scatter") c->reduce_scatter(in.data(), out.data(), n / size_t(ranks));
      else c->all_gather(in.data(), out.data(), n / size_t(ranks));
      c->barrier();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (ctx.rank == 0 && r > 0) seconds.push_back(s);  // r = 0 warms up
    }
  });
  return median_of(seconds);
}

}  // namespace

CalibrationGrid calibration_grid(bool quick, const StepPlan& plan) {
  CalibrationGrid g;
  const std::vector<int64_t> sizes = quick ? std::vector<int64_t>{64, 256, 1024}
                                           : std::vector<int64_t>{64, 128, 256, 512, 1024, 2048};
  for (int64_t m : sizes)
    for (int64_t n : sizes)
      for (int64_t k : sizes) g.gemm_shapes.insert({m, n, k});
  for (const Op& op : plan.ops)
    if (op.kind == OpKind::gemm) g.gemm_shapes.insert({op.m, op.n, op.k});
  g.peak_size = 2048;
  g.triad_bytes_per_array = 64 << 20;  // twice a typical last-level cache per array: DRAM's rate
  g.collective_kinds = {"all_reduce", "reduce_scatter", "all_gather"};
  if (plan.layout.ep > 1) g.collective_kinds.push_back("all_to_all");  // expert parallelism's dispatch
  g.collective_ranks = {2, 4};
  g.message_bytes = quick ? std::vector<double>{4096, 1 << 20, 16 << 20}
                          : std::vector<double>{4096, 65536, 1 << 20, 16 << 20, 64 << 20};
  g.repetitions = 3;
  g.rounds = 3;
  return g;
}

int gemm_repetitions(const CalibrationGrid& grid, const GemmShape& shape) {
  const double guess_s = gemm_flops(shape) / 50e9;
  return std::clamp(int(0.02 / std::max(guess_s, 1e-7)), grid.repetitions, 200);
}

Calibration fit_calibration(const CalibrationGrid& grid, const StepPlan& plan, const CalibrationKernels& kernels,
                            bool progress) {
  std::optional<ProgressBar> bar;
  if (progress)
    bar.emplace(grid.rounds * (int(grid.gemm_shapes.size()) + 3) + 1 +
                int(grid.collective_kinds.size() * grid.collective_ranks.size() * grid.message_bytes.size()));
  auto step = [&](const std::string& what) {
    if (bar) bar->step(what);
  };
  Calibration c;
  // The machine's speed reference, sampled between the phases below (as validate-local samples
  // it between steps): its medians say how fast the machine ran while this calibration was taken.
  std::vector<SpeedSample> reference_samples;
  auto sample_reference = [&] { reference_samples.push_back(kernels.reference()); };
  sample_reference();

  // The figures the prediction leans on (peak, GEMM grid, triad, step ops) are measured in
  // `grid.rounds` passes, one after the other: one pass of 5 repetitions let a single slow second
  // move a quick calibration's step by 12 %. What the step sums (a GEMM shape's and a step op's
  // seconds) is the mean over the passes, as each pass's figure is the mean of its repetitions:
  // the step meets the machine's short slow spells as often as calibration does, and its median
  // is the sum of its kernels' means (mean_of in model/robust_statistics.h). Medians of passes
  // predicted the step 2-3 % fast in every loop. The peak and the triad are rates the others are
  // not summed from: they stay medians.
  const int64_t p = grid.peak_size;
  std::vector<double> peak_s, triad;
  std::map<GemmShape, std::vector<double>> gemm_s;
  std::map<std::string, std::vector<double>> op_s;
  for (int round = 0; round < grid.rounds; ++round) {
    peak_s.push_back(kernels.sgemm_seconds(p, p, p, grid.repetitions));
    step(fmt::format("peak sgemm {}^3", p));
    sample_reference();
    for (const GemmShape& s : grid.gemm_shapes) {
      const auto [m, n, k] = s;
      gemm_s[s].push_back(kernels.sgemm_seconds(m, n, k, gemm_repetitions(grid, s)));
      step(fmt::format("gemm {}x{}x{}", m, n, k));
    }
    sample_reference();
    triad.push_back(kernels.triad_bytes_per_s(grid.triad_bytes_per_array, grid.repetitions));
    step("memory triad");
    for (const auto& [key, seconds] :
         kernels.step_op_seconds(plan.model, plan.layout, grid.repetitions))
      op_s[key].push_back(seconds);
    step("step ops");
    sample_reference();
  }

  // Peak: the rate a large square sgemm reaches; efficiencies are fractions of it.
  c.peak_flops = gemm_flops({p, p, p}) / median_of(peak_s);
  for (const auto& [s, seconds] : gemm_s) {
    const auto [m, n, k] = s;
    // A shape may beat the square one by noise; efficiencies stay at most 1.
    c.gemm.push_back({m, n, k, 1, std::min(1.0, gemm_flops(s) / mean_of(seconds) / c.peak_flops)});
  }
  c.memory_bytes_per_s = median_of(triad);
  // Each op alone, as a rate of what the plan charges it: the bridge from kernels to the model.
  for (const Op& op : plan.ops) {
    const std::string key = std::string(op.name) + "." + phase_suffix(op.phase);
    auto it = op_s.find(key);
    if (it == op_s.end()) continue;
    const double seconds = mean_of(it->second);
    if (op.kind == OpKind::memory) c.memory_op_bytes_per_s[key] = op.bytes / seconds;
    if (op.kind == OpKind::attention)
      c.attention_efficiency_by_phase[phase_suffix(op.phase)] = op.flops / (seconds * c.peak_flops);
  }

  for (const auto& kind : grid.collective_kinds)
    for (int ranks : grid.collective_ranks)
      for (double bytes : grid.message_bytes) {
        c.collectives.push_back({kind, ranks, bytes, kernels.collective_seconds(kind, ranks, bytes, grid.repetitions)});
        step(fmt::format("{} x{} {:.0f} kB", kind, ranks, bytes / 1024));
      }
  sample_reference();
  c.reference = machine_speed_of(reference_samples, kernels.reference_threads, kernels.reference_ranks,
                                 kernels.reference_probe_bytes);
  step("done");
  if (bar) bar->finish();
  return c;
}

Calibration calibrate_cpu(const CalibrateOptions& o) {
  // The trainer's rule for its threads, so validate-local samples the reference on as many.
  TrainConfig asked;
  asked.threads = o.threads;
  const int threads = trainer_threads(asked);
  const StepPlan plan = o.plan ? *o.plan : cpu_step_plan(default_model(), 8);
  // The trainer's ranks are threads sharing the cores (kernels/trainer.cpp): with several ranks
  // each runs its GEMMs on one thread and all share oneTBB's pool of `threads`. A rank's figures
  // are measured that way: every rank runs the kernel at once, and the slowest rank's figure is
  // kept, since the ranks meet at every collective and the step goes at the slowest one's pace
  // (timed on one rank with the other cores idle, train-tiny's dp 2 and tp 2 steps came out
  // ~8 % faster than measured; rank 0 waited ~30 ms a step for rank 1 at the gradient all-reduce).
  // More ranks than cores take turns on them (the operating system's time slices; the ranks block
  // while they wait): an op is measured on as many ranks at once as there are cores, its speed
  // while it has a core, and the estimator and simulator share the cores among the ranks
  // (System::shared_cores).
  const int ranks = int(plan.layout.chips());
  const int concurrent = concurrent_ranks(ranks, threads);
  const int gemm_threads = ranks > 1 ? 1 : threads;
  auto limit = [](int n) { return tbb::global_control(tbb::global_control::max_allowed_parallelism, size_t(n)); };
  auto on_every_rank = [&](auto&& kernel) {  // kernel(rank) on every rank a core runs: each one's result
    const auto l = limit(threads);
    cpu::set_gemm_threads(gemm_threads);
    std::vector<decltype(kernel(0))> results(static_cast<size_t>(concurrent));
    run_on_ranks(1, 1, concurrent, [&](const RankContext& ctx) {
      ctx.world->barrier();
      results[size_t(ctx.rank)] = kernel(ctx.rank);
    });
    return results;
  };
  std::vector<std::vector<float>> gemm_pools(static_cast<size_t>(concurrent));  // laid out once per rank
  CpuSpeedReference reference(threads, concurrent, reference_triad_bytes(plan));
  CalibrationKernels k;
  k.sgemm_seconds = [&](int64_t m, int64_t n, int64_t kk, int reps) {
    const auto t = on_every_rank([&](int r) { return time_sgemm(m, n, kk, reps, gemm_pools[size_t(r)]); });
    return *std::max_element(t.begin(), t.end());
  };
  k.triad_bytes_per_s = [&](int64_t bytes, int reps) {
    const auto t = on_every_rank([&](int) { return stream_triad_bytes_per_s(bytes, reps); });
    return *std::min_element(t.begin(), t.end());
  };
  k.step_op_seconds = [&](const ModelSpec& model, const Layout& layout, int reps) {
    const auto t = on_every_rank([&](int) { return time_step_ops(model, layout, reps); });
    std::map<std::string, double> slowest;
    for (const auto& rank : t)
      for (const auto& [op, seconds] : rank) slowest[op] = std::max(slowest[op], seconds);
    return slowest;
  };
  k.collective_seconds = [&](const std::string& kind, int n, double bytes, int reps) {
    const auto l = limit(threads);
    cpu::set_gemm_threads(1);  // thread ranks run their GEMMs unsplit, as in training
    return time_collective(kind, n, bytes, reps);
  };
  k.reference = [&] {  // on all the threads, as validate-local samples it (speed_reference.h)
    const auto l = limit(threads);
    return reference.sample();
  };
  k.reference_threads = threads;
  k.reference_ranks = concurrent;
  k.reference_probe_bytes = double(reference.triad_bytes_per_array());

  Calibration c = fit_calibration(calibration_grid(o.quick, plan), plan, k, true);
  cpu::set_gemm_threads(gemm_threads);
  c.device = ranks > 1 ? fmt::format("{} ({} thread ranks, GEMMs on 1 thread each)", cpu_device_name(threads), ranks)
                       : cpu_device_name(threads);
  c.date = fmt::format("{:%Y-%m-%d}", fmt::localtime(std::time(nullptr)));
  c.memory_bytes = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
  return c;
}

}  // namespace palmsim
