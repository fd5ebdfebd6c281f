#pragma once
// Softmax cross-entropy with PaLM's auxiliary z-loss (Sec. 5): per token
//   loss = log Z - z[target] + w * (log Z)^2,   Z = sum exp(z),
// averaged over the tokens. Forward and backward are separate ops (the StepPlan times
// loss.fwd and loss.bwd); forward saves log Z per row for backward.
#include <cstdint>

namespace palmsim::cpu {

// Returns the mean loss (with z-loss); fills log_z [rows] and, if given, the mean plain
// cross-entropy (nats per token) in *plain_ce.
template <class T>
double cross_entropy_forward(const T* logits, const int32_t* targets, T* log_z, int64_t rows,
                             int64_t vocab, double z_loss_weight, double* plain_ce = nullptr);
// dz_i = (softmax_i * (1 + 2 w log Z) - [i == target]) / rows.
template <class T>
void cross_entropy_backward(const T* logits, const int32_t* targets, const T* log_z, T* dlogits,
                            int64_t rows, int64_t vocab, double z_loss_weight);

}  // namespace palmsim::cpu
