#pragma once
// The StepPlan regrouped for the simulator: what one layer of one microbatch costs per phase
// (compute seconds from the analytic estimator's op_seconds, so that both agree without
// contention; the blocking tensor-parallel collectives of the phase as one call), what runs on a
// side stream (FSDP gathers and reduce-scatters, context parallelism's K/V, the hidden share of
// overlapped tensor-parallel collectives, data-parallel gradient buckets), what the last pipeline
// stage adds per microbatch, and what closes the step.
#include "hwmodels/comm_model.h"
#include "hwmodels/compute_model.h"
#include "model/pipeline_schedule.h"
#include "model/step_plan.h"
#include "sim/simgrid/collective_flows.h"

#include <vector>

namespace palmsim::simulation {

struct LayerPhase {
  double compute_s = 0;
  double attention_s = 0;  // of compute_s, the attention's
  CommCall tp;  // blocking tensor-parallel collectives of the phase, in the layer's critical path
  CommCall ep;  // blocking expert-parallel all-to-alls (mixture-of-experts dispatch and combine)
  CommCall etp;  // blocking expert tensor-parallel gathers and reduce-scatters of the routed rows
  CommCall cp_ring;  // a context-parallel ring's K/V (and dK/dV) transfers, beside the attention
  // Combined 1F1B (StepWork::combined_moe_pairs): what the host synchronisations leave the
  // device waiting, kept out of compute_s so that the other half of a pair can fill it.
  double host_wait_s = 0;
};

// Per-layer collectives on the side stream, over one group: FSDP gathers the weights before
// forward and backward and reduce-scatters the gradients; context parallelism gathers each layer's
// K/V beside its attention and reduce-scatters their gradients.
struct SideCalls {
  CommCall gather_forward, gather_backward, reduce_scatter;
  const CommCall& gather(bool forward) const { return forward ? gather_forward : gather_backward; }
  bool empty() const { return gather_forward.empty() && gather_backward.empty() && reduce_scatter.empty(); }
};

struct StepWork {
  LayerPhase forward, recompute, backward;
  // Of backward's compute, the weight-gradient GEMMs (Op::weight_gradient). A zero-bubble
  // schedule runs them as their own pass (ChunkWork::weight), after the input gradients.
  double weight_gradient_s = 0;
  bool defer_weight_gradients = false;
  // Combined 1F1B's pairs (PlanOptions::overlap_moe_a2a): only the expert all-to-alls and the
  // waits for the host (LayerPhase::host_wait_s) run beside the other half's compute; a half's
  // other collectives hold the chip.
  bool combined_moe_pairs = false;
  double input_gradient_s() const {
    return defer_weight_gradients ? backward.compute_s - weight_gradient_s : backward.compute_s;
  }
  // The routed experts' FSDP traffic runs over their own data-parallel group (edp), the rest over dp.
  SideCalls fsdp_dense, fsdp_experts;
  bool fsdp() const { return !fsdp_dense.empty() || !fsdp_experts.empty(); }
  // Context parallelism's K/V gathers and gradient reduce-scatters over cp (ContextComm::all_gather):
  // a layer's own, beside its compute. A ring's transfers are LayerPhase::cp_ring instead.
  SideCalls context_kv;
  // Tensor-parallel collectives a stack overlaps with compute (XLA's collective matmul, async TP):
  // their hidden share (tp_overlap_fraction) of a layer, on the side stream beside its compute;
  // the rest stays in LayerPhase::tp. Backward includes recompute.
  CommCall overlapped_tp_forward, overlapped_tp_backward;
  // Whether a side stream runs beside every layer (else only gradient buckets may use one).
  bool side_calls_per_layer() const {
    return fsdp() || !context_kv.empty() || !overlapped_tp_forward.empty() || !overlapped_tp_backward.empty();
  }
  // Data-parallel gradient reduction of the whole step; `buckets_in_backward`: it runs one layer's
  // bucket at a time beside the last microbatch's backward (no pipeline, DDP-style), otherwise it
  // runs after the pipeline flush.
  CommCall grad_reduction;
  CommCall expert_grad_reduction;  // the routed experts' gradients, over their own group (edp)
  bool buckets_in_backward = false;
  // Embedding, final LayerNorm, logits, loss: on the last virtual stage, per microbatch.
  double stage_end_forward_s = 0, stage_end_backward_s = 0;
  double p2p_bytes = 0;  // one activation (or its gradient) between pipeline stages
  double p2p_s = 0;      // its transfer time alone, to tell transfer from bubble in a wait
  std::vector<CommCall> after_backward;   // blocking per-step collectives (cross-pod, ...)
  double optimizer_s = 0;
  std::vector<CommCall> after_optimizer;  // weights gathered after a sharded update
  int layers_per_chunk = 0;
  int64_t microbatches = 0;
  // Each stage's order of passes (pipeline_orders), ZB-H2's and ZB-V's played out with the pass
  // times the estimator prices, as the closed form plays them.
  std::vector<std::vector<ChunkWork>> stage_orders;
};

StepWork build_step_work(const StepPlan& plan, const ComputeModel& compute, const CommModel& comm);

}  // namespace palmsim::simulation
