#include "sim/simgrid/collective_flows.h"

#include "hwmodels/comm_model.h"
#include "model/rank_order.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace palmsim::simulation {

namespace {

double passes(CollectiveKind kind) { return kind == CollectiveKind::all_reduce ? 2.0 : 1.0; }

// Sum over parts of passes * times * bytes: the data one rank's rings move, before the (p-1)/p.
double pass_bytes(const CommCall& call, double scale) {
  double v = 0;
  for (const auto& p : call.parts) v += passes(p.kind) * p.times * scale * p.bytes;
  return v;
}

}  // namespace

CollectiveFlows::CollectiveFlows(const ChipPlacement& placement) : placement_(placement) {}

int CollectiveFlows::group_size(CommGroup group) const {
  const Layout& l = placement_.layout();
  if (placement_.system().fabric != Fabric::tpu_torus) return megatron_group(group, l).size;
  // On TPU the data-parallel group is the pod's; pods are joined by the cross-pod group; expert
  // parallelism folds over one pod's data-parallel ranks (simulate refuses it over several).
  switch (group) {
    case CommGroup::tp: return l.tp;
    case CommGroup::pp: return l.pp;
    case CommGroup::dp: return l.dp_per_pod();
    case CommGroup::cp: return l.cp;
    case CommGroup::ep: return l.ep;
    case CommGroup::etp: return 1;  // CommModel refuses expert tensor parallelism on a torus
    case CommGroup::edp: return l.dp_per_pod() / l.ep;
    case CommGroup::cross_pod: return l.pods;
  }
  return 1;
}

TorusSegments CollectiveFlows::torus_segments(CommGroup group) const {
  if (group != CommGroup::ep && group != CommGroup::edp) return placement_.torus().segments(torus_group(group));
  TorusSegments ep, edp;  // placement_for refused layouts whose ep does not split the segments
  placement_.torus().split_expert_groups(placement_.layout().ep, ep, edp);
  return group == CommGroup::ep ? ep : edp;
}

std::vector<CollectiveFlows::Ring> CollectiveFlows::torus_rings(int chip, CommGroup group) const {
  std::vector<Ring> out;
  const ChipPlacement& pl = placement_;
  if (group == CommGroup::cross_pod) {
    if (pl.layout().pods > 1)
      out.push_back({0, {{pl.chip_at((pl.pod(chip) + 1) % pl.layout().pods, pl.coord(chip)), 1.0}}});
    return out;
  }
  const TorusSegments segs = torus_segments(group);
  if (group == CommGroup::ep) {
    // All-to-all: the members are the chips whose coordinates differ from this one's only in the
    // ep segments' digits (rank k of a segment sits at base + k * stride on its axis).
    std::vector<std::array<int, 3>> members{pl.coord(chip)};
    for (const auto& s : segs) {
      std::vector<std::array<int, 3>> more;
      for (const auto& m : members) {
        const int base = m[size_t(s.axis)] - (m[size_t(s.axis)] / s.stride) % s.length * s.stride;
        for (int k = 0; k < s.length; ++k) {
          auto d = m;
          d[size_t(s.axis)] = base + k * s.stride;
          more.push_back(d);
        }
      }
      members = std::move(more);
    }
    // Flow j goes to the member j + 1 places on, so it arrives on the receiver's slot j from the
    // member j + 1 places back (the order is the same for every member: it depends on the bases).
    const int p = int(members.size());
    const int self = int(std::find(members.begin(), members.end(), pl.coord(chip)) - members.begin());
    Ring all;
    for (int m = 1; m < p; ++m) all.out.push_back({pl.chip_at(pl.pod(chip), members[size_t((self + m) % p)]), 1.0 / p});
    if (!all.out.empty()) out.push_back(all);
    return out;
  }
  double total_weight = 0;  // the segments' usable bandwidths, in links (torus_time)
  for (const auto& s : segs) total_weight += (s.wraps ? 2.0 : 1.0) / s.stride;
  Ring ring;
  const auto c = pl.coord(chip);
  const int pod = pl.pod(chip);
  for (const auto& s : segs) {
    const double share = (1.0 / s.stride) / total_weight;
    auto at = [&](int v) {
      auto d = c;
      d[s.axis] = v;
      return pl.chip_at(pod, d);
    };
    if (s.wraps) {  // the group owns the whole axis (stride 1): a ring each way
      const int len = s.length;
      ring.out.push_back({at((c[s.axis] + 1) % len), share});
      ring.out.push_back({at((c[s.axis] + len - 1) % len), share});
    } else {  // an open line: one ring, the last rank sends back along the line to the first
      const int k = (c[s.axis] / s.stride) % s.length;
      const int next = k + 1 < s.length ? c[s.axis] + s.stride : c[s.axis] - (s.length - 1) * s.stride;
      ring.out.push_back({at(next), share});
    }
  }
  if (!ring.out.empty()) out.push_back(ring);
  return out;
}

std::vector<CollectiveFlows::Ring> CollectiveFlows::gpu_rings(int chip, CommGroup group) const {
  std::vector<Ring> out;
  const int size = group_size(group);
  if (size <= 1 || group == CommGroup::cross_pod) return out;
  const CommModel comm(placement_.system(), placement_.layout());
  const NodeSpread s = comm.spread(group);
  // On GPUs a chip's number is its rank in Megatron's order, and a group a slice of that order
  // (model/rank_order.h): member m of this chip's group is `stride` ranks per member away.
  const RankGroup g = megatron_group(group, placement_.layout());
  auto chip_of = [&](int m) { return group_peer(chip, g, m); };
  const int member = group_member(chip, g);
  if (group == CommGroup::ep) {  // all-to-all: a flow to every other member, an equal share each
    Ring all;
    for (int m = 1; m < size; ++m) all.out.push_back({chip_of((member + m) % size), 1.0 / size});
    out.push_back(all);
    return out;
  }
  // Members per_node consecutive ones share a node: ring inside it, then ring over nodes per rail.
  const int node = member / s.per_node, local = member % s.per_node;
  if (s.per_node > 1) out.push_back({0, {{chip_of(node * s.per_node + (local + 1) % s.per_node), 1.0}}});
  if (s.nodes > 1) out.push_back({1, {{chip_of(((node + 1) % s.nodes) * s.per_node + local), 1.0}}});
  return out;
}

std::vector<CollectiveFlows::Ring> CollectiveFlows::rings(int chip, CommGroup group) const {
  return placement_.system().fabric == Fabric::tpu_torus ? torus_rings(chip, group)
                                                          : gpu_rings(chip, group);
}

void CollectiveFlows::level_cost(CommGroup group, int level, const CommCall& call, double scale,
                                 double& volume, double& latency) const {
  const System& sys = placement_.system();
  const double n = pass_bytes(call, scale);
  double calls = 0;  // ring passes issued, for the per-step latency
  for (const auto& p : call.parts) calls += passes(p.kind) * p.times * scale;
  if (sys.fabric == Fabric::tpu_torus) {
    const int p = group_size(group);
    if (group == CommGroup::cross_pod) {
      volume = n * (p - 1) / p;
      latency = std::max(0.0, calls * (p - 1) - 1) * sys.torus.dcn_latency_s;
      return;
    }
    double steps = 0;
    for (const auto& s : torus_segments(group)) steps += s.wraps ? s.length / 2.0 : s.length - 1.0;
    // An all-to-all sends the whole buffer, 1/p of it to each peer (the flows' shares); a ring
    // phase moves (p - 1)/p of it.
    volume = group == CommGroup::ep ? n : n * (p - 1) / p;
    latency = std::max(0.0, calls * steps - 1) * sys.torus.link_latency_s;
    return;
  }
  const FatTreeFabric& f = sys.fat_tree;
  const NodeSpread s = CommModel(sys, placement_.layout()).spread(group);
  if (group == CommGroup::ep) {
    // All-to-all (collective_cost.cpp): the whole buffer, 1/p of it to each peer (the flows'
    // shares); latency of (g - 1) NVLink and (k - 1) network steps per call, one carried by a flow.
    volume = n;
    const double steps = (s.per_node - 1) * f.nvlink_latency_s + (s.nodes - 1) * f.net_latency_s;
    latency = std::max(0.0, calls * steps - (s.nodes > 1 ? f.net_latency_s : f.nvlink_latency_s));
    return;
  }
  if (level == 0) {
    volume = n * (s.per_node - 1) / s.per_node;
    latency = std::max(0.0, calls * (s.per_node - 1) - 1) * f.nvlink_latency_s;
    return;
  }
  // Across nodes each member carries its 1/per_node share. NCCL's tree all-reduce has the ring's
  // bandwidth term but log-depth latency; it picks whichever is faster.
  const int k = s.nodes;
  volume = n / s.per_node * (k - 1) / k;
  double steps = 0;
  for (const auto& p : call.parts) {
    const double ring = passes(p.kind) * (k - 1);
    const double tree = 2.0 * std::ceil(std::log2(double(k)));
    steps += p.times * scale * (p.kind == CollectiveKind::all_reduce ? std::min(ring, tree) : ring);
  }
  latency = std::max(0.0, steps - 1) * f.net_latency_s;
}

std::function<double(int, double)> CollectiveFlows::flow_shares(int chip, const CommCall& call) const {
  const PerRankRouting routing = call.parts.front().routing;
  const System& sys = placement_.system();
  if (call.group != CommGroup::ep || !routing.active() || sys.fabric != Fabric::gpu_fat_tree)
    return [](int, double share) { return share; };
  const NodeSpread s = CommModel(sys, placement_.layout()).spread(CommGroup::ep);
  if (s.nodes <= 1) return [](int, double share) { return share; };
  // A per-rank dispatch across nodes (per_node_all_to_all_time): a rank's NVLink carries (g - 1)/g
  // of its buffer, 1/g to each rank of its node; its NIC the network's share, 1/(g k) of it to each
  // rank elsewhere (a chip's number is its Megatron rank, nodes hold consecutive ranks).
  const int g = sys.fat_tree.gpus_per_node;
  const double on_node = 1.0 / s.per_node, off_node = per_node_network_share(routing, s) / (s.per_node * s.nodes);
  return [=](int peer, double) { return peer / g == chip / g ? on_node : off_node; };
}

std::vector<FlowPhase> CollectiveFlows::phases(int chip, const CommCall& call, double scale) const {
  std::vector<FlowPhase> out;
  if (call.empty()) return out;
  const auto share_of = flow_shares(chip, call);
  for (const Ring& ring : rings(chip, call.group)) {
    double volume = 0, latency = 0;
    level_cost(call.group, ring.level, call, scale, volume, latency);
    if (volume <= 0) continue;
    FlowPhase phase;
    phase.level = ring.level;
    phase.extra_latency_s = latency;
    for (const auto& [peer, share] : ring.out) phase.flows.push_back({peer, volume * share_of(peer, share)});
    out.push_back(std::move(phase));
  }
  // On GPUs each NCCL call also pays its base latency once, whatever the algorithm, as the closed
  // form charges it (CommModel::gpu_collective): carried by the call's first phase.
  const System& sys = placement_.system();
  if (!out.empty() && sys.fabric == Fabric::gpu_fat_tree) {
    double calls = 0;
    for (const auto& p : call.parts) calls += p.times * scale;
    out.front().extra_latency_s += calls * sys.fat_tree.collective_base_latency_s;
  }
  return out;
}

void CollectiveFlows::for_each_peer(int chip, CommGroup group, const std::function<void(int, int)>& fn) const {
  if (group_size(group) <= 1) return;
  for (const Ring& ring : rings(chip, group))
    for (const auto& [peer, share] : ring.out) fn(peer, ring.level);
}

}  // namespace palmsim::simulation
