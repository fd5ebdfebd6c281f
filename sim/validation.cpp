#include "sim/validation.h"

#include "model/input_error.h"
#include "model/yaml_fields.h"
#include "sim/layout_search.h"
#include "sim/predict.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

namespace palmsim {

namespace {

const char* kRequired[] = {"id", "n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff",
                           "ffn", "vocab", "seq_len", "parallel_block", "global_batch", "system",
                           "n_chips", "pods", "tp", "pp", "dp", "cp", "vpp", "microbatch", "sp",
                           "sharding", "recompute", "precision", "measured_step_s"};

class RowReader {
 public:
  RowReader(const CsvTable& t, const std::vector<std::string>& row, size_t index)
      : t_(t), row_(row), index_(index) {}
  // An optional column the file lacks (a sparse row without top_k) is bad input, not an index.
  const std::string& text(const char* column) const {
    const int c = t_.column(column);
    if (c < 0) throw InputError(field(column), "the file has no such column");
    return row_[size_t(c)];
  }
  bool empty(const char* column) const { return text(column).empty(); }
  bool has(const char* column) const { return t_.column(column) >= 0; }
  int64_t integer(const char* column) const {
    const std::string& s = text(column);
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (s.empty() || used != s.size())
      throw InputError(field(column), "must be an integer, got '" + s + "'");
    return v;
  }
  double number(const char* column) const {
    const std::string& s = text(column);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (s.empty() || used != s.size()) throw InputError(field(column), "must be a number, got '" + s + "'");
    return v;
  }
  std::string field(const char* column) const { return fmt::format("row {} {}", index_ + 1, column); }

 private:
  const CsvTable& t_;
  const std::vector<std::string>& row_;
  size_t index_;
};

int positive_int(const RowReader& r, const char* column) {
  const int64_t v = r.integer(column);
  if (v < 1 || v > (int64_t(1) << 30)) throw InputError(r.field(column), "must be a positive integer");
  return int(v);
}

// `a=1;b=true` as a YAML map of strings, for the stack parser to read and check.
YAML::Node key_value_map(const std::string& text, const std::string& field) {
  YAML::Node map(YAML::NodeType::Map);
  for (const auto& [key, value] : split_key_values(text, field, "keys of hwmodels/stacks/*.yaml")) map[key] = value;
  return map;
}

// The optional MoE columns (n_experts, top_k, expert_d_ff, moe_layer_freq, capacity_factor): a
// row with more than one expert is a mixture-of-experts model; "balanced" routing, as the published
// runs force it; dropless unless a capacity factor is given (token-drop runs pad to it).
void read_moe(const RowReader& r, ModelSpec& m) {
  if (!r.has("n_experts") || r.empty("n_experts")) return;
  const int64_t experts = r.integer("n_experts");
  if (experts == 0 || experts == 1) return;  // dense
  m.moe.n_experts = positive_int(r, "n_experts");
  m.moe.top_k = positive_int(r, "top_k");
  m.moe.expert_d_ff = r.has("expert_d_ff") && !r.empty("expert_d_ff") ? positive_int(r, "expert_d_ff") : m.d_ff;
  if (r.has("moe_layer_freq") && !r.empty("moe_layer_freq")) m.moe.layer_freq = positive_int(r, "moe_layer_freq");
  if (r.has("capacity_factor") && !r.empty("capacity_factor")) {
    m.moe.capacity_factor = r.number("capacity_factor");
    if (!capacity_factor_in_range(m.moe.capacity_factor))
      throw InputError(r.field("capacity_factor"), std::string("must be ") + kCapacityFactorRange + " (empty: dropless)");
  }
}

// Model flags the CSV does not carry follow the family the FFN names: GELU/ReLU rows are
// GPT/Megatron (biases, dropout, learned positions); gated rows are PaLM/Llama-style.
ModelSpec row_model(const RowReader& r) {
  ModelSpec m;
  m.name = r.text("id");
  m.n_layers = positive_int(r, "n_layers");
  m.d_model = positive_int(r, "d_model");
  m.n_heads = positive_int(r, "n_heads");
  m.n_kv_heads = positive_int(r, "n_kv_heads");
  m.head_dim = positive_int(r, "head_dim");
  m.d_ff = positive_int(r, "d_ff");
  m.ffn = parse_ffn(r.text("ffn"), r.field("ffn"));
  m.vocab = positive_int(r, "vocab");
  m.seq_len = positive_int(r, "seq_len");
  const int64_t parallel = r.integer("parallel_block");
  if (parallel != 0 && parallel != 1) throw InputError(r.field("parallel_block"), "must be 0 or 1");
  m.parallel_block = parallel == 1;
  const bool gpt_family = !ffn_is_gated(m.ffn);
  m.biases = gpt_family;
  m.dropout = gpt_family;
  m.rope = !gpt_family;
  m.tied_embeddings = true;
  // Optional columns say it where the source does (MaxText: ReLU without biases or dropout, RoPE).
  auto flag = [&](const char* column, bool& out) {
    if (!r.has(column) || r.empty(column)) return;
    const int64_t v = r.integer(column);
    if (v != 0 && v != 1) throw InputError(r.field(column), "must be 0 or 1");
    out = v == 1;
  };
  flag("biases", m.biases);
  flag("dropout", m.dropout);
  flag("rope", m.rope);
  flag("tied_embeddings", m.tied_embeddings);
  read_moe(r, m);
  check_model(m);
  return m;
}

// The run's model, system, stack, size and precision; its layout comes next.
Scenario row_scenario(const CsvTable& t, const RowReader& r, size_t index) {
  Scenario s;
  s.path = "row " + std::to_string(index + 1);
  s.model = row_model(r);
  s.system = system_preset(r.text("system"));
  if (t.column("system_overrides") >= 0 && !r.empty("system_overrides"))
    apply_system_overrides(s.system, r.text("system_overrides"), r.field("system_overrides"));
  // The software stack the run used; empty: the system's default stack.
  if (r.has("stack") && !r.empty("stack")) s.system.stack = stack_preset(r.text("stack"), r.field("stack"));
  if (s.system.needs_calibration())
    throw InputError(r.field("system"), s.system.name + " needs a calibration file; validation rows take presets");
  s.n_chips = positive_int(r, "n_chips");
  s.global_batch = positive_int(r, "global_batch");
  // AdamW for the GPU stacks and MaxText (its default opt_type); PaLM's unfactored Adafactor keeps
  // the same state and traffic.
  s.optimizer = Optimizer::adam;
  s.precision = parse_precision(r.text("precision"), r.field("precision"));
  check_precision_supported(s, r.field("precision"));
  return s;
}

// What the row publishes of its layout, as constraints for search; the published degrees are
// also set on s.layout. tp, pp and dp may be unpublished ("the best layout that fits").
struct PublishedLayout {
  LayoutConstraints fixed;
  bool mesh = false;         // tp, pp and dp given
  bool ep = false;           // ep given (else derived from the mesh for a sparse model)
  bool etp = false;          // etp given (else searched: 1, and tp beside tp > 1)
  bool vpp_implied = false;  // one pipeline stage: no virtual stages, whatever the cell says
};

PublishedLayout published_layout(const RowReader& r, Scenario& s) {
  PublishedLayout p;
  LayoutConstraints& fixed = p.fixed;
  Layout& l = s.layout;
  l.pods = positive_int(r, "pods");
  l.cp = positive_int(r, "cp");
  // Expert parallelism: unpublished, the largest degree that divides the experts and the data- x
  // context-parallel ranks (one copy of each expert, no expert gradient reduction), as NeMo
  // AutoModel's recipes set it (ep_size 8 for gpt-oss-20b on 8 GPUs, 64 for gpt-oss-120b on 64).
  p.ep = r.has("ep") && !r.empty("ep");
  if (p.ep) l.ep = positive_int(r, "ep");
  fixed.pods = l.pods;
  fixed.cp = l.cp;
  p.mesh = !r.empty("tp") || !r.empty("pp") || !r.empty("dp");
  if (p.mesh) {
    l.tp = positive_int(r, "tp");
    l.pp = positive_int(r, "pp");
    l.dp = positive_int(r, "dp");
    fixed.tp = l.tp, fixed.pp = l.pp, fixed.dp = l.dp;
  }
  if (s.model.moe.sparse() && !p.ep) {
    if (!p.mesh) throw InputError(r.field("ep"), "a mixture-of-experts row needs ep, or tp, pp and dp to derive it");
    const int ranks = l.dp / l.pods * l.cp;
    for (int e = 1; e <= ranks; ++e)
      if (s.model.moe.n_experts % e == 0 && ranks % e == 0) l.ep = e;
  }
  fixed.ep = l.ep;
  // Expert tensor parallelism: the etp column where a file has one, else the faster of whole
  // experts and experts split tp ways (search's expert_tensor_degrees).
  p.etp = r.has("etp") && !r.empty("etp");
  if (p.etp) fixed.etp = l.etp = positive_int(r, "etp");
  // One pipeline stage has no virtual stages: an empty vpp cell beside a published pp of 1 is 1.
  p.vpp_implied = r.empty("vpp") && p.mesh && l.pp == 1;
  if (!r.empty("vpp") || p.vpp_implied) {
    fixed.vpp = p.vpp_implied ? 1 : positive_int(r, "vpp");
    fixed.schedule = *fixed.vpp > 1 ? Schedule::interleaved : Schedule::one_f_one_b;
  }
  if (!r.empty("microbatch")) fixed.microbatch = positive_int(r, "microbatch");
  if (!r.empty("sp")) {
    const int64_t sp = r.integer("sp");
    if (sp != 0 && sp != 1) throw InputError(r.field("sp"), "must be 0 or 1");
    fixed.sp = sp == 1;
  }
  if (!r.empty("sharding")) fixed.sharding = parse_sharding(r.text("sharding"), r.field("sharding"));
  // A split that counts the embedding and the loss as layers (Layout::account_ends): the
  // account_ends column where a file has one (0 or 1), else an even split of the layers.
  if (r.has("account_ends") && !r.empty("account_ends")) {
    const int64_t a = r.integer("account_ends");
    if (a != 0 && a != 1) throw InputError(r.field("account_ends"), "must be 0 or 1");
    l.account_ends = a == 1;
  }
  if (!r.empty("recompute")) fixed.recompute = parse_recompute(r.text("recompute"), r.field("recompute"));
  return p;
}

// A published choice the stack cannot run is an error; the stack names what it runs. With no stack
// named and a system default that cannot run the published layout (FSDP on Megatron-Core), the
// stack validated on this system with the most runs that can: returned as "stack=NAME", else "".
std::string settle_stack(const RowReader& r, Scenario& s, const LayoutConstraints& fixed) {
  std::string chosen;
  auto runs_published = [&](const Stack& stack) {
    return (!fixed.sharding || stack.supports(*fixed.sharding)) && (!fixed.recompute || stack.supports(*fixed.recompute));
  };
  const bool stack_named = r.has("stack") && !r.empty("stack");
  if (!stack_named && !runs_published(s.system.stack)) {
    const Stack* best = nullptr;
    std::vector<Stack> candidates;
    for (const std::string& n : stack_preset_names()) candidates.push_back(stack_preset(n));
    for (const Stack& c : candidates) {
      const auto& on = c.band.systems;
      if (runs_published(c) && std::find(on.begin(), on.end(), s.system.name) != on.end() &&
          (!best || c.band.runs > best->band.runs))
        best = &c;
    }
    if (best) {
      s.system.stack = *best;
      chosen = "stack=" + best->name;
    }
  }
  Layout published = s.layout;
  Stack any = s.system.stack;
  if (fixed.sharding) published.sharding = *fixed.sharding; else any.shardings.clear();
  if (fixed.recompute) published.recompute = *fixed.recompute; else any.recomputes.clear();
  check_stack_supports(any, published, r.field("sharding"), r.field("recompute"), r.field("vpp"));
  // `key=value;...` changes to that stack's choices for this run (torch.compile off).
  if (r.has("stack_overrides") && !r.empty("stack_overrides"))
    s.system.stack = parse_stack_onto(s.system.stack, key_value_map(r.text("stack_overrides"), r.field("stack_overrides")),
                                      r.field("stack_overrides"));
  return chosen;
}

// What search (or the stack choice) filled in, as "key=value" words in the order of the columns.
std::string chosen_cells(const RowReader& r, const Scenario& s, const PublishedLayout& p, const std::string& stack,
                         const Layout& best) {
  std::string chosen;
  auto pick = [&](bool was_empty, const std::string& text) {
    if (was_empty) chosen += (chosen.empty() ? "" : " ") + text;
  };
  pick(!stack.empty(), stack);
  pick(s.model.moe.sparse() && !p.ep, fmt::format("ep={}", best.ep));
  pick(s.model.moe.sparse() && !p.etp && best.tp > 1, fmt::format("etp={}", best.etp));
  pick(!p.mesh, fmt::format("tp={} pp={} dp={}", best.tp, best.pp, best.dp));
  pick(r.empty("vpp") && !p.vpp_implied, fmt::format("vpp={}", best.vpp));
  pick(r.empty("microbatch"), fmt::format("microbatch={}", best.microbatch));
  pick(r.empty("sp"), fmt::format("sp={}", best.sp ? 1 : 0));
  pick(r.empty("sharding"), fmt::format("sharding={}", to_string(best.sharding)));
  pick(r.empty("recompute"), fmt::format("recompute={}", to_string(best.recompute)));
  return chosen;
}

// Why no completion is legal, where the published cells alone break a rule: ": " and check_layout's
// message naming the field (the unpublished sp taken as tp > 1 needs it), else "".
std::string published_rule_broken(const Scenario& s, Layout probe, const LayoutConstraints& fixed) {
  probe.sp = fixed.sp.value_or(probe.tp > 1);
  try {
    check_layout(probe, s.model, probe.chips(), s.global_batch);
  } catch (const InputError& e) {
    return std::string(": ") + e.what();
  }
  return "";
}

ValidationRow read_row(const CsvTable& t, const std::vector<std::string>& row, size_t index) {
  const RowReader r(t, row, index);
  ValidationRow out;
  out.id = r.text("id");
  Scenario s = row_scenario(t, r, index);
  const PublishedLayout published = published_layout(r, s);
  const LayoutConstraints& fixed = published.fixed;
  out.mesh_published = published.mesh;
  const std::string stack_chosen = settle_stack(r, s, fixed);
  if (!r.empty("measured_step_s")) out.measured_step_s = r.number("measured_step_s");
  if (t.column("measured_mfu") >= 0 && !r.empty("measured_mfu")) out.measured_mfu_pct = r.number("measured_mfu");

  // The published layout must itself be legal before any search fills the gaps.
  Layout probe = s.layout;
  probe.vpp = fixed.vpp.value_or(1);
  probe.schedule = fixed.schedule.value_or(Schedule::one_f_one_b);
  probe.microbatch = 1;
  if (published.mesh && probe.chips() != s.n_chips)
    throw InputError(r.field("n_chips"), fmt::format("tp*pp*dp*cp = {} but n_chips = {}", probe.chips(), s.n_chips));

  SearchResult found = search_layouts(s, 1, fixed);
  // Every layout cell published: the run is what it is, and it ran. When palmsim's memory estimate
  // says it cannot fit, its time is still predicted and `fits` says 0 (the memory model erred).
  const bool complete =
      published.mesh && fixed.vpp && fixed.microbatch && fixed.sp && fixed.sharding && fixed.recompute;
  if (found.top.empty() && found.evaluated > 0 && complete) found = search_layouts(s, 1, fixed, false);
  if (found.top.empty()) {
    out.error = found.evaluated == 0 ? "no legal layout completes the published one" + published_rule_broken(s, probe, fixed)
                                     : "no completion of the published layout fits in memory";
    out.scenario = s;
    return out;
  }
  const Report& best = found.top.front();
  s.layout = best.layout;
  out.chosen = chosen_cells(r, s, published, stack_chosen, best.layout);
  out.pred_step_s = best.step_time_s;
  out.pred_mfu = best.mfu;
  out.pred_hfu = best.hfu;
  out.pred_memory_bytes = best.memory.total();
  out.fits = best.fits_in_memory;
  out.scenario = s;
  return out;
}

std::string format_number(double v, int digits) { return fmt::format("{:.{}f}", v, digits); }

}  // namespace

void check_validation_columns(const CsvTable& t) {
  for (const char* c : kRequired)
    if (t.column(c) < 0) throw InputError("csv", std::string("missing column '") + c + "'");
}

ValidationRow validate_row(const CsvTable& columns, const std::vector<std::string>& row, size_t index) {
  try {
    return read_row(columns, row, index);
  } catch (const InputError& e) {
    ValidationRow bad;
    bad.id = row[size_t(columns.column("id"))];
    bad.error = e.what();
    return bad;
  }
}

std::vector<ValidationRow> validate_table(const CsvTable& t) {
  check_validation_columns(t);
  std::vector<ValidationRow> out;
  out.reserve(t.rows.size());
  for (size_t i = 0; i < t.rows.size(); ++i) out.push_back(validate_row(t, t.rows[i], i));
  return out;
}

const std::vector<std::string>& validation_output_columns() {
  static const std::vector<std::string> columns{"pred_step_s", "pred_mfu", "pred_hfu", "pred_memory_gib", "fits",
                                                "chosen", "err_step_pct", "err_mfu_pts", "error"};
  return columns;
}

void append_validation_output(std::vector<std::string>& row, const ValidationRow& r) {
  constexpr double GiB = 1024.0 * 1024.0 * 1024.0;
  const bool ok = r.error.empty();
  row.push_back(ok ? format_number(r.pred_step_s, 4) : "");
  row.push_back(ok ? format_number(100.0 * r.pred_mfu, 2) : "");
  row.push_back(ok ? format_number(100.0 * r.pred_hfu, 2) : "");
  row.push_back(ok ? format_number(r.pred_memory_bytes / GiB, 2) : "");
  row.push_back(ok ? (r.fits ? "1" : "0") : "");
  row.push_back(r.chosen);
  row.push_back(ok && r.measured_step_s > 0
                    ? format_number((r.pred_step_s - r.measured_step_s) / r.measured_step_s * 100.0, 2)
                    : "");
  row.push_back(ok && r.measured_mfu_pct > 0 ? format_number(100.0 * r.pred_mfu - r.measured_mfu_pct, 2) : "");
  row.push_back(r.error);
}

CsvTable validation_output(const CsvTable& in, const std::vector<ValidationRow>& rows) {
  CsvTable out = in;
  for (const std::string& c : validation_output_columns()) out.header.push_back(c);
  for (size_t i = 0; i < rows.size(); ++i) append_validation_output(out.rows[i], rows[i]);
  return out;
}

void ValidationSummaryBuilder::add(const ValidationRow& r, double predicted_step_s) {
  ++s_.total;
  if (!r.error.empty()) ++s_.not_modelled;
  if (!r.error.empty() || r.measured_step_s <= 0) return;
  const double err = (predicted_step_s - r.measured_step_s) / r.measured_step_s * 100.0;
  sum_ += std::abs(err);
  signed_sum_ += err;
  s_.max_abs_err_pct = std::max(s_.max_abs_err_pct, std::abs(err));
  ++s_.rows;
}

ValidationSummary ValidationSummaryBuilder::summary() const {
  ValidationSummary s = s_;
  s.mean_abs_err_pct = s.rows ? sum_ / s.rows : 0.0;
  s.mean_signed_err_pct = s.rows ? signed_sum_ / s.rows : 0.0;
  return s;
}

ValidationSummary summarize(const std::vector<ValidationRow>& rows,
                            const std::function<double(const ValidationRow&)>& predicted) {
  ValidationSummaryBuilder b;
  for (const auto& r : rows) b.add(r, r.error.empty() ? predicted(r) : 0.0);
  return b.summary();
}

std::string summary_line(const std::string& label, const ValidationSummary& s) {
  return fmt::format("{}: rows {}, scored {}, not modelled {}, mean |err_step| {:.2f} %, "
                     "max |err_step| {:.2f} %, mean signed {:+.2f} %",
                     label, s.total, s.rows, s.not_modelled, s.mean_abs_err_pct, s.max_abs_err_pct,
                     s.mean_signed_err_pct);
}

ValidationCsvReader::ValidationCsvReader(const std::string& path) : path_(path) {
  namespace fs = std::filesystem;
  csv_.emplace(path);
  columns_.header = csv_->header();
  id_column_ = columns_.column("id");
  const fs::path notes_path = fs::path(path).parent_path() / "annotations" / fs::path(path).filename();
  if (fs::exists(notes_path)) {
    const CsvTable a = read_csv(notes_path.string());  // small: one row per annotated run
    const std::string field = notes_path.string();
    const int id = a.column("id");
    if (id < 0 || id_column_ < 0) throw InputError(field, "an annotations file and its set both need an 'id' column");
    std::vector<int> target(a.header.size(), -1);
    for (size_t c = 0; c < a.header.size(); ++c) {
      if (int(c) == id) continue;
      target[c] = columns_.column(a.header[c]);
      if (target[c] < 0) {  // a column the set does not have
        target[c] = int(columns_.header.size());
        columns_.header.push_back(a.header[c]);
      }
    }
    std::vector<std::string> order;  // annotation ids in file order, for the message
    for (const auto& row : a.rows) {
      auto& cells = notes_[row[size_t(id)]];
      order.push_back(row[size_t(id)]);
      for (size_t c = 0; c < a.header.size(); ++c)
        if (target[c] >= 0 && !row[c].empty()) cells.emplace_back(size_t(target[c]), row[c]);
    }
    // The checking pass: every annotated id must be a row of the set.
    std::set<std::string> unseen(order.begin(), order.end());
    std::vector<std::string> row;
    while (!unseen.empty() && csv_->next(row)) unseen.erase(row[size_t(id_column_)]);
    for (size_t r = 0; r < order.size(); ++r)
      if (unseen.count(order[r])) throw InputError(field, fmt::format("row {}: id '{}' is not in {}", r + 1, order[r], path));
  }
  // The checking pass over the rest of the file (widths), then back to the first row.
  std::vector<std::string> row;
  while (csv_->next(row)) {
  }
  csv_.reset();
  csv_.emplace(path);
}

bool ValidationCsvReader::next(std::vector<std::string>& row) {
  if (!csv_->next(row)) return false;
  row.resize(columns_.header.size());
  if (id_column_ >= 0 && !notes_.empty()) {
    auto it = notes_.find(row[size_t(id_column_)]);
    if (it != notes_.end())
      for (const auto& [column, value] : it->second) row[column] = value;
  }
  return true;
}

CsvTable read_validation_csv(const std::string& path) {
  ValidationCsvReader reader(path);
  CsvTable t = reader.columns();
  std::vector<std::string> row;
  while (reader.next(row)) t.rows.push_back(row);
  return t;
}

std::vector<std::string> validation_files(const std::vector<std::string>& arguments) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& a : arguments) {
    std::error_code ec;  // the non-throwing calls: a symbolic link loop is bad input, not a crash
    if (fs::is_directory(a, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(a, ec))
        if (e.is_regular_file(ec) && e.path().extension() == ".csv") found.push_back(e.path().string());
      if (ec) throw InputError("RUNS", "cannot list folder '" + a + "': " + ec.message());
      if (found.empty()) throw InputError("RUNS", "folder '" + a + "' holds no .csv file");
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      require_regular_file(a, "RUNS");  // names what else it is: missing, a loop, a device, empty
      files.push_back(a);
    }
  }
  return files;
}

}  // namespace palmsim
