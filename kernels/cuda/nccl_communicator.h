#pragma once
// The Communicator interface over NCCL: one rank per GPU, one process per rank. Every pointer is a
// device pointer; collectives are queued on the model's stream, so the kernels around them need no
// extra synchronization. Ranks meet through a unique-id file (below) that rank 0 writes.
#include "kernels/communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <string>

namespace palmsim::cuda {

class NcclCommunicator final : public Communicator {
 public:
  // Joins the world of `size` ranks that share the unique id in `id_file` (rank 0 creates it).
  static std::unique_ptr<NcclCommunicator> join(const std::string& id_file, int rank, int size, cudaStream_t stream,
                                                double timeout_s = 120);
  // The ranks of this world with the same `color`, ordered by `key` (ncclCommSplit).
  std::unique_ptr<NcclCommunicator> split(int color, int key);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce(float* data, size_t n) override;
  void all_reduce(double* data, size_t n) override;
  void reduce_scatter(const float* in, float* out, size_t n) override;
  void all_gather(const float* in, float* out, size_t n) override;
  void broadcast(float* data, size_t n, int root) override;
  void all_to_all(const float* in, const std::vector<size_t>& send_counts, float* out,
                  const std::vector<size_t>& recv_counts) override;
  // NCCL has no tags: its messages between two ranks match in order, so only tag 0 is taken.
  void send(const float* data, size_t n, int peer, int tag) override;
  void recv(float* data, size_t n, int peer, int tag) override;
  void barrier() override;  // a one-element all-reduce, then the host waits for the stream

 private:
  NcclCommunicator(ncclComm_t comm, cudaStream_t stream);
  ncclComm_t comm_;
  cudaStream_t stream_;
  int rank_ = 0, size_ = 1;
  float* scratch_ = nullptr;  // one float for barrier()
};

// Rank 0 writes a fresh NCCL unique id to `path` (atomically: a temporary file, then rename); the
// other ranks wait for it up to `timeout_s` seconds.
ncclUniqueId exchange_unique_id(const std::string& path, int rank, double timeout_s);

}  // namespace palmsim::cuda
