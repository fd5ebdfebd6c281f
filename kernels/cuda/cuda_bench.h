#pragma once
// `palmsim bench-step --backend cuda`: times training steps on GPUs. One rank runs in this
// process; dp x tp ranks run as one process per GPU (forked here before any CUDA call), meeting
// through an NCCL unique-id file, and rank 0's figures come back through a result file.
#include "kernels/bench_result.h"

namespace palmsim::cuda {

// Throws InputError (field "--backend") when there are fewer GPUs than ranks or the model has a
// shape the CUDA kernels cannot run.
BenchResult bench_step_cuda(const ModelSpec& model, const TrainConfig& config, int steps);

}  // namespace palmsim::cuda
