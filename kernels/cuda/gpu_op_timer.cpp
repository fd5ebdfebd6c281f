#include "kernels/cuda/gpu_op_timer.h"

#include "kernels/cuda/cuda_check.h"

namespace palmsim::cuda {

GpuOpTimer::~GpuOpTimer() {
  for (cudaEvent_t e : pool_) cudaEventDestroy(e);
}

cudaEvent_t GpuOpTimer::next_event() {
  if (pool_used_ == pool_.size()) {
    cudaEvent_t e;
    CUDA_CHECK(cudaEventCreate(&e));
    pool_.push_back(e);
  }
  return pool_[pool_used_++];
}

GpuOpTimer::Scope::Scope(GpuOpTimer* timer, const char* name) : timer_(timer) {
  if (!timer_) return;
  record_ = timer_->records_.size();
  timer_->records_.push_back({name, timer_->next_event(), timer_->next_event()});
  CUDA_CHECK(cudaEventRecord(timer_->records_[record_].start, timer_->stream_));
}

GpuOpTimer::Scope::~Scope() {
  if (timer_) cudaEventRecord(timer_->records_[record_].stop, timer_->stream_);  // destructors must not throw
}

void GpuOpTimer::flush(OpTimer& into) {
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (const Record& r : records_) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, r.start, r.stop));
    into.add(r.name, 1e-3 * double(ms));
  }
  records_.clear();
  pool_used_ = 0;
}

}  // namespace palmsim::cuda
