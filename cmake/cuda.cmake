# Finds nvcc, cuBLAS and NCCL and sets PALMSIM_WITH_CUDA. CI has the toolkit but no GPU: the CUDA
# code always compiles there, and the GPU tests skip at run time.
set(PALMSIM_WITH_CUDA OFF)
if(PALMSIM_CUDA STREQUAL "OFF")
  if(PALMSIM_CUDA_STANDALONE)
    message(FATAL_ERROR "PALMSIM_CUDA_STANDALONE needs PALMSIM_CUDA AUTO or ON")
  endif()
  return()
endif()
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(PALMSIM_CUDA STREQUAL "ON" OR PALMSIM_CUDA_STANDALONE)
    message(FATAL_ERROR "PALMSIM_CUDA=ON: no CUDA compiler found (set CMAKE_CUDA_COMPILER)")
  endif()
  message(STATUS "palmsim: no CUDA compiler; the CUDA backend is left out")
  return()
endif()
# Hopper (H100, H200) only by default: one architecture keeps CI's CUDA compile short, and the
# attention kernels need bf16 tensor cores (sm_80 and newer). Set before enable_language, which
# would otherwise cache nvcc's own default.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90 CACHE STRING "GPU architectures to build for")
endif()
enable_language(CUDA)
set(CMAKE_CUDA_STANDARD 17)  # the .cu files need no more; CMake 3.25 knows no CUDA20 for nvcc
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)

# NCCL ships beside the toolkit here; elsewhere (a pip wheel's nvidia/nccl, a separate install)
# point PALMSIM_NCCL_ROOT at the folder holding include/nccl.h and lib/libnccl.so*.
set(PALMSIM_NCCL_ROOT "" CACHE PATH "Folder with include/nccl.h and lib/libnccl.so (when not in the CUDA toolkit)")
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${PALMSIM_NCCL_ROOT}/include ${CUDAToolkit_INCLUDE_DIRS})
find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2
             HINTS ${PALMSIM_NCCL_ROOT}/lib ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib)
if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
  message(FATAL_ERROR "NCCL not found: set PALMSIM_NCCL_ROOT to the folder with include/nccl.h and lib/libnccl.so")
endif()
add_library(palmsim_nccl INTERFACE)
target_include_directories(palmsim_nccl INTERFACE ${NCCL_INCLUDE_DIR})
target_link_libraries(palmsim_nccl INTERFACE ${NCCL_LIBRARY})
set(PALMSIM_WITH_CUDA ON)
message(STATUS "palmsim: CUDA backend for architectures ${CMAKE_CUDA_ARCHITECTURES}, NCCL ${NCCL_LIBRARY}")
