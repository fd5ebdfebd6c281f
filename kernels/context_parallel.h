#pragma once
// Context parallelism in the training step: the cp ranks of a group hold different rows of the
// same sequences; every op but attention runs on a rank's own rows. Attention needs every rank's
// keys and values, in one of two ways (model/layout.h ContextComm):
// - all-gather (Llama 3, Dubey et al. 2024, Sec. 3.3.2): each attention layer all-gathers the keys
//   and values of the whole sequence, then reduce-scatters their gradients back to the rows' owners;
// - ring (ring attention; Transformer Engine's p2p): each rank's K/V block passes round the ring,
//   the rows attend to one block at a time and merge the results (cpu::merge_attention_block); in
//   backward the blocks pass round again and each block's dK/dV gathers the ranks' shares on its
//   way back to the owner (ring_pass).
//
// Rows are split load-balanced (Megatron-Core / Transformer Engine): the seq tokens are cut into
// 2 * cp equal chunks and rank r holds chunks r and 2cp - 1 - r, so that under the causal mask every
// rank's queries see the same number of keys. palmsim prices the same split (model/step_plan.cpp).
#include "kernels/communicator.h"

#include <cstdint>
#include <vector>

namespace palmsim {

// The sequence positions of rank `rank`'s seq / cp rows, in the order the rank holds them.
// seq must be a multiple of 2 * cp.
std::vector<int32_t> context_positions(int64_t seq, int cp, int rank);

template <class T>
class ContextParallel {
 public:
  // Rank `rank` of a cp group of `cp` ranks (cp > 1); sequences of `seq` tokens. The group itself
  // is passed to each exchange, so nothing here outlives it.
  ContextParallel(int cp, int rank, int64_t seq);

  bool is_for(int cp, int rank, int64_t seq) const { return cp == cp_ && rank == rank_ && seq == seq_; }
  int64_t rows() const { return rows_; }  // this rank's rows of each sequence
  const int32_t* positions() const { return positions_[size_t(rank_)].data(); }
  // This rank's rows of `batch` sequences of token ids (or targets).
  void select(const int32_t* full, int64_t batch, std::vector<int32_t>& mine) const;
  // K and V of `batch` whole sequences, [batch * seq, kv_cols], from every rank's rows: the kv_cols
  // columns of `qkv` (stride ld) starting at kv_offset.
  void gather_kv(Communicator* group, const T* qkv, int64_t batch, int64_t ld, int64_t kv_offset, int64_t kv_cols,
                 std::vector<T>& kv);
  // The reverse: each rank's rows of the whole-sequence gradient `dkv`, summed over the ranks, written
  // to the kv_cols columns of `dqkv` (stride ld) at kv_offset.
  void reduce_scatter_dkv(Communicator* group, const std::vector<T>& dkv, int64_t batch, int64_t kv_cols, T* dqkv,
                          int64_t ld, int64_t kv_offset);

  // Ring attention. The sequence positions of rank `owner`'s rows (ascending).
  const int32_t* positions_of(int owner) const { return positions_[size_t(owner)].data(); }
  // This rank's K/V block, [batch * rows, kv_cols], from the kv_cols columns of `qkv` at kv_offset.
  void own_kv(const T* qkv, int64_t batch, int64_t ld, int64_t kv_offset, int64_t kv_cols, std::vector<T>& block) const;
  // Sends `block` to the next rank of the ring and puts the previous rank's in its place (tag: one
  // per kind of block, so K/V and dK/dV passing at once do not mix).
  void ring_pass(Communicator* group, std::vector<T>& block, int tag);

 private:
  int cp_, rank_;
  int64_t seq_, rows_;
  std::vector<std::vector<int32_t>> positions_;  // every rank's
  std::vector<T> mine_, blocks_;                 // scratch kept between calls
};

}  // namespace palmsim
