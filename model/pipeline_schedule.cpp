#include "model/pipeline_schedule.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <queue>
#include <stdexcept>
#include <utility>

namespace palmsim {

int virtual_stage(Schedule schedule, int pp, int stage, int chunk) {
  if (v_shaped(schedule)) return chunk == 0 ? stage : 2 * pp - 1 - stage;
  return chunk * pp + stage;
}

StageChunk stage_chunk(Schedule schedule, int pp, int v) {
  if (v_shaped(schedule)) return v < pp ? StageChunk{v, 0} : StageChunk{2 * pp - 1 - v, 1};
  return {v % pp, v / pp};
}

namespace {

// Megatron-LM's interleaved schedule (schedules.py, forward_backward_pipelining_with_interleaving):
// virtual microbatch k of the forward stream runs chunk (k mod pp*vpp) / pp on microbatch
// (k / (pp*vpp)) * pp + k mod pp; the backward stream walks the chunks in reverse. Combined
// (PassSeconds::combined_moe): one more warm-up forward, "to ensure the forward and backward
// computations are independent in all 1f1b steps" (schedules.py), and each steady-state
// backward joins the forward before it.
std::vector<ChunkWork> interleaved(int pp, int vpp, int stage, int m, bool combined) {
  const int total = m * vpp;
  int warmup = m == pp ? total : (pp - stage - 1) * 2 + (vpp - 1) * pp + (combined ? 1 : 0);
  warmup = std::min(warmup, total);
  auto item = [&](int k, bool forward) {
    const int group = k % (pp * vpp);
    int chunk = group / pp;
    if (!forward) chunk = vpp - 1 - chunk;
    return ChunkWork{forward, (k / (pp * vpp)) * pp + k % pp, chunk};
  };
  std::vector<ChunkWork> out;
  int f = 0, b = 0;
  for (; f < warmup; ++f) out.push_back(item(f, true));
  while (f < total) {
    out.push_back(item(f++, true));
    out.push_back(item(b++, false));
    out.back().joins_previous = combined;
  }
  while (b < total) out.push_back(item(b++, false));
  return out;
}

// ZB-H1: stage s may hold s weight gradients back. The last stage, which starts the backward
// chain, then runs its input gradients without waiting on its weight gradients, and the earlier
// stages spend the waits of the drain on theirs: (pp - 1)(F + B - W) of bubble.
std::vector<ChunkWork> zero_bubble_h1(int pp, int stage, int m) {
  std::vector<ChunkWork> out;
  int f = 0, b = 0, w = 0;
  auto backward = [&] {
    out.push_back({false, b++, 0});
    while (b - w > stage) out.push_back({false, w++, 0, true});
  };
  for (const int warmup = std::min(pp - stage - 1, m); f < warmup;) out.push_back({true, f++, 0});
  while (f < m) {
    out.push_back({true, f++, 0});
    backward();
  }
  while (b < m) backward();
  while (w < m) out.push_back({false, w++, 0, true});
  return out;
}

// DualPipeV on stage r of pp (DeepSeek-AI's DualPipe repository, dualpipev.py, DualPipeV.step's
// eight steps), chunk 0 the V's way down (virtual stage r), chunk 1 its way back (2 pp - 1 - r).
// A backward whose weight gradients are split off (zero-bubble) queues its W; `_weight_chunk`
// runs the oldest. A whole backward is listed as B with its W right after it.
std::vector<ChunkWork> dualpipe_v(int pp, int r, int m, bool pairs) {
  std::vector<ChunkWork> out;
  int f[2] = {0, 0}, b[2] = {0, 0};
  std::deque<ChunkWork> deferred;
  auto forward = [&](int chunk) { out.push_back({true, f[chunk]++, chunk}); };
  auto backward = [&](int chunk, bool split, bool joins_previous = false) {
    ChunkWork item{false, b[chunk]++, chunk};
    item.joins_previous = pairs && joins_previous;
    out.push_back(item);
    const ChunkWork weight{false, item.microbatch, chunk, true};
    if (split) deferred.push_back(weight);
    else out.push_back(weight);
  };
  auto oldest_weight = [&] {
    out.push_back(deferred.front());
    deferred.pop_front();
  };
  const int later = pp - r - 1;  // stages after this one on the way down
  for (int i = 0; i < 2 * later; ++i) forward(0);  // 1: chunk 0's warm-up
  for (int i = 0; i <= r; ++i) forward(0), forward(1);  // 2: both chunks
  for (int i = 0; i < later; ++i) {  // 3: zero-bubble backwards of chunk 1, W at once
    backward(1, true);
    oldest_weight();
    forward(1);
  }
  for (int i = 0; i < m - 2 * pp + r + 1; ++i) {  // 4: the steady state, overlapped pairs
    forward(0);
    // The turn (stage pp - 1) runs its first pair apart: chunk 1's backward waits on the forward.
    backward(1, false, !(i == 0 && r == pp - 1));
    forward(1);
    backward(0, false, true);
  }
  for (int i = 0; i < later; ++i) {  // 5: chunk 1 drains, chunk 0 still overlapped
    backward(1, false);
    forward(1);
    backward(0, false, true);
  }
  bool split = false;  // 6: the second half of these backwards defer their W
  for (int i = 0; i <= r; ++i) {
    if (i == (r + 1) / 2 && r % 2 == 1) split = true;
    backward(1, split);
    if (i == (r + 1) / 2 && r % 2 == 0) split = true;
    backward(0, split);
  }
  for (int i = 0; i < later; ++i) {  // 7: W into the waits for chunk 0's gradients
    oldest_weight();
    backward(0, true);
  }
  while (!deferred.empty()) oldest_weight();  // 8: the rest (r + 1 of them)
  return out;
}


constexpr double kNever = std::numeric_limits<double>::infinity();

// When each virtual stage's forward and backward (input gradient) of each microbatch end, and so
// when a pass's input is there: the activation from the virtual stage before, the gradient from
// the one after (the loss's backward follows its own forward), a message later when the two sit on
// different stages. kNever: not run yet. The player and the makespan both keep their time here.
class PassClock {
 public:
  PassClock(Schedule schedule, int pp, int vpp, int m, double message)
      : m_(m), last_v_(pp * vpp - 1), message_(message), f_end_(size_t(pp * vpp) * size_t(m), kNever), b_end_(f_end_) {
    for (int v = 0; v <= last_v_; ++v) stage_of_.push_back(stage_chunk(schedule, pp, v).stage);
  }
  int stage_of(int v) const { return stage_of_[size_t(v)]; }
  int last_v() const { return last_v_; }
  double message(int from_v, int to_v) const { return stage_of(from_v) != stage_of(to_v) ? message_ : 0.0; }
  void finish(bool forward, int v, int i, double end) { (forward ? f_end_ : b_end_)[index(v, i)] = end; }
  double forward_input(int v, int i) const { return v == 0 ? 0.0 : f_end_[index(v - 1, i)] + message(v - 1, v); }
  double backward_input(int v, int i) const {
    if (v == last_v_) return f_end_[index(v, i)];
    return b_end_[index(v + 1, i)] + message(v + 1, v);
  }

 private:
  size_t index(int v, int i) const { return size_t(v) * size_t(m_) + size_t(i); }
  int m_, last_v_;
  double message_;
  std::vector<int> stage_of_;
  std::vector<double> f_end_, b_end_;  // [v * m + microbatch]
};

// A zero-bubble pipeline played out pass by pass (played_out_orders): ZB-V's two chunks a stage
// in a V, or ZB-H2's one; at most 2 pp chunks' activations a stage. Stages act in the order of the
// times they come free (an event queue); one with nothing to run sleeps until a neighbour's pass
// sends it something. `alternate`: a stage that has both a forward and an input gradient ready
// runs the other kind than its last (1F1B's steady state); otherwise the input gradient first.
class PipelinePlay {
 public:
  PipelinePlay(Schedule schedule, int pp, int m, const PassSeconds& p, bool alternate)
      : schedule_(schedule), pp_(pp), chunks_(schedule == Schedule::zero_bubble_v ? 2 : 1), m_(m), p_(p),
        alternate_(alternate), limit_(chunks_ * microbatches_in_flight(schedule, pp)), next_f_(size_t(pp * chunks_), 0), next_b_(next_f_), next_w_(next_f_),
        clock_(schedule, pp, chunks_, m, p.message), live_(size_t(pp), 0),
        free_at_(size_t(pp), 0.0), after_forward_(size_t(pp), false),
        left_(size_t(pp), size_t(3 * chunks_) * size_t(m)), orders_(static_cast<size_t>(pp)) {
    for (std::vector<ChunkWork>& order : orders_) order.reserve(left_[0]);
    for (int s = 0; s < pp; ++s)
      for (int chunk = 0; chunk < chunks_; ++chunk) v_of_.push_back(virtual_stage(schedule, pp, s, chunk));
    for (int s = 0; s < pp; ++s) events_.push({0.0, s});
    while (!events_.empty()) {
      const auto [t, s] = events_.top();
      events_.pop();
      if (left_[size_t(s)] == 0 || t < free_at_[size_t(s)]) continue;  // done, or busy until later
      free_at_[size_t(s)] = t;
      step(s, t);
    }
    for (size_t s = 0; s < left_.size(); ++s)
      if (left_[s] > 0) throw std::logic_error("played_out_orders: the pipeline deadlocked");
  }
  std::vector<std::vector<ChunkWork>> take_orders() { return std::move(orders_); }
  double makespan() const { return *std::max_element(free_at_.begin(), free_at_.end()); }

 private:
  enum class Pass { none, forward, input_gradient, weight };
  struct Choice {
    Pass pass = Pass::none;
    int v = -1;
  };

  int v_of(int s, int chunk) const { return v_of_[size_t(s * chunks_ + chunk)]; }
  int stage_of(int v) const { return clock_.stage_of(v); }
  int last_v() const { return clock_.last_v(); }
  // When virtual stage v's next forward or input gradient could start (kNever: not known yet).
  double f_ready(int v) const {
    const int i = next_f_[size_t(v)];
    return i >= m_ ? kNever : clock_.forward_input(v, i);
  }
  double b_ready(int v) const {
    const int i = next_b_[size_t(v)];
    return i >= m_ ? kNever : clock_.backward_input(v, i);
  }

  // What stage s runs at time t: of each kind the oldest microbatch, between equals the chunk
  // nearer the loss. A forward needs room: limit_ chunks' activations at most, in a V the last slot
  // kept for the way back (chunk 1), without which a stage full of chunk 0's forwards could never
  // pass on the microbatch whose gradient would free them.
  Choice choose(int s, double t) const {
    int f = -1, b = -1, w = -1;
    for (int chunk = chunks_ - 1; chunk >= 0; --chunk) {
      const int v = v_of(s, chunk);
      if (b_ready(v) <= t && (b < 0 || next_b_[size_t(v)] < next_b_[size_t(b)])) b = v;
      const bool room = live_[size_t(s)] < limit_ - (chunks_ > 1 && chunk == 0 ? 1 : 0);
      if (f_ready(v) <= t && room && (f < 0 || next_f_[size_t(v)] < next_f_[size_t(f)])) f = v;
      if (next_w_[size_t(v)] < next_b_[size_t(v)] && (w < 0 || next_w_[size_t(v)] < next_w_[size_t(w)])) w = v;
    }
    const bool forward_turn = alternate_ && !after_forward_[size_t(s)];
    if (f >= 0 && (b < 0 || forward_turn)) return {Pass::forward, f};
    if (b >= 0) return {Pass::input_gradient, b};
    if (w >= 0) return {Pass::weight, w};  // fills what would be a wait
    return {};
  }

  // Runs what stage s chooses at t and tells the stage it feeds when its input arrives; with
  // nothing to run, the stage sleeps until a neighbour's pass wakes it.
  void step(int s, double t) {
    const Choice c = choose(s, t);
    if (c.pass == Pass::none) return;
    const int chunk = stage_chunk(schedule_, pp_, c.v).chunk;
    const bool loss = c.v == last_v();
    std::vector<ChunkWork>& order = orders_[size_t(s)];
    const bool forward = c.pass == Pass::forward;
    const int i = (c.pass == Pass::weight ? next_w_ : forward ? next_f_ : next_b_)[size_t(c.v)]++;
    order.push_back({forward, i, chunk, c.pass == Pass::weight});
    const double end = t + p_.seconds(order.back(), loss);
    if (c.pass == Pass::weight) {
      --live_[size_t(s)];
    } else {
      clock_.finish(forward, c.v, i, end);
      live_[size_t(s)] += forward ? 1 : 0;
      after_forward_[size_t(s)] = forward;
      const int fed = forward ? c.v + 1 : c.v - 1;
      if (fed >= 0 && fed <= last_v()) events_.push({end + clock_.message(c.v, fed), stage_of(fed)});
    }
    free_at_[size_t(s)] = end;
    events_.push({free_at_[size_t(s)], s});
    --left_[size_t(s)];
  }

  const Schedule schedule_;
  const int pp_, chunks_, m_;
  const PassSeconds p_;
  const bool alternate_;
  const int limit_;  // chunks' activations a stage may hold
  // Per virtual stage: the microbatch its next F, B and W take (each runs them in order).
  std::vector<int> next_f_, next_b_, next_w_;
  PassClock clock_;
  std::vector<int> v_of_;  // stage * chunks + chunk -> virtual stage
  // Per stage.
  std::vector<int> live_;
  std::vector<double> free_at_;
  std::vector<bool> after_forward_;
  std::vector<size_t> left_;
  std::vector<std::vector<ChunkWork>> orders_;
  // (time, stage): when a stage comes free or is sent something, earliest first.
  std::priority_queue<std::pair<double, int>, std::vector<std::pair<double, int>>, std::greater<>> events_;
};


// When the last stage finishes these orders (pipeline_makespan).
double makespan_of(const std::vector<std::vector<ChunkWork>>& orders, Schedule schedule, int vpp, int m,
                   const PassSeconds& p) {
  const int pp = int(orders.size()), chunks = pp * vpp;
  PassClock clock(schedule, pp, vpp, m, p.message);
  std::vector<size_t> next(size_t(pp), 0);
  std::vector<double> free_at(size_t(pp), 0);
  // When item's input (or gradient) is there (kNever: not yet). A W follows its B in the same order.
  auto ready = [&](const ChunkWork& item, int s) {
    const int v = virtual_stage(schedule, pp, s, item.chunk);
    if (item.weight) return 0.0;
    return item.forward ? clock.forward_input(v, item.microbatch) : clock.backward_input(v, item.microbatch);
  };
  auto finish = [&](const ChunkWork& item, int s, double end) {
    if (!item.weight) clock.finish(item.forward, virtual_stage(schedule, pp, s, item.chunk), item.microbatch, end);
  };
  auto holds_loss = [&](const ChunkWork& item, int s) { return virtual_stage(schedule, pp, s, item.chunk) == chunks - 1; };
  for (bool progressed = true; progressed;) {
    progressed = false;
    for (int s = 0; s < pp; ++s) {
      const std::vector<ChunkWork>& order = orders[size_t(s)];
      for (size_t& k = next[size_t(s)]; k < order.size(); ++k) {
        const ChunkWork& item = order[k];
        // An overlapped pair starts when both inputs are there and ends as one.
        const ChunkWork* partner = k + 1 < order.size() && order[k + 1].joins_previous ? &order[k + 1] : nullptr;
        const double input = ready(item, s), partner_input = partner ? ready(*partner, s) : 0.0;
        if (input == kNever || partner_input == kNever) break;  // waits on another stage
        const double start = std::max({free_at[size_t(s)], input, partner_input});
        const double end = start + (partner ? p.overlapped_seconds(item, holds_loss(item, s), *partner, holds_loss(*partner, s))
                                            : p.seconds(item, holds_loss(item, s)));
        free_at[size_t(s)] = end;
        finish(item, s, end);
        if (partner) finish(*partner, s, end), ++k;
        progressed = true;
      }
    }
  }
  for (int s = 0; s < pp; ++s)
    if (next[size_t(s)] < orders[size_t(s)].size()) throw std::logic_error("pipeline_makespan: the orders deadlock");
  return *std::max_element(free_at.begin(), free_at.end());
}


// The fastest of the orders played out for these pass times, and its makespan: the two rules'
// plays, and for ZB-H2 ZB-H1's order too (it holds what ZB-H2 may hold), so ZB-H2 is never the
// slower.
std::pair<std::vector<std::vector<ChunkWork>>, double> fastest_played_out(Schedule schedule, int pp, int m,
                                                                          const PassSeconds& p) {
  PipelinePlay input_gradients_first(schedule, pp, m, p, false), alternating(schedule, pp, m, p, true);
  PipelinePlay& best = alternating.makespan() < input_gradients_first.makespan() ? alternating : input_gradients_first;
  std::pair<std::vector<std::vector<ChunkWork>>, double> out{best.take_orders(), best.makespan()};
  if (schedule != Schedule::zero_bubble_h2) return out;
  std::vector<std::vector<ChunkWork>> h1;
  for (int s = 0; s < pp; ++s) h1.push_back(zero_bubble_h1(pp, s, m));
  const double h1_span = makespan_of(h1, Schedule::zero_bubble_h1, 1, m, p);
  if (h1_span < out.second) out = {std::move(h1), h1_span};
  return out;
}

}  // namespace

std::vector<std::vector<ChunkWork>> played_out_orders(Schedule schedule, int pp, int m, const PassSeconds& p) {
  return fastest_played_out(schedule, pp, m, p).first;
}

std::vector<std::vector<ChunkWork>> pipeline_orders(Schedule schedule, int pp, int vpp, int m, const PassSeconds& p) {
  if (has_played_out_order(schedule)) return played_out_orders(schedule, pp, m, p);
  std::vector<std::vector<ChunkWork>> orders;
  for (int s = 0; s < pp; ++s) orders.push_back(stage_schedule(schedule, pp, vpp, s, m, p));
  return orders;
}

double pipeline_makespan(Schedule schedule, int pp, int vpp, int m, const PassSeconds& p) {
  // A play's own end is its orders' makespan: the same passes at the same times.
  if (has_played_out_order(schedule)) return fastest_played_out(schedule, pp, m, p).second;
  return makespan_of(pipeline_orders(schedule, pp, vpp, m, p), schedule, vpp, m, p);
}

std::vector<ChunkWork> stage_schedule(Schedule schedule, int pp, int vpp, int stage, int m, const PassSeconds& seconds) {
  if (has_played_out_order(schedule)) return played_out_orders(schedule, pp, m, seconds)[size_t(stage)];
  if (schedule == Schedule::dualpipe_v) return dualpipe_v(pp, stage, m, seconds.overlap_pairs);
  // Otherwise model chunks only exist to be interleaved (the closed form's bubble / vpp assumes it).
  if (vpp > 1) return interleaved(pp, vpp, stage, m, seconds.combined_moe);
  if (schedule == Schedule::zero_bubble_h1) return zero_bubble_h1(pp, stage, m);
  std::vector<ChunkWork> out;
  if (schedule == Schedule::gpipe) {
    for (int i = 0; i < m; ++i) out.push_back({true, i, 0});
    for (int i = 0; i < m; ++i) out.push_back({false, i, 0});
    return out;
  }
  // 1F1B; combined (PassSeconds::combined_moe), one more warm-up forward and each steady-state
  // backward joined to the forward before it (Megatron-Core's combined_1f1b.py without a pipeline:
  // F0, F1+B0, F2+B1, ..., B(m-1)).
  const int warmup = std::min(pp - stage - 1 + (seconds.combined_moe ? 1 : 0), m);
  int f = 0, b = 0;
  for (; f < warmup; ++f) out.push_back({true, f, 0});
  while (f < m) {
    out.push_back({true, f++, 0});
    out.push_back({false, b++, 0});
    out.back().joins_previous = seconds.combined_moe;
  }
  while (b < m) out.push_back({false, b++, 0});
  return out;
}

size_t last_backward_pass(const std::vector<ChunkWork>& schedule) {
  size_t last = 0;
  for (size_t i = 0; i < schedule.size(); ++i)
    if (!schedule[i].forward && !schedule[i].weight) last = i;
  return last;
}

}  // namespace palmsim
