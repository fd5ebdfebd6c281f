#pragma once
// How one training step is spread over chips: tensor (tp), pipeline (pp, with vpp interleaved
// chunks per stage), data (dp, counted over all pods), context (cp) parallelism, the microbatch,
// sequence parallelism, how weights/gradients/optimizer state are sharded, and what is recomputed.
#include "model/model_spec.h"

#include <string>

namespace palmsim {

// none: every data-parallel rank holds everything. zero1/zero2/zero3: ZeRO stages (optimizer
// state; + gradients; + weights). fsdp: weights, gradients and optimizer state sharded over the
// data-parallel group and all-gathered layer by layer (PaLM: 12-way model x 256-way data per pod).
enum class Sharding { none, zero1, zero2, zero3, fsdp };
// selective: attention core recomputed (Korthikanti et al.). full: whole layer recomputed from its
// input. palm: one sharded activation kept per layer; 75 % of the non-attention forward FLOPs and
// all attention forward FLOPs recomputed (PaLM Sec. 4 / App. B, Table 22).
// minimal: keep only the outputs of the weight matmuls (and the layer input), recompute attention
// and the element-wise ops (MaxText remat_policy=minimal, JAX checkpoint_dots_with_no_batch_dims).
enum class Recompute { none, selective, full, palm, minimal };
// gpipe: all forwards then all backwards. one_f_one_b: PipeDream-flush. interleaved: 1F1B over vpp
// model chunks per stage (Narayanan et al. 2021). zero_bubble_h1: ZB-H1 (Qi et al. 2023, "Zero
// Bubble Pipeline Parallelism", ICLR 2024): backward split into the input gradient (B), which the
// stage before waits for, and the weight gradient (W), which a stage defers into what would be
// bubble; the same activation memory as 1F1B and a third of its bubble when F = B = W.
// zero_bubble_v: ZB-V (Qi et al. 2023 Sec. 6; Qi et al. 2024, "Pipeline Parallelism with
// Controllable Memory"): two model chunks per stage placed in a V (stage s holds virtual stages s
// and 2 pp - 1 - s, so the first and the last are both on stage 0), backward split as in ZB-H1,
// 1F1B's activation memory and close to no bubble when F = B = W (model/pipeline_schedule.cpp).
// zero_bubble_h2: ZB-H2 (Qi et al. 2023 Sec. 3): ZB-H1's split with twice 1F1B's activation memory,
// so the warm-up runs more forwards and the drain's waits fill with weight gradients.
// dualpipe_v: DualPipeV (DeepSeek-AI's DualPipe repository, the V variant of the DeepSeek-V3
// report's DualPipe, Sec. 3.2.1): ZB-V's V, and in the steady state the forward of one chunk and
// the backward of the other run overlapped (each one's communication hides behind the other's
// compute); weight gradients split off only in warm-up and cool-down; needs 2 pp microbatches.
// How context parallelism moves K/V between the cp ranks of a sequence. all_gather: each layer
// gathers the whole sequence's K/V beside its compute (Llama 3 paper Sec. 3.3.2; PyTorch's context
// parallelism, rotate method "allgather"); backward gathers again and reduce-scatters dK/dV. ring:
// K/V blocks pass point to point round the cp ranks, each transfer beside the attention on the
// block in hand (Transformer Engine's cp_comm_type "p2p", Megatron-LM's --cp-comm-type default),
// so only the attention's compute can hide them; backward passes K/V and dK/dV round again.
enum class ContextComm { all_gather, ring };
// How a mixture-of-experts layer's all-to-all carries its tokens. per_expert: one row per (token,
// chosen expert), as Megatron-Core's all-to-all dispatcher permutes them, torchtitan's
// all_to_all_single, GSPMD's dispatch einsum and palmsim's trainers do. per_rank: one row per
// (token, rank holding any of its experts); the rank hands it to its chosen experts itself
// (DeepEP's dispatch: get_dispatch_layout's is_token_in_rank; combine sums a rank's expert outputs
// before sending one row back). MoeSpec::ranks_per_token counts the rows.
enum class TokenDispatch { per_expert, per_rank };
enum class Schedule { gpipe, one_f_one_b, interleaved, zero_bubble_h1, zero_bubble_v, zero_bubble_h2, dualpipe_v };

struct Layout {
  int tp = 1;
  int pp = 1;
  int dp = 1;    // data-parallel ways in total, across all pods
  int pods = 1;  // dp is split evenly over pods; cross-pod reduction is its own stage
  int cp = 1;
  // Expert parallelism (mixture-of-experts models): the MoE layers fold the tensor-, context- and
  // data-parallel ranks of a stage into etp x ep x edp, etp fastest (Megatron-Core's "parallel
  // folding", Liu et al. 2025, arXiv 2504.14960). Each expert lives on one of ep ranks, and tokens
  // travel to their experts and back by all-to-all. Expert tensor parallelism (etp, Megatron's
  // --expert-tensor-parallel-size) splits each expert's hidden width over etp neighbouring ranks,
  // which all-gather the tokens routed to them and reduce-scatter the experts' outputs. Expert
  // gradients are reduced over the tp x dp x cp / (ep x etp) ranks that hold the same shards.
  int ep = 1;
  int etp = 1;
  int vpp = 1;
  int microbatch = 1;  // sequences per microbatch per data-parallel rank
  bool sp = false;
  // The pipeline split counts the input embedding as a layer of the first virtual stage and the
  // logits and loss as a layer of the last (Megatron-Core's account_for_embedding_in_pipeline_split
  // and account_for_loss_in_pipeline_split, which Megatron-Bridge's Llama 3.1 405B and
  // Qwen3-235B-A22B recipes set): n_layers + 2 split evenly over the pp x vpp chunks, so the stage
  // holding the loss holds one layer fewer. Without a pipeline there is nothing to split.
  bool account_ends = false;
  Sharding sharding = Sharding::none;
  Recompute recompute = Recompute::none;
  Schedule schedule = Schedule::one_f_one_b;

  int64_t chips() const { return int64_t(tp) * pp * dp * cp; }
  bool splits_ends() const { return account_ends && pp > 1; }  // account_ends in effect
  int dp_per_pod() const { return dp / pods; }
  // Ranks of a pod that hold the same weights: data- and context-parallel (gradients are reduced,
  // and FSDP shards, over both; Megatron's rank order puts cp inside dp, after tp).
  int replicas_per_pod() const { return dp / pods * cp; }
  // Ranks of a stage that hold different experts or different shards of them.
  int expert_ranks() const { return ep * etp; }
  // Ranks of a pod that hold the same expert shards (tensor parallelism folds in too).
  int expert_replicas_per_pod() const { return tp * replicas_per_pod() / expert_ranks(); }
};

const char* to_string(Sharding s);
const char* to_string(Recompute r);
const char* to_string(Schedule s);
Sharding parse_sharding(const std::string& text, const std::string& field);
Recompute parse_recompute(const std::string& text, const std::string& field);
Schedule parse_schedule(const std::string& text, const std::string& field);
const char* to_string(ContextComm c);
ContextComm parse_context_comm(const std::string& text, const std::string& field);
const char* to_string(TokenDispatch d);
TokenDispatch parse_token_dispatch(const std::string& text, const std::string& field);

// The layers pipeline stage `stage` of `pp` holds, [first, end), without interleaving:
// n_layers / pp each, one more on each of the last n_layers % pp stages. The last stage also holds
// the logits and loss, so it is the heaviest, the one the step plan prices (model/step_plan.cpp).
struct StageLayers {
  int first = 0, end = 0;
  int count() const { return end - first; }
};
StageLayers stage_layers(int64_t n_layers, int pp, int stage);

// Microbatches per data-parallel rank per step: global_batch / (dp * microbatch).
int64_t microbatches(const Layout& layout, int64_t global_batch);

// Throws InputError naming the field that makes the layout illegal for this model, chip count and
// global batch (sequences). Checks what any implementation needs: divisibility of heads, layers,
// batch and chips.
void check_layout(const Layout& layout, const ModelSpec& model, int64_t n_chips,
                  int64_t global_batch);
// Of those, the pipeline schedule's rules (chunks, microbatches, stages, weight sharding), for a
// caller without a Layout (the trainer's config): throws InputError naming the field.
void check_schedule_rules(Schedule schedule, int pp, int vpp, int64_t microbatches, Sharding sharding);
// The same test without building a message, for search's hot loop.
bool layout_is_legal(const Layout& layout, const ModelSpec& model, int64_t n_chips,
                     int64_t global_batch);

}  // namespace palmsim
