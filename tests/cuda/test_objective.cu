// CUDA objective (include/topofr/cuda/objective.cuh, via topofr/topofr.cuh). Oracle: the CPU
// topofr::objective (include/topofr/objective.hpp, itself tested against a float64 PyTorch autograd
// transcription of the whole TopoFR loss) on the same inputs — scalars, per-sample values and both
// gradients within 1e-6 relative in double, 1e-4 in float; bad shapes throw on the host.
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <topofr/topofr.cuh>

using namespace topofr;
using namespace topofr::test;
namespace tc = topofr::cuda;

namespace {

template <class T>
using dvec = topofr::test::device_buffer<T>;
using test_ctx = topofr::test::test_context;

template <class T>
void objective_parity(const objective_options& opt, index_t n, index_t c, double tol) {
  const index_t dx = 3 * 6 * 5, dz = 16;
  auto x = uniform<T>(static_cast<std::size_t>(n * dx), 1, -1.0, 1.0);
  auto z = normal<T>(static_cast<std::size_t>(n * dz), 2);
  auto cos = normal<T>(static_cast<std::size_t>(n * c), 3, 0.2);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    labels[i] = static_cast<std::int32_t>((i * 7) % c);
    cos[i * c + labels[i]] = static_cast<T>(0.3 + 0.5 * std::sin(static_cast<double>(i)));
  }
  for (auto& v : cos) v = std::clamp<T>(v, T(-1), T(1));
  std::vector<T> gz(static_cast<std::size_t>(n * dz)), gc(static_cast<std::size_t>(n * c));
  objective<T> cpu_obj(opt);
  const objective_result<T> want =
      cpu_obj(cpu, matrix_view<const T>(x.data(), n, dx), matrix_view<const T>(z.data(), n, dz),
              matrix_view<const T>(cos.data(), n, c), vector_view<const std::int32_t>(labels.data(), n),
              matrix_view<T>(gz.data(), n, dz), matrix_view<T>(gc.data(), n, c));

  test_ctx t;
  dvec<T> dxv(x), dzv(z), dc(cos), dgz(gz.size()), dgc(gc.size()), dw(static_cast<std::size_t>(n)),
      dh(static_cast<std::size_t>(n)), de(static_cast<std::size_t>(n));
  dvec<std::int32_t> dy(labels);
  dvec<objective_result<T>> dr(1);
  tc::objective<T> gpu_obj(opt);
  tc::objective_samples<T> s;
  s.weights = device_vector_view<T>(dw.p, n);
  s.hard_posterior = device_vector_view<T>(dh.p, n);
  s.entropy = device_vector_view<T>(de.p, n);
  gpu_obj(t.ctx, device_matrix_view<const T>(dxv.p, n, dx), device_matrix_view<const T>(dzv.p, n, dz),
          device_matrix_view<const T>(dc.p, n, c), device_vector_view<const std::int32_t>(dy.p, n), device_matrix_view<T>(dgz.p, n, dz),
          device_matrix_view<T>(dgc.p, n, c), dr.p, s);
  CHECK(t.read() == tc::status_ok);
  const objective_result<T> got = dr.get()[0];
  close(std::vector<double>{double(got.loss), double(got.loss_cls), double(got.discrepancy), got.pi, got.sigma},
        std::vector<double>{double(want.loss), double(want.loss_cls), double(want.discrepancy), want.pi, want.sigma},
        tol, 1e-12);
  CHECK(got.hard_fraction == want.hard_fraction);
  CHECK(std::abs(got.gum_iterations - want.gum_iterations) <= 1);
  close(dw.get(), cpu_obj.weights(), tol, 1e-12);
  close(dh.get(), cpu_obj.hard_posterior(), tol, 1e-9);
  close(de.get(), cpu_obj.entropy(), tol, 1e-9);
  double zmax = 0;
  for (T g : gz) zmax = std::max(zmax, std::abs(static_cast<double>(g)));
  close(dgz.get(), gz, tol, zmax * 1e-3 + 1e-30);
  close(dgc.get(), gc, tol, 1e-12);
}

}  // namespace

TEST_CASE("cuda objective: parity with the CPU objective (oracle: CPU objective.hpp), paper options",
          "[cuda][objective]") {
  objective_parity<double>(objective_options::paper(), 32, 500, 1e-6);
  objective_parity<float>(objective_options::paper(), 32, 500, 1e-4);
}

TEST_CASE("cuda objective: released-code options and ablations (oracle: CPU objective.hpp)", "[cuda][objective]") {
  objective_parity<double>(objective_options::released_code(), 24, 300, 1e-6);
  objective_options o;
  o.use_isa = false;
  objective_parity<double>(o, 16, 100, 1e-6);
  o = {};
  o.use_sds = false;
  objective_parity<double>(o, 16, 100, 1e-6);
  objective_parity<double>(objective_options::paper(), 2, 3, 1e-6);  // n = 2
}

TEST_CASE("cuda objective: a shape error throws before anything is enqueued (outputs untouched)",
          "[cuda][objective]") {
  // grad_z has the wrong shape: the ISA part would find it only after the head's kernels had run, so the
  // objective checks everything first. grad_cos keeps its sentinel and no status bit is set.
  const index_t n = 8, c = 16, dz = 4;
  test_ctx t;
  dvec<float> x(std::vector<float>(n * 6, 0.5f)), z(test::normal<float>(n * dz, 3)), cs(std::vector<float>(n * c, 0.1f));
  dvec<float> gz(n * dz), gc(std::vector<float>(n * c, 7.0f));
  dvec<std::int32_t> y(std::vector<std::int32_t>(n, 1));
  tc::objective<float> f(objective_options::paper());
  CHECK_THROWS_WITH(f(t.ctx, device_matrix_view<const float>(x.p, n, 6), device_matrix_view<const float>(z.p, n, dz),
                      device_matrix_view<const float>(cs.p, n, c), device_vector_view<const std::int32_t>(y.p, n),
                      device_matrix_view<float>(gz.p, n, dz - 1), device_matrix_view<float>(gc.p, n, c), nullptr),
                    Catch::Contains("grad_z"));
  for (float v : gc.get()) REQUIRE(v == 7.0f);
  CHECK(t.read() == tc::status_ok);
}

TEST_CASE("cuda objective: bad shapes and options throw on the host", "[cuda][objective]") {
  objective_options bad;
  bad.alpha = -1.0;
  CHECK_THROWS_WITH(tc::objective<float>(bad), Catch::Contains("alpha"));
  test_ctx t;
  dvec<float> a(64), g(64);
  dvec<std::int32_t> y(8);
  tc::objective<float> f;
  CHECK_THROWS_WITH(f(t.ctx, device_matrix_view<const float>(a.p, 8, 4), device_matrix_view<const float>(a.p, 7, 4),
                      device_matrix_view<const float>(a.p, 8, 8), device_vector_view<const std::int32_t>(y.p, 8),
                      device_matrix_view<float>(g.p, 7, 4), device_matrix_view<float>(g.p, 8, 8), nullptr),
                    Catch::Contains("z"));
  CHECK_THROWS_WITH(f(t.ctx, device_matrix_view<const float>(a.p, 8, 4), device_matrix_view<const float>(a.p, 8, 4),
                      device_matrix_view<const float>(a.p, 8, 8), device_vector_view<const std::int32_t>(y.p, 8),
                      device_matrix_view<float>(g.p, 8, 4), device_matrix_view<float>(g.p, 8, 7), nullptr),
                    Catch::Contains("grad_cos"));
  tc::objective_samples<float> s;
  s.loss = device_vector_view<float>(g.p, 3);
  CHECK_THROWS_WITH(f(t.ctx, device_matrix_view<const float>(a.p, 8, 4), device_matrix_view<const float>(a.p, 8, 4),
                      device_matrix_view<const float>(a.p, 8, 8), device_vector_view<const std::int32_t>(y.p, 8),
                      device_matrix_view<float>(g.p, 8, 4), device_matrix_view<float>(g.p, 8, 8), nullptr, s),
                    Catch::Contains("samples.loss"));
}
