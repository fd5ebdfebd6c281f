#pragma once
// Times each non-GEMM op of the CPU training step on its own, at the shapes one microbatch of a
// model gives it on one rank of the layout: its share of the heads, of d_ff and of the parameters
// under tensor parallelism (the whole vocabulary, as the trainer keeps it), its experts under expert
// parallelism, its rows of each sequence under context parallelism (attention against the whole
// sequence's keys), calling the very kernels the trainer calls: seconds per call by "name.phase"
// (ln.fwd, attention.bwd, optimizer.opt, ...). GEMMs are measured separately (the GEMM grid).
#include "model/layout.h"
#include "model/model_spec.h"

#include <map>
#include <string>

namespace palmsim {

// Reads the layout's microbatch, tp, ep and cp.
std::map<std::string, double> time_step_ops(const ModelSpec& model, const Layout& layout, int repetitions);

}  // namespace palmsim
