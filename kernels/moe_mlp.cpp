#include "kernels/moe_mlp.h"

#include "kernels/cpu/blas.h"
#include "kernels/cpu/swiglu.h"
#include "model/input_error.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

namespace palmsim {

using cpu::gemm;

namespace {

int group_size(const Communicator* ep) { return ep ? ep->size() : 1; }

// The expert-parallel all-to-all; `out` is sized by the caller.
template <class T>
void all_to_all(Communicator* ep, const T* in, const std::vector<size_t>& send_counts, T* out,
                const std::vector<size_t>& recv_counts) {
  if constexpr (std::is_same_v<T, float>)
    ep->all_to_all(in, send_counts, out, recv_counts);
  else
    throw std::logic_error("expert parallelism exchanges float tensors only");
}

// `in` (blocks per rank as send_counts) as the ranks exchange it: itself when the experts are all on
// this rank (no copy: there is no all-to-all then, in the trainer as in the StepPlan), else `out`
// (blocks from each rank as recv_counts) after the all-to-all.
template <class T>
const std::vector<T>& exchanged(Communicator* ep, const std::vector<T>& in, const std::vector<size_t>& send_counts,
                                std::vector<T>& out, const std::vector<size_t>& recv_counts) {
  if (group_size(ep) == 1) return in;
  size_t total = 0;
  for (size_t c : recv_counts) total += c;
  out.resize(total);
  all_to_all(ep, in.data(), send_counts, out.data(), recv_counts);
  return out;
}

// Rows of `from` (d wide) to rows of `to`: to[index[r]] = from[r] (scatter) or to[r] = from[index[r]].
template <class T>
void scatter_rows(const T* from, T* to, const std::vector<int64_t>& index, int64_t d) {
  for (size_t r = 0; r < index.size(); ++r) std::copy_n(from + int64_t(r) * d, d, to + index[r] * d);
}
template <class T>
void gather_rows(const T* from, T* to, const std::vector<int64_t>& index, int64_t d) {
  for (size_t r = 0; r < index.size(); ++r) std::copy_n(from + index[r] * d, d, to + int64_t(r) * d);
}

// Softmax of the router logits in place, each token's top_k experts (ties to the lower index),
// and each expert's share of the assignments. Returns the load-balancing loss.
template <class T>
double route(const MoeShape& s, MoeActivations<T>& a, std::vector<int64_t>& counts) {
  const int64_t N = s.tokens, E = s.n_experts, k = s.top_k;
  a.choice.resize(size_t(N * k));
  counts.assign(size_t(E), 0);
  std::vector<double> mean_prob(size_t(E), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    T* p = a.probs.data() + n * E;
    const T top = *std::max_element(p, p + E);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += double(p[e] = T(std::exp(p[e] - top)));
    for (int64_t e = 0; e < E; ++e) {
      p[e] = T(double(p[e]) / sum);
      mean_prob[size_t(e)] += double(p[e]) / double(N);
    }
    int32_t* chosen = a.choice.data() + n * k;
    for (int64_t j = 0; j < k; ++j) {
      int32_t best = -1;
      for (int32_t e = 0; e < int32_t(E); ++e) {
        if (std::find(chosen, chosen + j, e) != chosen + j) continue;
        if (best < 0 || p[e] > p[best]) best = e;
      }
      chosen[j] = best;
      ++counts[size_t(best)];
    }
  }
  a.share.resize(size_t(E));
  double balance = 0;
  for (int64_t e = 0; e < E; ++e) {
    a.share[size_t(e)] = double(counts[size_t(e)]) / double(N * k);
    balance += a.share[size_t(e)] * mean_prob[size_t(e)];
  }
  return kMoeAuxLossWeight * double(E) * balance;
}

// Where every assignment goes: its send row (expert-major, tokens in order), the counts to and from
// each rank (exchanging the per-expert counts first), and each received row's expert-major row.
// With a capacity factor each expert takes at most C = ceil(factor x N x top_k / E) of this rank's
// rows, first choices first, then second choices, each in token order (GShard); the rest are
// dropped (send row -1: the token keeps its residual) and the buffer is padded to C rows.
template <class T>
void lay_out_exchange(const MoeShape& s, MoeActivations<T>& a, std::vector<int64_t> counts, Communicator* ep) {
  const int64_t N = s.tokens, E = s.n_experts, k = s.top_k, d = s.d_model;
  const int P = group_size(ep), L = int(E / P);
  a.send_row.resize(size_t(N * k));
  if (s.capacity_factor > 0) {
    const int64_t capacity = int64_t(std::ceil(s.capacity_factor * double(N * k) / double(E)));
    std::vector<int64_t> taken(size_t(E), 0);
    for (int64_t j = 0; j < k; ++j)
      for (int64_t n = 0; n < N; ++n) {
        const int64_t i = n * k + j, e = a.choice[size_t(i)];
        a.send_row[size_t(i)] = taken[size_t(e)] < capacity ? e * capacity + taken[size_t(e)]++ : -1;
      }
    counts.assign(size_t(E), capacity);
  } else {
    std::vector<int64_t> next(size_t(E), 0);
    for (int64_t e = 1; e < E; ++e) next[size_t(e)] = next[size_t(e - 1)] + counts[size_t(e - 1)];
    for (int64_t i = 0; i < N * k; ++i) a.send_row[size_t(i)] = next[size_t(a.choice[size_t(i)])]++;
  }
  a.send_counts.assign(size_t(P), 0);
  for (int64_t e = 0; e < E; ++e) a.send_counts[size_t(e / L)] += size_t(counts[size_t(e)] * d);

  // Counts from rank s for local expert e at [s * L + e] (exact in float below 2^24 rows).
  const std::vector<float> mine(counts.begin(), counts.end());
  std::vector<float> exchanged_counts;
  const std::vector<size_t> blocks(static_cast<size_t>(P), static_cast<size_t>(L));
  const std::vector<float>& theirs = exchanged(ep, mine, blocks, exchanged_counts, blocks);
  a.expert_begin.assign(size_t(L + 1), 0);
  for (int e = 0; e < L; ++e) {
    a.expert_begin[size_t(e + 1)] = a.expert_begin[size_t(e)];
    for (int r = 0; r < P; ++r) a.expert_begin[size_t(e + 1)] += int64_t(theirs[size_t(r * L + e)]);
  }
  a.recv_counts.assign(size_t(P), 0);
  a.received_row.clear();
  std::vector<int64_t> filled(a.expert_begin.begin(), a.expert_begin.end() - 1);
  for (int r = 0; r < P; ++r)
    for (int e = 0; e < L; ++e) {
      const int64_t rows = int64_t(theirs[size_t(r * L + e)]);
      a.recv_counts[size_t(r)] += size_t(rows * d);
      for (int64_t i = 0; i < rows; ++i) a.received_row.push_back(filled[size_t(e)]++);
    }
}

// fn(e, first row, rows) for each local expert that has rows.
template <class T, class Fn>
void for_each_expert(const MoeActivations<T>& a, Fn&& fn) {
  for (size_t e = 0; e + 1 < a.expert_begin.size(); ++e) {
    const int64_t begin = a.expert_begin[e], rows = a.expert_begin[e + 1] - begin;
    if (rows) fn(e, begin, rows);
  }
}

// The local experts on their expert-major rows x: u = x [W | V], m = SwiGLU(u), out = m W_out.
template <class T>
void experts_forward(const MoeShape& s, const MoeWeights<T>& w, MoeActivations<T>& a, std::vector<T>& out,
                     OpTimer* timer) {
  const int64_t d = s.d_model, f = s.expert_ff, R = int64_t(a.received_row.size());
  {
    auto scope = time_op(timer, "moe_expert_in.fwd");
    a.u.resize(size_t(R * 2 * f));
    for_each_expert(a, [&](size_t e, int64_t b, int64_t rows) {
      gemm(false, false, rows, 2 * f, d, T(1), a.x.data() + b * d, d, w.w_in[e], 2 * f, T(0), a.u.data() + b * 2 * f,
           2 * f);
    });
  }
  {
    auto scope = time_op(timer, "moe_expert_act.fwd");
    a.m.resize(size_t(R * f));
    cpu::swiglu_forward(a.u.data(), a.m.data(), R, f);
  }
  auto scope = time_op(timer, "moe_expert_out.fwd");
  out.resize(size_t(R * d));
  for_each_expert(a, [&](size_t e, int64_t b, int64_t rows) {
    gemm(false, false, rows, d, f, T(1), a.m.data() + b * f, f, w.w_out[e], d, T(0), out.data() + b * d, d);
  });
}

// From the outputs' gradient (scratch.d_out, expert-major): the weight gradients, and returns the
// inputs' gradient dx (expert-major).
template <class T>
const std::vector<T>& experts_backward(const MoeShape& s, const MoeWeights<T>& w, const MoeGrads<T>& g,
                                       const MoeActivations<T>& a, MoeScratch<T>& scratch, OpTimer* timer) {
  const int64_t d = s.d_model, f = s.expert_ff, R = int64_t(a.received_row.size());
  std::vector<T>&d_out = scratch.d_out, &dm = scratch.dm, &du = scratch.du, &dx = scratch.dx;
  dm.resize(size_t(R * f));
  du.resize(size_t(R * 2 * f));
  dx.resize(size_t(R * d));
  {
    auto scope = time_op(timer, "moe_expert_out.bwd");
    for_each_expert(a, [&](size_t e, int64_t b, int64_t rows) {
      gemm(false, true, rows, f, d, T(1), d_out.data() + b * d, d, w.w_out[e], d, T(0), dm.data() + b * f, f);
      gemm(true, false, f, d, rows, T(1), a.m.data() + b * f, f, d_out.data() + b * d, d, T(1), g.w_out[e], d);
    });
  }
  {
    auto scope = time_op(timer, "moe_expert_act.bwd");
    cpu::swiglu_backward(a.u.data(), dm.data(), du.data(), R, f);
  }
  auto scope = time_op(timer, "moe_expert_in.bwd");
  for_each_expert(a, [&](size_t e, int64_t b, int64_t rows) {
    gemm(false, true, rows, d, 2 * f, T(1), du.data() + b * 2 * f, 2 * f, w.w_in[e], 2 * f, T(0), dx.data() + b * d, d);
    gemm(true, false, d, 2 * f, rows, T(1), a.x.data() + b * d, d, du.data() + b * 2 * f, 2 * f, T(1), g.w_in[e], 2 * f);
  });
  return dx;
}

// The router's gradient: the gates' (scratch.d_gate) and the load-balancing loss's through the
// softmax; adds the router weights' gradient and h's share to dh.
template <class T>
void router_backward(const MoeShape& s, const MoeWeights<T>& w, const T* h, const MoeGrads<T>& g,
                     const MoeActivations<T>& a, MoeScratch<T>& scratch, double grad_scale, T* dh, OpTimer* timer) {
  const int64_t N = s.tokens, d = s.d_model, E = s.n_experts, k = s.top_k;
  std::vector<T>& d_logits = scratch.d_logits;
  d_logits.resize(size_t(N * E));
  {
    auto scope = time_op(timer, "moe_route.bwd");
    // d aux / d p[n][e] = alpha E f_e / N; the chosen experts' gates add their gradient.
    std::vector<double> d_prob(static_cast<size_t>(E));
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t e = 0; e < E; ++e)
        d_prob[size_t(e)] = kMoeAuxLossWeight * double(E) * a.share[size_t(e)] / double(N) * grad_scale;
      for (int64_t j = 0; j < k; ++j)
        d_prob[size_t(a.choice[size_t(n * k + j)])] += double(scratch.d_gate[size_t(n * k + j)]);
      const T* p = a.probs.data() + n * E;
      double inner = 0;
      for (int64_t e = 0; e < E; ++e) inner += double(p[e]) * d_prob[size_t(e)];
      for (int64_t e = 0; e < E; ++e) d_logits[size_t(n * E + e)] = T(double(p[e]) * (d_prob[size_t(e)] - inner));
    }
  }
  auto scope = time_op(timer, "moe_router.bwd");
  gemm(false, true, N, d, E, T(1), d_logits.data(), E, w.router, E, T(1), dh, d);
  gemm(true, false, d, E, N, T(1), h, d, d_logits.data(), E, T(1), g.router, E);
}

}  // namespace

void check_trainable_moe(const MoeSpec& m, int tp, int ep) {
  if (!m.sparse()) {
    if (ep > 1) throw InputError("layout.ep", "expert parallelism needs a sparse model (model.moe.n_experts > 0)");
    return;
  }
  if (m.top_k < 1 || m.top_k > m.n_experts)
    throw InputError("model.moe.top_k", "must be between 1 and n_experts (" + std::to_string(m.n_experts) + ")");
  if (m.expert_d_ff < 1) throw InputError("model.moe.expert_d_ff", "must be >= 1");
  if (m.layer_freq < 1) throw InputError("model.moe.layer_freq", "must be >= 1");
  if (m.capacity_factor < 0) throw InputError("model.moe.capacity_factor", "must be 0 (dropless) or > 0");
  if (m.shared_experts < 0) throw InputError("model.moe.shared_experts", "must be >= 0");
  if (tp != 1) throw InputError("layout.tp", "a sparse model trains with tp 1 (no expert tensor parallelism)");
  if (ep < 1 || m.n_experts % ep)
    throw InputError("layout.ep", "must divide model.moe.n_experts (" + std::to_string(m.n_experts) + ")");
}

template <class T>
double moe_forward(const MoeShape& s, const MoeWeights<T>& w, const T* h, T* y, bool accumulate,
                   MoeActivations<T>& a, MoeScratch<T>& scratch, Communicator* ep, OpTimer* timer) {
  const int64_t N = s.tokens, d = s.d_model, E = s.n_experts, k = s.top_k;
  if (E % group_size(ep) || int64_t(w.w_in.size()) != E / group_size(ep))
    throw std::logic_error("the expert-parallel ranks must hold n_experts / ep experts each");
  {
    auto scope = time_op(timer, "moe_router.fwd");
    a.probs.resize(size_t(N * E));
    gemm(false, false, N, E, d, T(1), h, d, w.router, E, T(0), a.probs.data(), E);
  }
  double aux;
  std::vector<int64_t> counts;
  {
    auto scope = time_op(timer, "moe_route.fwd");
    aux = route(s, a, counts);
  }
  std::vector<T>&send = scratch.send, &received = scratch.received;
  {
    auto scope = time_op(timer, "moe_permute.fwd");
    lay_out_exchange(s, a, counts, ep);
    size_t rows = 0;
    for (size_t c : a.send_counts) rows += c;
    // resize keeps earlier calls' memory; dropless, every row is written below, padded, not all
    if (s.capacity_factor > 0) send.assign(rows, T(0));
    else send.resize(rows);
    for (int64_t i = 0; i < N * k; ++i)
      if (a.send_row[size_t(i)] >= 0) std::copy_n(h + (i / k) * d, d, send.data() + a.send_row[size_t(i)] * d);
  }
  const std::vector<T>* arrived;
  {
    auto scope = time_op(timer, "moe_dispatch.fwd");
    arrived = &exchanged(ep, send, a.send_counts, received, a.recv_counts);
  }
  const int64_t R = int64_t(a.received_row.size());
  {
    auto scope = time_op(timer, "moe_permute.fwd");
    a.x.resize(size_t(R * d));
    scatter_rows(arrived->data(), a.x.data(), a.received_row, d);
  }
  std::vector<T>& out = scratch.out;
  experts_forward(s, w, a, out, timer);
  const bool local = group_size(ep) == 1;
  {
    auto scope = time_op(timer, "moe_unpermute.fwd");
    std::vector<T>& in_received_order = local ? a.returned : received;  // local: also the send order
    in_received_order.resize(size_t(R * d));
    gather_rows(out.data(), in_received_order.data(), a.received_row, d);
  }
  if (!local) {
    auto scope = time_op(timer, "moe_combine.fwd");
    a.returned.resize(send.size());
    all_to_all(ep, received.data(), a.recv_counts, a.returned.data(), a.send_counts);
  }
  auto scope = time_op(timer, "moe_unpermute.fwd");
  if (!accumulate) std::fill(y, y + N * d, T(0));
  for (int64_t i = 0; i < N * k; ++i) {
    if (a.send_row[size_t(i)] < 0) continue;  // dropped
    const T gate = a.probs[size_t((i / k) * E + a.choice[size_t(i)])];
    const T* row = a.returned.data() + a.send_row[size_t(i)] * d;
    T* out_row = y + (i / k) * d;
    for (int64_t c = 0; c < d; ++c) out_row[c] += gate * row[c];
  }
  return aux;
}

template <class T>
void moe_backward(const MoeShape& s, const MoeWeights<T>& w, const T* h, const T* dy, T* dh,
                  const MoeGrads<T>& g, const MoeActivations<T>& a, MoeScratch<T>& scratch, double grad_scale,
                  Communicator* ep, OpTimer* timer) {
  const int64_t N = s.tokens, d = s.d_model, E = s.n_experts, k = s.top_k;
  const int64_t R = int64_t(a.received_row.size());
  // Every buffer below is resized (keeping earlier calls' memory) and then written whole.
  std::vector<T>&d_gate = scratch.d_gate, &d_returned = scratch.d_returned, &d_received = scratch.d_received;
  d_gate.resize(size_t(N * k));
  {
    auto scope = time_op(timer, "moe_unpermute.bwd");
    // Padded buffers have rows no assignment writes: they carry zero gradient.
    if (s.capacity_factor > 0) d_returned.assign(a.returned.size(), T(0));
    else d_returned.resize(a.returned.size());
    for (int64_t i = 0; i < N * k; ++i) {
      d_gate[size_t(i)] = 0;
      if (a.send_row[size_t(i)] < 0) continue;  // dropped: no output, no gradient
      const T gate = a.probs[size_t((i / k) * E + a.choice[size_t(i)])];
      const T* up = dy + (i / k) * d;
      const T* row = a.returned.data() + a.send_row[size_t(i)] * d;
      T* d_row = d_returned.data() + a.send_row[size_t(i)] * d;
      T dot = 0;
      for (int64_t c = 0; c < d; ++c) {
        dot += up[c] * row[c];
        d_row[c] = gate * up[c];
      }
      d_gate[size_t(i)] = dot;
    }
  }
  const std::vector<T>* arrived;
  {
    auto scope = time_op(timer, "moe_combine.bwd");
    arrived = &exchanged(ep, d_returned, a.send_counts, d_received, a.recv_counts);
  }
  std::vector<T>& d_out = scratch.d_out;
  {
    auto scope = time_op(timer, "moe_unpermute.bwd");
    d_out.resize(size_t(R * d));
    scatter_rows(arrived->data(), d_out.data(), a.received_row, d);
  }
  const std::vector<T>& dx = experts_backward(s, w, g, a, scratch, timer);
  std::vector<T>& d_send = scratch.d_send;
  const bool local = group_size(ep) == 1;
  {
    auto scope = time_op(timer, "moe_permute.bwd");
    std::vector<T>& in_received_order = local ? d_send : d_received;  // local: also the send order
    in_received_order.resize(size_t(R * d));
    gather_rows(dx.data(), in_received_order.data(), a.received_row, d);
  }
  if (!local) {
    auto scope = time_op(timer, "moe_dispatch.bwd");
    d_send.resize(a.returned.size());
    all_to_all(ep, d_received.data(), a.recv_counts, d_send.data(), a.send_counts);
  }
  {
    auto scope = time_op(timer, "moe_permute.bwd");
    std::fill(dh, dh + N * d, T(0));
    for (int64_t i = 0; i < N * k; ++i) {
      if (a.send_row[size_t(i)] < 0) continue;  // dropped
      const T* row = d_send.data() + a.send_row[size_t(i)] * d;
      T* out = dh + (i / k) * d;
      for (int64_t c = 0; c < d; ++c) out[c] += row[c];
    }
  }
  router_backward(s, w, h, g, a, scratch, grad_scale, dh, timer);
}

template double moe_forward(const MoeShape&, const MoeWeights<float>&, const float*, float*, bool,
                            MoeActivations<float>&, MoeScratch<float>&, Communicator*, OpTimer*);
template double moe_forward(const MoeShape&, const MoeWeights<double>&, const double*, double*, bool,
                            MoeActivations<double>&, MoeScratch<double>&, Communicator*, OpTimer*);
template void moe_backward(const MoeShape&, const MoeWeights<float>&, const float*, const float*, float*,
                           const MoeGrads<float>&, const MoeActivations<float>&, MoeScratch<float>&, double,
                           Communicator*, OpTimer*);
template void moe_backward(const MoeShape&, const MoeWeights<double>&, const double*, const double*, double*,
                           const MoeGrads<double>&, const MoeActivations<double>&, MoeScratch<double>&, double,
                           Communicator*, OpTimer*);

}  // namespace palmsim
