#include "hwmodels/stack.h"

#include "hwmodels/preset_files.h"
#include "model/input_error.h"
#include "model/yaml_fields.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace palmsim {


const std::vector<StackParameter>& stack_parameters() {
  // Bounds: what any real stack on any chip could plausibly show (hwmodels/hardware.md "Software
  // overheads"). They bound the fit; they are not per-run knobs. Meanings: the fields in stack.h.
  static const std::vector<StackParameter> table = {
      {"kernel_floor_us", &Stack::kernel_floor_s, 1e-6, 0.0, 20.0},
      {"host_overhead_us", &Stack::host_overhead_s, 1e-6, 0.0, 60.0},
      {"gemm_efficiency_scale", &Stack::gemm_efficiency_scale, 1.0, 0.6, 1.1},
      {"memory_efficiency_scale", &Stack::memory_efficiency_scale, 1.0, 0.4, 1.2},
      {"collective_efficiency_scale", &Stack::collective_efficiency_scale, 1.0, 0.4, 1.2},
      {"attention_efficiency_scale", &Stack::attention_efficiency_scale, 1.0, 0.4, 1.5},
      {"p2p_overhead_us", &Stack::p2p_overhead_s, 1e-6, 0.0, 500.0},
      {"fp8_gemm_efficiency_scale", &Stack::fp8_gemm_efficiency_scale, 1.0, 0.4, 1.1},
      {"tp_overlap_fraction", &Stack::tp_overlap_fraction, 1.0, 0.0, 1.0},
      {"fp8_rowwise_gemm_efficiency_scale", &Stack::fp8_rowwise_gemm_efficiency_scale, 1.0, 0.2, 1.1},
      {"host_sync_us", &Stack::host_sync_s, 1e-6, 0.0, 20000.0},
  };
  return table;
}

namespace {

void read_choices(const YAML::Node& n, const std::string& field, Stack& s) {
  auto flag = [&](const char* key, bool& out) {
    if (n[key]) out = read_bool(n[key], field + "." + key);
  };
  flag("fused_attention", s.fused_attention);
  flag("fused_elementwise", s.fused_elementwise);
  flag("grad_accumulation_fusion", s.grad_accumulation_fusion);
  flag("overlap_grad_reduce", s.overlap_grad_reduce);
  flag("fp8", s.fp8);
  flag("shard_activations_over_tp", s.shard_activations_over_tp);
  flag("vocab_parallel", s.vocab_parallel);
  flag("overlap_tp_comm", s.overlap_tp_comm);
  flag("pipeline_paced_by_last_stage", s.pipeline_paced_by_last_stage);
  flag("fp8_rowwise", s.fp8_rowwise);
  flag("fp8_tp_allgather", s.fp8_tp_allgather);
  flag("overlap_paired_passes", s.overlap_paired_passes);
  flag("overlap_moe_a2a", s.overlap_moe_a2a);
  if (n["cp_comm"]) s.cp_comm = parse_context_comm(read_string(n["cp_comm"], field + ".cp_comm"), field + ".cp_comm");
  if (n["moe_dispatch"])
    s.moe_dispatch = parse_token_dispatch(read_string(n["moe_dispatch"], field + ".moe_dispatch"), field + ".moe_dispatch");
  auto bytes = [&](const char* key, double& out) {
    if (!n[key]) return;
    const double v = read_double(n[key], field + "." + key);
    if (v != 2 && v != 4) throw InputError(field + "." + key, "must be 2 or 4 (bytes per element)");
    out = v;
  };
  bytes("grad_reduce_bytes", s.grad_reduce_bytes);
  bytes("activation_bytes", s.activation_bytes);
  if (n["loss_bytes_per_logit"]) {
    const double v = read_double(n["loss_bytes_per_logit"], field + ".loss_bytes_per_logit");
    if (!(v >= 0 && v <= 16))
      throw InputError(field + ".loss_bytes_per_logit", "must be from 0 to 16 (bytes held per logit at the loss's peak)");
    s.loss_bytes_per_logit = v;
  }
  if (n["vocab_multiple"]) {
    const int64_t v = read_int(n["vocab_multiple"], field + ".vocab_multiple");
    if (v < 1 || v > 4096) throw InputError(field + ".vocab_multiple", "must be an integer from 1 to 4096");
    s.vocab_multiple = int(v);
  }
}

template <class T>
void read_list(const YAML::Node& n, const std::string& field, std::vector<T>& out,
               T (*parse)(const std::string&, const std::string&)) {
  if (!n.IsSequence() || n.size() == 0) throw InputError(field, "must be a non-empty list");
  out.clear();
  for (size_t i = 0; i < n.size(); ++i) out.push_back(parse(read_string(n[i], field), field));
}

void read_parameters(const YAML::Node& n, const std::string& field, Stack& s) {
  if (!n.IsMap()) throw InputError(field, "must be a map of parameter names to values");
  for (const auto& kv : n) {
    const std::string key = kv.first.Scalar();
    const StackParameter* p = nullptr;
    std::string allowed;
    for (const auto& candidate : stack_parameters()) {
      if (key == candidate.key) p = &candidate;
      allowed += (allowed.empty() ? "" : ", ") + std::string(candidate.key);
    }
    if (!p) throw InputError(field + "." + key, "unknown parameter; allowed: " + allowed);
    const double v = read_double(kv.second, field + "." + key);
    if (!std::isfinite(v) || v < p->lo || v > p->hi)
      throw InputError(field + "." + key, fmt::format("must be from {:g} to {:g}", p->lo, p->hi));
    s.*(p->field) = v * p->scale;
  }
}

void read_fit(const YAML::Node& n, const std::string& field, Stack& s) {
  check_keys(n, field, {"fitted_on", "runs", "band_p05_pct", "band_p95_pct", "cv_mean_abs_err_pct",
                        "validated_chips", "validated_params_billion", "validated_systems"});
  StackBand& b = s.band;
  if (n["fitted_on"]) b.fitted_on = read_string(n["fitted_on"], field + ".fitted_on");
  if (n["runs"]) {
    const int64_t runs = read_int(n["runs"], field + ".runs");
    if (runs < 0 || runs > 100000000) throw InputError(field + ".runs", "must be a count of runs");
    b.runs = int(runs);
  }
  auto pct = [&](const char* key, double& out) {
    if (!n[key]) return;
    out = read_double(n[key], field + "." + key);
    if (!std::isfinite(out) || out <= -100 || out > 1000)
      throw InputError(field + "." + key, "must be a percentage above -100");
  };
  pct("band_p05_pct", b.p05_pct);
  pct("band_p95_pct", b.p95_pct);
  if (b.p05_pct > b.p95_pct) throw InputError(field + ".band_p05_pct", "must not exceed band_p95_pct");
  auto range = [&](const char* key, double& lo, double& hi, double unit) {
    if (!n[key]) return;
    const YAML::Node r = n[key];
    if (!r.IsSequence() || r.size() != 2) throw InputError(field + "." + key, "must be [low, high]");
    lo = read_double(r[0], field + "." + key) * unit;
    hi = read_double(r[1], field + "." + key) * unit;
    if (!(lo > 0) || !(hi >= lo) || !std::isfinite(hi)) throw InputError(field + "." + key, "must be 0 < low <= high");
  };
  range("validated_chips", b.min_chips, b.max_chips, 1.0);
  range("validated_params_billion", b.min_params, b.max_params, 1e9);
  if (n["validated_systems"]) {
    const YAML::Node list = n["validated_systems"];
    if (!list.IsSequence()) throw InputError(field + ".validated_systems", "must be a list of system names");
    b.systems.clear();
    for (size_t i = 0; i < list.size(); ++i) b.systems.push_back(read_string(list[i], field + ".validated_systems"));
  }
  if (n["cv_mean_abs_err_pct"]) {
    const YAML::Node cv = n["cv_mean_abs_err_pct"];
    if (!cv.IsMap()) throw InputError(field + ".cv_mean_abs_err_pct", "must map file names to percentages");
    for (const auto& kv : cv)
      b.cv_mean_abs_err_pct[kv.first.Scalar()] =
          read_double(kv.second, field + ".cv_mean_abs_err_pct." + kv.first.Scalar());
  }
}

}  // namespace

Stack parse_stack_onto(Stack s, const YAML::Node& n, const std::string& field) {
  check_keys(n, field, {"name", "description", "fused_attention", "fused_elementwise",
                        "grad_accumulation_fusion", "grad_reduce_bytes", "overlap_grad_reduce",
                        "activation_bytes", "vocab_multiple", "fp8", "shard_activations_over_tp", "vocab_parallel",
                        "loss_bytes_per_logit", "overlap_tp_comm", "pipeline_paced_by_last_stage", "fp8_rowwise", "fp8_tp_allgather", "cp_comm", "moe_dispatch", "overlap_paired_passes", "overlap_moe_a2a", "shardings", "recomputes", "schedules", "parameters",
                        "fit"});
  if (n["name"]) s.name = read_string(n["name"], field + ".name");
  if (n["description"]) s.description = read_string(n["description"], field + ".description");
  read_choices(n, field, s);
  if (n["shardings"]) read_list(n["shardings"], field + ".shardings", s.shardings, parse_sharding);
  if (n["recomputes"]) read_list(n["recomputes"], field + ".recomputes", s.recomputes, parse_recompute);
  if (n["schedules"]) read_list(n["schedules"], field + ".schedules", s.schedules, parse_schedule);
  if (n["parameters"]) read_parameters(n["parameters"], field + ".parameters", s);
  if (n["fit"]) read_fit(n["fit"], field + ".fit", s);
  return s;
}

Stack parse_stack(const YAML::Node& node, const std::string& field) {
  if (!node.IsMap()) throw InputError(field, "must be a map of stack fields");
  Stack s = parse_stack_onto(Stack{}, node, field);
  if (s.name.empty()) throw InputError(field + ".name", "missing");
  return s;
}

namespace {
const std::map<std::string, Stack>& presets() {
  static const std::map<std::string, Stack> table = load_presets<Stack>(PresetKind::stacks, "hwmodels/stacks", parse_stack);
  return table;
}
}  // namespace

Stack stack_preset(const std::string& name, const std::string& field) {
  auto it = presets().find(name);
  if (it != presets().end()) return it->second;
  std::string allowed;
  for (const auto& entry : presets()) allowed += (allowed.empty() ? "" : ", ") + entry.first;
  throw InputError(field, "unknown stack '" + name + "'; allowed: " + allowed);
}

std::vector<std::string> stack_preset_names() {
  std::vector<std::string> names;
  for (const auto& entry : presets()) names.push_back(entry.first);
  return names;
}

namespace {
// Four significant digits, written as a plain scalar (no binary-float noise in the file).
std::string short_number(double v, int digits = 4) { return fmt::format("{:.{}g}", v, digits); }
}  // namespace

bool Stack::supports(Sharding x) const {
  return shardings.empty() || std::find(shardings.begin(), shardings.end(), x) != shardings.end();
}
bool Stack::supports(Recompute x) const {
  return recomputes.empty() || std::find(recomputes.begin(), recomputes.end(), x) != recomputes.end();
}
bool Stack::supports(Schedule x) const {
  return schedules.empty() || std::find(schedules.begin(), schedules.end(), x) != schedules.end();
}

void check_stack_supports(const Stack& s, const Layout& l, const std::string& sharding_field,
                          const std::string& recompute_field, const std::string& schedule_field) {
  auto list = [](const auto& values) {
    std::string out;
    for (auto v : values) out += (out.empty() ? "" : ", ") + std::string(to_string(v));
    return out;
  };
  if (!s.supports(l.sharding))
    throw InputError(sharding_field, "stack " + s.name + " does not run sharding " + to_string(l.sharding) +
                                         "; it runs: " + list(s.shardings));
  if (!s.supports(l.recompute))
    throw InputError(recompute_field, "stack " + s.name + " does not run recompute " + to_string(l.recompute) +
                                          "; it runs: " + list(s.recomputes));
  if (l.pp > 1 && !s.supports(l.schedule))
    throw InputError(schedule_field, "stack " + s.name + " does not run schedule " + to_string(l.schedule) +
                                         "; it runs: " + list(s.schedules));
}

std::string stack_yaml(const Stack& s) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << s.name;
  if (!s.description.empty()) e << YAML::Key << "description" << YAML::Value << s.description;
  e << YAML::Key << "fused_attention" << YAML::Value << s.fused_attention;
  e << YAML::Key << "fused_elementwise" << YAML::Value << s.fused_elementwise;
  e << YAML::Key << "grad_accumulation_fusion" << YAML::Value << s.grad_accumulation_fusion;
  e << YAML::Key << "grad_reduce_bytes" << YAML::Value << int(s.grad_reduce_bytes);
  e << YAML::Key << "overlap_grad_reduce" << YAML::Value << s.overlap_grad_reduce;
  e << YAML::Key << "activation_bytes" << YAML::Value << int(s.activation_bytes);
  e << YAML::Key << "vocab_multiple" << YAML::Value << s.vocab_multiple;
  e << YAML::Key << "fp8" << YAML::Value << s.fp8;
  e << YAML::Key << "shard_activations_over_tp" << YAML::Value << s.shard_activations_over_tp;
  e << YAML::Key << "vocab_parallel" << YAML::Value << s.vocab_parallel;
  e << YAML::Key << "loss_bytes_per_logit" << YAML::Value << short_number(s.loss_bytes_per_logit);
  e << YAML::Key << "overlap_tp_comm" << YAML::Value << s.overlap_tp_comm;
  e << YAML::Key << "pipeline_paced_by_last_stage" << YAML::Value << s.pipeline_paced_by_last_stage;
  e << YAML::Key << "fp8_rowwise" << YAML::Value << s.fp8_rowwise;
  e << YAML::Key << "fp8_tp_allgather" << YAML::Value << s.fp8_tp_allgather;
  e << YAML::Key << "cp_comm" << YAML::Value << to_string(s.cp_comm);
  e << YAML::Key << "moe_dispatch" << YAML::Value << to_string(s.moe_dispatch);
  e << YAML::Key << "overlap_paired_passes" << YAML::Value << s.overlap_paired_passes;
  e << YAML::Key << "overlap_moe_a2a" << YAML::Value << s.overlap_moe_a2a;
  if (!s.shardings.empty()) {
    e << YAML::Key << "shardings" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (Sharding x : s.shardings) e << to_string(x);
    e << YAML::EndSeq;
  }
  if (!s.recomputes.empty()) {
    e << YAML::Key << "recomputes" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (Recompute x : s.recomputes) e << to_string(x);
    e << YAML::EndSeq;
  }
  if (!s.schedules.empty()) {
    e << YAML::Key << "schedules" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (Schedule x : s.schedules) e << to_string(x);
    e << YAML::EndSeq;
  }
  e << YAML::Key << "parameters" << YAML::Value << YAML::BeginMap;
  for (const auto& p : stack_parameters())
    e << YAML::Key << p.key << YAML::Value << short_number(s.*(p.field) / p.scale);
  e << YAML::EndMap;
  if (s.band.runs > 0 || !s.band.fitted_on.empty()) {
    e << YAML::Key << "fit" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "fitted_on" << YAML::Value << s.band.fitted_on;
    e << YAML::Key << "runs" << YAML::Value << s.band.runs;
    e << YAML::Key << "band_p05_pct" << YAML::Value << fmt::format("{:.2f}", s.band.p05_pct);
    e << YAML::Key << "band_p95_pct" << YAML::Value << fmt::format("{:.2f}", s.band.p95_pct);
    if (s.band.max_chips > 0) {
      e << YAML::Key << "validated_chips" << YAML::Value << YAML::Flow << YAML::BeginSeq << s.band.min_chips
        << s.band.max_chips << YAML::EndSeq;
      e << YAML::Key << "validated_params_billion" << YAML::Value << YAML::Flow << YAML::BeginSeq
        << short_number(s.band.min_params / 1e9, 8) << short_number(s.band.max_params / 1e9, 8) << YAML::EndSeq;
    }
    if (!s.band.systems.empty()) {
      e << YAML::Key << "validated_systems" << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const std::string& name : s.band.systems) e << name;
      e << YAML::EndSeq;
    }
    if (!s.band.cv_mean_abs_err_pct.empty()) {
      e << YAML::Key << "cv_mean_abs_err_pct" << YAML::Value << YAML::BeginMap;
      for (const auto& [file, err] : s.band.cv_mean_abs_err_pct)
        e << YAML::Key << file << YAML::Value << fmt::format("{:.2f}", err);
      e << YAML::EndMap;
    }
    e << YAML::EndMap;
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace palmsim
