#pragma once
// Small typed readers for YAML scalars that turn every conversion failure into an InputError that
// names the field, so scenario and config parsers never leak a yaml-cpp exception to the user.
#include "model/input_error.h"

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace palmsim {

int64_t read_int(const YAML::Node& node, const std::string& field);
double read_double(const YAML::Node& node, const std::string& field);
bool read_bool(const YAML::Node& node, const std::string& field);
std::string read_string(const YAML::Node& node, const std::string& field);

// `key=value;key=value` (the validation CSV's override cells) as pairs in order; an item without
// '=' or with an empty key is an InputError naming `field` and `hint`.
std::vector<std::pair<std::string, std::string>> split_key_values(const std::string& text, const std::string& field,
                                                                  const std::string& hint);

// Throws InputError for the first key of `map` that is not in `allowed`.
void check_keys(const YAML::Node& map, const std::string& section,
                std::initializer_list<const char*> allowed);

}  // namespace palmsim
