// Pairwise distances of a batch-sized cloud: latent (n = 128, d = 512) and image (n = 128, 3 x 112 x 112).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include <topofr/distance.hpp>

namespace {

using namespace topofr;

template <class T>
void BM_pairwise_distances(benchmark::State& st) {
  const index_t n = st.range(0), d = st.range(1);
  std::mt19937_64 g(1);
  std::normal_distribution<double> nd;
  std::vector<T> x(static_cast<std::size_t>(n * d)), dist(static_cast<std::size_t>(n * n));
  for (auto& v : x) v = static_cast<T>(nd(g));
  for (auto _ : st) {
    pairwise_distances(cpu, matrix_view<const T>(x.data(), n, d), matrix_view<T>(dist.data(), n, n));
    benchmark::DoNotOptimize(dist.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n * d);
  st.SetBytesProcessed(st.iterations() * n * d * index_t(sizeof(T)));
}

}  // namespace

BENCHMARK_TEMPLATE(BM_pairwise_distances, float)->Args({128, 512})->Args({128, 3 * 112 * 112})->Unit(benchmark::kMicrosecond);
BENCHMARK_TEMPLATE(BM_pairwise_distances, double)->Args({128, 512})->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
