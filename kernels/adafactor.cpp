#include "kernels/adafactor.h"

#include "kernels/palm_choices.h"

#include <algorithm>
#include <cmath>

namespace palmsim {

double learning_rate(const OptimizerConfig& c, int64_t step) {
  if (step <= c.constant_steps) return c.peak_lr;
  return c.peak_lr * std::sqrt(double(c.constant_steps) / double(step));
}

template <class T>
Adafactor<T>::Adafactor(const OptimizerConfig& config, size_t begin, size_t end)
    : config_(config), begin_(begin), end_(end), m_(end - begin, T(0)), v_(end - begin, T(0)) {}

template <class T>
void Adafactor<T>::update(T* params, const T* grads, const std::vector<TensorInfo>& tensors,
                          const std::vector<double>& tensor_rms, int64_t step, double clip_scale) {
  const double lr = learning_rate(config_, step);
  const double beta2 = 1.0 - std::pow(double(step), -config_.decay_exponent);
  for (size_t t = 0; t < tensors.size(); ++t) {
    const size_t lo = std::max(begin_, tensors[t].offset), hi = std::min(end_, tensors[t].offset + tensors[t].size());
    if (lo >= hi) continue;
    const double scale = lr * std::max(palm_choices::kParameterScaleFloor, tensor_rms[t]);
    for (size_t i = lo; i < hi; ++i) {
      const size_t j = i - begin_;
      const double g = double(grads[j]) * clip_scale;
      const double v = beta2 * v_[j] + (1.0 - beta2) * (g * g + palm_choices::kSecondMomentEpsilon);
      const double m = config_.beta1 * m_[j] + (1.0 - config_.beta1) * g;
      v_[j] = T(v);
      m_[j] = T(m);
      const double p = params[i];
      params[i] = T(p - scale * m / std::sqrt(v) - lr * lr * p);
    }
  }
}

template <class T>
std::vector<double> sum_of_squares_per_tensor(const T* values, size_t begin, size_t end,
                                              const std::vector<TensorInfo>& tensors) {
  std::vector<double> sums(tensors.size(), 0.0);
  for (size_t t = 0; t < tensors.size(); ++t) {
    const size_t lo = std::max(begin, tensors[t].offset), hi = std::min(end, tensors[t].offset + tensors[t].size());
    for (size_t i = lo; i < hi; ++i) sums[t] += double(values[i - begin]) * values[i - begin];
  }
  return sums;
}

template class Adafactor<float>;
template class Adafactor<double>;
template std::vector<double> sum_of_squares_per_tensor<float>(const float*, size_t, size_t, const std::vector<TensorInfo>&);
template std::vector<double> sum_of_squares_per_tensor<double>(const double*, size_t, size_t, const std::vector<TensorInfo>&);

}  // namespace palmsim
