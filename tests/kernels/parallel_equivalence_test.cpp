// Data parallel, ZeRO-1, tensor parallel, context parallel, pipeline parallel and (for a sparse
// model) expert parallel with 2 and 4 thread ranks give the same loss, gradients and updated
// parameters as one rank on the same global batch (float tolerance; bitwise where the order of the
// sums is the same).
#include "kernels/rank_grid.h"
#include "kernels/rank_trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <set>

namespace palmsim {
namespace {

ModelSpec small_model() {
  ModelSpec m;
  m.name = "equivalence";
  m.n_layers = 2, m.d_model = 16, m.n_heads = 4, m.n_kv_heads = 1, m.head_dim = 4;
  m.d_ff = 32, m.ffn = Ffn::swiglu, m.vocab = 40, m.seq_len = 8;
  return m;
}

constexpr int64_t kBatch = 8;

struct Batch {
  std::vector<int32_t> tokens, targets;
};

Batch make_batch(const ModelSpec& m) {
  Batch b;
  for (int64_t i = 0; i < kBatch * m.seq_len; ++i) {
    b.tokens.push_back(int32_t((i * 7 + 3) % m.vocab));
    b.targets.push_back(int32_t((i * 11 + 5) % m.vocab));
  }
  return b;
}

struct RankResult {
  double loss = 0;
  std::vector<float> grads, params;  // reduced gradients (optimizer range) and updated params
  std::vector<TensorInfo> tensors;
  size_t begin = 0;
  int tp_rank = 0, stage = 0;
};

// `microbatch` 0: each rank's whole share at once.
std::vector<RankResult> run(int dp, int tp, bool zero1, const ModelSpec& m, const Batch& b, int ep = 1,
                            int64_t microbatch = 0, int cp = 1, int pp = 1,
                            Schedule schedule = Schedule::one_f_one_b, int vpp = 1,
                            ContextComm cp_comm = ContextComm::all_gather) {
  TrainConfig c;
  c.batch = kBatch, c.dp = dp, c.tp = tp, c.zero1 = zero1, c.ep = ep, c.microbatch = microbatch, c.cp = cp;
  c.pp = pp, c.schedule = schedule, c.vpp = vpp, c.cp_comm = cp_comm;
  std::vector<RankResult> results(size_t(c.ranks()));
  run_on_ranks(dp, cp, tp, [&](const RankContext& ctx) {
    RankTrainer trainer(m, c, ctx);
    trainer.model().init(7);
    const int64_t share = (kBatch / dp) * m.seq_len, offset = trainer.dp_rank() * share;
    RankResult& r = results[size_t(ctx.rank)];
    r.loss = trainer.step(b.tokens.data() + offset, b.targets.data() + offset, 1, nullptr);
    r.grads = trainer.reduced_grads();
    r.params = trainer.model().params();
    r.tensors = trainer.model().tensors();
    r.begin = trainer.optimizer().begin();
    r.tp_rank = trainer.tp_rank();
    r.stage = trainer.stage();
  }, pp);
  return results;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]) / (1e-3 + std::abs(double(b[i]))));
  EXPECT_LT(worst, 2e-3) << what;
}

// Compares one rank's tensors, by name, with the single-rank reference, sliced the way tp slices
// them (a split expert is a whole tensor of the reference).
void compare_tensors(const ModelSpec& m, const RankResult& reference, const RankResult& r, int tp, const std::string& what) {
  const PalmModel<float> sharded(m, tp, r.tp_rank), whole(m);
  for (const TensorInfo& t : r.tensors) {
    const TensorInfo& full = whole.tensor(t.name);
    std::vector<double> full_grads(full.size()), full_params(full.size());
    for (size_t i = 0; i < full.size(); ++i) {
      full_grads[i] = reference.grads[full.offset + i];
      full_params[i] = reference.params[full.offset + i];
    }
    const std::vector<float> expected_g = sharded.shard_of(t, full_grads.data());
    const std::vector<float> expected_p = sharded.shard_of(t, full_params.data());
    std::vector<float> got_g(r.grads.begin() + long(t.offset), r.grads.begin() + long(t.offset + t.size()));
    std::vector<float> got_p(r.params.begin() + long(t.offset), r.params.begin() + long(t.offset + t.size()));
    expect_close(got_g, expected_g, what + " grad " + t.name);
    expect_close(got_p, expected_p, what + " param " + t.name);
  }
}

class ParallelEquivalence : public ::testing::Test {
 protected:
  void SetUp() override {
    reference_ = run(1, 1, false, model_, batch_)[0];
  }
  void compare_tensors(const RankResult& r, int tp, const std::string& what) {
    palmsim::compare_tensors(model_, reference_, r, tp, what);
  }
  ModelSpec model_ = small_model();
  Batch batch_ = make_batch(model_);
  RankResult reference_;
};

TEST_F(ParallelEquivalence, DataParallel) {
  for (int dp : {2, 4}) {
    for (const RankResult& r : run(dp, 1, false, model_, batch_)) {
      EXPECT_NEAR(r.loss, reference_.loss, 1e-5 * reference_.loss) << "dp " << dp;
      expect_close(r.grads, reference_.grads, "dp grads");
      expect_close(r.params, reference_.params, "dp params");
    }
  }
}

TEST_F(ParallelEquivalence, Zero1ShardsTheOptimizer) {
  for (int dp : {2, 4}) {
    for (const RankResult& r : run(dp, 1, true, model_, batch_)) {
      EXPECT_NEAR(r.loss, reference_.loss, 1e-5 * reference_.loss) << "zero1 dp " << dp;
      // This rank's gradient slice, and every parameter after the all-gather.
      const size_t n = std::min(r.grads.size(), reference_.grads.size() - std::min(r.begin, reference_.grads.size()));
      std::vector<float> expected(reference_.grads.begin() + long(r.begin), reference_.grads.begin() + long(r.begin + n));
      expect_close(std::vector<float>(r.grads.begin(), r.grads.begin() + long(n)), expected, "zero1 grads");
      expect_close(std::vector<float>(r.params.begin(), r.params.begin() + long(reference_.params.size())),
                   reference_.params, "zero1 params");
    }
  }
}

TEST_F(ParallelEquivalence, TensorParallel) {
  for (int tp : {2, 4}) {
    for (const RankResult& r : run(1, tp, false, model_, batch_)) {
      EXPECT_NEAR(r.loss, reference_.loss, 1e-5 * reference_.loss) << "tp " << tp;
      compare_tensors(r, tp, "tp" + std::to_string(tp));
    }
  }
}

TEST_F(ParallelEquivalence, TensorAndDataParallelTogether) {
  for (const RankResult& r : run(2, 2, false, model_, batch_)) {
    EXPECT_NEAR(r.loss, reference_.loss, 1e-5 * reference_.loss);
    compare_tensors(r, 2, "tp2 x dp2");
  }
}

TEST_F(ParallelEquivalence, RepeatedRunsAreBitwiseIdentical) {
  const auto a = run(2, 2, false, model_, batch_), b = run(2, 2, false, model_, batch_);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].loss, b[i].loss);
    EXPECT_EQ(a[i].params, b[i].params);
  }
}

// Context parallelism: each rank of the cp group computes on 2 of the sequence's 2 cp chunks and
// gathers the rest's keys and values (or, as a ring, attends to each rank's block as it passes by);
// the group averages like data-parallel ranks. cp 2 and 4 alone (seq_len 8: chunks of 2 and of 1
// token) both ways, and cp 2 beside tp 2 and beside dp 2 with ZeRO-1 (its shards then span dp x cp).
TEST_F(ParallelEquivalence, ContextParallel) {
  for (const ContextComm exchange : {ContextComm::all_gather, ContextComm::ring})
    for (int cp : {2, 4}) {
      const std::string what = std::string(to_string(exchange)) + " cp" + std::to_string(cp);
      for (const RankResult& r : run(1, 1, false, model_, batch_, 1, 0, cp, 1, Schedule::one_f_one_b, 1, exchange)) {
        EXPECT_NEAR(r.loss, reference_.loss, 1e-5 * reference_.loss) << what;
        expect_close(r.grads, reference_.grads, what + " grads");
        expect_close(r.params, reference_.params, what + " params");
      }
    }
  for (const RankResult& r : run(1, 2, false, model_, batch_, 1, 0, 2, 1, Schedule::one_f_one_b, 1, ContextComm::ring)) {
    EXPECT_NEAR(r.loss, reference_.loss, 1e-5 * reference_.loss) << "ring cp2 x tp2";
    compare_tensors(r, 2, "ring cp2 x tp2");
  }
  for (const RankResult& r : run(1, 2, false, model_, batch_, 1, 0, 2)) {
    EXPECT_NEAR(r.loss, reference_.loss, 1e-5 * reference_.loss) << "cp2 x tp2";
    compare_tensors(r, 2, "cp2 x tp2");
  }
  for (const RankResult& r : run(2, 1, true, model_, batch_, 1, 0, 2)) {
    EXPECT_NEAR(r.loss, reference_.loss, 1e-5 * reference_.loss) << "cp2 x dp2 zero1";
    expect_close(std::vector<float>(r.params.begin(), r.params.begin() + long(reference_.params.size())),
                 reference_.params, "cp2 x dp2 zero1 params");
  }
}

// Pipeline stages, 1F1B: with the same microbatches and no other parallelism, every stage's layer
// gradients are the unpipelined run's bit for bit (each sums the same microbatches in the same
// order), and so is the loss of a dense model (the other stages add zeros). The tied embedding's gradient is the sum of the
// first stage's lookups and the last stage's logits, so it (and through the gradient norm, every
// update) agrees to float tolerance. Two layers on two stages with 4 microbatches; alone, beside
// dp 2 (with ZeRO-1) and beside tp 2; and three layers unevenly on two stages (1 and 2).
TEST_F(ParallelEquivalence, PipelineStages1F1B) {
  auto check = [&](const ModelSpec& m, const RankResult& reference, const std::vector<RankResult>& ranks, int tp,
                   const std::string& what, bool bitwise) {
    std::set<int> stages;
    for (const RankResult& r : ranks) {
      stages.insert(r.stage);
      EXPECT_NEAR(r.loss, reference.loss, 1e-6 * reference.loss) << what;
      palmsim::compare_tensors(m, reference, r, tp, what);
      if (!bitwise) continue;
      EXPECT_EQ(r.loss, reference.loss) << what;
      const PalmModel<float> whole(m);
      for (const TensorInfo& t : r.tensors) {
        if (t.name == "embedding") continue;
        const TensorInfo& full = whole.tensor(t.name);
        for (size_t i = 0; i < t.size(); ++i)
          ASSERT_EQ(r.grads[t.offset + i], reference.grads[full.offset + i]) << what << " " << t.name << " [" << i << "]";
      }
    }
    EXPECT_EQ(stages, (std::set<int>{0, 1})) << what;
  };
  const RankResult by_two = run(1, 1, false, model_, batch_, 1, 2)[0];
  check(model_, by_two, run(1, 1, false, model_, batch_, 1, 2, 1, 2), 1, "pp2", true);
  check(model_, by_two, run(1, 2, false, model_, batch_, 1, 2, 1, 2), 2, "pp2 x tp2", false);
  const RankResult by_one = run(1, 1, false, model_, batch_, 1, 1)[0];
  check(model_, by_one, run(2, 1, false, model_, batch_, 1, 1, 1, 2), 1, "pp2 x dp2", false);
  for (const RankResult& r : run(2, 1, true, model_, batch_, 1, 1, 1, 2)) {
    EXPECT_NEAR(r.loss, by_one.loss, 1e-6 * by_one.loss) << "pp2 x dp2 zero1";
    const PalmModel<float> stage(model_, 1, 0, true, 1, 0, 2, r.stage), whole(model_);
    for (const TensorInfo& t : stage.tensors()) {
      const TensorInfo& full = whole.tensor(t.name);
      expect_close(std::vector<float>(r.params.begin() + long(t.offset), r.params.begin() + long(t.offset + t.size())),
                   std::vector<float>(by_one.params.begin() + long(full.offset),
                                      by_one.params.begin() + long(full.offset + full.size())),
                   "pp2 x dp2 zero1 " + t.name);
    }
  }
  ModelSpec three = model_;
  three.n_layers = 3;
  const RankResult three_by_two = run(1, 1, false, three, batch_, 1, 2)[0];
  const auto uneven = run(1, 1, false, three, batch_, 1, 2, 1, 2);
  check(three, three_by_two, uneven, 1, "3 layers on pp2", true);
  EXPECT_EQ(uneven[0].tensors.size(), 1u + 6u) << "the first stage: the embedding and layer 0 (ln, wq, wkv, wo, win, wout)";
}

// ZB-H1 runs the same GEMMs as 1F1B, its layers' weight gradients later: each stage sums the same
// microbatches in the same order, so every gradient, the loss and every updated parameter equal the
// 1F1B pipeline's bit for bit, the tied embedding included (its logits part stays in the B pass).
// Two layers on two stages, alone and beside tp 2 and dp 2 with ZeRO-1; four layers on four stages,
// where the last stage defers three microbatches' weight gradients; and ZB-H2's orders.
TEST_F(ParallelEquivalence, PipelineStagesZeroBubbleH1) {
  auto same = [](const std::vector<RankResult>& zb, const std::vector<RankResult>& one_f_one_b, const std::string& what) {
    ASSERT_EQ(zb.size(), one_f_one_b.size()) << what;
    for (size_t i = 0; i < zb.size(); ++i) {
      EXPECT_EQ(zb[i].loss, one_f_one_b[i].loss) << what;
      EXPECT_EQ(zb[i].grads, one_f_one_b[i].grads) << what << " rank " << i;
      EXPECT_EQ(zb[i].params, one_f_one_b[i].params) << what << " rank " << i;
    }
  };
  const Schedule zb = Schedule::zero_bubble_h1;
  same(run(1, 1, false, model_, batch_, 1, 2, 1, 2, zb), run(1, 1, false, model_, batch_, 1, 2, 1, 2), "pp2");
  same(run(1, 2, false, model_, batch_, 1, 2, 1, 2, zb), run(1, 2, false, model_, batch_, 1, 2, 1, 2), "pp2 x tp2");
  same(run(2, 1, true, model_, batch_, 1, 1, 1, 2, zb), run(2, 1, true, model_, batch_, 1, 1, 1, 2), "pp2 x dp2 zero1");
  ModelSpec four = model_;
  four.n_layers = 4;
  const auto deep = run(1, 1, false, four, batch_, 1, 1, 1, 4, zb);
  same(deep, run(1, 1, false, four, batch_, 1, 1, 1, 4), "pp4, 8 microbatches");
  // ZB-H2 (twice the microbatches in flight, its order played out): the same sums in the same order.
  const Schedule h2 = Schedule::zero_bubble_h2;
  same(run(1, 1, false, model_, batch_, 1, 2, 1, 2, h2), run(1, 1, false, model_, batch_, 1, 2, 1, 2), "pp2 zb-h2");
  same(run(1, 1, false, four, batch_, 1, 1, 1, 4, h2), run(1, 1, false, four, batch_, 1, 1, 1, 4), "pp4 zb-h2");
  // And the unpipelined model's: each layer's gradient bit for bit.
  const RankResult whole = run(1, 1, false, four, batch_, 1, 1)[0];
  const PalmModel<float> reference(four);
  for (const RankResult& r : deep)
    for (const TensorInfo& t : r.tensors) {
      if (t.name == "embedding") continue;
      const TensorInfo& full = reference.tensor(t.name);
      for (size_t i = 0; i < t.size(); ++i)
        ASSERT_EQ(r.grads[t.offset + i], whole.grads[full.offset + i]) << t.name << " [" << i << "]";
    }
}

// Four layers on two stages in two model chunks each under `schedule`, 8 microbatches: every
// stage's dense loss and every layer's gradient equal the unpipelined run's bit for bit (each stage
// sums the same microbatches in the same order), every tensor within float tolerance, as beside tp
// 2 and dp 2 with ZeRO-1. Returns the tensors ("layer0", "embedding", ...) each stage holds.
std::vector<std::set<std::string>> check_two_chunk_pipeline(const ModelSpec& model, const Batch& batch,
                                                            Schedule schedule) {
  ModelSpec four = model;
  four.n_layers = 4;
  const std::string what = std::string("pp2 ") + to_string(schedule);
  const RankResult whole = run(1, 1, false, four, batch, 1, 1)[0];
  const PalmModel<float> reference(four);
  std::vector<std::set<std::string>> held;
  for (const RankResult& r : run(1, 1, false, four, batch, 1, 1, 1, 2, schedule, 2)) {
    EXPECT_EQ(r.loss, whole.loss) << what;
    held.emplace_back();
    for (const TensorInfo& t : r.tensors) {
      held.back().insert(t.name.substr(0, t.name.find('.')));
      if (t.name == "embedding") continue;
      const TensorInfo& full = reference.tensor(t.name);
      for (size_t i = 0; i < t.size(); ++i)
        EXPECT_EQ(r.grads[t.offset + i], whole.grads[full.offset + i]) << what << " " << t.name << " [" << i << "]";
    }
    palmsim::compare_tensors(four, whole, r, 1, what);
  }
  for (const RankResult& r : run(1, 2, false, four, batch, 1, 1, 1, 2, schedule, 2)) {
    EXPECT_NEAR(r.loss, whole.loss, 1e-6 * whole.loss) << what << " x tp2";
    palmsim::compare_tensors(four, whole, r, 2, what + " x tp2");
  }
  for (const RankResult& r : run(2, 1, true, four, batch, 1, 1, 1, 2, schedule, 2))
    EXPECT_NEAR(r.loss, whole.loss, 1e-6 * whole.loss) << what << " x dp2 zero1";
  return held;
}

// The interleaved schedule: stage 0 holds layers 0 and 2, stage 1 layers 1 and 3, and the
// activations wrap from stage 1 back to stage 0 between the chunks; both ends hold the tied
// embedding.
TEST_F(ParallelEquivalence, PipelineStagesInterleaved) {
  const auto held = check_two_chunk_pipeline(model_, batch_, Schedule::interleaved);
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0], (std::set<std::string>{"embedding", "layer0", "layer2"}));
  EXPECT_EQ(held[1], (std::set<std::string>{"embedding", "final_ln", "layer1", "layer3"}));
}

// ZB-V: stage 0 holds layers 0 and 3, stage 1 layers 1 and 2, each backward split into B and W
// passes in the order played_out_orders plays out, the turn at stage 1 a message to itself. The
// tied embedding, whose lookups and logits share stage 0 (no embedding all-reduce), sums its two
// parts in another order than the unpipelined run: within float tolerance.
TEST_F(ParallelEquivalence, PipelineStagesZeroBubbleV) {
  const auto held = check_two_chunk_pipeline(model_, batch_, Schedule::zero_bubble_v);
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0], (std::set<std::string>{"embedding", "final_ln", "layer0", "layer3"}));
  EXPECT_EQ(held[1], (std::set<std::string>{"layer1", "layer2"}));
}

// DualPipeV: ZB-V's V, its order's overlapped pairs run one after the other (the trainer has one
// stream a rank), whole backwards as B then W: the same layers on each stage, the same results.
TEST_F(ParallelEquivalence, PipelineStagesDualPipeV) {
  const auto held = check_two_chunk_pipeline(model_, batch_, Schedule::dualpipe_v);
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0], (std::set<std::string>{"embedding", "final_ln", "layer0", "layer3"}));
  EXPECT_EQ(held[1], (std::set<std::string>{"layer1", "layer2"}));
}

// Four experts, top-2, and a shared expert, in every other layer. The load-balancing loss counts
// each microbatch's own tokens, so the one-rank reference runs the ranks' shares as its microbatches.
TEST(ExpertParallelEquivalence, SplitExpertsReproduceOneRank) {
  ModelSpec m = small_model();
  m.n_layers = 4;
  m.moe.n_experts = 4, m.moe.top_k = 2, m.moe.expert_d_ff = 24, m.moe.layer_freq = 2, m.moe.shared_experts = 1;
  const Batch b = make_batch(m);
  for (double capacity : {0.0, 1.0}) {  // dropless, and capped (each rank's tokens over it drop)
    m.moe.capacity_factor = capacity;
    for (int dp : {2, 4}) {
      const RankResult reference = run(1, 1, false, m, b, 1, kBatch / dp)[0];
      for (int ep : {1, dp}) {
        const std::string what =
            "dp" + std::to_string(dp) + " ep" + std::to_string(ep) + " capacity " + std::to_string(capacity);
        for (const RankResult& r : run(dp, 1, false, m, b, ep)) {
          EXPECT_NEAR(r.loss, reference.loss, 1e-5 * reference.loss) << what;
          compare_tensors(m, reference, r, 1, what);
        }
      }
    }
  }
}

}  // namespace
}  // namespace palmsim
