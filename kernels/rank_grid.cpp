#include "kernels/rank_grid.h"

#include "kernels/thread_communicator.h"

#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace palmsim {

void run_on_ranks(int dp, int tp, const std::function<void(const RankContext&)>& fn) {
  const int n = dp * tp;
  auto world = std::make_shared<ThreadGroup>(n);
  std::vector<std::shared_ptr<ThreadGroup>> tp_groups, dp_groups;
  for (int i = 0; i < dp; ++i) tp_groups.push_back(std::make_shared<ThreadGroup>(tp));
  for (int i = 0; i < tp; ++i) dp_groups.push_back(std::make_shared<ThreadGroup>(dp));
  std::exception_ptr error;
  std::mutex error_mutex;
  auto body = [&](int rank) {
    const int dp_rank = rank / tp, tp_rank = rank % tp;
    ThreadCommunicator tp_comm(tp_groups[size_t(dp_rank)], tp_rank);
    ThreadCommunicator dp_comm(dp_groups[size_t(tp_rank)], dp_rank);
    ThreadCommunicator world_comm(world, rank);
    try {
      fn(RankContext{rank, &tp_comm, &dp_comm, &world_comm});
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  if (n == 1) {
    body(0);
  } else {
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r) threads.emplace_back(body, r);
    for (auto& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace palmsim
