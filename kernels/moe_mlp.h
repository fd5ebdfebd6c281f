#pragma once
// A mixture-of-experts MLP on one rank (Switch Transformer / GShard routing, dropless): a router
// scores every expert with softmax(h W_r); each token goes to its top_k experts, weighted by those
// probabilities (not renormalised, so the router also learns through the main loss, as in Switch);
// dropless, or with a capacity factor that caps and pads each expert's rows (tokens over it drop);
// tokens are permuted into expert order and sent to the rank that holds each expert by an
// all-to-all over the expert-parallel group; each expert is a SwiGLU MLP of expert_d_ff; a second
// all-to-all brings the outputs back to be summed with their weights. The load-balancing loss is
// Switch's: alpha * E * sum_i f_i P_i over this rank's tokens (f_i its share of the N*top_k
// assignments, P_i its mean probability); f_i carries no gradient.
// Timed under the StepPlan's names (moe_router, moe_route, moe_permute, moe_dispatch,
// moe_expert_in, moe_expert_act, moe_expert_out, moe_combine, moe_unpermute).
#include "kernels/communicator.h"
#include "kernels/op_timer.h"
#include "model/model_spec.h"

#include <cstdint>
#include <vector>

namespace palmsim {

// Switch Transformer (Fedus et al. 2021, Sec. 2.2): alpha = 1e-2 for the auxiliary loss.
constexpr double kMoeAuxLossWeight = 1e-2;

// Throws an InputError naming the field unless the training step implements `m` (routed experts,
// dropless or capped; shared experts are a SwiGLU MLP beside them, in kernels/palm_model.cpp) at
// this tensor- and expert-parallel size. A dense model passes at ep 1.
void check_trainable_moe(const MoeSpec& m, int tp, int ep);

struct MoeShape {
  int64_t tokens = 0;      // N on this rank
  int64_t d_model = 0;
  int n_experts = 0;       // E, over all expert-parallel ranks
  int top_k = 0;
  int64_t expert_ff = 0;   // f of each expert
  double capacity_factor = 0;  // 0: dropless; else each expert's rows from this rank are capped
};

// One layer's weights on this rank: the router and the local experts (E / ep of them).
template <class T>
struct MoeWeights {
  const T* router = nullptr;              // d x E
  std::vector<const T*> w_in, w_out;      // per local expert: d x 2f ([W | V]) and f x d
};

template <class T>
struct MoeGrads {
  T* router = nullptr;
  std::vector<T*> w_in, w_out;
};

// What backward needs, kept per layer.
template <class T>
struct MoeActivations {
  std::vector<T> probs;                    // N x E router softmax
  std::vector<int32_t> choice;             // N x top_k experts, by descending probability
  std::vector<double> share;               // E: f_i, this rank's share of assignments
  std::vector<int64_t> send_row;           // N x top_k: row of assignment (n, j) in the send buffer
  std::vector<size_t> send_counts, recv_counts;  // elements to / from each expert-parallel rank
  std::vector<int64_t> received_row;       // row of each received row in the expert-major buffer
  std::vector<int64_t> expert_begin;       // local expert e's rows: [begin[e], begin[e + 1])
  std::vector<T> x, u, m;                  // expert-major inputs, [xW | xV], SwiGLU outputs
  std::vector<T> returned;                 // N*top_k x d expert outputs back here, in send order
};

// Buffers one layer's pass uses and the next reuses: fresh allocations each call cost page faults
// (a fifth of the step of scenarios/train-tiny-moe.yaml, untimed, before they were kept).
template <class T>
struct MoeScratch {
  std::vector<T> send, received, out, d_gate, d_returned, d_received, d_out, dm, du, dx, d_send, d_logits;
};

// Adds (accumulate) or writes the MLP output of h (N x d) into y and returns the load-balancing
// loss. `ep` may be null when the experts are all on this rank.
template <class T>
double moe_forward(const MoeShape& s, const MoeWeights<T>& w, const T* h, T* y, bool accumulate,
                   MoeActivations<T>& a, MoeScratch<T>& scratch, Communicator* ep, OpTimer* timer);

// From dy (N x d): writes dh (N x d) and adds the weight gradients. grad_scale multiplies the
// load-balancing loss's gradient as the caller's loss scale multiplies dy.
template <class T>
void moe_backward(const MoeShape& s, const MoeWeights<T>& w, const T* h, const T* dy, T* dh,
                  const MoeGrads<T>& g, const MoeActivations<T>& a, MoeScratch<T>& scratch, double grad_scale,
                  Communicator* ep, OpTimer* timer);

}  // namespace palmsim
