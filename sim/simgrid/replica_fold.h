#pragma once
// Data-parallel replicas simulated once. On a GPU fat tree the replicas of a step (the tp x pp
// chips of one data-parallel rank) run identical schedules, and every flow one of them sends
// crosses only links of its own sender and receiver (NVLink, NIC) or a leaf uplink. So when no
// chip is slower than the others, no link is degraded and the uplinks cannot saturate
// (oversubscription <= 1: a leaf's rail uplink carries its nodes' NICs), each replica's chips see
// exactly the same link loads as replica 0's. Replica 0 then stands for all: its chips are the
// only actors, and a flow to another replica (a data-parallel ring step) is sent to a mirror of
// the sender whose route holds the sender's own link out and the same link in, which by symmetry
// carries the flow the sender's ring predecessor sends it at the same moment. Where symmetry
// breaks (a straggler, a degraded link, oversubscribed uplinks), where expert parallelism's
// all-to-alls join replicas, or on a TPU torus, whose rings route through other replicas' links,
// every chip is simulated.
#include "sim/simgrid/chip_placement.h"

#include <cstdint>
#include <string>
#include <vector>

namespace palmsim::simulation {

class ReplicaFold {
 public:
  // `symmetric`: no chip computes slower and no link is degraded (SimulationOptions). Keeps a
  // reference: the placement must outlive it.
  ReplicaFold(const ChipPlacement& placement, bool requested, bool symmetric);

  bool folded() const { return unfolded_because_.empty(); }
  const std::string& unfolded_because() const { return unfolded_because_; }
  int64_t actors() const;            // chips simulated
  std::vector<int> simulated() const;  // those chips, ascending
  int stand_in(int chip) const;      // the simulated chip that stands for `chip`
  // A flow from simulated `chip` to `peer` leaves the simulated replica (a data-parallel ring
  // step to another replica), so it goes to the chip's mirror.
  bool leaves_replica(int chip, int peer) const { return peer != chip && stand_in(peer) == chip; }

 private:
  const ChipPlacement& placement_;
  std::string unfolded_because_;
};

}  // namespace palmsim::simulation
