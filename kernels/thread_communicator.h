#pragma once
// Ranks as threads of one process: collectives read each other's buffers after a barrier. Each
// rank reduces its own slice, summing ranks 0..n-1 in order, so every run gives the same bits.
// Point-to-point sends are buffered (copied into the receiver's mailbox): a sender never waits.
#include "kernels/communicator.h"

#include <barrier>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

namespace palmsim {

// What the ranks of one group share.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), sync_(size), buffers_(size_t(size), nullptr) {}
  int size() const { return size_; }

 private:
  friend class ThreadCommunicator;
  int size_;
  std::barrier<> sync_;
  std::vector<const void*> buffers_;
  std::vector<const std::vector<size_t>*> counts_{size_t(size_), nullptr};  // all_to_all's send counts
  std::mutex mailbox_mutex_;
  std::condition_variable mailbox_cv_;
  std::map<std::tuple<int, int, int>, std::deque<std::vector<float>>> mailboxes_;  // (from, to, tag)
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<ThreadGroup> group, int rank) : group_(std::move(group)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  void all_reduce(float* data, size_t n) override { all_reduce_impl(data, n); }
  void all_reduce(double* data, size_t n) override { all_reduce_impl(data, n); }
  void reduce_scatter(const float* in, float* out, size_t n) override;
  void all_gather(const float* in, float* out, size_t n) override;
  void broadcast(float* data, size_t n, int root) override;
  void all_to_all(const float* in, const std::vector<size_t>& send_counts, float* out,
                  const std::vector<size_t>& recv_counts) override;
  void send(const float* data, size_t n, int peer, int tag) override;
  void recv(float* data, size_t n, int peer, int tag) override;
  void wait_for(int peer, int tag) override;
  void barrier() override { group_->sync_.arrive_and_wait(); }

 private:
  template <class T>
  void all_reduce_impl(T* data, size_t n);
  std::shared_ptr<ThreadGroup> group_;
  int rank_;
};

}  // namespace palmsim
