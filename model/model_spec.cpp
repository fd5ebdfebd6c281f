#include "model/model_spec.h"

#include "model/input_error.h"
#include "model/preset_table.h"

#include <algorithm>
#include <map>

namespace palmsim {

bool ffn_is_gated(Ffn ffn) { return ffn == Ffn::swiglu || ffn == Ffn::geglu; }

const char* to_string(Ffn ffn) {
  switch (ffn) {
    case Ffn::gelu: return "gelu";
    case Ffn::relu: return "relu";
    case Ffn::swiglu: return "swiglu";
    case Ffn::geglu: return "geglu";
  }
  return "?";
}

Ffn parse_ffn(const std::string& text, const std::string& field) {
  if (text == "gelu") return Ffn::gelu;
  if (text == "relu") return Ffn::relu;
  if (text == "swiglu") return Ffn::swiglu;
  if (text == "geglu") return Ffn::geglu;
  throw InputError(field, "'" + text + "' is not an FFN; allowed: gelu, relu, swiglu, geglu");
}

namespace {

// PaLM Table 1: head dim 256, d_ff = 4 d_model, vocab 256000, sequence 2048.
ModelSpec palm(const std::string& name, int layers, int64_t d_model, int heads) {
  ModelSpec m;
  m.name = name;
  m.n_layers = layers;
  m.d_model = d_model;
  m.n_heads = heads;
  m.n_kv_heads = 1;
  m.head_dim = 256;
  m.d_ff = 4 * d_model;
  m.ffn = Ffn::swiglu;
  m.vocab = 256000;
  m.seq_len = 2048;
  m.parallel_block = true;
  m.tied_embeddings = true;
  m.biases = false;
  m.dropout = false;
  return m;
}

// GPT-3 / Megatron family: multi-head, GELU, serial block, vocab 51200, biases and dropout.
ModelSpec gpt(const std::string& name, int layers, int64_t d_model, int heads) {
  ModelSpec m;
  m.name = name;
  m.n_layers = layers;
  m.d_model = d_model;
  m.n_heads = heads;
  m.n_kv_heads = heads;
  m.head_dim = d_model / heads;
  m.d_ff = 4 * d_model;
  m.ffn = Ffn::gelu;
  m.vocab = 51200;
  m.seq_len = 2048;
  m.parallel_block = false;
  m.tied_embeddings = true;
  m.biases = true;
  m.dropout = true;
  m.rope = false;
  return m;
}

// Llama 2 70B: grouped-query attention (8 KV heads), SwiGLU, serial block, untied embeddings.
ModelSpec llama2_70b() {
  ModelSpec m;
  m.name = "llama2-70b";
  m.n_layers = 80;
  m.d_model = 8192;
  m.n_heads = 64;
  m.n_kv_heads = 8;
  m.head_dim = 128;
  m.d_ff = 28672;
  m.ffn = Ffn::swiglu;
  m.vocab = 32000;
  m.seq_len = 4096;
  m.parallel_block = false;
  m.tied_embeddings = false;
  m.biases = false;
  m.dropout = false;
  return m;
}

// Llama 3 405B (Llama 3 paper, Table 3): 126 layers, 16384 wide, 128 query / 8 KV heads, SwiGLU
// 53248, vocabulary 128256, trained at 8192 tokens.
ModelSpec llama3_405b() {
  ModelSpec m = llama2_70b();
  m.name = "llama3-405b";
  m.n_layers = 126;
  m.d_model = 16384;
  m.n_heads = 128;
  m.n_kv_heads = 8;
  m.head_dim = 128;
  m.d_ff = 53248;
  m.vocab = 128256;
  m.seq_len = 8192;
  return m;
}

// Sparse models. A decoder like Llama's whose MLP is n_experts experts of expert_d_ff (d_ff set to
// the same, for any dense layer), top_k per token, every layer unless said otherwise.
ModelSpec moe_model(const char* name, int layers, int64_t d, int heads, int kv, int64_t head_dim, int experts,
                    int top_k, int64_t expert_ff, int64_t vocab, int64_t seq, bool tied) {
  ModelSpec m = llama2_70b();
  m.name = name;
  m.n_layers = layers;
  m.d_model = d;
  m.n_heads = heads;
  m.n_kv_heads = kv;
  m.head_dim = head_dim;
  m.d_ff = expert_ff;
  m.vocab = vocab;
  m.seq_len = seq;
  m.tied_embeddings = tied;
  m.moe.n_experts = experts;
  m.moe.top_k = top_k;
  m.moe.expert_d_ff = expert_ff;
  return m;
}

const std::map<std::string, ModelSpec>& presets() {
  static const std::map<std::string, ModelSpec> table = {
      {"palm-8b", palm("palm-8b", 32, 4096, 16)},
      {"palm-62b", palm("palm-62b", 64, 8192, 32)},
      {"palm-540b", palm("palm-540b", 118, 18432, 48)},
      {"gpt3-175b", gpt("gpt3-175b", 96, 12288, 96)},
      {"megatron-22b", gpt("megatron-22b", 48, 6144, 64)},
      {"mt-nlg-530b", gpt("mt-nlg-530b", 105, 20480, 128)},
      {"megatron-1t", gpt("megatron-1t", 128, 25600, 160)},
      {"llama2-70b", llama2_70b()},
      // gpt-oss-120b (OpenAI model card, Aug 2025): 36 layers of 2880, 64 query / 8 KV heads of 64,
      // 128 experts of 2880, top-4, o200k vocabulary 201088, untied; 116.8 B total, 5.1 B active
      // without embeddings. Its alternating banded (128-token) attention layers are priced as full.
      {"gpt-oss-120b", moe_model("gpt-oss-120b", 36, 2880, 64, 8, 64, 128, 4, 2880, 201088, 4096, false)},
      // Qwen3-30B-A3B (Qwen3 technical report, Table 2): 48 layers of 2048, 32 / 4 heads of 128,
      // 128 experts of 768, top-8, vocabulary 151936.
      {"qwen3-30b-a3b", moe_model("qwen3-30b-a3b", 48, 2048, 32, 4, 128, 128, 8, 768, 151936, 4096, false)},
      // Qwen3-235B-A22B (the same table): 94 layers of 4096, 64 / 4 heads of 128, 128 experts of
      // 1536, top-8, vocabulary 151936; 235 B total, 22 B active.
      {"qwen3-235b-a22b", moe_model("qwen3-235b-a22b", 94, 4096, 64, 4, 128, 128, 8, 1536, 151936, 4096, false)},
      // Mixtral 8x7B (Jiang et al. 2024, Table 1): 32 layers of 4096, 32 / 8 heads of 128, 8 experts
      // of 14336, top-2, vocabulary 32000, 32768-token context.
      {"mixtral-8x7b", moe_model("mixtral-8x7b", 32, 4096, 32, 8, 128, 8, 2, 14336, 32000, 32768, false)},
      {"llama3-405b", llama3_405b()},
  };
  return table;
}

}  // namespace

std::vector<std::string> model_preset_names() { return preset_names(presets()); }

ModelSpec model_preset(const std::string& name) {
  return find_preset(presets(), name, "model.preset", "model");
}

void check_model(const ModelSpec& m) {
  auto positive = [](const char* field, int64_t v) {
    if (v <= 0) throw InputError(field, "must be a positive integer, got " + std::to_string(v));
  };
  positive("model.n_layers", m.n_layers);
  positive("model.d_model", m.d_model);
  positive("model.n_heads", m.n_heads);
  positive("model.n_kv_heads", m.n_kv_heads);
  positive("model.head_dim", m.head_dim);
  positive("model.d_ff", m.d_ff);
  positive("model.vocab", m.vocab);
  positive("model.seq_len", m.seq_len);
  if (m.n_heads % m.n_kv_heads != 0)
    throw InputError("model.n_kv_heads", "must divide n_heads (" + std::to_string(m.n_heads) +
                                             "), got " + std::to_string(m.n_kv_heads));
  const MoeSpec& e = m.moe;
  if (e.n_experts < 0) throw InputError("model.moe.n_experts", "must be >= 0 (0: dense), got " + std::to_string(e.n_experts));
  if (!e.sparse()) return;
  if (e.n_experts < 2) throw InputError("model.moe.n_experts", "a mixture needs at least 2 experts, got 1");
  if (e.top_k < 1 || e.top_k > e.n_experts)
    throw InputError("model.moe.top_k", "must be 1.." + std::to_string(e.n_experts) + ", got " + std::to_string(e.top_k));
  positive("model.moe.expert_d_ff", e.expert_d_ff);
  if (e.layer_freq < 1 || e.layer_freq > m.n_layers)
    throw InputError("model.moe.layer_freq", "must be 1..n_layers (" + std::to_string(m.n_layers) + "), got " +
                                                 std::to_string(e.layer_freq));
  if (e.shared_experts < 0) throw InputError("model.moe.shared_experts", "must be >= 0");
  if (!(e.capacity_factor == 0 || capacity_factor_in_range(e.capacity_factor)))
    throw InputError("model.moe.capacity_factor", std::string("must be 0 (dropless) or ") + kCapacityFactorRange);
  if (!(e.imbalance >= 1 && e.imbalance <= 64))
    throw InputError("model.moe.imbalance", "must be 1..64 (busiest expert rank's tokens over the mean)");
}

double groups_per_token(int experts, int top_k, int groups) {
  // The chance that none of a token's top_k draws lands in a given group's experts/groups experts:
  // the draws avoid them one after another, without replacement.
  const int others = experts - experts / groups;
  double missed = 1.0;
  for (int i = 0; i < top_k; ++i) missed *= double(std::max(0, others - i)) / double(experts - i);
  return groups * (1.0 - missed);
}

}  // namespace palmsim
