#include "hwmodels/system.h"

#include "hwmodels/preset_files.h"
#include "model/input_error.h"
#include "model/preset_table.h"
#include "model/yaml_fields.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace palmsim {

namespace {

double positive(const YAML::Node& n, const std::string& field, double unit, double max = 1e9) {
  const double v = read_double(n, field);
  if (!std::isfinite(v) || v <= 0 || v > max) throw InputError(field, "must be a positive number");
  return v * unit;
}

int count(const YAML::Node& n, const std::string& field, int lo, int hi) {
  const int64_t v = read_int(n, field);
  if (v < lo || v > hi)
    throw InputError(field, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  return int(v);
}

void read_torus(const YAML::Node& n, const std::string& field, TorusFabric& t) {
  check_keys(n, field, {"dims", "max_axis", "cube", "link_gb_per_s", "link_latency_us", "chips_per_host",
                        "dcn_gbit_per_s_per_host", "dcn_latency_us", "collective_efficiency"});
  const std::string f = field + ".";
  if (n["dims"]) t.torus_dims = count(n["dims"], f + "dims", 2, 3);
  if (n["max_axis"]) t.max_axis = count(n["max_axis"], f + "max_axis", 1, 4096);
  if (n["cube"]) t.cube = count(n["cube"], f + "cube", 1, 64);
  if (n["link_gb_per_s"]) t.link_bytes_per_s = positive(n["link_gb_per_s"], f + "link_gb_per_s", 1e9);
  if (n["link_latency_us"]) t.link_latency_s = positive(n["link_latency_us"], f + "link_latency_us", 1e-6);
  if (n["chips_per_host"]) t.chips_per_host = count(n["chips_per_host"], f + "chips_per_host", 1, 1024);
  if (n["dcn_gbit_per_s_per_host"])
    t.dcn_bytes_per_s_per_host = positive(n["dcn_gbit_per_s_per_host"], f + "dcn_gbit_per_s_per_host", 1e9) / 8;
  if (n["dcn_latency_us"]) t.dcn_latency_s = positive(n["dcn_latency_us"], f + "dcn_latency_us", 1e-6);
  if (n["collective_efficiency"]) {
    t.collective_efficiency = positive(n["collective_efficiency"], f + "collective_efficiency", 1.0, 1.0);
  }
}

// Bandwidths as the datasheet gives them, efficiencies as the measured NCCL rate over the line rate.
void read_fat_tree(const YAML::Node& n, const std::string& field, FatTreeFabric& t) {
  check_keys(n, field, {"gpus_per_node", "nvlink_gb_per_s", "nvlink_busbw_gb_per_s", "nvlink_latency_us",
                        "nic_gb_per_s", "nic_nccl_gb_per_s", "net_latency_us", "collective_base_latency_us",
                        "nodes_per_leaf", "oversubscription"});
  const std::string f = field + ".";
  // A changed line rate without a new measured rate keeps the measured fraction of it.
  double nvlink_busbw = 0, nic_nccl = 0;
  if (n["gpus_per_node"]) t.gpus_per_node = count(n["gpus_per_node"], f + "gpus_per_node", 1, 1024);
  if (n["nvlink_gb_per_s"]) t.nvlink_bytes_per_s = positive(n["nvlink_gb_per_s"], f + "nvlink_gb_per_s", 1e9);
  if (n["nvlink_busbw_gb_per_s"]) nvlink_busbw = positive(n["nvlink_busbw_gb_per_s"], f + "nvlink_busbw_gb_per_s", 1e9);
  if (n["nvlink_latency_us"]) t.nvlink_latency_s = positive(n["nvlink_latency_us"], f + "nvlink_latency_us", 1e-6);
  if (n["nic_gb_per_s"]) t.nic_bytes_per_s = positive(n["nic_gb_per_s"], f + "nic_gb_per_s", 1e9);
  if (n["nic_nccl_gb_per_s"]) nic_nccl = positive(n["nic_nccl_gb_per_s"], f + "nic_nccl_gb_per_s", 1e9);
  if (n["net_latency_us"]) t.net_latency_s = positive(n["net_latency_us"], f + "net_latency_us", 1e-6);
  if (n["collective_base_latency_us"])
    t.collective_base_latency_s = positive(n["collective_base_latency_us"], f + "collective_base_latency_us", 1e-6);
  if (n["nodes_per_leaf"]) t.nodes_per_leaf = count(n["nodes_per_leaf"], f + "nodes_per_leaf", 1, 1 << 20);
  if (n["oversubscription"]) t.oversubscription = positive(n["oversubscription"], f + "oversubscription", 1.0, 64);
  if (nvlink_busbw > 0) t.nvlink_efficiency = nvlink_busbw / t.nvlink_bytes_per_s;
  if (nic_nccl > 0) t.nic_efficiency = nic_nccl / t.nic_bytes_per_s;
  if (t.nvlink_efficiency > 1) throw InputError(f + "nvlink_busbw_gb_per_s", "must not exceed nvlink_gb_per_s");
  if (t.nic_efficiency > 1) throw InputError(f + "nic_nccl_gb_per_s", "must not exceed nic_gb_per_s");
}

}  // namespace

System parse_system_onto(System s, const YAML::Node& n, const std::string& field) {
  check_keys(n, field, {"name", "chip", "stack", "fabric", "max_chips_per_pod", "torus", "fat_tree"});
  if (n["name"]) s.name = read_string(n["name"], field + ".name");
  if (n["chip"]) {
    const YAML::Node c = n["chip"];
    s.chip = c.IsScalar() ? chip_preset(c.Scalar()) : parse_chip_onto(s.chip, c, field + ".chip");
  }
  if (n["stack"]) s.stack = stack_preset(read_string(n["stack"], field + ".stack"), field + ".stack");
  if (n["fabric"]) {
    const std::string f = read_string(n["fabric"], field + ".fabric");
    if (f == "tpu_torus") s.fabric = Fabric::tpu_torus;
    else if (f == "gpu_fat_tree") s.fabric = Fabric::gpu_fat_tree;
    else if (f == "single_machine") s.fabric = Fabric::single_machine;
    else throw InputError(field + ".fabric", "'" + f + "' is not a fabric; allowed: tpu_torus, gpu_fat_tree, single_machine");
  }
  if (n["torus"]) read_torus(n["torus"], field + ".torus", s.torus);
  if (n["fat_tree"]) read_fat_tree(n["fat_tree"], field + ".fat_tree", s.fat_tree);
  if (n["max_chips_per_pod"]) s.max_chips_per_pod = count(n["max_chips_per_pod"], field + ".max_chips_per_pod", 0, 1 << 24);
  if (n["torus"] && s.fabric != Fabric::tpu_torus) throw InputError(field + ".torus", "only a tpu_torus system has a torus");
  if (n["fat_tree"] && s.fabric != Fabric::gpu_fat_tree)
    throw InputError(field + ".fat_tree", "only a gpu_fat_tree system has a fat tree");
  return s;
}

System parse_system(const YAML::Node& n, const std::string& field) {
  if (!n.IsMap()) throw InputError(field, "must be a map of system fields");
  System s;
  // The fabric follows from the section given unless named.
  if (!n["fabric"]) s.fabric = n["fat_tree"] ? Fabric::gpu_fat_tree : Fabric::tpu_torus;
  s = parse_system_onto(s, n, field);
  if (s.name.empty()) throw InputError(field + ".name", "missing");
  if (!n["chip"]) throw InputError(field + ".chip", "missing; a chip preset name or a map of chip figures");
  if (!n["stack"]) throw InputError(field + ".stack", "missing; the software stack its runs use by default");
  return s;
}

namespace {

// hwmodels/systems/*.yaml: topology figures and their sources (hwmodels/hardware.md).
const std::map<std::string, System>& presets() {
  static const std::map<std::string, System> table = load_presets<System>(PresetKind::systems, "hwmodels/systems", parse_system);
  return table;
}

}  // namespace

std::vector<std::string> system_preset_names() { return preset_names(presets()); }

System system_preset(const std::string& name) {
  return find_preset(presets(), name, "system.preset", "system");
}

System stack_adjusted(const System& system) {
  System s = system;
  const Stack& st = system.stack;
  s.chip.gemm_max_efficiency *= st.gemm_efficiency_scale;
  s.chip.memory_efficiency *= st.memory_efficiency_scale;
  s.chip.fused_attention_efficiency *= st.attention_efficiency_scale;
  s.chip.fp8_relative_efficiency *=
      st.fp8_gemm_efficiency_scale * (st.fp8_rowwise ? st.fp8_rowwise_gemm_efficiency_scale : 1.0);
  s.fat_tree.nvlink_efficiency *= st.collective_efficiency_scale;
  s.fat_tree.nic_efficiency *= st.collective_efficiency_scale;
  s.torus.collective_efficiency *= st.collective_efficiency_scale;
  return s;
}

void apply_system_overrides(System& system, const std::string& overrides, const std::string& field) {
  const bool gpu = system.fabric == Fabric::gpu_fat_tree;
  FatTreeFabric& f = system.fat_tree;
  // The preset's NICs: one per GPU at its line rate; overrides change count and rate, and the
  // model spreads the node's NIC bandwidth evenly over its GPUs (rail-aligned). nics 0: one per GPU.
  double nics = 0, nic_line = gpu ? f.nic_bytes_per_s : 0;
  const std::string allowed = "allowed: gpus_per_node, nics_per_node, nic_gbps, nvlink_gbps, hbm_gib";
  for (const auto& [key, text] : split_key_values(overrides, field, allowed)) {
    double v = 0;
    size_t used = 0;
    try {
      v = std::stod(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text.size() || !(v > 0) || !std::isfinite(v))
      throw InputError(field, key + " must be a positive number, got '" + text + "'");
    if (key == "hbm_gib") {
      system.chip.hbm_bytes = v * 1024.0 * 1024.0 * 1024.0;
      continue;
    }
    if (key != "gpus_per_node" && key != "nics_per_node" && key != "nic_gbps" && key != "nvlink_gbps")
      throw InputError(field, "'" + key + "' is not a system override; " + allowed);
    if (!gpu) throw InputError(field, key + " applies to GPU systems only; " + system.name + " is not one");
    if (key == "gpus_per_node") {
      if (v != std::floor(v) || v > 1024) throw InputError(field, "gpus_per_node must be an integer up to 1024");
      f.gpus_per_node = int(v);
    } else if (key == "nics_per_node") {
      nics = v;
    } else if (key == "nic_gbps") {
      nic_line = v * 1e9 / 8.0;
    } else {
      f.nvlink_bytes_per_s = v * 1e9 / 8.0;
    }
  }
  if (gpu && nics > 0) f.nic_bytes_per_s = nic_line * nics / f.gpus_per_node;
  else if (gpu) f.nic_bytes_per_s = nic_line;  // still one NIC per GPU
}

}  // namespace palmsim
