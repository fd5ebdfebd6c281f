#pragma once
// Chrome / Perfetto trace-event JSON of a simulated step: a process per chip, a thread per lane
// (schedule, compute, comm, stream, pipeline), complete events ("ph": "X") with ts and dur in
// microseconds, and process/thread name metadata.
#include "sim/simgrid/chip_placement.h"
#include "sim/simgrid/simulator.h"

#include <nlohmann/json.hpp>

#include <string>

namespace palmsim::simulation {

nlohmann::json chrome_trace(const SimulationResult& result, const ChipPlacement& placement);

// Writes to a temporary file beside `path` and renames it, so no partial file is ever left.
// The caller has already checked that `path` may be written (check_output_path).
void write_chrome_trace(const std::string& path, const SimulationResult& result,
                        const ChipPlacement& placement);

}  // namespace palmsim::simulation
