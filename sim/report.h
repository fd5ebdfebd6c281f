#pragma once
// What predict and simulate print: step time, throughput, MFU/HFU, memory and where time went.
// Keys and units follow DESIGN.md ("--json of predict/simulate").
#include "model/layout.h"
#include "model/memory.h"
#include "model/pipeline_schedule.h"

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace palmsim {

struct Breakdown {
  double compute_s = 0;       // forward and backward arithmetic and memory-bound ops
  double exposed_comm_s = 0;  // communication nothing hides
  double bubble_s = 0;        // pipeline fill and drain
  double optimizer_s = 0;     // gradient norm and update
  double recompute_s = 0;     // forward work done again for backward
  double all_to_all_s = 0;    // of exposed_comm_s: the expert-parallel all-to-alls (dispatch, combine)
  double host_sync_s = 0;     // of compute_s and recompute_s: device time lost at host synchronisations
  double beside_collectives_s = 0;  // of compute_s: compute slowed by the side stream's collectives
  double core_wait_s = 0;     // of compute_s (simulated: and recompute_s): thread ranks waiting for a
                              // core they share (System::shared_cores)
  double total() const { return compute_s + exposed_comm_s + bubble_s + optimizer_s + recompute_s; }
};

struct Report {
  std::string model;
  std::string system;
  Layout layout;
  int64_t n_chips = 0;
  int64_t global_batch = 0;
  double step_time_s = 0;
  double tokens_per_s = 0;
  double mfu = 0;  // fraction
  double hfu = 0;  // fraction
  double model_flops_per_token = 0;
  double hardware_flops_per_token = 0;
  MemoryBreakdown memory;
  double memory_capacity_bytes = 0;
  bool fits_in_memory = false;
  Breakdown breakdown;
  // The software stack and the band its cross-validated residuals give this step time: the
  // measured step lay inside [band_low_s, band_high_s] for 90 % of held-out runs of the stack.
  std::string stack;
  int band_runs = 0;  // validated runs of the stack behind the band
  double band_low_s = 0, band_high_s = 0;  // both 0: no band (too few validated runs)
  bool has_band() const { return band_high_s > 0; }
  std::string outside_validated;  // non-empty: this prediction lies outside the runs behind the band
  std::map<std::string, double> per_op_s;  // "name.phase" -> seconds per step, when requested
  // One model chunk's pass times as priced: what ZB-V's and ZB-H2's orders were played out with
  // (validate-local runs the trainer in the same order).
  PassSeconds pipeline_passes;
};

nlohmann::json layout_json(const Layout& l);
std::string layout_summary(const Layout& l);  // "tp=12 pp=1 dp=512 ..." for tables and CSV
nlohmann::json report_json(const Report& r);
std::string report_table(const Report& r, const std::string& title);

}  // namespace palmsim
