#pragma once
// Device time per op under the StepPlan's names, measured with CUDA events around each op's
// launches (host clocks would time the launches, not the work). flush() waits for the stream and
// adds the step's times to an OpTimer, the CPU backend's record, so bench-step reports both alike.
#include "kernels/op_timer.h"

#include <cuda_runtime.h>

#include <string>
#include <vector>

namespace palmsim::cuda {

class GpuOpTimer {
 public:
  explicit GpuOpTimer(cudaStream_t stream) : stream_(stream) {}
  ~GpuOpTimer();
  GpuOpTimer(const GpuOpTimer&) = delete;
  GpuOpTimer& operator=(const GpuOpTimer&) = delete;

  class Scope {
   public:
    Scope(GpuOpTimer* timer, const char* name);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    GpuOpTimer* timer_;
    size_t record_ = 0;
  };

  // Synchronizes the stream, adds every recorded op's seconds to `into` and forgets them.
  void flush(OpTimer& into);

 private:
  cudaEvent_t next_event();
  struct Record {
    std::string name;
    cudaEvent_t start, stop;
  };
  cudaStream_t stream_;
  std::vector<cudaEvent_t> pool_;  // reused from step to step
  size_t pool_used_ = 0;
  std::vector<Record> records_;
};

// A null timer times nothing.
inline GpuOpTimer::Scope time_gpu_op(GpuOpTimer* timer, const char* name) { return GpuOpTimer::Scope(timer, name); }

}  // namespace palmsim::cuda
