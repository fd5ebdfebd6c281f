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

MoeLayerParameters moe_layer_parameters(const ModelSpec& m) {
  MoeLayerParameters p;
  if (!m.moe.sparse()) return p;
  const int64_t expert = (ffn_is_gated(m.ffn) ? 3 : 2) * m.d_model * m.moe.expert_d_ff;
  p.router = m.d_model * m.moe.n_experts;
  p.experts = m.moe.n_experts * expert;
  p.shared = m.moe.shared_experts * expert;
  p.active_experts = m.moe.top_k * expert;
  return p;
}

namespace {
// A MoE layer: attention and norms as a dense layer, the mixture instead of the dense MLP.
int64_t moe_layer_total(const ModelSpec& m, bool active) {
  const LayerParameters dense = layer_parameters(m);
  const MoeLayerParameters e = moe_layer_parameters(m);
  return dense.attention + dense.norms + (active ? e.active() : e.total());
}
int64_t layers_total(const ModelSpec& m, bool active) {
  const int moe = m.moe_layers();
  return int64_t(m.n_layers - moe) * layer_parameters(m).total() + int64_t(moe) * moe_layer_total(m, active);
}
}  // namespace

double mean_layer_parameters(const ModelSpec& m) { return double(layers_total(m, false)) / m.n_layers; }

double mean_expert_parameters(const ModelSpec& m) {
  return double(m.moe_layers()) * double(moe_layer_parameters(m).experts) / m.n_layers;
}

int64_t embedding_parameters(const ModelSpec& m) {
  return (m.tied_embeddings ? 1 : 2) * m.vocab * m.d_model;
}

int64_t parameter_count(const ModelSpec& m) {
  const int64_t final_norm = m.d_model * (m.biases ? 2 : 1);
  return layers_total(m, false) + embedding_parameters(m) + final_norm;
}

int64_t factored_second_moment_elements(const ModelSpec& m) {
  const int64_t d = m.d_model, hq = int64_t(m.n_heads) * m.head_dim, kvq = int64_t(m.n_kv_heads) * m.head_dim;
  const int gates = ffn_is_gated(m.ffn) ? 2 : 1;
  auto ffn = [&](int64_t ff) { return gates * (d + ff) + (ff + d); };
  const LayerParameters dense = layer_parameters(m);
  // What layer_parameters counts beyond the matrices: norm scales and biases, kept whole.
  ModelSpec no_bias = m;
  no_bias.biases = false;
  const LayerParameters matrices = layer_parameters(no_bias);
  const int64_t vectors = dense.total() - matrices.attention - matrices.mlp;
  const int64_t attention = (d + hq) + 2 * (d + kvq) + (hq + d);
  const int64_t moe = m.moe_layers();
  int64_t total = int64_t(m.n_layers) * (attention + vectors) - moe * (dense.mlp - matrices.mlp);
  total += int64_t(m.n_layers - moe) * ffn(m.d_ff);
  if (moe > 0)
    total += moe * ((d + m.moe.n_experts) + (m.moe.n_experts + m.moe.shared_experts) * ffn(m.moe.expert_d_ff));
  total += (m.tied_embeddings ? 1 : 2) * (m.vocab + d) + d * (m.biases ? 2 : 1);
  return total;
}

int64_t active_parameter_count(const ModelSpec& m) {
  const int64_t final_norm = m.d_model * (m.biases ? 2 : 1);
  return layers_total(m, true) + embedding_parameters(m) + final_norm;
}

int64_t weight_matrix_parameters(const ModelSpec& m) {
  ModelSpec no_bias = m;
  no_bias.biases = false;
  const LayerParameters w = layer_parameters(no_bias);
  return m.n_layers * (w.attention + w.mlp) + embedding_parameters(m);  // dense models (PaLM Table 1)
}

double attention_flops_per_token(const ModelSpec& m) {
  return 12.0 * m.n_layers * m.n_heads * double(m.head_dim) * double(m.seq_len);
}

double model_flops_per_token(const ModelSpec& m) {
  return 6.0 * double(active_parameter_count(m)) + attention_flops_per_token(m);
}

double recompute_flops_per_token(const ModelSpec& m, Recompute r) {
  const double attention_forward = attention_flops_per_token(m) / 3.0;
  switch (r) {
    case Recompute::none: return 0.0;
    case Recompute::selective:
    case Recompute::minimal: return attention_forward;  // element-wise recompute has no matmul FLOPs
    case Recompute::full:
      return 2.0 * double(layers_total(m, true)) + attention_forward;
    case Recompute::palm: return 0.75 * 2.0 * double(active_parameter_count(m)) + attention_forward;
  }
  return 0.0;
}

double hardware_flops_per_token(const ModelSpec& m, Recompute r) {
  return model_flops_per_token(m) + recompute_flops_per_token(m, r);
}

double flops_utilization(double tokens_per_s, double flops_per_token, double peak_flops_per_s) {
  return tokens_per_s * flops_per_token / peak_flops_per_s;
}

}  // namespace palmsim
