#pragma once
// What every harness shares: the input written to a file, so each parser is reached through the
// same entry point the command line uses (path checks and file reading included), and the rule
// that decides what a finding is. A parser may refuse any input with one InputError (the CLI's
// exit 2); any other exception escapes the harness and libFuzzer reports it, as it does a crash,
// a hang (-timeout), a leak or a sanitizer report.
#include "model/input_error.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace palmsim::fuzz {

// A file of this process holding the input; rewritten on every call.
inline std::string input_file(const uint8_t* data, size_t size, const char* suffix) {
  const std::string path = "/tmp/palmsim-fuzz-" + std::to_string(getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("fuzz harness: cannot write " + path);
  if (size && std::fwrite(data, 1, size, f) != size) throw std::runtime_error("fuzz harness: short write");
  std::fclose(f);
  return path;
}

// Runs `parse`; a clean refusal (InputError) is an accepted outcome.
template <class F>
void refusal_allowed(F&& parse) {
  try {
    parse();
  } catch (const InputError&) {
  }
}

}  // namespace palmsim::fuzz
