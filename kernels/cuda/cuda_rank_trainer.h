#pragma once
// One GPU rank's training step: the twin of kernels/rank_trainer.h (data and tensor parallel, no
// ZeRO-1 yet) with the model, gradients and Adafactor state on the device. Global-norm clipping
// and parameter-scaled Adafactor as on the CPU: per-tensor sums of squares in fixed chunks, added
// in order on the host in double.
#include "kernels/adafactor.h"
#include "kernels/cuda/gpu_palm_model.h"
#include "kernels/train_config.h"

namespace palmsim::cuda {

class CudaRankTrainer {
 public:
  // `tp` and `dp` are this rank's groups (NCCL, device pointers); either may be null at size 1.
  CudaRankTrainer(const ModelSpec& spec, const TrainConfig& config, int rank, Communicator* tp, Communicator* dp,
                  cudaStream_t stream);

  double step(const int32_t* tokens, const int32_t* targets, int64_t step_number, GpuOpTimer* timer);
  double evaluate(const int32_t* tokens, const int32_t* targets, int64_t sequences);

  GpuPalmModel& model() { return model_; }
  int dp_rank() const { return rank_ / config_.tp; }

 private:
  // Per-tensor sums of squares of a device buffer of all parameters, summed over the ranks that
  // hold other pieces of sharded tensors.
  std::vector<double> tensor_sums_of_squares(const float* values);
  double all_reduce_scalar(Communicator* group, double value);

  TrainConfig config_;
  int rank_;
  Communicator* tp_;
  Communicator* dp_;
  cudaStream_t stream_;
  GpuPalmModel model_;
  DeviceBuffer<float> m_, v_;
  std::vector<int64_t> chunk_tensor_;  // the tensor of each chunk
  DeviceBuffer<int64_t> chunk_begin_, tensor_begin_;
  DeviceBuffer<double> chunk_sums_, tensor_scale_, scratch_;
};

}  // namespace palmsim::cuda
