// The whole GPU training step against the CPU backend: gradients of one microbatch, ten optimizer
// steps' losses, and bitwise-identical losses across two GPU runs.
#include "gpu_test_support.h"
#include "kernels/cuda/cuda_rank_trainer.h"
#include "kernels/rank_trainer.h"

namespace palmsim::cuda {
namespace {

using namespace testing;

ModelSpec small_model(bool parallel_block) {
  ModelSpec m;
  m.name = parallel_block ? "gpu-check-parallel" : "gpu-check-serial";
  m.n_layers = 2, m.d_model = 128, m.n_heads = 4, m.n_kv_heads = 1, m.head_dim = 64;
  m.d_ff = 256, m.ffn = Ffn::swiglu, m.vocab = 512, m.seq_len = 128;
  m.parallel_block = parallel_block;
  return m;
}

TrainConfig small_config() {
  TrainConfig c;
  c.batch = 4;
  c.seed = 3;
  c.threads = 1;
  return c;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
};

// A learnable pattern (each target a function of its token) so ten steps visibly lower the loss.
Batch make_batch(const ModelSpec& m, int64_t sequences) {
  Batch b;
  std::mt19937 rng(5);
  for (int64_t i = 0; i < sequences * m.seq_len; ++i) {
    const int32_t t = int32_t(rng() % m.vocab);
    b.tokens.push_back(t);
    b.targets.push_back(int32_t((t * 7 + 1) % m.vocab));
  }
  return b;
}

class GpuStep : public ::testing::TestWithParam<bool> {};

TEST_P(GpuStep, GradientsMatchCpuBackend) {
  PALMSIM_REQUIRE_GPU();
  const ModelSpec m = small_model(GetParam());
  const Batch b = make_batch(m, 2);
  PalmModel<float> cpu(m);
  cpu.init(9);
  // The CPU model gets the GPU's bf16-rounded weights, so only activation rounding differs.
  cpu.params() = round_to_bf16(cpu.params());
  const double cpu_loss = cpu.forward_backward(b.tokens.data(), b.targets.data(), 2, nullptr, nullptr);
  GpuPalmModel gpu(m, 1, 0, nullptr);
  gpu.set_params(cpu.params());
  const double gpu_loss = gpu.forward_backward(b.tokens.data(), b.targets.data(), 2, nullptr, nullptr);
  EXPECT_NEAR(gpu_loss, cpu_loss, 5e-3 * cpu_loss);
  const auto grads = gpu.grads_to_host();
  for (const TensorInfo& t : cpu.tensors()) {
    const std::vector<float> want(cpu.grads().begin() + long(t.offset), cpu.grads().begin() + long(t.offset + t.size()));
    const std::vector<float> got(grads.begin() + long(t.offset), grads.begin() + long(t.offset + t.size()));
    EXPECT_LT(relative_error(got, want), 3e-2) << t.name;
  }
}

TEST_P(GpuStep, TenStepsFollowCpuLossesAndRepeatBitwise) {
  PALMSIM_REQUIRE_GPU();
  const ModelSpec m = small_model(GetParam());
  const TrainConfig c = small_config();
  const Batch b = make_batch(m, c.batch);
  RankTrainer cpu(m, c, RankContext{});
  cpu.model().init(c.seed);
  std::vector<double> cpu_losses, gpu_losses[2];
  for (int64_t s = 1; s <= 10; ++s) cpu_losses.push_back(cpu.step(b.tokens.data(), b.targets.data(), s, nullptr));
  for (auto& losses : gpu_losses) {
    CudaRankTrainer gpu(m, c, 0, nullptr, nullptr, nullptr);
    gpu.model().init(c.seed);
    for (int64_t s = 1; s <= 10; ++s) losses.push_back(gpu.step(b.tokens.data(), b.targets.data(), s, nullptr));
  }
  for (size_t s = 0; s < cpu_losses.size(); ++s) {
    EXPECT_NEAR(gpu_losses[0][s], cpu_losses[s], 0.02 * cpu_losses[s]) << "step " << s + 1;
    EXPECT_EQ(gpu_losses[0][s], gpu_losses[1][s]) << "step " << s + 1 << " differs between two GPU runs";
  }
  EXPECT_LT(gpu_losses[0].back(), gpu_losses[0].front() - 0.5);  // it learns the pattern
}

INSTANTIATE_TEST_SUITE_P(Blocks, GpuStep, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "parallel" : "serial"; });

TEST(GpuModel, RefusesShapesTheKernelsCannotRun) {
  PALMSIM_REQUIRE_GPU();
  ModelSpec m = small_model(true);
  m.seq_len = 100;
  EXPECT_THROW(GpuPalmModel(m, 1, 0, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace palmsim::cuda
