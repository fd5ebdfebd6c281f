#include "sim/scenario_override.h"

#include "model/input_error.h"

namespace palmsim {

std::pair<std::string, std::vector<std::string>> parse_override_values(const std::string& text,
                                                                       const std::string& option) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos)
    throw InputError(option, "'" + text + "' needs the form KEY=VALUE[,VALUE...], e.g. layout.tp=6,12,24");
  const std::string key = text.substr(0, eq);
  if (key.empty() || key.front() == '.' || key.back() == '.' || key.find("..") != std::string::npos)
    throw InputError(option, "'" + text + "' has no valid key before '='; give a dotted path such as layout.tp");
  std::vector<std::string> values;
  std::string current;
  int depth = 0;  // inside {...} or [...], commas belong to the value
  for (size_t i = eq + 1; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    if (c == ',' && depth == 0) {
      values.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  values.push_back(current);
  for (const std::string& v : values)
    if (v.empty()) throw InputError(option, "'" + text + "' has an empty value for " + key);
  if (depth != 0) throw InputError(option, "'" + text + "' has unbalanced brackets");
  return {key, values};
}

YAML::Node override_value_node(const std::string& value, const std::string& key) {
  if (value.front() != '{' && value.front() != '[') return YAML::Node(value);
  try {
    return YAML::Load(value);
  } catch (const YAML::Exception& e) {
    throw InputError(key, "'" + value + "' is not a valid YAML flow value: " + e.msg);
  }
}

void apply_override(YAML::Node& root, const std::string& key, const std::string& value) {
  YAML::Node node = root;  // handles, not copies: writes go into root
  std::string path;
  size_t start = 0;
  while (true) {
    const size_t dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (node.IsDefined() && !node.IsMap() && !node.IsNull())
      throw InputError(key, "'" + path + "' is a value, not a section; it has no field '" + part + "'");
    if (dot == std::string::npos) {
      node[part] = override_value_node(value, key);
      return;
    }
    YAML::Node child = node[part];
    // A top-level section written as a preset name (model: palm-540b) takes fields once it is the
    // map {preset: palm-540b}.
    if (path.empty() && child.IsScalar()) {
      YAML::Node section(YAML::NodeType::Map);
      section["preset"] = child.Scalar();
      node[part] = section;
      child.reset(node[part]);
    }
    path += (path.empty() ? "" : ".") + part;
    node.reset(child);
    start = dot + 1;
  }
}

}  // namespace palmsim
