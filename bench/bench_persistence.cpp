// VR 0-dim persistence pairs (float distance matrices of Gaussian points, d = 64) against the cost of
// reading the same matrix once (an Eigen-vectorised sum): the fast path should be within a small factor.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <vector>

#include <Eigen/Dense>
#include <topofr/distance.hpp>
#include <topofr/persistence.hpp>

namespace {

using namespace topofr;

std::vector<float> gaussian(index_t count, unsigned seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(static_cast<std::size_t>(count));
  for (auto& x : v) x = d(g);
  return v;
}

/// The n x n distance matrix of n Gaussian points in 64 dimensions.
std::vector<float> distance_matrix(index_t n, unsigned seed = 7) {
  const index_t d = 64;
  std::vector<float> x = gaussian(n * d, seed), dist(static_cast<std::size_t>(n * n));
  pairwise_distances(cpu, matrix_view<const float>(x.data(), n, d), matrix_view<float>(dist.data(), n, n));
  return dist;
}

void set_counters(benchmark::State& st, index_t elements) {
  st.SetItemsProcessed(st.iterations() * elements);
  st.SetBytesProcessed(st.iterations() * elements * index_t(sizeof(float)));
}

void BM_vr0_pairs(benchmark::State& st) {
  const index_t n = st.range(0);
  std::vector<float> dist = distance_matrix(n), deaths(n - 1);
  std::vector<edge> pairs(n - 1);
  for (auto _ : st) {
    persistence_pairs(cpu, matrix_view<const float>(dist.data(), n, n), vector_view<edge>(pairs.data(), n - 1),
                      vector_view<float>(deaths.data(), n - 1));
    benchmark::DoNotOptimize(pairs.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, n * n);
}

/// The baseline: read every entry of the same matrix once.
void BM_read_once(benchmark::State& st) {
  const index_t n = st.range(0);
  std::vector<float> dist = distance_matrix(n);
  for (auto _ : st) {
    float s = Eigen::Map<const Eigen::ArrayXf>(dist.data(), n * n).sum();
    benchmark::DoNotOptimize(s);
  }
  set_counters(st, n * n);
}

/// An asymmetric matrix (one lower entry perturbed): the checksum sends it to the exact slow path.
void BM_vr0_pairs_asymmetric(benchmark::State& st) {
  const index_t n = st.range(0);
  std::vector<float> dist = distance_matrix(n), deaths(n - 1);
  dist[static_cast<std::size_t>((n - 1) * n)] *= 1.5f;  // entry (n-1, 0)
  std::vector<edge> pairs(n - 1);
  for (auto _ : st) {
    persistence_pairs(cpu, matrix_view<const float>(dist.data(), n, n), vector_view<edge>(pairs.data(), n - 1),
                      vector_view<float>(deaths.data(), n - 1));
    benchmark::DoNotOptimize(pairs.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, n * n);
}

void BM_vr0_pairs_batched(benchmark::State& st) {
  const index_t nb = st.range(0), n = st.range(1);
  std::vector<float> dist;
  for (index_t b = 0; b < nb; ++b) {
    std::vector<float> one = distance_matrix(n, 100 + unsigned(b));
    dist.insert(dist.end(), one.begin(), one.end());
  }
  std::vector<float> deaths(nb * (n - 1));
  std::vector<edge> pairs(nb * (n - 1));
  for (auto _ : st) {
    persistence_pairs(cpu, batch_view<const float>(dist.data(), nb, n, n), matrix_view<edge>(pairs.data(), nb, n - 1),
                      matrix_view<float>(deaths.data(), nb, n - 1));
    benchmark::DoNotOptimize(pairs.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, nb * n * n);
}

void BM_vr0_pairs_from_points(benchmark::State& st) {
  const index_t nb = st.range(0), n = st.range(1), d = st.range(2);
  std::vector<float> x = gaussian(nb * n * d, 3), deaths(nb * (n - 1));
  std::vector<edge> pairs(nb * (n - 1));
  for (auto _ : st) {
    persistence_pairs_from_points(cpu, batch_view<const float>(x.data(), nb, n, d), 1.0,
                                  matrix_view<edge>(pairs.data(), nb, n - 1), matrix_view<float>(deaths.data(), nb, n - 1));
    benchmark::DoNotOptimize(pairs.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * nb * n * d);
}

}  // namespace

/// Cache-cold variants: rotate over copies of the matrix totalling 256 MiB (8x the L3 here), so that every
/// call streams its matrix from memory, as a trainer's freshly computed matrix of another batch would be.
/// Without this, n <= 2048 matrices (<= 16 MiB) stay in L3 across iterations and n = 4096 does not, which
/// makes the n^2 growth look worse than it is.
std::vector<std::vector<float>> cold_pool(index_t n) {
  const std::vector<float> dist = distance_matrix(n);
  const std::size_t bytes = dist.size() * sizeof(float);
  const std::size_t copies = std::max<std::size_t>(2, (std::size_t(256) << 20) / bytes);
  return std::vector<std::vector<float>>(copies, dist);
}

void BM_vr0_pairs_cold(benchmark::State& st) {
  const index_t n = st.range(0);
  auto pool = cold_pool(n);
  std::vector<float> deaths(n - 1);
  std::vector<edge> pairs(n - 1);
  std::size_t k = 0;
  for (auto _ : st) {
    const float* d = pool[k++ % pool.size()].data();
    persistence_pairs(cpu, matrix_view<const float>(d, n, n), vector_view<edge>(pairs.data(), n - 1),
                      vector_view<float>(deaths.data(), n - 1));
    benchmark::DoNotOptimize(pairs.data());
    benchmark::ClobberMemory();
  }
  set_counters(st, n * n);
}

void BM_read_once_cold(benchmark::State& st) {
  const index_t n = st.range(0);
  auto pool = cold_pool(n);
  std::size_t k = 0;
  for (auto _ : st) {
    float s = Eigen::Map<const Eigen::ArrayXf>(pool[k++ % pool.size()].data(), n * n).sum();
    benchmark::DoNotOptimize(s);
  }
  set_counters(st, n * n);
}

BENCHMARK(BM_vr0_pairs)->RangeMultiplier(2)->Range(64, 4096)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_vr0_pairs_cold)->RangeMultiplier(2)->Range(1024, 4096)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_read_once_cold)->RangeMultiplier(2)->Range(1024, 4096)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_read_once)->RangeMultiplier(2)->Range(64, 4096)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_vr0_pairs_asymmetric)->Arg(2048)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_vr0_pairs_batched)->Args({16, 128})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_vr0_pairs_from_points)->Args({16, 128, 512})->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
