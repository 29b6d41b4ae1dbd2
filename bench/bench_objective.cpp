// The whole TopoFR objective at TopoFR's training shape, as the Python package's topofr.Objective calls it:
// B = 128 clean images 3 x 112 x 112 (float, the n x CHW point cloud), 512-d embeddings, cosines
// 128 x 85,742 (MS1MV2's classes), released-code options (sorted-deaths ISA, no focal term, alpha 0.1,
// x_scale = image_scale(3, 112, 112)): margin-CE forward, GUM, SDS, margin-CE backward, ISA with dL/dz.
// Run with
//   --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// TOPOFR_BENCH_DATA=DIR times DIR/{x,z,cos,labels}.npy instead of the built-in batch (bench/bench_python.py
// writes its batch there, so that the Python and C++ medians are of the same inputs); counter `loss` is
// the objective's value, for checking that both saw the same batch.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <topofr/npy.hpp>
#include <topofr/objective.hpp>

namespace {

using namespace topofr;

struct data {
  index_t n = 128, dx = 3 * 112 * 112, dz = 512, c = 85742;
  std::vector<float> x, z, cos;
  std::vector<std::int64_t> labels;
  double x_scale = image_scale(3, 112, 112);
  std::string source = "built-in";

  data() {
    if (const char* dir = std::getenv("TOPOFR_BENCH_DATA")) {
      load(dir);
      return;
    }
    x.resize(static_cast<std::size_t>(n * dx));
    z.resize(static_cast<std::size_t>(n * dz));
    cos.resize(static_cast<std::size_t>(n * c));
    labels.resize(static_cast<std::size_t>(n));
    std::mt19937_64 g(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f), ut(0.2f, 0.8f);
    std::normal_distribution<float> nd(0.f, 1.f), nc(0.f, 0.1f);
    std::uniform_int_distribution<std::int64_t> cls(0, c - 1);
    for (auto& v : x) v = u(g);
    for (auto& v : z) v = nd(g);
    for (auto& v : cos) v = std::clamp(nc(g), -1.f, 1.f);
    for (index_t i = 0; i < n; ++i) labels[i] = cls(g), cos[i * c + labels[i]] = ut(g);
  }

  void load(const std::string& dir) {
    const npy::array ax = npy::read(dir + "/x.npy"), az = npy::read(dir + "/z.npy"),
                     ac = npy::read(dir + "/cos.npy"), ay = npy::read(dir + "/labels.npy");
    n = ax.shape.at(0);
    dx = ax.size() / n;  // (n, C, H, W) images or (n, d) points
    x_scale = ax.ndim() == 4 ? image_scale(ax.shape[1], ax.shape[2], ax.shape[3]) : 1.0;
    dz = az.shape.at(1);
    c = ac.shape.at(1);
    x = ax.as<float>("x");
    z = az.as<float>("z");
    cos = ac.as<float>("cos");
    labels = ay.as<std::int64_t>("labels");
    source = dir;
  }
};

const data& get() {
  static const data d;
  return d;
}

void BM_objective_released_code(benchmark::State& st) {
  const data& d = get();
  objective_options opt = objective_options::released_code();
  opt.alpha = 0.1;
  opt.isa.x_scale = d.x_scale;
  objective<float> obj(opt);
  std::vector<float> gz(static_cast<std::size_t>(d.n * d.dz)), gc(static_cast<std::size_t>(d.n * d.c));
  objective_result<float> r{};
  for (auto _ : st) {
    r = obj(cpu, matrix_view<const float>(d.x.data(), d.n, d.dx), matrix_view<const float>(d.z.data(), d.n, d.dz),
            matrix_view<const float>(d.cos.data(), d.n, d.c), vector_view<const std::int64_t>(d.labels.data(), d.n),
            matrix_view<float>(gz.data(), d.n, d.dz), matrix_view<float>(gc.data(), d.n, d.c));
    benchmark::DoNotOptimize(r);
    benchmark::ClobberMemory();
  }
  st.counters["loss"] = r.loss;
  st.counters["gum_iterations"] = r.gum_iterations;
  st.SetLabel(d.source);
}
BENCHMARK(BM_objective_released_code)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
