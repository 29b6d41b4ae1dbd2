// CUDA ISA loss (include/topofr/cuda/isa.cuh). Oracle: the CPU isa_loss / isa_loss_from_points
// (include/topofr/isa.hpp, themselves tested against PyTorch autograd and finite differences) on the same
// inputs — loss and gradients within 1e-6 relative in double, 1e-4 in float. Device-detected bad values
// set status bits; bad shapes throw on the host.
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <topofr/distance.hpp>
#include <topofr/isa.hpp>
#include <topofr/persistence.hpp>
#include <topofr/cuda/isa.cuh>

using namespace topofr;
using namespace topofr::test;
namespace tc = topofr::cuda;

namespace {

template <class T>
using dvec = topofr::test::device_buffer<T>;
using test_ctx = topofr::test::test_context;

template <class T>
void from_matrices(index_t n, isa_variant v, reduction r, double tol) {
  const index_t dx = 7, dz = 5;
  const auto X = normal<T>(static_cast<std::size_t>(n * dx), 1), Z = normal<T>(static_cast<std::size_t>(n * dz), 2);
  const auto N2 = static_cast<std::size_t>(n * n), M = static_cast<std::size_t>(n - 1);
  std::vector<T> mx(N2), mz(N2), gz(N2), gx(N2);
  pairwise_distances(cpu, matrix_view<const T>(X.data(), n, dx), matrix_view<T>(mx.data(), n, n));
  pairwise_distances(cpu, matrix_view<const T>(Z.data(), n, dz), matrix_view<T>(mz.data(), n, n));
  std::vector<edge> px(M), pz(M);
  persistence_pairs(cpu, matrix_view<const T>(mx.data(), n, n), vector_view<edge>(px.data(), n - 1));
  persistence_pairs(cpu, matrix_view<const T>(mz.data(), n, n), vector_view<edge>(pz.data(), n - 1));
  const T want = isa_loss(cpu, matrix_view<const T>(mx.data(), n, n), matrix_view<const T>(mz.data(), n, n),
                          vector_view<const edge>(px.data(), n - 1), vector_view<const edge>(pz.data(), n - 1), v, r,
                          matrix_view<T>(gz.data(), n, n), matrix_view<T>(gx.data(), n, n));
  test_ctx t;
  dvec<T> dmx(mx), dmz(mz), dgz(N2), dgx(N2), dl(1);
  dvec<edge> dpx(px), dpz(pz);
  isa_loss(t.ctx, device_matrix_view<const T>(dmx.p, n, n), device_matrix_view<const T>(dmz.p, n, n),
           device_vector_view<const edge>(dpx.p, n - 1), device_vector_view<const edge>(dpz.p, n - 1), v, r, device_vector_view<T>(dl.p, 1),
           device_matrix_view<T>(dgz.p, n, n), device_matrix_view<T>(dgx.p, n, n));
  CHECK(t.read() == tc::status_ok);
  close(dl.get(), std::vector<T>{want}, tol, 1e-30);
  close(dgz.get(), gz, tol, 1e-30);
  close(dgx.get(), gx, tol, 1e-30);
}

template <class T>
void from_points(index_t n, index_t dx, index_t dz, isa_options opt, double tol) {
  const auto X = normal<T>(static_cast<std::size_t>(n * dx), 3), Z = normal<T>(static_cast<std::size_t>(n * dz), 4);
  std::vector<T> gz(static_cast<std::size_t>(n * dz)), gx(static_cast<std::size_t>(n * dx));
  const T want = isa_loss_from_points(cpu, matrix_view<const T>(X.data(), n, dx), matrix_view<const T>(Z.data(), n, dz),
                                      opt, matrix_view<T>(gz.data(), n, dz), matrix_view<T>(gx.data(), n, dx));
  test_ctx t;
  dvec<T> dX(X), dZ(Z), dgz(gz.size()), dgx(gx.size()), dl(1);
  isa_loss_from_points(t.ctx, device_matrix_view<const T>(dX.p, n, dx), device_matrix_view<const T>(dZ.p, n, dz), opt,
                       device_vector_view<T>(dl.p, 1), device_matrix_view<T>(dgz.p, n, dz), device_matrix_view<T>(dgx.p, n, dx));
  CHECK(t.read() == tc::status_ok);
  close(dl.get(), std::vector<T>{want}, tol, 1e-30);
  // Gradient entries are sums of terms of both signs: compare against the row's scale.
  double zmax = 0, xmax = 0;
  for (T g : gz) zmax = std::max(zmax, std::abs(static_cast<double>(g)));
  for (T g : gx) xmax = std::max(xmax, std::abs(static_cast<double>(g)));
  close(dgz.get(), gz, tol, zmax * 1e-3);
  close(dgx.get(), gx, tol, xmax * 1e-3);
}

}  // namespace

TEST_CASE("cuda isa_loss: parity with the CPU (oracle: CPU isa.hpp), both variants and reductions",
          "[cuda][isa]") {
  for (auto v : {isa_variant::symmetric, isa_variant::sorted_deaths})
    for (auto r : {reduction::sum, reduction::mean}) {
      from_matrices<double>(40, v, r, 1e-6);
      from_matrices<float>(40, v, r, 1e-4);
    }
  from_matrices<double>(2, isa_variant::symmetric, reduction::mean, 1e-6);  // n = 2: one pair
}

TEST_CASE("cuda isa_loss_from_points: parity with the CPU (oracle: CPU isa.hpp)", "[cuda][isa]") {
  isa_options o;
  o.x_scale = 3.0;
  o.z_scale = 0.5;
  from_points<double>(64, 300, 16, o, 1e-6);
  from_points<float>(64, 300, 16, o, 1e-4);
  o.variant = isa_variant::sorted_deaths;
  o.reduce = reduction::sum;
  from_points<double>(33, 50, 8, o, 1e-6);
  from_points<double>(2, 3, 2, o, 1e-6);
}

TEST_CASE("cuda isa_loss_from_points: x split over dimension slices, the B = 2 launch's limit and past it "
          "(oracle: CPU isa.hpp)", "[cuda][isa]") {
  isa_options o;
  o.x_scale = 40.0;
  from_points<float>(128, 1100, 64, o, 1e-4);   // x: 3 slices of <= 512 dimensions, summed in order
  from_points<double>(100, 1025, 16, o, 1e-6);  // a last slice of one dimension
  from_points<float>(256, 40, 8, o, 1e-4);      // the largest n of the warp Prim (one B = 2 launch)
  if (!emulated()) from_points<double>(257, 40, 8, o, 1e-6);  // past it: two matrices, the block Prim
}

TEST_CASE("cuda isa_loss_from_points: coincident latent points give a zero gradient term (oracle: CPU)",
          "[cuda][isa]") {
  const index_t n = 6, d = 3;
  std::vector<double> X = normal<double>(n * 4, 5), Z = normal<double>(n * d, 6);
  for (index_t k = 0; k < d; ++k) Z[static_cast<std::size_t>(d + k)] = Z[static_cast<std::size_t>(k)];  // z1 == z0
  std::vector<double> gz(n * d);
  const double want = isa_loss_from_points(cpu, matrix_view<const double>(X.data(), n, 4),
                                           matrix_view<const double>(Z.data(), n, d), isa_options{},
                                           matrix_view<double>(gz.data(), n, d));
  test_ctx t;
  dvec<double> dX(X), dZ(Z), dgz(gz.size()), dl(1);
  isa_loss_from_points(t.ctx, device_matrix_view<const double>(dX.p, n, 4), device_matrix_view<const double>(dZ.p, n, d),
                       isa_options{}, device_vector_view<double>(dl.p, 1), device_matrix_view<double>(dgz.p, n, d));
  CHECK(t.read() == tc::status_ok);
  close(dl.get(), std::vector<double>{want}, 1e-6, 1e-30);
  close(dgz.get(), gz, 1e-6, 1e-12);
}

TEST_CASE("cuda isa_loss: device-detected bad pairs and distances set status bits", "[cuda][isa]") {
  const index_t n = 4;
  std::vector<double> m(16, 1.0);
  std::vector<edge> p{{0, 1}, {1, 2}, {2, 3}}, bad{{0, 1}, {2, 1}, {2, 4}};
  dvec<double> dl(1);
  SECTION("bad pair") {
    test_ctx t;
    dvec<double> dm(m);
    dvec<edge> dp(p), db(bad);
    isa_loss(t.ctx, device_matrix_view<const double>(dm.p, n, n), device_matrix_view<const double>(dm.p, n, n),
             device_vector_view<const edge>(dp.p, 3), device_vector_view<const edge>(db.p, 3), isa_variant::symmetric,
             reduction::mean, device_vector_view<double>(dl.p, 1));
    CHECK(t.read() == tc::status_bad_pair);
  }
  SECTION("negative and NaN distances") {
    m[5] = -1.0;
    m[6] = std::nan("");
    test_ctx t;
    dvec<double> dm(m);
    dvec<edge> dp(p);
    isa_loss(t.ctx, device_matrix_view<const double>(dm.p, n, n), device_matrix_view<const double>(dm.p, n, n),
             device_vector_view<const edge>(dp.p, 3), device_vector_view<const edge>(dp.p, 3), isa_variant::symmetric,
             reduction::mean, device_vector_view<double>(dl.p, 1));
    CHECK(t.read() == (tc::status_negative_distance | tc::status_non_finite));
  }
  SECTION("non-finite points") {
    std::vector<double> X = normal<double>(n * 3, 1);
    X[4] = std::nan("");
    test_ctx t;
    dvec<double> dX(X);
    isa_loss_from_points(t.ctx, device_matrix_view<const double>(dX.p, n, 3), device_matrix_view<const double>(dX.p, n, 3),
                         isa_options{}, device_vector_view<double>(dl.p, 1));
    CHECK((t.read() & tc::status_non_finite) != 0);
  }
}

TEST_CASE("cuda isa: bad shapes throw on the host", "[cuda][isa]") {
  test_ctx t;
  dvec<double> m(16), l(2), g(16);
  dvec<edge> p(3);
  const device_matrix_view<const double> d(m.p, 4, 4);
  const device_vector_view<const edge> pv(p.p, 3);
  const auto sym = isa_variant::symmetric;
  const auto mean = reduction::mean;
  CHECK_THROWS_WITH(isa_loss(t.ctx, device_matrix_view<const double>(m.p, 1, 1), device_matrix_view<const double>(m.p, 1, 1),
                             device_vector_view<const edge>(p.p, 0), device_vector_view<const edge>(p.p, 0), sym, mean,
                             device_vector_view<double>(l.p, 1)),
                    Catch::Contains("dist_x"));
  CHECK_THROWS_WITH(isa_loss(t.ctx, d, device_matrix_view<const double>(m.p, 4, 3), pv, pv, sym, mean,
                             device_vector_view<double>(l.p, 1)),
                    Catch::Contains("dist_z"));
  CHECK_THROWS_WITH(isa_loss(t.ctx, d, d, device_vector_view<const edge>(p.p, 2), pv, sym, mean, device_vector_view<double>(l.p, 1)),
                    Catch::Contains("pairs_x"));
  CHECK_THROWS_WITH(isa_loss(t.ctx, d, d, pv, pv, sym, mean, device_vector_view<double>(l.p, 2)), Catch::Contains("loss"));
  CHECK_THROWS_WITH(isa_loss(t.ctx, d, d, pv, pv, sym, mean, device_vector_view<double>(l.p, 1),
                             device_matrix_view<double>(g.p, 4, 4), device_matrix_view<double>(g.p, 4, 4)),
                    Catch::Contains("grad_dist_x"));
  CHECK_THROWS_WITH(isa_loss(t.ctx, d, d, pv, pv, static_cast<isa_variant>(7), mean, device_vector_view<double>(l.p, 1)),
                    Catch::Contains("variant"));
  isa_options o;
  CHECK_THROWS_WITH(isa_loss_from_points(t.ctx, device_matrix_view<const double>(m.p, 4, 4),
                                         device_matrix_view<const double>(m.p, 3, 4), o, device_vector_view<double>(l.p, 1)),
                    Catch::Contains("z"));
  o.x_scale = 0;
  CHECK_THROWS_WITH(isa_loss_from_points(t.ctx, d, d, o, device_vector_view<double>(l.p, 1)), Catch::Contains("x_scale"));
  o = {};
  CHECK_THROWS_WITH(isa_loss_from_points(t.ctx, d, d, o, device_vector_view<double>(l.p, 1), device_matrix_view<double>(m.p, 4, 4)),
                    Catch::Contains("grad_z"));
  CHECK(t.read() == tc::status_ok);
}
