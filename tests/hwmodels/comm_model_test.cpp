// Placement of groups on GPU clusters and the resulting costs.
#include "hwmodels/collective_cost.h"
#include "hwmodels/comm_model.h"
#include "model/input_error.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace palmsim {
namespace {

TEST(CommModel, MegatronRankOrderOnDgxNodes) {
  const System s = system_preset("a100-80g-dgx");
  Layout l;
  l.tp = 2, l.pp = 4, l.dp = 16;  // 128 GPUs, 16 nodes
  const CommModel c(s, l);
  EXPECT_EQ(c.spread(CommGroup::tp).per_node, 2);
  EXPECT_EQ(c.spread(CommGroup::tp).nodes, 1);
  // dp ranks are tp = 2 apart: 4 of them share a node, 4 nodes.
  EXPECT_EQ(c.spread(CommGroup::dp).per_node, 4);
  EXPECT_EQ(c.spread(CommGroup::dp).nodes, 4);
  // pp ranks are tp*dp = 32 apart: each in its own node.
  EXPECT_EQ(c.spread(CommGroup::pp).per_node, 1);
  EXPECT_EQ(c.spread(CommGroup::pp).nodes, 4);
}

// With context parallelism (Megatron order tp, cp, dp, pp): tp 2, cp 2, dp 8, pp 2 on 64 GPUs.
TEST(CommModel, ContextParallelRanksSitBetweenTensorAndDataParallel) {
  const System s = system_preset("h100-80g-dgx");
  Layout l;
  l.tp = 2, l.cp = 2, l.dp = 8, l.pp = 2;
  const CommModel c(s, l);
  // cp ranks are tp = 2 apart: both in one node.
  EXPECT_EQ(c.spread(CommGroup::cp).per_node, 2);
  EXPECT_EQ(c.spread(CommGroup::cp).nodes, 1);
  // The weights' replicas are dp x cp = 16 ranks, 2 apart: 4 per node over 4 nodes.
  EXPECT_EQ(c.spread(CommGroup::dp).per_node, 4);
  EXPECT_EQ(c.spread(CommGroup::dp).nodes, 4);
  // pp ranks are tp*cp*dp = 32 apart.
  EXPECT_EQ(c.spread(CommGroup::pp).per_node, 1);
  EXPECT_EQ(c.spread(CommGroup::pp).nodes, 2);
  // On a TPU pod context parallelism is not modelled yet: said, not approximated.
  try {
    CommModel(system_preset("tpu-v4-pod"), l);
    ADD_FAILURE() << "cp on a TPU pod was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "layout.cp");
  }
}

TEST(CommModel, TensorParallelAllReduceInsideADgxA100ByHand) {
  // 8 GPUs over NVLink at the NCCL bus bandwidth 235 GB/s, 8.4 us NCCL base latency, 3.4 us per
  // step: 100 MB all-reduce.
  const System s = system_preset("a100-80g-dgx");
  Layout l;
  l.tp = 8;
  const CommModel c(s, l);
  const double expected = 8.4e-6 + 2 * 7 * 3.4e-6 + 2 * 7.0 / 8 * 100e6 / 235e9;
  EXPECT_NEAR(c.collective_seconds(CommGroup::tp, CollectiveKind::all_reduce, 100e6), expected, 1e-12);
}

TEST(CommModel, SmallAllReducesCostTheirLatencyByHand) {
  // A 2-rank all-reduce of 8 KiB (a tiny model's tensor-parallel activations): base 8.4 us + two
  // steps of 3.4 us dominate the 8192/235e9 bandwidth term.
  const System s = system_preset("a100-80g-dgx");
  Layout l;
  l.tp = 2;
  const CommModel c(s, l);
  const double expected = 8.4e-6 + 2 * 3.4e-6 + 2 * 0.5 * 8192 / 235e9;
  EXPECT_NEAR(c.collective_seconds(CommGroup::tp, CollectiveKind::all_reduce, 8192), expected, 1e-12);
  EXPECT_GT(expected, 15e-6);
  Layout one;  // a group of one rank makes no NCCL call
  EXPECT_EQ(CommModel(s, one).collective_seconds(CommGroup::tp, CollectiveKind::all_reduce, 8192), 0.0);
}

TEST(CommModel, CrossPodTransferOfPalmByHand) {
  // Each chip's gradient shard (540.35e9 / 3072 parameters, bf16) aggregated over a host's 4 chips
  // and exchanged between 2 pods at 53 Gb/s per host: 2*(1/2)*1.407 GB / 6.625 GB/s = 0.212 s,
  // plus 2(p-1) = 2 latency steps of 10 us.
  const System s = system_preset("tpu-v4-pod");
  Layout l;
  l.tp = 12, l.dp = 512, l.pods = 2;
  const CommModel c(s, l);
  const double shard = 540.35e9 / 3072 * 2;
  EXPECT_NEAR(c.collective_seconds(CommGroup::cross_pod, CollectiveKind::all_reduce, shard),
              4 * shard / (53e9 / 8) + 2 * 10e-6, 1e-9);
}

// gpt-oss-120b's routing (128 experts, top-4) over ep 64 on 8 DGX H100 nodes, 2 experts a rank:
// a per-rank dispatch sends a token to 64 (1 - C(126, 4) / C(128, 4)) = 3.95 ranks on average but
// to only 8 (1 - C(112, 4) / C(128, 4)) = 3.34 nodes, so the NICs carry 3.34 / 3.95 of the buffer,
// NVLink the whole buffer's in-node share; without routing it is hierarchical_time's all-to-all.
TEST(CommModel, PerRankDispatchCrossesTheNetworkOncePerNode) {
  const System s = system_preset("h100-80g-dgx");
  Layout l;
  l.dp = 64, l.ep = 64;
  const CommModel c(s, l);
  const NodeSpread spread = c.spread(CommGroup::ep);
  ASSERT_EQ(spread.per_node, 8);
  ASSERT_EQ(spread.nodes, 8);
  const double ranks = 64 * (1 - (124.0 * 123) / (128.0 * 127));
  const double nodes = 8 * (1 - (112.0 * 111 * 110 * 109) / (128.0 * 127 * 126 * 125));
  EXPECT_NEAR(ranks, 3.95, 0.005);
  EXPECT_NEAR(nodes, 3.34, 0.005);
  const PerRankRouting routing{128, 4};
  EXPECT_NEAR(per_node_network_share(routing, spread), nodes / ranks, 1e-12);
  const FatTreeFabric& f = s.fat_tree;
  const double n = 1e9, intra = f.nvlink_bytes_per_s * f.nvlink_efficiency, inter = f.nic_bytes_per_s * f.nic_efficiency;
  const double by_hand = f.collective_base_latency_s +
                         std::max(7 * f.nvlink_latency_s + 7.0 / 8 * n / intra, 7 * f.net_latency_s + 7.0 / 8 * n * nodes / ranks / inter);
  EXPECT_NEAR(c.collective_seconds(CommGroup::ep, CollectiveKind::all_to_all, n, routing), by_hand, 1e-9 * by_hand);
  const double per_expert = c.collective_seconds(CommGroup::ep, CollectiveKind::all_to_all, n);
  EXPECT_NEAR(per_expert, f.collective_base_latency_s + hierarchical_time(CollectiveKind::all_to_all, 8, 8, n, intra,
                                                                          f.nvlink_latency_s, inter, f.net_latency_s),
              1e-12);
  EXPECT_LT(by_hand, per_expert);
  // Inside one node there is no network share: the routing changes nothing.
  Layout one_node;
  one_node.dp = 8, one_node.ep = 8;
  const CommModel inside(s, one_node);
  EXPECT_DOUBLE_EQ(inside.collective_seconds(CommGroup::ep, CollectiveKind::all_to_all, n, routing),
                   inside.collective_seconds(CommGroup::ep, CollectiveKind::all_to_all, n));
}

// Expert tensor parallelism on 64 H100 (tp 2, pp 2, dp 16; MoE layers etp 2 x ep 8 x edp 2):
// the etp pair shares a node; ep members are etp = 2 ranks apart, so 4 share a node and the group
// spans 2 nodes (with etp 1 the 8 fill one node); edp members are ep x etp = 16 apart, one a node.
// The gather is priced as the same all-gather over a 2-rank NVLink ring, by hand.
TEST(CommModel, ExpertTensorParallelRanksSitFastestInTheMoeOrder) {
  const System s = system_preset("h100-80g-dgx");
  Layout l;
  l.tp = 2, l.pp = 2, l.dp = 16, l.ep = 8, l.etp = 2;
  const CommModel c(s, l);
  EXPECT_EQ(c.spread(CommGroup::etp).per_node, 2);
  EXPECT_EQ(c.spread(CommGroup::etp).nodes, 1);
  EXPECT_EQ(c.spread(CommGroup::ep).per_node, 4);
  EXPECT_EQ(c.spread(CommGroup::ep).nodes, 2);
  EXPECT_EQ(c.spread(CommGroup::edp).per_node, 1);
  EXPECT_EQ(c.spread(CommGroup::edp).nodes, 2);
  Layout whole = l;
  whole.etp = 1;
  EXPECT_EQ(CommModel(s, whole).spread(CommGroup::ep).nodes, 1);
  const double n = 64e6;
  const FatTreeFabric& f = s.fat_tree;
  EXPECT_DOUBLE_EQ(c.collective_seconds(CommGroup::etp, CollectiveKind::all_gather, n),
                   f.collective_base_latency_s +
                       ring_time(CollectiveKind::all_gather, 2, n, f.nvlink_bytes_per_s * f.nvlink_efficiency,
                                 f.nvlink_latency_s));
  // A TPU torus keeps its experts whole; 3 ranks of etp would straddle an 8-GPU node.
  Layout torus;
  torus.dp = 64, torus.ep = 8, torus.etp = 2;
  EXPECT_FALSE(layout_fits_system(system_preset("tpu-v4-pod"), torus));
  try {
    CommModel(system_preset("tpu-v4-pod"), torus);
    ADD_FAILURE() << "etp 2 on a torus was priced";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("layout.etp", 0), 0u) << e.what();
  }
  Layout straddle;
  straddle.dp = 24, straddle.ep = 8, straddle.etp = 3;
  EXPECT_FALSE(layout_fits_system(s, straddle));
}

TEST(CommModel, LayoutsThatDoNotFitTheTopologyAreRejected) {
  Layout l;
  l.tp = 7, l.dp = 64;  // 448 chips: 7 is no TPU axis length
  EXPECT_FALSE(layout_fits_system(system_preset("tpu-v4-pod"), l));
  EXPECT_THROW(CommModel(system_preset("tpu-v4-pod"), l), InputError);
  Layout gpu;
  gpu.dp = 16, gpu.pods = 2;
  EXPECT_THROW(CommModel(system_preset("h100-80g-dgx"), gpu), InputError);
}

}  // namespace
}  // namespace palmsim
