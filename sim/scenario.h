#pragma once
// A scenario file: the model, the system, the layout and the training batch, in the Calculon style
// of separate small sections a user can diff:
//
//   model: palm-540b            # a preset, or a map with preset: and/or explicit fields
//   system: {preset: tpu-v4-pod, chips: 6144, calibration: cal.json}
//                               # or {file: my-system.yaml}; either with per-field overrides such as
//                               # chip: {hbm_gib: 16}, torus: {link_gb_per_s: 50}, fat_tree: {...}
//   layout: {tp: 12, pp: 1, dp: 512, pods: 2, microbatch: 4, sp: true, sharding: fsdp,
//            recompute: palm, schedule: 1f1b}
//   training: {global_batch: 2048, optimizer: adafactor, precision: bf16}
//   stack: megatron-core        # optional: a shipped stack, {file: my.yaml}, or {preset:, ...fields}
//
// A `train:` section (the trainer's own settings: steps, learning rate, corpus; kernels/train_config.h)
// may sit beside them: a trainer config is a scenario.
#include "hwmodels/calibration.h"
#include "hwmodels/system.h"
#include "model/layout.h"
#include "model/memory.h"
#include "model/model_spec.h"

#include <yaml-cpp/yaml.h>

#include <functional>
#include <memory>
#include <string>

namespace palmsim {

// Training precision: bf16 or fp16 everywhere, or fp8 linear layers (the rest bf16).
enum class Precision { bf16, fp16, fp8 };
const char* to_string(Precision p);

struct Scenario {
  std::string path;
  ModelSpec model;
  System system;
  Layout layout;
  int64_t n_chips = 0;       // system.chips, or the layout's chips when it is not given
  int64_t system_chips = 0;  // system.chips as written; 0 when the layout gives the chip count
  int64_t global_batch = 0;
  Optimizer optimizer = Optimizer::adam;
  Precision precision = Precision::bf16;
  std::shared_ptr<const Calibration> calibration;  // null when the preset's defaults apply
  YAML::Node train;                                 // the trainer's section, if present
};

// Reads and checks a scenario; every problem is an InputError naming the field.
Scenario load_scenario(const std::string& path);
YAML::Node load_scenario_yaml(const std::string& path);  // the file's YAML, unchecked
Scenario parse_scenario(const YAML::Node& root, const std::string& path);

// The steps of parse_scenario, for callers that vary the layout of one parsed scenario (sweep):
// every section read and checked on its own, then the checks that tie the layout to the rest
// (pods of the system, legality for the model, chips and batch, what the stack can run).
Scenario parse_scenario_sections(const YAML::Node& root, const std::string& path);
Layout parse_layout(const YAML::Node& layout);  // an absent or null node: the default layout
// One layout field (`key` as in the file: tp, sharding, ...), its value read and checked now and
// applied to a Layout later; parse_layout is these setters over the file's fields.
using LayoutSetter = std::function<void(Layout&)>;
LayoutSetter layout_field_setter(const std::string& key, const YAML::Node& value);
// Without an explicit schedule: interleaved when vpp > 1, 1F1B otherwise.
void default_layout_schedule(Layout& layout, bool schedule_given);
void check_scenario_layout(const Scenario& scenario, const Layout& layout, int64_t n_chips);

// Applies a calibration's figures to the system's chip (peak, memory bandwidth); GEMM tables are
// read through ComputeModel.
void apply_calibration(System& system, const Calibration& calibration);

// Precision names accepted in scenarios and validation sets: bf16, fp16, fp8.
Precision parse_precision(const std::string& precision, const std::string& field);
// fp8 needs a chip with fp8 matrix units and a stack that runs its linears in fp8; InputError
// naming `field` otherwise.
void check_precision_supported(const Scenario& scenario, const std::string& field);

}  // namespace palmsim
