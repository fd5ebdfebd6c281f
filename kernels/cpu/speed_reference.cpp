#include "kernels/cpu/speed_reference.h"

#include "kernels/cpu/blas.h"
#include "kernels/cpu/microbench.h"
#include "kernels/rank_grid.h"

#include <tbb/task_arena.h>

#include <algorithm>

namespace palmsim {

CpuSpeedReference::CpuSpeedReference(int threads, int ranks, int64_t triad_bytes_per_array)
    : threads_(threads),
      ranks_(std::max(1, ranks)),
      triad_bytes_(triad_bytes_per_array),
      triad_passes_(int(std::max<int64_t>(1, kTriadBytesPerTiming / (3 * triad_bytes_per_array)))) {
  const size_t gemm = size_t(kGemmSize * kGemmSize), triad = size_t(triad_bytes_per_array) / sizeof(float);
  for (int r = 0; r < ranks_; ++r)
    buffers_.push_back({std::vector<float>(gemm, 0.5f), std::vector<float>(gemm, 0.25f), std::vector<float>(gemm, 0.0f),
                        std::vector<float>(triad, 0.0f), std::vector<float>(triad, 1.0f),
                        std::vector<float>(triad, 2.0f)});
}

SpeedSample CpuSpeedReference::sample() {
  const int before = cpu::gemm_threads();
  const SpeedSample s = ranks_ == 1 ? sample_one_rank() : sample_every_rank();
  cpu::set_gemm_threads(before);
  return s;
}

double CpuSpeedReference::gemm_flops_per_s(Buffers& b) const {
  const int64_t n = kGemmSize;
  const double seconds = median_seconds_of(kRepetitions, [&] {
    cpu::gemm(false, false, n, n, n, 1.0f, b.a.data(), n, b.b.data(), n, 0.0f, b.c.data(), n);
  });
  return 2.0 * double(n) * double(n) * double(n) / seconds;
}

double CpuSpeedReference::memory_bytes_per_s(Buffers& b) const {
  return triad_bytes_per_s(b.x.data(), b.y.data(), b.z.data(), b.x.size(), triad_passes_, kRepetitions);
}

SpeedSample CpuSpeedReference::sample_one_rank() {
  cpu::set_gemm_threads(threads_);
  tbb::task_arena arena(threads_);
  SpeedSample s;
  arena.execute([&] { s = {gemm_flops_per_s(buffers_[0]), memory_bytes_per_s(buffers_[0])}; });
  return s;
}

SpeedSample CpuSpeedReference::sample_every_rank() {
  cpu::set_gemm_threads(1);  // each rank's GEMM on its own thread, as the trainer's ranks
  std::vector<SpeedSample> per_rank(static_cast<size_t>(ranks_));
  run_on_ranks(1, 1, ranks_, [&](const RankContext& ctx) {  // each rank in its arena (rank_grid.h)
    Buffers& b = buffers_[size_t(ctx.rank)];
    ctx.world->barrier();
    const double gemm = gemm_flops_per_s(b);
    ctx.world->barrier();
    per_rank[size_t(ctx.rank)] = {gemm, memory_bytes_per_s(b)};
  });
  SpeedSample slowest = per_rank[0];
  for (const SpeedSample& r : per_rank) {
    slowest.gemm_flops_per_s = std::min(slowest.gemm_flops_per_s, r.gemm_flops_per_s);
    slowest.memory_bytes_per_s = std::min(slowest.memory_bytes_per_s, r.memory_bytes_per_s);
  }
  return {slowest.gemm_flops_per_s * ranks_, slowest.memory_bytes_per_s * ranks_};
}

int64_t reference_triad_bytes(const StepPlan& plan) {
  std::vector<double> bytes;
  for (const Op& op : plan.ops)
    if (op.kind == OpKind::memory && op.bytes > 0) bytes.push_back(op.bytes / 3);
  const double target = std::clamp(median_of(bytes), double(64 << 10), double(64 << 20));
  int64_t size = 64 << 10;
  while (2 * size <= target) size *= 2;
  return size;
}

}  // namespace palmsim
