// Megatron's rank order by hand, and the round trip every consumer relies on.
#include "model/rank_order.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace palmsim
