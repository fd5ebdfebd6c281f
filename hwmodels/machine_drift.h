#pragma once
// A machine's speed drifts: a shared cloud VM, a busy node or a GPU's clocks run the same kernel
// tens of percent faster or slower from one minute to the next. A calibration taken in one speed
// window and held against a step measured in another then mixes the machine's drift into the
// model's error. The method, shared by both backends:
//   - a short fixed reference (one GEMM and one streaming kernel, the kinds calibration measures)
//     is sampled through calibration, and its medians are written into the calibration file;
//   - validate-local samples it again interleaved with the measured steps (reference, step,
//     reference, step, ..., reference) and compares medians, so both sides see the same windows;
//   - the prediction's compute-bound seconds are scaled by the GEMM's drift and its memory-bound
//     seconds by the streaming kernel's; the raw and the drift-corrected errors are both reported.
// Medians rather than fastest-of-N: one lucky repetition does not set the figure, and the median
// of the steps comes with a distribution-free confidence interval from its order statistics.
#include "model/robust_statistics.h"

#include <vector>

namespace palmsim {

// One timing of the reference: the GEMM's FLOP/s and the streaming kernel's bytes/s.
struct SpeedSample {
  double gemm_flops_per_s = 0;
  double memory_bytes_per_s = 0;
};

// The reference over a window: medians of its samples, and their spread ((max - min) / median).
struct MachineSpeed {
  double gemm_flops_per_s = 0;
  double memory_bytes_per_s = 0;
  int samples = 0;
  // What the reference ran, so it is run again the same way: threads and thread ranks (CPU; 0
  // and 1 where they do not apply) and the streaming kernel's bytes per array.
  int threads = 0;
  int ranks = 1;
  double memory_probe_bytes = 0;
  double gemm_spread = 0, memory_spread = 0;
  bool measured() const { return samples > 0 && gemm_flops_per_s > 0 && memory_bytes_per_s > 0; }
};
MachineSpeed machine_speed_of(const std::vector<SpeedSample>& samples, int threads, int ranks,
                              double memory_probe_bytes);

// How much faster the machine runs now than then (> 1: faster now), per kind of work.
struct Drift {
  double compute = 1;
  double memory = 1;
};
Drift drift_since(const MachineSpeed& then, const MachineSpeed& now);
Drift drift_since(const MachineSpeed& then, const SpeedSample& now);

// Seconds predicted at calibration time, moved to the speed measured now.
double drift_corrected_seconds(double compute_s, double memory_s, const Drift& drift);

}  // namespace palmsim
