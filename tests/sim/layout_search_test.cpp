// Search enumerates exactly the legal layouts and ranks by step time.
#include "model/input_error.h"
#include "model/layout.h"
#include "sim/layout_search.h"
#include "sim/predict.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace palmsim {
namespace {

TEST(LayoutSearch, CountsEveryLegalLayoutOfASmallCase) {
  // palm-8b on 16 TPU v4 chips, batch 16: count by brute force over the same space.
  Scenario s = load_scenario("scenarios/palm-8b-tpuv4.yaml");
  s.n_chips = 16, s.global_batch = 16;
  s.layout = Layout{};
  s.layout.dp = 16;
  LayoutConstraints one_pod;
  one_pod.pods = 1;
  const SearchResult r = search_layouts(s, 5, one_pod);
  int64_t expected = 0;
  for (int tp : {1, 2, 4, 8, 16})
    for (int pp : {1, 2, 4, 8, 16}) {
      if (16 % (tp * pp)) continue;
      Layout base;
      base.tp = tp, base.pp = pp, base.dp = 16 / (tp * pp);
      if (!layout_fits_system(s.system, base)) continue;
      for (int vpp = 1; vpp <= 32; ++vpp)
        for (Schedule sch : {Schedule::gpipe, Schedule::one_f_one_b, Schedule::interleaved, Schedule::zero_bubble_h1,
                             Schedule::zero_bubble_v})
          for (int mb = 1; mb <= 16; ++mb)
            for (bool sp : {false, true})
              for (int sh = 0; sh < 5; ++sh)
                for (int rc = 0; rc < 5; ++rc) {  // none, selective, full, palm, minimal
                  Layout l = base;
                  l.vpp = vpp, l.schedule = sch, l.microbatch = mb, l.sp = sp;
                  l.sharding = Sharding(sh), l.recompute = Recompute(rc);
                  if (sp && tp == 1) continue;             // sp means nothing without tp
                  if (!s.system.stack.supports(l.sharding) || !s.system.stack.supports(l.recompute)) continue;
                  if (pp > 1 && !s.system.stack.supports(sch)) continue;
                  if (sch == Schedule::gpipe && pp == 1) continue;  // same as 1F1B there
                  if (s.model.n_layers % (pp * vpp)) continue;  // search proposes even chunks only
                  if (layout_is_legal(l, s.model, 16, 16)) ++expected;
                }
    }
  EXPECT_EQ(r.evaluated, expected);
  ASSERT_FALSE(r.top.empty());
  for (size_t i = 1; i < r.top.size(); ++i) EXPECT_LE(r.top[i - 1].step_time_s, r.top[i].step_time_s);
  // The winner is what predict says for its layout.
  EXPECT_DOUBLE_EQ(predict(s, r.top[0].layout).step_time_s, r.top[0].step_time_s);
}

// Search proposes only the schedules the stack runs. Megatron-LM's (the A100 default) lists
// 1F1B and interleaved, not ZB-H1, so its pipelines never show ZB-H1; a stack that runs ZB-H1 wins
// with it on a pipeline whose mesh is fixed: the same work and memory, less bubble. A scenario asking
// for a schedule its stack does not run is refused naming layout.schedule.
TEST(LayoutSearch, SchedulesAreThoseTheStackRuns) {
  Scenario s = parse_scenario(YAML::Load(R"(
model: gpt3-175b
system: {preset: a100-80g-dgx, chips: 64}
layout: {tp: 8, pp: 8, dp: 1, microbatch: 1, sp: true, recompute: selective}
training: {global_batch: 64, optimizer: adam}
)"), "test");
  LayoutConstraints mesh;
  mesh.tp = 8, mesh.pp = 8, mesh.vpp = 1, mesh.microbatch = 1, mesh.sp = true;
  mesh.recompute = Recompute::selective, mesh.sharding = Sharding::none, mesh.cp = 1, mesh.pods = 1;
  ASSERT_FALSE(s.system.stack.supports(Schedule::zero_bubble_h1));
  const SearchResult megatron = search_layouts(s, 5, mesh);
  ASSERT_FALSE(megatron.top.empty());
  for (const Report& r : megatron.top) EXPECT_NE(r.layout.schedule, Schedule::zero_bubble_h1);
  EXPECT_EQ(megatron.top[0].layout.schedule, Schedule::one_f_one_b);
  s.system.stack.schedules.push_back(Schedule::zero_bubble_h1);
  const SearchResult zb = search_layouts(s, 5, mesh);
  EXPECT_EQ(zb.evaluated, megatron.evaluated + 1);
  EXPECT_EQ(zb.top[0].layout.schedule, Schedule::zero_bubble_h1);
  EXPECT_LT(zb.top[0].step_time_s, megatron.top[0].step_time_s);
  try {
    parse_scenario(YAML::Load(R"(
model: gpt3-175b
system: {preset: a100-80g-dgx, chips: 64}
layout: {tp: 8, pp: 8, dp: 1, microbatch: 1, schedule: zb-h1}
training: {global_batch: 64, optimizer: adam}
)"), "test");
    ADD_FAILURE() << "zb-h1 accepted on a stack that does not run it";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "layout.schedule");
  }
}

// With two chunks per stage, search weighs ZB-V against interleaved 1F1B where the stack runs it,
// and reports for it what predict says.
TEST(LayoutSearch, ZeroBubbleVIsWeighedWhereTheStackRunsIt) {
  Scenario s = parse_scenario(YAML::Load(R"(
model: gpt3-175b
system: {preset: a100-80g-dgx, chips: 64}
layout: {tp: 8, pp: 8, dp: 1, microbatch: 1}
training: {global_batch: 64, optimizer: adam}
)"), "test");
  LayoutConstraints mesh;
  mesh.tp = 8, mesh.pp = 8, mesh.vpp = 2, mesh.microbatch = 1, mesh.sp = true;
  mesh.recompute = Recompute::selective, mesh.sharding = Sharding::none, mesh.cp = 1, mesh.pods = 1;
  EXPECT_EQ(search_layouts(s, 5, mesh).evaluated, 1);  // interleaved only
  s.system.stack.schedules.push_back(Schedule::zero_bubble_v);
  const SearchResult r = search_layouts(s, 5, mesh);
  EXPECT_EQ(r.evaluated, 2);
  const auto v = std::find_if(r.top.begin(), r.top.end(), [](const Report& x) { return x.layout.schedule == Schedule::zero_bubble_v; });
  ASSERT_NE(v, r.top.end());
  EXPECT_DOUBLE_EQ(predict(s, v->layout).step_time_s, v->step_time_s);
  EXPECT_GT(v->breakdown.bubble_s, 0.0);
  // DualPipeV where the stack lists it: 64 microbatches are 2 pp and more.
  s.system.stack.schedules.push_back(Schedule::dualpipe_v);
  const SearchResult d = search_layouts(s, 5, mesh);
  EXPECT_EQ(d.evaluated, 3);
  const auto dv = std::find_if(d.top.begin(), d.top.end(), [](const Report& x) { return x.layout.schedule == Schedule::dualpipe_v; });
  ASSERT_NE(dv, d.top.end());
  EXPECT_DOUBLE_EQ(predict(s, dv->layout).step_time_s, dv->step_time_s);
}

TEST(LayoutSearch, PalmScenarioSearchBeatsOrMatchesThePublishedLayout) {
  const Scenario s = load_scenario("scenarios/palm-540b-tpuv4-6144.yaml");
  const SearchResult r = search_layouts(s, 3);
  ASSERT_FALSE(r.top.empty());
  EXPECT_GT(r.evaluated, 1000);
  EXPECT_LE(r.top[0].step_time_s, predict(s).step_time_s + 1e-9);
  for (const Report& rep : r.top) EXPECT_TRUE(rep.fits_in_memory);
  // 6144 chips need at least two 4096-chip pods; three or more are legal too and searched.
  LayoutConstraints two_pods;
  two_pods.pods = 2;
  const SearchResult r2 = search_layouts(s, 1, two_pods);
  EXPECT_GT(r.evaluated, r2.evaluated);
  EXPECT_GT(r2.evaluated, 0);
}

// A mixture-of-experts model: search varies ep over every degree that divides the experts and the
// data-parallel ranks; fixing ep restricts it to that degree. Each fixed-ep search's count adds up
// to the free one's, and the free winner is the best of the fixed winners.
TEST(LayoutSearch, ExpertParallelismIsSearchedOverItsLegalDegrees) {
  Scenario s = load_scenario("scenarios/gpt-oss-120b-h100-64.yaml");  // 128 experts, 64 GPUs
  LayoutConstraints mesh;
  mesh.tp = 1, mesh.pp = 4, mesh.cp = 1, mesh.microbatch = 1, mesh.sp = false;  // dp 16: ep in 1, 2, 4, 8, 16
  const SearchResult free = search_layouts(s, 1, mesh);
  ASSERT_FALSE(free.top.empty());
  int64_t sum = 0;
  double best = 1e300;
  for (int ep : {1, 2, 4, 8, 16}) {
    LayoutConstraints one = mesh;
    one.ep = ep;
    const SearchResult r = search_layouts(s, 1, one);
    EXPECT_GT(r.evaluated, 0) << "ep " << ep;
    sum += r.evaluated;
    for (const Report& rep : r.top) {
      EXPECT_EQ(rep.layout.ep, ep);
      best = std::min(best, rep.step_time_s);
    }
  }
  EXPECT_EQ(free.evaluated, sum);
  EXPECT_DOUBLE_EQ(free.top[0].step_time_s, best);
  LayoutConstraints thirty_two = mesh;
  thirty_two.ep = 32;  // does not divide dp 16
  EXPECT_EQ(search_layouts(s, 1, thirty_two).evaluated, 0);

  // Beside tp 2 (sequence parallel) the experts fold over tp x dp = 16 ranks into etp x ep, etp
  // whole (1) or split like the dense MLP (tp = 2): every ep x etp from 2 to 16, not 1 x 1.
  LayoutConstraints tp2 = mesh;
  tp2.tp = 2, tp2.sp = true;
  const SearchResult folded = search_layouts(s, 1, tp2);
  ASSERT_FALSE(folded.top.empty());
  int64_t folded_sum = 0;
  for (int etp : {1, 2})
    for (int ep : {1, 2, 4, 8, 16, 32}) {
      LayoutConstraints one = tp2;
      one.ep = ep, one.etp = etp;
      const SearchResult r = search_layouts(s, 1, one);
      EXPECT_EQ(r.evaluated > 0, ep * etp > 1 && ep * etp <= 16) << "ep " << ep << ", etp " << etp;
      for (const Report& rep : r.top) EXPECT_EQ(rep.layout.etp, etp);
      folded_sum += r.evaluated;
    }
  EXPECT_EQ(folded.evaluated, folded_sum);
  // A stack that dispatches per rank (DeepEP) keeps its experts whole: etp 1 only.
  s.system.stack.moe_dispatch = TokenDispatch::per_rank;
  LayoutConstraints two = tp2;
  two.ep = 8;
  const SearchResult deepep = search_layouts(s, 1, two);
  two.etp = 1;
  EXPECT_EQ(deepep.evaluated, search_layouts(s, 1, two).evaluated);
}

// Context parallelism: on a GPU cluster search varies cp over every degree whose 2 cp chunks split
// the sequence (Llama 2 70B at 128K tokens on 64 H100s: 1, 2, 4, ..., 64); the fixed-cp searches
// partition the free one. A TPU pod does not model cp, so its search keeps cp 1.
TEST(LayoutSearch, ContextParallelismIsSearchedWhereTheSequenceSplits) {
  Scenario s = load_scenario("scenarios/palm-540b-h100-6144.yaml");
  s.model = model_preset("llama2-70b");
  s.model.seq_len = 131072;
  s.n_chips = 64, s.global_batch = 32;
  s.layout = Layout{};
  LayoutConstraints mesh;
  mesh.pp = 1, mesh.sp = true, mesh.microbatch = 1;
  const SearchResult free = search_layouts(s, 1, mesh);
  ASSERT_FALSE(free.top.empty());
  int64_t sum = 0;
  double best = 1e300;
  for (int cp : {1, 2, 4, 8, 16, 32, 64}) {
    LayoutConstraints one = mesh;
    one.cp = cp;
    const SearchResult r = search_layouts(s, 1, one);
    sum += r.evaluated;
    for (const Report& rep : r.top) best = std::min(best, rep.step_time_s);
  }
  EXPECT_EQ(free.evaluated, sum);
  EXPECT_DOUBLE_EQ(free.top[0].step_time_s, best);
  EXPECT_GT(free.top[0].layout.cp, 1);  // 128K tokens do not fit a chip's memory without it
  Scenario tpu = load_scenario("scenarios/palm-8b-tpuv4.yaml");
  LayoutConstraints cp1;
  cp1.cp = 1;
  EXPECT_EQ(search_layouts(tpu, 1).evaluated, search_layouts(tpu, 1, cp1).evaluated);
}

// Search proposes uneven stages (PaLM 540B's 118 layers on 8 or 12 stages) and interleaves the
// heaviest stage's layers in equal chunks; it never puts a tensor-parallel group across a node
// boundary at an odd place (tp 12 on 8-GPU nodes), which predict refuses naming the field.
TEST(LayoutSearch, UnevenStagesAndGroupsThatTileTheNodes) {
  Scenario s = load_scenario("scenarios/palm-540b-h100-6144.yaml");
  const SearchResult r = search_layouts(s, 20);
  ASSERT_FALSE(r.top.empty());
  bool uneven = false;
  for (const Report& rep : r.top) {
    const Layout& l = rep.layout;
    uneven |= s.model.n_layers % l.pp != 0;
    EXPECT_TRUE(l.tp <= 8 ? 8 % l.tp == 0 : l.tp % 8 == 0) << "tp " << l.tp;
    EXPECT_EQ(((s.model.n_layers + l.pp - 1) / l.pp) % l.vpp, 0) << "pp " << l.pp << " vpp " << l.vpp;
  }
  EXPECT_TRUE(uneven);
  EXPECT_LT(r.top[0].step_time_s, predict(s).step_time_s + 1e-9);
  s.layout.tp = 12, s.layout.dp = 32, s.layout.pp = 16, s.layout.vpp = 1, s.layout.schedule = Schedule::one_f_one_b;
  try {
    predict(s);
    ADD_FAILURE() << "tp 12 on 8-GPU nodes was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "layout.tp");
  }
}

}  // namespace
}  // namespace palmsim
