#pragma once
// Reads the `model:` section of a scenario: a preset name, or a map with `preset:` and/or explicit
// fields that override it. Unknown keys and bad values throw InputError naming the field.
#include "model/model_spec.h"

#include <yaml-cpp/yaml.h>

namespace palmsim {

ModelSpec parse_model_node(const YAML::Node& node);

}  // namespace palmsim
