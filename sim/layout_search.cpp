#include "sim/layout_search.h"

#include "sim/analytic_estimator.h"
#include "sim/predict.h"

#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>

namespace palmsim {

namespace {

std::vector<int> divisors_of(int64_t n) {
  std::vector<int> d;
  for (int64_t i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(int(i));
  return d;
}

template <class T>
std::vector<T> choices(const std::optional<T>& fixed, std::vector<T> all) {
  if (fixed) return {*fixed};
  return all;
}

struct Candidate {
  double step_time_s;
  Layout layout;
};

// A worker's running best K, merged at the end.
struct TopK {
  std::vector<Candidate> best;
  int64_t evaluated = 0, fitting = 0;
  void offer(const Candidate& c, int k) {
    if (int(best.size()) < k) {
      best.push_back(c);
      std::push_heap(best.begin(), best.end(), worse_first);
    } else if (c.step_time_s < best.front().step_time_s) {
      std::pop_heap(best.begin(), best.end(), worse_first);
      best.back() = c;
      std::push_heap(best.begin(), best.end(), worse_first);
    }
  }
  static bool worse_first(const Candidate& a, const Candidate& b) { return a.step_time_s < b.step_time_s; }
};

// One mesh to search: its tensor, pipeline and context degrees and how many pods hold it.
struct Grid {
  int tp, pp, pods, cp;
};

// Context parallelism, unless fixed: the scenario's, and on GPU clusters every degree whose 2 cp
// chunks split the sequence evenly (layout_is_legal's rule; TPU pods do not model it). For each,
// every tp x pp that divides the chips and the heads (stages may be uneven: PaLM 540B's 118 layers
// on 8 stages, 15 on the heaviest; each needs a layer), over the pod counts the system allows.
std::vector<Grid> mesh_grids(const Scenario& s, const LayoutConstraints& fixed) {
  const ModelSpec& m = s.model;
  std::vector<int> cps{fixed.cp.value_or(s.layout.cp)};
  if (!fixed.cp && s.system.fabric == Fabric::gpu_fat_tree)
    for (int c : divisors_of(s.n_chips))
      if (c > 1 && c != cps[0] && m.seq_len % (2 * int64_t(c)) == 0) cps.push_back(c);
  std::vector<Grid> grids;
  for (int cp : cps) {
    if (cp < 1 || s.n_chips % cp) continue;
    const int64_t chips = s.n_chips / cp;  // tp * pp * dp; each of those ranks is cp chips
    // GPU clusters are one pod; a TPU run may split its data-parallel ranks over any number of pods
    // whose slices fit (at most max_chips_per_pod chips each).
    std::vector<int> pod_counts{1};
    if (s.system.fabric == Fabric::tpu_torus) pod_counts = divisors_of(chips);
    if (fixed.pods) pod_counts = {*fixed.pods};
    for (int tp : choices(fixed.tp, divisors_of(chips)))
      for (int pp : choices(fixed.pp, divisors_of(chips / tp))) {
        if (chips % (int64_t(tp) * pp) || m.n_heads % tp || m.n_layers < pp) continue;
        const int64_t dp = chips / (int64_t(tp) * pp);
        if (fixed.dp && *fixed.dp != dp) continue;
        for (int pods : pod_counts) {
          if (dp % pods) continue;
          if (s.system.max_chips_per_pod > 0 && chips * cp / pods > s.system.max_chips_per_pod) continue;
          grids.push_back({tp, pp, pods, cp});
        }
      }
  }
  return grids;
}

// What every mesh shares: the shardings and recomputes the system's software stack can run, the
// compute model and the plan options.
struct SearchSpace {
  const Scenario& s;
  const LayoutConstraints& fixed;
  std::vector<Sharding> shardings;
  std::vector<Recompute> recomputes;
  std::vector<Schedule> pipeline_schedules;  // pp > 1, one chunk per stage
  std::vector<Schedule> chunked_schedules;   // vpp > 1
  ComputeModel compute;
  PlanOptions plan_options;
  bool require_fit;
  int top_k;
};

// Expert parallelism, unless fixed: every degree that divides the experts and the tensor- x
// data- x context-parallel ranks of a pod (Megatron-Core's folding; check_layout refuses ep 1
// beside tp > 1); on a TPU slice those that split its data-parallel axes (layout_fits_system).
// Dense models keep the scenario's ep.
std::vector<int> expert_degrees(const SearchSpace& sp, const Layout& base) {
  const ModelSpec& m = sp.s.model;
  std::vector<int> eps{sp.fixed.ep.value_or(sp.s.layout.ep)};
  if (sp.fixed.ep || !m.moe.sparse()) return eps;
  eps.clear();
  for (int e : divisors_of(int64_t(base.tp) * (base.dp / base.pods) * base.cp))
    if (m.moe.n_experts % e == 0) eps.push_back(e);
  return eps;
}

// Expert tensor parallelism, unless fixed: whole experts (etp 1, today's recipes for fine-grained
// experts) and, beside tp > 1, experts split like the dense MLP (etp = tp, Megatron-LM's default
// when --expert-tensor-parallel-size is unset). A stack that dispatches per rank (DeepEP) keeps
// them whole (build_step_plan refuses etp > 1 there). Dense models keep the scenario's etp.
std::vector<int> expert_tensor_degrees(const SearchSpace& sp, const Layout& base) {
  std::vector<int> etps{sp.fixed.etp.value_or(sp.s.layout.etp)};
  if (sp.fixed.etp || !sp.s.model.moe.sparse()) return etps;
  etps = {1};
  if (base.tp > 1 && sp.plan_options.moe_dispatch == TokenDispatch::per_expert) etps.push_back(base.tp);
  return etps;
}

// Every completion of one mesh and its expert degrees: vpp (the heaviest stage's layers split into
// vpp equal chunks), schedule, microbatch, sp, sharding and recompute; the legal ones are estimated.
void search_completions(const SearchSpace& sp, const Layout& base, const std::vector<int>& vpps, TopK& mine) {
  const Scenario& s = sp.s;
  const ModelSpec& m = s.model;
  const LayoutConstraints& fixed = sp.fixed;
  const int64_t per_rank = s.global_batch / base.dp;
  const CommModel comm(s.system, base, s.calibration.get());
  for (int vpp : choices(fixed.vpp, vpps)) {
    std::vector<Schedule> schedules = vpp > 1       ? sp.chunked_schedules
                                      : base.pp > 1 ? sp.pipeline_schedules
                                                    : std::vector<Schedule>{Schedule::one_f_one_b};
    if (fixed.schedule) schedules = {*fixed.schedule};
    for (Schedule schedule : schedules)
      for (int mb : choices(fixed.microbatch, divisors_of(per_rank)))
        for (bool seq_par : choices(fixed.sp, base.tp > 1 ? std::vector<bool>{false, true} : std::vector<bool>{false}))
          for (Sharding sharding : sp.shardings)
            for (Recompute recompute : sp.recomputes) {
              Layout l = base;
              l.vpp = vpp;
              l.schedule = schedule;
              l.microbatch = mb;
              l.sp = seq_par;
              l.sharding = sharding;
              l.recompute = recompute;
              if (!layout_is_legal(l, m, s.n_chips, s.global_batch)) continue;
              if (pairs_moe_passes(m, l, sp.plan_options) && !combined_1f1b_runs(l)) continue;
              const StepPlan plan = build_step_plan(m, l, s.global_batch, sp.plan_options);
              // A layout that must fit and does not needs no step time (estimate's own test).
              if (sp.require_fit && memory_per_chip(plan).total() > s.system.chip.hbm_bytes) {
                ++mine.evaluated;
                continue;
              }
              const Report r = estimate(plan, s.system, sp.compute, comm);
              ++mine.evaluated;
              if (r.fits_in_memory) ++mine.fitting;
              else if (sp.require_fit) continue;
              mine.offer({r.step_time_s, l}, sp.top_k);
            }
  }
}

// Every completion of one mesh: its expert degrees, then the rest (search_completions).
void search_mesh(const SearchSpace& sp, const Grid& g, TopK& mine) {
  const Scenario& s = sp.s;
  const ModelSpec& m = s.model;
  const int64_t chips = s.n_chips / g.cp;
  Layout base;
  base.tp = g.tp;
  base.pp = g.pp;
  base.dp = int(chips / (int64_t(g.tp) * g.pp));
  base.pods = g.pods;
  base.cp = g.cp;
  base.account_ends = s.layout.account_ends;  // how the scenario's pipelines split, whatever their depth
  if (s.global_batch % base.dp != 0) return;
  std::vector<int> vpps{1};
  if (g.pp > 1)
    for (int v : divisors_of((m.n_layers + g.pp - 1) / g.pp))
      if (v > 1 && int64_t(g.pp) * v <= m.n_layers) vpps.push_back(v);
  for (int ep : expert_degrees(sp, base))
    for (int etp : expert_tensor_degrees(sp, base)) {
      base.ep = ep;
      base.etp = etp;
      if (layout_fits_system(s.system, base)) search_completions(sp, base, vpps, mine);
    }
}

}  // namespace

SearchResult search_layouts(const Scenario& s, int top_k, const LayoutConstraints& fixed, bool require_fit) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Grid> grids = mesh_grids(s, fixed);
  SearchSpace space{s, fixed, {}, {}, {}, {}, ComputeModel(stack_adjusted(s.system).chip, s.calibration.get()),
                    plan_options_for(s), require_fit, top_k};
  // Only what the system's software stack can run.
  for (Sharding x : choices(fixed.sharding, {Sharding::none, Sharding::zero1, Sharding::zero2, Sharding::zero3,
                                             Sharding::fsdp}))
    if (s.system.stack.supports(x)) space.shardings.push_back(x);
  for (Recompute x : choices(fixed.recompute, {Recompute::none, Recompute::selective, Recompute::full,
                                               Recompute::palm, Recompute::minimal}))
    if (s.system.stack.supports(x)) space.recomputes.push_back(x);
  for (Schedule x : {Schedule::one_f_one_b, Schedule::gpipe, Schedule::zero_bubble_h1, Schedule::zero_bubble_h2})
    if (s.system.stack.supports(x)) space.pipeline_schedules.push_back(x);
  for (Schedule x : {Schedule::interleaved, Schedule::zero_bubble_v, Schedule::dualpipe_v})
    if (s.system.stack.supports(x)) space.chunked_schedules.push_back(x);

  tbb::enumerable_thread_specific<TopK> workers;
  tbb::parallel_for(size_t(0), grids.size(), [&](size_t gi) { search_mesh(space, grids[gi], workers.local()); });

  SearchResult result;
  std::vector<Candidate> all;
  for (const TopK& w : workers) {
    result.evaluated += w.evaluated;
    result.fitting += w.fitting;
    all.insert(all.end(), w.best.begin(), w.best.end());
  }
  std::sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
    return a.step_time_s < b.step_time_s;
  });
  if (int(all.size()) > top_k) all.resize(top_k);
  // The winners as predict reports them (band included); the inner loop stays lean.
  for (const Candidate& c : all) result.top.push_back(predict(s, c.layout));
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace palmsim
