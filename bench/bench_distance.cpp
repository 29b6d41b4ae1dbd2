// Pairwise distances of a batch-sized cloud: latent (n = 128, d = 512) and image (n = 128, 3 x 112 x 112).
// Anchor in the same run: the previous CPU path for float points (a std::isfinite scan, a double copy of
// the points and the double Gram matrix, detail::distances_double), which double points still take.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include <topofr/distance.hpp>

namespace {

using namespace topofr;

template <class T>
std::vector<T> cloud(index_t n, index_t d) {
  std::mt19937_64 g(1);
  std::normal_distribution<double> nd;
  std::vector<T> x(static_cast<std::size_t>(n * d));
  for (auto& v : x) v = static_cast<T>(nd(g));
  return x;
}

template <class T>
void BM_pairwise_distances(benchmark::State& st) {
  const index_t n = st.range(0), d = st.range(1);
  const std::vector<T> x = cloud<T>(n, d);
  std::vector<T> dist(static_cast<std::size_t>(n * n));
  for (auto _ : st) {
    pairwise_distances(cpu, matrix_view<const T>(x.data(), n, d), matrix_view<T>(dist.data(), n, n));
    benchmark::DoNotOptimize(dist.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n * d);
  st.SetBytesProcessed(st.iterations() * n * d * index_t(sizeof(T)));
}

/// The previous pairwise_distances for float points, step by step (anchor).
void BM_anchor_double_path(benchmark::State& st) {
  const index_t n = st.range(0), d = st.range(1);
  const std::vector<float> x = cloud<float>(n, d);
  std::vector<float> dist(static_cast<std::size_t>(n * n));
  detail::dmatrix xd, gram;
  for (auto _ : st) {
    const matrix_view<const float> p(x.data(), n, d);
    bool finite = true;  // the previous check: std::isfinite element by element
    for (index_t i = 0; i < n; ++i)
      for (index_t k = 0; k < d; ++k) finite &= std::isfinite(p(i, k));
    if (!finite) st.SkipWithError("not finite");
    detail::points_to_double(p, xd);
    detail::distances_double(xd, matrix_view<float>(dist.data(), n, n), 1.0, gram);
    benchmark::DoNotOptimize(dist.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n * d);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_pairwise_distances, float)->Args({128, 512})->Args({128, 3 * 112 * 112})->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK_TEMPLATE(BM_pairwise_distances, double)->Args({128, 512})->Args({128, 3 * 112 * 112})->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK(BM_anchor_double_path)->Args({128, 512})->Args({128, 3 * 112 * 112})->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime()->UseRealTime();

BENCHMARK_MAIN();
