#include "sim/report.h"

#include <fmt/format.h>

namespace palmsim {

nlohmann::json layout_json(const Layout& l) {
  return {{"tp", l.tp},       {"pp", l.pp},
          {"dp", l.dp},       {"pods", l.pods},
          {"cp", l.cp},       {"ep", l.ep},
          {"etp", l.etp},
          {"vpp", l.vpp},
          {"microbatch", l.microbatch},
          {"sp", l.sp},       {"account_ends", l.account_ends},
          {"sharding", to_string(l.sharding)},
          {"recompute", to_string(l.recompute)},
          {"schedule", to_string(l.schedule)}};
}

std::string layout_summary(const Layout& l) {
  // cp, ep and etp only where they are used, so dense layouts read as they always have.
  const std::string extra = (l.cp > 1 ? fmt::format(" cp={}", l.cp) : "") + (l.ep > 1 ? fmt::format(" ep={}", l.ep) : "") +
                            (l.etp > 1 ? fmt::format(" etp={}", l.etp) : "") + (l.account_ends ? " account_ends=1" : "");
  return fmt::format("tp={} pp={} dp={} pods={}{} vpp={} mb={} sp={} sharding={} recompute={} schedule={}",
                     l.tp, l.pp, l.dp, l.pods, extra, l.vpp, l.microbatch, l.sp ? 1 : 0,
                     to_string(l.sharding), to_string(l.recompute), to_string(l.schedule));
}

nlohmann::json report_json(const Report& r) {
  nlohmann::json j;
  j["step_time_s"] = r.step_time_s;
  j["tokens_per_s"] = r.tokens_per_s;
  j["mfu"] = r.mfu;
  j["hfu"] = r.hfu;
  j["model_flops_per_token"] = r.model_flops_per_token;
  j["hardware_flops_per_token"] = r.hardware_flops_per_token;
  j["memory_per_chip_bytes"] = r.memory.total();
  j["memory_capacity_bytes"] = r.memory_capacity_bytes;
  j["memory_breakdown_bytes"] = {{"weights", r.memory.weights},
                                 {"gradients", r.memory.gradients},
                                 {"optimizer_state", r.memory.optimizer_state},
                                 {"activations", r.memory.activations},
                                 {"working", r.memory.working}};
  j["fits_in_memory"] = r.fits_in_memory;
  j["breakdown"] = {{"compute_s", r.breakdown.compute_s},
                    {"exposed_comm_s", r.breakdown.exposed_comm_s},
                    {"bubble_s", r.breakdown.bubble_s},
                    {"optimizer_s", r.breakdown.optimizer_s},
                    {"recompute_s", r.breakdown.recompute_s},
                    {"all_to_all_s", r.breakdown.all_to_all_s},
                    {"host_sync_s", r.breakdown.host_sync_s},
                    {"beside_collectives_s", r.breakdown.beside_collectives_s},
                    {"core_wait_s", r.breakdown.core_wait_s}};
  j["layout"] = layout_json(r.layout);
  j["n_chips"] = r.n_chips;
  j["global_batch"] = r.global_batch;
  j["system"] = r.system;
  j["model"] = r.model;
  j["stack"] = r.stack;
  if (r.has_band()) {
    j["step_time_band_s"] = {r.band_low_s, r.band_high_s};
    j["band_runs"] = r.band_runs;
  } else {
    j["step_time_band_s"] = nullptr;
  }
  if (!r.outside_validated.empty()) j["outside_validated"] = r.outside_validated;
  if (!r.per_op_s.empty()) j["per_op_s"] = r.per_op_s;
  return j;
}

std::string report_table(const Report& r, const std::string& title) {
  constexpr double GiB = 1024.0 * 1024.0 * 1024.0;
  const Breakdown& b = r.breakdown;
  auto pct = [&](double s) { return r.step_time_s > 0 ? 100.0 * s / r.step_time_s : 0.0; };
  std::string out;
  out += fmt::format("{}: {} on {} x {}\n", title, r.model, r.n_chips, r.system);
  out += fmt::format("  layout            {}\n", layout_summary(r.layout));
  out += fmt::format("  global batch      {} sequences\n", r.global_batch);
  if (r.has_band())
    out += fmt::format("  step time         {:.3f} s (90 % band {:.3f}-{:.3f} s, from {} validated runs of {})\n",
                       r.step_time_s, r.band_low_s, r.band_high_s, r.band_runs, r.stack);
  else
    out += fmt::format("  step time         {:.3f} s (no band: {} validated runs of stack {}, too few)\n",
                       r.step_time_s, r.band_runs, r.stack);
  if (!r.outside_validated.empty()) out += fmt::format("  note              {}\n", r.outside_validated);
  out += fmt::format("  throughput        {:.1f} tokens/s\n", r.tokens_per_s);
  out += fmt::format("  MFU               {:.1f} %\n", 100.0 * r.mfu);
  out += fmt::format("  HFU               {:.1f} %\n", 100.0 * r.hfu);
  out += fmt::format("  model FLOPs       {:.4g} FLOP/token (hardware {:.4g} FLOP/token)\n",
                     r.model_flops_per_token, r.hardware_flops_per_token);
  out += fmt::format("  memory per chip   {:.2f} GiB of {:.2f} GiB ({})\n", r.memory.total() / GiB,
                     r.memory_capacity_bytes / GiB, r.fits_in_memory ? "fits" : "DOES NOT FIT");
  out += fmt::format("    weights {:.2f} GiB, gradients {:.2f} GiB, optimizer {:.2f} GiB, "
                     "activations {:.2f} GiB, working {:.2f} GiB\n",
                     r.memory.weights / GiB, r.memory.gradients / GiB, r.memory.optimizer_state / GiB,
                     r.memory.activations / GiB, r.memory.working / GiB);
  out += "  breakdown\n";
  out += fmt::format("    compute         {:9.3f} s  {:5.1f} %\n", b.compute_s, pct(b.compute_s));
  if (b.host_sync_s > 0)
    out += fmt::format("      host syncs    {:9.3f} s  {:5.1f} %\n", b.host_sync_s, pct(b.host_sync_s));
  if (b.beside_collectives_s > 0)  // compute slowed by the side stream's collectives beside it
    out += fmt::format("      slowed by comm{:9.3f} s  {:5.1f} %\n", b.beside_collectives_s, pct(b.beside_collectives_s));
  if (b.core_wait_s > 0)  // thread ranks waiting for a core they share
    out += fmt::format("      core waits    {:9.3f} s  {:5.1f} %\n", b.core_wait_s, pct(b.core_wait_s));
  out += fmt::format("    recompute       {:9.3f} s  {:5.1f} %\n", b.recompute_s, pct(b.recompute_s));
  out += fmt::format("    exposed comm    {:9.3f} s  {:5.1f} %\n", b.exposed_comm_s, pct(b.exposed_comm_s));
  if (b.all_to_all_s > 0)
    out += fmt::format("      all-to-all    {:9.3f} s  {:5.1f} %\n", b.all_to_all_s, pct(b.all_to_all_s));
  out += fmt::format("    pipeline bubble {:9.3f} s  {:5.1f} %\n", b.bubble_s, pct(b.bubble_s));
  out += fmt::format("    optimizer       {:9.3f} s  {:5.1f} %\n", b.optimizer_s, pct(b.optimizer_s));
  if (!r.per_op_s.empty()) {
    out += "  per op (seconds per step, before overlap)\n";
    for (const auto& [name, s] : r.per_op_s) out += fmt::format("    {:28s} {:9.4f} s\n", name, s);
  }
  return out;
}

}  // namespace palmsim
