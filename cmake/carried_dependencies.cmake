# The standalone CUDA build's dependencies, from PALMSIM_CARRY_DIR (filled on a Debian machine by
# tools/gpu/make_carry.sh): header-only fmt, nlohmann-json and CLI11, yaml-cpp's static library,
# oneTBB's runtime, and GoogleTest's sources (built here). No OpenBLAS: the CPU ops, which are only
# the GPU tests' reference in this build, use their plain loop GEMM.
set(carry ${PALMSIM_CARRY_DIR})
if(NOT EXISTS ${carry}/include/yaml-cpp/yaml.h)
  message(FATAL_ERROR "PALMSIM_CUDA_STANDALONE: ${carry} lacks the carried dependencies; run tools/gpu/make_carry.sh")
endif()
add_library(fmt::fmt INTERFACE IMPORTED)
target_include_directories(fmt::fmt INTERFACE ${carry}/include)
target_compile_definitions(fmt::fmt INTERFACE FMT_HEADER_ONLY)
add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
target_include_directories(nlohmann_json::nlohmann_json INTERFACE ${carry}/include)
add_library(CLI11::CLI11 INTERFACE IMPORTED)
target_include_directories(CLI11::CLI11 INTERFACE ${carry}/include)
add_library(yaml-cpp STATIC IMPORTED)
set_target_properties(yaml-cpp PROPERTIES IMPORTED_LOCATION ${carry}/lib/libyaml-cpp.a
                      INTERFACE_INCLUDE_DIRECTORIES ${carry}/include)
add_library(TBB::tbb SHARED IMPORTED)
set_target_properties(TBB::tbb PROPERTIES IMPORTED_LOCATION ${carry}/lib/libtbb.so.12
                      INTERFACE_INCLUDE_DIRECTORIES ${carry}/include)
if(PALMSIM_BUILD_TESTS)
  set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
  set(BUILD_GMOCK ON CACHE BOOL "" FORCE)
  add_subdirectory(${carry}/googletest ${CMAKE_BINARY_DIR}/googletest EXCLUDE_FROM_ALL)  # defines GTest::gtest_main, GTest::gmock
endif()
