// ISA loss benchmarks at TopoFR's training shape: a batch of n = 128 images 3 x 112 x 112 (float, in
// [-1, 1]) and 512-d embeddings. Run with
//   --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// The components (input distances, which dominate) are timed alongside as the baseline.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include <topofr/isa.hpp>

namespace {

using namespace topofr;

constexpr index_t n = 128, c = 3, h = 112, w = 112, dx = c * h * w, dz = 512;

struct data {
  std::vector<float> x, z, mx, mz, gz, gmz;
  std::vector<edge> px, pz;
  isa_options opt;
  data() : x(n * dx), z(n * dz), mx(n * n), mz(n * n), gz(n * dz), gmz(n * n), px(n - 1), pz(n - 1) {
    std::mt19937_64 g(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& v : x) v = u(g);
    for (auto& v : z) v = nd(g);
    opt.x_scale = image_scale(c, h, w);
    pairwise_distances(cpu, X(), matrix_view<float>(mx.data(), n, n), opt.x_scale);
    pairwise_distances(cpu, Z(), matrix_view<float>(mz.data(), n, n), opt.z_scale);
    persistence_pairs(cpu, matrix_view<const float>(mx.data(), n, n), vector_view<edge>(px.data(), n - 1));
    persistence_pairs(cpu, matrix_view<const float>(mz.data(), n, n), vector_view<edge>(pz.data(), n - 1));
  }
  matrix_view<const float> X() const { return {x.data(), n, dx}; }
  matrix_view<const float> Z() const { return {z.data(), n, dz}; }
};

const data& get() {
  static const data d;
  return d;
}

// The training step: distances of X and Z, both persistence pairings, loss and dL/dz.
void BM_isa_from_points_grad_z(benchmark::State& st) {
  const data& d = get();
  std::vector<float> gz(n * dz);
  isa_options opt = d.opt;
  opt.variant = st.range(0) ? isa_variant::sorted_deaths : isa_variant::symmetric;
  for (auto _ : st) {
    float l = isa_loss_from_points(cpu, d.X(), d.Z(), opt, matrix_view<float>(gz.data(), n, dz));
    benchmark::DoNotOptimize(l);
    benchmark::ClobberMemory();
  }
  st.SetLabel(st.range(0) ? "sorted_deaths" : "symmetric");
}
BENCHMARK(BM_isa_from_points_grad_z)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Low level: matrices and pairs given; loss and the dense gradient w.r.t. MZ.
void BM_isa_low_level(benchmark::State& st) {
  const data& d = get();
  std::vector<float> gmz(n * n);
  for (auto _ : st) {
    float l = isa_loss(cpu, matrix_view<const float>(d.mx.data(), n, n), matrix_view<const float>(d.mz.data(), n, n),
                       vector_view<const edge>(d.px.data(), n - 1), vector_view<const edge>(d.pz.data(), n - 1),
                       isa_variant::symmetric, reduction::mean, matrix_view<float>(gmz.data(), n, n));
    benchmark::DoNotOptimize(l);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_isa_low_level)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Baseline components of the training step.
void BM_baseline_distances_x(benchmark::State& st) {
  const data& d = get();
  std::vector<float> m(n * n);
  for (auto _ : st) {
    pairwise_distances(cpu, d.X(), matrix_view<float>(m.data(), n, n), d.opt.x_scale);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_baseline_distances_x)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_baseline_distances_and_pairs_z(benchmark::State& st) {
  const data& d = get();
  std::vector<float> m(n * n);
  std::vector<edge> p(n - 1);
  for (auto _ : st) {
    pairwise_distances(cpu, d.Z(), matrix_view<float>(m.data(), n, n));
    persistence_pairs(cpu, matrix_view<const float>(m.data(), n, n), vector_view<edge>(p.data(), n - 1));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_baseline_distances_and_pairs_z)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
