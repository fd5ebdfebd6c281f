#pragma once
// Adafactor as PaLM used it (Sec. 5): without factorization, which is Adam with "parameter
// scaling": each tensor's update is scaled by max(1e-3, RMS(tensor)). beta1 = 0.9, beta2 = 1 - k^-0.8
// (so no bias correction is needed: beta2 = 0 at k = 1), learning rate 1e-2 for the first 10k
// steps then 1/sqrt(k), weight decay lr^2, gradients clipped to global norm 1.0 beforehand.
#include "kernels/palm_model.h"

#include <cstdint>
#include <vector>

namespace palmsim {

struct OptimizerConfig {
  double peak_lr = 1e-2;
  int64_t constant_steps = 10000;  // then peak_lr * sqrt(constant_steps / k): 1/sqrt(k) for PaLM
  double beta1 = 0.9;
  double decay_exponent = 0.8;     // beta2 = 1 - k^-decay_exponent
  double clip_norm = 1.0;
};

double learning_rate(const OptimizerConfig& c, int64_t step);  // step counts from 1

// Updates the flat range [begin, end) of a model's parameters (all of them, or a ZeRO-1 shard).
template <class T>
class Adafactor {
 public:
  Adafactor(const OptimizerConfig& config, size_t begin, size_t end);
  // grads_in_range[i] is the gradient of parameter begin + i; tensor_rms[t] the RMS of tensor t
  // over all its shards; clip_scale multiplies every gradient (global-norm clipping).
  void update(T* params, const T* grads_in_range, const std::vector<TensorInfo>& tensors,
              const std::vector<double>& tensor_rms, int64_t step, double clip_scale);
  std::vector<T>& first_moment() { return m_; }
  std::vector<T>& second_moment() { return v_; }
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }

 private:
  OptimizerConfig config_;
  size_t begin_, end_;
  std::vector<T> m_, v_;
};

// Sum of squares per tensor over the range [begin, end) of a flat buffer (values[i] is element
// begin + i): the pieces of global norms and tensor RMS that ranks add up.
template <class T>
std::vector<double> sum_of_squares_per_tensor(const T* values, size_t begin, size_t end,
                                              const std::vector<TensorInfo>& tensors);

}  // namespace palmsim
