// Pairwise distances. Oracles: a direct double-precision loop (sum of squared differences) written here,
// and for the float path's guard a direct long double loop (brute_ld); image_scale against sqrt(4 C H W)
// evaluated here.
#include "support.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#if defined(_OPENMP)
#include <omp.h>
#endif

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

/// Oracle for the float path: sqrt(sum (a_k - b_k)^2) / scale in long double, straight from the float
/// points (the same rounded input the library sees).
double brute_ld(const float* a, const float* b, index_t d, double scale) {
  long double s = 0;
  for (index_t k = 0; k < d; ++k) {
    const long double t = static_cast<long double>(a[k]) - static_cast<long double>(b[k]);
    s += t * t;
  }
  return static_cast<double>(std::sqrt(s) / static_cast<long double>(scale));
}

/// Float points (n x d) -> float distances through pairwise_distances, checked against brute_ld: exact
/// symmetry, exact 0 diagonal, relative error <= 1e-5 everywhere (0 where the oracle is 0). Returns the
/// worst relative error.
double check_float_cloud(const std::vector<float>& x, index_t n, index_t d, double scale = 1.0) {
  std::vector<float> dist(static_cast<std::size_t>(n * n), -1.0f);
  pairwise_distances(cpu, matrix_view<const float>(x.data(), n, d), matrix_view<float>(dist.data(), n, n), scale);
  double worst = 0.0;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j <= i; ++j) {
      INFO("(" << i << ", " << j << "), n = " << n << ", d = " << d);
      REQUIRE(dist[i * n + j] == dist[j * n + i]);
      if (i == j) {
        REQUIRE(dist[i * n + j] == 0.0f);
        continue;
      }
      const double want = brute_ld(x.data() + i * d, x.data() + j * d, d, scale), got = dist[i * n + j];
      if (want > double(std::numeric_limits<float>::max()) * (1 + 1e-7)) {  // beyond float: +inf
        REQUIRE(got == std::numeric_limits<double>::infinity());
        continue;
      }
      REQUIRE(std::isfinite(got));
      if (want == 0.0) {
        REQUIRE(got == 0.0);
        continue;
      }
      if (want < double(std::numeric_limits<float>::min())) {  // a float subnormal: half its spacing more
        REQUIRE(std::abs(got - want) <= 1e-5 * want + 0.5 * double(std::numeric_limits<float>::denorm_min()));
        continue;
      }
      const double e = std::abs(got - want) / want;
      worst = std::max(worst, e);
      REQUIRE(e <= 1e-5);
    }
  return worst;
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

// The float path (a float Gram matrix accumulated in double, guarded): each case below fails without the
// guard (checked by disabling it: the near-duplicates come out with relative errors of 1e-3 and more).

TEST_CASE("float path: near-duplicates at every scale, exact duplicates (oracle: long double brute force)", "[distance][float]") {
  for (index_t d : {5, 512, 3 * 112 * 112}) {
    const index_t n = 24;
    std::vector<float> x = test::normal<float>(static_cast<std::size_t>(n * d), 100 + static_cast<std::uint64_t>(d));
    const std::vector<float> noise = test::normal<float>(static_cast<std::size_t>(d), 7);
    // Rows 1..11: row 0 plus noise of relative size 10^-1 ... 10^-11; row 12 an exact duplicate of row 3.
    for (index_t i = 1; i < 12; ++i)
      for (index_t k = 0; k < d; ++k)
        x[static_cast<std::size_t>(i * d + k)] = x[static_cast<std::size_t>(k)] + std::pow(10.0f, -float(i)) * noise[static_cast<std::size_t>(k)];
    for (index_t k = 0; k < d; ++k) x[static_cast<std::size_t>(12 * d + k)] = x[static_cast<std::size_t>(3 * d + k)];
    check_float_cloud(x, n, d, 1.7);
  }
}

TEST_CASE("float path: a large common offset, points 1e3 + 1e-2 noise in d = 37,632 (oracle: long double brute force)",
          "[distance][float]") {
  const index_t n = 16, d = 3 * 112 * 112;
  std::vector<float> x = test::normal<float>(static_cast<std::size_t>(n * d), 11, 1e-2);
  for (float& v : x) v += 1e3f;
  for (index_t k = 0; k < d; ++k) x[static_cast<std::size_t>(5 * d + k)] = x[static_cast<std::size_t>(4 * d + k)];  // duplicate
  for (index_t k = 0; k < d; k += 97) x[static_cast<std::size_t>(7 * d + k)] = x[static_cast<std::size_t>(6 * d + k)];  // shares 1/97 of row 6
  check_float_cloud(x, n, d);
  // The offset alone, no centring possible from the mean: two points.
  check_float_cloud(std::vector<float>(x.begin(), x.begin() + 2 * d), 2, d);
}

TEST_CASE("float path: image-like batches in [-1, 1] (oracle: long double brute force)", "[distance][float]") {
  const index_t n = 40, d = 3 * 112 * 112;
  // A shared template (a face) plus per-image variation: pairs strongly correlated, as in a real batch;
  // some images are lightly perturbed copies (augmentation), some identical.
  const std::vector<float> base = test::uniform<float>(static_cast<std::size_t>(d), 21, -0.8, 0.8);
  std::vector<float> x = test::uniform<float>(static_cast<std::size_t>(n * d), 22, -0.2, 0.2);
  for (index_t i = 0; i < n; ++i)
    for (index_t k = 0; k < d; ++k) {
      float& v = x[static_cast<std::size_t>(i * d + k)];
      v = std::clamp(base[static_cast<std::size_t>(k)] + (i % 4 == 0 ? 0.01f : 1.0f) * v, -1.0f, 1.0f);
    }
  for (index_t k = 0; k < d; ++k) x[static_cast<std::size_t>(9 * d + k)] = x[static_cast<std::size_t>(8 * d + k)];
  check_float_cloud(x, n, d, image_scale(3, 112, 112));
  // Independent uniform images.
  check_float_cloud(test::uniform<float>(static_cast<std::size_t>(n * d), 23, -1.0, 1.0), n, d, image_scale(3, 112, 112));
}

TEST_CASE("float path: tight clusters far apart, most pairs recomputed (oracle: long double brute force)",
          "[distance][float]") {
  // Inside a cluster the points are close relative to their distance from the mean: the guard rejects
  // those pairs and the tile recomputation (float differences) answers; n = 37 leaves partial tiles.
  for (index_t d : {100, 3001}) {
    const index_t n = 37;
    const std::vector<float> centre = test::normal<float>(static_cast<std::size_t>(d), 30);
    std::vector<float> x = test::normal<float>(static_cast<std::size_t>(n * d), 31, 1e-3);
    for (index_t i = 0; i < n; ++i)
      for (index_t k = 0; k < d; ++k)
        x[static_cast<std::size_t>(i * d + k)] += (i % 3 == 0 ? 5.0f : -5.0f) * centre[static_cast<std::size_t>(k)];
    for (index_t k = 0; k < d; ++k) x[static_cast<std::size_t>(6 * d + k)] = x[static_cast<std::size_t>(3 * d + k)];
    check_float_cloud(x, n, d, 0.5);
  }
}

TEST_CASE("float path: n = 1, n = 2, huge and tiny magnitudes (oracle: long double brute force)", "[distance][float]") {
  for (index_t d : {1, 3, 700}) {
    std::vector<float> one = test::normal<float>(static_cast<std::size_t>(d), 3);
    check_float_cloud(one, 1, d);
    std::vector<float> two = test::normal<float>(static_cast<std::size_t>(2 * d), 4);
    check_float_cloud(two, 2, d);
    for (float mag : {1e30f, 3e38f, 1e-20f, 1e-38f, 1e-44f}) {  // float squares overflow / underflow
      INFO("magnitude " << mag);
      std::vector<float> x = test::normal<float>(static_cast<std::size_t>(6 * d), 5);
      for (float& v : x) v = std::clamp(v, -1.0f, 1.0f) * mag;
      for (index_t k = 0; k < d; ++k) x[static_cast<std::size_t>(d + k)] = x[static_cast<std::size_t>(k)] * (1.0f + 1e-6f);
      check_float_cloud(x, 6, d);
    }
    // One huge point among ordinary ones.
    std::vector<float> x = test::normal<float>(static_cast<std::size_t>(5 * d), 6);
    for (index_t k = 0; k < d; ++k) x[static_cast<std::size_t>(2 * d + k)] *= 1e25f;
    check_float_cloud(x, 5, d);
  }
}

TEST_CASE("float path: float points into a double matrix, ld > d, and the thread count changes no bit",
          "[distance][float]") {
  const index_t n = 33, d = 5000, ld = 5003;
  std::vector<float> x = test::normal<float>(static_cast<std::size_t>(n * ld), 8);
  std::vector<double> dd(static_cast<std::size_t>(n * n));
  pairwise_distances(cpu, matrix_view<const float>(x.data(), n, d, ld), matrix_view<double>(dd.data(), n, n), 3.0);
  std::vector<float> fd(static_cast<std::size_t>(n * n)), f1(fd.size());
  pairwise_distances(cpu, matrix_view<const float>(x.data(), n, d, ld), matrix_view<float>(fd.data(), n, n), 3.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      const double want = i == j ? 0.0 : brute_ld(x.data() + i * ld, x.data() + j * ld, d, 3.0);
      REQUIRE(dd[static_cast<std::size_t>(i * n + j)] == dd[static_cast<std::size_t>(j * n + i)]);
      REQUIRE(rel(dd[static_cast<std::size_t>(i * n + j)], want, 1e-300) <= 1e-5);
      REQUIRE(fd[static_cast<std::size_t>(i * n + j)] == static_cast<float>(dd[static_cast<std::size_t>(i * n + j)]));
    }
#if defined(_OPENMP)
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  pairwise_distances(cpu, matrix_view<const float>(x.data(), n, d, ld), matrix_view<float>(f1.data(), n, n), 3.0);
  omp_set_num_threads(threads);
  CHECK(f1 == fd);
#endif
}
