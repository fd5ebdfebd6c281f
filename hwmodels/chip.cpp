#include "hwmodels/chip.h"

#include "hwmodels/preset_files.h"
#include "model/input_error.h"
#include "model/preset_table.h"
#include "model/yaml_fields.h"

#include <cmath>
#include <map>

namespace palmsim {

namespace {

constexpr double GiB = 1024.0 * 1024.0 * 1024.0;

// A non-negative finite number in the key's unit, times `unit`.
double read_figure(const YAML::Node& n, const std::string& field, double unit, double max) {
  const double v = read_double(n, field);
  if (!std::isfinite(v) || v < 0 || v > max) throw InputError(field, "must be a number from 0 to " + std::to_string(int64_t(max)));
  return v * unit;
}

}  // namespace

Chip parse_chip_onto(Chip c, const YAML::Node& n, const std::string& field) {
  check_keys(n, field, {"name", "peak_tflops", "fp8_peak_tflops", "hbm_gb", "hbm_gib", "hbm_gb_per_s",
                        "gemm_max_efficiency", "gemm_tile", "compute_units", "gemm_k_half", "memory_efficiency",
                        "fused_attention_efficiency", "overlap_compute_slowdown"});
  if (n["name"]) c.name = read_string(n["name"], field + ".name");
  auto figure = [&](const char* key, double& out, double unit, double max) {
    if (n[key]) out = read_figure(n[key], field + "." + key, unit, max);
  };
  figure("peak_tflops", c.peak_flops, 1e12, 1e6);
  figure("fp8_peak_tflops", c.fp8_peak_flops, 1e12, 1e6);
  if (n["hbm_gb"] && n["hbm_gib"]) throw InputError(field + ".hbm_gb", "give hbm_gb or hbm_gib, not both");
  figure("hbm_gb", c.hbm_bytes, 1e9, 1e6);
  figure("hbm_gib", c.hbm_bytes, GiB, 1e6);
  figure("hbm_gb_per_s", c.hbm_bytes_per_s, 1e9, 1e6);
  auto fraction = [&](const char* key, double& out) {
    if (!n[key]) return;
    out = read_double(n[key], field + "." + key);
    if (!(out > 0 && out <= 1)) throw InputError(field + "." + key, "must be a fraction in (0, 1]");
  };
  fraction("gemm_max_efficiency", c.gemm_max_efficiency);
  fraction("memory_efficiency", c.memory_efficiency);
  fraction("fused_attention_efficiency", c.fused_attention_efficiency);
  if (n["overlap_compute_slowdown"]) {
    const double v = read_double(n["overlap_compute_slowdown"], field + ".overlap_compute_slowdown");
    if (!(v >= 0 && v <= 1))
      throw InputError(field + ".overlap_compute_slowdown", "must be a fraction from 0 to 1 (compute's extra time beside collectives)");
    c.overlap_compute_slowdown = v;
  }
  auto count = [&](const char* key, int& out, int lo) {
    if (!n[key]) return;
    const int64_t v = read_int(n[key], field + "." + key);
    if (v < lo || v > 65536) throw InputError(field + "." + key, "must be an integer from " + std::to_string(lo) + " to 65536");
    out = int(v);
  };
  count("gemm_tile", c.gemm_tile, 1);
  count("compute_units", c.compute_units, 0);
  count("gemm_k_half", c.gemm_k_half, 0);
  return c;
}

Chip parse_chip(const YAML::Node& n, const std::string& field) {
  if (!n.IsMap()) throw InputError(field, "must be a map of chip figures");
  Chip c = parse_chip_onto(Chip{}, n, field);
  if (c.name.empty()) throw InputError(field + ".name", "missing");
  return c;
}

namespace {

// hwmodels/chips/*.yaml: figures and their sources (hwmodels/hardware.md).
const std::map<std::string, Chip>& presets() {
  static const std::map<std::string, Chip> table = load_presets<Chip>(PresetKind::chips, "hwmodels/chips", parse_chip);
  return table;
}

}  // namespace

std::vector<std::string> chip_preset_names() { return preset_names(presets()); }

Chip chip_preset(const std::string& name) {
  return find_preset(presets(), name, "system.chip", "chip");
}

}  // namespace palmsim
