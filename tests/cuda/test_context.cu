// The CUDA execution context (include/topofr/cuda/context.cuh): launch errors come back from the launch
// that made them, the default allocator's pool keeps its memory, the dynamic shared-memory limit is the
// device's opt-in maximum less the kernel's static shared memory and is raised once, and host threads that
// launch the same kernel with different shared-memory sizes at the same time all succeed (the old per-call
// cudaFuncSetAttribute let one thread lower the limit under another's launch). Oracles: the CUDA runtime's
// own attributes, and CPU persistence pairs for the concurrent runs.
#pragma nv_diag_suppress 20012  // Eigen's defaulted __host__ __device__ members (CPU headers under nvcc)
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <topofr/cuda/persistence.cuh>
#include <topofr/persistence.hpp>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

using namespace topofr;
namespace tc = topofr::cuda;

namespace {

__global__ void fill_kernel(int* out, int v, int n) {
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += static_cast<int>(gridDim.x * blockDim.x))
    out[i] = v;
}

}  // namespace

TEST_CASE("cuda context: launch errors are thrown by the launch, naming the function", "[cuda][context]") {
  topofr::test::test_context t;
  topofr::test::device_buffer<int> out(64);
  tc::detail::launch("fill", fill_kernel, 1, 64, 0, t.ctx.stream, out.p, 7, 64);
  for (int v : out.get()) REQUIRE(v == 7);
  // 2048 threads per block and a dynamic shared-memory request past the opt-in maximum are refused.
  CHECK_THROWS_WITH(tc::detail::launch("fill", fill_kernel, 1, 2048, 0, t.ctx.stream, out.p, 1, 64),
                    Catch::Contains("topofr::cuda::fill"));
  const std::size_t too_much = tc::detail::max_dynamic_shared(fill_kernel, "fill") + 1024;
  CHECK_THROWS_WITH(tc::detail::launch("fill", fill_kernel, 1, 64, too_much, t.ctx.stream, out.p, 1, 64),
                    Catch::Contains("topofr::cuda::fill"));
  for (int v : out.get()) REQUIRE(v == 7);  // nothing ran
  (void)cudaGetLastError();  // the runtime also records the refused launches: clear for the next test
}

TEST_CASE("cuda context: dynamic shared memory above 48 KiB after allow_dynamic_shared", "[cuda][context]") {
  int dev = 0, optin = 0;
  REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
  REQUIRE(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess);
  cudaFuncAttributes a{};
  REQUIRE(cudaFuncGetAttributes(&a, fill_kernel) == cudaSuccess);
  const std::size_t max = tc::detail::max_dynamic_shared(fill_kernel, "fill");
  CHECK(max == static_cast<std::size_t>(optin) - a.sharedSizeBytes);
  topofr::test::test_context t;
  topofr::test::device_buffer<int> out(32);
  tc::detail::allow_dynamic_shared(fill_kernel, "fill");
  tc::detail::allow_dynamic_shared(fill_kernel, "fill");  // idempotent
  tc::detail::launch("fill", fill_kernel, 1, 32, max, t.ctx.stream, out.p, 3, 32);
  for (int v : out.get()) REQUIRE(v == 3);
}

TEST_CASE("cuda context: the default allocator's pool keeps freed memory (release threshold = max)", "[cuda][context]") {
  topofr::test::test_context t;
  const tc::allocator alloc = tc::stream_ordered_allocator();
  for (int k = 0; k < 3; ++k) {
    void* p = alloc.allocate(alloc.state, std::size_t(1) << 20, t.ctx.stream);
    REQUIRE(p != nullptr);
    alloc.deallocate(alloc.state, p, std::size_t(1) << 20, t.ctx.stream);
  }
  REQUIRE(cudaStreamSynchronize(t.ctx.stream) == cudaSuccess);
  int dev = 0;
  REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
  std::uint64_t threshold = 0;
  REQUIRE(cudaMemPoolGetAttribute(tc::detail::library_pool(dev), cudaMemPoolAttrReleaseThreshold, &threshold) ==
          cudaSuccess);
  CHECK(threshold == ~std::uint64_t(0));
  CHECK(alloc.allocate(alloc.state, 0, t.ctx.stream) == nullptr);
}

TEST_CASE("cuda context: threads launching persistence with different n at once (process-wide attribute)",
          "[cuda][context]") {
  if (topofr::test::emulated()) return;  // the emulator runs one launch at a time
  // n = 64 needs 17 KiB of shared memory, n = 200 float 161 KiB (opt-in): each thread checks its pairs
  // against the CPU's; any launch error or mismatch is counted.
  std::atomic<int> failures{0};
  std::vector<std::string> errors(4);
  auto worker = [&](int k) {
    try {
      const index_t n = k % 2 ? 64 : 200;
      const std::vector<double> x = topofr::test::normal<double>(static_cast<std::size_t>(n * 5), 100 + k);
      std::vector<float> m(static_cast<std::size_t>(n * n));
      pairwise_distances(cpu, matrix_view<const double>(x.data(), n, 5), matrix_view<float>(m.data(), n, n));
      std::vector<edge> want(static_cast<std::size_t>(n - 1));
      persistence_pairs(cpu, matrix_view<const float>(m.data(), n, n), vector_view<edge>(want.data(), n - 1));
      topofr::test::test_context t;
      topofr::test::device_buffer<float> dm(m);
      topofr::test::device_buffer<edge> dp(static_cast<std::size_t>(n - 1));
      for (int rep = 0; rep < 50; ++rep) {
        persistence_pairs(t.ctx, device_matrix_view<const float>(dm.p, n, n), device_vector_view<edge>(dp.p, n - 1));
        if (dp.get() != want) ++failures;
      }
    } catch (const std::exception& e) {
      errors[static_cast<std::size_t>(k)] = e.what();
      ++failures;
    }
  };
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) threads.emplace_back(worker, k);
  for (auto& th : threads) th.join();
  for (const auto& e : errors) INFO(e);
  CHECK(failures.load() == 0);
}
