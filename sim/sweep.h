#pragma once
// `palmsim sweep`: every combination of a few scenario overrides (sim/scenario_override.h),
// predicted (and optionally simulated), one CSV row per combination. Combination c is the
// mixed-radix number of its value indices, the last --set varying fastest, so a row's place in the
// table depends only on the grid: any split of [0, size) over MPI ranks or Slurm array tasks,
// concatenated in order, gives the same bytes as one process.
#include "sim/predict.h"
#include "sim/report.h"
#include "sim/scenario.h"

#include <yaml-cpp/yaml.h>

#include <functional>
#include <unordered_map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace palmsim {

struct SweepAxis {
  std::string key;                  // dotted scenario key
  std::vector<std::string> values;  // as written
};

struct SweepGrid {
  std::vector<SweepAxis> axes;
  int64_t size() const;  // product of the axes' value counts
  // The value index of every axis for combination `c` (last axis fastest).
  std::vector<int> indices(int64_t c) const;
};

// Parses the --set options ("KEY=V1,V2,..."); InputError naming --set for a malformed one, a key
// given twice or a grid of more than `max_combinations`.
SweepGrid parse_sweep_grid(const std::vector<std::string>& sets, int64_t max_combinations);

// The contiguous block of combinations shard `index` of `count` evaluates.
std::pair<int64_t, int64_t> shard_range(int64_t size, int index, int count);

// A shard file (`sweep --shard I/N -o F`) is this one line, then the header and the shard's rows:
// "# palmsim sweep shard I/N of C combinations".
std::string shard_preamble(int index, int count, int64_t combinations);
// Joins shard files' texts (in any order) into the bytes one process writes for the whole grid.
// InputError naming the file (`names[i]`) that is not a shard, belongs to another sweep, repeats a
// shard, lacks rows, or when a shard is missing.
std::string merge_sweep_shards(const std::vector<std::string>& texts, const std::vector<std::string>& names);

class Sweep {
 public:
  // `simulate`, when given, also runs each legal combination through the discrete-event simulator.
  using Simulator = std::function<Report(const Scenario&)>;
  Sweep(const YAML::Node& scenario_root, std::string scenario_path, SweepGrid grid, Simulator simulate = nullptr);

  const SweepGrid& grid() const { return grid_; }
  // The CSV header: combination, the swept keys, then the results (units in the names).
  std::string header() const;
  // CSV lines, each ending in '\n', for combinations [begin, end); `progress(done)` after each.
  std::string evaluate(int64_t begin, int64_t end, const std::function<void(int64_t)>& progress = nullptr);
  // The one line of combination `c`.
  std::string row(int64_t c);
  int64_t legal_rows() const { return legal_rows_; }  // rows evaluated so far with no error

 private:
  struct Sections {  // the scenario without its layout, for one choice of the non-layout values
    std::optional<Scenario> scenario;
    std::unique_ptr<Predictor> predictor;  // of `scenario`, reused across its layouts
    std::string error;
  };
  Sections& sections_for(const std::vector<int>& indices);

  YAML::Node sections_root_;  // the scenario file without its layout (the layout axes set that)
  std::string path_;
  SweepGrid grid_;
  Simulator simulate_;
  std::vector<bool> is_layout_axis_;
  std::vector<std::vector<std::string>> quoted_values_;  // per axis, per value, as CSV cells
  Layout base_layout_;                               // the file's layout
  bool schedule_given_ = false;                      // by the file or an axis
  std::vector<std::vector<LayoutSetter>> layout_setters_;  // per layout axis, per value
  std::unordered_map<int64_t, Sections> sections_cache_;
  int64_t legal_rows_ = 0;  // keyed by the non-layout value indices
};

}  // namespace palmsim
