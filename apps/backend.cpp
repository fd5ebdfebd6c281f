#include "apps/verbs.h"
#include "model/input_error.h"

namespace palmsim {

void check_backend(const std::string& backend, bool verb_runs_on_cuda) {
  if (backend != "cpu" && backend != "cuda")
    throw InputError("--backend", "'" + backend + "' is not a backend; allowed: cpu, cuda");
#ifdef PALMSIM_CUDA_STANDALONE
  if (backend == "cpu")
    throw InputError("--backend", "this standalone CUDA build has no cpu trainer; use the full build for cpu");
#endif
  if (backend != "cuda") return;
#ifndef PALMSIM_WITH_CUDA
  throw InputError("--backend", "cuda needs the CUDA backend, which this build lacks (configure with -DPALMSIM_CUDA=ON)");
#endif
  if (!verb_runs_on_cuda)
    throw InputError("--backend", "this verb runs on the cpu backend so far; on GPUs, "
                                  "`palmsim bench-step CONFIG --backend cuda` times the training step");
}

}  // namespace palmsim
