// The checkpoint reader on files the fuzzer (tests/fuzz/fuzz_checkpoint) found or built: empty
// vectors round-trip (a null data() pointer was once handed to memcpy), and a file whose checksum
// is right but whose counts are not is refused as damaged, before anything is allocated for it.
#include "kernels/checkpoint.h"
#include "model/input_error.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace palmsim {
namespace {

std::string temp_file(const std::string& name) {
  return testing::TempDir() + "/ckpt_" + std::to_string(::getpid()) + "_" + name;
}

// Raw bytes with the right checksum appended, as a writer that got the counts wrong would leave.
std::string sealed(std::string bytes) {
  const uint64_t sum = checkpoint_checksum(bytes.data(), bytes.size());
  bytes.append(reinterpret_cast<const char*>(&sum), sizeof sum);
  return bytes;
}

template <class T>
std::string raw(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof v);
}

TEST(Checkpoint, EmptyVectorsRoundTrip) {
  Checkpoint c;
  c.step = 7;
  c.fingerprint = "tiny";
  c.ranks.resize(2);
  c.ranks[0].params = {1.0f, 2.0f};  // rank 1 has no parameters at all
  const std::string path = temp_file("empty.bin");
  write_checkpoint(c, path);
  Checkpoint back;
  ASSERT_TRUE(read_checkpoint(path, back));
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.fingerprint, "tiny");
  ASSERT_EQ(back.ranks.size(), 2u);
  EXPECT_EQ(back.ranks[0].params, c.ranks[0].params);
  EXPECT_TRUE(back.ranks[1].params.empty());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Checkpoint, HugeCountsBehindARightChecksumAreDamagedNotAnAllocation) {
  const std::string magic = "PALMCKP1";
  const std::string cases[] = {
      magic + raw(uint64_t(1) << 62),                                        // fingerprint length
      magic + raw(uint64_t(0)) + raw(int64_t(1)) + raw(uint64_t(1) << 60),   // ranks
      magic + raw(uint64_t(0)) + raw(int64_t(1)) + raw(uint64_t(1)) + raw(uint64_t(1) << 61),  // floats
      magic + raw(uint64_t(0)) + raw(int64_t(1)) + raw(uint64_t(0)) + "trailing",
  };
  for (const std::string& bytes : cases) {
    const std::string path = temp_file("huge.bin");
    std::ofstream(path, std::ios::binary) << sealed(bytes);
    Checkpoint out;
    try {
      read_checkpoint(path, out);
      ADD_FAILURE() << "accepted a damaged checkpoint";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("is damaged"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace palmsim
