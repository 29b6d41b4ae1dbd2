// The GUM EM of one batch's entropies to convergence (n = 128 is TopoFR's batch), and the SDS weights.
// Counter em_iterations: EM iterations the fit ran (the work is O(n) per iteration).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include <topofr/gum.hpp>

namespace {

using namespace topofr;

/// Entropies as a trainer produces them: mostly confident samples, ~15 % hard ones.
std::vector<float> realistic(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::exponential_distribution<double> easy(20.0);
  std::uniform_real_distribution<double> hard(0.5, 4.0), coin(0.0, 1.0);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(coin(g) < 0.15 ? hard(g) : easy(g));
  return v;
}

void BM_gum_fit(benchmark::State& st) {
  const index_t n = st.range(0);
  gum_options opt;
  opt.mode = st.range(1) ? gum_mode::robust : gum_mode::reference;
  const auto e = realistic(static_cast<std::size_t>(n), 1);
  std::vector<float> h(static_cast<std::size_t>(n));
  gum_result r{};
  for (auto _ : st) {
    r = gum_fit(cpu, vector_view<const float>(e.data(), n), vector_view<float>(h.data(), n), opt);
    benchmark::DoNotOptimize(h.data());
    benchmark::ClobberMemory();
  }
  st.counters["em_iterations"] = r.iterations;
  st.SetItemsProcessed(st.iterations() * n);
}

void BM_sds_weights(benchmark::State& st) {
  const index_t n = st.range(0);
  std::vector<float> h(static_cast<std::size_t>(n), 0.3f), p(h), w(h);
  for (auto _ : st) {
    sds_weights(cpu, vector_view<const float>(h.data(), n), vector_view<const float>(p.data(), n), 1.0, true,
                vector_view<float>(w.data(), n));
    benchmark::DoNotOptimize(w.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n);
}

}  // namespace

BENCHMARK(BM_gum_fit)->ArgNames({"n", "robust"})->Args({128, 0})->Args({128, 1})->Args({1024, 0})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_sds_weights)->Arg(128)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
