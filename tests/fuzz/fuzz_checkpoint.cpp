// The trainer's checkpoint reader (train --resume), on arbitrary and damaged files. A random file
// almost never carries a valid checksum, so each input is also tried with the right checksum
// appended: that reaches the structure behind it (counts, lengths, ranks).
#include "kernels/checkpoint.h"
#include "tests/fuzz/fuzz_input.h"

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto read = [](const std::string& path) {
    palmsim::fuzz::refusal_allowed([&] {
      palmsim::Checkpoint c;
      (void)palmsim::read_checkpoint(path, c);
    });
  };
  read(palmsim::fuzz::input_file(data, size, ".ckpt"));
  std::vector<uint8_t> sealed(data, data + size);
  const uint64_t sum = palmsim::checkpoint_checksum(data, size);
  const auto* s = reinterpret_cast<const uint8_t*>(&sum);
  sealed.insert(sealed.end(), s, s + sizeof sum);
  read(palmsim::fuzz::input_file(sealed.data(), sealed.size(), ".ckpt"));
  return 0;
}
