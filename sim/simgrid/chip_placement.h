#pragma once
// Which chip holds which tensor-, context-, data- and pipeline-parallel rank, and where it sits
// physically. TPU: one torus slice per pod; each axis coordinate is mixed-radix
// c = t + f_tp (p + f_pp d) with tensor parallelism innermost (TorusMapping; no context
// parallelism). GPU: Megatron's rank order, tensor-parallel rank fastest, then context-parallel,
// then data-parallel, then pipeline stage, gpus_per_node consecutive ranks per node.
#include "hwmodels/system.h"
#include "hwmodels/torus_topology.h"
#include "model/layout.h"

#include <array>

namespace palmsim::simulation {

struct ChipRank {
  int tp = 0;
  int dp = 0;  // across all pods: pod * dp_per_pod + rank inside the pod
  int pp = 0;
  int cp = 0;
  // Among the dp x cp ranks that hold the same weights (context-parallel rank fastest): what
  // gradient reduction, expert parallelism and its data-parallel group fold over.
  int replica(int cp_size) const { return dp * cp_size + cp; }
  void set_replica(int index, int cp_size) { dp = index / cp_size, cp = index % cp_size; }
};

class ChipPlacement {
 public:
  // `torus` is used on TPU systems only.
  ChipPlacement(const System& system, const Layout& layout, const TorusMapping& torus);

  int chips() const { return chips_; }
  int pod_chips() const { return pod_chips_; }
  ChipRank rank(int chip) const;
  int chip(const ChipRank& r) const;

  // TPU: the chip's coordinates inside its pod's slice, and the chip at coordinates `c` of `pod`.
  std::array<int, 3> coord(int chip) const;
  int chip_at(int pod, const std::array<int, 3>& c) const;
  int pod(int chip) const { return chip / pod_chips_; }

  const System& system() const { return system_; }
  const Layout& layout() const { return layout_; }
  const TorusMapping& torus() const { return torus_; }

 private:
  System system_;
  Layout layout_;
  TorusMapping torus_;
  int chips_ = 0;
  int pod_chips_ = 0;
};

}  // namespace palmsim::simulation
