#include "model/layout.h"

#include "model/input_error.h"
#include "model/pipeline_schedule.h"

#include <algorithm>

namespace palmsim {

const char* to_string(Sharding s) {
  switch (s) {
    case Sharding::none: return "none";
    case Sharding::zero1: return "zero1";
    case Sharding::zero2: return "zero2";
    case Sharding::zero3: return "zero3";
    case Sharding::fsdp: return "fsdp";
  }
  return "?";
}

const char* to_string(Recompute r) {
  switch (r) {
    case Recompute::none: return "none";
    case Recompute::selective: return "selective";
    case Recompute::full: return "full";
    case Recompute::palm: return "palm";
    case Recompute::minimal: return "minimal";
  }
  return "?";
}

const char* to_string(Schedule s) {
  switch (s) {
    case Schedule::gpipe: return "gpipe";
    case Schedule::one_f_one_b: return "1f1b";
    case Schedule::interleaved: return "interleaved";
    case Schedule::zero_bubble_h1: return "zb-h1";
    case Schedule::zero_bubble_v: return "zb-v";
    case Schedule::zero_bubble_h2: return "zb-h2";
    case Schedule::dualpipe_v: return "dualpipe-v";
  }
  return "?";
}

const char* to_string(ContextComm c) { return c == ContextComm::ring ? "ring" : "all_gather"; }

ContextComm parse_context_comm(const std::string& t, const std::string& field) {
  if (t == "all_gather") return ContextComm::all_gather;
  if (t == "ring") return ContextComm::ring;
  throw InputError(field, "'" + t + "' is not a context-parallel exchange; allowed: all_gather, ring");
}

const char* to_string(TokenDispatch d) { return d == TokenDispatch::per_rank ? "per_rank" : "per_expert"; }

TokenDispatch parse_token_dispatch(const std::string& t, const std::string& field) {
  if (t == "per_expert") return TokenDispatch::per_expert;
  if (t == "per_rank") return TokenDispatch::per_rank;
  throw InputError(field, "'" + t + "' is not a token dispatch; allowed: per_expert, per_rank");
}

Sharding parse_sharding(const std::string& t, const std::string& field) {
  if (t == "none") return Sharding::none;
  if (t == "zero1") return Sharding::zero1;
  if (t == "zero2") return Sharding::zero2;
  if (t == "zero3") return Sharding::zero3;
  if (t == "fsdp") return Sharding::fsdp;
  throw InputError(field, "'" + t + "' is not a sharding; allowed: none, zero1, zero2, zero3, fsdp");
}

Recompute parse_recompute(const std::string& t, const std::string& field) {
  if (t == "none") return Recompute::none;
  if (t == "selective") return Recompute::selective;
  if (t == "full") return Recompute::full;
  if (t == "palm") return Recompute::palm;
  if (t == "minimal") return Recompute::minimal;
  throw InputError(field, "'" + t + "' is not a recompute mode; allowed: none, selective, full, palm, minimal");
}

Schedule parse_schedule(const std::string& t, const std::string& field) {
  if (t == "gpipe") return Schedule::gpipe;
  if (t == "1f1b") return Schedule::one_f_one_b;
  if (t == "interleaved") return Schedule::interleaved;
  if (t == "zb-h1") return Schedule::zero_bubble_h1;
  if (t == "zb-v") return Schedule::zero_bubble_v;
  if (t == "zb-h2") return Schedule::zero_bubble_h2;
  if (t == "dualpipe-v") return Schedule::dualpipe_v;
  throw InputError(field, "'" + t + "' is not a pipeline schedule; allowed: gpipe, 1f1b, interleaved, zb-h1, zb-h2, "
                          "zb-v, dualpipe-v");
}

StageLayers stage_layers(int64_t n_layers, int pp, int stage) {
  const int base = int(n_layers / pp), extra = int(n_layers % pp);
  const int longer_before = std::max(0, stage - (pp - extra));  // earlier stages holding one more
  StageLayers s;
  s.first = stage * base + longer_before;
  s.end = s.first + base + (stage >= pp - extra ? 1 : 0);
  return s;
}

int64_t microbatches(const Layout& l, int64_t global_batch) {
  return global_batch / (int64_t(l.dp) * l.microbatch);
}

namespace {

// Returns the first violated rule as (field, message); empty field when legal. One function serves
// both the message-building check and the hot-loop predicate so the two can never disagree.
struct Violation {
  const char* field = nullptr;
  std::string message;
};

// A broken rule; its message built only when asked for (search's hot loop needs none).
template <bool kWithMessage, class MakeMessage>
Violation violation(const char* field, MakeMessage make_message) {
  Violation v;
  v.field = field;
  if constexpr (kWithMessage) v.message = make_message();
  return v;
}

// The rules a pipeline schedule puts on the layout, for find_violation and the trainer's config
// (check_schedule_rules), which has no Layout: one place for both.
template <bool kWithMessage>
Violation schedule_violation(Schedule schedule, int pp, int vpp, int64_t microbatches, Sharding sharding) {
  auto fail = [](const char* field, auto make_message) { return violation<kWithMessage>(field, make_message); };
  using std::to_string;
  const char* name = to_string(schedule);
  if (schedule == Schedule::interleaved) {
    if (vpp < 2 || pp < 2)
      return fail("layout.schedule", [&] { return std::string("interleaved needs pp >= 2 and vpp >= 2"); });
    if (microbatches % pp != 0)
      return fail("layout.vpp", [&] {
        return "interleaved 1F1B needs the microbatch count (" + to_string(microbatches) +
               ") to be a multiple of pp (" + to_string(pp) + ")";
      });
  } else if (v_shaped(schedule)) {
    if (vpp != 2)
      return fail("layout.vpp", [&] {
        return std::string(name) + " places two model chunks on each stage: vpp must be 2, got " + to_string(vpp);
      });
    // DualPipeV's stage 0 runs 2 pp - 1 forwards before its first backward, and its steady state
    // needs them all (DeepSeek-AI's dualpipev.py asserts chunks >= 2 ranks).
    if (schedule == Schedule::dualpipe_v && microbatches < 2 * int64_t(pp))
      return fail("layout.microbatch", [&] {
        return "dualpipe-v needs at least 2 pp (" + to_string(2 * pp) + ") microbatches, got " + to_string(microbatches);
      });
  } else if (vpp != 1) {
    return fail("layout.vpp", [&] { return std::string("vpp > 1 needs schedule: interleaved, zb-v or dualpipe-v"); });
  }
  if (defers_weight_gradients(schedule)) {
    if (pp < 2) return fail("layout.schedule", [&] { return std::string(name) + " needs pipeline stages (pp >= 2)"; });
    // Weights gathered layer by layer would have to be gathered again for each deferred weight
    // gradient; palmsim does not model that traffic.
    if (sharding == Sharding::fsdp || sharding == Sharding::zero3)
      return fail("layout.schedule", [&] {
        return std::string(name) + " with sharding " + to_string(sharding) +
               " (weights gathered per layer) is not modelled; allowed shardings: none, zero1, zero2";
      });
  }
  return {};
}

// The expert-parallel rules: degrees, what they must divide, what a sparse model needs beside tp.
template <bool kWithMessage>
Violation expert_violation(const Layout& l, const ModelSpec& m) {
  auto fail = [](const char* field, auto make_message) { return violation<kWithMessage>(field, make_message); };
  using std::to_string;
  if (l.ep < 1) return fail("layout.ep", [&] { return "must be >= 1, got " + to_string(l.ep); });
  if (l.etp < 1) return fail("layout.etp", [&] { return "must be >= 1, got " + to_string(l.etp); });
  if (l.ep > 1 && !m.moe.sparse())
    return fail("layout.ep", [&] { return std::string("expert parallelism needs a mixture-of-experts model (model.moe)"); });
  if (l.etp > 1 && !m.moe.sparse())
    return fail("layout.etp", [&] { return std::string("expert tensor parallelism needs a mixture-of-experts model (model.moe)"); });
  if (m.moe.sparse()) {
    const int64_t folded = int64_t(l.tp) * (l.dp / std::max(1, l.pods)) * l.cp;
    if (l.ep > 1 && folded % l.ep != 0)
      return fail("layout.ep", [&] {
        return "must divide the tensor- x data- x context-parallel ranks of a pod (" + to_string(folded) +
               "), got " + to_string(l.ep);
      });
    if (m.moe.n_experts % l.ep != 0)
      return fail("layout.ep", [&] {
        return "must divide n_experts (" + to_string(m.moe.n_experts) + "), got " + to_string(l.ep);
      });
    if (folded % l.expert_ranks() != 0)
      return fail("layout.etp", [&] {
        return "ep x etp must divide the tensor- x data- x context-parallel ranks of a pod (" + to_string(folded) +
               "), got " + to_string(l.ep) + " x " + to_string(l.etp);
      });
    if (m.moe.expert_d_ff % l.etp != 0)
      return fail("layout.etp", [&] {
        return "must divide expert_d_ff (" + to_string(m.moe.expert_d_ff) + "), got " + to_string(l.etp);
      });
    // With tp > 1 the attention is split tp ways and each MoE layer routes its rank's
    // sequence-parallel tokens (Megatron-Core requires sequence parallelism with MoE and tp > 1)
    // to experts that are whole (etp 1) or split over etp ranks (which gather those tokens); shared
    // experts are a tensor-parallel MLP of their own. Not modelled: a parallel block (attention and
    // MoE share one tensor-parallel region).
    if (l.tp > 1 && !l.sp)
      return fail("layout.sp", [&] {
        return std::string("a mixture-of-experts model with tp > 1 needs sequence parallelism (sp: true): "
                           "its MoE layers route each rank's share of the tokens");
      });
    if (l.tp > 1 && l.expert_ranks() == 1)
      return fail("layout.ep", [&] {
        return std::string("a mixture-of-experts model with tp > 1 needs ep > 1 or etp > 1: experts whole on "
                           "every rank of a stage are not modelled");
      });
    if (l.tp > 1 && m.parallel_block)
      return fail("layout.tp", [&] {
        return std::string("tensor parallelism of a mixture-of-experts model with a parallel block is not "
                           "modelled: it needs tp = 1");
      });
    if (m.moe.shared_experts > 0 && (int64_t(m.moe.shared_experts) * m.moe.expert_d_ff) % l.tp != 0)
      return fail("layout.tp", [&] {
        return "must divide the shared experts' width (" +
               to_string(int64_t(m.moe.shared_experts) * m.moe.expert_d_ff) + "), got " + to_string(l.tp);
      });
  }
  return {};
}

template <bool kWithMessage>
Violation find_violation(const Layout& l, const ModelSpec& m, int64_t n_chips, int64_t batch) {
  auto fail = [](const char* field, auto make_message) { return violation<kWithMessage>(field, make_message); };
  using std::to_string;
  if (l.tp < 1) return fail("layout.tp", [&] { return "must be >= 1, got " + to_string(l.tp); });
  if (l.pp < 1) return fail("layout.pp", [&] { return "must be >= 1, got " + to_string(l.pp); });
  if (l.dp < 1) return fail("layout.dp", [&] { return "must be >= 1, got " + to_string(l.dp); });
  if (l.cp < 1) return fail("layout.cp", [&] { return "must be >= 1, got " + to_string(l.cp); });
  // Context parallelism splits each sequence into 2*cp chunks, rank i taking chunks i and
  // 2*cp-1-i so that causal attention's work is balanced (Megatron-Core, torchtitan).
  if (l.cp > 1 && m.seq_len % (2 * int64_t(l.cp)) != 0)
    return fail("layout.cp", [&] {
      return "2*cp (" + to_string(2 * l.cp) + ") must divide seq_len (" + to_string(m.seq_len) + ")";
    });
  const Violation experts = expert_violation<kWithMessage>(l, m);
  if (experts.field) return experts;
  if (l.vpp < 1) return fail("layout.vpp", [&] { return "must be >= 1, got " + to_string(l.vpp); });
  if (l.pods < 1) return fail("layout.pods", [&] { return "must be >= 1, got " + to_string(l.pods); });
  if (l.microbatch < 1)
    return fail("layout.microbatch", [&] { return "must be >= 1, got " + to_string(l.microbatch); });
  if (l.chips() != n_chips)
    return fail("layout", [&] {
      return "tp*pp*dp*cp = " + to_string(l.chips()) + " but the system has " + to_string(n_chips) +
             " chips";
    });
  if (m.n_heads % l.tp != 0)
    return fail("layout.tp", [&] {
      return "must divide n_heads (" + to_string(m.n_heads) + "), got " + to_string(l.tp);
    });
  if (m.d_ff % l.tp != 0)
    return fail("layout.tp", [&] {
      return "must divide d_ff (" + to_string(m.d_ff) + "), got " + to_string(l.tp);
    });
  // Activations outside the tensor-parallel regions are sharded tp ways over the tokens of a
  // microbatch (Megatron) or over d_model (PaLM: 2048 tokens do not split 12 ways, 18432 does).
  if (l.sp && (int64_t(l.microbatch) * m.seq_len) % l.tp != 0 && m.d_model % l.tp != 0)
    return fail("layout.sp", [&] {
      return "sharded activations need tp (" + to_string(l.tp) +
             ") to divide the microbatch's tokens or d_model (" + to_string(m.d_model) + ")";
    });
  // Stages may hold different numbers of layers (Llama 3 405B's 126 on 16 stages); each model
  // chunk needs at least one.
  if (m.n_layers < int64_t(l.pp) * l.vpp)
    return fail("layout.pp", [&] {
      return "pp*vpp (" + to_string(l.pp * l.vpp) + ") must not exceed n_layers (" +
             to_string(m.n_layers) + ")";
    });
  if (l.splits_ends() && (m.n_layers + 2) % (int64_t(l.pp) * l.vpp) != 0)
    return fail("layout.account_ends", [&] {
      return "n_layers + 2 (" + to_string(m.n_layers + 2) + ") must split evenly over the pp x vpp chunks (" +
             to_string(int64_t(l.pp) * l.vpp) + ")";
    });
  if (l.dp % l.pods != 0)
    return fail("layout.pods", [&] {
      return "must divide dp (" + to_string(l.dp) + "), got " + to_string(l.pods);
    });
  if (batch % (int64_t(l.dp) * l.microbatch) != 0)
    return fail("layout.microbatch", [&] {
      return "dp*microbatch (" + to_string(int64_t(l.dp) * l.microbatch) +
             ") must divide global_batch (" + to_string(batch) + ")";
    });
  const Violation v = schedule_violation<kWithMessage>(l.schedule, l.pp, l.vpp, microbatches(l, batch), l.sharding);
  if (v.field) return v;
  return {};
}

}  // namespace

void check_layout(const Layout& l, const ModelSpec& m, int64_t n_chips, int64_t batch) {
  if (batch < 1) throw InputError("global_batch", "must be a positive number of sequences");
  Violation v = find_violation<true>(l, m, n_chips, batch);
  if (v.field) throw InputError(v.field, v.message);
}

void check_schedule_rules(Schedule schedule, int pp, int vpp, int64_t microbatches, Sharding sharding) {
  const Violation v = schedule_violation<true>(schedule, pp, vpp, microbatches, sharding);
  if (v.field) throw InputError(v.field, v.message);
}

bool layout_is_legal(const Layout& l, const ModelSpec& m, int64_t n_chips, int64_t batch) {
  return find_violation<false>(l, m, n_chips, batch).field == nullptr;
}

}  // namespace palmsim
