// The model section of a scenario: presets, overrides and errors that name the field.
#include "model/input_error.h"
#include "model/model_yaml.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

std::string error_field(const std::string& yaml) {
  try {
    parse_model_node(YAML::Load(yaml));
  } catch (const InputError& e) {
    return e.field();
  }
  return "";
}

TEST(ModelYaml, PresetAndOverride) {
  const ModelSpec m = parse_model_node(YAML::Load("{preset: palm-8b, n_layers: 4, parallel_block: false}"));
  EXPECT_EQ(m.n_layers, 4);
  EXPECT_EQ(m.d_model, 4096);
  EXPECT_FALSE(m.parallel_block);
}

TEST(ModelYaml, ErrorsNameTheField) {
  EXPECT_EQ(error_field("palm-9b"), "model.preset");
  EXPECT_EQ(error_field("{preset: palm-8b, n_layer: 4}"), "model.n_layer");
  EXPECT_EQ(error_field("{preset: palm-8b, d_model: -5}"), "model.d_model");
  EXPECT_EQ(error_field("{preset: palm-8b, d_model: big}"), "model.d_model");
  EXPECT_EQ(error_field("{preset: palm-8b, ffn: swish}"), "model.ffn");
  EXPECT_EQ(error_field("{preset: palm-8b, n_kv_heads: 3}"), "model.n_kv_heads");
}

}  // namespace
}  // namespace palmsim
