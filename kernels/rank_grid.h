#pragma once
// Runs one function per rank of a dp x tp grid, each on its own thread (its oneTBB work in an arena
// of its share of the cores), with its tensor-parallel
// group (same dp rank), data-parallel group (same tp rank) and the whole world. The first
// exception a rank throws is rethrown here once all threads have ended; code that can fail on one
// rank only must agree on failure collectively so the others do not wait at a barrier forever.
#include "kernels/communicator.h"

#include <functional>

namespace palmsim {

struct RankContext {
  int rank = 0;
  Communicator* tp = nullptr;
  Communicator* dp = nullptr;
  Communicator* world = nullptr;
};

void run_on_ranks(int dp, int tp, const std::function<void(const RankContext&)>& fn);

}  // namespace palmsim
