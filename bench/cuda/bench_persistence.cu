// GPU microbenchmarks of batched VR0 persistence (issue 3, item 7): B in {1, 16, 256} x n in {128, 512, 2048}
// from 512-d points (distances included) and from distance matrices, the distances alone, and a
// device-to-device copy of the same input bytes as the roofline baseline. Timing by cudaEvents around each
// call on one stream (UseManualTime). Combinations whose distance work exceeds ~1e10 double FMAs (a second
// or more per call) or whose buffers exceed ~8 GB are not registered, to keep the GPU check short.
#pragma nv_diag_suppress 20012  // Eigen's defaulted __host__ __device__ members (CPU headers under nvcc)
#include <benchmark/benchmark.h>

#include <topofr/cuda/distance.cuh>
#include <topofr/cuda/persistence.cuh>

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace topofr;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

struct dmem {
  void* p = nullptr;
  explicit dmem(std::size_t bytes) { check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc"); }
  ~dmem() { cudaFree(p); }
  template <class T> T* as() const { return static_cast<T*>(p); }
};

/// Uniform [-1, 1) values from a hash of the index (no host generation of gigabytes).
__global__ void fill_kernel(float* x, std::size_t n, unsigned seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    std::uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull + seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    x[i] = static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
  }
}

void fill(float* x, std::size_t n, unsigned seed) {
  fill_kernel<<<1024, 256>>>(x, n, seed);
  check(cudaGetLastError(), "fill");
}

/// Times f() with events on ctx.stream, after one untimed warm-up call.
template <class F>
void time_loop(benchmark::State& st, const cuda::context& ctx, F&& f) {
  f();
  check(cudaStreamSynchronize(ctx.stream), "warm-up");
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  for (auto _ : st) {
    check(cudaEventRecord(a, ctx.stream), "record");
    f();
    check(cudaEventRecord(b, ctx.stream), "record");
    check(cudaEventSynchronize(b), "sync");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, a, b), "elapsed");
    st.SetIterationTime(ms * 1e-3);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  if (cuda::read_status(ctx) != cuda::status_ok) st.SkipWithError("device reported an invalid value");
}

constexpr index_t dim = 512;

struct bench_ctx {
  dmem status{sizeof(int)};
  cuda::context ctx;
  bench_ctx() {
    check(cudaStreamCreate(&ctx.stream), "stream");
    check(cudaMemset(status.p, 0, sizeof(int)), "memset");
    ctx.status = status.as<int>();
  }
  ~bench_ctx() { cudaStreamDestroy(ctx.stream); }
};

void bm_points(benchmark::State& st, index_t B, index_t n) {
  bench_ctx c;
  dmem x(B * n * dim * sizeof(float)), p(B * (n - 1) * sizeof(edge)), d(B * (n - 1) * sizeof(float));
  fill(x.as<float>(), B * n * dim, 1);
  time_loop(st, c.ctx, [&] {
    persistence_pairs_from_points(c.ctx, batch_view<const float>(x.as<float>(), B, n, dim), 1.0,
                                  matrix_view<edge>(p.as<edge>(), B, n - 1), matrix_view<float>(d.as<float>(), B, n - 1));
  });
  st.SetBytesProcessed(st.iterations() * B * n * dim * index_t(sizeof(float)));
  st.SetItemsProcessed(st.iterations() * B);
}

void bm_matrix(benchmark::State& st, index_t B, index_t n) {
  bench_ctx c;
  const index_t gen_dim = 16;  // the matrices' origin does not matter: cheap points
  dmem x(B * n * gen_dim * sizeof(float)), m(B * n * n * sizeof(float)), p(B * (n - 1) * sizeof(edge)),
      d(B * (n - 1) * sizeof(float));
  fill(x.as<float>(), B * n * gen_dim, 2);
  pairwise_distances(c.ctx, batch_view<const float>(x.as<float>(), B, n, gen_dim), batch_view<float>(m.as<float>(), B, n, n));
  time_loop(st, c.ctx, [&] {
    persistence_pairs(c.ctx, batch_view<const float>(m.as<float>(), B, n, n), matrix_view<edge>(p.as<edge>(), B, n - 1),
                      matrix_view<float>(d.as<float>(), B, n - 1));
  });
  st.SetBytesProcessed(st.iterations() * B * n * n * index_t(sizeof(float)));
  st.SetItemsProcessed(st.iterations() * B);
}

void bm_distances(benchmark::State& st, index_t B, index_t n) {
  bench_ctx c;
  dmem x(B * n * dim * sizeof(float)), m(B * n * n * sizeof(float));
  fill(x.as<float>(), B * n * dim, 3);
  time_loop(st, c.ctx, [&] {
    pairwise_distances(c.ctx, batch_view<const float>(x.as<float>(), B, n, dim), batch_view<float>(m.as<float>(), B, n, n));
  });
  st.SetBytesProcessed(st.iterations() * B * (n * dim + n * n) * index_t(sizeof(float)));
  st.SetItemsProcessed(st.iterations() * B);
}

/// Roofline baseline: a device-to-device copy of `bytes`.
void bm_copy(benchmark::State& st, index_t bytes) {
  bench_ctx c;
  dmem a(bytes), b(bytes);
  check(cudaMemset(a.p, 0, bytes), "memset");
  time_loop(st, c.ctx, [&] { check(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, c.ctx.stream), "copy"); });
  st.SetBytesProcessed(st.iterations() * bytes);
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipped\n");
    return 0;
  }
  const double max_fma = 1.1e10;   // distance work per call (double FMAs), ~1 s on an H100
  const double max_bytes = 8e9;    // device buffers
  for (index_t B : {1, 16, 256})
    for (index_t n : {128, 512, 2048}) {
      const std::string tag = "/B:" + std::to_string(B) + "/n:" + std::to_string(n);
      const double fma = double(B) * n * n * dim / 2, point_bytes = double(B) * n * dim * 4,
                   matrix_bytes = double(B) * n * n * 4;
      if (fma <= max_fma && point_bytes + matrix_bytes <= max_bytes) {
        benchmark::RegisterBenchmark(("vr0_from_points" + tag + "/d:512").c_str(), bm_points, B, n)->UseManualTime();
        benchmark::RegisterBenchmark(("distances" + tag + "/d:512").c_str(), bm_distances, B, n)->UseManualTime();
        benchmark::RegisterBenchmark(("copy_points_bytes" + tag).c_str(), bm_copy, index_t(point_bytes))->UseManualTime();
      }
      if (matrix_bytes <= max_bytes) {
        benchmark::RegisterBenchmark(("vr0_from_matrices" + tag).c_str(), bm_matrix, B, n)->UseManualTime();
        benchmark::RegisterBenchmark(("copy_matrix_bytes" + tag).c_str(), bm_copy, index_t(matrix_bytes))->UseManualTime();
      }
    }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
