#pragma once
// The order in which one pipeline stage runs its microbatches' forward and backward chunks: the
// simulator executes this list and blocks on its neighbours' sends, so fill, drain and the
// interleaved schedule's smaller bubble come out of the events rather than a formula; the CPU
// trainer's pipeline stages run the same list (kernels/rank_trainer.cpp).
#include "model/layout.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace palmsim {

// The schedules that place a stage's two model chunks in a V (ZB-V, DualPipeV).
inline bool v_shaped(Schedule s) { return s == Schedule::zero_bubble_v || s == Schedule::dualpipe_v; }

// Where model chunk `chunk` of stage `stage` sits among the pp * vpp virtual stages, which every
// microbatch runs in order. Interleaved (Narayanan et al. 2021): chunk * pp + stage. A V (v_shaped):
// stage for chunk 0, 2 pp - 1 - stage for chunk 1, so stage 0 runs the first and the last and the
// turn at stage pp - 1 needs no message. Without chunks, the stage itself.
int virtual_stage(Schedule schedule, int pp, int stage, int chunk);
// Zero-bubble schedules run a backward's weight gradients (W) apart from its input gradient (B);
// DualPipeV does in its warm-up and cool-down (its order then lists a whole backward as B and W).
inline bool defers_weight_gradients(Schedule s) {
  return s == Schedule::zero_bubble_h1 || s == Schedule::zero_bubble_h2 || s == Schedule::zero_bubble_v ||
         s == Schedule::dualpipe_v;
}

// Microbatches whose activations one stage may hold at once (a whole stage's worth each): 1F1B's
// pp, which ZB-H1 and ZB-V keep, and twice that for ZB-H2 (Qi et al. 2023 Sec. 3). Sizes the
// activation memory, the played-out orders' cap and the trainer's workspaces.
inline int microbatches_in_flight(Schedule s, int pp) { return s == Schedule::zero_bubble_h2 ? 2 * pp : pp; }

// The schedules whose order is found by playing the pipeline out (played_out_orders): it depends
// on the passes' times, and no closed form gives their bubble.
inline bool has_played_out_order(Schedule s) { return s == Schedule::zero_bubble_v || s == Schedule::zero_bubble_h2; }
// The schedules whose bubble is read off the orders' makespan (pipeline_makespan) rather than a
// closed form: the played-out ones, and DualPipeV, whose fixed order overlaps passes.
inline bool bubble_from_makespan(Schedule s) { return has_played_out_order(s) || s == Schedule::dualpipe_v; }

struct StageChunk {
  int stage = 0, chunk = 0;
};
// The stage and chunk that run virtual stage `v`: virtual_stage's inverse.
StageChunk stage_chunk(Schedule schedule, int pp, int v);

// The stage that runs the last virtual stage (the logits and loss): the stage a step plan
// describes (pp - 1, or 0 in ZB-V's V).
inline int loss_stage(Schedule schedule, int pp, int vpp) { return stage_chunk(schedule, pp, pp * vpp - 1).stage; }
// Whether the first and the last virtual stage share a stage (no pipeline, or ZB-V's V): it then
// runs the embedding lookups beside the logits and holds a tied embedding once.
inline bool ends_share_a_stage(Schedule schedule, int pp, int vpp) { return loss_stage(schedule, pp, vpp) == 0; }

struct ChunkWork {
  bool forward = true;
  int microbatch = 0;
  int chunk = 0;  // model chunk on this stage (0 .. vpp-1); its virtual stage: virtual_stage()
  // A backward item of a zero-bubble schedule: weight (W) runs the weight gradients its backward
  // (B, the input gradients only) left; other schedules' backward items run both.
  bool weight = false;
  // DualPipe's overlapped F&B (DeepSeek-V3 report Sec. 3.2.1): this backward starts with the
  // forward before it in the order, the two sharing the chip's compute while each one's
  // communication runs beside the other's compute; what they send leaves when both are done.
  bool joins_previous = false;
  bool operator==(const ChunkWork&) const = default;
};

// Whether item i of a stage's order runs overlapped with its neighbour (ChunkWork::joins_previous).
inline bool in_overlapped_pair(const std::vector<ChunkWork>& order, size_t i) {
  return order[i].joins_previous || (i + 1 < order.size() && order[i + 1].joins_previous);
}

// Seconds one model chunk's passes take, the same on every stage; the virtual stage holding the
// loss adds its own; a message between two stages takes `message`. The default: unit passes.
struct PassSeconds {
  double forward = 1, backward = 1;  // backward: input and weight gradients, or only the input's
  double weight = 1;                 // a zero-bubble schedule's deferred weight gradients (W)
  double loss_forward = 0, loss_backward = 0;
  // Of forward and backward, the blocking communication (tensor-parallel collectives, expert
  // all-to-alls) that another pass's compute can hide when the two run overlapped.
  double forward_comm = 0, backward_comm = 0;
  double layers = 1;  // a chunk's: an overlapped pair takes turns layer by layer
  // Whether DualPipeV's pairs run overlapped; else its orders mark none (ChunkWork::joins_previous)
  // and they run as any two passes, one after the other (a stack with one stream a rank:
  // Stack::overlap_paired_passes).
  bool overlap_pairs = true;
  // Megatron-Core's combined 1F1B (PlanOptions::overlap_moe_a2a) on 1F1B and interleaved orders:
  // one more warm-up forward, then each steady-state backward joins the forward before it
  // (ChunkWork::joins_previous). forward_comm and backward_comm are then what these pairs hide: the
  // expert all-to-alls, and the device's waits for the host after a dropless MoE layer's
  // synchronisation (host_sync_exposed_seconds), which the other half's queued kernels fill.
  bool combined_moe = false;
  double forward_host = 0, backward_host = 0;  // of forward_comm and backward_comm, those waits
  double host(const ChunkWork& pass) const { return pass.weight ? 0.0 : pass.forward ? forward_host : backward_host; }
  double message = 0;
  // A stack that paces every stage by the last (PlanOptions::pipeline_paced_by_last_stage): every
  // chunk's forward and backward then take the loss's time too.
  bool paced_by_loss = false;
  double seconds(const ChunkWork& pass, bool holds_loss) const {
    if (pass.weight) return weight;
    const double loss = pass.forward ? loss_forward : loss_backward;
    return (pass.forward ? forward : backward) + (holds_loss || paced_by_loss ? loss : 0.0);
  }
  // Two passes run overlapped (ChunkWork::joins_previous): their computes take turns on the chip,
  // layer by layer, and each one's communication runs beside the other's compute, so the pair
  // lasts as long as both computes (and the collectives of the second's last layer, which
  // nothing is left to hide) or the longer pass alone, whichever is more.
  double overlapped_seconds(const ChunkWork& a, bool a_loss, const ChunkWork& b, bool b_loss) const {
    const double ta = seconds(a, a_loss), tb = seconds(b, b_loss);
    return std::max({ta, tb, ta - comm(a) + tb - comm(b) + comm(b) / layers});
  }
  double comm(const ChunkWork& pass) const { return pass.weight ? 0.0 : pass.forward ? forward_comm : backward_comm; }
};

// gpipe: every forward, then every backward. one_f_one_b: PipeDream-flush (pp - stage - 1 warm-up
// forwards, then one forward one backward, then the cool-down backwards). vpp > 1: Megatron's interleaved
// 1F1B over vpp chunks (Narayanan et al. 2021), microbatches in groups of pp (pp must divide them).
// zero_bubble_h1: 1F1B's order of forwards and input-gradient backwards, each backward followed by
// the oldest weight gradients beyond the `stage` this stage may defer (Qi et al. 2023's ZB-H1: at
// most pp microbatches in flight on any stage), the deferred ones at the end. zero_bubble_v and
// zero_bubble_h2: the order played_out_orders finds for these pass times (only theirs depend on them).
// dualpipe_v: DeepSeek-AI's DualPipeV order (dualpipev.py's eight steps): chunk 0's warm-up
// forwards, then chunk 1's, a few split backwards (B then W at once), the steady state of
// overlapped pairs (F of one chunk with the whole backward of the other: joins_previous), the cool-
// down whose later backwards defer their W into the drain.
std::vector<ChunkWork> stage_schedule(Schedule schedule, int pp, int vpp, int stage, int microbatches,
                                      const PassSeconds& seconds = {});

// The orders of the zero-bubble schedules without a fixed pattern, ZB-V and ZB-H2, for every
// stage, found as the zero-bubble paper's scheduler finds them (Qi et al. 2023 Sec. 3.2: greedy,
// from the passes' times): the pipeline is played out with these pass times and a free stage runs
// a forward or an input gradient whose input has arrived (under two rules: input gradients first,
// the chain every other stage waits on; or forwards and input gradients in turn, as 1F1B's steady
// state; the faster order is kept), a forward only while it holds fewer than 2 pp chunks'
// activations, else its oldest deferred weight gradient, else waits. A chunk's activations live
// from its forward to its weight gradient. 2 pp chunks are 1F1B's peak for ZB-V (pp microbatches
// of a whole stage) and twice it for ZB-H2, as the paper gives them. Other times keep the order
// deadlock-free: it has been run once. With F = B = W the orders lose only the last stage's wait
// for its first forward, (pp - 1) F; with input gradients slower than forwards a microbatch's
// round trip in a V outgrows what 2 pp chunks cover and the memory cap, not the rule, leaves a
// bubble (twice the cap reaches the (pp - 1) F bound again).
std::vector<std::vector<ChunkWork>> played_out_orders(Schedule schedule, int pp, int microbatches,
                                                     const PassSeconds& seconds);

// Every stage's stage_schedule order, index = stage (a played-out order is played out once).
std::vector<std::vector<ChunkWork>> pipeline_orders(Schedule schedule, int pp, int vpp, int microbatches,
                                                    const PassSeconds& seconds = {});

// When the last stage finishes the step's passes, every stage running its stage_schedule order
// and starting a pass once it is free and the pass's input (or gradient) has arrived: the
// pipeline's critical path, where the closed forms (1F1B's (pp - 1)(F + B)) have none.
double pipeline_makespan(Schedule schedule, int pp, int vpp, int microbatches, const PassSeconds& seconds);

// Index of the schedule's last backward (input-gradient) item: where gradient buckets that hide
// behind backward start.
size_t last_backward_pass(const std::vector<ChunkWork>& schedule);

}  // namespace palmsim
