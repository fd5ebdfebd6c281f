#include "sim/simgrid/chip_placement.h"

#include "model/rank_order.h"

namespace palmsim::simulation {

ChipPlacement::ChipPlacement(const System& system, const Layout& layout, const TorusMapping& torus)
    : system_(system), layout_(layout), torus_(torus) {
  chips_ = int(layout.chips());
  pod_chips_ = chips_ / layout.pods;
}

std::array<int, 3> ChipPlacement::coord(int chip) const {
  const int local = chip % pod_chips_;
  const auto& s = torus_.shape;
  return {local % s[0], (local / s[0]) % s[1], local / (s[0] * s[1])};
}

int ChipPlacement::chip_at(int pod, const std::array<int, 3>& c) const {
  const auto& s = torus_.shape;
  return pod * pod_chips_ + c[0] + s[0] * (c[1] + s[1] * c[2]);
}

ChipRank ChipPlacement::rank(int chip) const {
  const Layout& l = layout_;
  if (system_.fabric != Fabric::tpu_torus) {
    const RankCoords c = megatron_coords(chip, {l.tp, l.cp, l.dp});
    return {c.tp, c.dp, c.pp, c.cp};
  }
  // Each group's index is mixed-radix over the axes, axis 0 fastest.
  const auto c = coord(chip);
  const auto& f = torus_.factor;
  std::array<int, kLayoutGroups> index{0, 0, 0}, scale{1, 1, 1};
  for (int a = 0; a < 3; ++a) {
    int rest = c[a];
    for (int g = 0; g < kLayoutGroups; ++g) {
      index[g] += scale[g] * (rest % f[g][a]);
      rest /= f[g][a];
      scale[g] *= f[g][a];
    }
  }
  return {index[0], pod(chip) * l.dp_per_pod() + index[2], index[1]};
}

int ChipPlacement::chip(const ChipRank& r) const {
  const Layout& l = layout_;
  if (system_.fabric != Fabric::tpu_torus) return megatron_rank({r.tp, r.cp, r.dp, r.pp}, {l.tp, l.cp, l.dp});
  const std::array<int, kLayoutGroups> index{r.tp, r.pp, r.dp % l.dp_per_pod()};
  const auto& f = torus_.factor;
  std::array<int, kLayoutGroups> rest = index;
  std::array<int, 3> c{0, 0, 0};
  for (int a = 0; a < 3; ++a) {
    int digit_scale = 1;
    for (int g = 0; g < kLayoutGroups; ++g) {
      c[a] += digit_scale * (rest[g] % f[g][a]);
      rest[g] /= f[g][a];
      digit_scale *= f[g][a];
    }
  }
  return chip_at(r.dp / l.dp_per_pod(), c);
}

}  // namespace palmsim::simulation
