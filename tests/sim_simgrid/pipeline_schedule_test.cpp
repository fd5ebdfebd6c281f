#include "sim/simgrid/pipeline_schedule.h"

#include <gtest/gtest.h>

namespace palmsim::simulation {
namespace {

TEST(PipelineSchedule, OneFOneBWarmsUpByDistanceToTheLastStage) {
  // 4 stages, 6 microbatches, stage 1: two warm-up forwards, then alternate, then cool down.
  const auto s = stage_schedule(Schedule::one_f_one_b, 4, 1, 1, 6);
  const std::vector<ChunkWork> expected = {{true, 0, 0},  {true, 1, 0},  {true, 2, 0},  {false, 0, 0},
                                           {true, 3, 0},  {false, 1, 0}, {true, 4, 0},  {false, 2, 0},
                                           {true, 5, 0},  {false, 3, 0}, {false, 4, 0}, {false, 5, 0}};
  EXPECT_EQ(s, expected);
}

TEST(PipelineSchedule, GpipeRunsAllForwardsFirst) {
  const auto s = stage_schedule(Schedule::gpipe, 2, 1, 0, 3);
  ASSERT_EQ(s.size(), 6u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(s[i].forward);
  for (int i = 3; i < 6; ++i) EXPECT_FALSE(s[i].forward);
}

TEST(PipelineSchedule, InterleavedEveryChunkOfEveryMicrobatchOnce) {
  const auto s = stage_schedule(Schedule::interleaved, 4, 2, 0, 8);
  ASSERT_EQ(s.size(), 2u * 8 * 2);
  int forwards = 0;
  for (const auto& w : s) forwards += w.forward;
  EXPECT_EQ(forwards, 16);
  // Stage 0 warms up with (pp - 1) * 2 + (vpp - 1) * pp = 10 forwards: chunk 0 for microbatches
  // 0-3, chunk 1 for 0-3, chunk 0 for 4-5.
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(s[i].forward);
  EXPECT_EQ(s[4], (ChunkWork{true, 0, 1}));
  EXPECT_EQ(s[8], (ChunkWork{true, 4, 0}));
  EXPECT_EQ(s[11], (ChunkWork{false, 0, 1}));  // the first backward runs the last chunk
}

}  // namespace
}  // namespace palmsim::simulation
