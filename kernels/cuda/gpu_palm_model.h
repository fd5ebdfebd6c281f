#pragma once
// The PaLM model of kernels/palm_model.h on one GPU: the same tensors in the same flat order, the
// same initial values, the same ops under the same names. fp32 master parameters with a bf16
// working copy for the GEMMs, fp32 gradients accumulated by the GEMMs themselves, bf16 activations
// wherever they feed a GEMM, fp32 residual stream, statistics and losses.
// Tensor parallelism as on the CPU; `tp` communicators here take device pointers (NCCL).
#include "kernels/communicator.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/gpu_op_timer.h"
#include "kernels/cuda/ops.h"
#include "kernels/palm_model.h"
#include "model/model_spec.h"

#include <string>
#include <vector>

namespace palmsim::cuda {

class GpuPalmModel {
 public:
  // Throws std::invalid_argument naming what the CUDA kernels cannot run (head_dim, seq_len).
  GpuPalmModel(const ModelSpec& spec, int tp, int tp_rank, cudaStream_t stream);

  void init(uint64_t seed);                       // PalmModel<float>::init's values
  void set_params(const std::vector<float>& host);  // master copy; refreshes the bf16 copy
  std::vector<float> params_to_host() const;
  std::vector<float> grads_to_host() const;
  void zero_grads();

  // As PalmModel::forward_backward; tokens and targets are host arrays.
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp,
                          GpuOpTimer* timer, double grad_scale = 1.0);
  double evaluate(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp);

  const ModelSpec& spec() const { return spec_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  size_t parameter_count() const { return n_params_; }
  float* params() { return params_.data(); }
  bf16* params_bf16() { return params_bf16_.data(); }
  float* grads() { return grads_.data(); }
  cudaStream_t stream() const { return stream_; }

 private:
  struct LayerActivations {
    DeviceBuffer<float> x, mean, rstd, lse, x_mid, mean2, rstd2;
    DeviceBuffer<bf16> h, qkv, o, u, m, h2;
  };
  struct Workspace {
    std::vector<LayerActivations> layers;
    DeviceBuffer<float> x, y, mean_f, rstd_f, logits, log_z, row_loss, row_ce, dhf, dx, dh, delta, ln_partials;
    DeviceBuffer<bf16> hf, dlogits, dy, dm, du, d_o, dqkv;
    DeviceBuffer<int32_t> tokens, targets, group_tokens, group_starts, positions;
  };
  // One call's shapes, communicator and timer.
  struct Pass {
    int64_t batch = 0, N = 0;  // sequences, rows
    Communicator* tp = nullptr;
    GpuOpTimer* timer = nullptr;
    double grad_scale = 1;
    AttentionDims dims;
    int64_t hq = 0, kvq = 0, ld = 0;  // query heads, K and V heads, both: the QKV leading dimension
  };
  double run(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp, GpuOpTimer* timer,
             bool backward, double grad_scale, double* plain_ce);
  float* param(const std::string& name) { return params_.data() + offset(name); }
  bf16* param_bf16(const std::string& name) { return params_bf16_.data() + offset(name); }
  float* grad(const std::string& name) { return grads_.data() + offset(name); }
  // Forward, in the order a step runs it (the names differ from kernels/cuda/ops.h's kernels).
  void embed(const Pass& p);
  void layer_forward(const Pass& p, int layer);
  void layer_norm(const Pass& p, const DeviceBuffer<float>& in, const std::string& g, DeviceBuffer<bf16>& out,
                  DeviceBuffer<float>& mean, DeviceBuffer<float>& rstd);
  void attention_branch(const Pass& p, LayerActivations& a, const std::string& prefix, const DeviceBuffer<bf16>& h);
  void mlp_branch(const Pass& p, LayerActivations& a, const std::string& prefix, const DeviceBuffer<bf16>& h,
                  float beta);
  void add_branches(const Pass& p);  // sums y over the tp ranks, then adds it to the residual x
  void head_forward(const Pass& p);  // final LayerNorm, logits, per-row losses
  // Backward, in reverse.
  void head_backward(const Pass& p);
  void layer_backward(const Pass& p, int layer);
  void mlp_branch_backward(const Pass& p, LayerActivations& a, const std::string& prefix, const DeviceBuffer<bf16>& h,
                           float beta);
  void attention_branch_backward(const Pass& p, LayerActivations& a, const std::string& prefix, float beta);
  void residual_backward(const Pass& p);
  void layer_norm_backward(const Pass& p, const DeviceBuffer<float>& in, const std::string& g,
                           const DeviceBuffer<float>& mean, const DeviceBuffer<float>& rstd);
  void reduce_dh(const Pass& p);
  void all_reduce(const Pass& p, DeviceBuffer<float>& v, const char* name);
  void upload_tokens(const int32_t* tokens, const int32_t* targets, int64_t n, bool backward);
  size_t offset(const std::string& name) const;

  ModelSpec spec_;
  int tp_, tp_rank_;
  int64_t heads_, kv_heads_, ff_;
  cudaStream_t stream_;
  std::vector<TensorInfo> tensors_;
  size_t n_params_ = 0;
  DeviceBuffer<float> params_, grads_;
  DeviceBuffer<bf16> params_bf16_;
  Gemm gemm_;
  Workspace ws_;
  int64_t embedding_groups_ = 0;
};

}  // namespace palmsim::cuda
