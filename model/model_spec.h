#pragma once
// The architecture of a dense decoder-only language model, and the presets palmsim knows.
// PaLM (Chowdhery et al. 2022, Table 1 and Sec. 2): multi-query attention, SwiGLU, parallel block,
// tied embeddings, no biases, vocab 256000, head dim 256, d_ff = 4 d_model.
#include <cstdint>
#include <string>
#include <vector>

namespace palmsim {

enum class Ffn { gelu, relu, swiglu, geglu };

// Mixture of experts (Switch, GLaM, Mixtral, gpt-oss, Qwen3-MoE): in every layer_freq-th layer
// (layers layer_freq, 2 layer_freq, ...) the MLP is n_experts experts of expert_d_ff, each token
// sent to top_k of them by a learned router, plus shared experts every token uses (DeepSeek).
// The distinct groups a token's top_k experts fall in, on average, with `experts` split evenly
// into `groups` groups and each token's top_k a uniform draw of distinct experts (a balanced
// router): groups x (1 - C(experts - experts/groups, top_k) / C(experts, top_k)); 1 for one group,
// top_k when every expert is a group of its own. `groups` divides `experts`.
double groups_per_token(int experts, int top_k, int groups);

// The routing an expert all-to-all's tokens follow, where the dispatch sends a token once per
// rank holding any of its experts (TokenDispatch::per_rank in model/layout.h): the network's share
// is then priced per node (DeepEP sends a token once to each node, on to its ranks over NVLink).
// experts 0: a row per chosen expert, as the bytes say.
struct PerRankRouting {
  int experts = 0, top_k = 0;
  bool active() const { return experts > 0; }
};

struct MoeSpec {
  int n_experts = 0;         // 0: a dense model
  int top_k = 0;
  int64_t expert_d_ff = 0;
  int layer_freq = 1;
  int shared_experts = 0;    // each of expert_d_ff, always active
  // Tokens an expert computes, over its fair share (tokens x top_k / n_experts): 0 = dropless,
  // as many as routed; otherwise the capacity factor, up to which every expert's buffer is padded.
  double capacity_factor = 0;
  // Dropless: tokens on the busiest expert-parallel rank over the mean (gamma); 1 = balanced, as
  // the published runs force it ("fake balanced gate"), above 1 a real router's skew.
  double imbalance = 1;
  bool sparse() const { return n_experts > 0; }
  // Rows the busiest expert rank computes over its fair share: the capacity factor (padded
  // buffers) or, dropless, the imbalance. What the experts' GEMMs, memory and casts are sized by.
  double load() const { return capacity_factor > 0 ? capacity_factor : imbalance; }
  // Distinct ranks a token's experts live on (groups_per_token over `ranks`): the rows a per-rank
  // dispatch sends a token (TokenDispatch::per_rank in model/layout.h).
  double ranks_per_token(int ranks) const { return groups_per_token(n_experts, top_k, ranks); }
};

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
  MoeSpec moe;                  // n_experts 0: every layer's MLP is dense (d_ff)
  // Layers whose MLP is the mixture of experts (0 for a dense model).
  int moe_layers() const { return moe.sparse() ? n_layers / moe.layer_freq : 0; }
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

// The token-drop capacity factors palmsim models (MoeSpec::capacity_factor, 0 aside: dropless),
// and what an error about one says is allowed.
inline bool capacity_factor_in_range(double c) { return c >= 1 && c <= 16; }
constexpr const char* kCapacityFactorRange = "1..16";

}  // namespace palmsim
