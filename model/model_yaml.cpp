#include "model/model_yaml.h"

#include "model/input_error.h"
#include "model/yaml_fields.h"

namespace palmsim {

ModelSpec parse_model_node(const YAML::Node& node) {
  if (node.IsScalar()) {
    ModelSpec m = model_preset(node.Scalar());
    return m;
  }
  check_keys(node, "model",
             {"preset", "name", "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff",
              "ffn", "vocab", "seq_len", "parallel_block", "tied_embeddings", "biases", "dropout", "rope", "moe"});
  ModelSpec m;
  m.name = "custom";
  if (node["preset"]) m = model_preset(read_string(node["preset"], "model.preset"));
  if (node["name"]) m.name = read_string(node["name"], "model.name");
  auto int_field = [&](const char* key, auto& out) {
    if (node[key]) out = read_int(node[key], std::string("model.") + key);
  };
  int_field("n_layers", m.n_layers);
  int_field("d_model", m.d_model);
  int_field("n_heads", m.n_heads);
  int_field("n_kv_heads", m.n_kv_heads);
  int_field("head_dim", m.head_dim);
  int_field("d_ff", m.d_ff);
  int_field("vocab", m.vocab);
  int_field("seq_len", m.seq_len);
  if (node["ffn"]) m.ffn = parse_ffn(read_string(node["ffn"], "model.ffn"), "model.ffn");
  if (node["parallel_block"]) m.parallel_block = read_bool(node["parallel_block"], "model.parallel_block");
  if (node["tied_embeddings"]) m.tied_embeddings = read_bool(node["tied_embeddings"], "model.tied_embeddings");
  if (node["biases"]) m.biases = read_bool(node["biases"], "model.biases");
  if (node["dropout"]) m.dropout = read_bool(node["dropout"], "model.dropout");
  if (node["rope"]) m.rope = read_bool(node["rope"], "model.rope");
  if (const YAML::Node e = node["moe"]) {
    if (!e.IsMap()) throw InputError("model.moe", "must be a map (n_experts, top_k, expert_d_ff, ...)");
    check_keys(e, "model.moe",
               {"n_experts", "top_k", "expert_d_ff", "layer_freq", "shared_experts", "capacity_factor", "imbalance"});
    auto moe_int = [&](const char* key, auto& out) {
      if (e[key]) out = read_int(e[key], std::string("model.moe.") + key);
    };
    moe_int("n_experts", m.moe.n_experts);
    moe_int("top_k", m.moe.top_k);
    moe_int("expert_d_ff", m.moe.expert_d_ff);
    moe_int("layer_freq", m.moe.layer_freq);
    moe_int("shared_experts", m.moe.shared_experts);
    if (e["capacity_factor"]) m.moe.capacity_factor = read_double(e["capacity_factor"], "model.moe.capacity_factor");
    if (e["imbalance"]) m.moe.imbalance = read_double(e["imbalance"], "model.moe.imbalance");
  }
  check_model(m);
  return m;
}

}  // namespace palmsim
