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
  auto world = std::make_shared<ThreadGroup>(n);
  auto groups = [](int count, int size) {
    std::vector<std::shared_ptr<ThreadGroup>> g;
    for (int i = 0; i < count; ++i) g.push_back(std::make_shared<ThreadGroup>(size));
    return g;
  };
  const auto tp_groups = groups(pp * dp * cp, tp), cp_groups = groups(pp * dp * tp, cp);
  const auto dp_groups = groups(pp * cp * tp, dp), grad_groups = groups(pp * tp, dp * cp);
  const auto pp_groups = groups(stage_ranks, pp), embedding_groups = groups(stage_ranks, 2);
  std::exception_ptr error;
  std::mutex error_mutex;
  auto body = [&](int rank) {
    const RankCoords at = megatron_coords(rank, {tp, cp, dp});
    const int in_stage = rank % stage_ranks, stage = at.pp, tp_rank = at.tp, cp_rank = at.cp, dp_rank = at.dp;
    ThreadCommunicator tp_comm(tp_groups[size_t(rank / tp)], tp_rank);
    ThreadCommunicator cp_comm(cp_groups[size_t((stage * dp + dp_rank) * tp + tp_rank)], cp_rank);
    ThreadCommunicator dp_comm(dp_groups[size_t((stage * cp + cp_rank) * tp + tp_rank)], dp_rank);
    ThreadCommunicator grad_comm(grad_groups[size_t(stage * tp + tp_rank)], in_stage / tp);
    ThreadCommunicator pp_comm(pp_groups[size_t(in_stage)], stage);
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
