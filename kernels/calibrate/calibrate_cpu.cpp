#include "kernels/calibrate/calibrate_cpu.h"

#include "kernels/calibrate/progress_bar.h"
#include "kernels/calibrate/step_op_benchmarks.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/microbench.h"
#include "kernels/rank_grid.h"

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

StepPlan cpu_step_plan(const ModelSpec& model, int64_t microbatch, int tp, int dp, bool zero1) {
  Layout layout;
  layout.tp = tp, layout.dp = dp, layout.microbatch = int(microbatch);
  layout.sharding = zero1 ? Sharding::zero1 : Sharding::none;
  PlanOptions options;
  options.fused_attention = true;
  options.activation_bytes = 4;
  options.grad_reduce_bytes = 4;
  options.overlap_grad_reduce = false;
  return build_step_plan(model, layout, microbatch * dp, options);
}

namespace {

using Shape = std::tuple<int64_t, int64_t, int64_t>;

double gemm_flops(const Shape& s) {
  return 2.0 * double(std::get<0>(s)) * double(std::get<1>(s)) * double(std::get<2>(s));
}

// Enough repetitions that small GEMMs are timed over at least ~20 ms in total.
int repetitions_for(const Shape& s, bool quick) {
  const double guess_s = gemm_flops(s) / 50e9;
  return std::clamp(int(0.02 / std::max(guess_s, 1e-7)), quick ? 2 : 3, quick ? 50 : 200);
}

ModelSpec default_model() {
  ModelSpec m;
  m.name = "calibration-default";
  m.n_layers = 2, m.d_model = 256, m.n_heads = 4, m.n_kv_heads = 1, m.head_dim = 64;
  m.d_ff = 1024, m.ffn = Ffn::swiglu, m.vocab = 4096, m.seq_len = 128;
  return m;
}

// Best-of timing of one collective over `ranks` thread ranks on `bytes` (floats).
double time_collective(const std::string& kind, int ranks, double bytes, int repetitions) {
  const size_t n = size_t(bytes / sizeof(float)) / size_t(ranks) * size_t(ranks);
  double best = std::numeric_limits<double>::infinity();
  run_on_ranks(1, ranks, [&](const RankContext& ctx) {
    std::vector<float> in(n, 1.0f), out(n, 0.0f);
    Communicator* c = ctx.tp;
    for (int r = 0; r <= repetitions; ++r) {
      c->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      if (kind == "all_reduce") c->all_reduce(in.data(), n);
      else if (kind == "reduce_scatter") c->reduce_scatter(in.data(), out.data(), n / size_t(ranks));
      else c->all_gather(in.data(), out.data(), n / size_t(ranks));
      c->barrier();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (ctx.rank == 0 && r > 0) best = std::min(best, s);  // r = 0 warms up
    }
  });
  return best;
}

}  // namespace

Calibration calibrate_cpu(const CalibrateOptions& o) {
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const StepPlan plan = o.plan ? *o.plan : cpu_step_plan(default_model(), 8);
  // The trainer's ranks share the machine's cores: one rank, a "chip" of local-cpu, gets its share,
  // and every per-chip figure below is measured with that many threads.
  const int ranks = int(plan.layout.chips());
  const int per_rank = std::max(1, threads / ranks);
  cpu::set_gemm_threads(per_rank);
  auto limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, size_t(per_rank));

  // The grid: every combination of a few sizes, plus the model's GEMMs (forward and backward).
  std::set<Shape> shapes;
  const std::vector<int64_t> sizes = o.quick ? std::vector<int64_t>{64, 256, 1024}
                                             : std::vector<int64_t>{64, 128, 256, 512, 1024, 2048};
  for (int64_t m : sizes)
    for (int64_t n : sizes)
      for (int64_t k : sizes) shapes.insert({m, n, k});
  for (const Op& op : plan.ops)
    if (op.kind == OpKind::gemm) shapes.insert({op.m, op.n, op.k});
  const int64_t peak_size = o.quick ? 1024 : 2048;
  const std::vector<std::string> kinds{"all_reduce", "reduce_scatter", "all_gather"};
  const std::vector<int> rank_counts{2, 4};
  const std::vector<double> message_bytes = o.quick ? std::vector<double>{4096, 1 << 20, 16 << 20}
                                                    : std::vector<double>{4096, 65536, 1 << 20, 16 << 20, 64 << 20};

  ProgressBar bar(int(shapes.size()) + 4 + int(kinds.size() * rank_counts.size() * message_bytes.size()));
  Calibration c;
  c.device = ranks > 1 ? fmt::format("{} ({} ranks, {} per rank)", cpu_device_name(threads), ranks, per_rank)
                       : cpu_device_name(threads);
  c.date = fmt::format("{:%Y-%m-%d}", fmt::localtime(std::time(nullptr)));

  // Peak: the best rate a large square sgemm reaches; efficiencies are fractions of it.
  const Shape square{peak_size, peak_size, peak_size};
  c.peak_flops = gemm_flops(square) / time_sgemm(peak_size, peak_size, peak_size, o.quick ? 3 : 5);
  bar.step(fmt::format("peak sgemm {}^3", peak_size));

  for (const Shape& s : shapes) {
    const auto [m, n, k] = s;
    const double seconds = time_sgemm(m, n, k, repetitions_for(s, o.quick));
    // A shape may beat the square one by noise; efficiencies stay at most 1.
    c.gemm.push_back({m, n, k, 1, std::min(1.0, gemm_flops(s) / seconds / c.peak_flops)});
    bar.step(fmt::format("gemm {}x{}x{}", m, n, k));
  }

  c.memory_bytes = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
  c.memory_bytes_per_s = stream_triad_bytes_per_s(o.quick ? (64 << 20) : (256 << 20), o.quick ? 3 : 5);
  bar.step("memory triad");

  // Each op alone, as a rate of what the plan charges it: the bridge from kernels to the model.
  const auto op_seconds = time_step_ops(plan.model, plan.layout.microbatch, o.quick ? 3 : 5);
  bar.step("step ops");
  for (const Op& op : plan.ops) {
    const std::string key = std::string(op.name) + "." + phase_suffix(op.phase);
    auto it = op_seconds.find(key);
    if (it == op_seconds.end()) continue;
    if (op.kind == OpKind::memory) c.memory_op_bytes_per_s[key] = op.bytes / it->second;
    if (op.kind == OpKind::attention)
      c.attention_efficiency_by_phase[phase_suffix(op.phase)] = op.flops / (it->second * c.peak_flops);
  }
  bar.step("fit");

  limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, size_t(threads));
  cpu::set_gemm_threads(1);  // thread ranks run their GEMMs unsplit, as in training
  for (const auto& kind : kinds)
    for (int ranks : rank_counts)
      for (double bytes : message_bytes) {
        c.collectives.push_back({kind, ranks, bytes, time_collective(kind, ranks, bytes, o.quick ? 3 : 5)});
        bar.step(fmt::format("{} x{} {:.0f} kB", kind, ranks, bytes / 1024));
      }
  cpu::set_gemm_threads(per_rank);
  bar.step("done");
  bar.finish();
  return c;
}

}  // namespace palmsim
