#pragma once
// A software stack: what the framework a run used does on top of the hardware (Megatron-LM of
// 2021, Megatron-DeepSpeed, Megatron-Core, torchtitan, XLA on TPU, palmsim's own trainer). Two
// kinds of fields:
//   - choices (which kernels are fused, gradient precision, whether the data-parallel reduction
//     overlaps backward, vocabulary padding), known from the stack's documentation;
//   - costs (a floor per kernel, host time per kernel, efficiency scales, per-call overheads):
//     named, bounded parameters, at most 8 of which `palmsim fit` fits on measured runs of a stack.
// Stacks are data: hwmodels/stacks/NAME.yaml, built into the binary; a scenario may name one,
// give a file, or override single fields. Each shipped file records what it was fitted on and its
// cross-validated error, from which every prediction's band is drawn.
#include "model/layout.h"

#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <vector>

namespace palmsim {

struct StackBand {
  int runs = 0;            // cross-validated residuals behind the band (0 = no band)
  double p05_pct = 0;      // 5th and 95th percentile of (predicted - measured) / measured, percent
  double p95_pct = 0;
  std::string fitted_on;   // files and row counts
  // The range the fit's runs cover; a prediction outside it says so.
  double min_chips = 0, max_chips = 0;
  double min_params = 0, max_params = 0;  // model parameters
  std::vector<std::string> systems;        // the systems those runs ran on
  std::map<std::string, double> cv_mean_abs_err_pct;  // per validation file
};

struct Stack {
  std::string name;
  std::string description;
  // Choices.
  bool fused_attention = false;    // flash-style kernel: no T x T score matrix in memory
  bool fused_elementwise = false;  // bias+activation, bias+dropout+residual fused into one kernel each
  bool grad_accumulation_fusion = true;  // weight gradients accumulate in the GEMM (no extra pass)
  double grad_reduce_bytes = 2;    // bytes per gradient element in the data-parallel reduction
  bool overlap_grad_reduce = true; // data-parallel reduction runs beside backward
  double activation_bytes = 2;     // bf16/fp16 activations and weights; palmsim's CPU trainer: fp32
  int vocab_multiple = 1;          // vocabulary padded to a multiple of this times tp (Megatron: 128)
  bool vocab_parallel = true;      // logits and loss split over tp (PlanOptions::vocab_parallel)
  double loss_bytes_per_logit = 8; // held at the loss's peak per logit (PlanOptions::loss_bytes_per_logit)
  bool fp8 = false;                // runs GEMMs in fp8 when the training precision is fp8
  // Activations between tensor-parallel regions are sharded over the tensor-parallel group
  // whatever the layout's sp flag says (GSPMD's sharding of the embedding axis in MaxText).
  bool shard_activations_over_tp = false;
  // Tensor-parallel collectives run beside the layer's matmuls (XLA's asynchronous collectives
  // and collective matmul on TPU) instead of on the critical path.
  bool overlap_tp_comm = false;
  // The pipeline's fill and drain run at the last stage's pace: every stage's slot as long as the
  // last one's, logits and loss included (PlanOptions::pipeline_paced_by_last_stage).
  bool pipeline_paced_by_last_stage = false;
  // How context parallelism exchanges K/V (model/layout.h ContextComm).
  ContextComm cp_comm = ContextComm::all_gather;
  // Rows an expert-parallel all-to-all carries per token (model/layout.h TokenDispatch).
  TokenDispatch moe_dispatch = TokenDispatch::per_expert;
  // DualPipeV's pairs (ChunkWork::joins_previous) run overlapped, each pass's collectives beside the
  // other's compute; false: one after the other, as palmsim's CPU trainer (one stream a rank) runs them.
  bool overlap_paired_passes = true;
  // Megatron-Core's combined 1F1B (--overlap-moe-expert-parallel-comm): one forward and one
  // backward of different microbatches run overlapped, each one's expert all-to-alls beside the
  // other's compute (PlanOptions::overlap_moe_a2a).
  bool overlap_moe_a2a = false;
  // fp8 with one scale per row (torchao's "rowwise" recipe) instead of one per tensor: its scaled
  // GEMMs are other kernels than cuBLAS's per-tensor fp8 GEMM (fp8_rowwise_gemm_efficiency_scale).
  bool fp8_rowwise = false;
  // With fp8 linears under per-tensor scaling, the tensor-parallel all-gathers carry fp8 (1 byte):
  // torchao's Float8ColwiseParallel, Float8RowwiseParallel and PrepareFloat8ModuleInput cast a
  // linear's input (forward, e4m3) and its output gradient (backward, e5m2) before the gather;
  // reduce-scatters stay bf16. torchtitan applies them with tensorwise Float8 only, not rowwise.
  bool fp8_tp_allgather = false;
  // What the stack can run (empty: anything). Megatron has a distributed optimizer (zero1) but no
  // parameter sharding; torchtitan shards with FSDP; XLA rematerializes as PaLM and MaxText do.
  std::vector<Sharding> shardings;
  std::vector<Recompute> recomputes;
  // Pipeline schedules: Megatron runs 1F1B and interleaved 1F1B; zero-bubble schedules live in
  // forks (sail-sg's Megatron-LM fork, ColossalAI) and in PyTorch's pipelining, so a stack lists
  // them only where its framework runs them.
  std::vector<Schedule> schedules;
  bool supports(Sharding s) const;
  bool supports(Recompute r) const;
  bool supports(Schedule s) const;
  // Costs (the fitted parameters; see stack_parameters()).
  double kernel_floor_s = 0;        // shortest time any GPU kernel takes (launch, ramp, tail)
  double host_overhead_s = 0;       // framework CPU time per kernel launched (eager dispatch)
  double gemm_efficiency_scale = 1; // multiplies the chip's best GEMM efficiency
  double memory_efficiency_scale = 1;  // multiplies the chip's streaming-kernel efficiency
  double collective_efficiency_scale = 1;  // multiplies the fabric's collective efficiencies
  double attention_efficiency_scale = 1;  // the stack's fused attention kernel against the chip's
  double p2p_overhead_s = 0;         // per pipeline send/receive pair (synchronisation, copies)
  double fp8_gemm_efficiency_scale = 1;  // fp8 GEMMs' fraction of the fp8 peak against bf16's of bf16
  // With overlap_tp_comm, the share of the tensor-parallel collectives' time that runs beside the
  // layer's compute: 1 for XLA's collective matmul, less for a micro-pipelined async TP, whose
  // first chunk's communication and the rest of the layer's collectives stay exposed.
  double tp_overlap_fraction = 1;
  double fp8_rowwise_gemm_efficiency_scale = 1;  // rowwise-scaled fp8 GEMMs against per-tensor ones
  // The host's time to issue a layer pass that synchronises with the device (Op::host_syncs: a
  // dropless MoE layer's forward). An eager host normally runs ahead of the device and hides this;
  // once it has waited for the device to drain, the pass cannot end before the host has issued it
  // again, so a pass whose device work is shorter takes this long (host_sync_exposed_seconds).
  double host_sync_s = 0;
  StackBand band;
};

// One fittable parameter: its YAML key (in the unit the key names), the field, and the range that
// is physically plausible for any stack (the fit never leaves it).
struct StackParameter {
  const char* key;
  double Stack::*field;
  double scale;  // field = value * scale (us -> s)
  double lo, hi; // bounds, in the key's unit
};
const std::vector<StackParameter>& stack_parameters();

// Parses a stack map (the format of hwmodels/stacks/*.yaml); every problem names `field`.
Stack parse_stack(const YAML::Node& node, const std::string& field);
// Applies the fields `node` gives onto `base` (a scenario's overrides of a named stack).
Stack parse_stack_onto(Stack base, const YAML::Node& node, const std::string& field);
// A shipped stack by name; unknown names list the allowed ones.
Stack stack_preset(const std::string& name, const std::string& field = "stack");
std::vector<std::string> stack_preset_names();
// The stack as YAML text in the shipped files' format (what `fit -o` writes).
std::string stack_yaml(const Stack& stack);

// InputError naming the field when the stack cannot run the layout's sharding, recompute mode or
// pipeline schedule.
void check_stack_supports(const Stack& stack, const Layout& layout, const std::string& sharding_field,
                          const std::string& recompute_field, const std::string& schedule_field);

}  // namespace palmsim
