#pragma once
// The architecture of a dense decoder-only language model, and the presets palmsim knows.
// PaLM (Chowdhery et al. 2022, Table 1 and Sec. 2): multi-query attention, SwiGLU, parallel block,
// tied embeddings, no biases, vocab 256000, head dim 256, d_ff = 4 d_model.
#include <cstdint>
#include <string>
#include <vector>

namespace palmsim {

enum class Ffn { gelu, relu, swiglu, geglu };

struct ModelSpec {
  std::string name;
  int n_layers = 0;
  int64_t d_model = 0;
  int n_heads = 0;       // query heads (H)
  int n_kv_heads = 0;    // 1 = multi-query, n_heads = multi-head, between = grouped-query
  int64_t head_dim = 0;  // Q
  int64_t d_ff = 0;
  Ffn ffn = Ffn::swiglu;
  int64_t vocab = 0;
  int64_t seq_len = 0;  // T
  bool parallel_block = true;   // y = x + MLP(LN(x)) + Attn(LN(x)) instead of serial
  bool tied_embeddings = true;  // input and output embedding share one matrix
  bool biases = false;          // biases in dense layers and LayerNorm
  bool dropout = false;         // dropout layers present (stores masks; Megatron GPT yes, PaLM no)
  bool rope = true;             // rotary position embedding (PaLM, Llama); GPT learns positions
};

// Gated FFNs (SwiGLU, GeGLU) have three matrices (W, V, W2); the others two.
bool ffn_is_gated(Ffn ffn);
const char* to_string(Ffn ffn);
Ffn parse_ffn(const std::string& text, const std::string& field);

// Presets: palm-8b, palm-62b, palm-540b, gpt3-175b (and other GPT/Megatron sizes), llama2-70b.
ModelSpec model_preset(const std::string& name);
std::vector<std::string> model_preset_names();

// Throws InputError naming the first field that is out of range.
void check_model(const ModelSpec& model);

}  // namespace palmsim
