#include "sim/simgrid/platform_builder.h"

#include "model/input_error.h"

#include <cstdlib>

namespace palmsim::simulation {

namespace s4u = ::simgrid::s4u;

namespace {
// Chips compute by sleeping for the compute model's seconds; the host speed is never used.
constexpr double kHostSpeed = 1e9;
const char* const kAxisName[3] = {"x", "y", "z"};
}  // namespace

s4u::SplitDuplexLink* PlatformBuilder::link(const std::string& name, double bandwidth, double latency) {
  auto* l = zone_->create_split_duplex_link(name, bandwidth);
  l->set_latency(latency);
  links_[name] = l;
  return l;
}

PlatformBuilder::PlatformBuilder(const ChipPlacement& placement, const std::vector<int>& chips)
    : placement_(placement) {
  zone_ = s4u::create_full_zone("palmsim");
  const int n = placement.chips();
  hosts_.assign(size_t(n), nullptr);
  for (int c : chips) hosts_[size_t(c)] = zone_->create_host("chip" + std::to_string(c), kHostSpeed);
  const System& sys = placement.system();
  if (sys.fabric == Fabric::tpu_torus) {
    const TorusFabric& f = sys.torus;
    const double bw = f.link_bytes_per_s * f.collective_efficiency;
    const auto& shape = placement.torus().shape;
    ici_.assign(size_t(n) * 3, nullptr);
    for (int c = 0; c < n; ++c) {
      const auto xyz = placement.coord(c);
      for (int a = 0; a < 3; ++a) {
        const bool last = xyz[a] == shape[a] - 1;
        if (shape[a] > 1 && (!last || placement.torus().wraps[a]))
          ici_[size_t(c) * 3 + a] = link("ici." + std::to_string(c) + "." + kAxisName[a], bw, f.link_latency_s);
      }
    }
    // A route crosses the source host's DCN link and the destination's: half the latency each.
    const int hosts = (n + f.chips_per_host - 1) / f.chips_per_host;
    for (int h = 0; h < hosts && placement.layout().pods > 1; ++h)
      dcn_.push_back(link("dcn." + std::to_string(h), f.dcn_bytes_per_s_per_host, f.dcn_latency_s / 2));
    return;
  }
  const FatTreeFabric& f = sys.fat_tree;
  nvlink_.assign(size_t(n), nullptr);
  nic_.assign(size_t(n), nullptr);
  for (int c : chips) {  // routes on a fat tree cross only their two ends' links and uplinks
    nvlink_[size_t(c)] = link("nvlink." + std::to_string(c), f.nvlink_bytes_per_s * f.nvlink_efficiency,
                              f.nvlink_latency_s / 2);
    nic_[size_t(c)] = link("nic." + std::to_string(c), f.nic_bytes_per_s * f.nic_efficiency, f.net_latency_s / 2);
  }
  const int nodes = (n + f.gpus_per_node - 1) / f.gpus_per_node;
  const int leaves = (nodes + f.nodes_per_leaf - 1) / f.nodes_per_leaf;
  if (nodes > 1) {
    // A rail leaf's uplink carries its nodes_per_leaf NICs' traffic, cut by the oversubscription;
    // traffic between rails (an all-to-all's) crosses the spine even inside one leaf group.
    const double up = f.nodes_per_leaf * f.nic_bytes_per_s * f.nic_efficiency / f.oversubscription;
    for (int leaf = 0; leaf < leaves; ++leaf)
      for (int rail = 0; rail < f.gpus_per_node; ++rail)
        uplink_.push_back(link("uplink." + std::to_string(leaf) + "." + std::to_string(rail), up, 0.0));
  }
}

void PlatformBuilder::torus_route(int src, int dst, std::vector<Hop>& route) const {
  const ChipPlacement& pl = placement_;
  if (pl.pod(src) != pl.pod(dst)) {
    const int cph = pl.system().torus.chips_per_host;
    route.emplace_back(dcn_[src / cph], Hop::Direction::UP);
    route.emplace_back(dcn_[dst / cph], Hop::Direction::DOWN);
    return;
  }
  // Dimension order, the short way round on axes that wrap, straight along those that do not.
  const auto& shape = pl.torus().shape;
  auto at = pl.coord(src);
  const auto to = pl.coord(dst);
  for (int a = 0; a < 3; ++a) {
    const int len = shape[a];
    int step = to[a] > at[a] ? 1 : -1;
    if (pl.torus().wraps[a]) {
      const int ahead = (to[a] - at[a] + len) % len;
      step = ahead <= len - ahead ? 1 : -1;
    }
    while (at[a] != to[a]) {
      const int next = (at[a] + step + len) % len;
      auto lower = at;  // a link belongs to the chip at its lower (or wrapping) end
      lower[a] = step > 0 ? at[a] : next;
      route.emplace_back(ici_[size_t(pl.chip_at(pl.pod(src), lower)) * 3 + a],
                         step > 0 ? Hop::Direction::UP : Hop::Direction::DOWN);
      at[a] = next;
    }
  }
}

void PlatformBuilder::fat_tree_route(int src, int dst, std::vector<Hop>& route) const {
  const FatTreeFabric& f = placement_.system().fat_tree;
  const int g = f.gpus_per_node;
  if (src / g == dst / g) {  // through the node's NVSwitch
    route.emplace_back(nvlink_[src], Hop::Direction::UP);
    route.emplace_back(nvlink_[dst], Hop::Direction::DOWN);
    return;
  }
  route.emplace_back(nic_[src], Hop::Direction::UP);
  const int leaf_src = src / g / f.nodes_per_leaf, leaf_dst = dst / g / f.nodes_per_leaf;
  const int rail_src = src % g, rail_dst = dst % g;
  if (leaf_src != leaf_dst || rail_src != rail_dst) {  // up to the spine and down again
    route.emplace_back(uplink_[size_t(leaf_src) * g + rail_src], Hop::Direction::UP);
    route.emplace_back(uplink_[size_t(leaf_dst) * g + rail_dst], Hop::Direction::DOWN);
  }
  route.emplace_back(nic_[dst], Hop::Direction::DOWN);
}

void PlatformBuilder::connect(int src, int dst) {
  if (src == dst || !routed_.insert({src, dst}).second) return;
  std::vector<Hop> route;
  if (placement_.system().fabric == Fabric::tpu_torus)
    torus_route(src, dst, route);
  else
    fat_tree_route(src, dst, route);
  zone_->add_route(hosts_[src]->get_netpoint(), hosts_[dst]->get_netpoint(), nullptr, nullptr, route, false);
}

s4u::Host* PlatformBuilder::mirror(int chip, int level) {
  auto [it, added] = mirrors_.try_emplace(int64_t(chip) * 2 + level, nullptr);
  if (!added) return it->second;
  it->second = zone_->create_host("mirror" + std::to_string(level) + "." + std::to_string(chip), kHostSpeed);
  s4u::SplitDuplexLink* own = level == 0 ? nvlink_.at(size_t(chip)) : nic_.at(size_t(chip));
  // Across nodes the full route may also cross leaf uplinks: without oversubscription they carry
  // at most what the NICs below them send, so they never bind, and their latency is zero.
  const std::vector<Hop> route{Hop(own, Hop::Direction::UP), Hop(own, Hop::Direction::DOWN)};
  zone_->add_route(hosts_[chip]->get_netpoint(), it->second->get_netpoint(), nullptr, nullptr, route, false);
  return it->second;
}

void PlatformBuilder::seal(const std::vector<LinkDegrade>& degrade) {
  for (const LinkDegrade& d : degrade) {
    const auto it = links_.find(d.link);
    if (it == links_.end())
      throw InputError("--degrade-link", "no link '" + d.link + "' on this platform (TPU: ici.CHIP.x|y|z, "
                                         "dcn.HOST; GPU: nvlink.GPU, nic.GPU, uplink.LEAF.RAIL)");
    for (s4u::Link* l : {it->second->get_link_up(), it->second->get_link_down()})
      l->set_bandwidth(l->get_bandwidth() * d.factor);
  }
  for (auto& [name, l] : links_) l->seal();
  for (s4u::Host* h : hosts_)
    if (h) h->seal();
  for (auto& [key, h] : mirrors_) h->seal();
  zone_->seal();
}

}  // namespace palmsim::simulation
