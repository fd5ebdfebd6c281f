#include "hwmodels/collective_cost.h"

#include <algorithm>
#include <cmath>

namespace palmsim {

namespace {
// Passes over the data a collective makes relative to one all-gather.
double passes(CollectiveKind kind) { return kind == CollectiveKind::all_reduce ? 2.0 : 1.0; }
}  // namespace

double ring_time(CollectiveKind kind, int p, double n, double bw, double latency) {
  if (p <= 1 || n <= 0) return 0.0;
  const double steps = passes(kind) * (p - 1);
  return steps * latency + passes(kind) * (p - 1) / double(p) * n / bw;
}

double tree_all_reduce_time(int p, double n, double bw, double latency) {
  if (p <= 1 || n <= 0) return 0.0;
  return 2.0 * std::ceil(std::log2(double(p))) * latency + 2.0 * n / bw * (p - 1) / double(p);
}

double torus_time(CollectiveKind kind, const TorusSegment* segs, int n_segs, double n, double bw,
                  double latency) {
  int p = 1;
  double usable_bw = 0.0;  // bytes/s the group can push, all axes and directions together
  double steps = 0.0;
  for (int i = 0; i < n_segs; ++i) {
    if (segs[i].length <= 1) continue;
    p *= segs[i].length;
    // Ranks `stride` chips apart: each hop crosses `stride` links, which the stride - 1 interleaved
    // groups on the same axis use too, so each gets 1/stride of them.
    usable_bw += (segs[i].wraps ? 2.0 * bw : bw) / segs[i].stride;
    // A bidirectional ring halves the steps; an open line needs length - 1 steps end to end.
    steps += segs[i].wraps ? segs[i].length / 2.0 : segs[i].length - 1.0;
  }
  if (p <= 1 || n <= 0) return 0.0;
  return passes(kind) * (steps * latency + (p - 1) / double(p) * n / usable_bw);
}

double torus_all_to_all_time(const TorusSegment* segs, int n_segs, double n, double bw, double latency) {
  double slowest = 0.0, hops = 0.0;
  for (int i = 0; i < n_segs; ++i) {
    const TorusSegment& s = segs[i];
    if (s.length <= 1) continue;
    slowest = std::max(slowest, n * s.length * s.stride / ((s.wraps ? 8.0 : 4.0) * bw));
    hops += s.wraps ? s.length / 2.0 : s.length - 1.0;
  }
  return slowest > 0 ? slowest + hops * latency : 0.0;
}

double hierarchical_time(CollectiveKind kind, int g, int k, double n, double intra_bw,
                         double intra_lat, double inter_bw, double inter_lat) {
  if (k <= 1) return ring_time(kind, g, n, intra_bw, intra_lat);
  if (g <= 1) return ring_time(kind, k, n, inter_bw, inter_lat);
  switch (kind) {
    case CollectiveKind::all_reduce:
      return ring_time(CollectiveKind::reduce_scatter, g, n, intra_bw, intra_lat) +
             ring_time(CollectiveKind::all_reduce, k, n / g, inter_bw, inter_lat) +
             ring_time(CollectiveKind::all_gather, g, n, intra_bw, intra_lat);
    case CollectiveKind::reduce_scatter:
    case CollectiveKind::all_gather:
      // Inside the node over the full buffer, across nodes on each rail's n/g share.
      return ring_time(kind, g, n, intra_bw, intra_lat) + ring_time(kind, k, n / g, inter_bw, inter_lat);
    case CollectiveKind::all_to_all:
      // A rank's buffer n goes 1/(g k) to each member: (g-1)/(g k) of it over NVLink to the rest of
      // its node, (k-1)/k through its own NIC to the other nodes (NCCL's PXN may first move a chunk
      // over NVLink to the rank on the destination's rail, but every NIC still carries one rank's
      // share). NCCL runs it as one group of concurrent sends and receives, so the NVLink and the
      // NIC shares move at the same time.
      return std::max(ring_time(kind, g, n / k, intra_bw, intra_lat), ring_time(kind, k, n, inter_bw, inter_lat));
  }
  return 0.0;
}

double per_node_all_to_all_time(int g, int k, double n, double net, double intra_bw, double intra_lat,
                                double inter_bw, double inter_lat) {
  return std::max(ring_time(CollectiveKind::all_to_all, g, n, intra_bw, intra_lat),
                  ring_time(CollectiveKind::all_to_all, k, net, inter_bw, inter_lat));
}

}  // namespace palmsim
