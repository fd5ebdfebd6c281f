#pragma once
// Runs one function per rank of a pp x dp x cp x tp grid, each on its own thread (its oneTBB work
// in an arena of its share of the cores). Ranks are numbered in Megatron's order (model/rank_order.h:
// tp fastest, then cp, dp, pp), and each rank is told its coordinates. Each rank
// gets, within its pipeline stage, its tensor-parallel group (same dp and cp rank), its
// context-parallel group (same dp and tp rank), its data-parallel group (same cp and tp rank: the
// ranks that read different sequences) and the group its gradients are reduced over (dp x cp, same
// tp rank; the data-parallel group itself when cp = 1); across stages, its pipeline group (same tp,
// cp and dp rank: the stages one microbatch flows through) and the tied-embedding group (the
// pipeline group's first and last stage, which both hold the embedding); and the whole world. The first exception a rank throws is rethrown here once all threads have ended; code that
// can fail on one rank only must agree on failure collectively so the others do not wait at a
// barrier forever.
#include "kernels/communicator.h"
#include "model/rank_order.h"

#include <functional>

namespace palmsim {

struct RankContext {
  int rank = 0;
  RankCoords coords;  // tp, cp, dp rank and pipeline stage
  Communicator* tp = nullptr;
  Communicator* cp = nullptr;
  Communicator* dp = nullptr;
  Communicator* grad = nullptr;
  Communicator* pp = nullptr;         // rank() is the pipeline stage
  Communicator* embedding = nullptr;  // first and last stage only, when pp > 1
  Communicator* world = nullptr;
};

void run_on_ranks(int dp, int cp, int tp, const std::function<void(const RankContext&)>& fn, int pp = 1);

}  // namespace palmsim
