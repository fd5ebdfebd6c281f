// Context parallelism's pieces against the whole-sequence ops they split: the load-balanced chunks
// by hand, RoPE at given positions, and attention of a rank's rows against the gathered K/V, whose
// outputs and dQ are those rows of whole-sequence attention and whose dK/dV sum over the ranks to
// its dK/dV (double precision). The trainer with cp 2 and 4 against one rank:
// parallel_equivalence_test.cpp.
#include "finite_difference.h"
#include "kernels/context_parallel.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/rope.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

using testing_fd::random_vector;

TEST(ContextParallel, ChunksAreLoadBalancedByHand) {
  // 8 tokens, cp 2: chunks {0,1} {2,3} {4,5} {6,7}; rank 0 holds the first and last, rank 1 the middle.
  EXPECT_EQ(context_positions(8, 2, 0), (std::vector<int32_t>{0, 1, 6, 7}));
  EXPECT_EQ(context_positions(8, 2, 1), (std::vector<int32_t>{2, 3, 4, 5}));
  EXPECT_EQ(context_positions(8, 4, 3), (std::vector<int32_t>{3, 4}));
  // Every rank's queries see the same number of keys under the causal mask: 1+2+7+8 = 3+4+5+6.
  EXPECT_THROW(context_positions(6, 2, 0), std::invalid_argument);  // 6 tokens do not make 4 chunks
}

TEST(ContextParallel, RopeAtPositionsIsThoseRowsOfTheWholeSequence) {
  const int64_t seq = 8, heads = 2, q = 4, ld = heads * q;
  const auto x = random_vector(size_t(seq * ld), 21);
  std::vector<double> whole = x;
  cpu::rope_forward(whole.data(), seq, ld, heads, q, seq);
  const std::vector<int32_t> pos = context_positions(seq, 2, 0);
  std::vector<double> mine;
  for (int32_t p : pos) mine.insert(mine.end(), x.begin() + p * ld, x.begin() + (p + 1) * ld);
  cpu::rope_forward(mine.data(), int64_t(pos.size()), ld, heads, q, int64_t(pos.size()), pos.data());
  for (size_t i = 0; i < pos.size(); ++i)
    for (int64_t c = 0; c < ld; ++c)
      EXPECT_NEAR(mine[i * size_t(ld) + size_t(c)], whole[size_t(pos[i] * ld + c)], 1e-14);
}

// Rows of `from` (stride ld) at each sequence's positions, batch after batch.
std::vector<double> rows_at(const std::vector<double>& from, int64_t batch, int64_t seq, int64_t ld,
                            const std::vector<int32_t>& pos) {
  std::vector<double> out;
  for (int64_t b = 0; b < batch; ++b)
    for (int32_t p : pos) {
      const auto row = from.begin() + (b * seq + p) * ld;
      out.insert(out.end(), row, row + ld);
    }
  return out;
}

TEST(ContextParallel, AttentionOfARanksRowsIsThoseRowsOfTheWholeSequence) {
  const cpu::AttentionShape s{2, 8, 4, 2, 4};
  const int64_t ld = s.ld(), hq = s.heads * s.head_dim, kvq = ld - hq, n = s.batch * s.seq;
  const auto qkv = random_vector(size_t(n * ld), 22), d_o = random_vector(size_t(n * hq), 23);
  std::vector<double> o(size_t(n * hq)), lse(size_t(s.batch * s.heads * s.seq)), dqkv(qkv.size());
  cpu::attention_forward(s, qkv.data(), o.data(), lse.data());
  cpu::attention_backward(s, qkv.data(), o.data(), lse.data(), d_o.data(), dqkv.data());
  for (int cp : {2, 4}) {
    std::vector<double> dkv_sum(size_t(n * ld), 0.0);  // K/V gradients at kv's stride ld
    for (int r = 0; r < cp; ++r) {
      const std::vector<int32_t> pos = context_positions(s.seq, cp, r);
      const cpu::QueryRows rows{int64_t(pos.size()), pos.data()};
      const std::vector<double> q = rows_at(qkv, s.batch, s.seq, ld, pos), mine_d_o = rows_at(d_o, s.batch, s.seq, hq, pos);
      std::vector<double> mine_o(mine_d_o.size()), mine_lse(size_t(s.batch * s.heads * rows.count));
      cpu::attention_rows_forward(s, rows, q.data(), ld, qkv.data() + hq, ld, mine_o.data(), mine_lse.data());
      EXPECT_EQ(mine_o, rows_at(o, s.batch, s.seq, hq, pos)) << "cp " << cp << " rank " << r;
      std::vector<double> dq(q.size(), 0.0), dkv(size_t(n * ld), 0.0);
      cpu::attention_rows_backward(s, rows, q.data(), ld, qkv.data() + hq, ld, mine_o.data(), mine_lse.data(),
                                   mine_d_o.data(), dq.data(), dkv.data());
      const std::vector<double> whole_dq = rows_at(dqkv, s.batch, s.seq, ld, pos);
      for (size_t i = 0; i < dq.size(); ++i)
        if (int64_t(i) % ld < hq) EXPECT_NEAR(dq[i], whole_dq[i], 1e-13) << "dq, cp " << cp << " rank " << r;
      for (size_t i = 0; i < dkv.size(); ++i) dkv_sum[i] += dkv[i];
    }
    for (int64_t row = 0; row < n; ++row)
      for (int64_t c = 0; c < kvq; ++c)
        EXPECT_NEAR(dkv_sum[size_t(row * ld + c)], dqkv[size_t(row * ld + hq + c)], 1e-13) << "dK/dV, cp " << cp;
  }
}

// Ring attention by blocks: a rank's rows against one rank's K/V block at a time (keys at that
// rank's positions; some rows see none of a block), merged by log-sum-exp, give the rows' attention
// over the whole sequence; backward against each block with the merged o and lse gives each block's
// share of dQ and the block's dK/dV, whose sums are the whole sequence's. Against the whole-
// sequence kernels (double precision).
TEST(ContextParallel, RingAttentionByBlocksIsTheWholeSequences) {
  const cpu::AttentionShape s{2, 8, 4, 2, 4};
  const int64_t ld = s.ld(), hq = s.heads * s.head_dim, kvq = ld - hq, n = s.batch * s.seq;
  const auto qkv = random_vector(size_t(n * ld), 31), d_o = random_vector(size_t(n * hq), 32);
  std::vector<double> o(size_t(n * hq)), lse(size_t(s.batch * s.heads * s.seq)), dqkv(qkv.size());
  cpu::attention_forward(s, qkv.data(), o.data(), lse.data());
  cpu::attention_backward(s, qkv.data(), o.data(), lse.data(), d_o.data(), dqkv.data());
  for (int cp : {2, 4}) {
    cpu::AttentionShape block = s;
    block.seq = s.seq / cp;
    std::vector<std::vector<int32_t>> pos;
    std::vector<std::vector<double>> kv;  // each rank's K/V block, [batch * rows, kvq]
    for (int r = 0; r < cp; ++r) {
      pos.push_back(context_positions(s.seq, cp, r));
      const std::vector<double> rows = rows_at(qkv, s.batch, s.seq, ld, pos.back());
      std::vector<double> mine;
      for (size_t i = 0; i < rows.size(); i += size_t(ld)) mine.insert(mine.end(), rows.begin() + long(i) + hq, rows.begin() + long(i) + ld);
      kv.push_back(mine);
    }
    std::vector<double> dkv_sum(size_t(cp) * kv[0].size(), 0.0);
    for (int r = 0; r < cp; ++r) {
      const cpu::QueryRows rows{int64_t(pos[size_t(r)].size()), pos[size_t(r)].data()};
      const std::vector<double> q = rows_at(qkv, s.batch, s.seq, ld, pos[size_t(r)]);
      const std::vector<double> mine_d_o = rows_at(d_o, s.batch, s.seq, hq, pos[size_t(r)]);
      std::vector<double> mine_o(mine_d_o.size()), mine_lse(size_t(s.batch * s.heads * rows.count));
      std::vector<double> part_o(mine_o.size()), part_lse(mine_lse.size());
      for (int t = 0; t < cp; ++t) {  // the ring's order: own block first, then rank r - t's
        const int owner = (r + cp - t) % cp;
        double* out_o = t == 0 ? mine_o.data() : part_o.data();
        double* out_lse = t == 0 ? mine_lse.data() : part_lse.data();
        cpu::attention_rows_forward(block, rows, q.data(), ld, kv[size_t(owner)].data(), kvq, out_o, out_lse,
                                    pos[size_t(owner)].data());
        if (t > 0) cpu::merge_attention_block(block, rows.count, mine_o.data(), mine_lse.data(), out_o, out_lse);
      }
      const std::vector<double> whole_o = rows_at(o, s.batch, s.seq, hq, pos[size_t(r)]);
      for (size_t i = 0; i < mine_o.size(); ++i) EXPECT_NEAR(mine_o[i], whole_o[i], 1e-13) << "o, cp " << cp << " rank " << r;
      std::vector<double> dq_sum(q.size(), 0.0), dq(q.size()), dkv(kv[0].size());
      for (int owner = 0; owner < cp; ++owner) {
        cpu::attention_rows_backward(block, rows, q.data(), ld, kv[size_t(owner)].data(), kvq, mine_o.data(),
                                     mine_lse.data(), mine_d_o.data(), dq.data(), dkv.data(), pos[size_t(owner)].data());
        for (size_t i = 0; i < dq.size(); ++i) dq_sum[i] += int64_t(i) % ld < hq ? dq[i] : 0.0;
        for (size_t i = 0; i < dkv.size(); ++i) dkv_sum[size_t(owner) * dkv.size() + i] += dkv[i];
      }
      const std::vector<double> whole_dq = rows_at(dqkv, s.batch, s.seq, ld, pos[size_t(r)]);
      for (size_t i = 0; i < dq_sum.size(); ++i)
        if (int64_t(i) % ld < hq) EXPECT_NEAR(dq_sum[i], whole_dq[i], 1e-13) << "dq, cp " << cp << " rank " << r;
    }
    for (int owner = 0; owner < cp; ++owner) {
      const std::vector<double> whole = rows_at(dqkv, s.batch, s.seq, ld, pos[size_t(owner)]);
      for (int64_t row = 0; row < s.batch * block.seq; ++row)
        for (int64_t c = 0; c < kvq; ++c)
          EXPECT_NEAR(dkv_sum[size_t(owner) * kv[0].size() + size_t(row * kvq + c)], whole[size_t(row * ld + hq + c)], 1e-13)
              << "dK/dV, cp " << cp << " owner " << owner;
    }
  }
}

}  // namespace
}  // namespace palmsim
