// gpu_probe — what the CUDA runtime sees (tests/gpu_check.sh, first step). Prints one line per device and
// the runtime/driver versions; exit 0 when at least one device is usable, 1 when none, 2 on a runtime error.
// A GPU that nvidia-smi lists but this probe does not is the case the GPU check must report as a failure.
#include <cuda_runtime.h>

#include <cstdio>

int main() {
  int runtime = 0, driver = 0, n = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  std::printf("cuda runtime %d.%d, driver supports %d.%d\n", runtime / 1000, runtime % 1000 / 10, driver / 1000,
              driver % 1000 / 10);
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    std::printf("cudaGetDeviceCount: %s (%s)\n", cudaGetErrorName(e), cudaGetErrorString(e));
    return 2;
  }
  for (int d = 0; d < n; ++d) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, d) != cudaSuccess) continue;
    int optin = 0;
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, d);
    std::printf("device %d: %s, sm_%d%d, %d SMs, %.1f GiB, L2 %d MiB, shared/block opt-in %d KiB\n", d, p.name,
                p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem / 1073741824.0, p.l2CacheSize >> 20,
                optin >> 10);
  }
  std::printf("%d device(s)\n", n);
  return n > 0 ? 0 : 1;
}
