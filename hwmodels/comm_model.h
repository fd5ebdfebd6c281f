#pragma once
// Where the layout's groups sit on a system and what their collectives cost. Built once per
// (system, tp, pp, dp, pods) and then asked for many collectives.
//
// TPU pods: each pod is one slice (torus_topology.h); tp, pp and dp groups take torus axes; pods
// are joined by the data-center network at host granularity.
// GPU clusters: Megatron's rank order (tp fastest, then dp, then pp) over nodes of g GPUs; a group
// inside a node rings over NVLink, across nodes over the rail-aligned NICs, spanning both it goes
// two-level (hierarchical).
#include "hwmodels/calibration.h"
#include "hwmodels/system.h"
#include "hwmodels/torus_topology.h"
#include "model/layout.h"
#include "model/step_plan.h"

namespace palmsim {

// Members of a GPU group: `per_node` ranks in each of `nodes` nodes.
struct NodeSpread {
  int per_node = 1;
  int nodes = 1;
};

class CommModel {
 public:
  // Throws InputError when the layout cannot be placed on the system (e.g. no TPU slice shape).
  // `calibration` (may be null) supplies measured collective times on shared-memory systems.
  CommModel(const System& system, const Layout& layout, const Calibration* calibration = nullptr);

  // `routing`: an expert all-to-all of a per-rank dispatch, whose network share goes per node on
  // GPU clusters (per_node_all_to_all_time); ignored elsewhere.
  double collective_seconds(CommGroup group, CollectiveKind kind, double bytes, PerRankRouting routing = {}) const;
  double p2p_seconds(double bytes) const;  // pipeline neighbour send

  const TorusMapping& torus() const { return torus_; }
  NodeSpread spread(CommGroup group) const;  // GPU clusters only

 private:
  double gpu_collective(NodeSpread s, CollectiveKind kind, double bytes, PerRankRouting routing = {}) const;
  double single_machine_collective(CommGroup group, CollectiveKind kind, double bytes) const;
  System system_;
  Layout layout_;
  const Calibration* calibration_;
  TorusMapping torus_;
  TorusSegments ep_segments_, edp_segments_;  // TPU with expert parallelism (split_expert_groups)
};

// Of a per-rank dispatch's all-to-all buffer over `s`'s ranks, the share the network sees when a
// token goes once to each node holding its experts: the distinct nodes over the distinct ranks a
// token reaches (groups_per_token in model/model_spec.h).
double per_node_network_share(PerRankRouting routing, NodeSpread s);

// True when the layout's groups fit the system's topology (a TPU slice exists; pods only on TPU).
bool layout_fits_system(const System& system, const Layout& layout);

}  // namespace palmsim
