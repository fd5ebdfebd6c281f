#include "model/atomic_file.h"
#include "sim/simgrid/trace_writer.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

namespace palmsim::simulation {

nlohmann::json chrome_trace(const SimulationResult& result, const ChipPlacement& placement) {
  nlohmann::json events = nlohmann::json::array();
  std::set<std::pair<int, int>> lanes;
  for (const TraceEvent& e : result.events) {
    nlohmann::json ev = {{"name", e.name}, {"ph", "X"},          {"pid", e.chip},
                         {"tid", int(e.track)}, {"ts", e.start_s * 1e6}, {"dur", e.dur_s * 1e6}};
    if (e.microbatch >= 0) ev["args"] = {{"microbatch", e.microbatch}, {"chunk", e.chunk}};
    events.push_back(std::move(ev));
    lanes.insert({e.chip, int(e.track)});
  }
  std::set<int> chips;
  for (const auto& [chip, track] : lanes) {
    if (chips.insert(chip).second) {
      const ChipRank r = placement.rank(chip);
      events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", chip},
                        {"args", {{"name", "chip " + std::to_string(chip) + " (tp " + std::to_string(r.tp) +
                                               (placement.layout().cp > 1 ? ", cp " + std::to_string(r.cp) : "") +
                                               ", dp " + std::to_string(r.dp) + ", stage " +
                                               std::to_string(r.pp) + ")"}}}});
      events.push_back({{"name", "process_sort_index"}, {"ph", "M"}, {"pid", chip}, {"args", {{"sort_index", chip}}}});
    }
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", chip}, {"tid", track},
                      {"args", {{"name", to_string(Track(track))}}}});
  }
  return {{"traceEvents", events}, {"displayTimeUnit", "ms"}};
}

void write_chrome_trace(const std::string& path, const SimulationResult& result,
                        const ChipPlacement& placement) {
  write_file_atomically(chrome_trace(result, placement).dump() + "\n", path, "--trace");
}

}  // namespace palmsim::simulation
