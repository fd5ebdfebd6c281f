// Every CUDA op against its CPU backend twin on random inputs (bf16 tolerances: inputs that feed
// tensor cores are rounded to bf16 first, so the CPU sees what the GPU sees).
#include "gpu_test_support.h"
#include "kernels/adafactor.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/swiglu.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/gemm.h"
#include "kernels/palm_choices.h"

namespace palmsim::cuda {
namespace {

using namespace testing;

constexpr double kBf16Tolerance = 1e-2;

TEST(CudaOps, GemmMatchesCpuInAllTransposes) {
  PALMSIM_REQUIRE_GPU();
  const int64_t m = 96, n = 80, k = 112;
  for (int variant = 0; variant < 4; ++variant) {
    const bool ta = variant & 1, tb = variant & 2;
    const auto a = round_to_bf16(random_vector(static_cast<size_t>(m * k), 1 + variant));
    const auto b = round_to_bf16(random_vector(static_cast<size_t>(k * n), 11 + variant));
    auto c = random_vector(static_cast<size_t>(m * n), 21 + variant);
    auto da = to_device_bf16(a), db = to_device_bf16(b);
    auto dc = to_device(c);
    Gemm gemm(nullptr);
    gemm(ta, tb, m, n, k, 0.5f, da.data(), ta ? m : k, db.data(), tb ? k : n, 1.0f, dc.data(), n);
    cpu::gemm_serial(ta, tb, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n, 1.0f, c.data(), n);
    EXPECT_LT(relative_error(to_host(dc), c), 1e-5) << "trans_a " << ta << " trans_b " << tb;  // fp32 accumulation
  }
}

TEST(CudaOps, LayerNormForwardAndBackward) {
  PALMSIM_REQUIRE_GPU();
  const int64_t rows = 300, d = 256;
  const auto x = random_vector(static_cast<size_t>(rows * d), 2, 3.0f), g = random_vector(static_cast<size_t>(d), 3);
  const auto dy = random_vector(static_cast<size_t>(rows * d), 4);
  std::vector<float> y(x.size()), mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows));
  cpu::layernorm_forward(x.data(), g.data(), y.data(), mean.data(), rstd.data(), rows, d);
  std::vector<float> dx = random_vector(x.size(), 5), dg = random_vector(static_cast<size_t>(d), 6);
  auto dx_gpu = to_device(dx), dg_gpu = to_device(dg);
  cpu::layernorm_backward(x.data(), g.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dg.data(), rows, d);

  auto dxx = to_device(x), dgg = to_device(g), ddy = to_device(dy);
  DeviceBuffer<bf16> dyy(x.size());
  DeviceBuffer<float> dmean(static_cast<size_t>(rows)), drstd(static_cast<size_t>(rows)), partials(static_cast<size_t>(layernorm_partials_size(rows, d)));
  poison(dyy);
  layernorm_forward(dxx.data(), dgg.data(), dyy.data(), dmean.data(), drstd.data(), rows, d, nullptr);
  EXPECT_LT(relative_error(to_host(dyy), y), kBf16Tolerance);
  EXPECT_LT(relative_error(to_host(dmean), mean), 1e-5);
  EXPECT_LT(relative_error(to_host(drstd), rstd), 1e-5);
  layernorm_backward(dxx.data(), dgg.data(), dmean.data(), drstd.data(), ddy.data(), dx_gpu.data(), dg_gpu.data(),
                     partials.data(), rows, d, nullptr);
  EXPECT_LT(relative_error(to_host(dx_gpu), dx), 1e-5);
  EXPECT_LT(relative_error(to_host(dg_gpu), dg), 1e-5);
}

TEST(CudaOps, RopeForwardAndInverse) {
  PALMSIM_REQUIRE_GPU();
  const int64_t rows = 256, heads = 3, q = 64, ld = 5 * q, seq = 128;
  const auto x = round_to_bf16(random_vector(static_cast<size_t>(rows * ld), 7));
  auto ref = x;
  cpu::rope_forward(ref.data(), rows, ld, heads, q, seq);
  auto dx = to_device_bf16(x);
  rope(dx.data(), rows, ld, heads, q, seq, false, nullptr);
  EXPECT_LT(relative_error(to_host(dx), ref), kBf16Tolerance);
  cpu::rope_backward(ref.data(), rows, ld, heads, q, seq);
  rope(dx.data(), rows, ld, heads, q, seq, true, nullptr);
  EXPECT_LT(relative_error(to_host(dx), ref), kBf16Tolerance);
  EXPECT_LT(relative_error(ref, x), 1e-5);  // the inverse undoes the rotation
}

TEST(CudaOps, SwigluForwardAndBackward) {
  PALMSIM_REQUIRE_GPU();
  const int64_t rows = 200, f = 96;
  const auto u = round_to_bf16(random_vector(static_cast<size_t>(rows * 2 * f), 8, 2.0f));
  const auto dh = round_to_bf16(random_vector(static_cast<size_t>(rows * f), 9));
  std::vector<float> h(static_cast<size_t>(rows * f)), du(u.size());
  cpu::swiglu_forward(u.data(), h.data(), rows, f);
  cpu::swiglu_backward(u.data(), dh.data(), du.data(), rows, f);
  auto du_gpu_in = to_device_bf16(u), ddh = to_device_bf16(dh);
  DeviceBuffer<bf16> dh_out(h.size()), du_out(du.size());
  poison(dh_out);
  poison(du_out);
  swiglu_forward(du_gpu_in.data(), dh_out.data(), rows, f, nullptr);
  swiglu_backward(du_gpu_in.data(), ddh.data(), du_out.data(), rows, f, nullptr);
  EXPECT_LT(relative_error(to_host(dh_out), h), kBf16Tolerance);
  EXPECT_LT(relative_error(to_host(du_out), du), kBf16Tolerance);
}

TEST(CudaOps, CrossEntropyWithZLossForwardAndBackward) {
  PALMSIM_REQUIRE_GPU();
  const int64_t rows = 64, vocab = 1000;
  const auto logits = random_vector(static_cast<size_t>(rows * vocab), 10, 4.0f);
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) targets[static_cast<size_t>(r)] = int32_t((r * 37 + 11) % vocab);
  std::vector<float> log_z(static_cast<size_t>(rows)), dlogits(logits.size());
  const double w = palm_choices::kZLossWeight;
  double ce = 0;
  const double loss = cpu::cross_entropy_forward(logits.data(), targets.data(), log_z.data(), rows, vocab, w, &ce);
  cpu::cross_entropy_backward(logits.data(), targets.data(), log_z.data(), dlogits.data(), rows, vocab, w);

  auto dl = to_device(logits);
  DeviceBuffer<int32_t> dt;
  dt.upload(targets, nullptr);
  DeviceBuffer<float> dz(static_cast<size_t>(rows)), row_loss(static_cast<size_t>(rows)), row_ce(static_cast<size_t>(rows));
  DeviceBuffer<bf16> grad(logits.size());
  poison(grad);
  cross_entropy_forward(dl.data(), dt.data(), dz.data(), row_loss.data(), row_ce.data(), rows, vocab, float(w), nullptr);
  cross_entropy_backward(dl.data(), dt.data(), dz.data(), grad.data(), rows, vocab, float(w), 1.0f, nullptr);
  double gpu_loss = 0, gpu_ce = 0;
  for (float v : to_host(row_loss)) gpu_loss += v;
  for (float v : to_host(row_ce)) gpu_ce += v;
  EXPECT_NEAR(gpu_loss / rows, loss, 1e-4 * loss);
  EXPECT_NEAR(gpu_ce / rows, ce, 1e-4 * ce);
  EXPECT_LT(relative_error(to_host(dz), log_z), 1e-6);
  EXPECT_LT(relative_error(to_host(grad), dlogits), kBf16Tolerance);
}

struct AttentionCase {
  int64_t batch, seq, heads, kv_heads, head_dim;
};

class CudaAttention : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(CudaAttention, ForwardAndBackwardMatchCpu) {
  PALMSIM_REQUIRE_GPU();
  const AttentionCase c = GetParam();
  const cpu::AttentionShape shape{c.batch, c.seq, c.heads, c.kv_heads, c.head_dim};
  const AttentionDims dims{c.batch, c.seq, c.heads, c.kv_heads, c.head_dim};
  ASSERT_EQ(attention_unsupported_reason(dims), "");
  const int64_t rows = c.batch * c.seq, hq = c.heads * c.head_dim;
  const auto qkv = round_to_bf16(random_vector(static_cast<size_t>(rows * shape.ld()), 12));
  const auto d_o = round_to_bf16(random_vector(static_cast<size_t>(rows * hq), 13));
  std::vector<float> o(static_cast<size_t>(rows * hq)), lse(static_cast<size_t>(c.batch * c.heads * c.seq)), dqkv(qkv.size());
  cpu::attention_forward(shape, qkv.data(), o.data(), lse.data());
  const auto o_bf16 = round_to_bf16(o);  // backward sees the GPU's bf16 output
  cpu::attention_backward(shape, qkv.data(), o_bf16.data(), lse.data(), d_o.data(), dqkv.data());

  auto dq = to_device_bf16(qkv), ddo = to_device_bf16(d_o);
  DeviceBuffer<bf16> dout(o.size()), dgrad(qkv.size());
  DeviceBuffer<float> dlse(lse.size()), delta(lse.size());
  poison(dout);
  poison(dlse);
  poison(dgrad);
  attention_forward(dims, dq.data(), dout.data(), dlse.data(), nullptr);
  EXPECT_LT(relative_error(to_host(dout), o), kBf16Tolerance);
  EXPECT_LT(relative_error(to_host(dlse), lse), 1e-3);
  attention_backward(dims, dq.data(), dout.data(), dlse.data(), ddo.data(), delta.data(), dgrad.data(), nullptr);
  const auto grad = to_host(dgrad);
  // dQ, dK and dV separately: a wrong dK would hide inside a large dQ.
  for (int part = 0; part < 3; ++part) {
    const int64_t begin = part == 0 ? 0 : part == 1 ? hq : hq + c.kv_heads * c.head_dim;
    const int64_t width = part == 0 ? hq : c.kv_heads * c.head_dim;
    std::vector<float> got, want;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < width; ++i) {
        got.push_back(grad[static_cast<size_t>(r * shape.ld() + begin + i)]);
        want.push_back(dqkv[static_cast<size_t>(r * shape.ld() + begin + i)]);
      }
    EXPECT_LT(relative_error(got, want), 2 * kBf16Tolerance) << "part " << "QKV"[part];
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttention,
                         ::testing::Values(AttentionCase{2, 128, 4, 1, 64},    // multi-query
                                           AttentionCase{1, 192, 4, 2, 128},   // grouped, odd tile count
                                           AttentionCase{2, 64, 2, 2, 64}));   // multi-head, one tile

TEST(CudaAttentionLimits, RefusesShapesItCannotRun) {
  EXPECT_NE(attention_unsupported_reason({1, 100, 4, 1, 64}), "");   // seq not a multiple of 64
  EXPECT_NE(attention_unsupported_reason({1, 128, 4, 1, 256}), "");  // head_dim 256
  EXPECT_EQ(attention_unsupported_reason({1, 2048, 16, 1, 128}), "");
}

TEST(CudaOps, SumsOfSquaresAndAdafactorMatchCpu) {
  PALMSIM_REQUIRE_GPU();
  std::vector<TensorInfo> tensors = {{"a", 10, 300, 0, false, 1.0}, {"b", 1, 77, 3000, false, 0.0},
                                     {"c", 50, 90, 3077, false, 1.0}};
  const size_t n = 3077 + 4500;
  auto params = random_vector(n, 14), grads = random_vector(n, 15, 0.01f);
  const std::vector<double> sums = sum_of_squares_per_tensor(params.data(), 0, n, tensors);
  std::vector<int64_t> chunk_begin = {0, 1000, 3000, 3077, 5000, int64_t(n)};
  DeviceBuffer<int64_t> dchunks;
  dchunks.upload(chunk_begin, nullptr);
  auto dparams = to_device(params), dgrads = to_device(grads);
  DeviceBuffer<double> chunk_sums(5);
  chunk_sums_of_squares(dparams.data(), dchunks.data(), 5, chunk_sums.data(), nullptr);
  const auto cs = chunk_sums.download(nullptr);
  EXPECT_NEAR(cs[0] + cs[1], sums[0], 1e-9 * sums[0]);
  EXPECT_NEAR(cs[2], sums[1], 1e-9 * sums[1]);
  EXPECT_NEAR(cs[3] + cs[4], sums[2], 1e-9 * sums[2]);

  OptimizerConfig config;
  Adafactor<float> cpu_opt(config, 0, n);
  std::vector<double> rms;
  for (size_t t = 0; t < tensors.size(); ++t) rms.push_back(std::sqrt(sums[t] / double(tensors[t].size())));
  DeviceBuffer<float> m(n), v(n);
  m.zero(nullptr);
  v.zero(nullptr);
  DeviceBuffer<bf16> params_bf16(n);
  DeviceBuffer<int64_t> tensor_begin;
  tensor_begin.upload(std::vector<int64_t>{0, 3000, 3077}, nullptr);
  auto cpu_params = params;
  for (int64_t step = 1; step <= 3; ++step) {
    const double clip = 0.5, lr = learning_rate(config, step);
    cpu_opt.update(cpu_params.data(), grads.data(), tensors, rms, step, clip);
    std::vector<double> scale;
    for (double r : rms) scale.push_back(lr * std::max(palm_choices::kParameterScaleFloor, r));
    DeviceBuffer<double> dscale;
    dscale.upload(scale, nullptr);
    AdafactorStep s{lr, config.beta1, 1.0 - std::pow(double(step), -config.decay_exponent), clip,
                    palm_choices::kSecondMomentEpsilon};
    adafactor_update(dparams.data(), params_bf16.data(), dgrads.data(), m.data(), v.data(), tensor_begin.data(),
                     dscale.data(), 3, int64_t(n), s, nullptr);
  }
  EXPECT_LT(relative_error(to_host(dparams), cpu_params), 1e-6);
  EXPECT_LT(relative_error(to_host(params_bf16), cpu_params), kBf16Tolerance);
  EXPECT_LT(relative_error(to_host(m), cpu_opt.first_moment()), 1e-6);
  EXPECT_LT(relative_error(to_host(v), cpu_opt.second_moment()), 1e-6);
}

TEST(CudaOps, EmbeddingForwardAndBackward) {
  PALMSIM_REQUIRE_GPU();
  const int64_t vocab = 50, d = 64, rows = 200;
  const auto E = random_vector(static_cast<size_t>(vocab * d), 16), dx = random_vector(static_cast<size_t>(rows * d), 17);
  std::vector<int32_t> tokens(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) tokens[static_cast<size_t>(i)] = int32_t((i * i + 3) % 37);  // some ids repeat, some never occur
  std::vector<float> x(static_cast<size_t>(rows * d)), dE(E.size(), 0.0f);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t i = 0; i < d; ++i) {
      x[static_cast<size_t>(n * d + i)] = E[static_cast<size_t>(tokens[static_cast<size_t>(n)] * d + i)];
      dE[static_cast<size_t>(tokens[static_cast<size_t>(n)] * d + i)] += dx[static_cast<size_t>(n * d + i)];
    }
  // The grouping GpuPalmModel builds on the host.
  std::vector<int32_t> positions, group_tokens, group_starts;
  for (int32_t t = 0; t < vocab; ++t) {
    bool first = true;
    for (int32_t n = 0; n < rows; ++n)
      if (tokens[static_cast<size_t>(n)] == t) {
        if (first) group_tokens.push_back(t), group_starts.push_back(int32_t(positions.size())), first = false;
        positions.push_back(n);
      }
  }
  group_starts.push_back(int32_t(rows));
  auto dEm = to_device(E), ddx = to_device(dx);
  DeviceBuffer<int32_t> dtok, dpos, dgt, dgs;
  dtok.upload(tokens, nullptr);
  dpos.upload(positions, nullptr);
  dgt.upload(group_tokens, nullptr);
  dgs.upload(group_starts, nullptr);
  DeviceBuffer<float> dxo(x.size()), dgrad(E.size());
  dgrad.zero(nullptr);
  embedding_forward(dEm.data(), dtok.data(), dxo.data(), rows, d, nullptr);
  embedding_backward(dgt.data(), dgs.data(), dpos.data(), int64_t(group_tokens.size()), ddx.data(), dgrad.data(), d,
                     nullptr);
  EXPECT_EQ(to_host(dxo), x);
  EXPECT_LT(relative_error(to_host(dgrad), dE), 1e-6);
}

}  // namespace
}  // namespace palmsim::cuda
