// One vocabulary for a step (issue 11, item 3): the trainer times its ops under exactly the names
// the StepPlan of its layout gives them ("name.phase"), so validate-local compares every op and
// predicts none the trainer does not run. Checked for one rank, tp 2, dp 2 with and without ZeRO-1,
// cp 2, pp 2 alone, beside tp 2, in the ZB-H1, the interleaved and the ZB-V schedule (timed on the
// stage holding the loss, the chip the plan describes: the last, or ZB-V's first; its waits
// for the other stage, pp_wait, are the bubble, which the plan prices as a whole, not as an op), and
// a sparse model with its experts over 2 ranks.
#include "kernels/calibrate/calibrate_cpu.h"
#include "kernels/rank_trainer.h"
#include "kernels/trainer.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace palmsim {
namespace {

ModelSpec small_model(bool sparse) {
  ModelSpec m;
  m.name = "op-names";
  m.n_layers = 2, m.d_model = 32, m.n_heads = 2, m.n_kv_heads = 1, m.head_dim = 16;
  m.d_ff = 64, m.ffn = Ffn::swiglu, m.vocab = 256, m.seq_len = 32;
  if (sparse) m.moe.n_experts = 4, m.moe.top_k = 2, m.moe.expert_d_ff = 32, m.moe.shared_experts = 1;
  return m;
}

std::set<std::string> plan_names(const ModelSpec& m, const TrainConfig& c) {
  const StepPlan plan =
      cpu_step_plan(m, c.microbatch_size(), c.tp, c.dp, c.zero1, c.ep, c.cp, c.pp, c.schedule, c.vpp, c.cp_comm);
  std::set<std::string> names;
  for (const Op& op : plan.ops) names.insert(std::string(op.name) + "." + phase_suffix(op.phase));
  return names;
}

std::set<std::string> timed_names(const ModelSpec& m, const TrainConfig& c) {
  std::set<std::string> names;
  for (const auto& [name, seconds] : bench_step(m, c, 1).per_op_s)
    if (!name.starts_with(std::string(kPipelineWaitOp) + ".")) names.insert(name);
  return names;
}

TEST(OpNames, TheTrainerTimesExactlyThePlansOps) {
  struct Case {
    const char* what;
    int dp, tp, cp, ep;
    bool zero1, sparse;
    int pp = 1;
    Schedule schedule = Schedule::one_f_one_b;
    int vpp = 1;
    ContextComm cp_comm = ContextComm::all_gather;
  };
  for (const Case& k : {Case{"one rank", 1, 1, 1, 1, false, false}, Case{"tp 2", 1, 2, 1, 1, false, false},
                        Case{"dp 2", 2, 1, 1, 1, false, false}, Case{"dp 2 zero1", 2, 1, 1, 1, true, false},
                        Case{"cp 2", 1, 1, 2, 1, false, false}, Case{"sparse, ep 2", 2, 1, 1, 2, false, true},
                        Case{"pp 2", 1, 1, 1, 1, false, false, 2}, Case{"pp 2 x tp 2", 1, 2, 1, 1, false, false, 2},
                        Case{"pp 2 zb-h1", 1, 1, 1, 1, false, false, 2, Schedule::zero_bubble_h1},
                        Case{"pp 2 interleaved", 1, 1, 1, 1, false, false, 2, Schedule::interleaved, 2},
                        Case{"pp 2 zb-v", 1, 1, 1, 1, false, false, 2, Schedule::zero_bubble_v, 2},
                        Case{"pp 2 dualpipe-v", 1, 1, 1, 1, false, false, 2, Schedule::dualpipe_v, 2},
                        Case{"cp 2 ring", 1, 1, 2, 1, false, false, 1, Schedule::one_f_one_b, 1, ContextComm::ring}}) {
    TrainConfig c;
    c.batch = 4, c.dp = k.dp, c.tp = k.tp, c.cp = k.cp, c.ep = k.ep, c.zero1 = k.zero1, c.threads = 2, c.pp = k.pp;
    c.schedule = k.schedule, c.vpp = k.vpp, c.cp_comm = k.cp_comm;
    if (k.pp > 1) c.microbatch = 1;  // 4 microbatches through the pipeline
    ModelSpec m = small_model(k.sparse);
    m.n_layers *= k.vpp;  // a layer in each model chunk of each stage
    EXPECT_EQ(timed_names(m, c), plan_names(m, c)) << k.what;
  }
}

}  // namespace
}  // namespace palmsim
