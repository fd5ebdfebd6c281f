#pragma once
// This machine's speed right now, by a short fixed reference: one sgemm shape and one streaming
// triad, the same kernels calibration measures, each the median of several short timings. On a
// shared or throttling machine the speed drifts by tens of percent within the hour; calibrate
// records the reference and validate-local times it again around the steps it measures, so a
// prediction made from an old calibration is compared at the speed the step actually ran at.
#include <vector>

namespace palmsim {

struct MachineReference {
  double gemm_flops_per_s = 0;
  double memory_bytes_per_s = 0;
};

// About 0.1 s: `samples` timings of a 512^3 sgemm and of a 32 MiB-per-array triad, medians.
MachineReference measure_reference(int samples = 5);

// The median of `values` (the mean of the middle two for an even count; 0 for none).
double median_of(std::vector<double> values);

// The median of several references (each field separately).
MachineReference median_reference(const std::vector<MachineReference>& references);

// Speed now over speed at calibration, per kind of work (1 = unchanged, < 1 = slower now).
struct Drift {
  double compute = 1, memory = 1;
};
Drift drift_since(const MachineReference& at_calibration, const MachineReference& now);

// A predicted step moved to the machine's present speed: its compute-bound seconds divided by the
// compute drift, its memory-bound seconds (element-wise ops and thread-rank collectives, which
// stream through memory) by the memory drift; the step scales as their sum.
double drift_corrected_step_s(double predicted_step_s, double compute_s, double memory_s, const Drift& drift);

}  // namespace palmsim
