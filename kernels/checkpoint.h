#pragma once
// Training checkpoints: every rank's parameters and optimizer moments, the step, and a fingerprint
// of the run's configuration. Written atomically: into "<path>.tmp", flushed to disk (fsync), then
// renamed over <path> and the folder synced, so a crash at any moment leaves either the old or the
// new checkpoint whole. A checksum over the contents rejects a damaged file.
//
// For the crash test (tools/kill_during_checkpoint.sh): when the environment variable
// PALMSIM_CHECKPOINT_PAUSE_S is set, the writer sleeps that many seconds halfway through the
// temporary file.
#include <cstdint>
#include <string>
#include <vector>

namespace palmsim {

struct RankState {
  std::vector<float> params, first_moment, second_moment;
};

struct Checkpoint {
  int64_t step = 0;
  std::string fingerprint;  // model and parallel layout; resuming a different run is refused
  std::vector<RankState> ranks;
};

void write_checkpoint(const Checkpoint& c, const std::string& path);
// Returns false when there is no file; throws InputError when it is damaged or not a checkpoint.
bool read_checkpoint(const std::string& path, Checkpoint& out);

// The checksum that ends a checkpoint file (FNV-1a, 64 bit) over `n` bytes, continuing from `h`.
constexpr uint64_t kChecksumSeed = 1469598103934665603ULL;
uint64_t checkpoint_checksum(const void* data, size_t n, uint64_t h = kChecksumSeed);

}  // namespace palmsim
