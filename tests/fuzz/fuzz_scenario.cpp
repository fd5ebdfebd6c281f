// Scenario YAML through the CLI's entry point (load_scenario), then what `predict` does with it:
// the StepPlan and the analytic estimate, per-op breakdown included.
#include "sim/predict.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = palmsim::fuzz::input_file(data, size, ".yaml");
  palmsim::fuzz::refusal_allowed([&] {
    const palmsim::Scenario s = palmsim::load_scenario(path);
    (void)palmsim::predict(s, {.per_op = true});
  });
  return 0;
}
