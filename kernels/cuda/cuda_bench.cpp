#include "kernels/cuda/cuda_bench.h"

#include "kernels/cuda/cuda_rank_trainer.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/forked_ranks.h"
#include "kernels/cuda/nccl_communicator.h"
#include "model/accounting.h"
#include "model/input_error.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <random>

namespace palmsim::cuda {

namespace {

namespace fs = std::filesystem;

struct RankGroups {
  int rank = 0;
  Communicator* tp = nullptr;
  Communicator* dp = nullptr;
  Communicator* world = nullptr;
};

BenchResult bench_on_rank(const ModelSpec& model, const TrainConfig& config, int steps, const RankGroups& g,
                          cudaStream_t stream) {
  BenchResult result;
  const int64_t seq = model.seq_len, local = config.batch / config.dp;
  // The CPU bench's synthetic tokens: every rank the same first `local` sequences.
  std::vector<int32_t> tokens(static_cast<size_t>(local * seq)), targets(tokens.size());
  std::mt19937 rng(config.seed);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(rng() % model.vocab), targets[i] = int32_t(rng() % model.vocab);

  CudaRankTrainer trainer(model, config, g.rank, g.tp, g.dp, stream);
  trainer.model().init(config.seed);
  trainer.step(tokens.data(), targets.data(), 1, nullptr);  // warm-up: cuBLAS heuristics, first touches
  std::vector<double> step_s;
  std::vector<std::map<std::string, double>> step_ops;
  GpuOpTimer gpu_timer(stream);  // its events are reused step after step: flush() empties it
  for (int s = 0; s < steps; ++s) {
    if (g.world) g.world->barrier();
    const auto t0 = std::chrono::steady_clock::now();
    trainer.step(tokens.data(), targets.data(), 2 + s, g.rank == 0 ? &gpu_timer : nullptr);  // ends synchronized
    if (g.world) g.world->barrier();
    step_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    OpTimer ops;
    gpu_timer.flush(ops);
    step_ops.push_back(ops.seconds());
  }
  record_steps(result, step_s, step_ops);
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  result.device = device_name(device);
  result.peak_flops = datasheet_bf16_flops(result.device);
  result.peak_source = "datasheet dense bf16";
  if (result.peak_flops == 0) {
    result.peak_flops = measured_cublas_bf16_flops(8192, 10);
    result.peak_source = "cuBLAS bf16 GEMM 8192^3, measured";
  }
  if (config.ranks() > 1) result.device += " x" + std::to_string(config.ranks());
  result.tokens_per_s = double(config.batch) * double(seq) / result.step_time_s;
  // PaLM's MFU: model FLOPs per second over the peak of every chip in the run.
  result.mfu = flops_utilization(result.tokens_per_s, model_flops_per_token(model), result.peak_flops * config.ranks());
  result.gemm_flops_per_s = plan_gemm_flops_per_s(model, config, result.per_op_s, 2);
  return result;
}

nlohmann::json to_json(const BenchResult& r) {
  return {{"step_time_s", r.step_time_s}, {"tokens_per_s", r.tokens_per_s}, {"mfu", r.mfu},
          {"best_step_time_s", r.best_step_time_s}, {"step_times_s", r.step_times_s},
          {"median_per_op", r.median_per_op_s}, {"peak_flops", r.peak_flops},
          {"peak_source", r.peak_source}, {"gemm_flops_per_s", r.gemm_flops_per_s}, {"per_op", r.per_op_s},
          {"device", r.device}};
}

BenchResult from_json(const nlohmann::json& j) {
  BenchResult r;
  r.step_time_s = j.at("step_time_s");
  r.tokens_per_s = j.at("tokens_per_s");
  r.mfu = j.at("mfu");
  r.best_step_time_s = j.at("best_step_time_s");
  r.step_times_s = j.at("step_times_s").get<std::vector<double>>();
  r.median_per_op_s = j.at("median_per_op").get<std::map<std::string, double>>();
  r.peak_flops = j.at("peak_flops");
  r.peak_source = j.at("peak_source");
  r.gemm_flops_per_s = j.at("gemm_flops_per_s");
  r.per_op_s = j.at("per_op").get<std::map<std::string, double>>();
  r.device = j.at("device");
  return r;
}

// One process per GPU rank (run_forked_ranks, before this process touches CUDA); each child picks
// its GPU, joins NCCL through `dir`/nccl.id and splits the world
// into its tensor-parallel group (same dp rank) and data-parallel group (same tp rank).
BenchResult bench_multi_process(const ModelSpec& model, const TrainConfig& config, int steps) {
  const fs::path dir = fs::temp_directory_path() / ("palmsim-nccl-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string id_file = (dir / "nccl.id").string(), result_file = (dir / "rank0.json").string();
  const int worst = run_forked_ranks(config.ranks(), [&](int rank) {
    try {
      const int gpus = device_count();
      if (gpus < config.ranks())
        throw InputError("--backend", "cuda with dp x tp = " + std::to_string(config.ranks()) + " ranks needs as many GPUs; " +
                                          std::to_string(gpus) + " found");
      CUDA_CHECK(cudaSetDevice(rank));
      cudaStream_t stream;
      CUDA_CHECK(cudaStreamCreate(&stream));
      auto world = NcclCommunicator::join(id_file, rank, config.ranks(), stream);
      const int tp_rank = rank % config.tp, dp_rank = rank / config.tp;
      auto tp = world->split(dp_rank, tp_rank);
      auto dp = world->split(tp_rank, dp_rank);
      const BenchResult r = bench_on_rank(model, config, steps, {rank, tp.get(), dp.get(), world.get()}, stream);
      if (rank == 0) {
        std::ofstream(result_file + ".tmp") << to_json(r).dump();
        fs::rename(result_file + ".tmp", result_file);
      }
      return 0;
    } catch (const InputError& e) {
      std::cerr << "palmsim: error: " << e.what() << "\n";
      return 2;
    } catch (const std::invalid_argument& e) {  // a model shape the CUDA kernels cannot run
      std::cerr << "palmsim: error: model: " << e.what() << "\n";
      return 2;
    }
  });
  std::ifstream in(result_file);
  const bool have = worst == 0 && in.good();
  BenchResult r;
  if (have) r = from_json(nlohmann::json::parse(in));
  fs::remove_all(dir);
  if (worst == 2) throw InputError("--backend", "the GPU ranks refused this run (see above)");
  if (!have) throw std::runtime_error("a GPU rank failed (see above)");
  return r;
}

}  // namespace

BenchResult bench_step_cuda(const ModelSpec& model, const TrainConfig& config, int steps) {
  if (config.cp > 1) throw InputError("layout.cp", "the CUDA backend has no context parallelism yet; use 1, or --backend cpu");
  if (config.pp > 1) throw InputError("layout.pp", "the CUDA backend runs one pipeline stage; use 1, or --backend cpu");
  if (config.ranks() > 1) return bench_multi_process(model, config, steps);
  if (device_count() == 0) throw InputError("--backend", "cuda needs an NVIDIA GPU; none is visible to this process");
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreate(&stream));
  try {
    const BenchResult r = bench_on_rank(model, config, steps, {}, stream);
    cudaStreamDestroy(stream);
    return r;
  } catch (const std::invalid_argument& e) {
    cudaStreamDestroy(stream);
    throw InputError("model", e.what());
  }
}

}  // namespace palmsim::cuda
