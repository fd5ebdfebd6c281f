#pragma once
// A one-line progress bar on stderr ("[#####     ]  45 %  gemm 1024x1024x1024"), redrawn in place
// when stderr is a terminal and printed once per tenth otherwise (logs stay short).
#include <string>

namespace palmsim {

class ProgressBar {
 public:
  explicit ProgressBar(int total_steps);
  void step(const std::string& what);
  void finish();

 private:
  int total_, done_ = 0, last_tenth_ = -1;
  bool terminal_;
};

}  // namespace palmsim
