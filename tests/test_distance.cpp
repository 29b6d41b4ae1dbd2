// Pairwise distances. Oracle: a direct double-precision loop (sum of squared differences) written here;
// image_scale against sqrt(4 C H W) evaluated here.
#include "support.hpp"

#include <cmath>
#include <limits>

#include <topofr/distance.hpp>

using namespace topofr;
using topofr::test::normal;
using topofr::test::rel;

namespace {

std::vector<double> direct(const std::vector<double>& x, index_t n, index_t d, double scale) {
  std::vector<double> out(n * n);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      double s = 0;
      for (index_t k = 0; k < d; ++k) s += (x[i * d + k] - x[j * d + k]) * (x[i * d + k] - x[j * d + k]);
      out[i * n + j] = std::sqrt(s) / scale;
    }
  return out;
}

/// Checks dist (with leading dimension ld) against the direct double loop, exact symmetry and the diagonal.
template <class T>
void check(const std::vector<T>& dist, index_t ld, const std::vector<double>& expect, index_t n, double tol) {
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      INFO("(" << i << ", " << j << ")");
      REQUIRE(dist[i * ld + j] == dist[j * ld + i]);  // bit-identical symmetry
      if (i == j) REQUIRE(dist[i * ld + j] == T(0));
      else REQUIRE(rel(dist[i * ld + j], expect[i * n + j], 1e-300) <= tol);
    }
}

}  // namespace

TEMPLATE_TEST_CASE("distances match a direct double loop, near-coincident points included", "[distance]", float, double) {
  const double tol = std::is_same<TestType, float>::value ? 1e-5 : 1e-12;
  for (index_t d : {1, 3, 64, 1000}) {
    const index_t n = 24;
    std::vector<double> x = normal<double>(n * d, 7 + d);
    for (index_t k = 0; k < d; ++k) x[k] += 100.0;  // a point far from the origin ...
    for (index_t k = 0; k < d; ++k) x[1 * d + k] = x[k] * (1 + 1e-4 * ((k % 3) - 1.0));  // ... its 1e-4 relative twin
    for (index_t k = 0; k < d; ++k) x[2 * d + k] = x[5 * d + k];                       // an exact duplicate
    for (index_t k = 0; k < d; ++k) x[3 * d + k] = x[4 * d + k] + 1e-6 * x[4 * d + k];  // 1e-6 relative
    // Round the points to T first so that the oracle sees the same input.
    std::vector<TestType> xt(x.begin(), x.end());
    std::vector<double> xr(xt.begin(), xt.end());
    const double scale = 1.7;
    std::vector<TestType> dist(n * n, TestType(-1));
    pairwise_distances(cpu, matrix_view<const TestType>(xt.data(), n, d), matrix_view<TestType>(dist.data(), n, n), scale);
    check(dist, n, direct(xr, n, d, scale), n, tol);
    CHECK(dist[2 * n + 5] == TestType(0));
  }
}

TEMPLATE_TEST_CASE("distances honour leading dimensions and the batched form equals single calls", "[distance]", float, double) {
  const index_t nb = 3, n = 17, d = 9, pld = 12, dld = 20;
  std::vector<TestType> x = normal<TestType>(nb * n * pld, 3);
  std::vector<TestType> dist(nb * n * dld, TestType(-7)), one(n * n);
  pairwise_distances(cpu, batch_view<const TestType>(x.data(), nb, n, d, pld), batch_view<TestType>(dist.data(), nb, n, n, dld), 2.0);
  for (index_t b = 0; b < nb; ++b) {
    std::vector<double> xb(n * d);
    for (index_t i = 0; i < n; ++i)
      for (index_t k = 0; k < d; ++k) xb[i * d + k] = x[b * n * pld + i * pld + k];
    std::vector<TestType> sub(dist.begin() + b * n * dld, dist.begin() + (b + 1) * n * dld);
    check(sub, dld, direct(xb, n, d, 2.0), n, std::is_same<TestType, float>::value ? 1e-5 : 1e-12);
    for (index_t i = 0; i < n; ++i)
      for (index_t j = n; j < dld; ++j) REQUIRE(sub[i * dld + j] == TestType(-7));  // padding untouched
    pairwise_distances(cpu, matrix_view<const TestType>(x.data() + b * n * pld, n, d, pld), matrix_view<TestType>(one.data(), n, n), 2.0);
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < n; ++j) REQUIRE(one[i * n + j] == sub[i * dld + j]);
  }
}

TEST_CASE("a single point and float points into a double matrix", "[distance]") {
  std::vector<float> x{1, 2, 3};
  std::vector<double> dist(1, -1);
  pairwise_distances(cpu, matrix_view<const float>(x.data(), 1, 3), matrix_view<double>(dist.data(), 1, 1));
  CHECK(dist[0] == 0.0);
  std::vector<float> y{0, 0, 3, 4};
  std::vector<double> d2(4);
  pairwise_distances(cpu, matrix_view<float>(y.data(), 2, 2), matrix_view<double>(d2.data(), 2, 2));
  CHECK(d2[1] == 5.0);  // oracle: the 3-4-5 triangle
}

TEST_CASE("image_scale is sqrt(4 C H W)", "[distance]") {
  CHECK(image_scale(3, 112, 112) == std::sqrt(4.0 * 3 * 112 * 112));
  CHECK_THROWS_WITH(image_scale(0, 112, 112), Catch::Contains("shape"));
}

TEMPLATE_TEST_CASE("pairwise_distances rejects bad input", "[distance][errors]", float, double) {
  using Catch::Contains;
  const index_t n = 4, d = 3;
  std::vector<TestType> x = normal<TestType>(n * d, 1), dist(n * n);
  auto call = [&](const std::vector<TestType>& p, index_t rows, index_t rd, index_t cd, double scale) {
    pairwise_distances(cpu, matrix_view<const TestType>(p.data(), rows, d), matrix_view<TestType>(dist.data(), rd, cd), scale);
  };
  CHECK_NOTHROW(call(x, n, n, n, 1.0));
  CHECK_THROWS_WITH(call(x, n, n, n - 1, 1.0), Contains("dist"));
  CHECK_THROWS_WITH(call(x, 0, 0, 0, 1.0), Contains("points") && Contains("at least one"));
  for (double s : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::nan("")})
    CHECK_THROWS_WITH(call(x, n, n, n, s), Contains("scale"));
  for (TestType bad : {std::numeric_limits<TestType>::quiet_NaN(), std::numeric_limits<TestType>::infinity()}) {
    std::vector<TestType> p = x;
    p[2 * d + 1] = bad;
    CHECK_THROWS_WITH(call(p, n, n, n, 1.0), Contains("points") && Contains("row 2"));
  }
  CHECK_THROWS_AS(pairwise_distances(cpu, matrix_view<const TestType>(nullptr, n, d), matrix_view<TestType>(dist.data(), n, n)),
                  topofr::error);
  std::vector<TestType> bd(2 * n * n);
  CHECK_THROWS_WITH(pairwise_distances(cpu, batch_view<const TestType>(x.data(), 1, n, d), batch_view<TestType>(bd.data(), 2, n, n)),
                    Contains("dist") && Contains("batch"));
  CHECK_THROWS_WITH(pairwise_distances(cpu, batch_view<const TestType>(x.data(), 2, 2, d), batch_view<TestType>(bd.data(), 2, 2, 2, 2, 1)),
                    Contains("dist") && Contains("overlap"));
}
