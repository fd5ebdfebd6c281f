// What runs without a GPU too: device discovery never throws, and MFU's peak for known parts is the
// datasheet's dense bf16 rate (hardware.md).
#include "kernels/cuda/device_info.h"

#include <gtest/gtest.h>

namespace palmsim::cuda {
namespace {

TEST(DeviceInfo, CountsDevicesWithoutThrowing) { EXPECT_GE(device_count(), 0); }

TEST(DeviceInfo, DatasheetPeaks) {
  EXPECT_DOUBLE_EQ(datasheet_bf16_flops("NVIDIA H100 80GB HBM3"), 989.4e12);
  EXPECT_DOUBLE_EQ(datasheet_bf16_flops("NVIDIA H200"), 989.4e12);
  EXPECT_DOUBLE_EQ(datasheet_bf16_flops("NVIDIA H100 PCIe"), 756e12);
  EXPECT_DOUBLE_EQ(datasheet_bf16_flops("NVIDIA A100-SXM4-80GB"), 312e12);
  EXPECT_DOUBLE_EQ(datasheet_bf16_flops("Some Future GPU"), 0.0);
}

}  // namespace
}  // namespace palmsim::cuda
