// The trainer's configuration file (`train`, `bench-step`, `validate-local`): its layout:, training: and train: sections.
#include "kernels/trainer_config_file.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = palmsim::fuzz::input_file(data, size, ".yaml");
  palmsim::fuzz::refusal_allowed([&] { (void)palmsim::load_trainer_config(path); });
  return 0;
}
