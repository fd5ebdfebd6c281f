#pragma once
// The SimGrid platform of a system preset, built in a few explicit calls:
//  - TPU: per pod one torus slice, a split-duplex ICI link from every chip to its + neighbour on
//    each axis, the closing (wraparound) link only on axes the TorusMapping says wrap; pods joined
//    by the data-center network, one DCN link per host shared by its chips_per_host chips.
//  - GPU: per node an NVSwitch star (one NVLink per GPU to the switch), one NIC per GPU into its
//    rail's leaf, leaves of nodes_per_leaf nodes joined through the spine by an uplink per rail
//    with the preset's oversubscription.
// Link rates are what collectives reach (the closed form's efficiencies), so a flow alone runs at
// the closed form's speed. Routes are added only for the chip pairs the step sends between
// (dimension order on the torus), which keeps a 6144-chip platform small.
#include "sim/simgrid/chip_placement.h"

#include <simgrid/s4u/Host.hpp>
#include <simgrid/s4u/Link.hpp>
#include <simgrid/s4u/NetZone.hpp>

#include <cstdint>
#include <set>
#include <unordered_map>
#include <string>
#include <utility>
#include <vector>

namespace palmsim::simulation {

// Scales one link's bandwidth. Names: TPU "ici.CHIP.AXIS" (the link from CHIP to its + neighbour
// on axis x, y or z) and "dcn.HOST"; GPU "nvlink.GPU", "nic.GPU" and "uplink.LEAF.RAIL".
struct LinkDegrade {
  std::string link;
  double factor = 1.0;  // fraction of the bandwidth left, in (0, 1]
};

class PlatformBuilder {
 public:
  // Creates the zone, the hosts of `chips` (the simulated ones; SimGrid's full zone keeps a route
  // table of hosts x hosts) and the links; needs a live s4u::Engine.
  PlatformBuilder(const ChipPlacement& placement, const std::vector<int>& chips);
  // Adds the route from `src` to `dst` once (later calls for the same pair do nothing).
  void connect(int src, int dst);
  // GPU, folded replicas (replica_fold.h): a host standing for `chip`'s ring neighbour in another
  // replica at ring level `level` (0: inside the node, 1: across nodes), reached through the
  // chip's own link of that level out and the same link in. Created once, before seal.
  ::simgrid::s4u::Host* mirror(int chip, int level);
  // Applies degradations (InputError for an unknown link name) and seals the platform.
  void seal(const std::vector<LinkDegrade>& degrade);
  ::simgrid::s4u::Host* host(int chip) const { return hosts_[chip]; }

 private:
  using Hop = ::simgrid::s4u::LinkInRoute;
  void torus_route(int src, int dst, std::vector<Hop>& route) const;
  void fat_tree_route(int src, int dst, std::vector<Hop>& route) const;
  ::simgrid::s4u::SplitDuplexLink* link(const std::string& name, double bandwidth, double latency);

  const ChipPlacement& placement_;
  ::simgrid::s4u::NetZone* zone_ = nullptr;
  std::vector<::simgrid::s4u::Host*> hosts_;
  // TPU: ici_[chip * 3 + axis]; DCN per host. GPU: nvlink/nic per GPU, uplink per leaf and rail.
  std::vector<::simgrid::s4u::SplitDuplexLink*> ici_, dcn_, nvlink_, nic_, uplink_;
  std::unordered_map<std::string, ::simgrid::s4u::SplitDuplexLink*> links_;
  std::set<std::pair<int, int>> routed_;
  std::unordered_map<int64_t, ::simgrid::s4u::Host*> mirrors_;  // key: chip * 2 + level
};

}  // namespace palmsim::simulation
