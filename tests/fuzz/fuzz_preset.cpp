// A chip, system or software-stack preset file: the same YAML parsed as each of the three kinds
// (hwmodels/chips, systems, stacks), the way `system: {file: ...}` and shipped presets are read.
#include "hwmodels/chip.h"
#include "hwmodels/stack.h"
#include "hwmodels/system.h"
#include "tests/fuzz/fuzz_input.h"

#include <yaml-cpp/yaml.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const YAML::Exception&) {
    return 0;  // not YAML: the file readers turn this into an InputError before any parser runs
  }
  palmsim::fuzz::refusal_allowed([&] { (void)palmsim::parse_chip(root, "chip"); });
  palmsim::fuzz::refusal_allowed([&] { (void)palmsim::parse_system(root, "system"); });
  palmsim::fuzz::refusal_allowed([&] { (void)palmsim::parse_stack(root, "stack"); });
  return 0;
}
