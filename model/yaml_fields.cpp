#include "model/yaml_fields.h"

namespace palmsim {

namespace {
void require_scalar(const YAML::Node& node, const std::string& field, const char* what) {
  if (!node.IsScalar()) throw InputError(field, std::string("must be ") + what);
}
}  // namespace

int64_t read_int(const YAML::Node& node, const std::string& field) {
  require_scalar(node, field, "an integer");
  try {
    return node.as<int64_t>();
  } catch (const YAML::Exception&) {
    throw InputError(field, "must be an integer, got '" + node.Scalar() + "'");
  }
}

double read_double(const YAML::Node& node, const std::string& field) {
  require_scalar(node, field, "a number");
  try {
    return node.as<double>();
  } catch (const YAML::Exception&) {
    throw InputError(field, "must be a number, got '" + node.Scalar() + "'");
  }
}

bool read_bool(const YAML::Node& node, const std::string& field) {
  require_scalar(node, field, "true or false");
  const std::string& s = node.Scalar();
  if (s == "true" || s == "1") return true;
  if (s == "false" || s == "0") return false;
  throw InputError(field, "must be true or false, got '" + s + "'");
}

std::string read_string(const YAML::Node& node, const std::string& field) {
  require_scalar(node, field, "a string");
  return node.Scalar();
}

std::vector<std::pair<std::string, std::string>> split_key_values(const std::string& text, const std::string& field,
                                                                  const std::string& hint) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(';', start), text.size());
    const std::string item = text.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw InputError(field, "'" + item + "' is not key=value; " + hint);
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

void check_keys(const YAML::Node& map, const std::string& section,
                std::initializer_list<const char*> allowed) {
  if (!map.IsMap()) throw InputError(section, "must be a map of keys to values");
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    bool known = false;
    std::string list;
    for (const char* a : allowed) {
      known = known || key == a;
      list += (list.empty() ? "" : ", ") + std::string(a);
    }
    if (!known) throw InputError(section + "." + key, "unknown key; allowed: " + list);
  }
}

}  // namespace palmsim
