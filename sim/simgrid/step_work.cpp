#include "sim/simgrid/step_work.h"

#include "model/input_error.h"
#include "sim/analytic_estimator.h"

#include <string>

namespace palmsim::simulation {

namespace {

bool is_compute(OpKind k) { return k == OpKind::gemm || k == OpKind::attention || k == OpKind::memory; }

void add_part(CommCall& call, const Op& op, double share = 1.0) {
  call.group = op.group;
  call.parts.push_back({op.collective, op.comm_bytes, op.multiplicity * share, op.per_rank_routing});
}

// An op once a microbatch: the pipeline's message, or the logits and loss of the stage that has them.
void add_microbatch_op(StepWork& w, const Op& op, double seconds) {
  if (op.kind == OpKind::p2p) {
    w.p2p_bytes = op.comm_bytes;
    w.p2p_s = seconds / op.multiplicity;
  } else if (op.phase == Phase::forward) {
    w.stage_end_forward_s += seconds;
  } else {
    w.stage_end_backward_s += seconds;
  }
}

// An op once a step: the optimizer, gradient reductions (beside the last backward without a
// pipeline, as the closed form says, else after it), the weights' gathers after the update.
void add_step_op(StepWork& w, const Op& op, double seconds, int pp) {
  if (is_compute(op.kind)) {
    w.optimizer_s += seconds;
  } else if (op.overlap == Overlap::with_backward) {
    add_part(op.group == CommGroup::edp ? w.expert_grad_reduction : w.grad_reduction, op);
    w.buckets_in_backward = pp == 1;
    if (!w.buckets_in_backward) {
      CommCall call;
      add_part(call, op);
      w.after_backward.push_back(call);
    }
  } else {
    CommCall call;
    add_part(call, op);
    (op.phase == Phase::optimizer ? w.after_optimizer : w.after_backward).push_back(call);
  }
}

}  // namespace

StepWork build_step_work(const StepPlan& plan, const ComputeModel& compute, const CommModel& comm) {
  StepWork w;
  w.layers_per_chunk = plan.layers_per_stage / plan.layout.vpp;
  w.microbatches = plan.n_microbatches;
  w.defer_weight_gradients = defers_weight_gradients(plan.layout.schedule);
  const Layout& l = plan.layout;
  // Only the played-out orders depend on the pass times; DualPipeV's marks its pairs only where
  // the stack overlaps them.
  PassSeconds passes;
  passes.overlap_pairs = plan.options.overlap_paired_passes;
  passes.combined_moe = plan.combined_moe_passes();
  if (has_played_out_order(l.schedule)) passes = pipeline_pass_seconds(plan, compute, comm);
  w.combined_moe_pairs = passes.combined_moe;
  w.stage_orders = pipeline_orders(l.schedule, l.pp, l.vpp, int(plan.n_microbatches), passes);
  double side_forward_s = 0, side_backward_s = 0;  // a layer's side-stream collectives, by pass
  for (const Op& op : plan.ops) {
    const double seconds = op_seconds(op, plan, compute, comm) * op.multiplicity;
    LayerPhase& layer = op.phase == Phase::forward     ? w.forward
                        : op.phase == Phase::recompute ? w.recompute
                                                       : w.backward;
    switch (op.repeat) {
      case Repeat::per_layer_microbatch:
        if (is_compute(op.kind)) {
          layer.compute_s += seconds;
          if (op.weight_gradient) w.weight_gradient_s += seconds;
          if (op.kind == OpKind::attention) layer.attention_s += seconds;
        } else if (op.overlap == Overlap::with_attention) {
          add_part(layer.cp_ring, op);
        } else if (op.overlap == Overlap::with_layer_compute &&
                   (op.group == CommGroup::dp || op.group == CommGroup::edp || op.group == CommGroup::cp)) {
          // The side stream: FSDP's weights and gradients, context parallelism's K/V.
          (op.phase == Phase::forward ? side_forward_s : side_backward_s) += seconds;
          SideCalls& calls = op.group == CommGroup::cp    ? w.context_kv
                             : op.group == CommGroup::edp ? w.fsdp_experts
                                                          : w.fsdp_dense;
          add_part(op.collective == CollectiveKind::reduce_scatter ? calls.reduce_scatter
                   : op.phase == Phase::forward                     ? calls.gather_forward
                                                                    : calls.gather_backward,
                   op);
        } else if (op.overlap == Overlap::with_layer_compute && op.group == CommGroup::tp) {
          // As the closed form splits them: the hidden share beside the compute, the rest blocking.
          const double hidden = plan.options.tp_overlap_fraction;
          if (hidden < 1) add_part(layer.tp, op, 1.0 - hidden);
          if (hidden > 0)
            add_part(op.phase == Phase::forward ? w.overlapped_tp_forward : w.overlapped_tp_backward, op, hidden);
        } else if (op.group == CommGroup::ep) {
          add_part(layer.ep, op);
        } else if (op.group == CommGroup::etp) {
          add_part(layer.etp, op);
        } else if (op.group == CommGroup::tp) {
          add_part(layer.tp, op);
        } else {
          throw InputError("layout", std::string("the simulator has no per-layer ") + to_string(op.group) +
                                         " collective (" + op.name + ")");
        }
        break;
      case Repeat::per_microbatch: add_microbatch_op(w, op, seconds); break;
      case Repeat::per_step: add_step_op(w, op, seconds, l.pp); break;
    }
  }
  // As the closed form: the side stream's collectives slow the compute they overlap; a
  // synchronising pass takes at least the host's time for it.
  const Chip& chip = compute.chip();
  w.forward.compute_s += overlap_interference_seconds(side_forward_s, w.forward.compute_s, chip);
  w.backward.compute_s +=
      overlap_interference_seconds(side_backward_s, w.backward.compute_s + w.recompute.compute_s, chip);
  // Under combined 1F1B that time is the device waiting, which the other half of a pair fills.
  for (LayerPhase* p : {&w.forward, &w.recompute}) {
    const Phase phase = p == &w.forward ? Phase::forward : Phase::recompute;
    const double waits = host_sync_exposed_seconds(plan.layer_host_syncs(phase), p->compute_s, plan.options);
    (w.combined_moe_pairs ? p->host_wait_s : p->compute_s) += waits;
  }
  // As the closed form: under a split that counts the loss as a layer, the loss's chunk holds one
  // layer fewer.
  w.stage_end_forward_s = loss_beyond_a_layer(w.stage_end_forward_s, w.forward.compute_s + w.forward.host_wait_s, l);
  w.stage_end_backward_s = loss_beyond_a_layer(
      w.stage_end_backward_s, w.backward.compute_s + w.recompute.compute_s + w.recompute.host_wait_s, l);
  return w;
}

}  // namespace palmsim::simulation
