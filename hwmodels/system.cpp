#include "hwmodels/system.h"

#include "model/input_error.h"
#include "model/preset_table.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace palmsim {

namespace {

constexpr double us = 1e-6;

System tpu_pod(const std::string& name, const std::string& chip, int dims, int max_axis,
               double link_bw, int pod_chips) {
  System s;
  s.name = name;
  s.chip = chip_preset(chip);
  s.fabric = Fabric::tpu_torus;
  s.torus.torus_dims = dims;
  s.torus.max_axis = max_axis;
  s.torus.link_bytes_per_s = link_bw;
  s.torus.link_latency_s = 1 * us;
  s.torus.chips_per_host = 4;  // hardware.md: v4 hosts hold 4 chips
  // hardware.md "DCN": PaLM measured 81 Tbps aggregate burst over 1536 hosts, ~53 Gb/s per host.
  s.torus.dcn_bytes_per_s_per_host = 53e9 / 8;
  s.torus.dcn_latency_s = 10 * us;
  s.max_chips_per_pod = pod_chips;
  s.stack = stack_preset("xla-tpu");
  return s;
}

System dgx(const std::string& name, const std::string& chip, double nvlink_bw, double nvlink_eff,
           double nic_bw, double nic_eff) {
  System s;
  s.name = name;
  s.chip = chip_preset(chip);
  s.fabric = Fabric::gpu_fat_tree;
  s.fat_tree.gpus_per_node = 8;
  s.fat_tree.nvlink_bytes_per_s = nvlink_bw;
  s.fat_tree.nvlink_efficiency = nvlink_eff;
  // hardware.md "Collective cost models": NCCL per-hop latency NVLink ~3.4 us, network ~14 us.
  s.fat_tree.nvlink_latency_s = 3.4 * us;
  s.fat_tree.nic_bytes_per_s = nic_bw;
  s.fat_tree.nic_efficiency = nic_eff;
  s.fat_tree.net_latency_s = 14 * us;
  // hardware.md "Collective cost models": NCCL base latency 8.4 us (ring and tree, Simple).
  s.fat_tree.collective_base_latency_s = 8.4 * us;
  s.fat_tree.nodes_per_leaf = 32;
  s.fat_tree.oversubscription = 1.0;
  s.stack = stack_preset("megatron-core");
  return s;
}

const std::map<std::string, System>& presets() {
  static const std::map<std::string, System> table = [] {
    std::map<std::string, System> t;
    // v4: 6 ICI links per chip, 45 GB/s per link per direction; pod 4096 = 16x16x16.
    t["tpu-v4-pod"] = tpu_pod("tpu-v4-pod", "tpu-v4", 3, 16, 45e9, 4096);
    // v3: 1024-chip pod, 2D torus 32x32; sources give 70-100 GB/s per link, 70 taken.
    t["tpu-v3-pod"] = tpu_pod("tpu-v3-pod", "tpu-v3", 2, 32, 70e9 / 2, 1024);
    // v5p: 1200 GB/s bidirectional per chip over 6 links = 100 GB/s per link per direction.
    t["tpu-v5p-pod"] = tpu_pod("tpu-v5p-pod", "tpu-v5p", 3, 16, 100e9, 8960);
    t["tpu-v5p-pod"].torus.max_axis = 32;
    // hardware.md "v5p": DCN 50 Gb/s per chip, 4 chips per host.
    t["tpu-v5p-pod"].torus.dcn_bytes_per_s_per_host = 4 * 50e9 / 8;
    // v5e: 2D torus, pod 256 = 16x16; 4 ICI links of 50 GB/s per direction; 8 chips per host with
    // 2 x 100 Gb/s NICs.
    t["tpu-v5e-pod"] = tpu_pod("tpu-v5e-pod", "tpu-v5e", 2, 16, 50e9, 256);
    t["tpu-v5e-pod"].torus.chips_per_host = 8;
    t["tpu-v5e-pod"].torus.dcn_bytes_per_s_per_host = 2 * 100e9 / 8;
    // DGX A100: NVLink3 300 GB/s per direction, NCCL busbw ~235 (78 %); 8 x HDR 200 Gb/s NICs,
    // ~24 GB/s per NIC through NCCL (96 %).
    t["a100-80g-dgx"] = dgx("a100-80g-dgx", "a100-80g", 300e9, 235.0 / 300, 25e9, 24.0 / 25);
    t["a100-40g-dgx"] = dgx("a100-40g-dgx", "a100-40g", 300e9, 235.0 / 300, 25e9, 24.0 / 25);
    // The published A100 runs used Megatron-LM of 2021-22.
    t["a100-80g-dgx"].stack = stack_preset("megatron-2021");
    t["a100-40g-dgx"].stack = stack_preset("megatron-2021");
    // DGX H100: NVLink4 450 GB/s per direction, ring busbw ~368 (82 %); 8 x NDR 400 Gb/s, 46-48
    // GB/s per NIC through NCCL (94 %). Megatron-Core is the default stack (dgx above).
    t["h100-80g-dgx"] = dgx("h100-80g-dgx", "h100-80g", 450e9, 368.0 / 450, 50e9, 47.0 / 50);
    t["h200-dgx"] = dgx("h200-dgx", "h200", 450e9, 368.0 / 450, 50e9, 47.0 / 50);
    // This machine, as the CPU trainer uses it: thread ranks, fp32, fused attention. Peak, memory
    // rates, GEMM efficiencies and collective times all come from `palmsim calibrate`.
    System cpu;
    cpu.name = "local-cpu";
    cpu.chip.name = "local-cpu";
    cpu.chip.peak_flops = 0;
    cpu.chip.hbm_bytes = 0;  // the calibration's memory_bytes
    cpu.chip.hbm_bytes_per_s = 0;
    cpu.chip.gemm_tile = 16;
    cpu.fabric = Fabric::single_machine;
    cpu.stack = stack_preset("palmsim-cpu");
    t["local-cpu"] = cpu;
    // This machine's GPUs as the CUDA trainer uses them: bf16, fused attention, NCCL collectives.
    // Every figure comes from `palmsim calibrate --backend cuda`.
    System gpu = cpu;
    gpu.name = "local-gpu";
    gpu.chip.name = "local-gpu";
    gpu.chip.gemm_tile = 128;
    gpu.stack = stack_preset("palmsim-cuda");
    t["local-gpu"] = gpu;
    return t;
  }();
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
  s.chip.fused_attention_efficiency *= st.gemm_efficiency_scale;
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
  size_t start = 0;
  while (start <= overrides.size()) {
    const size_t end = std::min(overrides.find(';', start), overrides.size());
    const std::string item = overrides.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string allowed = "allowed: gpus_per_node, nics_per_node, nic_gbps, nvlink_gbps, hbm_gib";
    if (eq == std::string::npos) throw InputError(field, "'" + item + "' is not key=value; " + allowed);
    double v = 0;
    size_t used = 0;
    try {
      v = std::stod(item.substr(eq + 1), &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() - eq - 1 || !(v > 0) || !std::isfinite(v))
      throw InputError(field, key + " must be a positive number, got '" + item.substr(eq + 1) + "'");
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
