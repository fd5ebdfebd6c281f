#include "hwmodels/torus_topology.h"

#include <algorithm>
#include <limits>

namespace palmsim {

TorusSegments TorusMapping::segments(LayoutGroup g) const {
  TorusSegments out;
  const int gi = int(g);
  for (int axis = 0; axis < dims; ++axis) {
    const int f = factor[gi][axis];
    if (f <= 1) continue;
    int stride = 1;
    for (int inner = 0; inner < gi; ++inner) stride *= factor[inner][axis];
    out.items[size_t(out.count++)] = {axis, f, stride, wraps[axis] && f == shape[axis]};
  }
  return out;
}

bool TorusMapping::split_expert_groups(int ep, TorusSegments& ep_segments, TorusSegments& edp_segments) const {
  ep_segments = {}, edp_segments = {};
  int left = ep;
  for (const TorusSegment& s : segments(LayoutGroup::dp)) {
    if (left == 1) {
      edp_segments.items[size_t(edp_segments.count++)] = s;
    } else if (left % s.length == 0) {  // the whole segment
      ep_segments.items[size_t(ep_segments.count++)] = s;
      left /= s.length;
    } else if (s.length % left == 0) {  // the first `left` ranks of it: a line, no wraparound
      ep_segments.items[size_t(ep_segments.count++)] = {s.axis, left, s.stride, false};
      edp_segments.items[size_t(edp_segments.count++)] = {s.axis, s.length / left, s.stride * left, false};
      left = 1;
    } else {
      return false;
    }
  }
  return left == 1;
}

namespace {

bool axis_length_legal(const TorusFabric& f, int len) {
  return len >= 1 && len <= f.max_axis && (len <= f.cube || len % f.cube == 0);
}

bool axis_wraps(const TorusFabric& f, int len) { return len % (4 * f.cube) == 0; }

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

// Seconds per byte of an all-gather over these segments, the quantity the mapping minimises.
double inverse_bandwidth(const TorusSegments& segs) {
  if (segs.empty()) return 0.0;
  return torus_time(CollectiveKind::all_gather, segs.data(), int(segs.size()), 1.0, 1.0, 0.0);
}

}  // namespace

std::vector<std::array<int, 3>> torus_slice_shapes(const TorusFabric& f, int max_pod_chips,
                                                   int chips) {
  std::vector<std::array<int, 3>> shapes;
  if (chips < 1 || chips > max_pod_chips) return shapes;
  for (int a = 1; a <= f.max_axis; ++a) {
    if (chips % a || !axis_length_legal(f, a)) continue;
    for (int b = a; b <= f.max_axis; ++b) {
      if ((chips / a) % b || !axis_length_legal(f, b)) continue;
      const int c = chips / a / b;
      if (f.torus_dims == 2) {
        if (c == 1) shapes.push_back({a, b, 1});
        continue;
      }
      if (c < b || !axis_length_legal(f, c)) continue;
      shapes.push_back({a, b, c});
    }
  }
  return shapes;
}

bool map_groups_on_torus(const TorusFabric& fabric, int max_pod_chips, int tp, int pp,
                         int dp_per_pod, TorusMapping& best) {
  const int chips = tp * pp * dp_per_pod;
  const std::array<int, kLayoutGroups> size{tp, pp, dp_per_pod};
  // Tensor parallelism talks every layer, data parallelism once per layer or step, pipeline only
  // microbatch boundaries: weights of the mapping objective.
  const std::array<double, kLayoutGroups> weight{16.0, 1.0, 4.0};
  double best_cost = std::numeric_limits<double>::infinity();
  bool best_whole = false;

  for (const auto& sorted : torus_slice_shapes(fabric, max_pod_chips, chips)) {
    std::array<int, 3> shape = sorted;
    do {  // every orientation of the slice: which axis the inner groups take first matters
      TorusMapping m;
      m.dims = fabric.torus_dims;
      m.shape = shape;
      for (int a = 0; a < 3; ++a) m.wraps[a] = shape[a] > 1 && axis_wraps(fabric, shape[a]);
      // tp takes f_tp[a] | shape[a] with product tp; pp takes from what is left; dp the rest.
      for (int t0 : divisors(shape[0])) for (int t1 : divisors(shape[1])) {
        if (tp % (t0 * t1) || shape[2] % (tp / (t0 * t1))) continue;
        const std::array<int, 3> ft{t0, t1, tp / (t0 * t1)};
        const std::array<int, 3> rest{shape[0] / ft[0], shape[1] / ft[1], shape[2] / ft[2]};
        for (int p0 : divisors(rest[0])) for (int p1 : divisors(rest[1])) {
          if (pp % (p0 * p1) || rest[2] % (pp / (p0 * p1))) continue;
          const std::array<int, 3> fp{p0, p1, pp / (p0 * p1)};
          m.factor[0] = ft;
          m.factor[1] = fp;
          for (int a = 0; a < 3; ++a) m.factor[2][a] = rest[a] / fp[a];
          double cost = 0.0;
          bool whole = true;  // every group owns whole axes
          for (int g = 0; g < kLayoutGroups; ++g) {
            if (size[g] > 1) cost += weight[g] * inverse_bandwidth(m.segments(LayoutGroup(g)));
            for (int a = 0; a < 3; ++a)
              whole = whole && (m.factor[g][a] == 1 || m.factor[g][a] == shape[a]);
          }
          if ((whole && !best_whole) || (whole == best_whole && cost < best_cost - 1e-15)) {
            best_cost = cost;
            best_whole = whole;
            best = m;
          }
        }
      }
    } while (std::next_permutation(shape.begin(), shape.end()));
  }
  return best_cost < std::numeric_limits<double>::infinity();
}

}  // namespace palmsim
