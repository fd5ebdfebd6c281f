#pragma once
// Megatron-LM's rank order (megatron/core/parallel_state.py, order "tp-cp-ep-dp-pp" with ep folded
// into dp): tensor-parallel ranks fastest, then context, then data, then pipeline,
//   rank = ((pp * dp_size + dp) * cp_size + cp) * tp_size + tp.
// The one place palmsim writes it: the CPU trainer's thread ranks (kernels/rank_grid.cpp) and the
// simulator's GPU placement (sim/simgrid/chip_placement.cpp) derive their coordinates here, and
// every group of ranks (megatron_group below) is a slice of it: the closed form's placement of a
// group on nodes (CommModel::spread), the simulator's rings and the trainer's communicators.
#include "model/comm_group.h"
#include "model/layout.h"

namespace palmsim {

struct RankCoords {
  int tp = 0, cp = 0, dp = 0, pp = 0;
};

struct RankGridSizes {
  int tp = 1, cp = 1, dp = 1;  // pp needs no size for the order: it is the slowest digit
  int pp = 1, ep = 1, etp = 1;  // for the groups
};

inline RankCoords megatron_coords(int rank, const RankGridSizes& s) {
  return {rank % s.tp, rank / s.tp % s.cp, rank / (s.tp * s.cp) % s.dp, rank / (s.tp * s.cp * s.dp)};
}

inline int megatron_rank(const RankCoords& c, const RankGridSizes& s) {
  return c.tp + s.tp * (c.cp + s.cp * (c.dp + s.dp * c.pp));
}

// A group of ranks in that order: `size` members `stride` ranks apart. Member m of the group of
// rank r is r + (m - member(r)) * stride. Adding a parallel dimension is one entry here.
struct RankGroup {
  int size = 1, stride = 1;
};

inline RankGroup megatron_group(CommGroup g, const RankGridSizes& s) {
  switch (g) {
    case CommGroup::tp: return {s.tp, 1};
    case CommGroup::cp: return {s.cp, s.tp};
    case CommGroup::dp: return {s.dp * s.cp, s.tp};  // the weights' replicas: dp x cp
    case CommGroup::pp: return {s.pp, s.tp * s.cp * s.dp};
    // The MoE layers fold the tp x cp x dp ranks of a stage into etp x ep x edp, etp fastest
    // (Megatron-Core's parallel folding, its expert order "tp-ep-dp-pp" with tp = the expert
    // tensor-parallel size): etp neighbours split the same experts, ep groups etp apart hold
    // different ones, and the ranks ep x etp apart hold the same expert shards.
    case CommGroup::etp: return {s.etp, 1};
    case CommGroup::ep: return {s.ep, s.etp};
    case CommGroup::edp: {
      const int expert_ranks = s.ep * s.etp;
      return {expert_ranks > 1 ? s.tp * s.cp * s.dp / expert_ranks : 1, expert_ranks};
    }
    case CommGroup::cross_pod: return {1, 1};  // GPU clusters are one pod
  }
  return {};
}

// A layout's sizes (one pod: GPU clusters and the CPU trainer).
inline RankGridSizes grid_sizes(const Layout& l) { return {l.tp, l.cp, l.dp, l.pp, l.ep, l.etp}; }
inline RankGroup megatron_group(CommGroup g, const Layout& l) { return megatron_group(g, grid_sizes(l)); }

inline int group_member(int rank, const RankGroup& g) { return rank / g.stride % g.size; }
inline int group_peer(int rank, const RankGroup& g, int member) {
  return rank + (member - group_member(rank, g)) * g.stride;
}

}  // namespace palmsim
