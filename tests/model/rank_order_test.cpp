// Megatron's rank order by hand, and the round trip every consumer relies on.
#include "model/rank_order.h"

#include <gtest/gtest.h>

#include <vector>

namespace palmsim {
namespace {

TEST(RankOrder, TensorFastestThenContextDataPipeline) {
  const RankGridSizes s{2, 2, 3};  // tp 2, cp 2, dp 3: 12 ranks a stage
  const RankCoords five = megatron_coords(5, s);  // 5 = 1 + 2 * (0 + 2 * 1)
  EXPECT_EQ(five.tp, 1);
  EXPECT_EQ(five.cp, 0);
  EXPECT_EQ(five.dp, 1);
  EXPECT_EQ(five.pp, 0);
  const RankCoords thirteen = megatron_coords(13, s);  // the second stage's rank 1
  EXPECT_EQ(thirteen.tp, 1);
  EXPECT_EQ(thirteen.cp, 0);
  EXPECT_EQ(thirteen.dp, 0);
  EXPECT_EQ(thirteen.pp, 1);
  for (int rank = 0; rank < 48; ++rank) EXPECT_EQ(megatron_rank(megatron_coords(rank, s), s), rank);
}

// The group table by hand on tp 2 x cp 2 x dp 3 x pp 2 with ep 4 (24 ranks): each group's members
// of rank 5 (tp 1, cp 0, dp 1, stage 0), then, for every group and rank, that the members found
// through the table are exactly the ranks whose coordinates differ only where the group says.
TEST(RankOrder, EveryGroupIsASliceOfTheOrder) {
  const RankGridSizes s{2, 2, 3, 2, 4};
  auto members = [&](CommGroup g, int rank) {
    std::vector<int> out;
    const RankGroup r = megatron_group(g, s);
    for (int m = 0; m < r.size; ++m) out.push_back(group_peer(rank, r, m));
    return out;
  };
  EXPECT_EQ(members(CommGroup::tp, 5), (std::vector<int>{4, 5}));
  EXPECT_EQ(members(CommGroup::cp, 5), (std::vector<int>{5, 7}));
  EXPECT_EQ(members(CommGroup::dp, 5), (std::vector<int>{1, 3, 5, 7, 9, 11}));  // dp x cp replicas of tp 1
  EXPECT_EQ(members(CommGroup::pp, 5), (std::vector<int>{5, 17}));
  EXPECT_EQ(members(CommGroup::ep, 5), (std::vector<int>{4, 5, 6, 7}));  // folded over tp x cp x dp
  EXPECT_EQ(members(CommGroup::edp, 5), (std::vector<int>{1, 5, 9}));   // the same experts, 4 apart
  EXPECT_EQ(group_member(5, megatron_group(CommGroup::dp, s)), 2);
  for (int rank = 0; rank < 24; ++rank) {
    const RankCoords c = megatron_coords(rank, s);
    for (int peer : members(CommGroup::tp, rank)) {
      const RankCoords p = megatron_coords(peer, s);
      EXPECT_TRUE(p.cp == c.cp && p.dp == c.dp && p.pp == c.pp);
    }
    for (int peer : members(CommGroup::cp, rank)) {
      const RankCoords p = megatron_coords(peer, s);
      EXPECT_TRUE(p.tp == c.tp && p.dp == c.dp && p.pp == c.pp);
    }
    for (int peer : members(CommGroup::dp, rank)) {
      const RankCoords p = megatron_coords(peer, s);
      EXPECT_TRUE(p.tp == c.tp && p.pp == c.pp);
    }
    for (int peer : members(CommGroup::pp, rank)) {
      const RankCoords p = megatron_coords(peer, s);
      EXPECT_TRUE(p.tp == c.tp && p.cp == c.cp && p.dp == c.dp);
    }
    // Expert groups and their replicas partition a stage's ranks.
    for (int peer : members(CommGroup::ep, rank)) EXPECT_EQ(megatron_coords(peer, s).pp, c.pp);
    for (int peer : members(CommGroup::edp, rank)) EXPECT_EQ(peer % 4, rank % 4);
  }
}

}  // namespace
}  // namespace palmsim
