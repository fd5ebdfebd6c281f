#include "kernels/thread_communicator.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace palmsim {

template <class T>
void ThreadCommunicator::all_reduce_impl(T* data, size_t n) {
  const int p = size();
  if (p == 1) return;
  group_->buffers_[size_t(rank_)] = data;
  barrier();
  // This rank owns elements [begin, end): it alone reads and writes them in every buffer.
  const size_t begin = n * size_t(rank_) / size_t(p), end = n * size_t(rank_ + 1) / size_t(p);
  std::vector<T> sum(end - begin, T(0));
  for (int r = 0; r < p; ++r) {
    const T* src = static_cast<const T*>(group_->buffers_[size_t(r)]);
    for (size_t i = begin; i < end; ++i) sum[i - begin] += src[i];
  }
  for (int r = 0; r < p; ++r) {
    T* dst = const_cast<T*>(static_cast<const T*>(group_->buffers_[size_t(r)]));
    std::copy(sum.begin(), sum.end(), dst + begin);
  }
  barrier();
}

void ThreadCommunicator::reduce_scatter(const float* in, float* out, size_t n) {
  const int p = size();
  group_->buffers_[size_t(rank_)] = in;
  barrier();
  std::fill(out, out + n, 0.0f);
  for (int r = 0; r < p; ++r) {
    const float* src = static_cast<const float*>(group_->buffers_[size_t(r)]) + size_t(rank_) * n;
    for (size_t i = 0; i < n; ++i) out[i] += src[i];
  }
  barrier();
}

void ThreadCommunicator::all_gather(const float* in, float* out, size_t n) {
  const int p = size();
  group_->buffers_[size_t(rank_)] = in;
  barrier();
  for (int r = 0; r < p; ++r)
    std::memcpy(out + size_t(r) * n, group_->buffers_[size_t(r)], n * sizeof(float));
  barrier();
}

void ThreadCommunicator::broadcast(float* data, size_t n, int root) {
  group_->buffers_[size_t(rank_)] = data;
  barrier();
  if (rank_ != root) std::memcpy(data, group_->buffers_[size_t(root)], n * sizeof(float));
  barrier();
}

void ThreadCommunicator::all_to_all(const float* in, const std::vector<size_t>& send_counts, float* out,
                                    const std::vector<size_t>& recv_counts) {
  const size_t p = size_t(size());
  if (send_counts.size() != p || recv_counts.size() != p)
    throw std::logic_error("all_to_all needs one send and one receive count per rank");
  group_->buffers_[size_t(rank_)] = in;
  group_->counts_[size_t(rank_)] = &send_counts;
  barrier();
  for (size_t s = 0; s < p; ++s) {
    const std::vector<size_t>& theirs = *group_->counts_[s];
    size_t offset = 0;  // rank s's block for this rank starts after its blocks for ranks below
    for (size_t r = 0; r < size_t(rank_); ++r) offset += theirs[r];
    // A mismatch is a bug in the caller; copying the smaller count keeps the other ranks' memory safe.
    std::memcpy(out, static_cast<const float*>(group_->buffers_[s]) + offset,
                std::min(recv_counts[s], theirs[size_t(rank_)]) * sizeof(float));
    out += recv_counts[s];
  }
  barrier();
}

void ThreadCommunicator::send(const float* data, size_t n, int peer, int tag) {
  {
    std::lock_guard<std::mutex> lock(group_->mailbox_mutex_);
    group_->mailboxes_[{rank_, peer, tag}].emplace_back(data, data + n);
  }
  group_->mailbox_cv_.notify_all();
}

void ThreadCommunicator::wait_for(int peer, int tag) {
  std::unique_lock<std::mutex> lock(group_->mailbox_mutex_);
  auto& box = group_->mailboxes_[{peer, rank_, tag}];
  group_->mailbox_cv_.wait(lock, [&] { return !box.empty(); });
}

void ThreadCommunicator::recv(float* data, size_t n, int peer, int tag) {
  std::unique_lock<std::mutex> lock(group_->mailbox_mutex_);
  auto& box = group_->mailboxes_[{peer, rank_, tag}];
  group_->mailbox_cv_.wait(lock, [&] { return !box.empty(); });
  std::copy_n(box.front().begin(), std::min(n, box.front().size()), data);
  box.pop_front();
}

}  // namespace palmsim
