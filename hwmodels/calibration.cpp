#include "hwmodels/calibration.h"

#include "model/atomic_file.h"
#include "model/input_error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>

namespace palmsim {

double Calibration::gemm_efficiency(int64_t m, int64_t n, int64_t k, int64_t batch) const {
  const double lm = std::log(double(m * batch)), ln = std::log(double(n)), lk = std::log(double(k));
  double best = std::numeric_limits<double>::infinity(), eff = 0;
  for (const auto& s : gemm) {
    const double dm = lm - std::log(double(s.m * s.batch)), dn = ln - std::log(double(s.n)),
                 dk = lk - std::log(double(s.k));
    const double dist = dm * dm + dn * dn + dk * dk;
    if (dist < best) best = dist, eff = s.efficiency;
  }
  return eff;
}

double Calibration::collective_seconds(const std::string& kind, int ranks, double bytes) const {
  std::vector<const CollectiveSample*> samples;
  for (const auto& c : collectives)
    if (c.kind == kind && c.ranks == ranks) samples.push_back(&c);
  if (samples.empty()) return -1.0;
  std::sort(samples.begin(), samples.end(), [](auto* a, auto* b) { return a->bytes < b->bytes; });
  if (samples.size() == 1) return samples[0]->seconds * std::max(1.0, bytes / samples[0]->bytes);
  size_t hi = 1;
  while (hi + 1 < samples.size() && samples[hi]->bytes < bytes) ++hi;
  const CollectiveSample& a = *samples[hi - 1];
  const CollectiveSample& b = *samples[hi];
  // Time is affine in bytes (latency + bytes / bandwidth) between neighbouring sizes.
  const double slope = (b.seconds - a.seconds) / (b.bytes - a.bytes);
  return std::max(0.0, a.seconds + slope * (bytes - a.bytes));
}

nlohmann::json machine_speed_json(const MachineSpeed& m) {
  return {{"gemm_flops_per_s", m.gemm_flops_per_s}, {"memory_bytes_per_s", m.memory_bytes_per_s},
          {"samples", m.samples},
          {"threads", m.threads},
          {"ranks", m.ranks},
          {"memory_probe_bytes", m.memory_probe_bytes},
          {"gemm_spread", m.gemm_spread},
          {"memory_spread", m.memory_spread}};
}

Calibration load_calibration(const std::string& path) {
  std::ifstream in(path);
  require_regular_file(path, "calibration");
  if (!in) throw InputError("calibration", "cannot read file '" + path + "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError("calibration", "'" + path + "' is not valid JSON: " + e.what());
  }
  Calibration c;
  try {
    c.device = j.at("device").get<std::string>();
    c.date = j.at("date").get<std::string>();
    c.peak_flops = j.value("peak_flops", 0.0);
    c.memory_bytes_per_s = j.value("memory_bytes_per_s", 0.0);
    c.memory_bytes = j.value("memory_bytes", 0.0);
    c.attention_efficiency = j.value("attention_efficiency", 0.0);
    const nlohmann::json gemm = j.value("gemm", nlohmann::json::array());
    for (const auto& g : gemm) {
      GemmSample s{g.at("m").get<int64_t>(), g.at("n").get<int64_t>(), g.at("k").get<int64_t>(),
                   g.value("batch", int64_t(1)), g.at("efficiency").get<double>()};
      if (s.m <= 0 || s.n <= 0 || s.k <= 0 || s.batch <= 0 || !(s.efficiency > 0))
        throw InputError("calibration.gemm", "shapes and efficiency must be positive in '" + path + "'");
      c.gemm.push_back(s);
    }
    const nlohmann::json memory_ops = j.value("memory_op_bytes_per_s", nlohmann::json::object());
    for (const auto& [name, rate] : memory_ops.items()) {
      if (!(rate.get<double>() > 0))
        throw InputError("calibration.memory_op_bytes_per_s." + name, "must be positive in '" + path + "'");
      c.memory_op_bytes_per_s[name] = rate.get<double>();
    }
    const nlohmann::json attention = j.value("attention_efficiency_by_phase", nlohmann::json::object());
    for (const auto& [phase, e] : attention.items()) {
      if (!(e.get<double>() > 0))
        throw InputError("calibration.attention_efficiency_by_phase." + phase, "must be positive in '" + path + "'");
      c.attention_efficiency_by_phase[phase] = e.get<double>();
    }
    const nlohmann::json collectives = j.value("collectives", nlohmann::json::array());
    for (const auto& x : collectives)
      c.collectives.push_back({x.at("kind").get<std::string>(), x.at("ranks").get<int>(),
                               x.at("bytes").get<double>(), x.at("seconds").get<double>()});
    if (j.contains("reference")) {
      const nlohmann::json& r = j.at("reference");
      MachineSpeed& m = c.reference;
      m.gemm_flops_per_s = r.at("gemm_flops_per_s").get<double>();
      m.memory_bytes_per_s = r.at("memory_bytes_per_s").get<double>();
      m.samples = r.at("samples").get<int>();
      m.threads = r.value("threads", 0);
      m.ranks = r.value("ranks", 1);
      m.memory_probe_bytes = r.at("memory_probe_bytes").get<double>();
      m.gemm_spread = r.value("gemm_spread", 0.0);
      m.memory_spread = r.value("memory_spread", 0.0);
      if (!m.measured() || m.threads < 0 || m.ranks < 1 || !(m.memory_probe_bytes > 0))
        throw InputError("calibration.reference",
                         "rates, samples and memory_probe_bytes must be positive in '" + path + "'");
    }
  } catch (const nlohmann::json::exception& e) {
    throw InputError("calibration", "'" + path + "' lacks a field or has a wrong type: " + e.what());
  }
  return c;
}

void save_calibration(const Calibration& c, const std::string& path) {
  nlohmann::json j;
  j["device"] = c.device;
  j["date"] = c.date;
  j["peak_flops"] = c.peak_flops;
  j["memory_bytes_per_s"] = c.memory_bytes_per_s;
  j["memory_bytes"] = c.memory_bytes;
  j["attention_efficiency"] = c.attention_efficiency;
  j["gemm"] = nlohmann::json::array();
  for (const auto& s : c.gemm)
    j["gemm"].push_back({{"m", s.m}, {"n", s.n}, {"k", s.k}, {"batch", s.batch}, {"efficiency", s.efficiency}});
  j["memory_op_bytes_per_s"] = c.memory_op_bytes_per_s;
  j["attention_efficiency_by_phase"] = c.attention_efficiency_by_phase;
  j["collectives"] = nlohmann::json::array();
  for (const auto& s : c.collectives)
    j["collectives"].push_back({{"kind", s.kind}, {"ranks", s.ranks}, {"bytes", s.bytes}, {"seconds", s.seconds}});
  if (c.reference.measured()) j["reference"] = machine_speed_json(c.reference);
  // Write beside the target and rename, so an interrupted run never leaves half a file.
  write_file_atomically(j.dump(2) + "\n", path, "output");
}

}  // namespace palmsim
