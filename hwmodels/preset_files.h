#pragma once
// The shipped preset files, built into the binary by hwmodels/CMakeLists.txt: file stem -> YAML
// text, for chips (hwmodels/chips/), systems (hwmodels/systems/) and software stacks
// (hwmodels/stacks/).
#include "model/input_error.h"

#include <yaml-cpp/yaml.h>

#include <map>
#include <string>

namespace palmsim {

enum class PresetKind { chips, systems, stacks };
const std::map<std::string, std::string>& shipped_preset_files(PresetKind kind);

// Parses every shipped file of one kind; a file must name itself after its stem.
template <class T>
std::map<std::string, T> load_presets(PresetKind kind, const std::string& folder,
                                      T (*parse)(const YAML::Node&, const std::string&)) {
  std::map<std::string, T> table;
  for (const auto& [stem, text] : shipped_preset_files(kind)) {
    const std::string field = folder + "/" + stem + ".yaml";
    T preset = parse(YAML::Load(text), field);
    if (preset.name != stem) throw InputError(field + ".name", "must be the file's name, '" + stem + "'");
    table.emplace(stem, preset);
  }
  return table;
}

}  // namespace palmsim
