#pragma once
// The collectives the training step needs, over one group of ranks. Sums reduce in rank order so
// that results do not depend on timing (bitwise deterministic).
#include <cstddef>
#include <vector>

namespace palmsim {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: every rank ends with the element-wise sum over ranks.
  virtual void all_reduce(float* data, size_t n) = 0;
  virtual void all_reduce(double* data, size_t n) = 0;
  // `in` holds size() * n; rank r receives the sum of every rank's block r in `out` (n).
  virtual void reduce_scatter(const float* in, float* out, size_t n) = 0;
  // Every rank contributes n; `out` (size() * n) receives them in rank order.
  virtual void all_gather(const float* in, float* out, size_t n) = 0;
  virtual void broadcast(float* data, size_t n, int root) = 0;
  // Personalised exchange (expert parallelism's dispatch and combine): `in` holds size()
  // consecutive blocks, send_counts[r] elements for rank r; `out` receives recv_counts[s] elements
  // from each rank s, in rank order. Each rank's recv_counts[s] must equal rank s's send_counts[rank].
  virtual void all_to_all(const float* in, const std::vector<size_t>& send_counts, float* out,
                          const std::vector<size_t>& recv_counts) = 0;
  // Point to point (pipeline stages): messages from one peer under one tag arrive in the order
  // they were sent. Tags keep apart the streams one pair of ranks carries (under the interleaved
  // schedule the last stage's activations wrap round to the first stage beside the gradients that
  // stage sends back).
  virtual void send(const float* data, size_t n, int peer, int tag) = 0;
  virtual void recv(float* data, size_t n, int peer, int tag) = 0;
  // Blocks until recv from `peer` under `tag` will not wait, so that a caller can time the wait
  // apart from the copy; where the transport cannot tell (NCCL), returns at once and recv waits.
  virtual void wait_for(int peer, int tag) { (void)peer, (void)tag; }
  virtual void barrier() = 0;
};

}  // namespace palmsim
