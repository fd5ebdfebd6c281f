// TPU slices and where groups sit on them.
#include "hwmodels/torus_topology.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

const TorusFabric& v4() {
  static const TorusFabric f = system_preset("tpu-v4-pod").torus;
  return f;
}

TEST(TorusTopology, SliceShapesFollowTheCubeRules) {
  // 3072 chips of one v4 pod: only 12 x 16 x 16 (axes <= 16, each <= 4 or a multiple of 4).
  const auto shapes = torus_slice_shapes(v4(), 4096, 3072);
  ASSERT_EQ(shapes.size(), 1u);
  EXPECT_EQ(shapes[0], (std::array<int, 3>{12, 16, 16}));
  // 64 chips: 4x4x4 (one cube) and the sub-cube-free flat shapes 1x4x16, 2x2x16, 2x4x8, 4x... etc.
  for (const auto& s : torus_slice_shapes(v4(), 4096, 64)) {
    EXPECT_EQ(s[0] * s[1] * s[2], 64);
    for (int a : s) EXPECT_TRUE(a <= 4 || a % 4 == 0) << a;
  }
  EXPECT_TRUE(torus_slice_shapes(v4(), 4096, 6144).empty());  // more than one pod
  EXPECT_TRUE(torus_slice_shapes(v4(), 4096, 7 * 64).empty());  // 7 is neither <= 4 nor 4k
}

TEST(TorusTopology, PalmModelParallelismTakesTheTwelveAxis) {
  // PaLM per pod: 12-way model parallel x 256-way data parallel on 12 x 16 x 16. Whole axes: tp on
  // the 12 axis (an open line: 12 is not a multiple of 16), dp on both 16 axes (closed rings).
  TorusMapping m;
  ASSERT_TRUE(map_groups_on_torus(v4(), 4096, 12, 1, 256, m));
  const auto tp = m.segments(LayoutGroup::tp);
  ASSERT_EQ(tp.size(), 1u);
  EXPECT_EQ(tp[0].length, 12);
  EXPECT_FALSE(tp[0].wraps);
  const auto dp = m.segments(LayoutGroup::dp);
  ASSERT_EQ(dp.size(), 2u);
  for (const auto& s : dp) {
    EXPECT_EQ(s.length, 16);
    EXPECT_TRUE(s.wraps);
  }
}

TEST(TorusTopology, GroupsThatCannotTakeWholeAxesShareThem) {
  // 4 x 4 x 4 cube, tp = 8: no axis is 8 long, so tp spans two axes (4 x 2) and dp gets the rest.
  TorusMapping m;
  ASSERT_TRUE(map_groups_on_torus(v4(), 4096, 8, 1, 8, m));
  int tp_chips = 1, dp_chips = 1;
  for (const auto& s : m.segments(LayoutGroup::tp)) tp_chips *= s.length;
  for (const auto& s : m.segments(LayoutGroup::dp)) dp_chips *= s.length;
  EXPECT_EQ(tp_chips, 8);
  EXPECT_EQ(dp_chips, 8);
}

// Expert parallelism folds over the data-parallel ranks, axis 0's first: on PaLM's 12 x 16 x 16
// pod with tp 12 on the 12 axis, dp takes both 16 axes (rings). ep 16 takes the first whole (its
// ring; edp the other); ep 64 the first ring and 4 of the second (a line, stride 1; edp the
// remaining 4 of it, stride 4); ep 3 divides no segment: refused.
TEST(TorusTopology, ExpertGroupsSplitTheDataParallelAxes) {
  TorusMapping m;
  ASSERT_TRUE(map_groups_on_torus(v4(), 4096, 12, 1, 256, m));
  const TorusSegments dp = m.segments(LayoutGroup::dp);
  ASSERT_EQ(dp.size(), 2u);
  TorusSegments ep, edp;
  ASSERT_TRUE(m.split_expert_groups(16, ep, edp));
  ASSERT_EQ(ep.size(), 1u);
  EXPECT_EQ(ep[0].axis, dp[0].axis);
  EXPECT_EQ(ep[0].length, 16);
  EXPECT_TRUE(ep[0].wraps);
  ASSERT_EQ(edp.size(), 1u);
  EXPECT_EQ(edp[0].axis, dp[1].axis);
  ASSERT_TRUE(m.split_expert_groups(64, ep, edp));
  ASSERT_EQ(ep.size(), 2u);
  EXPECT_EQ(ep[1].length, 4);
  EXPECT_EQ(ep[1].stride, 1);
  EXPECT_FALSE(ep[1].wraps);
  ASSERT_EQ(edp.size(), 1u);
  EXPECT_EQ(edp[0].length, 4);
  EXPECT_EQ(edp[0].stride, 4);
  EXPECT_FALSE(m.split_expert_groups(3, ep, edp));
  ASSERT_TRUE(m.split_expert_groups(256, ep, edp));
  EXPECT_EQ(edp.size(), 0u);  // one copy of each expert: no expert gradient reduction
}

}  // namespace
}  // namespace palmsim
