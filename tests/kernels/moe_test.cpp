// The training step's mixture of experts: the layer against a hand calculation, the whole sparse
// model against finite differences, the thread ranks' all-to-all, and the configurations refused.
#include "finite_difference.h"
#include "kernels/moe_mlp.h"
#include "kernels/palm_model.h"
#include "kernels/rank_grid.h"
#include "kernels/thread_communicator.h"
#include "kernels/trainer_config_file.h"
#include "model/accounting.h"
#include "model/input_error.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <fstream>
#include <thread>

namespace palmsim {
namespace {

ModelSpec tiny_sparse(bool parallel, int experts, int top_k, int layer_freq) {
  ModelSpec m;
  m.name = "fd-moe";
  m.n_layers = 2, m.d_model = 8, m.n_heads = 2, m.n_kv_heads = 1, m.head_dim = 4;
  m.d_ff = 12, m.ffn = Ffn::swiglu, m.vocab = 11, m.seq_len = 5;
  m.parallel_block = parallel;
  m.moe.n_experts = experts, m.moe.top_k = top_k, m.moe.expert_d_ff = 6, m.moe.layer_freq = layer_freq;
  return m;
}

// SwiGLU MLP of one expert on one row, by the formula: W_out^T (swish(x W) * (x V)).
std::vector<double> expert_by_hand(const std::vector<double>& x, const std::vector<double>& w_in,
                                   const std::vector<double>& w_out, int64_t d, int64_t f) {
  std::vector<double> out(size_t(d), 0.0);
  for (int64_t j = 0; j < f; ++j) {
    double a = 0, b = 0;
    for (int64_t i = 0; i < d; ++i) {
      a += x[size_t(i)] * w_in[size_t(i * 2 * f + j)];
      b += x[size_t(i)] * w_in[size_t(i * 2 * f + f + j)];
    }
    const double hidden = a / (1 + std::exp(-a)) * b;
    for (int64_t c = 0; c < d; ++c) out[size_t(c)] += hidden * w_out[size_t(j * d + c)];
  }
  return out;
}

// One MoE layer with a zero router over 3 tokens (d 4, experts of 5, E 4, top-2): a zero router
// gives every expert probability 1/E and ties go to the lower index, so every token picks experts
// 0 and 1, each weighted 1/E; f = 1/k on those, P = 1/E everywhere, and the load-balancing loss is
// alpha E sum_i f_i P_i = alpha. Returns the layer's output; `kept` says which tokens an expert
// takes; their expected output is computed by hand.
struct UniformRouterLayer {
  static constexpr int64_t N = 3, d = 4, f = 5;
  static constexpr int E = 4, k = 2;
  std::vector<double> router = std::vector<double>(size_t(d * E), 0.0), h = testing_fd::random_vector(size_t(N * d), 1);
  std::vector<std::vector<double>> w_in, w_out;
  MoeActivations<double> acts;
  MoeScratch<double> scratch;

  std::vector<double> forward(double capacity_factor) {
    MoeWeights<double> w;
    w.router = router.data();
    for (int e = 0; e < E; ++e) {
      w_in.push_back(testing_fd::random_vector(size_t(d * 2 * f), 10 + uint64_t(e)));
      w_out.push_back(testing_fd::random_vector(size_t(f * d), 20 + uint64_t(e)));
      w.w_in.push_back(w_in.back().data()), w.w_out.push_back(w_out.back().data());
    }
    std::vector<double> y(size_t(N * d), 7.0);
    const MoeShape shape{N, d, E, k, f, capacity_factor};
    EXPECT_NEAR(moe_forward(shape, w, h.data(), y.data(), false, acts, scratch, nullptr, nullptr), kMoeAuxLossWeight,
                1e-15);
    return y;
  }
  void expect_output(const std::vector<double>& y, int64_t kept_tokens) {
    for (int64_t n = 0; n < N; ++n) {
      const std::vector<double> x(h.begin() + n * d, h.begin() + (n + 1) * d);
      std::vector<double> expected(size_t(d), 0.0);
      for (int e = 0; e < k && n < kept_tokens; ++e) {
        const std::vector<double> out = expert_by_hand(x, w_in[size_t(e)], w_out[size_t(e)], d, f);
        for (int64_t c = 0; c < d; ++c) expected[size_t(c)] += out[size_t(c)] / E;
      }
      for (int64_t c = 0; c < d; ++c) EXPECT_NEAR(y[size_t(n * d + c)], expected[size_t(c)], 1e-12) << n << "," << c;
    }
  }
};

TEST(MoeLayer, UniformRouterSendsEveryTokenToTheFirstExpertsWithEqualWeights) {
  UniformRouterLayer layer;
  layer.expect_output(layer.forward(0.0), 3);
}

TEST(MoeLayer, CapacityKeepsTheFirstTokensAndDropsTheRest) {
  // Capacity factor 1: each expert takes C = ceil(1 x 3 tokens x 2 / 4) = 2 rows, tokens 0 and 1;
  // token 2 is dropped by both and its output is zero (its residual carries it). The
  // load-balancing loss still counts the router's choices.
  UniformRouterLayer layer;
  const std::vector<double> y = layer.forward(1.0);
  EXPECT_EQ(layer.acts.x.size(), size_t(UniformRouterLayer::E * 2 * UniformRouterLayer::d));  // padded to 2 rows
  layer.expect_output(y, 2);
}

void check_sparse_gradients(const ModelSpec& spec, const char* what) {
  PalmModel<double> model(spec);
  model.init(42);
  const std::vector<int32_t> tokens{1, 4, 2, 9, 0, 3, 3, 7, 10, 5}, targets{4, 2, 9, 0, 3, 3, 7, 10, 5, 6};
  std::fill(model.grads().begin(), model.grads().end(), 0.0);
  model.forward_backward(tokens.data(), targets.data(), 2, nullptr, nullptr, 0.5);
  const std::vector<double> analytic = model.grads();
  auto f = [&] {
    std::vector<double> keep = model.grads();
    const double loss = model.forward_backward(tokens.data(), targets.data(), 2, nullptr, nullptr, 0.5);
    model.grads() = keep;
    return 0.5 * loss;  // grad_scale 0.5 scales every gradient, the load-balancing loss's included
  };
  // Every 5th parameter covers every tensor kind: router, both expert matrices, the dense rest.
  testing_fd::expect_gradient(model.params(), f, analytic, what, 5, 1e-5);
}

TEST(MoeGradients, Top2OfFourEveryLayerParallelBlock) { check_sparse_gradients(tiny_sparse(true, 4, 2, 1), "top-2"); }
TEST(MoeGradients, SwitchTop1EveryOtherLayerSerialBlock) {
  check_sparse_gradients(tiny_sparse(false, 3, 1, 2), "top-1, layer_freq 2");
}
TEST(MoeGradients, CapacityFactorDropsTokens) {
  ModelSpec m = tiny_sparse(true, 4, 2, 1);
  m.moe.capacity_factor = 0.75;  // C = ceil(0.75 x 10 x 2 / 4) = 4 rows an expert: some drop
  check_sparse_gradients(m, "capacity 0.75");
}
TEST(MoeGradients, SharedExpertsBesideTheRoutedOnes) {
  ModelSpec m = tiny_sparse(true, 4, 2, 1);
  m.moe.shared_experts = 2;
  check_sparse_gradients(m, "2 shared experts");
}

TEST(MoeModel, ParametersMatchTheAccounting) {
  // Total parameters of the tensor table equal palmsim's accounting (model/accounting.cpp): the
  // table is what trains, the accounting what predicts.
  for (int freq : {1, 2}) {
    ModelSpec spec = tiny_sparse(true, 4, 2, freq);
    spec.moe.shared_experts = freq;  // 1 or 2 shared experts, each of expert_d_ff
    const PalmModel<double> model(spec, 1, 0, false);
    int64_t router_and_experts = 0;
    for (const TensorInfo& t : model.tensors())
      if (t.name.find("router") != std::string::npos || t.name.find("expert") != std::string::npos ||
          t.name.find("shared") != std::string::npos)
        router_and_experts += int64_t(t.size());
    const int64_t per_layer = spec.d_model * 4 + (4 + freq) * (3 * spec.d_model * spec.moe.expert_d_ff);
    EXPECT_EQ(router_and_experts, per_layer * (spec.n_layers / freq)) << "layer_freq " << freq;
    EXPECT_EQ(int64_t(model.parameter_count()), parameter_count(spec)) << "layer_freq " << freq;
  }
}

TEST(ThreadAllToAll, EveryRankReceivesItsBlockFromEveryRankInRankOrder) {
  // Rank r sends (r + 1) * (p + 1) elements to rank p, valued 100 r + p.
  const int P = 3;
  auto group = std::make_shared<ThreadGroup>(P);
  std::vector<std::vector<float>> received(P);
  std::vector<std::thread> threads;
  for (int r = 0; r < P; ++r)
    threads.emplace_back([&, r] {
      ThreadCommunicator comm(group, r);
      std::vector<size_t> send_counts, recv_counts;
      std::vector<float> in;
      for (int p = 0; p < P; ++p) {
        send_counts.push_back(size_t((r + 1) * (p + 1)));
        recv_counts.push_back(size_t((p + 1) * (r + 1)));
        in.insert(in.end(), send_counts.back(), float(100 * r + p));
      }
      size_t total = 0;
      for (size_t c : recv_counts) total += c;
      received[size_t(r)].assign(total, -1.0f);
      comm.all_to_all(in.data(), send_counts, received[size_t(r)].data(), recv_counts);
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < P; ++r) {
    std::vector<float> expected;
    for (int s = 0; s < P; ++s) expected.insert(expected.end(), size_t((s + 1) * (r + 1)), float(100 * s + r));
    EXPECT_EQ(received[size_t(r)], expected) << "rank " << r;
  }
}

// A trainer config with the given model.moe, layout and (when not 0) training.global_batch.
std::string config_error(const std::string& moe, const std::string& layout, int global_batch = 0,
                         const std::string& more = "") {
  // One file per test: ctest runs this binary's tests at once.
  const std::string test = testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::filesystem::path path = std::filesystem::path(testing::TempDir()) / (test + "_config.yaml");
  std::ofstream(path) << "model:\n  name: m\n  n_layers: 2\n  d_model: 16\n  n_heads: 2\n  n_kv_heads: 1\n"
                         "  head_dim: 8\n  d_ff: 32\n  ffn: swiglu\n  vocab: 64\n  seq_len: 8\n"
                         "  moe: {" + moe + "}\nlayout: {" + layout + "}\n" +
                             (global_batch ? "training: {global_batch: " + std::to_string(global_batch) + "}\n" : "") +
                             more;
  try {
    load_trainer_config(path.string());
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(MoeConfig, WhatTheStepDoesNotImplementIsRefusedNamingTheField) {
  const std::string ok = "n_experts: 4, top_k: 2, expert_d_ff: 16";
  EXPECT_EQ(config_error(ok, "dp: 2, ep: 2", 4), "");
  EXPECT_EQ(config_error(ok + ", capacity_factor: 1.25", "dp: 2, ep: 2", 4), "");
  EXPECT_NE(config_error(ok + ", capacity_factor: -1", "").find("model.moe.capacity_factor"), std::string::npos);
  EXPECT_EQ(config_error(ok + ", shared_experts: 2", "dp: 2, ep: 2", 4), "");
  EXPECT_NE(config_error(ok + ", shared_experts: -1", "").find("model.moe.shared_experts"), std::string::npos);
  EXPECT_NE(config_error("n_experts: 4, top_k: 5, expert_d_ff: 16", "").find("model.moe.top_k"), std::string::npos);
  EXPECT_NE(config_error(ok, "tp: 2").find("layout.tp"), std::string::npos);
  EXPECT_NE(config_error(ok, "dp: 4, ep: 2", 8).find("layout.ep"), std::string::npos);
  EXPECT_NE(config_error("n_experts: 6, top_k: 2, expert_d_ff: 16", "dp: 4, ep: 4", 8).find("layout.ep"),
            std::string::npos);
  EXPECT_NE(config_error(ok, "dp: 2, ep: 2, sharding: zero1", 4).find("layout.sharding"), std::string::npos);
  EXPECT_EQ(config_error(ok, "dp: 2, ep: 2, etp: 1", 4), "");
  EXPECT_NE(config_error(ok, "dp: 2, etp: 2", 4).find("layout.etp"), std::string::npos);  // experts are whole
}

TEST(TrainConfig, ContextParallelismItCannotRunIsRefusedNamingTheField) {
  EXPECT_EQ(config_error("", "cp: 2"), "");                                         // 8 tokens in 4 chunks
  EXPECT_EQ(config_error("", "cp: 2", 0, "stack: {cp_comm: ring}\n"), "");          // ring attention
  EXPECT_NE(config_error("", "cp: 2", 0, "stack: {cp_comm: rings}\n").find("stack.cp_comm"), std::string::npos);
  EXPECT_NE(config_error("", "cp: 2", 0, "stack: {fused_attention: true}\n").find("stack.fused_attention"),
            std::string::npos);  // the trainer's stack is palmsim-cpu
  EXPECT_NE(config_error("", "cp: 3").find("layout.cp"), std::string::npos);       // 8 tokens, 6 chunks
  EXPECT_NE(config_error("", "cp: 0").find("layout.cp"), std::string::npos);
  EXPECT_NE(config_error("n_experts: 4, top_k: 2, expert_d_ff: 16", "cp: 2").find("layout.cp"), std::string::npos);
}

// Schedules the trainer does not run are refused at parse time, naming what it runs.
TEST(TrainConfig, SchedulesItDoesNotRunAreRefusedNamingTheField) {
  EXPECT_EQ(config_error("", "pp: 2, schedule: zb-h1", 4), "");
  const std::string gpipe = config_error("", "pp: 2, schedule: gpipe", 4);
  EXPECT_NE(gpipe.find("layout.schedule"), std::string::npos) << gpipe;
  EXPECT_NE(gpipe.find("1f1b, interleaved, zb-h1, zb-h2, zb-v or dualpipe-v"), std::string::npos) << gpipe;
  EXPECT_NE(config_error("", "pp: 2, schedule: zb-v", 4).find("layout.vpp"), std::string::npos);  // a V has 2 arms
  EXPECT_NE(config_error("", "pp: 2, schedule: dualpipe-v", 4).find("layout.vpp"), std::string::npos);
  // DualPipeV needs 2 pp microbatches: 4 here, 2 given.
  EXPECT_NE(config_error("", "pp: 2, vpp: 2, schedule: dualpipe-v", 2).find("layout.microbatch"), std::string::npos);
  EXPECT_NE(config_error("n_experts: 4, top_k: 2, expert_d_ff: 16", "pp: 2, vpp: 2, schedule: zb-v", 4)
                .find("layout.schedule"),
            std::string::npos);  // the experts' weight gradients are not deferred
}

// Every shipped trainer config loads, its ranks read from its layout section.
TEST(TrainConfig, ShippedTrainerConfigsLoad) {
  std::map<std::string, TrainConfig> loaded;
  for (const auto& entry : std::filesystem::directory_iterator("scenarios")) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("train-", 0) != 0 || entry.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(loaded[name] = load_trainer_config(entry.path().string()).train) << name;
  }
  ASSERT_EQ(loaded.size(), 14u);
  EXPECT_EQ(loaded["train-tiny.yaml"].ranks(), 1);
  EXPECT_EQ(loaded["train-tiny.yaml"].batch, 16);
  EXPECT_EQ(loaded["train-tiny-dp2.yaml"].dp, 2);
  EXPECT_EQ(loaded["train-tiny-tp2.yaml"].tp, 2);
  EXPECT_EQ(loaded["train-tiny-cp2.yaml"].cp, 2);
  EXPECT_EQ(loaded["train-tiny-cp2-ring.yaml"].cp_comm, ContextComm::ring);
  EXPECT_EQ(loaded["train-tiny-moe-ep2.yaml"].ep, 2);
  EXPECT_EQ(loaded["train-tiny-pp2.yaml"].pp, 2);
  EXPECT_EQ(loaded["train-tiny-pp2.yaml"].ranks(), 2);
  EXPECT_EQ(loaded["train-tiny-pp2-dp2.yaml"].ranks(), 4);
  EXPECT_EQ(loaded["train-tiny-pp2-zb.yaml"].schedule, Schedule::zero_bubble_h1);
  EXPECT_EQ(loaded["train-tiny-pp2-zbv.yaml"].schedule, Schedule::zero_bubble_v);
  EXPECT_EQ(loaded["train-tiny-pp2-zbv.yaml"].vpp, 2);
  EXPECT_EQ(loaded["train-tiny-pp2-dualpipev.yaml"].schedule, Schedule::dualpipe_v);
  EXPECT_EQ(loaded["train-tiny-pp2.yaml"].schedule, Schedule::one_f_one_b);
  EXPECT_EQ(loaded["train-tiny-pp2-vpp2.yaml"].schedule, Schedule::interleaved);
  EXPECT_EQ(loaded["train-tiny-pp2-vpp2.yaml"].vpp, 2);
  EXPECT_EQ(loaded["train-1b.yaml"].batch, 8);
}

// One dialect: the ranks and the batch are the scenario's layout and training sections. The old
// train: keys say where they went; what the trainer does not run is refused, not ignored.
TEST(TrainConfig, TheRanksAndBatchAreTheScenariosSections) {
  EXPECT_EQ(config_error("", "dp: 2, cp: 2, sharding: zero1", 8), "");
  EXPECT_NE(config_error("", "", 0, "train: {dp: 2}\n").find("train.dp: is layout.dp now"), std::string::npos);
  EXPECT_NE(config_error("", "", 0, "train: {batch: 4}\n").find("training.global_batch"), std::string::npos);
  EXPECT_EQ(config_error("", "pp: 2, schedule: 1f1b"), "");  // one layer on each stage
  EXPECT_NE(config_error("", "pp: 3").find("layout.pp: must not exceed model.n_layers (2)"), std::string::npos);
  EXPECT_NE(config_error("", "pp: 2, schedule: gpipe").find("layout.schedule"), std::string::npos);
  EXPECT_EQ(config_error("", "pp: 2, schedule: zb-h1"), "");
  EXPECT_NE(config_error("", "pp: 2, vpp: 2, microbatch: 1").find("layout.vpp: pp x vpp must not exceed model.n_layers (2)"),
            std::string::npos);  // 4 chunks of 2 layers
  EXPECT_NE(config_error("", "pp: 1, vpp: 2, schedule: 1f1b").find("layout.vpp"), std::string::npos);
  EXPECT_NE(config_error("", "pp: 2, schedule: interleaved").find("layout.schedule"), std::string::npos);
  EXPECT_NE(config_error("", "schedule: zb-h1").find("layout.schedule: zb-h1 needs pipeline stages"), std::string::npos);
  EXPECT_NE(config_error("n_experts: 4, top_k: 2, expert_d_ff: 16", "pp: 2, schedule: zb-h1").find("layout.schedule"),
            std::string::npos);
  EXPECT_NE(config_error("", "sp: true").find("layout.sp"), std::string::npos);
  EXPECT_NE(config_error("", "sharding: fsdp").find("layout.sharding"), std::string::npos);
  EXPECT_NE(config_error("", "dp: 3", 4).find("training.global_batch"), std::string::npos);
  EXPECT_NE(config_error("", "", 0, "training: {optimizer: adam}\n").find("training.optimizer"), std::string::npos);
}

}  // namespace
}  // namespace palmsim
