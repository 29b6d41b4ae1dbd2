// The fused margin-softmax cross-entropy head at TopoFR's shape: a batch of N = 128 against C = 85,742
// classes (MS1MV2), float. Run with
//   --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// BM_read_write is the memory baseline measured in the same binary: one read and one write of the matrix
// (what pass 2 must at least do; the forward only reads it).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <topofr/arcface.hpp>

namespace {

using namespace topofr;

constexpr index_t n = 128, c = 85742;

// Cosines as a trained ArcFace head sees them: non-targets near 0, targets well above.
struct data {
  std::vector<float> cos, grad, loss, entropy, pgt, lse, w;
  std::vector<std::int32_t> labels;
  combined_margin m;
  data() : cos(n * c), grad(n * c), loss(n), entropy(n), pgt(n), lse(n), w(n, 1.f), labels(n) {
    std::mt19937_64 g(1);
    std::normal_distribution<float> nd(0.f, 0.1f);
    std::uniform_real_distribution<float> u(0.2f, 0.8f);
    std::uniform_int_distribution<std::int32_t> cls(0, static_cast<std::int32_t>(c - 1));
    for (auto& v : cos) v = std::clamp(nd(g), -1.f, 1.f);
    for (index_t i = 0; i < n; ++i) labels[i] = cls(g), cos[i * c + labels[i]] = u(g);
  }
  matrix_view<const float> cv() const { return {cos.data(), n, c}; }
  vector_view<const std::int32_t> yv() const { return {labels.data(), n}; }
  void forward() {
    margin_ce_forward(cpu, cv(), yv(), m, 1e-5, vector_view<float>(loss.data(), n),
                      vector_view<float>(entropy.data(), n), vector_view<float>(pgt.data(), n),
                      vector_view<float>(lse.data(), n));
  }
  void backward() {
    margin_ce_backward(cpu, cv(), yv(), m, vector_view<const float>(lse.data(), n),
                       vector_view<const float>(w.data(), n), 1.0 / n, matrix_view<float>(grad.data(), n, c));
  }
};

data& shared() {
  static data d;
  return d;
}

void finish(benchmark::State& st, index_t bytes_per_element) {
  st.SetItemsProcessed(st.iterations() * n * c);
  st.SetBytesProcessed(st.iterations() * n * c * bytes_per_element);
}

void BM_forward(benchmark::State& st) {
  data& d = shared();
  for (auto _ : st) {
    d.forward();
    benchmark::DoNotOptimize(d.loss.data());
    benchmark::ClobberMemory();
  }
  finish(st, 4);
}

void BM_backward(benchmark::State& st) {
  data& d = shared();
  d.forward();
  for (auto _ : st) {
    d.backward();
    benchmark::DoNotOptimize(d.grad.data());
    benchmark::ClobberMemory();
  }
  finish(st, 8);
}

void BM_forward_backward(benchmark::State& st) {
  data& d = shared();
  for (auto _ : st) {
    d.forward();
    d.backward();
    benchmark::DoNotOptimize(d.grad.data());
    benchmark::ClobberMemory();
  }
  finish(st, 12);
}

// Baseline: read the matrix once and write it once, row-parallel like the head (a scaled copy).
void BM_read_write(benchmark::State& st) {
  data& d = shared();
  const float* src = d.cos.data();
  float* dst = d.grad.data();
  for (auto _ : st) {
#pragma omp parallel for schedule(static)
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < c; ++j) dst[i * c + j] = 0.5f * src[i * c + j];
    benchmark::DoNotOptimize(dst);
    benchmark::ClobberMemory();
  }
  finish(st, 8);
}

}  // namespace

BENCHMARK(BM_forward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_backward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_forward_backward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_read_write)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
