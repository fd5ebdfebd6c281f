#pragma once
// StepPlan: the ordered operations one device runs in one training step, with FLOPs, bytes moved
// and collectives. The analytic estimator, the simulator and the real trainer's op timers all read
// it, so a predicted op and a measured op carry the same name ("qkv_proj", phase backward).
//
// To stay cheap enough for search (millions of layouts), the plan is not unrolled: an op says how
// often it repeats (per layer and microbatch, per microbatch, per step) and the plan knows the
// layer and microbatch counts. The device described is one chip of the last pipeline stage (it
// holds the logits and loss, the busiest stage); with pp = 1 that is every chip.
#include "model/collective_kind.h"
#include "model/comm_group.h"
#include "model/layout.h"
#include "model/model_spec.h"
#include "model/optimizer.h"

#include <array>
#include <cstdint>
#include <vector>

namespace palmsim {

enum class Phase : uint8_t { forward, backward, recompute, optimizer };
enum class OpKind : uint8_t { gemm, attention, memory, collective, p2p };
enum class Repeat : uint8_t { per_layer_microbatch, per_microbatch, per_step };
// blocking: on the critical path. with_layer_compute: prefetch/reduction that runs beside the
// compute of the neighbouring layer (FSDP). with_backward: gradient reduction that runs beside the
// last microbatch's backward pass.
// with_attention: beside the same layer's attention compute only (a context-parallel ring).
enum class Overlap : uint8_t { blocking, with_layer_compute, with_backward, with_attention };

const char* to_string(Phase p);
const char* phase_suffix(Phase p);  // fwd, bwd, rec, opt: the trainer's per-op key suffix
const char* to_string(OpKind k);
const char* to_string(CommGroup g);

struct Op {
  const char* name = "";
  Phase phase = Phase::forward;
  OpKind kind = OpKind::memory;
  Repeat repeat = Repeat::per_layer_microbatch;
  double multiplicity = 1.0;  // occurrences per repeat unit (e.g. 2 LayerNorms, 0.75 of a GEMM)
  double flops = 0;           // executed FLOPs per occurrence
  double bytes = 0;           // HBM bytes per occurrence (memory-bound ops)
  int64_t m = 0, n = 0, k = 0, batch = 1;  // GEMM shape (batched for attention)
  CollectiveKind collective = CollectiveKind::all_reduce;
  CommGroup group = CommGroup::tp;
  double comm_bytes = 0;  // collective buffer size (see collective_cost.h) or p2p message
  Overlap overlap = Overlap::blocking;
  double kernels = 1;     // GPU kernels per occurrence (launch floor and host time scale with it)
  // A backward GEMM that computes a weight's gradient (dW = X^T dY), not its input's: zero-bubble
  // schedules run it apart from the input gradient, later (Schedule::zero_bubble_h1).
  bool weight_gradient = false;
  // Host-device synchronisations the op makes: the eager host blocks until the device has drained
  // its queue (a dropless router's tokens-per-expert copy). The layer pass then takes at least
  // PlanOptions::host_sync_s (host_sync_exposed_seconds in sim/analytic_estimator.h).
  int host_syncs = 0;
  // An expert all-to-all of a per-rank dispatch: how its tokens are routed, which prices the
  // network's share per node (PerRankRouting in model/model_spec.h).
  PerRankRouting per_rank_routing;
};

// What the software stack (hwmodels/stack.h) implies for the plan and the pricing of its ops.
struct PlanOptions {
  bool fused_attention = false;   // flash-style kernel: no T x T matrix in memory, causal skip
  bool fused_elementwise = true;  // bias+activation and bias+dropout+residual as one kernel each
  bool grad_accumulation_fusion = true;  // weight gradients accumulate inside the GEMM
  double activation_bytes = 2;    // bf16/fp16
  double grad_reduce_bytes = 2;   // bytes per gradient element in the data-parallel reduction
  bool overlap_grad_reduce = true;  // data-parallel reduction runs beside backward
  int vocab_multiple = 1;         // vocabulary padded to a multiple of vocab_multiple * tp
  // Logits, loss and the output embedding split over the tensor-parallel group (Megatron's
  // vocabulary-parallel cross-entropy). palmsim's own trainers keep the whole vocabulary on every
  // tensor-parallel rank instead: each computes all logits, no loss collective.
  bool vocab_parallel = true;
  // Bytes the loss holds per logit of one microbatch at its peak. 8: fp32 logits and an fp32
  // gradient beside them (PyTorch's cross_entropy on logits.float(), as torchtitan computes it).
  // Megatron-Core's vocabulary-parallel cross-entropy makes one fp32 copy of the bf16 logits and
  // computes the softmax and the gradient in place in it
  // (megatron/core/tensor_parallel/cross_entropy.py: calculate_logits_max, then in-place
  // subtraction, exp and gradient): 2 + 4 = 6.
  double loss_bytes_per_logit = 8;
  Optimizer optimizer = Optimizer::adam;  // its state (memory) and update traffic (model/optimizer.h)
  bool shard_activations_over_tp = false;  // as sequence parallelism, whatever layout.sp says
  bool overlap_tp_comm = false;   // tensor-parallel collectives beside the layer's compute
  double tp_overlap_fraction = 1; // with overlap_tp_comm: the share of their time that hides
  // How the pipeline fills and drains. false: each earlier stage at its own pace (its layers and
  // its send), as a schedule whose stages run ahead with buffered sends does (palmsim's CPU
  // trainer, measured: kernels/results/); the logits and loss of the last stage are then in its
  // steady state only. true: at the last stage's pace, logits and loss included, what the 1440
  // Megatron-DeepSpeed runs show (hwmodels/stacks/megatron-deepspeed.yaml).
  bool pipeline_paced_by_last_stage = false;
  ContextComm cp_comm = ContextComm::all_gather;  // how context parallelism exchanges K/V
  TokenDispatch moe_dispatch = TokenDispatch::per_expert;  // rows an expert all-to-all carries a token
  bool overlap_paired_passes = true;  // DualPipeV's pairs overlapped (Stack::overlap_paired_passes)
  // Megatron-Core's combined 1F1B (--overlap-moe-expert-parallel-comm; Megatron-Core's "Combined
  // 1F1B: Expert-Parallel All-to-All Overlap" guide): without a pipeline or with virtual stages,
  // one more warm-up forward, then each steady-state forward runs overlapped with the backward
  // after it (ChunkWork::joins_previous), each one's expert all-to-alls beside the other's compute;
  // the other collectives still hold the chip. Needs ep > 1 and no full recompute.
  bool overlap_moe_a2a = false;
  // The transformer blocks' linear layers run in fp8 (forward, input and weight gradients, with a
  // cast of each operand); attention, the logits and the element-wise ops stay in bf16.
  bool fp8_linears = false;
  // With fp8_linears, the tensor-parallel all-gathers move fp8 (1 byte per element) instead of
  // activation_bytes (Stack::fp8_tp_allgather); reduce-scatters and all-reduces do not.
  bool fp8_tp_allgather = false;
  bool fp8_rowwise = false;
  double kernel_floor_s = 0;      // shortest any kernel takes on the device
  double host_overhead_s = 0;     // host time to issue one kernel
  double p2p_overhead_s = 0;      // per pipeline send/receive
  double host_sync_s = 0;         // host time to issue a synchronising layer pass (Op::host_syncs)
};

// The vocabulary the plan's embedding and logits use: padded up to a multiple of multiple * tp.
int64_t padded_vocab(int64_t vocab, int tp, int multiple);

// Ranks the vocabulary is split over: tp when the stack splits it, else 1.
int vocab_ranks(const PlanOptions& options, const Layout& layout);

// Whether the stages' orders pair passes as Megatron-Core's combined 1F1B does
// (PlanOptions::overlap_moe_a2a, where there are expert all-to-alls to hide).
inline bool pairs_moe_passes(const ModelSpec& m, const Layout& l, const PlanOptions& o) {
  return o.overlap_moe_a2a && m.moe.sparse() && l.ep > 1;
}

// One layer's parameters on a chip, averaged over the model's layers: what tensor parallelism
// splits, and the routed experts that expert (tensor) parallelism splits instead, 1/(ep x etp) of
// them (with ep = etp = 1 they are held like any other weight).
struct LayerParametersOnChip {
  double dense = 0, experts = 0;
};
LayerParametersOnChip layer_parameters_on_chip(const ModelSpec& m, const Layout& l);

struct StepPlan {
  ModelSpec model;
  Layout layout;
  PlanOptions options;
  int64_t global_batch = 0;      // sequences
  int64_t n_microbatches = 0;    // per data-parallel rank
  int layers_per_stage = 0;
  int64_t tokens_per_microbatch = 0;
  double params_on_device = 0;   // parameters this chip's stage holds, after tensor parallelism
  double expert_params_on_device = 0;  // of which routed experts split by expert parallelism (ep > 1)
  int64_t vocab = 0;             // padded vocabulary (padded_vocab)
  std::vector<Op> ops;

  // Occurrences of `op` per step on this device.
  double occurrences(const Op& op) const;
  // Host synchronisations in one layer's pass of `phase` (Op::host_syncs; fractional for a mix of
  // layers): what host_sync_exposed_seconds (sim/analytic_estimator.h) prices. Summed from the
  // ops once, when build_step_plan finishes.
  double layer_host_syncs(Phase phase) const { return host_syncs_per_layer[size_t(phase)]; }
  std::array<double, 4> host_syncs_per_layer{};  // by Phase
  bool combined_moe_passes() const { return pairs_moe_passes(model, layout, options); }
};

// The layouts Megatron-Core's combined 1F1B runs: no pipeline (one stage, 1F1B) or virtual
// stages (interleaved), and no full recompute (its argument checks).
inline bool combined_1f1b_runs(const Layout& l) {
  return (l.pp == 1 || l.schedule == Schedule::interleaved) && l.recompute != Recompute::full;
}

StepPlan build_step_plan(const ModelSpec& model, const Layout& layout, int64_t global_batch,
                         const PlanOptions& options);

}  // namespace palmsim
