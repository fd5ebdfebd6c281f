#pragma once
// `palmsim calibrate --backend cpu`: measures this machine's CPU the way the StepPlan uses it and
// fits the figures hwmodels read (hwmodels/calibration.h): the sgemm peak, GEMM efficiency over a
// grid of shapes plus the configured model's own GEMM shapes, and the streaming memory rate.
#include "hwmodels/calibration.h"
#include "model/step_plan.h"

#include <optional>

namespace palmsim {

struct CalibrateOptions {
  bool quick = false;           // a short grid for CI and first looks
  int threads = 0;              // OpenBLAS/oneTBB threads; 0 = all cores
  std::optional<StepPlan> plan; // the configured model's step: its GEMM shapes are measured too
};

Calibration calibrate_cpu(const CalibrateOptions& options);

// "<CPU model name>, N threads" from /proc/cpuinfo.
std::string cpu_device_name(int threads);

}  // namespace palmsim
