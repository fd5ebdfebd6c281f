#include "sim/scenario.h"

#include "model/model_yaml.h"
#include "model/yaml_fields.h"

#include <filesystem>

namespace palmsim {

const char* to_string(Precision p) {
  switch (p) {
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
    case Precision::fp8: return "fp8";
  }
  return "?";
}

Precision parse_precision(const std::string& precision, const std::string& field) {
  if (precision == "bf16") return Precision::bf16;
  if (precision == "fp16") return Precision::fp16;
  if (precision == "fp8") return Precision::fp8;
  throw InputError(field, "'" + precision + "' is not a precision; allowed: bf16, fp16, fp8");
}

void check_precision_supported(const Scenario& s, const std::string& field) {
  if (s.precision != Precision::fp8) return;
  if (s.system.chip.fp8_peak_flops <= 0)
    throw InputError(field, "fp8 needs fp8 matrix units; " + s.system.chip.name + " has none");
  if (!s.system.stack.fp8) {
    std::string with;
    for (const std::string& n : stack_preset_names())
      if (stack_preset(n).fp8) with += (with.empty() ? "" : ", ") + n;
    throw InputError(field, "stack " + s.system.stack.name + " does not run fp8 linears; stacks that do: " + with);
  }
}

void apply_calibration(System& system, const Calibration& c) {
  if (c.peak_flops > 0) system.chip.peak_flops = c.peak_flops;
  if (c.memory_bytes > 0) system.chip.hbm_bytes = c.memory_bytes;
  if (c.memory_bytes_per_s > 0) {
    system.chip.hbm_bytes_per_s = c.memory_bytes_per_s;
    system.chip.memory_efficiency = 1.0;
  }
  if (system.fabric == Fabric::single_machine) system.shared_cores = c.reference.threads;
}

namespace {

// A YAML file a scenario names (a stack or system file); its problems name `field`.
YAML::Node load_yaml_file(const std::string& path, const std::string& field) {
  require_regular_file(path, field);
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw InputError(field, "'" + path + "' is not valid YAML (line " + std::to_string(e.mark.line + 1) + "): " + e.msg);
  }
}

// `stack: NAME`, `stack: {file: F.yaml, ...overrides}` or `stack: {preset: NAME, ...overrides}`;
// without file or preset the overrides apply to the system's default stack.
Stack parse_scenario_stack(const YAML::Node& n, const Stack& system_default, const std::string& path) {
  if (n.IsScalar()) return stack_preset(n.Scalar(), "stack");
  if (!n.IsMap()) throw InputError("stack", "must be a stack name or a map (preset: or file:, then fields)");
  if (n["preset"] && n["file"]) throw InputError("stack", "give preset: or file:, not both");
  Stack base = system_default;
  if (n["preset"]) base = stack_preset(read_string(n["preset"], "stack.preset"), "stack.preset");
  if (n["file"]) {
    std::filesystem::path f = read_string(n["file"], "stack.file");
    if (f.is_relative()) f = std::filesystem::path(path).parent_path() / f;
    base = parse_stack(load_yaml_file(f.string(), "stack.file"), "stack.file");
  }
  YAML::Node overrides = YAML::Clone(n);
  overrides.remove("preset");
  overrides.remove("file");
  return parse_stack_onto(base, overrides, "stack");
}

}  // namespace

namespace {
// The layout's fields, in the order they are read (and their errors reported).
constexpr std::initializer_list<const char*> kLayoutKeys = {"tp",  "pp",         "dp", "pods",     "cp",  "ep",     "etp", "vpp",
                                                            "microbatch", "sp", "account_ends", "sharding", "recompute", "schedule"};
}  // namespace

LayoutSetter layout_field_setter(const std::string& key, const YAML::Node& v) {
  const std::string field = "layout." + key;
  auto positive = [&] {
    const int64_t x = read_int(v, field);
    if (x < 1 || x > (1 << 24)) throw InputError(field, "must be a positive integer, got " + std::to_string(x));
    return int(x);
  };
  if (key == "tp") return [x = positive()](Layout& l) { l.tp = x; };
  if (key == "pp") return [x = positive()](Layout& l) { l.pp = x; };
  if (key == "dp") return [x = positive()](Layout& l) { l.dp = x; };
  if (key == "pods") return [x = positive()](Layout& l) { l.pods = x; };
  if (key == "cp") return [x = positive()](Layout& l) { l.cp = x; };
  if (key == "ep") return [x = positive()](Layout& l) { l.ep = x; };
  if (key == "etp") return [x = positive()](Layout& l) { l.etp = x; };
  if (key == "vpp") return [x = positive()](Layout& l) { l.vpp = x; };
  if (key == "microbatch") return [x = positive()](Layout& l) { l.microbatch = x; };
  if (key == "sp") return [x = read_bool(v, field)](Layout& l) { l.sp = x; };
  if (key == "account_ends") return [x = read_bool(v, field)](Layout& l) { l.account_ends = x; };
  if (key == "sharding") return [x = parse_sharding(read_string(v, field), field)](Layout& l) { l.sharding = x; };
  if (key == "recompute") return [x = parse_recompute(read_string(v, field), field)](Layout& l) { l.recompute = x; };
  if (key == "schedule") return [x = parse_schedule(read_string(v, field), field)](Layout& l) { l.schedule = x; };
  std::string allowed;
  for (const char* k : kLayoutKeys) allowed += (allowed.empty() ? "" : ", ") + std::string(k);
  throw InputError(field, "unknown key; allowed: " + allowed);
}

void default_layout_schedule(Layout& l, bool schedule_given) {
  if (!schedule_given) l.schedule = l.vpp > 1 ? Schedule::interleaved : Schedule::one_f_one_b;
}

Layout parse_layout(const YAML::Node& n) {
  Layout l;
  if (!n || n.IsNull()) return l;
  if (!n.IsMap()) throw InputError("layout", "must be a map of fields (tp, pp, dp, ...)");
  check_keys(n, "layout", kLayoutKeys);
  for (const char* key : kLayoutKeys)
    if (n[key]) layout_field_setter(key, n[key])(l);
  default_layout_schedule(l, bool(n["schedule"]));
  return l;
}

Scenario parse_scenario_sections(const YAML::Node& root, const std::string& path) {
  if (!root.IsMap()) throw InputError("scenario", "'" + path + "' must be a YAML map with model, system, layout, training");
  check_keys(root, "scenario", {"model", "system", "layout", "training", "train", "description", "stack"});
  Scenario s;
  s.path = path;
  if (!root["model"]) throw InputError("model", "missing; give a preset name or a map of fields");
  s.model = parse_model_node(root["model"]);

  const YAML::Node sys = root["system"];
  // A trainer config's machine is this one, known from a calibration: say how, as the file may be one.
  if (!sys)
    throw InputError("system", "missing; give a preset name or {preset:, chips:}. A trainer config is predicted on "
                               "this machine: add system: {preset: local-cpu, calibration: FILE} (`palmsim calibrate "
                               "--config " + path + " -o FILE` writes one), or run `palmsim validate-local " + path +
                               " --calibration FILE`");
  if (sys.IsScalar()) {
    s.system = system_preset(sys.Scalar());
  } else {
    check_keys(sys, "system", {"preset", "file", "chips", "calibration", "name", "chip", "stack", "fabric",
                               "max_chips_per_pod", "torus", "fat_tree"});
    if (sys["preset"] && sys["file"]) throw InputError("system", "give preset: or file:, not both");
    if (sys["preset"]) {
      s.system = system_preset(read_string(sys["preset"], "system.preset"));
    } else if (sys["file"]) {
      std::filesystem::path f = read_string(sys["file"], "system.file");
      if (f.is_relative()) f = std::filesystem::path(path).parent_path() / f;
      s.system = parse_system(load_yaml_file(f.string(), "system.file"), "system.file");
    } else {
      throw InputError("system.preset", "missing; give preset: NAME or file: SYSTEM.yaml");
    }
    // Per-field overrides of the preset or file (chip figures, torus, fat tree, default stack).
    YAML::Node overrides = YAML::Clone(sys);
    for (const char* k : {"preset", "file", "chips", "calibration"}) overrides.remove(k);
    if (overrides.size() > 0) s.system = parse_system_onto(s.system, overrides, "system");
    if (sys["chips"]) {
      s.system_chips = read_int(sys["chips"], "system.chips");
      if (s.system_chips < 1) throw InputError("system.chips", "must be a positive integer");
    }
    if (sys["calibration"]) {
      std::filesystem::path cal = read_string(sys["calibration"], "system.calibration");
      if (cal.is_relative()) cal = std::filesystem::path(path).parent_path() / cal;
      s.calibration = std::make_shared<const Calibration>(load_calibration(cal.string()));
      apply_calibration(s.system, *s.calibration);
    }
  }

  if (root["stack"]) s.system.stack = parse_scenario_stack(root["stack"], s.system.stack, path);

  if (s.system.needs_calibration())
    throw InputError("system.calibration", s.system.name + " has no preset figures; measure them with "
                                           "`palmsim calibrate -o FILE.json` and give calibration: FILE.json");
  s.layout = parse_layout(root["layout"]);
  s.n_chips = s.system_chips > 0 ? s.system_chips : s.layout.chips();

  const YAML::Node tr = root["training"];
  if (!tr) throw InputError("training", "missing; needs global_batch (sequences)");
  check_keys(tr, "training", {"global_batch", "optimizer", "precision"});
  if (!tr["global_batch"]) throw InputError("training.global_batch", "missing");
  s.global_batch = read_int(tr["global_batch"], "training.global_batch");
  if (s.global_batch < 1) throw InputError("training.global_batch", "must be a positive number of sequences");
  if (tr["optimizer"]) s.optimizer = parse_optimizer(read_string(tr["optimizer"], "training.optimizer"), "training.optimizer");
  if (tr["precision"]) s.precision = parse_precision(read_string(tr["precision"], "training.precision"), "training.precision");
  check_precision_supported(s, "training.precision");
  if (root["train"]) s.train = root["train"];

  return s;
}

void check_scenario_layout(const Scenario& s, const Layout& layout, int64_t n_chips) {
  if (s.system.max_chips_per_pod > 0 && n_chips > int64_t(layout.pods) * s.system.max_chips_per_pod)
    throw InputError("layout.pods", std::to_string(n_chips) + " chips need at least " +
                                        std::to_string((n_chips + s.system.max_chips_per_pod - 1) /
                                                       s.system.max_chips_per_pod) +
                                        " pods of " + s.system.name + " (at most " +
                                        std::to_string(s.system.max_chips_per_pod) + " chips per pod)");
  check_layout(layout, s.model, n_chips, s.global_batch);
  check_stack_supports(s.system.stack, layout, "layout.sharding", "layout.recompute", "layout.schedule");
}

Scenario parse_scenario(const YAML::Node& root, const std::string& path) {
  Scenario s = parse_scenario_sections(root, path);
  check_scenario_layout(s, s.layout, s.n_chips);
  return s;
}

YAML::Node load_scenario_yaml(const std::string& path) {
  require_regular_file(path, "scenario");
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw InputError("scenario", "'" + path + "' is not valid YAML (line " + std::to_string(e.mark.line + 1) +
                                     "): " + e.msg);
  }
}

Scenario load_scenario(const std::string& path) { return parse_scenario(load_scenario_yaml(path), path); }

}  // namespace palmsim
