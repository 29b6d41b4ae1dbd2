// CUDA pairwise_distances vs a brute-force double-precision direct sum written here (<= 1e-5 relative for
// float, as the contract says; in fact both sides compute in double) and vs the CPU library (<= 1 ulp of
// the output type); exact symmetry, zero diagonal, padded ld, batches, near-coincident points (the
// cancellation guard), the status bit for NaN/Inf coordinates and host-side shape errors.
#pragma nv_diag_suppress 20012  // Eigen's defaulted __host__ __device__ members (CPU headers under nvcc)
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <topofr/cuda/distance.cuh>
#include <topofr/distance.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

using namespace topofr;

namespace {

template <class T>
using dbuf = topofr::test::device_buffer<T>;
using test_ctx = topofr::test::test_context;

/// Oracle: direct double sum of squared differences.
template <class V>
double brute(const V* a, const V* b, index_t d) {
  double s = 0.0;
  for (index_t k = 0; k < d; ++k) {
    const double t = double(a[k]) - double(b[k]);
    s += t * t;
  }
  return std::sqrt(s);
}

/// GPU distances of one cloud (n x d, ld pld) into an n x n matrix with ld dld; checks everything.
template <class V>
void check_cloud(const std::vector<V>& x, index_t n, index_t d, index_t pld, index_t dld, double scale) {
  INFO("n = " << n << ", d = " << d);
  test_ctx t;
  dbuf<V> dx(x);
  std::vector<V> init(static_cast<std::size_t>(n * dld), V(-7));  // padding must stay untouched
  dbuf<V> dm(init);
  pairwise_distances(t.ctx, device_matrix_view<const V>(dx.p, n, d, pld), device_matrix_view<V>(dm.p, n, n, dld), scale);
  CHECK(t.status() == topofr::cuda::status_ok);
  const std::vector<V> g = dm.get();
  std::vector<V> c(static_cast<std::size_t>(n * n));
  pairwise_distances(cpu, matrix_view<const V>(x.data(), n, d, pld), matrix_view<V>(c.data(), n, n), scale);
  const double ulp = std::numeric_limits<V>::epsilon();
  double worst_oracle = 0.0, worst_cpu = 0.0;
  for (index_t i = 0; i < n; ++i) {
    CHECK(g[i * dld + i] == V(0));
    for (index_t j = n; j < dld; ++j) CHECK(g[i * dld + j] == V(-7));
    for (index_t j = 0; j < n; ++j) {
      if (i == j) continue;
      CHECK(g[i * dld + j] == g[j * dld + i]);  // bit-identical symmetry
      const double ref = brute(x.data() + i * pld, x.data() + j * pld, d) / scale;
      const double v = g[i * dld + j];
      worst_oracle = std::max(worst_oracle, std::abs(v - ref) / std::max(ref, 1e-300));
      worst_cpu = std::max(worst_cpu, std::abs(v - double(c[i * n + j])) / std::max(double(c[i * n + j]), 1e-300));
    }
  }
  // float: the contract's 1e-5 (in fact ~1 rounding of the output); double: both sides sum in double in a
  // different order, each within 2e3 * d * eps of the truth after the guard (docs/math.md).
  CHECK(worst_oracle <= (std::is_same<V, float>::value ? 1e-5 : 1e-10));
  CHECK(worst_cpu <= (std::is_same<V, float>::value ? 1.01 * ulp : 1e-10));
}

}  // namespace

TEST_CASE("cuda pairwise_distances vs brute-force double and the CPU: random clouds, float and double") {
  for (index_t n : {1, 2, 63, 64, 65, 130}) {
    for (index_t d : {1, 17, 512}) {
      check_cloud(test::normal<float>(static_cast<std::size_t>(n * (d + 3)), 1 + n + d), n, d, d + 3, n + 2, 1.0);
      check_cloud(test::normal<double>(static_cast<std::size_t>(n * d), 2 + n + d), n, d, d, n, 2.5);
    }
  }
}

TEST_CASE("cuda pairwise_distances: near-coincident and duplicated points far from the origin (guard)") {
  const index_t n = 70, d = 300;
  for (double offset : {0.0, 100.0, 1e4}) {
    INFO("offset = " << offset);
    const std::vector<double> base = test::normal<double>(static_cast<std::size_t>(d), 11);
    const std::vector<double> noise = test::normal<double>(static_cast<std::size_t>(n * d), 12);
    std::vector<float> x(static_cast<std::size_t>(n * d));
    for (index_t i = 0; i < n; ++i)
      for (index_t k = 0; k < d; ++k)
        x[i * d + k] = static_cast<float>(offset + base[k] + (i % 3 == 0 ? 0.0 : 1e-3 * noise[i * d + k]));
    check_cloud(x, n, d, d, n, 1.0);
    std::vector<double> xd(x.begin(), x.end());
    check_cloud(xd, n, d, d, n, 1.0);
  }
}

TEST_CASE("cuda pairwise_distances batched == per-cloud calls, one launch") {
  const index_t B = 4, n = 100, d = 33, pld = 40, pstride = n * pld + 5, dld = n + 1, dstride = n * dld + 3;
  const std::vector<float> x = test::normal<float>(static_cast<std::size_t>(B * pstride), 21);
  test_ctx t;
  dbuf<float> dx(x);
  dbuf<float> dm(static_cast<std::size_t>(B * dstride));
  pairwise_distances(t.ctx, device_batch_view<const float>(dx.p, B, n, d, pld, pstride),
                     device_batch_view<float>(dm.p, B, n, n, dld, dstride), 3.0);
  CHECK(t.status() == topofr::cuda::status_ok);
  const std::vector<float> g = dm.get();
  for (index_t b = 0; b < B; ++b) {
    std::vector<float> c(static_cast<std::size_t>(n * n));
    pairwise_distances(cpu, matrix_view<const float>(x.data() + b * pstride, n, d, pld),
                       matrix_view<float>(c.data(), n, n), 3.0);
    double worst = 0.0;
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < n; ++j) {
        const double v = g[b * dstride + i * dld + j], r = c[i * n + j];
        worst = std::max(worst, i == j ? std::abs(v) : std::abs(v - r) / r);
      }
    INFO("b = " << b);
    CHECK(worst <= 1.01 * std::numeric_limits<float>::epsilon());  // CPU: its own oracle tests
  }
}

TEST_CASE("cuda pairwise_distances: NaN/Inf coordinates set status_non_finite; bad shapes throw") {
  std::vector<float> x = test::normal<float>(10 * 4, 31);
  x[17] = std::numeric_limits<float>::quiet_NaN();
  {
    test_ctx t;
    dbuf<float> dx(x), dm(100);
    pairwise_distances(t.ctx, device_matrix_view<const float>(dx.p, 10, 4), device_matrix_view<float>(dm.p, 10, 10));
    CHECK(t.status() == topofr::cuda::status_non_finite);
  }
  x[17] = std::numeric_limits<float>::infinity();
  {
    test_ctx t;
    dbuf<float> dx(x), dm(100);
    pairwise_distances(t.ctx, device_batch_view<const float>(dx.p, 2, 5, 4), device_batch_view<float>(dm.p, 2, 5, 5));
    CHECK(t.status() == topofr::cuda::status_non_finite);
  }
  test_ctx t;
  dbuf<float> dx(x), dm(100);
  CHECK_THROWS_WITH(pairwise_distances(t.ctx, device_matrix_view<const float>(dx.p, 10, 4), device_matrix_view<float>(dm.p, 9, 10)),
                    Catch::Contains("dist"));
  CHECK_THROWS_WITH(pairwise_distances(t.ctx, device_matrix_view<const float>(dx.p, 10, 4), device_matrix_view<float>(dm.p, 10, 10), 0.0),
                    Catch::Contains("scale"));
  CHECK_THROWS_WITH(pairwise_distances(t.ctx, device_matrix_view<const float>(dx.p, 0, 4), device_matrix_view<float>(dm.p, 0, 0)),
                    Catch::Contains("points"));
  CHECK_THROWS_WITH(pairwise_distances(t.ctx, device_batch_view<const float>(dx.p, 2, 5, 4), device_batch_view<float>(dm.p, 3, 5, 5)),
                    Catch::Contains("dist") && Catch::Contains("batch"));
  CHECK_THROWS_WITH(pairwise_distances(t.ctx, device_batch_view<const float>(dx.p, 2, 5, 4), device_batch_view<float>(dm.p, 2, 5, 5, 5, 10)),
                    Catch::Contains("dist") && Catch::Contains("overlap"));
  CHECK(t.status() == topofr::cuda::status_ok);
}
