#pragma once
// The CPU's speed reference (hwmodels/machine_drift.h): a 1024^3 sgemm through the trainer's GEMM
// and a streaming triad, run the way the trainer's ranks run:
//   - one rank: each kernel on all `threads` threads (oneTBB balances them, as in the step);
//   - several thread ranks: every rank runs its own single-threaded copy at once, and the
//     sample is the slowest rank's rates times the ranks. Barrier-synchronized ranks go at the
//     slowest one's pace: when one core was taken by a neighbour, train-tiny's tp 2 step slowed
//     by 16 % while a load-balanced reference on both cores did not move.
// The triad's arrays are sized like the step's own memory-bound tensors (reference_triad_bytes):
// a small model's LayerNorms and activations live in the caches, whose speed drifts with the
// cores', not with DRAM's (a 32 MiB triad measured DRAM, whose bandwidth swung by a third with the
// neighbours' load while those ops did not move). Buffers are laid out once, so sampling between
// steps allocates nothing and touches no new pages. About 0.1-0.2 s a sample on 2 cores.
#include "hwmodels/machine_drift.h"
#include "model/step_plan.h"

#include <cstdint>
#include <vector>

namespace palmsim {

// The thread ranks that run at once where `ranks` share `threads` cores: the reference and the
// calibration's per-op timings run that many, each on its own core. More ranks than cores take
// turns on them (the estimator and simulator share the cores: System::shared_cores), and timing
// all of them at once measured the operating system's time slices: on 2 cores train-tiny's 4 ranks
// drew a triad rate from 0.7x to 2.2x of the calibration's from one sample to the next.
inline int concurrent_ranks(int ranks, int threads) { return ranks < threads ? ranks : threads; }

class CpuSpeedReference {
 public:
  CpuSpeedReference(int threads, int ranks, int64_t triad_bytes_per_array);
  int threads() const { return threads_; }
  int ranks() const { return ranks_; }
  int64_t triad_bytes_per_array() const { return triad_bytes_; }
  // One sample: each kernel the median of kRepetitions runs after a warm-up. Restores the caller's
  // GEMM thread count; oneTBB work is capped by any active tbb::global_control.
  SpeedSample sample();

 private:
  struct Buffers {
    std::vector<float> a, b, c;  // the GEMM's operands
    std::vector<float> x, y, z;  // the triad's arrays
  };
  SpeedSample sample_one_rank();
  SpeedSample sample_every_rank();
  double gemm_flops_per_s(Buffers& b) const;    // median of kRepetitions runs after a warm-up
  double memory_bytes_per_s(Buffers& b) const;  // the same for triad_passes_ back-to-back triads

  static constexpr int64_t kGemmSize = 1024;
  // Five runs per median and ~256 MB moved per triad timing. Three runs of ~16 MB were timings of
  // ~0.3 ms, shorter than a scheduler tick: one preempted run moved a sample by a third.
  static constexpr int kRepetitions = 5;
  static constexpr int64_t kTriadBytesPerTiming = int64_t(256) << 20;
  int threads_, ranks_;
  int64_t triad_bytes_;
  int triad_passes_;             // back-to-back triads per timing: kTriadBytesPerTiming moved
  std::vector<Buffers> buffers_;  // one set per rank
};

// Bytes per triad array for `plan`: the median of its memory-bound ops' bytes per occurrence over
// the triad's three arrays, as a power of two within [64 KiB, 64 MiB].
int64_t reference_triad_bytes(const StepPlan& plan);

}  // namespace palmsim
