// `validate --simulate` on the 19 original runs (issue 16): every run simulates (one data-parallel
// replica standing for all where they are alike, sim/simgrid/replica_fold.h), and the simulated
// mean error is within 1 point of the analytic one. About a minute on 2 cores; labelled `slow`
// (left out of the sanitizer run, whose equivalence suite covers the fold).
#include "tests/cli/cli_run.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>

namespace {

// "mean |err_step| 4.54 %" of the summary line that starts with `label`.
double mean_error(const std::string& out, const std::string& label) {
  const std::regex line(label + "[^\\n]*mean \\|err_step\\| ([0-9.]+) %");
  std::smatch m;
  if (!std::regex_search(out, m, line)) return -1;
  return std::stod(m[1]);
}

TEST(SimulatedValidation, PublishedRunsSimulateWithinAPointOfTheAnalyticModel) {
  const std::string csv = testing::TempDir() + "/published_simulated_" + std::to_string(getpid()) + ".csv";
  const CliRun r = run_command(std::string(PALMSIM_BINARY) + " validate --simulate scenarios/published/published_runs.csv -o " +
                               csv + " --force");
  ASSERT_EQ(r.status, 0) << r.err;
  const double analytic = mean_error(r.out, "scenarios/published/published_runs.csv:");
  const double simulated = mean_error(r.out, "simulated, all files:");
  std::printf("published_runs.csv: analytic %.2f %%, simulated %.2f %%\n", analytic, simulated);
  ASSERT_GT(analytic, 0);
  ASSERT_GT(simulated, 0);
  EXPECT_NE(r.out.find("simulated, all files: rows 19, scored 19, not modelled 0"), std::string::npos) << r.out;
  EXPECT_NEAR(simulated, analytic, 1.0);
  EXPECT_LE(simulated, 5.0);  // issue 10's bar for this file, met by the simulation too
  std::remove(csv.c_str());
}

}  // namespace
