#include "sim/simgrid/simulator.h"

#include "sim/simgrid/collective_flows.h"
#include "model/pipeline_schedule.h"

#include <simgrid/s4u/Actor.hpp>
#include <simgrid/s4u/Comm.hpp>
#include <simgrid/s4u/ConditionVariable.hpp>
#include <simgrid/s4u/Engine.hpp>
#include <simgrid/s4u/Mailbox.hpp>
#include <simgrid/s4u/Mutex.hpp>
#include <simgrid/s4u/Semaphore.hpp>
#include <xbt/log.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <stdexcept>
#include <unordered_map>

namespace palmsim::simulation {

namespace s4u = ::simgrid::s4u;

const char* to_string(Track t) {
  switch (t) {
    case Track::schedule: return "schedule";
    case Track::compute: return "compute";
    case Track::comm: return "comm";
    case Track::stream: return "stream";
    case Track::pipeline: return "pipeline";
  }
  return "?";
}

namespace {

// Payloads carry no data, only a size; SimGrid refuses a null one.
int payload = 0;
void* sink = nullptr;

// Layers of one chunk pass are simulated in at most this many blocks when a side stream runs
// beside them (each block: one compute activity, one set of flows per collective); identical
// layers behave the same in every block, so the steady-state overlap is unchanged while a
// 118-layer, 6144-chip step stays a few million events. Without a side stream one block suffices.
constexpr int kMaxBlocksPerPass = 8;
// Mailboxes per chip for collectives: stream (main, side, an overlapped pair's backward, and a
// context-parallel ring beside either pass's attention) x group x ring level x slot (flow index:
// at most 3 torus axes x 2 directions on a ring, ep - 1 peers in an all-to-all).
constexpr int kLevels = 2, kGroups = int(CommGroup::cross_pod) + 1, kStreams = 5;
constexpr int kMainStream = 0, kSideStream = 1, kPairedBackwardStream = 2, kRingStream = 3, kPairedRingStream = 4;

struct SideStream {
  std::deque<std::pair<CommCall, double>> queue;
  s4u::SemaphorePtr todo;
  // Calls finish in order: ticket t is done once `finished` reaches t. Both halves of an
  // overlapped pair may wait at once, so they wait on a condition, not on a count of releases.
  s4u::MutexPtr lock;
  s4u::ConditionVariablePtr changed;
  int submitted = 0, finished = 0;
};

struct World {
  const StepPlan& plan;
  const StepWork& work;
  const ChipPlacement& placement;
  const ReplicaFold& fold;
  CollectiveFlows flows;
  std::vector<std::array<s4u::Host*, 2>> mirrors;  // folded replicas: per chip and ring level
  std::vector<double> compute_factor;
  std::vector<char> traced;
  int slots;  // mailbox slots per phase: max(6, ep - 1)
  std::unordered_map<uint64_t, s4u::Mailbox*> collective_boxes;
  std::vector<s4u::Mailbox*> pipe_boxes;
  std::vector<SideStream> streams;
  SimulationResult result;
  // Thread ranks on fewer cores (System::ranks_share_cores): a compute stretch first takes one of
  // the simulated chips' share of the cores, and waits for it while other ranks hold them all.
  s4u::SemaphorePtr cores;

  s4u::Mailbox* collective_box(int chip, int stream, CommGroup group, int level, int slot) {
    const uint64_t i = uint64_t(chip) * uint64_t(kStreams * kGroups * kLevels * slots) +
                       ((uint64_t(stream) * kGroups + uint64_t(group)) * kLevels + uint64_t(level)) * uint64_t(slots) +
                       uint64_t(slot);
    s4u::Mailbox*& box = collective_boxes[i];
    if (!box) box = s4u::Mailbox::by_name(std::string("c").append(std::to_string(i)));
    return box;
  }
  // Activations (forward) and gradients (backward) for one model chunk arrive in microbatch order.
  s4u::Mailbox* pipe_box(int chip, bool forward, int chunk) {
    const int vpp = plan.layout.vpp;
    const size_t i = (size_t(chip) * 2 + (forward ? 0 : 1)) * vpp + chunk;
    if (!pipe_boxes[i]) pipe_boxes[i] = s4u::Mailbox::by_name(std::string("p").append(std::to_string(i)));
    return pipe_boxes[i];
  }
};

// Combined 1F1B's pair (StepWork::combined_moe_pairs) hands the chip from half to half
// in strict alternation: a half takes it for its compute and keeps it through its other blocking
// collectives until its next all-to-all, then the other half's turn comes (Megatron-Core runs the
// two microbatches' sub-modules in turn on one compute stream, the all-to-alls on another). Every
// chip of a stage runs the same turns in the same order, so a collective inside a turn always
// meets its peers inside theirs.
struct PairRelay {
  s4u::MutexPtr lock = s4u::Mutex::create();
  s4u::ConditionVariablePtr changed = s4u::ConditionVariable::create();
  int owner = 0;  // the half whose turn it is (0: the forward)
  bool held = false;
  bool done[2] = {false, false};
};

struct Chip {
  int id = 0;
  ChipTimes times;
  bool traced = false;
  // Half of an overlapped pair (ChunkWork::joins_previous): its collectives use their own
  // mailboxes, its compute takes turns with the other half's (first come, DualPipeV's; or by the
  // relay, combined 1F1B's), and its layers run in blocks so the turns interleave.
  int stream = kMainStream;
  s4u::MutexPtr compute_turns;
  PairRelay* relay = nullptr;
  int half = 0;          // with a relay: 0 the forward, 1 the backward
  bool holding = false;  // with a relay: this half has the chip
  double host_waited = 0;  // with a relay: the device's waits for the host, the other half's to fill
  bool paired() const { return compute_turns != nullptr || relay != nullptr; }
};

void take_turn(Chip& c) {
  if (!c.relay || c.holding) return;
  PairRelay& r = *c.relay;
  const std::unique_lock<s4u::Mutex> hold(*r.lock);
  while (r.held || (r.owner != c.half && !r.done[1 - c.half])) r.changed->wait(hold);
  r.held = c.holding = true;
}

void give_turn(Chip& c, bool finished = false) {
  if (!c.relay) return;
  PairRelay& r = *c.relay;
  const std::unique_lock<s4u::Mutex> hold(*r.lock);
  if (c.holding) r.held = c.holding = false, r.owner = 1 - c.half;
  r.done[c.half] = r.done[c.half] || finished;
  r.changed->notify_all();
}

// Chip `id` as its main actor and side stream run it (traced where asked).
Chip chip_of(const World& w, int id) {
  Chip c;
  c.id = id, c.traced = w.traced[size_t(id)] != 0;
  return c;
}

void record(World& w, const Chip& c, Track track, std::string name, double start, int mb = -1, int chunk = -1) {
  if (!c.traced) return;
  w.result.events.push_back({c.id, track, std::move(name), start, s4u::Engine::get_clock() - start, mb, chunk});
}

// All flows of each phase start together; the phase ends when this chip's sends and receives are
// done, so a ring waits for its slowest neighbour as the real one does.
void run_collective(World& w, int chip, int stream, const CommCall& call, double scale) {
  for (const FlowPhase& phase : w.flows.phases(chip, call, scale)) {
    if (phase.extra_latency_s > 0) s4u::this_actor::sleep_for(phase.extra_latency_s);
    std::vector<s4u::CommPtr> comms;
    w.result.flows += double(phase.flows.size());
    for (size_t j = 0; j < phase.flows.size(); ++j) {
      const auto bytes = uint64_t(std::llround(phase.flows[j].bytes));
      if (w.fold.leaves_replica(chip, phase.flows[j].peer)) {  // no one receives: the mirror stands in
        comms.push_back(s4u::Comm::sendto_async(s4u::this_actor::get_host(), w.mirrors[chip][phase.level], bytes));
        continue;
      }
      comms.push_back(w.collective_box(phase.flows[j].peer, stream, call.group, phase.level, int(j))
                          ->put_async(&payload, bytes));
      comms.push_back(w.collective_box(chip, stream, call.group, phase.level, int(j))->get_async(&sink));
    }
    s4u::Comm::wait_all(comms);
  }
}

// Half of an overlapped pair takes the chip for a stretch of compute, which the other half's
// compute then waits for (its collectives do not). A relay's turn outlasts the stretch (PairRelay).
struct ComputeTurn {
  Chip& c;
  explicit ComputeTurn(Chip& chip) : c(chip) {
    if (c.compute_turns) c.compute_turns->lock();
    take_turn(c);
  }
  ~ComputeTurn() {
    if (c.compute_turns) c.compute_turns->unlock();
  }
};

// Compute for `seconds` (scaled by the chip's speed), inside a turn the caller holds; where ranks
// share cores, on one of them (the wait for it counts as compute, as in the closed form).
void computing(World& w, Chip& c, double seconds, double ChipTimes::*bucket, const char* name) {
  const double s = seconds * w.compute_factor[c.id];
  if (s <= 0) return;
  const double start = s4u::Engine::get_clock();
  if (w.cores) w.cores->acquire();
  c.times.core_wait_s += s4u::Engine::get_clock() - start;
  s4u::this_actor::sleep_for(s);
  if (w.cores) w.cores->release();
  c.times.*bucket += s4u::Engine::get_clock() - start;
  record(w, c, Track::compute, name, start);
}

void compute(World& w, Chip& c, double seconds, double ChipTimes::*bucket, const char* name) {
  if (seconds * w.compute_factor[c.id] <= 0) return;
  const ComputeTurn turn(c);
  computing(w, c, seconds, bucket, name);
}

// The device waiting for the host after a synchronisation (LayerPhase::host_wait_s): compute, as
// the closed form counts it, unless the other half of a pair can fill it.
void host_wait(World& w, Chip& c, double seconds) {
  if (seconds <= 0) return;
  give_turn(c);
  const double start = s4u::Engine::get_clock();
  s4u::this_actor::sleep_for(seconds);
  (c.relay ? c.host_waited : c.times.compute_s) += seconds;
  record(w, c, Track::compute, "host_sync", start);
}

// A phase's compute of n layers (`seconds`); with a context-parallel ring (LayerPhase::cp_ring) its
// attention runs while a helper actor passes the ring's K/V round, and what the transfers take
// beyond the attention is exposed communication. The phase's compute is one turn of an overlapped
// pair's, as without a ring.
void compute_beside_ring(World& w, Chip& c, const LayerPhase& phase, double seconds, int n,
                         double ChipTimes::*bucket, const char* name) {
  if (phase.cp_ring.empty()) return compute(w, c, seconds, bucket, name);
  const double attention = n * phase.attention_s;
  const s4u::SemaphorePtr done = s4u::Semaphore::create(0);
  {
    const ComputeTurn turn(c);
    computing(w, c, seconds - attention, bucket, name);
    const int stream = c.stream == kPairedBackwardStream ? kPairedRingStream : kRingStream;
    World* world = &w;
    const CommCall* ring = &phase.cp_ring;
    const int chip = c.id;
    s4u::Actor::create(std::string("ring").append(std::to_string(chip)), s4u::this_actor::get_host(),
                       [world, chip, stream, ring, n, done] {
                         run_collective(*world, chip, stream, *ring, n);
                         done->release();
                       });
    computing(w, c, attention, bucket, "attention");
  }
  const double start = s4u::Engine::get_clock();
  done->acquire();
  c.times.exposed_comm_s += s4u::Engine::get_clock() - start;
  record(w, c, Track::comm, "cp_ring", start);
}

void blocking_collective(World& w, Chip& c, const CommCall& call, double scale, const char* name) {
  if (call.empty()) return;
  // A relay's half keeps the chip through its collectives but its all-to-alls (PairRelay).
  if (call.group == CommGroup::ep) give_turn(c);
  else take_turn(c);
  const double start = s4u::Engine::get_clock();
  run_collective(w, c.id, c.stream, call, scale);
  c.times.exposed_comm_s += s4u::Engine::get_clock() - start;
  if (call.group == CommGroup::ep) c.times.all_to_all_s += s4u::Engine::get_clock() - start;
  record(w, c, Track::comm, name, start);
}

void stream_actor(World* w, int chip) {
  s4u::Actor::self()->daemonize();  // ends with the chip's main actor
  SideStream& s = w->streams[chip];
  Chip c = chip_of(*w, chip);
  for (;;) {
    s.todo->acquire();
    auto [call, scale] = std::move(s.queue.front());
    s.queue.pop_front();
    const double start = s4u::Engine::get_clock();
    run_collective(*w, chip, kSideStream, call, scale);
    record(*w, c, Track::stream, call.group == CommGroup::dp ? "dp_stream" : "stream", start);
    const std::unique_lock<s4u::Mutex> hold(*s.lock);
    ++s.finished;
    s.changed->notify_all();
  }
}

int submit(World& w, Chip& c, CommCall call, double scale) {
  SideStream& s = w.streams[c.id];
  s.queue.emplace_back(std::move(call), scale);
  s.todo->release();
  return ++s.submitted;
}

void wait_stream(World& w, Chip& c, int ticket) {
  SideStream& s = w.streams[c.id];
  const double start = s4u::Engine::get_clock();
  std::unique_lock<s4u::Mutex> hold(*s.lock);
  s.changed->wait(hold, [&] { return s.finished >= ticket; });
  c.times.exposed_comm_s += s4u::Engine::get_clock() - start;
}

void append(CommCall& to, const CommCall& from, double times) {
  if (from.empty() || times <= 0) return;
  to.group = from.group;
  for (CollectivePart p : from.parts) {
    p.times *= times;
    to.parts.push_back(p);
  }
}

// The side stream's calls, one per group in the order it runs them, the empty ones left out.
std::vector<CommCall> non_empty(CommCall side, CommCall experts, CommCall context = {}, CommCall tp = {}) {
  std::vector<CommCall> out;
  for (CommCall* c : {&tp, &context, &side, &experts})
    if (!c->empty()) out.push_back(std::move(*c));
  return out;
}

// The side stream's work beside layers [first, end) of a pass of `k.layers_per_chunk`: the hidden
// share of their own overlapped tensor-parallel collectives, their own K/V gathered (and, in
// backward, their gradients reduce-scattered) under context parallelism, the
// weights of the layers after them gathered and, in backward, the gradients of the layers before
// them reduce-scattered (or their data-parallel buckets, the experts' over their own group). One
// call per group, in the order the side stream runs them.
std::vector<CommCall> block_side_calls(const StepWork& k, bool forward, bool buckets, int first, int end) {
  const int layers = k.layers_per_chunk;
  CommCall side, experts, context, tp;
  append(tp, forward ? k.overlapped_tp_forward : k.overlapped_tp_backward, end - first);
  append(context, k.context_kv.gather(forward), end - first);
  if (!forward) append(context, k.context_kv.reduce_scatter, end - first);
  const int gathered = std::min(end + 1, layers) - (first + 1);
  append(side, k.fsdp_dense.gather(forward), gathered);
  append(experts, k.fsdp_experts.gather(forward), gathered);
  if (!forward) {
    const int reduced = (end - 1) - std::max(first - 1, 0);
    append(side, k.fsdp_dense.reduce_scatter, reduced);
    append(experts, k.fsdp_experts.reduce_scatter, reduced);
    if (buckets) append(side, k.grad_reduction, double(reduced) / layers);
    if (buckets) append(experts, k.expert_grad_reduction, double(reduced) / layers);
  }
  return non_empty(std::move(side), std::move(experts), std::move(context), std::move(tp));
}

// A pass's first layer's weight gathers (FSDP), one call per group.
std::vector<CommCall> first_gathers(const StepWork& k, bool forward) {
  return non_empty(k.fsdp_dense.gather(forward), k.fsdp_experts.gather(forward));
}

// A backward pass's last layer, reduced after it.
std::vector<CommCall> last_side_calls(const StepWork& k, bool buckets) {
  CommCall side, experts;
  append(side, k.fsdp_dense.reduce_scatter, 1);
  append(experts, k.fsdp_experts.reduce_scatter, 1);
  if (buckets) append(side, k.grad_reduction, 1.0 / k.layers_per_chunk);
  if (buckets) append(experts, k.expert_grad_reduction, 1.0 / k.layers_per_chunk);
  return non_empty(std::move(side), std::move(experts));
}

// Blocks a pass's layers run in: several when a side stream runs beside them, one per layer when
// the other half of an overlapped pair takes turns with them, else one.
int blocks_per_pass(const StepWork& k, bool streamed, bool paired) {
  if (paired) return k.layers_per_chunk;
  return streamed ? std::min(k.layers_per_chunk, kMaxBlocksPerPass) : 1;
}

// n layers' phase: their compute (`seconds`), then their blocking collectives, tensor-parallel ones
// first; a dropless layer's wait for the host comes right before its dispatch all-to-all (the
// dispatcher's wait for its split sizes).
struct PhaseNames {
  const char *compute, *tp, *etp, *ep;  // as the trace shows them
};
constexpr PhaseNames kForward{"forward", "tp_forward", "etp_forward", "ep_forward"};
constexpr PhaseNames kRecompute{"recompute", "tp_recompute", "etp_recompute", "ep_recompute"};
constexpr PhaseNames kBackward{"backward", "tp_backward", "etp_backward", "ep_backward"};
void layers_phase(World& w, Chip& c, const LayerPhase& p, double seconds, int n, double ChipTimes::*bucket,
                  const PhaseNames& names) {
  compute_beside_ring(w, c, p, seconds, n, bucket, names.compute);
  blocking_collective(w, c, p.tp, n, names.tp);
  blocking_collective(w, c, p.etp, n, names.etp);
  host_wait(w, c, n * p.host_wait_s);
  blocking_collective(w, c, p.ep, n, names.ep);
}

// One chunk's layers, forward or (recompute +) backward. With a side stream, beside layer i run
// the gather of the layer after it and, in backward, the reduce-scatter (or gradient bucket) of
// the layer before it; the first gather of a pass and the last reduction cannot hide.
void layer_pass(World& w, Chip& c, bool forward, bool buckets) {
  const StepWork& k = w.work;
  const int layers = k.layers_per_chunk;
  const bool streamed = k.side_calls_per_layer() || buckets;
  const int blocks = blocks_per_pass(k, streamed, c.paired());
  if (k.fsdp()) {  // the pass's first layer's weights: nothing to hide them behind
    int ticket = 0;
    for (CommCall& gather : first_gathers(k, forward)) ticket = submit(w, c, std::move(gather), 1.0);
    if (ticket) wait_stream(w, c, ticket);
  }
  for (int b = 0; b < blocks; ++b) {
    const int first = b * layers / blocks, end = (b + 1) * layers / blocks, n = end - first;
    int ticket = 0;  // calls finish in order: the last one's ticket waits for all
    if (streamed)
      for (CommCall& side : block_side_calls(k, forward, buckets, first, end)) ticket = submit(w, c, std::move(side), 1.0);
    if (forward) {
      layers_phase(w, c, k.forward, n * k.forward.compute_s, n, &ChipTimes::compute_s, kForward);
    } else {
      layers_phase(w, c, k.recompute, n * k.recompute.compute_s, n, &ChipTimes::recompute_s, kRecompute);
      layers_phase(w, c, k.backward, n * k.input_gradient_s(), n, &ChipTimes::compute_s, kBackward);
    }
    if (ticket) wait_stream(w, c, ticket);
  }
  if (!forward && streamed)  // the pass's last layer: reduced after it, waited for at step end
    for (CommCall& side : last_side_calls(k, buckets)) submit(w, c, std::move(side), 1.0);
}

// Waits for a neighbour stage's message: its transfer is communication, the rest is bubble.
void receive(World& w, Chip& c, bool forward, int chunk) {
  const double start = s4u::Engine::get_clock();
  w.pipe_box(c.id, forward, chunk)->get_async(&sink)->wait();
  const double waited = s4u::Engine::get_clock() - start;
  const double transfer = std::min(waited, w.work.p2p_s);
  c.times.exposed_comm_s += transfer;
  c.times.bubble_s += waited - transfer;
  record(w, c, Track::pipeline, forward ? "recv_activation" : "recv_gradient", start);
}

// A stack that paces every stage by the last (PlanOptions::pipeline_paced_by_last_stage): an
// earlier stage's slot lasts as long as the last stage's, whose logits and loss it waits out.
void pace_by_last_stage(World& w, Chip& c, double seconds) {
  const double s = seconds * w.compute_factor[c.id];
  if (!w.plan.options.pipeline_paced_by_last_stage || s <= 0) return;
  const double start = s4u::Engine::get_clock();
  s4u::this_actor::sleep_for(s);
  c.times.bubble_s += s;
  record(w, c, Track::pipeline, "paced_by_last_stage", start);
}

void send(World& w, int dst, bool forward, int chunk) {
  w.result.flows += 1;
  w.pipe_box(dst, forward, chunk)->put_init(&payload, uint64_t(std::llround(w.work.p2p_bytes)))->detach();
}

// The chip that runs virtual stage `v` in chip `c`'s pipeline, and the chunk it runs it as.
std::pair<int, int> chip_of_virtual(World& w, const Chip& c, int v) {
  const StageChunk at = stage_chunk(w.plan.layout.schedule, w.plan.layout.pp, v);
  ChipRank r = w.placement.rank(c.id);
  r.pp = at.stage;
  return {w.placement.chip(r), at.chunk};
}

// Messages between virtual stages on different chips; ZB-V's turn at the last stage stays on the
// chip and sends nothing.
bool on_another_chip(World& w, const Chip& c, int v) { return chip_of_virtual(w, c, v).first != c.id; }
void send_to_virtual(World& w, const Chip& c, int v, bool forward) {
  const auto [chip, chunk] = chip_of_virtual(w, c, v);
  if (chip != c.id) send(w, chip, forward, chunk);
}

// Pass `item`'s input: its forward's activation or its backward's gradient, unless this chip made
// it (the first virtual stage, the loss's backward, a V's turn).
void receive_input(World& w, Chip& c, const ChunkWork& item) {
  const Layout& l = w.plan.layout;
  if (item.weight) return;
  const int v = virtual_stage(l.schedule, l.pp, w.placement.rank(c.id).pp, item.chunk);
  const int from = item.forward ? v - 1 : v + 1;
  if (from >= 0 && from < l.pp * l.vpp && on_another_chip(w, c, from)) receive(w, c, item.forward, item.chunk);
}

void send_output(World& w, const Chip& c, const ChunkWork& item) {
  const Layout& l = w.plan.layout;
  if (item.weight) return;
  const int v = virtual_stage(l.schedule, l.pp, w.placement.rank(c.id).pp, item.chunk);
  const int to = item.forward ? v + 1 : v - 1;
  if (to >= 0 && to < l.pp * l.vpp) send_to_virtual(w, c, to, item.forward);
}

// Pass `item`'s work once its input is there: a chunk's layers, the logits and loss on the last
// virtual stage (or the wait for them, for a stack that paces every stage by it).
void pass_work(World& w, Chip& c, const ChunkWork& item, bool buckets) {
  const Layout& l = w.plan.layout;
  const int v = virtual_stage(l.schedule, l.pp, w.placement.rank(c.id).pp, item.chunk);
  const bool last = v == l.pp * l.vpp - 1;
  const double start = s4u::Engine::get_clock();
  if (item.weight) {  // a zero-bubble schedule's deferred weight gradients
    compute(w, c, w.work.layers_per_chunk * w.work.weight_gradient_s, &ChipTimes::compute_s, "weight_gradient");
    if (!c.paired()) record(w, c, Track::schedule, "W", start, item.microbatch, item.chunk);
    return;
  }
  if (item.forward) {
    layer_pass(w, c, true, false);
    if (last) compute(w, c, w.work.stage_end_forward_s, &ChipTimes::compute_s, "logits_loss");
    else pace_by_last_stage(w, c, w.work.stage_end_forward_s);
  } else {
    if (last) compute(w, c, w.work.stage_end_backward_s, &ChipTimes::compute_s, "logits_loss");
    else pace_by_last_stage(w, c, w.work.stage_end_backward_s);
    layer_pass(w, c, false, buckets);
  }
  // An overlapped pair's halves overlap: the pair is recorded as one (run_overlapped).
  if (!c.paired()) record(w, c, Track::schedule, item.forward ? "F" : "B", start, item.microbatch, item.chunk);
}

void run_chunk(World& w, Chip& c, const ChunkWork& item, bool buckets) {
  receive_input(w, c, item);
  pass_work(w, c, item, buckets);
  send_output(w, c, item);
}

// The backward half of an overlapped pair, on its own actor.
void paired_backward(World* w, Chip* half, ChunkWork item, s4u::SemaphorePtr done) {
  pass_work(*w, *half, item, false);
  give_turn(*half, true);
  done->release();
}

// An overlapped pair (ChunkWork::joins_previous): both inputs first, then the forward here and
// the backward on a second actor of this chip, their computes taking turns and each one's
// collectives running while the other computes; both outputs leave once both are done. Of the
// pair's time, what neither compute fills is exposed communication (or, for a paced stack,
// bubble); the all-to-alls keep their share of it.
void run_overlapped(World& w, Chip& c, const ChunkWork& forward, const ChunkWork& backward) {
  receive_input(w, c, forward);
  receive_input(w, c, backward);
  const double start = s4u::Engine::get_clock();
  // DualPipeV's halves take the chip first come (a mutex), combined 1F1B's by a relay.
  PairRelay relay;
  const bool relayed = w.work.combined_moe_pairs;
  const s4u::MutexPtr turns = relayed ? nullptr : s4u::Mutex::create();
  Chip f{c.id, {}, c.traced, kMainStream, turns}, b{c.id, {}, c.traced, kPairedBackwardStream, turns};
  if (relayed) f.relay = b.relay = &relay, b.half = 1;
  const s4u::SemaphorePtr done = s4u::Semaphore::create(0);
  s4u::Actor::create(std::string("pair").append(std::to_string(c.id)), s4u::this_actor::get_host(), paired_backward,
                     &w, &b, backward, done);
  pass_work(w, f, forward, false);
  give_turn(f, true);
  done->acquire();
  const double wall = s4u::Engine::get_clock() - start;
  const double computed = f.times.compute_s + b.times.compute_s + f.times.recompute_s + b.times.recompute_s;
  const double paced = f.times.bubble_s + b.times.bubble_s;
  const double comm = f.times.exposed_comm_s + b.times.exposed_comm_s;
  // Of the time neither compute fills, the waits for the host first (compute, as the closed form
  // counts them), then communication.
  const double idle = std::max(0.0, wall - computed - paced);
  const double host = std::min(idle, f.host_waited + b.host_waited);
  const double exposed = idle - host;
  c.times.compute_s += f.times.compute_s + b.times.compute_s + host;
  c.times.recompute_s += f.times.recompute_s + b.times.recompute_s;
  c.times.core_wait_s += f.times.core_wait_s + b.times.core_wait_s;
  c.times.bubble_s += std::max(0.0, std::min(paced, wall - computed));
  c.times.exposed_comm_s += exposed;
  if (comm > 0) c.times.all_to_all_s += (f.times.all_to_all_s + b.times.all_to_all_s) * std::min(1.0, exposed / comm);
  if (c.traced) w.result.events.push_back({c.id, Track::schedule, "F&B", start, wall, forward.microbatch, forward.chunk});
  send_output(w, c, forward);
  send_output(w, c, backward);
}

void chip_actor(World* w, int id) {
  const StepWork& k = w->work;
  Chip c = chip_of(*w, id);
  const bool side_stream = k.side_calls_per_layer() || k.buckets_in_backward;
  if (side_stream) {
    SideStream& s = w->streams[id];
    s.todo = s4u::Semaphore::create(0);
    s.lock = s4u::Mutex::create();
    s.changed = s4u::ConditionVariable::create();
    s4u::Actor::create(std::string("stream").append(std::to_string(id)), s4u::this_actor::get_host(), stream_actor, w, id);
  }
  const std::vector<ChunkWork>& schedule = k.stage_orders[size_t(w->placement.rank(id).pp)];
  const size_t last_backward = last_backward_pass(schedule);
  for (size_t i = 0; i < schedule.size(); ++i) {
    if (i + 1 < schedule.size() && schedule[i + 1].joins_previous) {  // pipelines only: no buckets in backward
      run_overlapped(*w, c, schedule[i], schedule[i + 1]);
      ++i;
      continue;
    }
    run_chunk(*w, c, schedule[i], k.buckets_in_backward && i == last_backward);
  }
  if (side_stream) wait_stream(*w, c, w->streams[id].submitted);
  for (const CommCall& call : k.after_backward) blocking_collective(*w, c, call, 1.0, "step_collective");
  compute(*w, c, k.optimizer_s, &ChipTimes::optimizer_s, "optimizer");
  for (const CommCall& call : k.after_optimizer) blocking_collective(*w, c, call, 1.0, "weights_allgather");
  c.times.finish_s = s4u::Engine::get_clock();
  w->result.chips[id] = c.times;
}

// Every pair of simulated chips the step sends between gets its route before the platform is
// sealed, and every flow that leaves the simulated replica its mirror.
void add_routes(World& w, const std::vector<int>& simulated, PlatformBuilder& platform) {
  for (int chip : simulated)
    for (int group = 0; group < kGroups; ++group)
      w.flows.for_each_peer(chip, CommGroup(group), [&](int peer, int level) {
        if (w.fold.leaves_replica(chip, peer)) w.mirrors[chip][level] = platform.mirror(chip, level);
        else platform.connect(chip, peer);
      });
  const Layout& l = w.plan.layout;
  if (l.pp == 1) return;
  for (int chip : simulated) {
    ChipRank r = w.placement.rank(chip);
    const int stage = r.pp;
    // Interleaved chunks also wrap from the last stage to the first and back; ZB-V's V turns back.
    for (int to : {stage + 1, stage - 1}) {
      if ((to < 0 || to >= l.pp) && l.schedule != Schedule::interleaved) continue;
      r.pp = (to + l.pp) % l.pp;
      platform.connect(chip, w.placement.chip(r));
    }
  }
}

// The flows chip `chip` sends in one step: the calls chip_actor, run_chunk and layer_pass issue,
// counted in the same order without running them (simulated_flows; the simulator's own count,
// SimulationResult::flows, checks this mirror in tests/sim_simgrid).
double chip_flows(const StepPlan& plan, const StepWork& k, const CollectiveFlows& flows, int chip, int stage) {
  auto count = [&](const CommCall& call, double scale) {
    double n = 0;
    for (const FlowPhase& phase : flows.phases(chip, call, scale)) n += double(phase.flows.size());
    return n;
  };
  auto pass = [&](bool forward, bool buckets, bool paired) {
    const int layers = k.layers_per_chunk;
    const bool streamed = k.side_calls_per_layer() || buckets;
    const int blocks = blocks_per_pass(k, streamed, paired);
    double n = 0;
    if (k.fsdp())
      for (const CommCall& gather : first_gathers(k, forward)) n += count(gather, 1.0);
    for (int b = 0; b < blocks; ++b) {
      const int first = b * layers / blocks, end = (b + 1) * layers / blocks, in_block = end - first;
      if (streamed)
        for (const CommCall& side : block_side_calls(k, forward, buckets, first, end)) n += count(side, 1.0);
      auto phase_flows = [&](const LayerPhase& p) {
        return count(p.tp, in_block) + count(p.ep, in_block) + count(p.etp, in_block) + count(p.cp_ring, in_block);
      };
      n += forward ? phase_flows(k.forward) : phase_flows(k.recompute) + phase_flows(k.backward);
    }
    if (!forward && streamed)
      for (const CommCall& side : last_side_calls(k, buckets)) n += count(side, 1.0);
    return n;
  };
  const Layout& l = plan.layout;
  const std::vector<ChunkWork>& schedule = k.stage_orders[size_t(stage)];
  const size_t last_backward = last_backward_pass(schedule);
  double n = 0;
  for (size_t i = 0; i < schedule.size(); ++i) {
    const ChunkWork& item = schedule[i];
    if (item.weight) continue;  // compute only
    const int v = virtual_stage(l.schedule, l.pp, stage, item.chunk);
    const bool first = v == 0, last = v == l.pp * l.vpp - 1;
    n += pass(item.forward, !item.forward && k.buckets_in_backward && i == last_backward, in_overlapped_pair(schedule, i));
    // The pipeline send, unless its receiver is this stage (ZB-V's turn).
    if (item.forward ? !last : !first)
      n += stage_chunk(l.schedule, l.pp, item.forward ? v + 1 : v - 1).stage != stage ? 1 : 0;
  }
  for (const CommCall& call : k.after_backward) n += count(call, 1.0);
  for (const CommCall& call : k.after_optimizer) n += count(call, 1.0);
  return n;
}

}  // namespace

ReplicaFold fold_for(const ChipPlacement& placement, const SimulationOptions& options) {
  return ReplicaFold(placement, options.fold_replicas, options.slow_chip < 0 && options.degrade.empty());
}

SimulationResult run_step_simulation(const StepPlan& plan, const StepWork& work,
                                     const ChipPlacement& placement, const SimulationOptions& options) {
  xbt_log_control_set("root.thresh:critical");  // the report is the output, not SimGrid's log
  int argc = 1;
  char program[] = "palmsim";
  char* argv[] = {program, nullptr};
  s4u::Engine engine(&argc, argv);
  // Datacenter fabrics: pure max-min sharing, no TCP factors, no reverse-path cross traffic.
  s4u::Engine::set_config("network/model:CM02");
  s4u::Engine::set_config("network/crosstraffic:0");
  // Actors keep little on their stacks; small stacks keep 12288 actors cheap.
  s4u::Engine::set_config("contexts/stack-size:256");

  const ReplicaFold fold = fold_for(placement, options);
  const std::vector<int> simulated = fold.simulated();
  World w{plan, work, placement, fold, CollectiveFlows(placement), {}, {}, {}, std::max(6, plan.layout.ep - 1),
          {}, {}, {}, {}, {}};
  const int n = placement.chips();
  w.mirrors.assign(size_t(n), {nullptr, nullptr});
  w.compute_factor.assign(n, 1.0);
  if (options.slow_chip >= 0) w.compute_factor[options.slow_chip] = 1.0 + options.slow_percent / 100.0;
  w.traced.assign(n, 0);
  for (int chip : options.trace_chips)
    if (chip >= 0 && chip < n) w.traced[size_t(fold.stand_in(chip))] = 1;
  w.pipe_boxes.assign(size_t(n) * 2 * plan.layout.vpp, nullptr);
  w.streams.resize(n);
  w.result.chips.resize(n);
  if (const System& sys = placement.system(); sys.ranks_share_cores(n))  // the simulated chips' share
    w.cores = s4u::Semaphore::create(unsigned(std::max<long>(1, std::lround(double(sys.shared_cores) * double(simulated.size()) / n))));

  PlatformBuilder platform(placement, simulated);
  add_routes(w, simulated, platform);
  platform.seal(options.degrade);
  for (int chip : simulated)
    s4u::Actor::create(std::string("chip").append(std::to_string(chip)), platform.host(chip), chip_actor, &w, chip);
  engine.run();
  // SimGrid stops when no activity can progress: a chip whose actor never reached the end of its
  // step (chip_actor writes its times last) was left waiting on a flow no one sends.
  const auto stuck = std::count_if(simulated.begin(), simulated.end(),
                                   [&](int chip) { return !(w.result.chips[size_t(chip)].finish_s > 0); });
  if (stuck > 0)
    throw std::runtime_error(fmt::format("the simulation deadlocked: {} of {} simulated chips never finished their "
                                         "step (a bug in palmsim's flows; please report it with the scenario)",
                                         stuck, simulated.size()));

  SimulationResult& r = w.result;
  r.simulated_chips = int64_t(simulated.size());
  r.unfolded_because = fold.unfolded_because();
  if (fold.folded()) {  // every chip's times and events are its stand-in's
    for (int chip = 0; chip < n; ++chip) r.chips[size_t(chip)] = r.chips[size_t(fold.stand_in(chip))];
    std::vector<TraceEvent> events;
    std::vector<char> seen(size_t(n), 0);
    for (int chip : options.trace_chips) {
      if (chip < 0 || chip >= n || seen[size_t(chip)]) continue;
      seen[size_t(chip)] = 1;
      for (const TraceEvent& e : r.events)
        if (e.chip == fold.stand_in(chip)) events.push_back(e), events.back().chip = chip;
    }
    r.events = std::move(events);
  }
  for (const ChipTimes& t : r.chips) r.step_time_s = std::max(r.step_time_s, t.finish_s);
  return std::move(w.result);
}

double simulated_flows(const StepPlan& plan, const StepWork& work, const ChipPlacement& placement,
                       const ReplicaFold& fold) {
  // Chips of one stage send alike (every group's rings have the same shape on each of its ranks):
  // one chip per stage stands for the stage's simulated chips.
  const CollectiveFlows flows(placement);
  const int pp = plan.layout.pp;
  double total = 0;
  for (int stage = 0; stage < pp; ++stage)
    total += chip_flows(plan, work, flows, placement.chip(ChipRank{0, 0, stage}), stage) * double(fold.actors() / pp);
  return total;
}

}  // namespace palmsim::simulation
