#include "model/accounting.h"

namespace palmsim {

LayerParameters layer_parameters(const ModelSpec& m) {
  const int64_t d = m.d_model, q = m.head_dim;
  const int64_t hq = int64_t(m.n_heads) * q, kvq = int64_t(m.n_kv_heads) * q;
  LayerParameters p;
  p.attention = d * hq + 2 * d * kvq + hq * d;
  p.mlp = (ffn_is_gated(m.ffn) ? 3 : 2) * d * m.d_ff;
  const int64_t norms_per_layer = m.parallel_block ? 1 : 2;
  p.norms = norms_per_layer * d * (m.biases ? 2 : 1);
  if (m.biases) {
    p.attention += hq + 2 * kvq + d;
    p.mlp += (ffn_is_gated(m.ffn) ? 2 : 1) * m.d_ff + d;
  }
  return p;
}

int64_t embedding_parameters(const ModelSpec& m) {
  return (m.tied_embeddings ? 1 : 2) * m.vocab * m.d_model;
}

int64_t parameter_count(const ModelSpec& m) {
  const int64_t final_norm = m.d_model * (m.biases ? 2 : 1);
  return m.n_layers * layer_parameters(m).total() + embedding_parameters(m) + final_norm;
}

int64_t weight_matrix_parameters(const ModelSpec& m) {
  ModelSpec no_bias = m;
  no_bias.biases = false;
  const LayerParameters w = layer_parameters(no_bias);
  return m.n_layers * (w.attention + w.mlp) + embedding_parameters(m);
}

double attention_flops_per_token(const ModelSpec& m) {
  return 12.0 * m.n_layers * m.n_heads * double(m.head_dim) * double(m.seq_len);
}

double model_flops_per_token(const ModelSpec& m) {
  return 6.0 * double(parameter_count(m)) + attention_flops_per_token(m);
}

double recompute_flops_per_token(const ModelSpec& m, Recompute r) {
  const double attention_forward = attention_flops_per_token(m) / 3.0;
  switch (r) {
    case Recompute::none: return 0.0;
    case Recompute::selective:
    case Recompute::minimal: return attention_forward;  // element-wise recompute has no matmul FLOPs
    case Recompute::full:
      return 2.0 * double(m.n_layers * layer_parameters(m).total()) + attention_forward;
    case Recompute::palm: return 0.75 * 2.0 * double(parameter_count(m)) + attention_forward;
  }
  return 0.0;
}

double hardware_flops_per_token(const ModelSpec& m, Recompute r) {
  return model_flops_per_token(m) + recompute_flops_per_token(m, r);
}

}  // namespace palmsim
