#pragma once
// Collectives as flows (hardware.md "SimGrid"): SimGrid has no NCCL model, so every collective
// becomes, per algorithm phase, one flow per rank per ring, sized so that the ring's bandwidth
// term equals the closed form's (collective_cost.h). A torus group runs bidirectional rings on
// every axis segment it spans at once (open lines: one ring whose return path runs back along the
// line); a GPU group spanning nodes goes hierarchical (NVLink ring inside the node, then a ring
// over the nodes on each rail); pods are joined by one ring over the data-center network. An
// all-to-all (expert parallelism) is a flow to every other member of the group, on a torus routed
// dimension-order across the axes its group spans.
// Contention is then the platform's business: flows of different groups that share a link get
// max-min fair shares of it.
#include "model/collective_kind.h"
#include "model/step_plan.h"
#include "sim/simgrid/chip_placement.h"

#include <functional>
#include <vector>

namespace palmsim::simulation {

// `times` collectives of `kind` over buffers of `bytes` (collective_cost.h's n).
struct CollectivePart {
  CollectiveKind kind = CollectiveKind::all_reduce;
  double bytes = 0;
  double times = 1;
  PerRankRouting routing;  // an expert all-to-all of a per-rank dispatch (Op::per_rank_routing)
};

// Collectives of one group issued back to back; they become one set of flows per phase (their
// volumes add up, so without contention the time is the sum of the parts').
struct CommCall {
  CommGroup group = CommGroup::tp;
  std::vector<CollectivePart> parts;
  bool empty() const { return parts.empty(); }
};

// Flow j of a phase goes from this chip to `peer`, which receives it on its slot j.
struct Flow {
  int peer = 0;
  double bytes = 0;
};

struct FlowPhase {
  int level = 0;  // separates the mailboxes of phases that follow each other
  std::vector<Flow> flows;
  // Per-step latencies of the ring the single flow does not carry (it carries one hop), and on
  // GPUs the base latency of each NCCL call (on a call's first phase).
  double extra_latency_s = 0;
};

class CollectiveFlows {
 public:
  explicit CollectiveFlows(const ChipPlacement& placement);

  // The phases chip `chip` runs, in order, for `call` repeated `scale` times.
  std::vector<FlowPhase> phases(int chip, const CommCall& call, double scale) const;

  // Every chip a collective of `group` sends to from `chip`, with its ring level.
  void for_each_peer(int chip, CommGroup group, const std::function<void(int peer, int level)>& fn) const;

  int group_size(CommGroup group) const;

 private:
  struct Ring {
    int level = 0;
    std::vector<std::pair<int, double>> out;  // (peer, share of the phase volume)
  };
  std::vector<Ring> rings(int chip, CommGroup group) const;
  std::vector<Ring> torus_rings(int chip, CommGroup group) const;
  std::vector<Ring> gpu_rings(int chip, CommGroup group) const;
  // The torus segments `group` runs over: the layout group's, or for ep and edp the data-parallel
  // segments split between them (TorusMapping::split_expert_groups).
  TorusSegments torus_segments(CommGroup group) const;
  // The share of a phase's volume each flow of `call` from `chip` to a peer carries: the ring's
  // own, or a per-rank dispatch's across nodes (PerRankRouting).
  std::function<double(int peer, double ring_share)> flow_shares(int chip, const CommCall& call) const;
  // Bytes one rank sends and per-step latency of ring level `level` for `call`.
  void level_cost(CommGroup group, int level, const CommCall& call, double scale, double& volume,
                  double& latency) const;

  const ChipPlacement& placement_;
};

}  // namespace palmsim::simulation
