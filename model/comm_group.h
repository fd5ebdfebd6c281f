#pragma once
// The groups of ranks palmsim's collectives run over. Their ranks in Megatron's order are
// model/rank_order.h's megatron_group, the one table every consumer derives them from.
#include <cstdint>

namespace palmsim {

// tp: the tensor-parallel ranks; cp: one sequence's ranks; dp: the ranks that hold the same
// weights (data x context parallel); pp: the pipeline's stages; ep: the expert-parallel ranks
// (all-to-all of routed tokens); etp: the ranks that split each of their experts (expert tensor
// parallelism: they gather the tokens routed to those experts and reduce-scatter the outputs);
// edp: the ranks holding the same expert shards, over which expert gradients are reduced
// (tp x dp x cp / (ep x etp)); cross_pod: the same rank of every TPU pod.
enum class CommGroup : uint8_t { tp, pp, dp, cp, ep, etp, edp, cross_pod };

}  // namespace palmsim
