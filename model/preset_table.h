#pragma once
// Looks a name up in a preset table; an unknown name is an InputError that lists the allowed ones.
#include "model/input_error.h"

#include <map>
#include <string>
#include <vector>

namespace palmsim {

template <class T>
std::vector<std::string> preset_names(const std::map<std::string, T>& table) {
  std::vector<std::string> names;
  for (const auto& entry : table) names.push_back(entry.first);
  return names;
}

template <class T>
const T& find_preset(const std::map<std::string, T>& table, const std::string& name,
                     const std::string& field, const char* what) {
  auto it = table.find(name);
  if (it != table.end()) return it->second;
  std::string allowed;
  for (const auto& entry : table) allowed += (allowed.empty() ? "" : ", ") + entry.first;
  throw InputError(field, "unknown " + std::string(what) + " '" + name + "'; allowed: " + allowed);
}

}  // namespace palmsim
