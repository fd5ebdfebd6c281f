#include "sim/sweep.h"

#include "model/input_error.h"
#include "sim/csv_table.h"
#include "sim/predict.h"
#include "sim/scenario_override.h"

#include <fmt/compile.h>
#include <fmt/format.h>

#include <cstdio>
#include <iterator>
#include <set>
#include <string_view>
#include <utility>

namespace palmsim {

namespace {

// The cache of parsed sections is bounded: a grid over many model or system values re-parses.
constexpr size_t kMaxCachedSections = 4096;

bool is_layout_key(const std::string& key) { return key == "layout" || key.rfind("layout.", 0) == 0; }

// A row is one line: a message's line breaks become spaces.
std::string one_line(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

}  // namespace

int64_t SweepGrid::size() const {
  int64_t n = 1;
  for (const SweepAxis& a : axes) n *= int64_t(a.values.size());
  return n;
}

std::vector<int> SweepGrid::indices(int64_t c) const {
  std::vector<int> idx(axes.size());
  for (size_t i = axes.size(); i-- > 0;) {
    const int64_t n = int64_t(axes[i].values.size());
    idx[i] = int(c % n);
    c /= n;
  }
  return idx;
}

SweepGrid parse_sweep_grid(const std::vector<std::string>& sets, int64_t max_combinations) {
  if (sets.empty()) throw InputError("--set", "give at least one KEY=V1,V2,... to sweep");
  SweepGrid grid;
  std::set<std::string> keys;
  double combinations = 1;
  for (const std::string& text : sets) {
    auto [key, values] = parse_override_values(text, "--set");
    if (!keys.insert(key).second) throw InputError("--set", "key '" + key + "' is given twice; list its values once");
    combinations *= double(values.size());
    grid.axes.push_back({key, values});
  }
  if (combinations > double(max_combinations))
    throw InputError("--set", fmt::format("{:.0f} combinations exceed the limit of {}; sweep fewer values (or raise "
                                          "--max-combinations)",
                                          combinations, max_combinations));
  return grid;
}

std::pair<int64_t, int64_t> shard_range(int64_t size, int index, int count) {
  // size * index fits in 64 bits: size is bounded by --max-combinations.
  return {size * index / count, size * (index + 1) / count};
}

namespace {

// Whether an error names `key` or a field inside it: the override itself is bad, whatever else
// the combination holds.
bool names_key(const InputError& e, const std::string& key) {
  return e.field() == key || e.field().rfind(key + ".", 0) == 0;
}

}  // namespace

Sweep::Sweep(const YAML::Node& scenario_root, std::string scenario_path, SweepGrid grid, Simulator simulate)
    : sections_root_(YAML::Clone(scenario_root)), path_(std::move(scenario_path)), grid_(std::move(grid)),
      simulate_(std::move(simulate)) {
  if (!scenario_root.IsMap())
    throw InputError("scenario", "'" + path_ + "' must be a YAML map with model, system, layout, training");
  // The file's layout, then each layout value read once into a setter: a bad value is refused here.
  const YAML::Node file_layout = scenario_root["layout"];
  base_layout_ = parse_layout(file_layout);
  schedule_given_ = file_layout && file_layout.IsMap() && file_layout["schedule"];
  layout_setters_.resize(grid_.axes.size());
  for (size_t i = 0; i < grid_.axes.size(); ++i) {
    const SweepAxis& a = grid_.axes[i];
    quoted_values_.emplace_back();
    for (const std::string& v : a.values) quoted_values_.back().push_back(csv_quote(v));
    is_layout_axis_.push_back(is_layout_key(a.key));
    if (!is_layout_axis_.back()) continue;
    if (a.key == "layout") throw InputError("--set", "sweep layout fields one by one (layout.tp=..., layout.dp=...)");
    const std::string field = a.key.substr(std::string("layout.").size());
    if (field == "schedule") schedule_given_ = true;
    for (const std::string& v : a.values) layout_setters_[i].push_back(layout_field_setter(field, override_value_node(v, a.key)));
  }
  sections_root_.remove("layout");  // read per combination, from the setters
  // Every other value on its own against the file: an unknown key or a value its field refuses is
  // bad input (exit 2), not a row; what depends on the other values is left to the rows.
  try {
    parse_scenario_sections(sections_root_, path_);
  } catch (const InputError& e) {
    bool overridden = false;
    for (size_t i = 0; i < grid_.axes.size(); ++i)
      overridden = overridden || (!is_layout_axis_[i] && (names_key(e, grid_.axes[i].key) ||
                                                          grid_.axes[i].key.rfind(e.field(), 0) == 0));
    if (!overridden) throw;
  }
  for (size_t i = 0; i < grid_.axes.size(); ++i) {
    if (is_layout_axis_[i]) continue;
    for (const std::string& v : grid_.axes[i].values) {
      YAML::Node one = YAML::Clone(sections_root_);
      apply_override(one, grid_.axes[i].key, v);
      try {
        parse_scenario_sections(one, path_);
      } catch (const InputError& e) {
        if (names_key(e, grid_.axes[i].key)) throw;
      }
    }
  }
}

std::string Sweep::header() const {
  std::string h = "combination";
  for (const SweepAxis& a : grid_.axes) h += "," + csv_quote(a.key);
  h += ",n_chips,step_time_s,tokens_per_s,mfu,hfu,memory_per_chip_gib,fits,band_low_s,band_high_s";
  if (simulate_) h += ",simulated_step_time_s,simulated_mfu";
  return h + ",error\n";
}

Sweep::Sections& Sweep::sections_for(const std::vector<int>& indices) {
  // The non-layout value indices as one mixed-radix number.
  int64_t key = 0;
  for (size_t i = 0; i < indices.size(); ++i)
    if (!is_layout_axis_[i]) key = key * int64_t(grid_.axes[i].values.size()) + indices[i];
  auto it = sections_cache_.find(key);
  if (it != sections_cache_.end()) return it->second;
  if (sections_cache_.size() >= kMaxCachedSections) sections_cache_.clear();
  Sections sections;
  try {
    YAML::Node root = YAML::Clone(sections_root_);
    for (size_t i = 0; i < indices.size(); ++i)
      if (!is_layout_axis_[i]) apply_override(root, grid_.axes[i].key, grid_.axes[i].values[indices[i]]);
    sections.scenario = parse_scenario_sections(root, path_);
  } catch (const InputError& e) {
    sections.error = e.what();
  }
  Sections& cached = sections_cache_.emplace(key, std::move(sections)).first->second;
  if (cached.scenario) cached.predictor = std::make_unique<Predictor>(*cached.scenario);
  return cached;
}

std::string Sweep::row(int64_t c) {
  const std::vector<int> idx = grid_.indices(c);
  std::string line = std::to_string(c);
  for (size_t i = 0; i < idx.size(); ++i) (line += ',') += quoted_values_[i][size_t(idx[i])];
  const std::string empty_results = simulate_ ? ",,,,,,,,,,," : ",,,,,,,,,";
  Sections& sections = sections_for(idx);
  if (!sections.scenario) return line + empty_results + "," + csv_quote(one_line(sections.error)) + "\n";
  const Scenario& s = *sections.scenario;
  Layout layout = base_layout_;
  for (size_t i = 0; i < idx.size(); ++i)
    if (is_layout_axis_[i]) layout_setters_[i][size_t(idx[i])](layout);
  default_layout_schedule(layout, schedule_given_);
  Report r;
  try {
    check_scenario_layout(s, layout, s.system_chips > 0 ? s.system_chips : layout.chips());
    r = sections.predictor->predict(layout);
  } catch (const InputError& e) {
    return line + empty_results + "," + csv_quote(one_line(e.what())) + "\n";
  }
  fmt::format_to(std::back_inserter(line), FMT_COMPILE(",{},{},{},{},{},{},{}"), r.n_chips, r.step_time_s, r.tokens_per_s, r.mfu, r.hfu,
                      r.memory.total() / double(int64_t(1) << 30), r.fits_in_memory ? 1 : 0);
  if (r.has_band())
    fmt::format_to(std::back_inserter(line), FMT_COMPILE(",{},{}"), r.band_low_s, r.band_high_s);
  else
    line += ",,";
  std::string error;
  if (simulate_) {
    try {
      Scenario one = s;
      one.layout = layout;
      one.n_chips = layout.chips();
      const Report sim = simulate_(one);
      line += fmt::format(",{},{}", sim.step_time_s, sim.mfu);
    } catch (const InputError& e) {
      line += ",,";
      error = one_line(std::string("simulate: ") + e.what());
    }
  }
  if (error.empty()) ++legal_rows_;
  return line + "," + csv_quote(error) + "\n";
}

std::string shard_preamble(int index, int count, int64_t combinations) {
  return fmt::format("# palmsim sweep shard {}/{} of {} combinations\n", index, count, combinations);
}

std::string merge_sweep_shards(const std::vector<std::string>& texts, const std::vector<std::string>& names) {
  if (texts.empty()) throw InputError("SHARD", "give the shard files to merge");
  struct Shard {
    int index = -1, count = 0;
    int64_t combinations = 0;
    std::string header, rows;
  };
  std::vector<Shard> shards;
  for (size_t f = 0; f < texts.size(); ++f) {
    const std::string& text = texts[f];
    const std::string& name = names[f];
    Shard s;
    const size_t first = text.find('\n');
    const size_t second = first == std::string::npos ? first : text.find('\n', first + 1);
    long long combinations = -1;
    char end = 0;
    if (second == std::string::npos ||
        std::sscanf(text.substr(0, first).c_str(), "# palmsim sweep shard %d/%d of %lld combinations%c", &s.index,
                    &s.count, &combinations, &end) != 3 ||
        s.count < 1 || s.index < 0 || s.index >= s.count || combinations < 0)
      throw InputError(name, "is not a shard of `palmsim sweep --shard I/N` (its first line must be '# palmsim "
                             "sweep shard I/N of C combinations')");
    s.combinations = combinations;
    s.header = text.substr(first + 1, second - first);
    s.rows = text.substr(second + 1);
    if (!s.rows.empty() && s.rows.back() != '\n') throw InputError(name, "is truncated (its last row has no line end)");
    // Its rows must be exactly its block of combinations, in order.
    auto [begin, end_c] = shard_range(s.combinations, s.index, s.count);
    int64_t expected = begin;
    for (size_t pos = 0; pos < s.rows.size();) {
      const size_t eol = s.rows.find('\n', pos);
      const std::string_view line(s.rows.data() + pos, eol - pos);
      const std::string first_field(line.substr(0, line.find(',')));
      if (expected >= end_c || first_field != std::to_string(expected))
        throw InputError(name, fmt::format("row {} is not combination {} of shard {}/{}", expected - begin + 1,
                                           expected, s.index, s.count));
      ++expected;
      pos = eol + 1;
    }
    if (expected != end_c)
      throw InputError(name, fmt::format("holds {} of the {} rows of shard {}/{}", expected - begin, end_c - begin,
                                         s.index, s.count));
    shards.push_back(std::move(s));
  }
  std::vector<int> file_of(shards.front().count, -1);
  for (size_t f = 0; f < shards.size(); ++f) {
    const Shard& s = shards[f];
    const Shard& a = shards.front();
    if (s.count != a.count || s.combinations != a.combinations || s.header != a.header)
      throw InputError(names[f], "belongs to another sweep than " + names[0] + " (other grid, shard count or columns)");
    if (file_of[s.index] >= 0)
      throw InputError(names[f], fmt::format("repeats shard {}/{} of {}", s.index, s.count, names[file_of[s.index]]));
    file_of[s.index] = int(f);
  }
  for (int i = 0; i < int(file_of.size()); ++i)
    if (file_of[i] < 0) throw InputError("SHARD", fmt::format("shard {}/{} is missing", i, file_of.size()));
  std::string out = shards.front().header;
  for (int f : file_of) out += shards[f].rows;
  return out;
}

std::string Sweep::evaluate(int64_t begin, int64_t end, const std::function<void(int64_t)>& progress) {
  std::string out;
  for (int64_t c = begin; c < end; ++c) {
    out += row(c);
    if (progress) progress(c - begin + 1);
  }
  return out;
}

}  // namespace palmsim
