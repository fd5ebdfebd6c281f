#pragma once
// Parameter and FLOP accounting (PaLM App. B). Model FLOPs per token = 6N + 12 L H Q T, with N all
// parameters; hardware FLOPs add what recomputation executes again.
#include "model/layout.h"
#include "model/model_spec.h"

#include <cstdint>

namespace palmsim {

struct LayerParameters {
  int64_t attention = 0;  // q, k, v and output projections (+ biases)
  int64_t mlp = 0;        // two or three FFN matrices (+ biases)
  int64_t norms = 0;      // LayerNorm scale (+ bias)
  int64_t total() const { return attention + mlp + norms; }
};

LayerParameters layer_parameters(const ModelSpec& m);
int64_t embedding_parameters(const ModelSpec& m);  // V*d_model, twice when untied
int64_t parameter_count(const ModelSpec& m);       // N, all parameters
// Weight matrices and embeddings only: what PaLM Table 1 counts (540.35 B; with the LayerNorm
// scales, 0.0004 % more, the total prints as 540.36 B).
int64_t weight_matrix_parameters(const ModelSpec& m);

// 12 L H Q T: attention score and context FLOPs per token, forward and backward (PaLM App. B).
double attention_flops_per_token(const ModelSpec& m);
// 6N + 12 L H Q T.
double model_flops_per_token(const ModelSpec& m);
// FLOPs recomputation adds per token: selective = attention forward (4 L H Q T); full = forward of
// every layer (2 N_layers + 4 L H Q T); palm = 75 % of the non-attention forward (1.5 N) + attention
// forward. Reproduces PaLM Table 22 (8B/62B selective; 540B palm).
double recompute_flops_per_token(const ModelSpec& m, Recompute r);
double hardware_flops_per_token(const ModelSpec& m, Recompute r);

}  // namespace palmsim
