// Catch2 main for the CUDA tests: exits 77 (CTest SKIP_RETURN_CODE) when no GPU is present, so that CI
// (nvcc, no GPU) builds them and skips them cleanly.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cuda_runtime.h>
#include <cstdio>

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
