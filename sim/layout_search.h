#pragma once
// Enumerates every legal layout of a scenario's chips (tp, pp, dp, vpp and schedule, microbatch,
// sp, sharding, recompute, and on TPU systems the number of pods), predicts each analytically in parallel
// (oneTBB) and ranks the ones that fit in memory by step time.
#include "sim/scenario.h"
#include "sim/report.h"

#include <optional>
#include <vector>

namespace palmsim {

// Layout fields held fixed; an empty optional is searched over.
struct LayoutConstraints {
  std::optional<int> tp, pp, dp, pods, vpp, microbatch;
  std::optional<int> cp;  // empty: the scenario's, and on GPU clusters every cp that splits the sequence
  std::optional<int> ep;  // empty: for a mixture-of-experts model, every legal ep
  std::optional<int> etp;  // empty: for a mixture-of-experts model, 1 and (beside tp > 1) tp
  std::optional<bool> sp;
  std::optional<Sharding> sharding;
  std::optional<Recompute> recompute;
  std::optional<Schedule> schedule;
};

struct SearchResult {
  std::vector<Report> top;   // best first, fitting layouts only
  int64_t evaluated = 0;     // legal layouts predicted
  int64_t fitting = 0;       // of those, fitting in memory
  double seconds = 0;        // wall time of the search
};

// `require_fit` false: layouts over the memory capacity are ranked too (a measured run that palmsim's
// memory estimate says cannot fit still ran; its time is still predicted).
SearchResult search_layouts(const Scenario& scenario, int top_k, const LayoutConstraints& fixed = {},
                            bool require_fit = true);

}  // namespace palmsim
