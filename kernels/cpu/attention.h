#pragma once
// Causal multi-query / grouped-query / multi-head attention as one fused op. Each (sequence, head)
// task forms its scores with a small GEMM, applies the causal softmax and multiplies by V; only the
// per-row log-sum-exp is kept for backward, which rebuilds the probabilities (flash-attention
// style: nothing of size T x T outlives the task).
//
// Layout: `qkv` rows are tokens (batch-major, seq positions inside), stride ld = (heads + 2 kv) * q:
// query heads at columns [0, heads*q), keys after them, values last. Query head h reads K/V head
// h / (heads / kv). Output `o` is [rows, heads*q].
#include <cstdint>

namespace palmsim::cpu {

struct AttentionShape {
  int64_t batch = 0, seq = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t ld() const { return (heads + 2 * kv_heads) * head_dim; }
};

// lse: [batch, heads, seq] log-sum-exp of the scaled scores, saved for backward.
template <class T>
void attention_forward(const AttentionShape& s, const T* qkv, T* o, T* lse);
// dqkv (same layout as qkv) receives dQ, dK, dV; it is overwritten.
template <class T>
void attention_backward(const AttentionShape& s, const T* qkv, const T* o, const T* lse, const T* d_o, T* dqkv);

// Some query rows of each sequence against all of its keys (context parallelism: a rank's chunks
// of the sequence against the all-gathered K/V). `rows.count` query rows per sequence sit at
// sequence positions rows.positions[i] (null: 0, 1, ...); key j is position j, and row i sees keys
// j <= its position. q: [batch * count, ldq], query heads first; kv: [batch * s.seq, ldkv], K heads
// then V heads; o: [batch * count, heads * q]; lse: [batch, heads, count]. The whole-sequence
// functions above are these with every row at its own position.
struct QueryRows {
  int64_t count = 0;
  const int32_t* positions = nullptr;
  int64_t position(int64_t i) const { return positions ? positions[i] : i; }
};
// `key_positions` (ascending, s.seq of them; null: key j at position j): the keys are a block of the
// sequence (ring attention: one rank's rows at a time). A row that sees none of them gets lse -inf
// and o 0, what merge_attention_block expects.
template <class T>
void attention_rows_forward(const AttentionShape& s, const QueryRows& rows, const T* q, int64_t ldq, const T* kv,
                            int64_t ldkv, T* o, T* lse, const int32_t* key_positions = nullptr);
// dq (stride ldq, query columns only) and dkv (stride ldkv, K and V columns: the gradient every
// row here sends to every key and value of the sequence) are overwritten. With a block of keys, o
// and lse are the rows' attention over the whole sequence (so P is each key's true probability).
template <class T>
void attention_rows_backward(const AttentionShape& s, const QueryRows& rows, const T* q, int64_t ldq, const T* kv,
                             int64_t ldkv, const T* o, const T* lse, const T* d_o, T* dq, T* dkv,
                             const int32_t* key_positions = nullptr);
// Ring attention's running result: (o, lse) over the keys seen so far becomes that over them and
// a block's, (o_block, lse_block): lse = log(e^lse + e^lse_block), o weighted by each part's share.
// o: [batch * count, heads * q]; lse: [batch, heads, count].
template <class T>
void merge_attention_block(const AttentionShape& s, int64_t count, T* o, T* lse, const T* o_block, const T* lse_block);

}  // namespace palmsim::cpu
