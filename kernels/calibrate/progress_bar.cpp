#include "kernels/calibrate/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace palmsim {

ProgressBar::ProgressBar(int total_steps) : total_(std::max(1, total_steps)), terminal_(isatty(2)) {}

void ProgressBar::step(const std::string& what) {
  ++done_;
  const int pct = 100 * std::min(done_, total_) / total_;
  const int filled = pct / 5;
  const std::string bar = std::string(size_t(filled), '#') + std::string(size_t(20 - filled), ' ');
  if (terminal_) {
    std::fprintf(stderr, "\r[%s] %3d %%  %-40.40s", bar.c_str(), pct, what.c_str());
  } else if (pct / 10 != last_tenth_) {
    last_tenth_ = pct / 10;
    std::fprintf(stderr, "[%s] %3d %%  %s\n", bar.c_str(), pct, what.c_str());
  }
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (terminal_) std::fprintf(stderr, "\n");
}

}  // namespace palmsim
