// Every op's backward against central finite differences of its forward, in double precision.
#include "finite_difference.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"

namespace palmsim {
namespace {

using testing_fd::expect_gradient;
using testing_fd::random_vector;
using testing_fd::weighted_sum;

TEST(OpGradients, LayerNorm) {
  const int64_t rows = 3, d = 7;
  auto x = random_vector(static_cast<size_t>(rows * d), 1), g = random_vector(static_cast<size_t>(d), 2), w = random_vector(static_cast<size_t>(rows * d), 3);
  std::vector<double> y(x.size()), mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows));
  auto f = [&] {
    cpu::layernorm_forward(x.data(), g.data(), y.data(), mean.data(), rstd.data(), rows, d);
    return weighted_sum(y, w);
  };
  f();
  std::vector<double> dx(x.size(), 0.0), dg(g.size(), 0.0);
  cpu::layernorm_backward(x.data(), g.data(), mean.data(), rstd.data(), w.data(), dx.data(), dg.data(), rows, d);
  expect_gradient(x, f, dx, "dx");
  expect_gradient(g, f, dg, "dg");
}

TEST(OpGradients, LayerNormNormalises) {
  // Independent of the gradient: each output row has mean 0 and variance 1 (up to epsilon).
  const int64_t d = 64;
  auto x = random_vector(static_cast<size_t>(d), 4, 3.0);
  std::vector<double> g(static_cast<size_t>(d), 1.0), y(static_cast<size_t>(d)), mean(1), rstd(1);
  cpu::layernorm_forward(x.data(), g.data(), y.data(), mean.data(), rstd.data(), 1, d);
  double m = 0, v = 0;
  for (double a : y) m += a / d;
  for (double a : y) v += (a - m) * (a - m) / d;
  EXPECT_NEAR(m, 0.0, 1e-12);
  EXPECT_NEAR(v, 1.0, 1e-6);
}

TEST(OpGradients, RopeIsARotation) {
  const int64_t rows = 6, heads = 2, q = 8, seq = 3, ld = heads * q + 4;  // wider rows: strided
  auto x = random_vector(static_cast<size_t>(rows * ld), 5), w = random_vector(static_cast<size_t>(rows * ld), 6);
  std::vector<double> y;
  auto f = [&] {
    y = x;
    cpu::rope_forward(y.data(), rows, ld, heads, q, seq);
    return weighted_sum(y, w);
  };
  f();
  // Norms per (row, head) are preserved; position 0 is unrotated; columns past the heads untouched.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < heads; ++h) {
      double a = 0, b = 0;
      for (int64_t c = 0; c < q; ++c) a += x[static_cast<size_t>(r * ld + h * q + c)] * x[static_cast<size_t>(r * ld + h * q + c)],
                                      b += y[static_cast<size_t>(r * ld + h * q + c)] * y[static_cast<size_t>(r * ld + h * q + c)];
      EXPECT_NEAR(a, b, 1e-12);
    }
  for (int64_t c = 0; c < ld; ++c) EXPECT_DOUBLE_EQ(x[static_cast<size_t>(c)], y[static_cast<size_t>(c)]);
  EXPECT_DOUBLE_EQ(x[static_cast<size_t>(ld - 1)], y[static_cast<size_t>(ld - 1)]);
  std::vector<double> dx = w;
  cpu::rope_backward(dx.data(), rows, ld, heads, q, seq);
  expect_gradient(x, f, dx, "dx");
}

TEST(OpGradients, SwiGlu) {
  const int64_t rows = 4, f_dim = 5;
  auto u = random_vector(static_cast<size_t>(rows * 2 * f_dim), 7), w = random_vector(static_cast<size_t>(rows * f_dim), 8);
  std::vector<double> h(static_cast<size_t>(rows * f_dim));
  auto f = [&] {
    cpu::swiglu_forward(u.data(), h.data(), rows, f_dim);
    return weighted_sum(h, w);
  };
  f();
  // Swish(a) * b at a = 0 is 0; at large a it approaches a * b.
  std::vector<double> du(u.size());
  cpu::swiglu_backward(u.data(), w.data(), du.data(), rows, f_dim);
  expect_gradient(u, f, du, "du");
}

void check_attention(int64_t heads, int64_t kv_heads) {
  const cpu::AttentionShape s{2, 5, heads, kv_heads, 4};
  const int64_t rows = s.batch * s.seq;
  auto qkv = random_vector(static_cast<size_t>(rows * s.ld()), 9), w = random_vector(static_cast<size_t>(rows * heads * s.head_dim), 10);
  std::vector<double> o(w.size()), lse(static_cast<size_t>(s.batch * heads * s.seq));
  auto f = [&] {
    cpu::attention_forward(s, qkv.data(), o.data(), lse.data());
    return weighted_sum(o, w);
  };
  f();
  std::vector<double> dqkv(qkv.size());
  cpu::attention_backward(s, qkv.data(), o.data(), lse.data(), w.data(), dqkv.data());
  expect_gradient(qkv, f, dqkv, "dqkv");
  // Causality: the first position attends only to itself, so its output is its own value row.
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t g = h / (heads / kv_heads);
    for (int64_t c = 0; c < s.head_dim; ++c)
      EXPECT_NEAR(o[static_cast<size_t>(h * s.head_dim + c)], qkv[static_cast<size_t>((heads + kv_heads + g) * s.head_dim + c)], 1e-12);
  }
}

TEST(OpGradients, MultiQueryAttention) { check_attention(4, 1); }
TEST(OpGradients, GroupedQueryAttention) { check_attention(4, 2); }
TEST(OpGradients, MultiHeadAttention) { check_attention(3, 3); }

TEST(OpGradients, CrossEntropyWithZLoss) {
  const int64_t rows = 3, vocab = 6;
  auto z = random_vector(static_cast<size_t>(rows * vocab), 11, 2.0);
  const std::vector<int32_t> targets{1, 5, 0};
  std::vector<double> log_z(static_cast<size_t>(rows));
  auto f = [&] { return cpu::cross_entropy_forward(z.data(), targets.data(), log_z.data(), rows, vocab, 1e-4); };
  double plain = 0;
  const double loss = cpu::cross_entropy_forward(z.data(), targets.data(), log_z.data(), rows, vocab, 1e-4, &plain);
  // The z-loss adds exactly 1e-4 * mean(log^2 Z).
  double zl = 0;
  for (double v : log_z) zl += 1e-4 * v * v / rows;
  EXPECT_NEAR(loss - plain, zl, 1e-15);
  std::vector<double> dz(z.size());
  cpu::cross_entropy_backward(z.data(), targets.data(), log_z.data(), dz.data(), rows, vocab, 1e-4);
  expect_gradient(z, f, dz, "dz");
}

}  // namespace
}  // namespace palmsim
