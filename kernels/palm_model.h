#pragma once
// The PaLM model as the paper states it (Sec. 2): y = x + MLP(LN(x)) + Attn(LN(x)) (or a serial
// block), SwiGLU, causal multi-query attention with RoPE, LayerNorm without bias, no biases,
// shared input/output embedding with logits scaled by 1/sqrt(d_model), z-loss. Forward and
// backward of one microbatch on one rank; tensor parallelism splits heads and d_ff Megatron-style
// (column-parallel q and W_in, row-parallel W_o and W_out); K/V heads fewer than the tp ranks are
// replicated, and their weight gradients summed over the group. A sparse model's MoE layers
// (kernels/moe_mlp.h) replace the MLP; its experts are split over the expert-parallel ranks and
// their tensors follow every dense one in the flat buffers, so the dense part is one prefix.
// Context parallelism (kernels/context_parallel.h) gives each rank some rows of every sequence.
// Pipeline parallelism gives each stage some layers (model/layout.h stage_layers); the first stage
// looks tokens up, the last computes logits and loss, and both hold the shared embedding. Under
// the interleaved schedule a stage holds vpp model chunks, virtual stages chunk * pp + stage.
#include "kernels/communicator.h"
#include "kernels/context_parallel.h"
#include "kernels/cpu/attention.h"
#include "kernels/moe_mlp.h"
#include "kernels/op_timer.h"
#include "model/layout.h"
#include "model/model_spec.h"
#include "model/pipeline_schedule.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace palmsim {

// A SwiGLU MLP's weight names, width on this rank and op names: the dense MLP, or a sparse
// layer's shared experts (defined in palm_model.cpp).
struct SwigluMlp;

struct TensorInfo {
  std::string name;
  int64_t rows = 0, cols = 0;
  size_t offset = 0;         // into the flat parameter buffer
  bool tp_sharded = false;   // a different slice on each tensor-parallel rank
  double init_std = 0;       // N(0, init_std^2); 0 means ones (LayerNorm scales)
  bool ep_sharded = false;   // an expert held by this expert-parallel rank only
  size_t init_index = 0;     // its place in the ep = 1 tensor table: seeds its initial values
  size_t size() const { return size_t(rows * cols); }
};

template <class T>
class PalmModel {
 public:
  // tp ranks split heads, K/V heads (when there are at least tp of them) and d_ff. Without
  // `allocate` only the tensor table is built (the CUDA backend keeps its buffers on the device);
  // init() then allocates the parameters alone.
  // ep ranks split a sparse model's experts (n_experts / ep each); a sparse model needs tp = 1.
  // pp stages split the layers; this rank is stage pp_rank; with vpp > 1 its layers are the vpp
  // virtual stages of pp * vpp that `schedule` places on it (model/pipeline_schedule.h: chunk * pp
  // + pp_rank interleaved; pp_rank and 2 pp - 1 - pp_rank in ZB-V's V).
  PalmModel(const ModelSpec& spec, int tp = 1, int tp_rank = 0, bool allocate = true, int ep = 1, int ep_rank = 0,
            int pp = 1, int pp_rank = 0, int vpp = 1, Schedule schedule = Schedule::one_f_one_b);

  // Initialisation as PaLM gives it: weights N(0, 1/n_in), embedding N(0, 1), LayerNorm scales 1.
  // The full tensors are drawn from `seed` and this rank keeps its slice, so any tp gives the same
  // model.
  void init(uint64_t seed);
  // How context parallelism exchanges K/V (model/layout.h ContextComm; kernels/context_parallel.h).
  void set_context_comm(ContextComm c) { cp_comm_ = c; }

  // One microbatch of `batch` sequences of seq_len tokens: adds d(mean loss)/d(params) to grads()
  // (times grad_scale) and returns the mean loss including z-loss and the MoE load-balancing loss.
  // `tp`, `ep` and `cp` may be null when their size is 1. Under context parallelism every rank of
  // the cp group passes the whole sequences, computes on its own rows, and returns the mean over
  // them (the group's mean is the sequences' mean: every rank holds as many rows).
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t batch,
                          Communicator* tp, OpTimer* timer, double grad_scale = 1.0, Communicator* ep = nullptr,
                          Communicator* cp = nullptr);
  // Mean plain cross-entropy (nats per token), forward only.
  double evaluate(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp,
                  Communicator* ep = nullptr, Communicator* cp = nullptr);

  // One pipeline stage's model chunk `chunk` of a microbatch, kept in workspace `slot` between its
  // forward and its backward (a schedule with k microbatches in flight uses slots 0..k-1; a
  // microbatch's chunks share its slot: they hold different layers). `input` is the previous
  // virtual stage's output, [this rank's rows, d_model] (null on the first virtual stage, which
  // reads `tokens`; the last reads `targets`). Returns the part of the loss this chunk computes:
  // cross-entropy with z-loss on the last virtual stage, its MoE layers' balance loss; the plain
  // cross-entropy goes to plain_ce when given. With one stage, forward_backward is stage_forward
  // then stage_backward.
  double stage_forward(int slot, int chunk, const int32_t* tokens, const int32_t* targets, int64_t batch,
                       const T* input, Communicator* tp, Communicator* ep, Communicator* cp, OpTimer* timer,
                       double grad_scale, double* plain_ce = nullptr);
  const std::vector<T>& stage_output(int slot) const { return slots_[size_t(slot)].x; }
  // `output_grad`: the next stage's gradient of this stage's output (null on the last stage).
  // With `defer_weight_gradients` (a zero-bubble schedule's B pass) the layers' weight-gradient
  // GEMMs (dW = X^T dY) do not run: each keeps a copy of its dY for stage_weight_gradients, the
  // schedule's W pass; the logits' and the LayerNorms' weight gradients still run here.
  void stage_backward(int slot, int chunk, const T* output_grad, bool defer_weight_gradients = false);
  // The weight-gradient GEMMs stage_backward deferred for `slot`'s model chunk `chunk`, in the
  // order it met them, each timed as the op it belongs to. The same GEMMs on the same values:
  // gradients equal 1F1B's.
  void stage_weight_gradients(int slot, int chunk);
  const std::vector<T>& stage_input_grad(int slot) const { return slots_[size_t(slot)].dx; }
  int chunks() const { return int(chunks_.size()); }
  // The first and the last virtual stage: where the embedding lookup and the logits and loss run.
  bool first_virtual(int chunk) const { return virtual_stage(schedule_, pp_, pp_rank_, chunk) == 0; }
  bool last_virtual(int chunk) const { return virtual_stage(schedule_, pp_, pp_rank_, chunk) == pp_ * chunks() - 1; }
  bool holds_logits() const;                                        // the last virtual stage
  bool holds_embedding() const { return first_virtual(0) || holds_logits(); }  // tied: lookups and logits

  const ModelSpec& spec() const { return spec_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  std::vector<T>& params() { return params_; }
  std::vector<T>& grads() { return grads_; }
  const std::vector<T>& params() const { return params_; }
  size_t parameter_count() const { return n_params_; }  // this rank's, without padding
  // Where this rank's experts start in the flat buffers (parameter_count() for a dense model):
  // what data parallelism reduces when the experts are split over its ranks.
  size_t dense_parameter_count() const { return n_dense_params_; }
  bool is_moe_layer(int layer) const;
  // This rank's share of the heads, K/V heads and d_ff.
  int64_t local_heads() const { return heads_; }
  int64_t local_kv_heads() const { return kv_heads_; }
  int64_t local_ff() const { return ff_; }
  // Pads the flat buffers to a multiple of `n` elements (ZeRO-1 shards them evenly).
  void pad_to_multiple(size_t n);
  const TensorInfo& tensor(const std::string& name) const;
  // This rank's piece of a tensor given the whole (unsharded) tensor's values `full`.
  std::vector<T> shard_of(const TensorInfo& local, const double* full) const;

 private:
  // One microbatch's inputs, communicators, timer and shapes. Under context parallelism the rank
  // computes on R rows of each sequence, at their positions; otherwise R is the sequence length.
  struct Pass {
    const int32_t* tokens = nullptr;  // this rank's rows
    const int32_t* targets = nullptr;
    int64_t batch = 0, R = 0, N = 0;  // sequences, rows of each on this rank, rows in all
    Communicator *tp = nullptr, *ep = nullptr, *cp = nullptr;
    OpTimer* timer = nullptr;
    double grad_scale = 1;
    ContextParallel<T>* context = nullptr;  // null without context parallelism
    cpu::AttentionShape shape;
    cpu::QueryRows rows;
    // Local widths: query heads, K and V heads, and both (the QKV buffer's leading dimension).
    int64_t hq = 0, kvq = 0, ld = 0;
  };
  struct LayerActivations {
    std::vector<T> x, mean, rstd, h, qkv, lse, o, u, m;
    std::vector<T> x_mid, mean2, rstd2, h2;  // serial block only
    MoeActivations<T> moe;                   // MoE layers only
  };
  // A deferred dW += A^T dY: A [k, m] is the layer's input, kept in the slot's activations until
  // its next forward; dY [k, n] is copied (the backward's buffers are reused layer after layer).
  struct DeferredWeightGradient {
    const char* op;
    int64_t m, n, k;
    const T* a;
    int64_t lda;
    size_t dy;  // offset of the copy in Workspace::deferred_dy
    T* dw;
    int64_t ldw;
  };
  // Buffers reused from call to call: fresh allocations each step cost page faults.
  struct Workspace {
    std::vector<LayerActivations> layers;
    std::vector<T> x, y, hf, mean_f, rstd_f, logits, log_z, dhf, dx, dy, dh, dm, du, d_o, dqkv;
    MoeScratch<T> moe;
    std::unique_ptr<ContextParallel<T>> cp;  // for the cp size and rank last seen
    std::vector<int32_t> tokens, targets;    // this rank's rows under context parallelism
    std::vector<T> kv, dkv;                  // the whole sequences' K/V and their gradient (a ring: one block's)
    std::vector<T> ring_o, ring_lse, ring_dq, ring_dkv, own_dkv;  // ring attention's per-block parts
    Pass pass;                               // the microbatch in this workspace
    bool defer_weight_gradients = false;     // this backward keeps its weight gradients for later
    int chunk = 0;                           // the model chunk of the backward running in it
    // Per model chunk (a microbatch's chunks share its workspace): the deferred GEMMs and their dY.
    std::vector<std::vector<DeferredWeightGradient>> deferred;
    std::vector<std::vector<T>> deferred_dy;
  };
  Workspace& ws() { return slots_[slot_]; }
  const Pass& begin_pass(const int32_t* tokens, const int32_t* targets, int64_t batch, Communicator* tp, Communicator* ep,
                  Communicator* cp, OpTimer* timer, double grad_scale);
  T* param(const std::string& name) { return params_.data() + tensor(name).offset; }
  T* grad(const std::string& name) { return grads_.data() + tensor(name).offset; }
  // Forward, in the order a step runs it; the MoE layers' load-balancing loss is returned.
  void embedding_forward(const Pass& p);
  double layer_forward(const Pass& p, int layer);
  void layer_norm_forward(const Pass& p, const std::vector<T>& in, const T* g, std::vector<T>& out,
                          std::vector<T>& mean, std::vector<T>& rstd);
  void attention_forward(const Pass& p, LayerActivations& a, const std::string& prefix, const std::vector<T>& h);
  double mlp_forward(const Pass& p, LayerActivations& a, int layer, const std::string& prefix,
                     const std::vector<T>& h, T beta);
  void swiglu_forward(const Pass& p, LayerActivations& a, const SwigluMlp& mlp, const std::vector<T>& h, T beta);
  void add_branches(const Pass& p);  // sums y over the tp ranks, then adds it to the residual x
  double head_forward(const Pass& p, double* plain_ce);
  // Backward, in reverse.
  void head_backward(const Pass& p);
  void layer_backward(const Pass& p, int layer);
  void mlp_backward(const Pass& p, LayerActivations& a, int layer, const std::string& prefix, const std::vector<T>& h,
                    T beta);
  void swiglu_backward(const Pass& p, LayerActivations& a, const SwigluMlp& mlp, const std::vector<T>& h, T beta);
  void attention_backward(const Pass& p, LayerActivations& a, const std::string& prefix, T beta);
  // Ring attention (ContextComm::ring, kernels/context_parallel.h): a.o and a.lse from the K/V
  // blocks passed round the cp ranks; backward, dQ into the workspace's dqkv and this rank's dK/dV
  // after they pass round again.
  void ring_attention_forward(const Pass& p, LayerActivations& a);
  void ring_attention_backward(const Pass& p, const LayerActivations& a);
  cpu::AttentionShape ring_start(const Pass& p, const LayerActivations& a);
  const int32_t* ring_step(const Pass& p, int t, const char* op);
  void residual_backward(const Pass& p);  // the gradient reaching a branch's output
  void layer_norm_backward(const Pass& p, const std::vector<T>& in, const std::string& g, const std::vector<T>& mean,
                           const std::vector<T>& rstd);
  void reduce_dh(const Pass& p);
  // dW += A^T dY now, or kept for stage_weight_gradients when this backward defers them.
  void weight_gradient(const char* op, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* dy,
                       int64_t ldy, T* dw, int64_t ldw);
  void embedding_backward(const Pass& p);
  // Counts the tensor in the whole model's table (its place seeds its values); keeps it when `here`.
  void add_tensor(const std::string& name, int64_t rows, int64_t cols, bool sharded, double std, bool here = true);
  bool holds_layer(int layer) const;
  void add_experts();
  MoeShape moe_shape(int64_t tokens) const;
  MoeWeights<T> moe_weights(int layer) const;
  MoeGrads<T> moe_grads(int layer);

  ModelSpec spec_;
  int tp_, tp_rank_, ep_, ep_rank_, pp_, pp_rank_;
  Schedule schedule_;
  ContextComm cp_comm_ = ContextComm::all_gather;
  std::vector<StageLayers> chunks_;  // this stage's layers, per model chunk
  int64_t heads_, kv_heads_, ff_;  // this rank's
  std::vector<TensorInfo> tensors_;
  std::vector<T> params_, grads_;
  size_t n_params_ = 0, n_dense_params_ = 0;
  size_t table_index_ = 0;  // tensors counted so far in the whole model's table
  std::vector<Workspace> slots_{1};
  size_t slot_ = 0;  // the workspace the running call uses
};

}  // namespace palmsim
