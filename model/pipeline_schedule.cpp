#include "model/pipeline_schedule.h"

#include <algorithm>

namespace palmsim {

namespace {

// Megatron-LM's interleaved schedule (schedules.py, forward_backward_pipelining_with_interleaving):
// virtual microbatch k of the forward stream runs chunk (k mod pp*vpp) / pp on microbatch
// (k / (pp*vpp)) * pp + k mod pp; the backward stream walks the chunks in reverse.
std::vector<ChunkWork> interleaved(int pp, int vpp, int stage, int m) {
  const int total = m * vpp;
  int warmup = m == pp ? total : (pp - stage - 1) * 2 + (vpp - 1) * pp;
  warmup = std::min(warmup, total);
  auto item = [&](int k, bool forward) {
    const int group = k % (pp * vpp);
    int chunk = group / pp;
    if (!forward) chunk = vpp - 1 - chunk;
    return ChunkWork{forward, (k / (pp * vpp)) * pp + k % pp, chunk};
  };
  std::vector<ChunkWork> out;
  int f = 0, b = 0;
  for (; f < warmup; ++f) out.push_back(item(f, true));
  while (f < total) {
    out.push_back(item(f++, true));
    out.push_back(item(b++, false));
  }
  while (b < total) out.push_back(item(b++, false));
  return out;
}

// ZB-H1: stage s may hold s weight gradients back. The last stage, which starts the backward
// chain, then runs its input gradients without waiting on its weight gradients, and the earlier
// stages spend the waits of the drain on theirs: (pp - 1)(F + B - W) of bubble.
std::vector<ChunkWork> zero_bubble_h1(int pp, int stage, int m) {
  std::vector<ChunkWork> out;
  int f = 0, b = 0, w = 0;
  auto backward = [&] {
    out.push_back({false, b++, 0});
    while (b - w > stage) out.push_back({false, w++, 0, true});
  };
  for (const int warmup = std::min(pp - stage - 1, m); f < warmup;) out.push_back({true, f++, 0});
  while (f < m) {
    out.push_back({true, f++, 0});
    backward();
  }
  while (b < m) backward();
  while (w < m) out.push_back({false, w++, 0, true});
  return out;
}

}  // namespace

std::vector<ChunkWork> stage_schedule(Schedule schedule, int pp, int vpp, int stage, int m) {
  // Model chunks only exist to be interleaved (the closed form's bubble / vpp assumes it).
  if (vpp > 1) return interleaved(pp, vpp, stage, m);
  if (schedule == Schedule::zero_bubble_h1) return zero_bubble_h1(pp, stage, m);
  std::vector<ChunkWork> out;
  if (schedule == Schedule::gpipe) {
    for (int i = 0; i < m; ++i) out.push_back({true, i, 0});
    for (int i = 0; i < m; ++i) out.push_back({false, i, 0});
    return out;
  }
  const int warmup = std::min(pp - stage - 1, m);
  int f = 0, b = 0;
  for (; f < warmup; ++f) out.push_back({true, f, 0});
  while (f < m) {
    out.push_back({true, f++, 0});
    out.push_back({false, b++, 0});
  }
  while (b < m) out.push_back({false, b++, 0});
  return out;
}

size_t last_backward_pass(const std::vector<ChunkWork>& schedule) {
  size_t last = 0;
  for (size_t i = 0; i < schedule.size(); ++i)
    if (!schedule[i].forward && !schedule[i].weight) last = i;
  return last;
}

}  // namespace palmsim
