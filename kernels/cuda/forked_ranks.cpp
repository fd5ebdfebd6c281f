#include "kernels/cuda/forked_ranks.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <vector>

namespace palmsim::cuda {

int run_forked_ranks(int ranks, const std::function<int(int rank)>& rank_main) {
  std::vector<pid_t> children;
  for (int rank = 0; rank < ranks; ++rank) {
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid > 0) {
      children.push_back(pid);
      continue;
    }
    int code = 1;
    try {
      code = rank_main(rank);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "palmsim: rank %d: %s\n", rank, e.what());
    }
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(code);
  }
  int worst = 0;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    worst = std::max(worst, WIFEXITED(status) ? WEXITSTATUS(status) : 1);
  }
  return worst;
}

}  // namespace palmsim::cuda
