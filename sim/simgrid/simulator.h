#pragma once
// One training step as a discrete-event simulation on SimGrid's S4U API: an actor per chip runs
// its pipeline stage's schedule (model/pipeline_schedule.h) layer block by layer block, sleeping for the
// compute model's seconds and turning every collective into flows (collective_flows.h) on the
// platform (platform_builder.h); a second actor per chip is the side stream where the real system
// overlaps communication with compute (FSDP gathers and reduce-scatters, gradient buckets).
//
// SimGrid keeps one engine per process and 3.32 cannot start a second one after the first has
// run: call run_step_simulation once per process (simulate.h forks a child for it).
#include "model/step_plan.h"
#include "sim/simgrid/chip_placement.h"
#include "sim/simgrid/platform_builder.h"
#include "sim/simgrid/replica_fold.h"
#include "sim/simgrid/step_work.h"

#include <string>
#include <vector>

namespace palmsim::simulation {

struct SimulationOptions {
  int slow_chip = -1;         // this chip's compute takes slow_percent % longer
  double slow_percent = 0;
  std::vector<LinkDegrade> degrade;
  std::vector<int> trace_chips;  // chips whose events are recorded
  // What a simulation may ask of this machine (simulate.h, simulation_size): one actor per
  // simulated chip (memory), and the flows of one step (run time). Sized for a 2-core, 24 GB
  // machine, measured there (build/bench/simulate_benchmark): PaLM 540B on 6144 TPU v4 chips, every
  // chip simulated, is 6.3e5 flows (10 s, 0.5 GB); unfolded, GPT-3 175B on 3072 A100 (tp 8, pp 8,
  // vpp 6) was 2.3e6 flows (60 s) and the time per flow grows with the flows that share links;
  // folded (replica_fold.h) it is 64 chips and 4.9e4 flows (0.3 s).
  int64_t max_chips = 32768;
  double max_flows = 5e6;
  // Simulate one data-parallel replica for all where they provably behave alike (replica_fold.h);
  // off: every chip, as a check of the fold.
  bool fold_replicas = true;
};

// Trace lanes of a chip: the schedule's chunk events, compute, blocking communication, the side
// stream, and waits on pipeline neighbours.
enum class Track : int { schedule = 0, compute = 1, comm = 2, stream = 3, pipeline = 4 };
const char* to_string(Track t);

struct TraceEvent {
  int chip = 0;
  Track track = Track::compute;
  std::string name;
  double start_s = 0, dur_s = 0;
  int microbatch = -1, chunk = -1;  // schedule events only
};

// Where one chip's step went. Communication nothing hides is exposed_comm_s; waiting on pipeline
// neighbours beyond the message's own transfer time is bubble_s; idle_s waits for the slowest chip.
struct ChipTimes {
  double compute_s = 0, recompute_s = 0, exposed_comm_s = 0, bubble_s = 0, optimizer_s = 0;
  double finish_s = 0;
  double all_to_all_s = 0;  // of exposed_comm_s: blocking expert-parallel all-to-alls
  double core_wait_s = 0;   // of compute_s and recompute_s: waits for a core thread ranks share
};

struct SimulationResult {
  double step_time_s = 0;
  std::vector<ChipTimes> chips;
  std::vector<TraceEvent> events;
  double flows = 0;  // flows sent in the step, simulated chips (simulation_size counts them beforehand)
  int64_t simulated_chips = 0;  // chips run as actors; the others took their stand-in's times
  std::string unfolded_because;  // why every chip was simulated, when replicas could not be folded
  double peak_memory_bytes = 0;  // resident memory of the simulation's process at its peak
};

// The replicas this simulation folds (replica_fold.h): symmetric unless a chip is slowed or a link
// degraded.
ReplicaFold fold_for(const ChipPlacement& placement, const SimulationOptions& options);

SimulationResult run_step_simulation(const StepPlan& plan, const StepWork& work,
                                     const ChipPlacement& placement, const SimulationOptions& options);

// The flows run_step_simulation will send (SimulationResult::flows), counted without running it.
double simulated_flows(const StepPlan& plan, const StepWork& work, const ChipPlacement& placement,
                       const ReplicaFold& fold);

}  // namespace palmsim::simulation
