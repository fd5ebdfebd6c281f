#pragma once
// The order in which one pipeline stage runs its microbatches' forward and backward chunks: the
// simulator executes this list and blocks on its neighbours' sends, so fill, drain and the
// interleaved schedule's smaller bubble come out of the events rather than a formula; the CPU
// trainer's pipeline stages run the same list (kernels/rank_trainer.cpp).
#include "model/layout.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace palmsim {

// The interleaved schedule's placement (Narayanan et al. 2021): model chunk `chunk` of stage
// `stage` is virtual stage chunk * pp + stage of pp * vpp; without interleaving, the stage itself.
inline int virtual_stage(int pp, int stage, int chunk) { return chunk * pp + stage; }

struct ChunkWork {
  bool forward = true;
  int microbatch = 0;
  int chunk = 0;  // model chunk on this stage (0 .. vpp-1); virtual stage = chunk * pp + stage
  // A backward item of a zero-bubble schedule: weight (W) runs the weight gradients its backward
  // (B, the input gradients only) left; other schedules' backward items run both.
  bool weight = false;
  bool operator==(const ChunkWork&) const = default;
};

// gpipe: every forward, then every backward. one_f_one_b: PipeDream-flush (pp - stage - 1 warm-up
// forwards, then one forward one backward, then the cool-down backwards). vpp > 1: Megatron's interleaved
// 1F1B over vpp chunks (Narayanan et al. 2021), microbatches in groups of pp (pp must divide them).
// zero_bubble_h1: 1F1B's order of forwards and input-gradient backwards, each backward followed by
// the oldest weight gradients beyond the `stage` this stage may defer (Qi et al. 2023's ZB-H1: at
// most pp microbatches in flight on any stage), the deferred ones at the end.
std::vector<ChunkWork> stage_schedule(Schedule schedule, int pp, int vpp, int stage,
                                      int microbatches);

// Index of the schedule's last backward (input-gradient) item: where gradient buckets that hide
// behind backward start.
size_t last_backward_pass(const std::vector<ChunkWork>& schedule);

}  // namespace palmsim
