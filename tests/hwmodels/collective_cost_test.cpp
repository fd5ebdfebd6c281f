// Collective costs against hand calculations from hwmodels/hardware.md's formulas.
#include "hwmodels/collective_cost.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

TEST(CollectiveCost, RingAllReduceByHand) {
  // 8 ranks, 1 GB, 100 GB/s, 5 us: 2*7*5us + 2*7/8 * 1e9/1e11 s = 70 us + 17.5 ms.
  EXPECT_NEAR(ring_time(CollectiveKind::all_reduce, 8, 1e9, 100e9, 5e-6), 70e-6 + 17.5e-3, 1e-12);
  // All-gather: half of it.
  EXPECT_NEAR(ring_time(CollectiveKind::all_gather, 8, 1e9, 100e9, 5e-6), 35e-6 + 8.75e-3, 1e-12);
  EXPECT_EQ(ring_time(CollectiveKind::all_reduce, 1, 1e9, 100e9, 5e-6), 0.0);
}

TEST(CollectiveCost, BusBandwidthDefinitionOfNcclTests) {
  // nccl-tests: busbw = algbw * 2(p-1)/p for all-reduce. A ring at link rate B has busbw = B.
  const int p = 8;
  const double n = 4e9, bw = 235e9;
  const double t = ring_time(CollectiveKind::all_reduce, p, n, bw, 0.0);
  EXPECT_NEAR(n / t * 2.0 * (p - 1) / p, bw, 1e-3);
}

TEST(CollectiveCost, TorusAxisWithWraparoundIsTwiceAsFastAsALine) {
  // One axis of 16 chips at 45 GB/s per direction, 1 GB all-gather, no latency:
  // closed ring (bidirectional): 15/16 * 1e9 / (2 * 45e9); open line: twice that.
  TorusSegment ring{0, 16, 1, true}, line{0, 16, 1, false};
  EXPECT_NEAR(torus_time(CollectiveKind::all_gather, &ring, 1, 1e9, 45e9, 0.0), 15.0 / 16 * 1e9 / 90e9, 1e-12);
  EXPECT_NEAR(torus_time(CollectiveKind::all_gather, &line, 1, 1e9, 45e9, 0.0), 15.0 / 16 * 1e9 / 45e9, 1e-12);
  // All-reduce = reduce-scatter + all-gather.
  EXPECT_NEAR(torus_time(CollectiveKind::all_reduce, &ring, 1, 1e9, 45e9, 0.0), 2 * 15.0 / 16 * 1e9 / 90e9, 1e-12);
}

TEST(CollectiveCost, SeveralAxesAtOnceDivideTheBandwidthTerm) {
  // 16 x 16 with wraparound: p = 256, bandwidth 2 axes * 2 directions * 45 GB/s.
  TorusSegment segs[2] = {{0, 16, 1, true}, {1, 16, 1, true}};
  EXPECT_NEAR(torus_time(CollectiveKind::all_gather, segs, 2, 1e9, 45e9, 0.0), 255.0 / 256 * 1e9 / 180e9, 1e-12);
  // A strided segment shares its links with the interleaved groups: 1/stride of them.
  TorusSegment strided{0, 4, 4, false};
  EXPECT_NEAR(torus_time(CollectiveKind::all_gather, &strided, 1, 1e9, 45e9, 0.0), 3.0 / 4 * 1e9 / (45e9 / 4), 1e-12);
}

TEST(CollectiveCost, HierarchicalAllReduceByHand) {
  // 4 nodes of 8 GPUs, 1 GB: intra reduce-scatter 7/8 GB at 200 GB/s, inter all-reduce of 1/8 GB
  // over 4 nodes at 20 GB/s (2*3/4*0.125/20), intra all-gather 7/8 GB at 200 GB/s.
  const double expected = 7.0 / 8 * 1e9 / 200e9 + 2 * 3.0 / 4 * 0.125e9 / 20e9 + 7.0 / 8 * 1e9 / 200e9;
  EXPECT_NEAR(hierarchical_time(CollectiveKind::all_reduce, 8, 4, 1e9, 200e9, 0, 20e9, 0), expected, 1e-12);
  // One node: plain ring over NVLink.
  EXPECT_DOUBLE_EQ(hierarchical_time(CollectiveKind::all_reduce, 8, 1, 1e9, 200e9, 1e-6, 20e9, 1e-5),
                   ring_time(CollectiveKind::all_reduce, 8, 1e9, 200e9, 1e-6));
}

TEST(CollectiveCost, HierarchicalAllToAllByHand) {
  // 8 nodes of 8 GPUs (expert parallelism 64), 1 GB send buffer per rank: 1/64 GB to each member;
  // 7/64 GB to the node's other 7 ranks over NVLink at 200 GB/s, 56/64 GB to the other nodes'
  // 56 ranks through the rank's own NIC at 20 GB/s (which bounds it, as nccl-tests' all-to-all
  // busbw stays near one NIC's rate across nodes); both shares move at once, so the NIC's bounds it.
  EXPECT_NEAR(hierarchical_time(CollectiveKind::all_to_all, 8, 8, 1e9, 200e9, 0, 20e9, 0), 56.0 / 64 * 1e9 / 20e9, 1e-12);
  // With a slow NVLink the node's share is the longer one.
  EXPECT_NEAR(hierarchical_time(CollectiveKind::all_to_all, 8, 8, 1e9, 1e9, 0, 20e9, 0), 7.0 / 64 * 1e9 / 1e9, 1e-12);
}

TEST(CollectiveCost, PerNodeAllToAllByHand) {
  // 8 nodes of 8 GPUs, 1 GB per rank, of which the network sees 0.8 GB (a token once per node):
  // 7/8 of 0.8 GB through the NIC at 20 GB/s; over NVLink the node's share and what the rank
  // forwards from other nodes, 7/8 of the whole 1 GB at 200 GB/s. The NIC bounds it.
  EXPECT_NEAR(per_node_all_to_all_time(8, 8, 1e9, 0.8e9, 200e9, 0, 20e9, 0), 7.0 / 8 * 0.8e9 / 20e9, 1e-12);
  EXPECT_NEAR(per_node_all_to_all_time(8, 8, 1e9, 0.8e9, 2e9, 0, 20e9, 0), 7.0 / 8 * 1e9 / 2e9, 1e-12);
  // Latencies as the rings': (g - 1) NVLink steps, (k - 1) network ones, the longer side counts.
  EXPECT_NEAR(per_node_all_to_all_time(4, 2, 0, 0, 1, 1e-6, 1, 1e-5), 0.0, 1e-15);  // nothing to send
  EXPECT_NEAR(per_node_all_to_all_time(4, 2, 1e3, 1e3, 1e12, 1e-6, 1e12, 1e-5), 1e-5 + 0.5 * 1e3 / 1e12, 1e-12);
}

TEST(CollectiveCost, TorusAllToAllIsBisectionBound) {
  // A ring of 16 (wraparound), 1 GB per rank at 45 GB/s per link and direction: the cut through
  // the ring is crossed by 16/2 ranks x 1/2 GB = 4 GB each way over 2 links: n L / 8 / B; 8 hops.
  TorusSegment ring{0, 16, 1, true};
  EXPECT_NEAR(torus_all_to_all_time(&ring, 1, 1e9, 45e9, 1e-6), 16.0 / 8 * 1e9 / 45e9 + 8 * 1e-6, 1e-12);
  // A line of 4 (no wraparound): one link at the cut, n L / 4 / B; 3 hops. Strided by 4: 4x.
  TorusSegment line{1, 4, 1, false}, strided{1, 4, 4, false};
  EXPECT_NEAR(torus_all_to_all_time(&line, 1, 1e9, 45e9, 0), 1e9 / 45e9, 1e-12);
  EXPECT_NEAR(torus_all_to_all_time(&strided, 1, 1e9, 45e9, 0), 4e9 / 45e9, 1e-12);
  // Both at once: the slower axis bounds (the 16-ring, 2 n / B, against the line's n / B).
  TorusSegment both[2] = {ring, line};
  EXPECT_NEAR(torus_all_to_all_time(both, 2, 1e9, 45e9, 0), 2e9 / 45e9, 1e-12);
  // Growing with the longest axis, unlike a ring all-gather's (p - 1) / p: 64 on one ring is 4x 16.
  TorusSegment long_ring{0, 64, 1, true};
  EXPECT_NEAR(torus_all_to_all_time(&long_ring, 1, 1e9, 45e9, 0), 4 * torus_all_to_all_time(&ring, 1, 1e9, 45e9, 0), 1e-12);
}

TEST(CollectiveCost, TreeAllReduceLatencyGrowsWithLogOfRanks) {
  // 1024 ranks, tiny message: 2 * log2(1024) = 20 steps of 10 us.
  EXPECT_NEAR(tree_all_reduce_time(1024, 1.0, 1e12, 10e-6), 200e-6, 1e-9);
}

}  // namespace
}  // namespace palmsim
