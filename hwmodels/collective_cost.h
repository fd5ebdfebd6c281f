#pragma once
// Closed-form collective costs (hwmodels/hardware.md, "Collective cost models"). n is the size of the
// full buffer in bytes (the all-reduce input, the all-gather output, the reduce-scatter input);
// bandwidths are per direction; latencies per step.
#include "model/collective_kind.h"

namespace palmsim {

// Ring over p ranks: all-reduce 2(p-1)a + 2(p-1)/p n/B; all-gather and reduce-scatter half that.
double ring_time(CollectiveKind kind, int p, double n, double bytes_per_s, double latency_s);

// Double binary tree all-reduce (NCCL): reduce up and broadcast down, pipelined, 2 log2(p) steps.
double tree_all_reduce_time(int p, double n, double bytes_per_s, double latency_s);

// One torus axis segment taken by a group: `length` ranks in a line; `wraps` when it closes a ring.
struct TorusSegment {
  int axis = 0;
  int length = 1;
  int stride = 1;  // distance between neighbouring ranks along the axis, in chips
  bool wraps = false;
};

// Bidirectional rings on every axis the group spans, all axes at once: the data is split over axes
// and directions. A closed ring moves n(p-1)/p per all-gather at 2B per axis; an open line (no
// wraparound) has half the usable bandwidth (about twice the time). A strided segment shares its
// links with the interleaved groups beside it: 1/stride of the bandwidth. All-reduce = RS + AG.
double torus_time(CollectiveKind kind, const TorusSegment* segments, int n_segments, double n,
                  double link_bytes_per_s, double link_latency_s);

// All-to-all over the segments (each rank sends n, 1/p of it to every rank): bound by the
// bisection of each axis. Dimension-order routing moves a rank's data along axis i by a uniform
// offset, on average L/4 hops round a ring (L/3 along a line), so the middle of a ring's L links
// carries n L / 8 each way (n L / 4 on a line, cut by one link); a strided segment shares its links
// with the stride - 1 groups beside it. Axes work at once: the slowest axis bounds, and the latency
// is the sum of the axes' diameters.
double torus_all_to_all_time(const TorusSegment* segments, int n_segments, double n, double link_bytes_per_s,
                             double link_latency_s);

// Two levels: g ranks per node, k nodes. Reduce-scatter inside the node, all-reduce across nodes on
// n/g bytes per rail, all-gather inside the node.
double hierarchical_time(CollectiveKind kind, int g, int k, double n, double intra_bytes_per_s,
                         double intra_latency_s, double inter_bytes_per_s, double inter_latency_s);

// An all-to-all that sends a token once to each node holding any of its experts (DeepEP's
// internode dispatch, TokenDispatch::per_rank), over g ranks a node and k nodes: through the
// sender's NIC to the rank on its rail in that node (`net`: the rank's buffer as the network sees
// it, (k - 1)/k of it leaving the node), then over NVLink to the node's ranks that hold the
// token's experts, so each rank's NVLink carries (g - 1)/g of its whole buffer n (its own node's
// share and what it forwards). Both move at once, as hierarchical_time's all-to-all.
double per_node_all_to_all_time(int g, int k, double n, double net, double intra_bytes_per_s,
                                double intra_latency_s, double inter_bytes_per_s, double inter_latency_s);

}  // namespace palmsim
