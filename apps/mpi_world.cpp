#include "apps/mpi_world.h"

#include "model/input_error.h"

#define OMPI_SKIP_MPICXX 1  // the C API only; the deprecated C++ bindings are not linked
#include <mpi.h>

#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <vector>

namespace palmsim {

namespace {

// The variables each launcher sets: Open MPI's mpirun, PMIx (srun --mpi=pmix), PMI (MPICH's
// hydra, srun --mpi=pmi2), and Slurm itself.
const char* const kRankVariables[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
const char* const kSizeVariables[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : -1;
}

// The job size the launcher announced; 0 when no launcher started this process.
int launcher_size() {
  for (const char* name : kSizeVariables)
    if (env_int(name) > 0) return env_int(name);
  return std::getenv("PMIX_RANK") ? 1 : 0;
}

void check(int status, const char* what) {
  if (status != MPI_SUCCESS) throw std::runtime_error(std::string("MPI: ") + what + " failed");
}

}  // namespace

int MpiWorld::launcher_rank() {
  for (const char* name : kRankVariables)
    if (env_int(name) >= 0) return env_int(name);
  return 0;
}

MpiWorld::MpiWorld() {
  const int announced = launcher_size();
  if (announced == 0) return;
  // The simulator runs each simulation in a forked child; that is safe here (the child never
  // touches MPI), so Open MPI need not warn about it.
  setenv("OMPI_MCA_mpi_warn_on_fork", "0", 0);
  check(MPI_Init(nullptr, nullptr), "MPI_Init");
  initialized_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (size_ != announced)
    throw InputError("mpirun", "the launcher started " + std::to_string(announced) + " processes but MPI sees " +
                                   std::to_string(size_) + "; this MPI library does not support the launcher "
                                   "(under srun, give --mpi=pmix)");
}

MpiWorld::~MpiWorld() {
  if (initialized_) MPI_Finalize();
}

std::string MpiWorld::gather_to_root(const std::string& mine) const {
  if (size_ == 1) return mine;
  // Counts are ints in MPI: a shard's text is checked to fit.
  if (mine.size() > size_t(std::numeric_limits<int>::max())) throw std::runtime_error("MPI: a rank's text exceeds 2 GiB");
  const int n = int(mine.size());
  std::vector<int> counts(size_), offsets(size_);
  check(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather");
  std::string all;
  if (rank_ == 0) {
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      if (total > std::numeric_limits<int>::max()) throw std::runtime_error("MPI: the gathered text exceeds 2 GiB");
      offsets[r] = int(total);
      total += counts[r];
    }
    all.resize(size_t(total));
  }
  check(MPI_Gatherv(mine.data(), n, MPI_CHAR, all.data(), counts.data(), offsets.data(), MPI_CHAR, 0, MPI_COMM_WORLD),
        "MPI_Gatherv");
  return all;
}

int64_t MpiWorld::sum_to_root(int64_t mine) const {
  if (size_ == 1) return mine;
  long long in = mine, out = 0;
  check(MPI_Reduce(&in, &out, 1, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD), "MPI_Reduce");
  return out;
}

void MpiWorld::barrier() const {
  if (size_ > 1) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

void MpiWorld::abort(int status) const {
  if (initialized_) MPI_Abort(MPI_COMM_WORLD, status);
  std::exit(status);
}

}  // namespace palmsim
