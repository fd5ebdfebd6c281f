#pragma once
// Megatron-LM's rank order (megatron/core/parallel_state.py, order "tp-cp-ep-dp-pp" with ep folded
// into dp): tensor-parallel ranks fastest, then context, then data, then pipeline,
//   rank = ((pp * dp_size + dp) * cp_size + cp) * tp_size + tp.
// The one place palmsim writes it: the CPU trainer's thread ranks (kernels/rank_grid.cpp) and the
// simulator's GPU placement (sim/simgrid/chip_placement.cpp) both derive their coordinates here.
namespace palmsim {

struct RankCoords {
  int tp = 0, cp = 0, dp = 0, pp = 0;
};

struct RankGridSizes {
  int tp = 1, cp = 1, dp = 1;  // pp needs no size: it is the slowest digit
};

inline RankCoords megatron_coords(int rank, const RankGridSizes& s) {
  return {rank % s.tp, rank / s.tp % s.cp, rank / (s.tp * s.cp) % s.dp, rank / (s.tp * s.cp * s.dp)};
}

inline int megatron_rank(const RankCoords& c, const RankGridSizes& s) {
  return c.tp + s.tp * (c.cp + s.cp * (c.dp + s.dp * c.pp));
}

}  // namespace palmsim
