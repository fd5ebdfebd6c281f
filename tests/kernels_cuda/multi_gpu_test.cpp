// Data and tensor parallelism across GPUs, one process per GPU over NCCL: dp 2 and tp 2 give the
// loss one GPU gives on the same global batch. Needs two GPUs; skips otherwise. Every CUDA call
// happens in forked children (a CUDA context does not survive fork), so this suite has its own
// executable whose parent process never touches CUDA.
#include "kernels/cuda/cuda_rank_trainer.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/forked_ranks.h"
#include "kernels/cuda/nccl_communicator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

namespace palmsim::cuda {
namespace {

namespace fs = std::filesystem;

int gpus_in_child() {
  const fs::path file = fs::temp_directory_path() / ("palmsim-gpus-" + std::to_string(getpid()));
  run_forked_ranks(1, [&](int) {
    std::ofstream(file) << device_count();
    return 0;
  });
  int n = 0;
  std::ifstream(file) >> n;
  fs::remove(file);
  return n;
}

ModelSpec model() {
  ModelSpec m;
  m.name = "multi-gpu-check";
  m.n_layers = 2, m.d_model = 128, m.n_heads = 4, m.n_kv_heads = 1, m.head_dim = 64;
  m.d_ff = 256, m.ffn = Ffn::swiglu, m.vocab = 512, m.seq_len = 128;
  return m;
}

// Mean loss of the first step over a global batch of 4 sequences with this layout (rank 0's view).
double first_step_loss(int dp, int tp) {
  const fs::path dir = fs::temp_directory_path() / ("palmsim-mgpu-" + std::to_string(getpid()) + "-" +
                                                    std::to_string(dp) + "x" + std::to_string(tp));
  fs::create_directories(dir);
  const ModelSpec m = model();
  const bool ok = run_forked_ranks(dp * tp, [&](int rank) {
    CUDA_CHECK(cudaSetDevice(rank));
    TrainConfig c;
    c.batch = 4, c.dp = dp, c.tp = tp, c.seed = 3;
    auto world = NcclCommunicator::join((dir / "id").string(), rank, dp * tp, nullptr);
    auto tp_group = world->split(rank / tp, rank % tp);
    auto dp_group = world->split(rank % tp, rank / tp);
    CudaRankTrainer trainer(m, c, rank, tp_group.get(), dp_group.get(), nullptr);
    trainer.model().init(c.seed);
    std::mt19937 rng(5);
    std::vector<int32_t> tokens, targets;
    for (int64_t i = 0; i < c.batch * m.seq_len; ++i) tokens.push_back(int32_t(rng() % m.vocab));
    for (int32_t t : tokens) targets.push_back((t * 7 + 1) % int32_t(m.vocab));
    const int64_t offset = (rank / tp) * (c.batch / dp) * m.seq_len;  // this dp rank's sequences
    const double loss = trainer.step(tokens.data() + offset, targets.data() + offset, 1, nullptr);
    if (rank == 0) std::ofstream(dir / "loss") << std::hexfloat << loss;
    return 0;
  }) == 0;
  double loss = NAN;
  if (ok) std::ifstream(dir / "loss") >> std::hexfloat >> loss;
  fs::remove_all(dir);
  return loss;
}

TEST(MultiGpu, DataAndTensorParallelMatchOneGpu) {
  const int gpus = gpus_in_child();
  if (gpus < 2) GTEST_SKIP() << "needs two GPUs; " << gpus << " found";
  const double one = first_step_loss(1, 1);
  ASSERT_TRUE(std::isfinite(one));
  EXPECT_NEAR(first_step_loss(2, 1), one, 5e-3 * one);
  EXPECT_NEAR(first_step_loss(1, 2), one, 5e-3 * one);
}

}  // namespace
}  // namespace palmsim::cuda
