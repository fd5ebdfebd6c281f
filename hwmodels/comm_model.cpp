#include "hwmodels/comm_model.h"

#include "model/input_error.h"
#include "model/rank_order.h"

#include <algorithm>
#include <string>

namespace palmsim {

namespace {

// On GPU nodes, Megatron's rank order (tp fastest, then cp, then dp) tiles the nodes only when each
// prefix of it (tp, tp x cp, tp x cp x dp) divides a node's GPUs or is a multiple of them; tp 12
// on 8-GPU nodes would put one tensor-parallel group across a node boundary at an odd place.
// The MoE layers' order starts with etp, which must tile the nodes the same way.
// Returns the first group that breaks it ("" when none does).
std::string group_off_node_boundary(const System& s, const Layout& l) {
  if (s.fabric != Fabric::gpu_fat_tree) return "";
  const int64_t g = s.fat_tree.gpus_per_node;
  const std::pair<const char*, int64_t> prefixes[] = {
      {"tp", l.tp}, {"cp", int64_t(l.tp) * l.cp}, {"dp", int64_t(l.tp) * l.cp * l.dp}, {"etp", l.etp}};
  for (const auto& [group, ranks] : prefixes)
    if (ranks <= g ? g % ranks != 0 : ranks % g != 0) return group;
  return "";
}

}  // namespace

bool layout_fits_system(const System& s, const Layout& l) {
  if (!group_off_node_boundary(s, l).empty()) return false;
  if (s.fabric != Fabric::tpu_torus) return l.pods == 1;
  TorusMapping m;
  TorusSegments ep, edp;
  return l.cp == 1 && l.etp == 1 && map_groups_on_torus(s.torus, s.max_chips_per_pod, l.tp, l.pp, l.dp_per_pod(), m) &&
         (l.ep == 1 || m.split_expert_groups(l.ep, ep, edp));
}

CommModel::CommModel(const System& system, const Layout& layout, const Calibration* calibration)
    : system_(stack_adjusted(system)), layout_(layout), calibration_(calibration) {
  if (system.fabric != Fabric::tpu_torus) {
    if (layout.pods != 1)
      throw InputError("layout.pods", "must be 1 on " + system.name +
                                          "; pods are TPU pods joined by the data-center network");
    if (const std::string group = group_off_node_boundary(system, layout); !group.empty())
      throw InputError("layout." + group,
                       "its ranks and those before it in Megatron's order (tp, cp, dp) must divide the " +
                           std::to_string(system.fat_tree.gpus_per_node) + " GPUs of a " + system.name +
                           " node or be a multiple of them");
    return;
  }
  if (layout.cp > 1)
    throw InputError("layout.cp", "context parallelism on " + system.name + " is not modelled yet (GPU clusters only)");
  if (!map_groups_on_torus(system.torus, system.max_chips_per_pod, layout.tp, layout.pp,
                           layout.dp_per_pod(), torus_)) {
    throw InputError("layout", "no " + system.name + " slice of " +
                                   std::to_string(layout.chips() / layout.pods) +
                                   " chips per pod holds tp=" + std::to_string(layout.tp) +
                                   ", pp=" + std::to_string(layout.pp) + ", dp per pod=" +
                                   std::to_string(layout.dp_per_pod()) +
                                   " (axes must be <= 4 or multiples of 4, at most " +
                                   std::to_string(system.torus.max_axis) + " long, and at most " +
                                   std::to_string(system.max_chips_per_pod) + " chips per pod)");
  }
  if (layout.etp > 1)
    throw InputError("layout.etp", "expert tensor parallelism on " + system.name +
                                       " is not modelled (GPU clusters only): experts are whole on a TPU torus");
  if (layout.ep > 1 && layout.tp > 1)
    throw InputError("layout.tp", "on a TPU torus, expert parallelism folds over the data-parallel axes only: "
                                  "a mixture-of-experts model needs tp = 1 there");
  if (layout.ep > 1 && !torus_.split_expert_groups(layout.ep, ep_segments_, edp_segments_))
    throw InputError("layout.ep", "expert parallelism folds over the data-parallel torus axes, lowest first: ep=" +
                                      std::to_string(layout.ep) + " must take whole ones and divide the next");
}

double per_node_network_share(PerRankRouting routing, NodeSpread s) {
  return groups_per_token(routing.experts, routing.top_k, s.nodes) /
         groups_per_token(routing.experts, routing.top_k, s.nodes * s.per_node);
}

NodeSpread CommModel::spread(CommGroup group) const {
  // The group's members in Megatron's order (model/rank_order.h): `stride` ranks apart, so as many
  // share a node as fit in its GPUs.
  const RankGroup r = megatron_group(group, layout_);
  const int g = system_.fat_tree.gpus_per_node;
  const int per_node = r.stride >= g ? 1 : std::min(r.size, g / r.stride);
  return NodeSpread{per_node, r.size / per_node};
}

double CommModel::gpu_collective(NodeSpread s, CollectiveKind kind, double bytes, PerRankRouting routing) const {
  const FatTreeFabric& f = system_.fat_tree;
  const double intra = f.nvlink_bytes_per_s * f.nvlink_efficiency;
  double inter = f.nic_bytes_per_s * f.nic_efficiency;
  // Beyond one leaf group, traffic crosses the spine and shares its oversubscribed uplinks.
  if (s.nodes > f.nodes_per_leaf) inter /= f.oversubscription;
  const bool per_node = kind == CollectiveKind::all_to_all && routing.active() && s.nodes > 1;
  const double ring =
      per_node ? per_node_all_to_all_time(s.per_node, s.nodes, bytes, bytes * per_node_network_share(routing, s),
                                          intra, f.nvlink_latency_s, inter, f.net_latency_s)
               : hierarchical_time(kind, s.per_node, s.nodes, bytes, intra, f.nvlink_latency_s, inter, f.net_latency_s);
  // One NCCL call pays its base latency once, whatever the algorithm (NCCL's tuning model).
  const double base = s.per_node * s.nodes > 1 ? f.collective_base_latency_s : 0.0;
  if (kind != CollectiveKind::all_reduce || s.nodes == 1) return base + ring;
  // NCCL picks a double binary tree across nodes when its log-depth latency beats the ring's
  // linear one: inside the node reduce-scatter and all-gather as before, the tree between nodes.
  const double tree =
      ring_time(CollectiveKind::reduce_scatter, s.per_node, bytes, intra, f.nvlink_latency_s) +
      tree_all_reduce_time(s.nodes, bytes / s.per_node, inter, f.net_latency_s) +
      ring_time(CollectiveKind::all_gather, s.per_node, bytes, intra, f.nvlink_latency_s);
  return base + std::min(ring, tree);
}

double CommModel::single_machine_collective(CommGroup group, CollectiveKind kind, double bytes) const {
  const int ranks = megatron_group(group, layout_).size;
  if (ranks <= 1) return 0.0;
  if (calibration_) {
    const double measured = calibration_->collective_seconds(to_string(kind), ranks, bytes);
    if (measured >= 0) return measured;
  }
  // Unmeasured: a ring through memory, each step reading and writing its share.
  const double rate = system_.chip.hbm_bytes_per_s * system_.chip.memory_efficiency / 2.0;
  return ring_time(kind, ranks, bytes, rate, 1e-6);
}

double CommModel::collective_seconds(CommGroup group, CollectiveKind kind, double bytes, PerRankRouting routing) const {
  if (system_.fabric == Fabric::gpu_fat_tree) return gpu_collective(spread(group), kind, bytes, routing);
  if (system_.fabric == Fabric::single_machine) return single_machine_collective(group, kind, bytes);
  const TorusFabric& f = system_.torus;
  if (group == CommGroup::cross_pod) {
    // Each host aggregates its chips' shards and rings with its peers in the other pods.
    return ring_time(kind, layout_.pods, bytes * f.chips_per_host, f.dcn_bytes_per_s_per_host,
                     f.dcn_latency_s);
  }
  const double bw = f.link_bytes_per_s * f.collective_efficiency;
  if (group == CommGroup::ep)  // bisection-bound (collective_cost.h), whatever the kind
    return torus_all_to_all_time(ep_segments_.data(), int(ep_segments_.size()), bytes, bw, f.link_latency_s);
  if (group == CommGroup::edp)
    return torus_time(kind, edp_segments_.data(), int(edp_segments_.size()), bytes, bw, f.link_latency_s);
  const auto segs = torus_.segments(torus_group(group));
  return torus_time(kind, segs.data(), int(segs.size()), bytes, bw, f.link_latency_s);
}

double CommModel::p2p_seconds(double bytes) const {
  if (system_.fabric == Fabric::single_machine)
    return bytes / (system_.chip.hbm_bytes_per_s * system_.chip.memory_efficiency / 2.0);
  if (system_.fabric == Fabric::gpu_fat_tree) {
    const FatTreeFabric& f = system_.fat_tree;
    const NodeSpread s = spread(CommGroup::pp);
    if (s.per_node > 1) return f.nvlink_latency_s + bytes / (f.nvlink_bytes_per_s * f.nvlink_efficiency);
    return f.net_latency_s + bytes / (f.nic_bytes_per_s * f.nic_efficiency);
  }
  // Neighbouring stages are one ICI hop apart.
  return system_.torus.link_latency_s + bytes / system_.torus.link_bytes_per_s;
}

}  // namespace palmsim
