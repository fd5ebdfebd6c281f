#pragma once
// TPU pod slices and where the layout's groups sit on them. A slice is A x B x C chips (v3: A x B),
// each axis at most a cube edge (4) or a multiple of it; an axis closes into a ring (wraparound)
// only when its length is a multiple of 4 full cubes (16 chips on v4; hardware.md "v4 slices"),
// otherwise it is an open line with about half the usable collective bandwidth.
//
// Groups are laid out mixed-radix along each axis, tensor-parallel innermost: an axis of length
// A = f_tp * f_pp * f_dp puts chip coordinate c = c_tp + f_tp * (c_pp + f_pp * c_dp). A group keeps
// the wraparound of an axis only if it owns the whole axis.
#include "hwmodels/collective_cost.h"
#include "hwmodels/system.h"
#include "model/comm_group.h"

#include <array>
#include <vector>

namespace palmsim {

enum class LayoutGroup { tp = 0, pp = 1, dp = 2 };
constexpr int kLayoutGroups = 3;
// The torus axes a communication group's collectives run over: tensor and pipeline parallelism
// their own, every other group (dp, cp, cross-pod) the data-parallel ones (TPU slices fold what
// else they run into dp: context parallelism is refused there, experts split the dp segments).
inline LayoutGroup torus_group(CommGroup g) {
  return g == CommGroup::tp ? LayoutGroup::tp : g == CommGroup::pp ? LayoutGroup::pp : LayoutGroup::dp;
}

// The segments of one group: at most one per torus axis, held in place (no allocation: collective
// costs ask for them on the estimator's hot path).
struct TorusSegments {
  std::array<TorusSegment, 3> items{};
  int count = 0;
  const TorusSegment* data() const { return items.data(); }
  size_t size() const { return size_t(count); }
  bool empty() const { return count == 0; }
  const TorusSegment* begin() const { return items.data(); }
  const TorusSegment* end() const { return items.data() + count; }
  const TorusSegment& operator[](size_t i) const { return items[i]; }
};

struct TorusMapping {
  int dims = 3;
  std::array<int, 3> shape{1, 1, 1};
  std::array<bool, 3> wraps{false, false, false};
  // factor[g][axis]: how many chips of `axis` group g spans (product over axes = group size).
  std::array<std::array<int, 3>, kLayoutGroups> factor{};
  // The segments group g's collectives run over, axes with factor > 1 only.
  TorusSegments segments(LayoutGroup g) const;
  // Expert parallelism folds over the data-parallel ranks, lowest digits first (axis 0 fastest,
  // as the chips are numbered): the ep group takes the first `ep` of them along the data-parallel
  // segments, the experts' data-parallel group (edp) the rest. False when ep does not split them
  // (it must take whole segments and then divide the next one).
  bool split_expert_groups(int ep, TorusSegments& ep_segments, TorusSegments& edp_segments) const;
};

// Legal slice shapes (sorted axes) holding exactly `chips` chips of one pod; empty if none.
std::vector<std::array<int, 3>> torus_slice_shapes(const TorusFabric& fabric, int max_pod_chips,
                                                   int chips);

// The slice and axis assignment for groups of sizes tp, pp, dp_per_pod. Like JAX's device-mesh
// construction, groups take whole physical axes when some assignment allows it, and only split
// axes otherwise; among the candidates the cheapest collectives win (tensor-parallel traffic
// weighted highest: it is on the critical path every layer). Returns false if no slice of
// tp*pp*dp_per_pod chips can hold the groups.
bool map_groups_on_torus(const TorusFabric& fabric, int max_pod_chips, int tp, int pp,
                         int dp_per_pod, TorusMapping& out);

}  // namespace palmsim
