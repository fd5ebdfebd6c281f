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

// Megatron-Core's combined 1F1B (PassSeconds::combined_moe). Without a pipeline
// (combined_1f1b_schedule_for_no_pipelining): F0, then F(i+1) overlapped with B(i), then the last
// backward. Interleaved: one warm-up forward more than Megatron's (pp - s - 1) * 2 + (vpp - 1) * pp,
// then every steady-state backward joins the forward before it, a later microbatch's or chunk's,
// whose input never depends on it. With unit passes whose communication is half their time, each
// of one stage's m - 1 pairs hides 0.5 + 0.5 - 0.5 / layers (PassSeconds::overlapped_seconds).
TEST(PipelineSchedule, CombinedOneFOneBPairsEachBackwardWithTheForwardBeforeIt) {
  PassSeconds combined;
  combined.combined_moe = true;
  auto F = [](int mb, int c = 0) { return ChunkWork{true, mb, c}; };
  auto B = [](int mb, int c = 0) { return ChunkWork{false, mb, c}; };
  auto PB = [](int mb, int c = 0) { ChunkWork w{false, mb, c}; w.joins_previous = true; return w; };
  EXPECT_EQ(stage_schedule(Schedule::one_f_one_b, 1, 1, 0, 4, combined),
            (std::vector<ChunkWork>{F(0), F(1), PB(0), F(2), PB(1), F(3), PB(2), B(3)}));
  const auto plain = stage_schedule(Schedule::interleaved, 4, 2, 0, 8);
  const auto paired = stage_schedule(Schedule::interleaved, 4, 2, 0, 8, combined);
  ASSERT_EQ(paired.size(), plain.size());
  for (int i = 0; i < 11; ++i) EXPECT_TRUE(paired[size_t(i)].forward) << i;  // 10 + 1 warm-up forwards
  EXPECT_EQ(paired[10], F(6));  // chunk 0's microbatches 4, 5, then 6
  for (size_t i = 11; i < paired.size(); ++i) {
    EXPECT_EQ(paired[i].joins_previous, !paired[i].forward && paired[i - 1].forward) << i;
    if (paired[i].joins_previous) {
      // The pair's forward never waits on its backward: a later microbatch, or the same one's chunk
      // whose backward has not run.
      EXPECT_TRUE(paired[i - 1].microbatch != paired[i].microbatch || paired[i - 1].chunk != paired[i].chunk);
    }
  }
  PassSeconds halves = combined;
  halves.forward_comm = halves.backward_comm = 0.5, halves.layers = 4;
  for (int m : {2, 4, 9})
    EXPECT_DOUBLE_EQ(pipeline_makespan(Schedule::one_f_one_b, 1, 1, m, halves), 2.0 * m - (m - 1) * (1.0 - 0.5 / 4))
        << m;
  for (int stage = 0; stage < 4; ++stage)  // every pass once, and the orders play out
    EXPECT_EQ(stage_schedule(Schedule::interleaved, 4, 2, stage, 8, combined).size(), 32u);
  EXPECT_GT(pipeline_makespan(Schedule::interleaved, 4, 2, 8, combined), 0.0);
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

TEST(PipelineSchedule, ZeroBubbleVPlacesTheFirstAndLastVirtualStagesOnStageZero) {
  // pp 4: stage s holds virtual stages s and 7 - s; interleaving holds s and s + 4.
  EXPECT_EQ(virtual_stage(Schedule::zero_bubble_v, 4, 0, 1), 7);
  EXPECT_EQ(virtual_stage(Schedule::zero_bubble_v, 4, 3, 0), 3);
  EXPECT_EQ(virtual_stage(Schedule::zero_bubble_v, 4, 3, 1), 4);
  EXPECT_EQ(virtual_stage(Schedule::interleaved, 4, 0, 1), 4);
  for (Schedule s : {Schedule::zero_bubble_v, Schedule::interleaved})
    for (int v = 0; v < 8; ++v) {
      const StageChunk at = stage_chunk(s, 4, v);
      EXPECT_EQ(virtual_stage(s, 4, at.stage, at.chunk), v) << to_string(s) << " virtual stage " << v;
    }
}

// Hand calculation: with one time unit per pass, the last stage receives its first forward after
// the pp - 1 stages before it ran theirs and then has 2 chunks x 3 passes per microbatch to run,
// so no order finishes before 6 m + pp - 1; the ZB-V orders reach that bound (1F1B needs
// (m + pp - 1) x 2 x 3 for the same work, ZB-H1 6 m + 2 (pp - 1)). Every stage runs each chunk's
// F, B and W of each microbatch once, in that order, holding at most 2 pp chunks' activations.
TEST(PipelineSchedule, ZeroBubbleVWithEqualPassesWaitsOnlyForTheFirstForward) {
  for (int pp : {2, 4, 8})
    for (int m : {8, 32}) {
      const PassSeconds unit;  // F = B = W = 1
      EXPECT_DOUBLE_EQ(pipeline_makespan(Schedule::zero_bubble_v, pp, 2, m, unit), 6.0 * m + pp - 1) << pp << " " << m;
      for (int stage = 0; stage < pp; ++stage) {
        std::vector<int> step(size_t(2 * m), 0);  // by chunk * m + microbatch: 0 none, 1 F, 2 B, 3 W done
        int held = 0, peak = 0;
        for (const ChunkWork& w : stage_schedule(Schedule::zero_bubble_v, pp, 2, stage, m)) {
          int& done = step[size_t(w.chunk * m + w.microbatch)];
          EXPECT_EQ(done, w.forward ? 0 : w.weight ? 2 : 1) << "pp " << pp << " stage " << stage;
          done += 1;
          held += w.forward ? 1 : w.weight ? -1 : 0;
          peak = std::max(peak, held);
        }
        for (int done : step) EXPECT_EQ(done, 3);
        EXPECT_LE(peak, 2 * pp);
      }
    }
}

// ZB-H2 plays one chunk a stage out with twice 1F1B's activations: with equal passes it loses only
// the last stage's wait for its first forward, 3 m + pp - 1 (ZB-H1's orders reach it too); with the
// input gradient slower than the forward it is never slower than ZB-H1, whose order it may run.
TEST(PipelineSchedule, ZeroBubbleH2HoldsTwicePpAndIsNeverSlowerThanH1) {
  for (int pp : {2, 4, 8})
    for (int m : {8, 32}) {
      EXPECT_DOUBLE_EQ(pipeline_makespan(Schedule::zero_bubble_h2, pp, 1, m, PassSeconds{}), 3.0 * m + pp - 1);
      PassSeconds uneven;
      uneven.forward = 65, uneven.backward = 100, uneven.weight = 42;
      EXPECT_LE(pipeline_makespan(Schedule::zero_bubble_h2, pp, 1, m, uneven),
                pipeline_makespan(Schedule::zero_bubble_h1, pp, 1, m, uneven)) << pp << " " << m;
      for (int stage = 0; stage < pp; ++stage) {
        std::vector<int> step(size_t(m), 0);
        int held = 0, peak = 0;
        for (const ChunkWork& w : stage_schedule(Schedule::zero_bubble_h2, pp, 1, stage, m, uneven)) {
          EXPECT_EQ(step[size_t(w.microbatch)]++, w.forward ? 0 : w.weight ? 2 : 1) << "pp " << pp << " stage " << stage;
          held += w.forward ? 1 : w.weight ? -1 : 0;
          peak = std::max(peak, held);
        }
        for (int done : step) EXPECT_EQ(done, 3);
        EXPECT_LE(peak, 2 * pp);
      }
    }
  // pp 4, 32 microbatches, F : B : W = 65 : 100 : 42: twice the memory buys ZB-H2 what ZB-H1's
  // fixed deferral cannot, 204 of bubble against 369 (the bound is the last stage's 3 F = 195).
  PassSeconds uneven;
  uneven.forward = 65, uneven.backward = 100, uneven.weight = 42;
  EXPECT_DOUBLE_EQ(pipeline_makespan(Schedule::zero_bubble_h1, 4, 1, 32, uneven), 32 * 207.0 + 369);
  EXPECT_DOUBLE_EQ(pipeline_makespan(Schedule::zero_bubble_h2, 4, 1, 32, uneven), 32 * 207.0 + 204);
}

// Played out over every small pipeline and unlikely times (messages, a loss heavier than a layer,
// weight gradients that take nothing, stages paced by the loss): the orders always finish (the
// player once deadlocked at pp 3 with one microbatch, a stage asleep while its input had come),
// every pass once in order, and the step no shorter than the heaviest stage's work.
TEST(PipelineSchedule, PlayedOutOrdersFinishForEveryShape) {
  std::vector<PassSeconds> times(4);
  times[1].forward = 65, times[1].backward = 100, times[1].weight = 42, times[1].loss_forward = 30,
  times[1].loss_backward = 50, times[1].message = 3;
  times[2].weight = 0;
  times[3].backward = 2, times[3].loss_forward = 5, times[3].paced_by_loss = true;
  for (Schedule schedule : {Schedule::zero_bubble_v, Schedule::zero_bubble_h2})
    for (const PassSeconds& p : times)
      for (int pp = 2; pp <= 9; ++pp)
        for (int m : {1, 2, 3, 5, 8, 13}) {
          const int vpp = schedule == Schedule::zero_bubble_v ? 2 : 1;
          const auto orders = pipeline_orders(schedule, pp, vpp, m, p);
          ASSERT_EQ(orders.size(), size_t(pp));
          double heaviest = 0;
          for (int stage = 0; stage < pp; ++stage) {
            std::vector<int> step(size_t(vpp * m), 0);
            double work = 0;
            for (const ChunkWork& w : orders[size_t(stage)]) {
              ASSERT_EQ(step[size_t(w.chunk * m + w.microbatch)]++, w.forward ? 0 : w.weight ? 2 : 1)
                  << to_string(schedule) << " pp " << pp << " m " << m;
              work += p.seconds(w, virtual_stage(schedule, pp, stage, w.chunk) == pp * vpp - 1);
            }
            for (int done : step) ASSERT_EQ(done, 3);
            heaviest = std::max(heaviest, work);
          }
          EXPECT_GE(pipeline_makespan(schedule, pp, vpp, m, p), heaviest * (1 - 1e-12));
        }
}

// The played-out pipeline against the closed forms it replaces where they exist: 1F1B
// (m + pp - 1)(F + B) plus the last stage's loss per microbatch, interleaved 1F1B
// m vpp (f + b) + (pp - 1)(f + b) over chunks, ZB-H1 m (F + B + W) + (pp - 1)(F + B - W).
TEST(PipelineSchedule, MakespanMatchesTheClosedFormsByHand) {
  PassSeconds one;
  one.forward = 2, one.backward = 4, one.weight = 0, one.loss_forward = 1, one.loss_backward = 1;
  EXPECT_DOUBLE_EQ(pipeline_makespan(Schedule::one_f_one_b, 4, 1, 8, one), 11 * 6.0 + 8 * 2.0);
  PassSeconds chunk;
  chunk.forward = 1, chunk.backward = 2, chunk.weight = 0;
  EXPECT_DOUBLE_EQ(pipeline_makespan(Schedule::interleaved, 4, 2, 8, chunk), 8 * 2 * 3.0 + 3 * 3.0);
  PassSeconds zb;
  zb.forward = zb.backward = zb.weight = 2;
  EXPECT_DOUBLE_EQ(pipeline_makespan(Schedule::zero_bubble_h1, 4, 1, 8, zb), 8 * 6.0 + 3 * 2.0);
}

// DualPipeV's order on 2 stages with 4 microbatches, step by step as DeepSeek-AI's dualpipev.py
// writes it (a whole backward listed as B then W; & marks a backward overlapped with the forward
// before it). Stage 0: 2 (pp - 1) warm-up forwards of chunk 0, then chunk 0 and 1, one split
// backward of chunk 1 with its W at once, the steady state's pairs F0 & B1, F1 & B0, the cool-
// down, the last backwards deferring their W. Stage 1, the V's turn: its first pair runs apart.
TEST(PipelineSchedule, DualPipeVFollowsTheReferenceSteps) {
  auto F = [](int c, int mb) { return ChunkWork{true, mb, c}; };
  auto B = [](int c, int mb) { return ChunkWork{false, mb, c}; };
  auto PB = [](int c, int mb) { ChunkWork w{false, mb, c}; w.joins_previous = true; return w; };
  auto W = [](int c, int mb) { return ChunkWork{false, mb, c, true}; };
  const std::vector<ChunkWork> stage0 = {F(0, 0), F(0, 1), F(0, 2), F(1, 0), B(1, 0), W(1, 0), F(1, 1), F(0, 3),
                                         PB(1, 1), W(1, 1), F(1, 2), PB(0, 0), W(0, 0), B(1, 2), W(1, 2), F(1, 3),
                                         PB(0, 1), W(0, 1), B(1, 3), W(1, 3), B(0, 2), W(0, 2), B(0, 3), W(0, 3)};
  const std::vector<ChunkWork> stage1 = {F(0, 0), F(1, 0), F(0, 1), F(1, 1), F(0, 2), B(1, 0), W(1, 0), F(1, 2),
                                         PB(0, 0), W(0, 0), F(0, 3), PB(1, 1), W(1, 1), F(1, 3), PB(0, 1), W(0, 1),
                                         B(1, 2), W(1, 2), B(0, 2), W(0, 2), B(1, 3), B(0, 3), W(1, 3), W(0, 3)};
  EXPECT_EQ(stage_schedule(Schedule::dualpipe_v, 2, 2, 0, 4), stage0);
  EXPECT_EQ(stage_schedule(Schedule::dualpipe_v, 2, 2, 1, 4), stage1);
}

// Every stage of DualPipeV runs each chunk's F, B and W of each microbatch once, in that order;
// pairs are a forward of one chunk and a backward of the other, 2 (m - 2 pp + r + 1) + pp - r - 1
// of them on stage r (less the turn's first); stage 0 holds 2 pp + 1 chunks' activations at the
// peak (the DualPipe README's PP + 1 chunks). With equal passes and nothing to overlap the orders
// lose only the last stage's wait for its first forward, as ZB-V's: 6 m + pp - 1. With half of F
// and B communication another pass can hide, every pair saves it and the step is shorter.
TEST(PipelineSchedule, DualPipeVRunsEveryPassOnceAndOverlapsItsPairs) {
  for (int pp : {2, 3, 4, 8})
    for (int m : {2 * pp, 2 * pp + 3, 32}) {
      EXPECT_DOUBLE_EQ(pipeline_makespan(Schedule::dualpipe_v, pp, 2, m, PassSeconds{}), 6.0 * m + pp - 1)
          << pp << " " << m;
      for (int stage = 0; stage < pp; ++stage) {
        const auto order = stage_schedule(Schedule::dualpipe_v, pp, 2, stage, m);
        std::vector<int> step(size_t(2 * m), 0);
        int held = 0, peak = 0, pairs = 0;
        for (size_t i = 0; i < order.size(); ++i) {
          const ChunkWork& w = order[i];
          EXPECT_EQ(step[size_t(w.chunk * m + w.microbatch)]++, w.forward ? 0 : w.weight ? 2 : 1)
              << "pp " << pp << " m " << m << " stage " << stage;
          held += w.forward ? 1 : w.weight ? -1 : 0;
          peak = std::max(peak, held);
          if (!w.joins_previous) continue;
          ++pairs;
          EXPECT_TRUE(!w.forward && !w.weight && order[i - 1].forward && order[i - 1].chunk != w.chunk);
        }
        for (int done : step) EXPECT_EQ(done, 3);
        EXPECT_EQ(pairs, 2 * (m - 2 * pp + stage + 1) + pp - stage - 1 - (stage == pp - 1 ? 1 : 0)) << pp << " " << stage;
        EXPECT_LE(peak, 2 * pp + 1);
        if (stage == 0) {
          EXPECT_EQ(peak, 2 * pp + 1);
        }
      }
      PassSeconds hidden;  // F and B: 2 each, 1 of it communication; layer by layer, no tail
      hidden.forward = hidden.backward = 2, hidden.forward_comm = hidden.backward_comm = 1, hidden.layers = 1e12;
      EXPECT_LT(pipeline_makespan(Schedule::dualpipe_v, pp, 2, m, hidden),
                pipeline_makespan(Schedule::zero_bubble_v, pp, 2, m, hidden)) << pp << " " << m;
    }
}

// A pair's time by hand: both computes plus the second's last layer's collectives, or the longer
// pass alone. F 10 s (4 of it collectives), B 12 s (6), 4 layers: 6 + 6 + 6 / 4 = 13.5 s; with
// collectives longer than the other's compute, the longer pass: F 10 (8), B 12 (10): 12 s.
TEST(PipelineSchedule, OverlappedPairLastsBothComputesOrTheLongerPass) {
  PassSeconds p;
  p.forward = 10, p.forward_comm = 4, p.backward = 12, p.backward_comm = 6, p.layers = 4;
  const ChunkWork f{true, 0, 0}, b{false, 0, 1};
  EXPECT_DOUBLE_EQ(p.overlapped_seconds(f, false, b, false), 13.5);
  p.forward_comm = 8, p.backward_comm = 10;
  EXPECT_DOUBLE_EQ(p.overlapped_seconds(f, false, b, false), 12.0);
  p.loss_forward = 3;  // the loss's compute on the stage that holds it
  EXPECT_DOUBLE_EQ(p.overlapped_seconds(f, true, b, false), 13.0);
}

}  // namespace
}  // namespace palmsim
