#include "model/model_spec.h"

#include "model/input_error.h"
#include "model/preset_table.h"

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
}

}  // namespace palmsim
