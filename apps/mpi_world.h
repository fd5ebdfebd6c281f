#pragma once
// The MPI job a process belongs to when `mpirun` or `srun` started it, one process otherwise. Only
// `sweep` uses it: MPI starts only when a launcher's environment says so, so every other verb (and
// a plain `palmsim sweep`) runs without it.
#include <cstdint>
#include <string>

namespace palmsim {

class MpiWorld {
 public:
  MpiWorld();  // MPI_Init when launched; InputError if the launcher and MPI disagree on the size
  ~MpiWorld();
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Every rank's text, concatenated in rank order, on rank 0 (empty elsewhere).
  std::string gather_to_root(const std::string& mine) const;
  int64_t sum_to_root(int64_t mine) const;
  void barrier() const;
  // Ends every rank of the job (a rank failed where the others wait for it).
  [[noreturn]] void abort(int status) const;

  // The rank a launcher gave this process in its environment, before MPI starts (0 when none).
  static int launcher_rank();

 private:
  bool initialized_ = false;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace palmsim
