// Catch2 main for the CUDA tests. Without a usable CUDA device the run is a skip (exit 77, CTest's
// SKIP_RETURN_CODE) so that CI, which has nvcc but no GPU, builds the tests and skips them cleanly — unless
// TOPOFR_REQUIRE_GPU is set (tests/gpu_check.sh sets it on a GPU machine), where a missing device is a
// failure: a GPU that nvidia-smi sees but the CUDA runtime does not must never pass as "skipped".
// Catch2 returns the number of failed assertions (so 77 failures would read as a skip): any failure is 1.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    const bool required = std::getenv("TOPOFR_REQUIRE_GPU") != nullptr;
    std::printf("%s: no usable CUDA device (%s)\n", required ? "FAILED (TOPOFR_REQUIRE_GPU is set)" : "skipped",
                e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount = 0");
    return required ? 2 : 77;
  }
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
    std::printf("device 0: %s, compute capability %d.%d, %d SMs\n", p.name, p.major, p.minor, p.multiProcessorCount);
  const int failed = Catch::Session().run(argc, argv);
  return failed == 0 ? 0 : 1;
}
