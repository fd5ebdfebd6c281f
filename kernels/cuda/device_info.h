#pragma once
// The GPU this process runs on: whether there is one, its name, and the dense bf16 peak that MFU
// divides by (PaLM's definition: model FLOPs over peak FLOPs).
#include <string>

namespace palmsim::cuda {

int device_count();  // 0 when there is no usable GPU or driver (never throws)
std::string device_name(int device);
// The datasheet's dense bf16 tensor-core rate for known parts (H100 SXM/PCIe/NVL, H200, A100);
// 0 for others, whose peak bench-step then measures with cuBLAS.
double datasheet_bf16_flops(const std::string& name);
// FLOPs per second of a large bf16 GEMM through cuBLAS (n x n x n, fp32 accumulation, random data).
double measured_cublas_bf16_flops(int n, int repetitions);

}  // namespace palmsim::cuda
