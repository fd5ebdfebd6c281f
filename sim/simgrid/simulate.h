#pragma once
// `palmsim simulate`: the scenario's StepPlan as a discrete-event simulation, reported with the
// same Report (and --json keys) as predict, plus where each chip's time went.
#include "sim/report.h"
#include "sim/scenario.h"
#include "sim/simgrid/simulator.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace palmsim::simulation {

struct Simulation {
  Report report;  // predict's report with the simulated step time, throughput, MFU and breakdown
  SimulationResult result;
  int slowest_chip = 0;
};

// Runs in a child process (child_process.h); InputError for a layout or option it cannot model,
// and for one larger than options.max_chips or options.max_flows (refused before it starts).
Simulation simulate(const Scenario& scenario, const SimulationOptions& options = {});

// What simulating the scenario's step would take, counted without running it: actors (one per
// simulated chip, replica_fold.h) and flows (every simulated chip's collectives phase by phase,
// and the pipeline's sends).
struct SimulationSize {
  int64_t chips = 0;
  double flows = 0;
};
SimulationSize simulation_size(const Scenario& scenario, const SimulationOptions& options = {});

// "per_chip" of --json: min/mean/max of each part over chips, the slowest chip, and every chip
// when there are at most 64.
nlohmann::json per_chip_json(const Simulation& sim);
std::string per_chip_table(const Simulation& sim);

// Writes the trace of the chips recorded (options.trace_chips); see trace_writer.h.
void write_trace(const std::string& path, const Scenario& scenario, const Simulation& sim);

}  // namespace palmsim::simulation

namespace palmsim {
// Simulated step time of a scenario as it stands (for `validate --simulate`).
double simulate_step_seconds(const Scenario& scenario);

// The scenario simulated under each of `layouts` (search --simulate-top): the step time, or why
// that layout could not be simulated (beyond the simulation bounds, a model part the simulator
// refuses), so that one such layout does not cost the others their simulation.
struct SimulatedLayout {
  double step_time_s = 0;
  std::string error;  // empty when simulated
};
std::vector<SimulatedLayout> simulate_layouts(const Scenario& scenario, const std::vector<Layout>& layouts);
}  // namespace palmsim
