#include "kernels/cuda/nccl_communicator.h"

#include "kernels/cuda/cuda_check.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#define NCCL_CHECK(call)                                                                            \
  do {                                                                                              \
    const ncclResult_t status_ = (call);                                                            \
    if (status_ != ncclSuccess)                                                                     \
      palmsim::cuda::throw_api_error("NCCL", ncclGetErrorString(status_), #call, __FILE__, __LINE__); \
  } while (0)

namespace palmsim::cuda {

ncclUniqueId exchange_unique_id(const std::string& path, int rank, double timeout_s) {
  ncclUniqueId id;
  if (rank == 0) {
    NCCL_CHECK(ncclGetUniqueId(&id));
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(&id), sizeof(id));
      if (!out) throw std::runtime_error("cannot write the NCCL id file " + tmp);
    }
    std::filesystem::rename(tmp, path);
    return id;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(path, std::ios::binary);
    if (in.read(reinterpret_cast<char*>(&id), sizeof(id))) return id;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw std::runtime_error("rank " + std::to_string(rank) + " found no NCCL id in " + path + " within " +
                           std::to_string(timeout_s) + " s");
}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, cudaStream_t stream) : comm_(comm), stream_(stream) {
  NCCL_CHECK(ncclCommUserRank(comm_, &rank_));
  NCCL_CHECK(ncclCommCount(comm_, &size_));
  CUDA_CHECK(cudaMalloc(&scratch_, sizeof(float)));
}

NcclCommunicator::~NcclCommunicator() {
  if (scratch_) cudaFree(scratch_);
  ncclCommDestroy(comm_);
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::join(const std::string& id_file, int rank, int size,
                                                         cudaStream_t stream, double timeout_s) {
  const ncclUniqueId id = exchange_unique_id(id_file, rank, timeout_s);
  ncclComm_t comm;
  NCCL_CHECK(ncclCommInitRank(&comm, size, id, rank));
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(comm, stream));
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::split(int color, int key) {
  ncclComm_t comm;
  NCCL_CHECK(ncclCommSplit(comm_, color, key, &comm, nullptr));
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(comm, stream_));
}

void NcclCommunicator::all_reduce(float* data, size_t n) {
  NCCL_CHECK(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, comm_, stream_));
}

void NcclCommunicator::all_reduce(double* data, size_t n) {
  NCCL_CHECK(ncclAllReduce(data, data, n, ncclFloat64, ncclSum, comm_, stream_));
}

void NcclCommunicator::reduce_scatter(const float* in, float* out, size_t n) {
  NCCL_CHECK(ncclReduceScatter(in, out, n, ncclFloat32, ncclSum, comm_, stream_));
}

void NcclCommunicator::all_gather(const float* in, float* out, size_t n) {
  NCCL_CHECK(ncclAllGather(in, out, n, ncclFloat32, comm_, stream_));
}

void NcclCommunicator::broadcast(float* data, size_t n, int root) {
  NCCL_CHECK(ncclBroadcast(data, data, n, ncclFloat32, root, comm_, stream_));
}

// Grouped point-to-point calls, as nccl-tests' alltoall does; device pointers, counts on the host.
void NcclCommunicator::all_to_all(const float* in, const std::vector<size_t>& send_counts, float* out,
                                  const std::vector<size_t>& recv_counts) {
  NCCL_CHECK(ncclGroupStart());
  size_t sent = 0, received = 0;
  for (int r = 0; r < size_; ++r) {
    NCCL_CHECK(ncclSend(in + sent, send_counts[size_t(r)], ncclFloat32, r, comm_, stream_));
    NCCL_CHECK(ncclRecv(out + received, recv_counts[size_t(r)], ncclFloat32, r, comm_, stream_));
    sent += send_counts[size_t(r)];
    received += recv_counts[size_t(r)];
  }
  NCCL_CHECK(ncclGroupEnd());
}

void NcclCommunicator::send(const float* data, size_t n, int peer, int tag) {
  if (tag != 0) throw std::logic_error("NCCL point to point has no tags (only tag 0)");
  NCCL_CHECK(ncclSend(data, n, ncclFloat32, peer, comm_, stream_));
}

void NcclCommunicator::recv(float* data, size_t n, int peer, int tag) {
  if (tag != 0) throw std::logic_error("NCCL point to point has no tags (only tag 0)");
  NCCL_CHECK(ncclRecv(data, n, ncclFloat32, peer, comm_, stream_));
}

void NcclCommunicator::barrier() {
  all_reduce(scratch_, 1);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace palmsim::cuda
