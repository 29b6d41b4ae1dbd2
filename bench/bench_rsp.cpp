// RSP on a training-sized batch: N = 128 x 3 x 112 x 112 float, probability 0.2 (the paper's ξ) and 1.0
// (every sample perturbed: the cost of the perturbations themselves); 0 measures the input checks alone.
// Each iteration restores the clean batch first (memcpy, timed separately as the baseline) because
// rsp_perturb works in place.
#include <benchmark/benchmark.h>

#include <topofr/rsp.hpp>

#include <cstring>
#include <random>
#include <vector>

namespace {

constexpr topofr::index_t N = 128, C = 3, H = 112, W = 112;

const std::vector<float>& clean() {
  static const std::vector<float> v = [] {
    std::vector<float> x(static_cast<std::size_t>(N * C * H * W));
    std::mt19937 g(1);
    std::uniform_real_distribution<float> d(-1.f, 1.f);
    for (auto& e : x) e = d(g);
    return x;
  }();
  return v;
}

void BM_restore_only(benchmark::State& state) {
  std::vector<float> img(clean().size());
  for (auto _ : state) {
    std::memcpy(img.data(), clean().data(), img.size() * sizeof(float));
    benchmark::DoNotOptimize(img.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(img.size() * sizeof(float)));
}

void BM_rsp_perturb(benchmark::State& state) {
  std::vector<float> img(clean().size());
  std::vector<std::int32_t> kinds(N);
  topofr::rsp_options opt;
  opt.probability = state.range(0) / 100.0;
  opt.seed = 42;
  for (auto _ : state) {
    std::memcpy(img.data(), clean().data(), img.size() * sizeof(float));
    topofr::rsp_perturb(topofr::cpu, topofr::image_batch_view<float>(img.data(), N, C, H, W), opt,
                        topofr::make_vector_view(kinds.data(), N));
    ++opt.step;  // a fresh draw each iteration, as in training
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(img.size() * sizeof(float)));
}

}  // namespace

BENCHMARK(BM_restore_only)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_rsp_perturb)->Arg(0)->Arg(20)->Arg(100)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
