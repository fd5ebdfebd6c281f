// Layout legality: every rule names its field.
#include "model/input_error.h"
#include "model/layout.h"
#include "model/pipeline_schedule.h"
#include "tests/model/layout_refusal.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

Layout palm_layout() {
  Layout l;
  l.tp = 12, l.pp = 1, l.dp = 512, l.pods = 2, l.microbatch = 4, l.sp = true;
  l.sharding = Sharding::fsdp, l.recompute = Recompute::palm;
  return l;
}

TEST(Layout, PalmsOwnLayoutIsLegal) {
  EXPECT_EQ(field_of_error(palm_layout(), model_preset("palm-540b"), 6144, 2048), "");
}

TEST(Layout, EachRuleNamesItsField) {
  const ModelSpec m = model_preset("palm-540b");
  Layout l = palm_layout();
  l.tp = 7, l.dp = 6144 / 7;
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "layout");  // product no longer 6144
  l = palm_layout();
  l.tp = 32, l.dp = 192;  // 48 heads not divisible by 32
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "layout.tp");
  l = palm_layout();
  l.pp = 4, l.dp = 128;  // 118 layers on 4 stages: uneven (30, 30, 29, 29), legal
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "");
  l.pp = 128, l.dp = 4;  // more stages than layers
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "layout.pp");
  l = palm_layout();
  l.microbatch = 3;
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "layout.microbatch");
  l = palm_layout();
  l.pods = 3;
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "layout.pods");
  l = palm_layout();
  l.vpp = 2;
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "layout.vpp");
  l = palm_layout();
  l.cp = 2, l.dp = 256;  // 2048 tokens in 4 balanced chunks: legal
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "");
  l.cp = 3;  // 6 chunks do not divide 2048 tokens
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "layout.cp");
  l = palm_layout();
  l.tp = -1;
  EXPECT_EQ(field_of_error(l, m, 6144, 2048), "layout.tp");
}

TEST(Layout, InterleavingNeedsMicrobatchesInMultiplesOfStages) {
  const ModelSpec m = model_preset("gpt3-175b");
  Layout l;
  l.tp = 8, l.pp = 8, l.dp = 1, l.vpp = 3, l.schedule = Schedule::interleaved;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "");       // 64 microbatches of 1, 8 stages
  EXPECT_EQ(field_of_error(l, m, 64, 12), "layout.vpp");  // 12 microbatches not a multiple of 8
}

TEST(Layout, ZeroBubbleH1NeedsAPipelineAndWeightsThatStayPut) {
  const ModelSpec m = model_preset("gpt3-175b");
  Layout l;
  l.tp = 8, l.pp = 8, l.dp = 1, l.schedule = Schedule::zero_bubble_h1, l.sharding = Sharding::zero1;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "");
  EXPECT_EQ(field_of_error(l, m, 64, 4), "");  // fewer microbatches than stages: legal, as 1F1B
  l.sharding = Sharding::fsdp;  // weights gathered per layer: the deferred W's regathers not modelled
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.schedule");
  l.sharding = Sharding::zero1, l.vpp = 2;  // one chunk per stage
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.vpp");
  l.vpp = 1, l.pp = 1, l.dp = 8;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.schedule");
  EXPECT_EQ(parse_schedule("zb-h1", "layout.schedule"), Schedule::zero_bubble_h1);
  EXPECT_STREQ(to_string(Schedule::zero_bubble_h1), "zb-h1");
  try {
    parse_schedule("zbv", "layout.schedule");
    ADD_FAILURE() << "zbv accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "layout.schedule");
    EXPECT_NE(std::string(e.what()).find("zb-h1"), std::string::npos);  // the allowed ones listed
  }
}

TEST(Layout, ZeroBubbleVAndH2NeedTheirChunksAndUnshardedWeights) {
  const ModelSpec m = model_preset("gpt3-175b");
  Layout l;
  l.tp = 8, l.pp = 8, l.dp = 1, l.vpp = 2, l.schedule = Schedule::zero_bubble_v, l.sharding = Sharding::zero1;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "");
  EXPECT_EQ(field_of_error(l, m, 64, 4), "");  // any microbatch count
  l.vpp = 3;  // a V has two arms
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.vpp");
  l.vpp = 1;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.vpp");
  l.vpp = 2, l.sharding = Sharding::zero3;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.schedule");
  l.sharding = Sharding::none, l.pp = 1, l.dp = 8;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.schedule");
  EXPECT_EQ(parse_schedule("zb-v", "layout.schedule"), Schedule::zero_bubble_v);
  EXPECT_STREQ(to_string(Schedule::zero_bubble_v), "zb-v");
  // ZB-H2: one chunk a stage, weights that stay put, a pipeline.
  l.schedule = Schedule::zero_bubble_h2, l.pp = 8, l.dp = 1, l.vpp = 1;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "");
  l.vpp = 2;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.vpp");
  l.vpp = 1, l.sharding = Sharding::fsdp;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.schedule");
  EXPECT_EQ(parse_schedule("zb-h2", "layout.schedule"), Schedule::zero_bubble_h2);
}

// DualPipeV: ZB-V's rules, and at least 2 pp microbatches (its stage 0 warms up with 2 pp - 1).
TEST(Layout, DualPipeVNeedsTwoChunksAndTwicePpMicrobatches) {
  const ModelSpec m = model_preset("gpt3-175b");
  Layout l;
  l.tp = 8, l.pp = 8, l.dp = 1, l.vpp = 2, l.schedule = Schedule::dualpipe_v, l.sharding = Sharding::zero1;
  EXPECT_EQ(field_of_error(l, m, 64, 16), "");
  EXPECT_EQ(field_of_error(l, m, 64, 15), "layout.microbatch");
  l.vpp = 1;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.vpp");
  l.vpp = 2, l.sharding = Sharding::fsdp;
  EXPECT_EQ(field_of_error(l, m, 64, 64), "layout.schedule");
  EXPECT_EQ(parse_schedule("dualpipe-v", "layout.schedule"), Schedule::dualpipe_v);
  EXPECT_STREQ(to_string(Schedule::dualpipe_v), "dualpipe-v");
  EXPECT_EQ(virtual_stage(Schedule::dualpipe_v, 8, 0, 1), 15);  // the V: stage 0 holds the loss
}

}  // namespace
}  // namespace palmsim
