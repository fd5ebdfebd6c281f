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
