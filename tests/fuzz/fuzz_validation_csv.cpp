// A validation CSV through `validate`'s path: read, every row predicted, the file summarized.
#include "sim/validation.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = palmsim::fuzz::input_file(data, size, ".csv");
  palmsim::fuzz::refusal_allowed([&] {
    const palmsim::CsvTable table = palmsim::read_validation_csv(path);
    const auto rows = palmsim::validate_table(table);
    (void)palmsim::validation_output(table, rows);
    (void)palmsim::summarize(rows, [](const palmsim::ValidationRow& r) { return r.pred_step_s; });
  });
  return 0;
}
