// `palmsim sweep SCENARIO --set KEY=V1,V2 ... [-o OUT.csv]`: every combination of the overrides,
// one CSV row each (sim/sweep.h). Under mpirun/srun the combinations are split over the ranks and
// rank 0 writes the file; `--shard I/N` evaluates one block for a Slurm job array (merged by
// `palmsim merge`). The bytes do not depend on how the work was split.
#include "apps/mpi_world.h"
#include "apps/verbs.h"
#include "model/atomic_file.h"
#include "model/input_error.h"
#include "sim/csv_table.h"
#include "sim/simgrid/simulate.h"
#include "sim/sweep.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

namespace palmsim {

namespace {

struct SweepArgs {
  std::string scenario;
  std::vector<std::string> sets;
  std::string output;
  std::string shard;
  bool simulate = false;
  bool force = false;
  bool progress = false;
  bool quiet = false;
  int64_t max_combinations = 10'000'000;
};

// "I/N" with 0 <= I < N.
std::pair<int, int> parse_shard(const std::string& text) {
  int index = -1, count = 0;
  char slash = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &index, &slash, &count, &extra) != 3 || slash != '/' || count < 1 ||
      index < 0 || index >= count)
    throw InputError("--shard", "'" + text + "' must be I/N with 0 <= I < N, e.g. 3/16 (Slurm: $SLURM_ARRAY_TASK_ID/N)");
  return {index, count};
}

// A bar on stderr, redrawn at most every 1 % of the rank's combinations.
class ProgressBar {
 public:
  ProgressBar(int64_t total, bool on) : total_(total), on_(on && total > 0) {}
  void update(int64_t done) {
    if (!on_ || (done != total_ && done * 100 / total_ == last_percent_)) return;
    last_percent_ = done * 100 / total_;
    const int width = 40, filled = int(done * width / total_);
    std::cerr << fmt::format("\rsweep [{}{}] {:3d} % {}/{}", std::string(filled, '#'), std::string(width - filled, ' '),
                             last_percent_, done, total_)
              << (done == total_ ? "\n" : "") << std::flush;
  }

 private:
  int64_t total_;
  bool on_;
  int64_t last_percent_ = -1;
};

int run_sweep(const SweepArgs& a) {
  // Everything that can be wrong with the input is found before MPI starts, identically on every
  // rank; only the first rank says it.
  const bool sharded = !a.shard.empty();
  const auto [shard_index, shard_count] = sharded ? parse_shard(a.shard) : std::pair<int, int>{0, 1};
  if (sharded && a.output.empty()) throw InputError("--shard", "a shard needs -o FILE (merged later by `palmsim merge`)");
  if (!a.output.empty()) check_output_path(a.output, a.force, "-o");
  SweepGrid grid = parse_sweep_grid(a.sets, a.max_combinations);
  Sweep::Simulator simulator;
  if (a.simulate) simulator = [](const Scenario& s) { return simulation::simulate(s).report; };
  Sweep sweep(load_scenario_yaml(a.scenario), a.scenario, std::move(grid), simulator);

  MpiWorld world;
  const int64_t size = sweep.grid().size();
  const auto shard = shard_range(size, shard_index, shard_count);
  const int64_t begin = shard.first, end = shard.second;  // plain variables: lambdas capture them

  // The rows stream out in blocks: round k, rank r evaluates block k * ranks + r, and the first
  // rank writes the round's blocks in rank order, which is grid order. Memory holds one round.
  constexpr int64_t kBlock = 4096;
  const int64_t ranks = world.size(), blocks = (end - begin + kBlock - 1) / kBlock;
  const int64_t rounds = (blocks + ranks - 1) / ranks;
  std::unique_ptr<AtomicFile> file;
  auto write = [&](const std::string& text) {
    if (file)
      file->write(text);
    else
      std::cout << text;
  };
  if (world.rank() == 0) {
    if (!a.output.empty()) file = std::make_unique<AtomicFile>(a.output, "-o");
    write((sharded ? shard_preamble(shard_index, shard_count, size) : "") + sweep.header());
  }

  world.barrier();
  const auto start = std::chrono::steady_clock::now();
  auto block = [&](int64_t k) {  // this rank's combinations in round k
    const int64_t first = std::min(end, begin + (k * ranks + world.rank()) * kBlock);
    return std::pair<int64_t, int64_t>{first, std::min(end, first + kBlock)};
  };
  int64_t mine = 0;
  for (int64_t k = 0; k < rounds; ++k) mine += block(k).second - block(k).first;
  ProgressBar bar(mine, world.rank() == 0 && (a.progress || (!a.quiet && isatty(2))));
  int64_t evaluated = 0;
  for (int64_t k = 0; k < rounds; ++k) {
    const auto [first, last] = block(k);
    std::string rows;
    try {
      rows = sweep.evaluate(first, last, [&](int64_t done) { bar.update(evaluated + done); });
      evaluated += last - first;
    } catch (const std::exception& e) {
      // A rank that fails alone would leave the others waiting in the gather below.
      std::cerr << "palmsim: internal error in sweep (rank " << world.rank() << "): " << e.what() << "\n";
      world.abort(1);
    }
    const std::string round = world.gather_to_root(rows);
    if (world.rank() == 0) write(round);
  }
  const int64_t legal = world.sum_to_root(sweep.legal_rows());
  if (world.rank() != 0) return 0;
  if (file)
    file->commit();
  else
    std::cout << std::flush;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rate = double(end - begin) / std::max(seconds, 1e-9);
  if (!a.quiet)
    std::cerr << fmt::format("sweep: {} combinations ({} legal) in {:.3f} s on {} rank{}: {} combinations/s{}\n",
                             end - begin, legal, seconds, world.size(), world.size() > 1 ? "s" : "",
                             rate >= 100 ? fmt::format("{:.0f}", rate) : fmt::format("{:.3g}", rate),
                             a.output.empty() ? "" : "; wrote " + a.output);
  return 0;
}

}  // namespace

void add_sweep_verb(CLI::App& app, VerbAction& action) {
  auto* cmd = app.add_subcommand("sweep", "Every combination of scenario overrides, predicted (and simulated), "
                                          "as one CSV; split over MPI ranks under mpirun/srun");
  auto a = std::make_shared<SweepArgs>();
  cmd->add_option("SCENARIO", a->scenario, "scenario YAML file")->required();
  cmd->add_option("--set", a->sets,
                  "KEY=V1,V2,... : a dotted scenario key and its values (layout.tp=6,12,24, "
                  "model.parallel_block=true,false, system.preset=tpu-v4-pod,h100-80g-dgx, "
                  "system.chip.hbm_gib=32,64); repeat for more keys")
      ->required();
  cmd->add_option("-o,--output", a->output, "CSV file to write (default: standard output)");
  cmd->add_flag("--simulate", a->simulate, "also simulate every legal combination (slow: a simulation each)");
  cmd->add_option("--shard", a->shard, "I/N: evaluate block I of N only (Slurm job arrays; `palmsim merge` joins)");
  cmd->add_option("--max-combinations", a->max_combinations, "refuse larger grids (default 10,000,000)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--progress", a->progress, "draw the progress bar even when stderr is not a terminal");
  cmd->add_flag("-q,--quiet", a->quiet, "no progress bar and no summary line");
  cmd->add_flag("--force", a->force, "replace an existing output file");
  cmd->callback([&action, a] {
    action = [a] {
      try {
        return run_sweep(*a);
      } catch (const InputError& e) {
        if (MpiWorld::launcher_rank() != 0) return 2;  // the first rank reports it
        throw;
      }
    };
  });
}

}  // namespace palmsim
