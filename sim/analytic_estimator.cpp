#include "sim/analytic_estimator.h"

#include "model/accounting.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

namespace palmsim {

PlanOptions plan_options_for(const System& system) {
  const Stack& st = system.stack;
  PlanOptions o;
  o.fused_attention = st.fused_attention;
  o.fused_elementwise = st.fused_elementwise;
  o.grad_accumulation_fusion = st.grad_accumulation_fusion;
  o.grad_reduce_bytes = st.grad_reduce_bytes;
  o.overlap_grad_reduce = st.overlap_grad_reduce;
  o.activation_bytes = st.activation_bytes;
  o.vocab_multiple = st.vocab_multiple;
  o.shard_activations_over_tp = st.shard_activations_over_tp;
  o.vocab_parallel = st.vocab_parallel;
  o.loss_bytes_per_logit = st.loss_bytes_per_logit;
  o.overlap_tp_comm = st.overlap_tp_comm;
  o.tp_overlap_fraction = st.tp_overlap_fraction;
  o.pipeline_paced_by_last_stage = st.pipeline_paced_by_last_stage;
  o.cp_comm = st.cp_comm;
  o.moe_dispatch = st.moe_dispatch;
  o.overlap_paired_passes = st.overlap_paired_passes;
  o.overlap_moe_a2a = st.overlap_moe_a2a;
  o.fp8_tp_allgather = st.fp8_tp_allgather && !st.fp8_rowwise;
  o.fp8_rowwise = st.fp8_rowwise;
  o.kernel_floor_s = st.kernel_floor_s;
  o.host_overhead_s = st.host_overhead_s;
  o.p2p_overhead_s = st.p2p_overhead_s;
  o.host_sync_s = st.host_sync_s;
  return o;
}

namespace {

// What the op's own hardware work takes, without the stack's per-kernel and per-call costs.
double priced_seconds(const Op& op, const StepPlan& plan, const ComputeModel& compute,
                      const CommModel& comm) {
  switch (op.kind) {
    case OpKind::gemm:
      if (plan.options.fp8_linears && op.repeat == Repeat::per_layer_microbatch)
        return compute.fp8_gemm_seconds(op.m, op.n, op.k, op.batch);
      return compute.gemm_seconds(op.m, op.n, op.k, op.batch);
    case OpKind::attention: {
      if (plan.options.fused_attention) return compute.fused_attention_seconds(op.flops, op.bytes, phase_suffix(op.phase));
      // Materialized: scores (s x s from k = head dim) and context (s x Q from k = s) batched
      // GEMMs at their own shape efficiencies, scaled to this phase's FLOPs, plus the score matrix
      // streaming through memory.
      const double forward_flops = 4.0 * double(op.batch) * double(op.m) * op.n * op.k;
      const double gemms = compute.gemm_seconds(op.m, op.n, op.k, op.batch) +
                           compute.gemm_seconds(op.m, op.k, op.n, op.batch);
      return gemms * op.flops / forward_flops + compute.memory_seconds(op.bytes);
    }
    case OpKind::memory: {
      if (!compute.has_per_op_rates()) return compute.memory_seconds(op.bytes);
      const std::string key = std::string(op.name) + "." + phase_suffix(op.phase);
      return compute.memory_seconds(op.bytes, &key);
    }
    case OpKind::collective: return comm.collective_seconds(op.group, op.collective, op.comm_bytes, op.per_rank_routing);
    case OpKind::p2p: return comm.p2p_seconds(op.comm_bytes);
  }
  return 0.0;
}

bool is_compute(OpKind k) { return k == OpKind::gemm || k == OpKind::attention || k == OpKind::memory; }

}  // namespace

double op_seconds(const Op& op, const StepPlan& plan, const ComputeModel& compute,
                  const CommModel& comm) {
  const PlanOptions& o = plan.options;
  double s = priced_seconds(op, plan, compute, comm);
  // No kernel finishes faster than the launch floor, nor before an eager host has issued it: an
  // op shorter than its kernels' host time leaves the device idle for the rest (the host gets
  // little ahead of the device in eager frameworks, which synchronise on collectives, allocations
  // and checkpoint boundaries). A pipeline send also pays the framework's synchronisation.
  s = std::max(s, op.kernels * std::max(o.kernel_floor_s, o.host_overhead_s));
  if (op.kind == OpKind::p2p) s += o.p2p_overhead_s;
  return s;
}

double host_sync_exposed_seconds(double syncs, double device_s, const PlanOptions& options) {
  return syncs * std::max(0.0, options.host_sync_s - device_s);
}

double loss_beyond_a_layer(double loss_s, double layer_s, const Layout& layout) {
  return layout.splits_ends() ? std::max(0.0, loss_s - layer_s) : loss_s;
}

double overlap_interference_seconds(double side_s, double compute_s, const Chip& chip) {
  return chip.overlap_compute_slowdown * std::min(side_s, compute_s);
}

double stack_overhead_seconds(const Op& op, const StepPlan& plan, const ComputeModel& compute,
                              const CommModel& comm) {
  return op_seconds(op, plan, compute, comm) - priced_seconds(op, plan, compute, comm);
}

namespace {

// Per-layer, per-microbatch sums by phase; per-microbatch and per-step sums.
struct Totals {
  double layer_compute[4] = {0, 0, 0, 0};  // indexed by Phase
  double layer_weight_gradient = 0;        // of backward's, the weight-gradient GEMMs (W)
  double layer_blocking_comm = 0;          // blocking collectives inside a layer (and what a ring leaves exposed)
  double layer_blocking_comm_fwd = 0;      // of which in forward
  double layer_all_to_all = 0;             // of which expert-parallel all-to-alls
  double layer_all_to_all_fwd = 0;         // of those, in forward
  double layer_fsdp_fwd = 0, layer_fsdp_bwd = 0;  // what runs beside a layer's compute, by pass
  double layer_side_fwd = 0, layer_side_bwd = 0;  // of which the side stream's collectives (not TP's)
  double layer_beside_collectives = 0;  // of layer_compute: what those collectives slow it by
  // A context-parallel ring and the attention compute it hides behind, by phase.
  double layer_cp_ring[4] = {0, 0, 0, 0}, layer_attention[4] = {0, 0, 0, 0};
  double mb_compute_fwd_bwd = 0;           // embedding, logits, loss
  double mb_compute_fwd = 0;               // of which in forward
  double mb_p2p = 0;
  double mb_p2p_fwd = 0;                   // of which the forward's send
  double mb_stage_end_comm = 0;  // the last stage's per-microbatch collectives (the loss's)
  double step_overlapped_with_backward = 0;
  double step_blocking_comm = 0;
  double step_optimizer = 0;
};

// Sums the priced ops by where they sit on the step's timeline; with per_op, also each op's
// seconds per step and what the stack's floors add to them.
Totals sum_ops(const StepPlan& plan, const ComputeModel& compute, const CommModel& comm, const EstimateOptions& options,
               Report& r) {
  Totals t;
  for (const Op& op : plan.ops) {
    const double s = op_seconds(op, plan, compute, comm);
    const double once = s * op.multiplicity;
    if (options.per_op) {
      const std::string phase = phase_suffix(op.phase);
      r.per_op_s[std::string(op.name) + "." + phase] += s * plan.occurrences(op);
      const double extra = stack_overhead_seconds(op, plan, compute, comm);
      if (extra > 0) r.per_op_s["(stack overhead)." + phase] += extra * plan.occurrences(op);
    }
    switch (op.repeat) {
      case Repeat::per_layer_microbatch:
        if (is_compute(op.kind)) {
          t.layer_compute[int(op.phase)] += once;
          if (op.weight_gradient) t.layer_weight_gradient += once;
          if (op.kind == OpKind::attention) t.layer_attention[int(op.phase)] += once;
        } else if (op.overlap == Overlap::with_attention) {
          t.layer_cp_ring[int(op.phase)] += once;
        } else if (op.overlap == Overlap::with_layer_compute && op.group == CommGroup::tp) {
          // Overlapped tensor-parallel collectives: their hidden share runs beside the layer's
          // compute (with the FSDP traffic), the rest stays on the critical path.
          const double hidden = plan.options.tp_overlap_fraction * once;
          (op.phase == Phase::forward ? t.layer_fsdp_fwd : t.layer_fsdp_bwd) += hidden;
          t.layer_blocking_comm += once - hidden;
          if (op.phase == Phase::forward) t.layer_blocking_comm_fwd += once - hidden;
        } else if (op.overlap == Overlap::with_layer_compute) {
          (op.phase == Phase::forward ? t.layer_fsdp_fwd : t.layer_fsdp_bwd) += once;
          (op.phase == Phase::forward ? t.layer_side_fwd : t.layer_side_bwd) += once;
        } else {
          t.layer_blocking_comm += once;
          if (op.phase == Phase::forward) t.layer_blocking_comm_fwd += once;
          if (op.group == CommGroup::ep) t.layer_all_to_all += once;
          if (op.group == CommGroup::ep && op.phase == Phase::forward) t.layer_all_to_all_fwd += once;
        }
        break;
      case Repeat::per_microbatch:
        if (is_compute(op.kind)) {
          t.mb_compute_fwd_bwd += once;
          if (op.phase == Phase::forward) t.mb_compute_fwd += once;
        } else if (op.kind == OpKind::p2p) {
          t.mb_p2p += once;
          if (op.phase == Phase::forward) t.mb_p2p_fwd += once;
        } else {
          t.mb_stage_end_comm += once;
        }
        break;
      case Repeat::per_step:
        if (op.phase == Phase::optimizer && is_compute(op.kind))
          t.step_optimizer += once;
        else if (op.overlap == Overlap::with_backward)
          t.step_overlapped_with_backward += once;
        else
          t.step_blocking_comm += once;
        break;
    }
  }
  // The side stream's collectives slow the compute they overlap.
  const Chip& chip = compute.chip();
  double* layer = t.layer_compute;
  const double rec = layer[int(Phase::recompute)];
  const double slowed_fwd = overlap_interference_seconds(t.layer_side_fwd, layer[int(Phase::forward)], chip);
  const double slowed_bwd = overlap_interference_seconds(t.layer_side_bwd, layer[int(Phase::backward)] + rec, chip);
  layer[int(Phase::forward)] += slowed_fwd;
  layer[int(Phase::backward)] += slowed_bwd;
  t.layer_beside_collectives = slowed_fwd + slowed_bwd;
  // What a ring's transfers take beyond the attention beside them waits on the critical path.
  for (Phase phase : {Phase::forward, Phase::recompute, Phase::backward}) {
    const double exposed = std::max(0.0, t.layer_cp_ring[int(phase)] - t.layer_attention[int(phase)]);
    t.layer_blocking_comm += exposed;
    if (phase == Phase::forward) t.layer_blocking_comm_fwd += exposed;
  }
  return t;
}

// One layer's compute in `phase` with what its host synchronisations add (a synchronising pass,
// a dropless MoE layer's forward, takes at least the host's time for it).
double synced_layer_seconds(const Totals& t, const StepPlan& plan, Phase phase) {
  const double device = t.layer_compute[int(phase)];
  return device + host_sync_exposed_seconds(plan.layer_host_syncs(phase), device, plan.options);
}

// The sums as the pipeline runs them: under a split that counts the loss as a layer, the loss's
// stage-end compute replaces a layer (loss_beyond_a_layer), forward and backward apart.
Totals priced_totals(const StepPlan& plan, const ComputeModel& compute, const CommModel& comm,
                     const EstimateOptions& options, Report& r) {
  Totals t = sum_ops(plan, compute, comm, options, r);
  if (!plan.layout.splits_ends()) return t;
  const double layer_fwd = synced_layer_seconds(t, plan, Phase::forward);
  const double layer_bwd = t.layer_compute[int(Phase::backward)] + synced_layer_seconds(t, plan, Phase::recompute);
  const double fwd = loss_beyond_a_layer(t.mb_compute_fwd, layer_fwd, plan.layout);
  const double bwd = loss_beyond_a_layer(t.mb_compute_fwd_bwd - t.mb_compute_fwd, layer_bwd, plan.layout);
  t.mb_compute_fwd = fwd;
  t.mb_compute_fwd_bwd = fwd + bwd;
  return t;
}

// One model chunk's passes as the closed form prices them: a layer's compute (with what host
// synchronisations add) and its blocking collectives, times the chunk's layers; the loss's
// per-microbatch compute and collectives on the virtual stage that holds it.
PassSeconds chunk_pass_seconds(const Totals& t, const StepPlan& plan) {
  const Layout& l = plan.layout;
  const double chunk_layers = double(plan.layers_per_stage) / l.vpp;
  auto synced = [&](Phase phase) { return synced_layer_seconds(t, plan, phase); };
  PassSeconds p;
  p.forward = chunk_layers * (synced(Phase::forward) + t.layer_blocking_comm_fwd);
  p.weight = chunk_layers * t.layer_weight_gradient;
  p.backward = chunk_layers * (t.layer_compute[int(Phase::backward)] + synced(Phase::recompute) + t.layer_blocking_comm -
                               t.layer_blocking_comm_fwd) -
               p.weight;
  if (!defers_weight_gradients(l.schedule)) p.backward += p.weight, p.weight = 0;
  p.layers = chunk_layers;
  p.overlap_pairs = plan.options.overlap_paired_passes;
  p.forward_comm = chunk_layers * t.layer_blocking_comm_fwd;
  p.backward_comm = chunk_layers * (t.layer_blocking_comm - t.layer_blocking_comm_fwd);
  p.combined_moe = plan.combined_moe_passes();
  if (p.combined_moe) {  // its pairs hide the expert all-to-alls and the waits for the host
    p.forward_host = chunk_layers * (synced(Phase::forward) - t.layer_compute[int(Phase::forward)]);
    p.backward_host = chunk_layers * (synced(Phase::recompute) - t.layer_compute[int(Phase::recompute)]);
    p.forward_comm = chunk_layers * t.layer_all_to_all_fwd + p.forward_host;
    p.backward_comm = chunk_layers * (t.layer_all_to_all - t.layer_all_to_all_fwd) + p.backward_host;
  }
  p.loss_forward = t.mb_compute_fwd + t.mb_stage_end_comm;
  p.loss_backward = t.mb_compute_fwd_bwd - t.mb_compute_fwd;
  // One send's time: the forward's sends of a microbatch are one a chunk (a V's stage, one).
  p.message = t.mb_p2p_fwd / (v_shaped(l.schedule) ? 1.0 : double(l.vpp));
  p.paced_by_loss = plan.options.pipeline_paced_by_last_stage;
  return p;
}

// ZB-V, ZB-H2 and DualPipeV have no closed form, nor has any order with combined 1F1B's pairs: their
// bubble is what the stage holding the loss waits in the pipeline its orders play out with the
// plan's pass times (pipeline_makespan), beyond the sends that exposed_comm already counts. The
// overlapped pairs on that stage also hide part of the communication exposed_comm counts
// (PassSeconds::overlapped_seconds).
struct OrdersBubble {
  double bubble = 0, hidden_comm = 0;
  // Of what the pairs hide, the waits for the host: a pair's time that neither compute fills goes to
  // its waits for the host first (as the simulator's run_overlapped counts it), then to its
  // communication.
  double hidden_host = 0;
};
OrdersBubble bubble_from_orders(const Totals& t, const StepPlan& plan, const PassSeconds& p) {
  const Layout& l = plan.layout;
  const int m = int(plan.n_microbatches);
  OrdersBubble out;
  // The orders with pairs (a played-out one is not replayed for none).
  if (l.schedule == Schedule::dualpipe_v || p.combined_moe) {
    const int stage = loss_stage(l.schedule, l.pp, l.vpp);
    const std::vector<ChunkWork> order = stage_schedule(l.schedule, l.pp, l.vpp, stage, m, p);
    auto loss = [&](const ChunkWork& w) { return virtual_stage(l.schedule, l.pp, stage, w.chunk) == l.pp * l.vpp - 1; };
    for (size_t i = 1; i < order.size(); ++i)
      if (order[i].joins_previous) {
        const ChunkWork &a = order[i - 1], &b = order[i];
        const double ta = p.seconds(a, loss(a)), tb = p.seconds(b, loss(b));
        const double pair = p.overlapped_seconds(a, loss(a), b, loss(b));
        const double idle = pair - (ta - p.comm(a)) - (tb - p.comm(b)), host = p.host(a) + p.host(b);
        const double hidden_host = host - std::min(std::max(0.0, idle), host);
        out.hidden_host += hidden_host;
        out.hidden_comm += ta + tb - pair - hidden_host;
      }
  }
  const double busy = double(m) * (l.vpp * (p.forward + p.backward + p.weight) + p.loss_forward + p.loss_backward);
  const double span = pipeline_makespan(l.schedule, l.pp, l.vpp, m, p);
  out.bubble = std::max(0.0, span - (busy - out.hidden_comm - out.hidden_host) - double(m) * t.mb_p2p);
  return out;
}

// The step from its sums (and a chunk's pass times, chunk_pass_seconds): layers and microbatches,
// what overlap hides, the pipeline's bubble.
Breakdown combine(const Totals& t, const StepPlan& plan, const PassSeconds& passes) {
  const Layout& l = plan.layout;
  const double layers = plan.layers_per_stage;
  const double mbs = double(plan.n_microbatches);
  const double fwd = synced_layer_seconds(t, plan, Phase::forward);
  const double bwd = t.layer_compute[int(Phase::backward)];
  const double rec = synced_layer_seconds(t, plan, Phase::recompute);
  const double sync_fwd = fwd - t.layer_compute[int(Phase::forward)];
  const double sync_rec = rec - t.layer_compute[int(Phase::recompute)];
  // FSDP gathers for the next layer run beside this layer's forward; in backward the gather for
  // the next layer and the reduce-scatter of the previous one run beside recompute + backward. The
  // first gather of each pass cannot hide.
  const double fsdp_exposed = std::max(0.0, t.layer_fsdp_fwd - fwd) +
                              std::max(0.0, t.layer_fsdp_bwd - (bwd + rec));
  const double fsdp_startup = (t.layer_fsdp_fwd + t.layer_fsdp_bwd) / 2.0;
  const double layer_time = fwd + bwd + rec + t.layer_blocking_comm + fsdp_exposed;

  Breakdown b;
  b.compute_s = mbs * (layers * (fwd + bwd) + t.mb_compute_fwd_bwd);
  b.recompute_s = mbs * layers * rec;
  // Data-parallel gradient reduction overlaps the last microbatch's backward only without a
  // pipeline (DDP-style buckets); after a pipeline flush it runs alone (Megatron-LM). The last
  // bucket (one layer's gradients) never hides.
  double dp_exposed = t.step_overlapped_with_backward;
  if (l.pp == 1)
    dp_exposed = std::max(dp_exposed - layers * (bwd + rec), dp_exposed / std::max(1.0, layers));
  b.exposed_comm_s = mbs * (layers * (t.layer_blocking_comm + fsdp_exposed) + t.mb_p2p + t.mb_stage_end_comm) +
                     (t.layer_fsdp_fwd > 0 ? fsdp_startup : 0.0) + dp_exposed + t.step_blocking_comm;
  b.all_to_all_s = mbs * layers * t.layer_all_to_all;
  b.host_sync_s = mbs * layers * (sync_fwd + sync_rec);
  b.beside_collectives_s = mbs * layers * t.layer_beside_collectives;
  // Fill and drain: the first microbatch's forward through the pp - 1 stages before this one and
  // the last one's backward back through them, a chunk's layers (and its send) each, shortened
  // vpp-fold by interleaving. The logits and loss run on this, the last, stage alone, inside its
  // steady state, unless the stack paces every stage by the last (PlanOptions).
  const double stage_end = t.mb_compute_fwd_bwd + t.mb_stage_end_comm;
  const double paced = plan.options.pipeline_paced_by_last_stage ? stage_end : 0.0;
  double slot = layers * layer_time + t.mb_p2p + paced;
  // ZB-H1 fills and drains with the input gradients only, and its deferred weight gradients fill
  // what is left: (pp - 1)(F + B - W) against 1F1B's (pp - 1)(F + B + W) (Qi et al. 2023, Sec. 3;
  // DeepSeek-V3 report Table 2 writes it (PP - 1)(F + B - 2W) with B the whole backward).
  if (l.schedule == Schedule::zero_bubble_h1) slot -= 2.0 * layers * t.layer_weight_gradient;
  b.bubble_s = (l.pp - 1) * slot / double(l.vpp);
  if (bubble_from_makespan(l.schedule) || passes.combined_moe) {
    const OrdersBubble o = bubble_from_orders(t, plan, passes);
    b.bubble_s = o.bubble;
    // What the pairs hide comes off the layers' blocking collectives: the all-to-alls their share,
    // or all of it where the pairs hide nothing else (combined 1F1B).
    const double layer_comm = mbs * layers * t.layer_blocking_comm;
    if (passes.combined_moe) b.all_to_all_s = std::max(0.0, b.all_to_all_s - o.hidden_comm);
    else if (layer_comm > 0) b.all_to_all_s *= 1.0 - o.hidden_comm / layer_comm;
    b.exposed_comm_s -= o.hidden_comm;
    b.compute_s -= o.hidden_host;  // the device's waits for the host count as compute (host syncs)
    b.host_sync_s -= o.hidden_host;
  }
  b.optimizer_s = t.step_optimizer;
  return b;
}

}  // namespace

PassSeconds pipeline_pass_seconds(const StepPlan& plan, const ComputeModel& compute, const CommModel& comm) {
  Report unused;
  return chunk_pass_seconds(priced_totals(plan, compute, comm, {}, unused), plan);
}

Report estimate(const StepPlan& plan, const System& system, const ComputeModel& compute,
                const CommModel& comm, const EstimateOptions& options) {
  Report r;
  const Totals totals = priced_totals(plan, compute, comm, options, r);
  r.pipeline_passes = chunk_pass_seconds(totals, plan);
  r.breakdown = combine(totals, plan, r.pipeline_passes);
  const Layout& l = plan.layout;
  if (system.ranks_share_cores(l.chips())) {
    // More thread ranks than cores take turns on them: the step lasts at least all the ranks'
    // compute over the cores. Each rank computes its stage's (the plan's, less the logits and loss
    // on the stages without them); the wait for a core counts as compute.
    const Breakdown& b = r.breakdown;
    const double loss = double(plan.n_microbatches) * totals.mb_compute_fwd_bwd;
    const double per_rank = b.compute_s + b.recompute_s + b.optimizer_s - loss * (l.pp - 1) / double(l.pp);
    const double on_the_cores = per_rank * double(l.chips()) / double(system.shared_cores);
    r.breakdown.core_wait_s = std::max(0.0, on_the_cores - b.total());
    r.breakdown.compute_s += r.breakdown.core_wait_s;
  }
  r.model = plan.model.name;
  r.system = system.name;
  r.layout = l;
  r.n_chips = l.chips();
  r.global_batch = plan.global_batch;
  r.step_time_s = r.breakdown.total();
  const double tokens = double(plan.global_batch) * double(plan.model.seq_len);
  r.tokens_per_s = tokens / r.step_time_s;
  r.model_flops_per_token = model_flops_per_token(plan.model);
  r.hardware_flops_per_token = hardware_flops_per_token(plan.model, l.recompute);
  const double cluster_peak = double(r.n_chips) * system.chip.peak_flops;
  r.mfu = flops_utilization(r.tokens_per_s, r.model_flops_per_token, cluster_peak);
  r.hfu = flops_utilization(r.tokens_per_s, r.hardware_flops_per_token, cluster_peak);
  r.memory = memory_per_chip(plan);
  r.memory_capacity_bytes = system.chip.hbm_bytes;
  r.fits_in_memory = r.memory.total() <= r.memory_capacity_bytes;
  return r;
}

void attach_band(Report& r, const Stack& stack, double params) {
  const StackBand& b = stack.band;
  r.stack = stack.name;
  r.band_runs = b.runs;
  r.outside_validated.clear();
  r.band_low_s = r.band_high_s = 0;
  // Percentiles of fewer than five held-out errors say nothing about a 90 % band.
  if (b.runs < kMinBandRuns) return;
  r.band_low_s = r.step_time_s / (1.0 + b.p95_pct / 100.0);
  r.band_high_s = r.step_time_s / (1.0 + b.p05_pct / 100.0);
  std::string outside;
  // The stack file rounds its range to 8 digits: compare with that tolerance.
  auto out_of = [](double v, double lo, double hi) { return v < lo * (1 - 1e-7) || v > hi * (1 + 1e-7); };
  auto add = [&](const std::string& what) { outside += (outside.empty() ? "" : " and ") + what; };
  if (!b.systems.empty() && std::find(b.systems.begin(), b.systems.end(), r.system) == b.systems.end())
    add("system " + r.system);
  if (b.max_chips > 0 && out_of(double(r.n_chips), b.min_chips, b.max_chips)) add(fmt::format("{} chips", r.n_chips));
  if (b.max_params > 0 && out_of(params, b.min_params, b.max_params)) add(fmt::format("{:.3g} B parameters", params / 1e9));
  if (!outside.empty()) {
    std::string systems;
    for (const std::string& name : b.systems) systems += (systems.empty() ? "" : ", ") + name;
    r.outside_validated = fmt::format("{} lie outside the runs that validated {} ({}; {:g}-{:g} chips, {:.3g}-{:.3g} B "
                                      "parameters); the band may not hold",
                                      outside, stack.name, systems.empty() ? "any system" : systems, b.min_chips,
                                      b.max_chips, b.min_params / 1e9, b.max_params / 1e9);
  }
}

}  // namespace palmsim
