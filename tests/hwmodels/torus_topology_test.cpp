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

}  // namespace
}  // namespace palmsim
