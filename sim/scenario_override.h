#pragma once
// One change to a scenario, as `palmsim sweep --set KEY=V1,V2` and the Python module give it: KEY
// is a dotted path into the scenario's YAML (`layout.tp`, `model.parallel_block`, `system.preset`,
// `system.chip.hbm_gib`, `stack.host_us_per_kernel`, `training.global_batch`), VALUE a YAML scalar
// (or a flow map/list `{...}`/`[...]`). A section written as a preset name (`model: palm-540b`)
// becomes `{preset: palm-540b}` before one of its fields is set, so presets' fields can be
// overridden too. What the key and value mean is checked where the scenario is parsed, with that
// parser's message naming the field.
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace palmsim {

struct ScenarioOverride {
  std::string key;    // dotted path
  std::string value;  // as written
};

// The values of one --set: "KEY=V1,V2,..." split at commas outside {...} and [...]. InputError
// naming `option` for a missing '=', an empty key or an empty value.
std::pair<std::string, std::vector<std::string>> parse_override_values(const std::string& text,
                                                                       const std::string& option);

// Sets `key` to `value` in a scenario's YAML tree (changed in place: clone first to keep the
// original). InputError naming the key when a path component is a value rather than a section.
void apply_override(YAML::Node& root, const std::string& key, const std::string& value);

// A YAML node for a value as written: a flow map/list is parsed, anything else stays a scalar.
YAML::Node override_value_node(const std::string& value, const std::string& key);

}  // namespace palmsim
