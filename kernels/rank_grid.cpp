#include "kernels/rank_grid.h"

#include "kernels/thread_communicator.h"

#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace palmsim {

void run_on_ranks(int dp, int cp, int tp, const std::function<void(const RankContext&)>& fn, int pp) {
  const int stage_ranks = dp * cp * tp, n = pp * stage_ranks;
  const RankGridSizes sizes{tp, cp, dp, pp, 1};
  auto world = std::make_shared<ThreadGroup>(n);
  // Every group of a kind, indexed by its first member's rank (model/rank_order.h's table).
  auto groups = [n](const RankGroup& g) {
    std::vector<std::shared_ptr<ThreadGroup>> by_first(size_t(n), nullptr);
    for (int rank = 0; rank < n; ++rank)
      if (group_member(rank, g) == 0) by_first[size_t(rank)] = std::make_shared<ThreadGroup>(g.size);
    return by_first;
  };
  // The data-parallel ranks of one context-parallel rank (data loading, ZeRO-1 without cp): dp of
  // them, tp x cp apart; the weights' replicas (CommGroup::dp) add the cp ranks between.
  const RankGroup tp_group = megatron_group(CommGroup::tp, sizes), cp_group = megatron_group(CommGroup::cp, sizes);
  const RankGroup dp_group{dp, tp * cp}, grad_group = megatron_group(CommGroup::dp, sizes);
  const RankGroup pp_group = megatron_group(CommGroup::pp, sizes);
  const auto tp_groups = groups(tp_group), cp_groups = groups(cp_group), dp_groups = groups(dp_group);
  const auto grad_groups = groups(grad_group), pp_groups = groups(pp_group);
  // The first and last stages' copies of the embedding (tied weights under a pipeline).
  std::vector<std::shared_ptr<ThreadGroup>> embedding_groups;
  for (int i = 0; i < stage_ranks; ++i) embedding_groups.push_back(std::make_shared<ThreadGroup>(2));
  std::exception_ptr error;
  std::mutex error_mutex;
  auto body = [&](int rank) {
    const RankCoords at = megatron_coords(rank, sizes);
    const int in_stage = rank % stage_ranks, stage = at.pp;
    auto comm = [rank](const std::vector<std::shared_ptr<ThreadGroup>>& of, const RankGroup& g) {
      return ThreadCommunicator(of[size_t(group_peer(rank, g, 0))], group_member(rank, g));
    };
    ThreadCommunicator tp_comm = comm(tp_groups, tp_group), cp_comm = comm(cp_groups, cp_group);
    ThreadCommunicator dp_comm = comm(dp_groups, dp_group), grad_comm = comm(grad_groups, grad_group);
    ThreadCommunicator pp_comm = comm(pp_groups, pp_group);
    ThreadCommunicator embedding_comm(embedding_groups[size_t(in_stage)], stage == 0 ? 0 : 1);
    ThreadCommunicator world_comm(world, rank);
    const bool holds_embedding = pp > 1 && (stage == 0 || stage == pp - 1);
    try {
      fn(RankContext{rank, at, &tp_comm, &cp_comm, &dp_comm, cp > 1 ? &grad_comm : &dp_comm, &pp_comm,
                     holds_embedding ? &embedding_comm : nullptr, &world_comm});
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  if (n == 1) {
    body(0);
  } else {
    // Each rank is a chip with its share of the cores: its oneTBB loops run in an arena of
    // cores / ranks threads (one on 2 cores and 2 ranks). Sharing one pool, the ranks' element-wise
    // loops woke workers onto the cores the other ranks' GEMMs were using, and on 2 cores rank 1
    // reached the gradient all-reduce ~40 ms (8 %) after rank 0, step after step.
    const size_t cap = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
    const int cores = int(std::min<size_t>(cap, std::max(1u, std::thread::hardware_concurrency())));
    const int per_rank = std::max(1, cores / n);
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r)
      threads.emplace_back([&, r] {
        tbb::task_arena arena(per_rank);
        arena.execute([&] { body(r); });
      });
    for (auto& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace palmsim
