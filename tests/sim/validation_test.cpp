// The open validation set: every row runs, errors within the first version's bars
// (mean |err_step| <= 12 %, max <= 25 %), unpublished cells are chosen and reported.
#include "model/input_error.h"
#include "sim/validation.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace palmsim {
namespace {

TEST(Validation, PublishedRunsWithinTheFirstBars) {
  const CsvTable table = read_csv("../shared/validation/published_runs.csv");
  const std::vector<ValidationRow> rows = validate_table(table);
  ASSERT_EQ(rows.size(), table.rows.size());
  for (const ValidationRow& r : rows) EXPECT_TRUE(r.error.empty()) << r.id << ": " << r.error;
  const ValidationSummary s = summarize(rows, [](const ValidationRow& r) { return r.pred_step_s; });
  EXPECT_EQ(s.rows, int(table.rows.size()));
  EXPECT_LE(s.mean_abs_err_pct, 12.0);
  EXPECT_LE(s.max_abs_err_pct, 25.0);
  // PaLM's row leaves vpp, microbatch and sp open: all three are reported.
  EXPECT_NE(rows[0].chosen.find("microbatch="), std::string::npos);
  EXPECT_NE(rows[0].chosen.find("sp="), std::string::npos);
}

TEST(Validation, OutputKeepsExtraColumnsAndAddsPredictions) {
  const CsvTable table = read_csv("../shared/validation/published_runs.csv");
  const CsvTable out = validation_output(table, validate_table(table));
  EXPECT_EQ(out.column("notes"), table.column("notes"));
  for (const char* c : {"pred_step_s", "pred_mfu", "pred_hfu", "pred_memory_gib", "fits", "chosen",
                        "err_step_pct", "err_mfu_pts", "error"})
    EXPECT_GE(out.column(c), 0) << c;
  EXPECT_EQ(out.rows[0][size_t(out.column("notes"))], table.rows[0][size_t(table.column("notes"))]);
}

TEST(Validation, BadRowsGetAnErrorAndTheOthersGoOn) {
  CsvTable table = read_csv("../shared/validation/published_runs.csv");
  table.rows[1][size_t(table.column("tp"))] = std::string("3");   // 64 heads not divisible by 3, product wrong
  table.rows[2][size_t(table.column("system"))] = std::string("tpu-v9-pod");
  const auto rows = validate_table(table);
  EXPECT_FALSE(rows[1].error.empty());
  EXPECT_NE(rows[2].error.find("system"), std::string::npos);
  EXPECT_TRUE(rows[3].error.empty());
}

TEST(Validation, MalformedCsvIsAnInputError) {
  const std::string path = testing::TempDir() + "/ragged.csv";
  std::ofstream(path) << "id,n_layers\nx,1,2\n";
  EXPECT_THROW(read_csv(path), InputError);
  std::ofstream(path) << "id,n_layers\n\"unterminated,1\n";
  EXPECT_THROW(read_csv(path), InputError);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace palmsim
