#include "sim/simgrid/replica_fold.h"

namespace palmsim::simulation {

ReplicaFold::ReplicaFold(const ChipPlacement& placement, const bool requested, const bool symmetric)
    : placement_(placement) {
  const System& sys = placement.system();
  if (!requested) unfolded_because_ = "folding turned off";
  else if (sys.fabric != Fabric::gpu_fat_tree) unfolded_because_ = "replicas share torus links";
  else if (placement.layout().dp == 1) unfolded_because_ = "one data-parallel replica";
  else if (placement.layout().expert_ranks() > 1)  // the MoE layers fold the replicas anew
    unfolded_because_ = "expert parallelism spans data-parallel replicas";
  else if (placement.layout().cp > 1)  // its gradient ring leaves a replica at another cp rank
    unfolded_because_ = "context parallelism's ranks join the data-parallel rings";
  else if (!symmetric) unfolded_because_ = "a slow chip or a degraded link breaks the symmetry";
  else if (sys.fat_tree.oversubscription > 1) unfolded_because_ = "oversubscribed uplinks are shared by replicas";
}

int64_t ReplicaFold::actors() const {
  const int64_t chips = placement_.chips();
  return folded() ? chips / placement_.layout().dp : chips;
}

int ReplicaFold::stand_in(int chip) const {
  if (!folded()) return chip;
  ChipRank r = placement_.rank(chip);
  r.dp = 0;
  return placement_.chip(r);
}

std::vector<int> ReplicaFold::simulated() const {
  std::vector<int> out;
  out.reserve(size_t(actors()));
  for (int chip = 0; chip < placement_.chips(); ++chip)
    if (stand_in(chip) == chip) out.push_back(chip);
  return out;
}

}  // namespace palmsim::simulation
