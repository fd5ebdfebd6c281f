#include "kernels/context_parallel.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

namespace palmsim {

std::vector<int32_t> context_positions(int64_t seq, int cp, int rank) {
  if (cp < 1 || rank < 0 || rank >= cp || seq % (2 * cp) != 0)
    throw std::invalid_argument("context parallelism needs seq_len a multiple of 2 * cp");
  const int64_t chunk = seq / (2 * cp);
  std::vector<int32_t> positions;
  positions.reserve(size_t(2 * chunk));
  for (const int64_t c : {int64_t(rank), int64_t(2 * cp - 1 - rank)})
    for (int64_t i = 0; i < chunk; ++i) positions.push_back(int32_t(c * chunk + i));
  return positions;
}

template <class T>
ContextParallel<T>::ContextParallel(int cp, int rank, int64_t seq) : cp_(cp), rank_(rank), seq_(seq), rows_(seq / cp) {
  for (int r = 0; r < cp; ++r) positions_.push_back(context_positions(seq, cp, r));
}

template <class T>
void ContextParallel<T>::select(const int32_t* full, int64_t batch, std::vector<int32_t>& mine) const {
  const int32_t* pos = positions();
  mine.resize(size_t(batch * rows_));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < rows_; ++i) mine[size_t(b * rows_ + i)] = full[b * seq_ + pos[i]];
}

template <class T>
void ContextParallel<T>::gather_kv(Communicator* group, const T* qkv, int64_t batch, int64_t ld, int64_t kv_offset,
                                   int64_t kv_cols, std::vector<T>& kv) {
  const int64_t n = batch * rows_, cp = cp_;
  own_kv(qkv, batch, ld, kv_offset, kv_cols, mine_);
  blocks_.resize(size_t(cp * n * kv_cols));
  if constexpr (std::is_same_v<T, float>)
    group->all_gather(mine_.data(), blocks_.data(), mine_.size());
  else
    throw std::logic_error("context parallelism exchanges float tensors only");
  kv.resize(size_t(batch * seq_ * kv_cols));
  for (int64_t c = 0; c < cp; ++c)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < rows_; ++i)
        std::copy_n(blocks_.data() + ((c * batch + b) * rows_ + i) * kv_cols, kv_cols,
                    kv.data() + (b * seq_ + positions_[size_t(c)][size_t(i)]) * kv_cols);
}

template <class T>
void ContextParallel<T>::reduce_scatter_dkv(Communicator* group, const std::vector<T>& dkv, int64_t batch,
                                            int64_t kv_cols, T* dqkv, int64_t ld, int64_t kv_offset) {
  const int64_t n = batch * rows_, cp = cp_;
  blocks_.resize(size_t(cp * n * kv_cols));
  for (int64_t c = 0; c < cp; ++c)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < rows_; ++i)
        std::copy_n(dkv.data() + (b * seq_ + positions_[size_t(c)][size_t(i)]) * kv_cols, kv_cols,
                    blocks_.data() + ((c * batch + b) * rows_ + i) * kv_cols);
  mine_.resize(size_t(n * kv_cols));
  if constexpr (std::is_same_v<T, float>)
    group->reduce_scatter(blocks_.data(), mine_.data(), mine_.size());
  else
    throw std::logic_error("context parallelism exchanges float tensors only");
  for (int64_t r = 0; r < n; ++r) std::copy_n(mine_.data() + r * kv_cols, kv_cols, dqkv + r * ld + kv_offset);
}

template <class T>
void ContextParallel<T>::own_kv(const T* qkv, int64_t batch, int64_t ld, int64_t kv_offset, int64_t kv_cols,
                                std::vector<T>& block) const {
  const int64_t n = batch * rows_;
  block.resize(size_t(n * kv_cols));
  for (int64_t r = 0; r < n; ++r) std::copy_n(qkv + r * ld + kv_offset, kv_cols, block.data() + r * kv_cols);
}

template <class T>
void ContextParallel<T>::ring_pass(Communicator* group, std::vector<T>& block, int tag) {
  if constexpr (std::is_same_v<T, float>) {
    const int next = (rank_ + 1) % cp_, previous = (rank_ + cp_ - 1) % cp_;
    group->send(block.data(), block.size(), next, tag);  // buffered: the ring cannot deadlock
    group->recv(block.data(), block.size(), previous, tag);
  } else {
    (void)group, (void)block, (void)tag;
    throw std::logic_error("context parallelism exchanges float tensors only");
  }
}

template class ContextParallel<float>;
template class ContextParallel<double>;

}  // namespace palmsim
