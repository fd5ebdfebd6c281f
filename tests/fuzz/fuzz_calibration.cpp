// A calibration JSON file (`--calibration`), loaded and applied to a system as scenarios do.
#include "hwmodels/calibration.h"
#include "sim/scenario.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = palmsim::fuzz::input_file(data, size, ".json");
  palmsim::fuzz::refusal_allowed([&] {
    const palmsim::Calibration c = palmsim::load_calibration(path);
    palmsim::System system = palmsim::system_preset("h100-80g-dgx");
    palmsim::apply_calibration(system, c);
  });
  return 0;
}
