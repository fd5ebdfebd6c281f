#pragma once
// Runs a command line through the shell for the CLI tests: exit status, stdout, and stderr (kept in
// a file of this test process: ctest runs tests in parallel, and they share TempDir).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

struct CliRun {
  int status = -1;
  std::string out, err;
};

// A whole file's bytes ("" when it cannot be read).
inline std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline CliRun run_command(const std::string& command) {
  const std::string err_file = testing::TempDir() + "/palmsim_stderr_" + std::to_string(getpid()) + ".txt";
  CliRun r;
  FILE* pipe = popen((command + " 2>" + err_file).c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err_file);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  return r;
}
