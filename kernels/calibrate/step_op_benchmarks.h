#pragma once
// Times each non-GEMM op of the CPU training step on its own, at the shapes one microbatch of a
// model gives it on one tensor-parallel rank of `tp` (its share of the heads, of d_ff and of the
// parameters; the whole vocabulary, as the trainer keeps it), calling the very kernels the trainer
// calls: seconds per call by "name.phase" (ln.fwd, attention.bwd, optimizer.opt, ...). GEMMs are
// measured separately (the GEMM grid).
#include "model/model_spec.h"

#include <map>
#include <string>

namespace palmsim {

// A sparse model's rank holds n_experts / ep of the experts (the optimizer's and the norm's share).
std::map<std::string, double> time_step_ops(const ModelSpec& model, int64_t microbatch, int tp, int repetitions,
                                            int ep = 1);

}  // namespace palmsim
