#include "model/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace palmsim {
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

TEST(PipelineSchedule, ZeroBubbleH1DefersAsManyWeightGradientsAsTheStageIndex) {
  // 4 stages, 6 microbatches, stage 1: 1F1B's two warm-up forwards, then forward / input gradient
  // pairs; from the second backward on, each is followed by the weight gradient one behind it, the
  // last one at the end.
  const auto s = stage_schedule(Schedule::zero_bubble_h1, 4, 1, 1, 6);
  auto F = [](int mb) { return ChunkWork{true, mb, 0}; };
  auto B = [](int mb) { return ChunkWork{false, mb, 0}; };
  auto W = [](int mb) { return ChunkWork{false, mb, 0, true}; };
  const std::vector<ChunkWork> expected = {F(0), F(1), F(2), B(0), F(3), B(1), W(0), F(4), B(2), W(1),
                                           F(5), B(3), W(2), B(4), W(3), B(5), W(4), W(5)};
  EXPECT_EQ(s, expected);
  // Every stage: each microbatch's F, B and W once, in that order, and never more than pp
  // microbatches whose activations are held (forward done, weight gradient not): 1F1B's peak.
  for (int stage = 0; stage < 4; ++stage) {
    const auto order = stage_schedule(Schedule::zero_bubble_h1, 4, 1, stage, 8);
    std::vector<int> step(8, 0);  // 0: nothing yet, 1: F done, 2: B done, 3: W done
    int held = 0, peak = 0;
    for (const ChunkWork& w : order) {
      const int expected_step = w.forward ? 0 : w.weight ? 2 : 1;
      EXPECT_EQ(step[w.microbatch], expected_step) << "stage " << stage << " microbatch " << w.microbatch;
      step[w.microbatch] = expected_step + 1;
      held += w.forward ? 1 : w.weight ? -1 : 0;
      peak = std::max(peak, held);
    }
    for (int done : step) EXPECT_EQ(done, 3);
    EXPECT_EQ(peak, 4) << "stage " << stage;
    // Weight gradients are what the last backward no longer waits on.
    EXPECT_TRUE(order[last_backward_pass(order)] == (ChunkWork{false, 7, 0}));
  }
}

}  // namespace
}  // namespace palmsim
