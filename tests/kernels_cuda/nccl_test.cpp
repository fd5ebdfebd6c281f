// The NCCL communicator with one rank (any single GPU), through the unique-id file bootstrap.
#include "gpu_test_support.h"
#include "kernels/cuda/nccl_communicator.h"

#include <unistd.h>

#include <filesystem>

namespace palmsim::cuda {
namespace {

using namespace testing;

TEST(NcclCommunicator, OneRankWorldAndSplit) {
  PALMSIM_REQUIRE_GPU();
  const auto dir = std::filesystem::temp_directory_path() / ("palmsim-nccl-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto world = NcclCommunicator::join((dir / "id").string(), 0, 1, nullptr, 10);
  EXPECT_EQ(world->size(), 1);
  EXPECT_EQ(world->rank(), 0);
  const auto values = random_vector(1000, 18);
  auto d = to_device(values);
  world->all_reduce(d.data(), d.size());
  DeviceBuffer<float> gathered(values.size());
  world->all_gather(d.data(), gathered.data(), values.size());
  auto group = world->split(0, 0);
  group->all_reduce(d.data(), d.size());
  group->barrier();
  EXPECT_EQ(to_host(d), values);  // a sum over one rank is the identity
  EXPECT_EQ(to_host(gathered), values);
  std::filesystem::remove_all(dir);
}

TEST(NcclCommunicator, UniqueIdFileTimesOutWithAClearError) {
  const auto path = std::filesystem::temp_directory_path() / ("palmsim-missing-id-" + std::to_string(getpid()));
  try {
    exchange_unique_id(path.string(), 1, 0.1);
    FAIL() << "expected a timeout";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("found no NCCL id"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace palmsim::cuda
