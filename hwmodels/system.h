#pragma once
// A machine: chips, how they are wired, and the figures collectives run at. Two fabric families:
// TPU pods (3D torus slices from 4x4x4 cubes, joined across pods by the data-center network) and
// GPU clusters (NVSwitch nodes joined by a rail-aligned fat tree). Figures: hwmodels/hardware.md.
#include "hwmodels/chip.h"
#include "hwmodels/stack.h"

#include <cstdint>
#include <string>
#include <vector>

namespace palmsim {

// single_machine: the trainer's ranks on this one machine (threads sharing memory, or the GPUs of
// one node); collective times come from the calibration's measurements.
enum class Fabric { tpu_torus, gpu_fat_tree, single_machine };

struct TorusFabric {
  int torus_dims = 3;          // v4/v5p: 3D; v3: 2D
  int max_axis = 16;           // longest axis of one pod (v4: 16x16x16)
  int cube = 4;                // slices are built from cube^dims blocks
  double link_bytes_per_s = 0; // one ICI link, one direction
  double link_latency_s = 0;   // per hop
  int chips_per_host = 4;
  double dcn_bytes_per_s_per_host = 0;  // between pods
  double dcn_latency_s = 0;
  double collective_efficiency = 1.0;   // fraction of link bandwidth a collective reaches
};

struct FatTreeFabric {
  int gpus_per_node = 8;
  double nvlink_bytes_per_s = 0;       // per GPU, one direction
  double nvlink_efficiency = 1.0;      // NCCL busbw / link bandwidth inside a node
  double nvlink_latency_s = 0;         // per ring step
  double nic_bytes_per_s = 0;          // per GPU (one NIC per GPU), one direction
  double nic_efficiency = 1.0;         // NCCL per-NIC rate / line rate
  double net_latency_s = 0;            // per ring step across nodes
  double collective_base_latency_s = 0;  // once per NCCL call, before any step (launch, setup)
  int nodes_per_leaf = 32;             // a scalable unit: nodes under one set of rail leaves
  double oversubscription = 1.0;       // leaf uplink : downlink ratio (1 = non-blocking)
};

struct System {
  std::string name;
  Chip chip;
  Fabric fabric = Fabric::tpu_torus;
  TorusFabric torus;
  FatTreeFabric fat_tree;
  int max_chips_per_pod = 0;  // TPU pod size; GPU clusters: 0 = no limit
  // The software the runs on this system use, unless a scenario or validation row names another
  // (fused attention, gradient precision, overlap, per-kernel and per-call costs): hwmodels/stack.h.
  Stack stack;
  // single_machine: the cores the ranks' threads share, from the calibration (its reference ran on
  // as many threads as the trainer); 0: unknown, each rank as if it had its own. With more ranks
  // than cores the ranks take turns on them: the estimator bounds the step by the ranks' compute
  // over the cores, the simulator hands the cores out one pass block at a time.
  int shared_cores = 0;
  // Whether ranks must take turns on the cores (more of them than cores).
  bool ranks_share_cores(int64_t ranks) const { return shared_cores > 0 && ranks > shared_cores; }
  // True when the preset's figures are only a frame that a calibration file must fill (local-cpu).
  bool needs_calibration() const { return chip.peak_flops <= 0; }
};

// A shipped system (hwmodels/systems/NAME.yaml); unknown names list the allowed ones.
System system_preset(const std::string& name);
// System fields in the shipped files' format (name, chip, stack, fabric, max_chips_per_pod,
// torus: {...}, fat_tree: {...}); `_onto` changes only what `node` gives (a scenario's per-field
// overrides). Every problem names `field`.
System parse_system(const YAML::Node& node, const std::string& field);
System parse_system_onto(System base, const YAML::Node& node, const std::string& field);

// The hardware figures as the system's software stack reaches them: GEMM and streaming
// efficiencies and the fabric's collective efficiencies times the stack's scales. Every consumer
// that prices work (ComputeModel, CommModel, the simulator's platform) reads this view.
System stack_adjusted(const System& system);

// `key=value;key=value` changes to a system preset (DESIGN.md "Validation CSV"): gpus_per_node,
// nics_per_node, nic_gbps (Gb/s per NIC, per direction), nvlink_gbps (Gb/s per GPU, per
// direction), hbm_gib. Throws InputError naming `field` and the key.
void apply_system_overrides(System& system, const std::string& overrides, const std::string& field);

std::vector<std::string> system_preset_names();

}  // namespace palmsim
