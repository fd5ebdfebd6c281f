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

// A dense layer (the MLP of d_ff); a mixture-of-experts layer replaces its MLP by moe_layer_parameters.
LayerParameters layer_parameters(const ModelSpec& m);
// A mixture-of-experts layer's MLP: the router (d_model x n_experts), every routed expert, the
// shared experts, and the top_k experts one token uses.
struct MoeLayerParameters {
  int64_t router = 0, experts = 0, shared = 0, active_experts = 0;
  int64_t total() const { return router + experts + shared; }
  int64_t active() const { return router + active_experts + shared; }
};
MoeLayerParameters moe_layer_parameters(const ModelSpec& m);
// Per layer, averaged over the model's layers (dense and MoE): all parameters, and the routed
// experts' share alone (what expert parallelism splits).
double mean_layer_parameters(const ModelSpec& m);
double mean_expert_parameters(const ModelSpec& m);
// Parameters one token's forward pass uses: N for a dense model, top_k experts for a sparse one.
// Model FLOPs count these (6 N_active + 12 L H Q T).
int64_t active_parameter_count(const ModelSpec& m);
int64_t embedding_parameters(const ModelSpec& m);  // V*d_model, twice when untied
int64_t parameter_count(const ModelSpec& m);       // N, all parameters
// Elements of a factored second moment (Adafactor): rows + columns of every weight matrix (the
// gated FFN's gate and up halves as two matrices, every expert its own), vectors whole.
int64_t factored_second_moment_elements(const ModelSpec& m);
// Weight matrices and embeddings only: what PaLM Table 1 counts (540.35 B; with the LayerNorm
// scales, 0.0004 % more, the total prints as 540.36 B).
int64_t weight_matrix_parameters(const ModelSpec& m);

// 12 L H Q T: attention score and context FLOPs per token, forward and backward (PaLM App. B).
double attention_flops_per_token(const ModelSpec& m);
// 6N + 12 L H Q T (N active: a sparse model counts the experts a token uses).
double model_flops_per_token(const ModelSpec& m);
// FLOPs recomputation adds per token: selective = attention forward (4 L H Q T); full = forward of
// every layer (2 N_layers + 4 L H Q T); palm = 75 % of the non-attention forward (1.5 N) + attention
// forward. Reproduces PaLM Table 22 (8B/62B selective; 540B palm).
double recompute_flops_per_token(const ModelSpec& m, Recompute r);
double hardware_flops_per_token(const ModelSpec& m, Recompute r);
// FLOP utilisation: the rate `tokens_per_s` implies at `flops_per_token` over the peak rate of the
// chips that ran them. Model FLOPs per token give MFU, hardware FLOPs HFU (PaLM App. B). The one
// formula behind predict, simulate, validate, the trainers and bench-step.
double flops_utilization(double tokens_per_s, double flops_per_token, double peak_flops_per_s);

}  // namespace palmsim
