#pragma once
// One process per GPU rank: forks `ranks` children, runs `rank_main(rank)` in each and waits for
// all. Call it before this process touches CUDA (a CUDA context does not survive fork). A child's
// exit status is what rank_main returns; an exception it lets escape is printed and gives 1.
#include <functional>

namespace palmsim::cuda {

// The largest exit status of the children (0 when every rank succeeded).
int run_forked_ranks(int ranks, const std::function<int(int rank)>& rank_main);

}  // namespace palmsim::cuda
