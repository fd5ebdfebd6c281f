// The whole model (embedding, blocks, final LayerNorm, tied logits, z-loss) against finite
// differences in double precision, for PaLM's parallel block with multi-query attention and for
// the serial / multi-head switches.
#include "finite_difference.h"
#include "kernels/palm_model.h"

namespace palmsim {
namespace {

ModelSpec tiny(bool parallel, int kv_heads) {
  ModelSpec m;
  m.name = "fd-tiny";
  m.n_layers = 2, m.d_model = 8, m.n_heads = 2, m.n_kv_heads = kv_heads, m.head_dim = 4;
  m.d_ff = 12, m.ffn = Ffn::swiglu, m.vocab = 11, m.seq_len = 5;
  m.parallel_block = parallel;
  return m;
}

void check_model_gradients(const ModelSpec& spec) {
  PalmModel<double> model(spec);
  model.init(42);
  const int64_t batch = 2;
  const std::vector<int32_t> tokens{1, 4, 2, 9, 0, 3, 3, 7, 10, 5}, targets{4, 2, 9, 0, 3, 3, 7, 10, 5, 6};
  std::fill(model.grads().begin(), model.grads().end(), 0.0);
  model.forward_backward(tokens.data(), targets.data(), batch, nullptr, nullptr);
  const std::vector<double> analytic = model.grads();
  auto f = [&] {
    std::vector<double> keep = model.grads();
    const double loss = model.forward_backward(tokens.data(), targets.data(), batch, nullptr, nullptr);
    model.grads() = keep;
    return loss;
  };
  // Every 7th parameter of every tensor kind keeps the test fast and covers them all.
  testing_fd::expect_gradient(model.params(), f, analytic, spec.parallel_block ? "parallel" : "serial", 7, 1e-5);
}

TEST(ModelGradients, ParallelBlockMultiQuery) { check_model_gradients(tiny(true, 1)); }
TEST(ModelGradients, SerialBlockMultiHead) { check_model_gradients(tiny(false, 2)); }

// A zero-bubble schedule's B pass leaves the layers' weight gradients (wq, wkv, wo, win, wout) for
// its W pass and computes the rest (LayerNorms, the tied embedding through lookups and logits) as
// usual; the W pass then runs the same GEMMs on the same values: every gradient equals the one-pass
// backward's, bit for bit, in both block kinds.
TEST(ModelGradients, DeferredWeightGradientsRunInTheirOwnPass) {
  for (bool parallel : {true, false}) {
    const ModelSpec spec = tiny(parallel, parallel ? 1 : 2);
    const std::vector<int32_t> tokens{1, 4, 2, 9, 0, 3, 3, 7, 10, 5}, targets{4, 2, 9, 0, 3, 3, 7, 10, 5, 6};
    PalmModel<double> one_pass(spec), split(spec);
    one_pass.init(42), split.init(42);
    std::fill(one_pass.grads().begin(), one_pass.grads().end(), 0.0);
    std::fill(split.grads().begin(), split.grads().end(), 0.0);
    const double loss = one_pass.forward_backward(tokens.data(), targets.data(), 2, nullptr, nullptr);
    EXPECT_EQ(split.stage_forward(0, 0, tokens.data(), targets.data(), 2, nullptr, nullptr, nullptr, nullptr, nullptr, 1.0),
              loss);
    split.stage_backward(0, 0, nullptr, true);
    auto is_weight = [](const std::string& name) {
      for (const char* w : {"wq", "wkv", "wo", "win", "wout"})
        if (name.ends_with(std::string(".") + w)) return true;
      return false;
    };
    int weights = 0;
    for (const TensorInfo& t : split.tensors()) {
      weights += is_weight(t.name);
      for (size_t i = 0; i < t.size(); ++i) {
        const double after_b = split.grads()[t.offset + i], whole = one_pass.grads()[t.offset + i];
        if (is_weight(t.name)) ASSERT_EQ(after_b, 0.0) << t.name << " [" << i << "] before the W pass";
        else ASSERT_EQ(after_b, whole) << t.name << " [" << i << "]";
      }
    }
    EXPECT_EQ(weights, 2 * 5);
    split.stage_weight_gradients(0, 0);
    EXPECT_EQ(split.grads(), one_pass.grads()) << (parallel ? "parallel" : "serial");
  }
}

TEST(ModelGradients, UntrainedLossIsNearLogVocab) {
  // Small random logits (scaled by 1/sqrt(d)) give a loss near log V: an independent sanity bound.
  ModelSpec spec = tiny(true, 1);
  spec.vocab = 64;
  PalmModel<double> model(spec);
  model.init(1);
  std::vector<int32_t> tokens(10), targets(10);
  for (int i = 0; i < 10; ++i) tokens[static_cast<size_t>(i)] = i * 5, targets[static_cast<size_t>(i)] = i * 3 + 1;
  const double ce = model.evaluate(tokens.data(), targets.data(), 2, nullptr);
  EXPECT_NEAR(ce, std::log(64.0), 1.0);
}

}  // namespace
}  // namespace palmsim
