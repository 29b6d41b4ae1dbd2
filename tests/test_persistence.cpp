// VR 0-dim persistence pairs. Oracles: (1) a brute-force double-precision Kruskal written here exactly as
// the released reference (np.triu_indices_from incl. the diagonal, stable argsort, its union-find merge
// rule), compared as ordered lists of pairs and deaths; (2) GUDHI and the ripser program
// (tests/oracles/persistence_oracle.py) for the sorted death times.
#include "support.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>

#include <topofr/persistence.hpp>

using namespace topofr;
using topofr::test::normal;

namespace {

using topofr::test::reference_pairs;  // tests/support.hpp

/// Euclidean distances computed directly (the test's own double loop), rounded to V.
template <class V>
std::vector<V> distances_of(const std::vector<double>& x, index_t n, index_t dim, index_t ld = -1) {
  if (ld < 0) ld = n;
  std::vector<V> d(static_cast<std::size_t>(n * ld), V(-1));  // padding poisoned (never read)
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      double s = 0;
      for (index_t k = 0; k < dim; ++k) s += (x[i * dim + k] - x[j * dim + k]) * (x[i * dim + k] - x[j * dim + k]);
      d[i * ld + j] = static_cast<V>(std::sqrt(s));
    }
  return d;
}

/// Runs persistence_pairs and the reference on the same matrix and compares everything.
template <class V>
void check_against_reference(const std::vector<V>& d, index_t n, index_t ld = -1) {
  if (ld < 0) ld = n;
  std::vector<edge> pairs(n - 1), ref;
  std::vector<V> deaths(n - 1);
  std::vector<double> ref_deaths;
  persistence_pairs(cpu, matrix_view<const V>(d.data(), n, n, ld), vector_view<edge>(pairs.data(), n - 1),
                    vector_view<V>(deaths.data(), n - 1));
  reference_pairs(d.data(), n, ld, ref, ref_deaths);
  REQUIRE(ref.size() == std::size_t(n - 1));
  INFO("n = " << n);
  for (index_t k = 0; k < n - 1; ++k) {
    INFO("k = " << k);
    REQUIRE(pairs[k] == ref[k]);
    REQUIRE(static_cast<double>(deaths[k]) == ref_deaths[k]);
  }
  // The double-deaths overload (T != V) gives the same values.
  std::vector<double> deaths_d(n - 1);
  persistence_pairs(cpu, matrix_view<const V>(d.data(), n, n, ld), vector_view<edge>(pairs.data(), n - 1),
                    vector_view<double>(deaths_d.data(), n - 1));
  for (index_t k = 0; k < n - 1; ++k) REQUIRE(deaths_d[k] == ref_deaths[k]);
}

template <class V>
void check_points(const std::vector<double>& x, index_t n, index_t dim) {
  check_against_reference(distances_of<V>(x, n, dim), n);
}

std::vector<double> lattice(index_t side, index_t dim, double step) {
  std::vector<double> x;
  const index_t n = static_cast<index_t>(std::pow(side, dim));
  for (index_t p = 0; p < n; ++p)
    for (index_t k = 0, q = p; k < dim; ++k, q /= side) x.push_back(step * double(q % side));
  return x;
}

}  // namespace

TEMPLATE_TEST_CASE("pairs equal the brute-force reference Kruskal on Gaussian clouds", "[persistence]", float, double) {
  for (unsigned seed = 0; seed < 60; ++seed) {
    const index_t n = 2 + (seed * 37) % 299, dim = 1 + seed % 5;
    check_points<TestType>(normal<double>(n * dim, seed), n, dim);
  }
}

TEMPLATE_TEST_CASE("pairs equal the reference on tie-heavy inputs (lattices, duplicates, all equal)", "[persistence]",
                   float, double) {
  SECTION("2-d and 3-d integer lattices, also scaled") {
    for (double step : {1.0, 0.1, 3.7}) {
      check_points<TestType>(lattice(9, 2, step), 81, 2);
      check_points<TestType>(lattice(5, 3, step), 125, 3);
    }
  }
  SECTION("several exact duplicates") {
    std::vector<double> x = normal<double>(40 * 3, 11);
    for (index_t i = 20; i < 40; ++i)
      for (index_t k = 0; k < 3; ++k) x[i * 3 + k] = x[(i % 5) * 3 + k];  // points 20..39 copy 0..4
    check_points<TestType>(x, 40, 3);
  }
  SECTION("all points equal: every weight 0") {
    check_against_reference(std::vector<TestType>(50 * 50, TestType(0)), 50);
    std::vector<TestType> neg(50 * 50, TestType(-0.0));  // -0.0 counts as 0
    check_against_reference(neg, 50);
  }
  SECTION("quantised weights with a nonzero diagonal (ignored)") {
    for (unsigned seed = 0; seed < 10; ++seed) {
      const index_t n = 30 + seed;
      std::vector<double> u = topofr::test::uniform<double>(n * n, seed, 0, 4);
      std::vector<TestType> d(n * n);
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < n; ++j)
          d[i * n + j] = i == j ? TestType(1e-15 * (seed + 1)) : TestType(std::floor(u[std::min(i, j) * n + std::max(i, j)]));
      check_against_reference(d, n);
    }
  }
  SECTION("n = 2") {
    check_against_reference(std::vector<TestType>{0, 2, 2, 0}, 2);
    check_against_reference(std::vector<TestType>{0, 0, 0, 0}, 2);
  }
}

TEMPLATE_TEST_CASE("pairs honour a non-contiguous leading dimension", "[persistence]", float, double) {
  const index_t n = 57, dim = 4, ld = 70;
  check_against_reference(distances_of<TestType>(normal<double>(n * dim, 5), n, dim, ld), n, ld);
}

TEMPLATE_TEST_CASE("asymmetric matrices use the upper triangle only (reference Kruskal oracle)", "[persistence]",
                   float, double) {
  for (unsigned seed = 0; seed < 12; ++seed) {
    const index_t n = 3 + seed * 17, dim = 3;
    std::vector<TestType> d = distances_of<TestType>(normal<double>(n * dim, 100 + seed), n, dim);
    std::vector<double> u = topofr::test::uniform<double>(n * n, 200 + seed);
    for (index_t i = 1; i < n; ++i)
      for (index_t j = 0; j < i; ++j) {
        TestType& v = d[i * n + j];
        if (seed % 3 == 0 && u[i * n + j] < 0.3) v = std::nextafter(std::nextafter(v, TestType(0)), TestType(0));
        if (seed % 3 == 1 && u[i * n + j] < 0.3) v = v * TestType(u[i * n + j] * 3);  // large changes
        if (seed % 3 == 2 && i == n - 1 && j == 0) v = std::nextafter(v, TestType(10));  // a single ulp
      }
    check_against_reference(d, n);
  }
  SECTION("the float fast path's portable and SIMD segments agree bit for bit") {
    const index_t n = 203;
    std::vector<float> row = topofr::test::uniform<float>(n, 3, 0, 5);
    std::vector<std::uint32_t> m(n);
    for (index_t i = 0; i < n; ++i) m[i] = 2654435761u * std::uint32_t(i) | 1u;
    for (index_t lo : {0, 1, 5, 17}) {
      std::vector<std::uint64_t> k1(n), k2;
      for (index_t i = 0; i < n; ++i) k1[i] = i % 7 == 0 ? 0 : ~std::uint64_t(0) - std::uint64_t(i) * 977;
      k2 = k1;
      detail::packed_acc a1, a2;
      detail::packed_segment_scalar(row.data(), lo, n, 5 + std::uint32_t(lo) * 203, 203, k1.data(), m.data(), a1);
      detail::packed_segment(row.data(), lo, n, 5 + std::uint32_t(lo) * 203, 203, k2.data(), m.data(), a2);
      CHECK(k1 == k2);
      CHECK(a1.run == a2.run);
      CHECK(a1.sum == a2.sum);
      CHECK(a1.max_canon == a2.max_canon);
      CHECK(a1.max_raw == a2.max_raw);
    }
  }
}

TEST_CASE("sorted deaths equal GUDHI's and ripser's dim-0 death times", "[persistence][oracle]") {
  for (unsigned seed = 0; seed < 3; ++seed) {
    const index_t n = 40 + 30 * seed, dim = 2 + seed;
    std::vector<double> d = distances_of<double>(normal<double>(n * dim, 300 + seed), n, dim);
    const std::string in = topofr::test::scratch("vr0_d" + std::to_string(seed) + ".npy");
    const std::string g = topofr::test::scratch("vr0_g" + std::to_string(seed) + ".npy");
    const std::string r = topofr::test::scratch("vr0_r" + std::to_string(seed) + ".npy");
    topofr::test::save(in, d, {n, n});
    const bool with_ripser = std::strlen(TOPOFR_RIPSER) > 0 && std::string(TOPOFR_RIPSER).find("NOTFOUND") == std::string::npos;
    std::vector<std::string> args{in, g};
    if (with_ripser) args.insert(args.end(), {TOPOFR_RIPSER, r});
    if (!topofr::test::oracle("persistence_oracle.py", args)) return;
    std::vector<edge> pairs(n - 1);
    std::vector<double> deaths_d(n - 1);
    std::vector<float> df(d.begin(), d.end()), deaths_f(n - 1);
    persistence_pairs(cpu, matrix_view<const double>(d.data(), n, n), vector_view<edge>(pairs.data(), n - 1),
                      vector_view<double>(deaths_d.data(), n - 1));
    persistence_pairs(cpu, matrix_view<const float>(df.data(), n, n), vector_view<edge>(pairs.data(), n - 1),
                      vector_view<float>(deaths_f.data(), n - 1));
    const std::vector<double> expect = topofr::test::load<double>(g);
    REQUIRE(expect.size() == std::size_t(n - 1));
    for (index_t k = 0; k < n - 1; ++k) {
      CHECK(topofr::test::rel(deaths_d[k], expect[k]) <= 1e-12);
      CHECK(topofr::test::rel(deaths_f[k], expect[k]) <= 1e-6);
    }
    if (with_ripser) {
      const std::vector<double> rip = topofr::test::load<double>(r);  // ripser computes and prints in float
      REQUIRE(rip.size() == std::size_t(n - 1));
      for (index_t k = 0; k < n - 1; ++k) CHECK(topofr::test::rel(deaths_d[k], rip[k]) <= 2e-5);
    }
  }
}

TEMPLATE_TEST_CASE("batched pairs equal separate calls; from_points equals distances + pairs", "[persistence]",
                   float, double) {
  const index_t nb = 5, n = 33, dim = 7, stride = n * n + 13;  // padded batch stride
  std::vector<TestType> x = normal<TestType>(nb * n * dim, 42);
  std::vector<TestType> d(nb * stride, TestType(0));
  pairwise_distances(cpu, batch_view<const TestType>(x.data(), nb, n, dim),
                     batch_view<TestType>(d.data(), nb, n, n, n, stride), 2.5);
  std::vector<edge> pairs(nb * (n - 1)), pairs2(nb * (n - 1)), one(n - 1);
  std::vector<TestType> deaths(nb * (n - 1)), deaths2(nb * (n - 1)), one_d(n - 1);
  persistence_pairs(cpu, batch_view<const TestType>(d.data(), nb, n, n, n, stride),
                    matrix_view<edge>(pairs.data(), nb, n - 1), matrix_view<TestType>(deaths.data(), nb, n - 1));
  persistence_pairs_from_points(cpu, batch_view<const TestType>(x.data(), nb, n, dim), 2.5,
                                matrix_view<edge>(pairs2.data(), nb, n - 1), matrix_view<TestType>(deaths2.data(), nb, n - 1));
  for (index_t b = 0; b < nb; ++b) {
    persistence_pairs(cpu, matrix_view<const TestType>(d.data() + b * stride, n, n), vector_view<edge>(one.data(), n - 1),
                      vector_view<TestType>(one_d.data(), n - 1));
    for (index_t k = 0; k < n - 1; ++k) {
      CHECK(pairs[b * (n - 1) + k] == one[k]);
      CHECK(deaths[b * (n - 1) + k] == one_d[k]);
      CHECK(pairs2[b * (n - 1) + k] == one[k]);
      CHECK(deaths2[b * (n - 1) + k] == one_d[k]);
    }
  }
  // Optional deaths omitted: the pairs do not change.
  std::vector<edge> pairs3(nb * (n - 1));
  persistence_pairs(cpu, batch_view<TestType>(d.data(), nb, n, n, n, stride), matrix_view<edge>(pairs3.data(), nb, n - 1));
  CHECK(pairs3 == pairs);
}

TEMPLATE_TEST_CASE("persistence_pairs rejects bad input", "[persistence][errors]", float, double) {
  using Catch::Contains;
  const index_t n = 6;
  std::vector<TestType> d = distances_of<TestType>(normal<double>(n * 2, 1), n, 2);
  std::vector<edge> pairs(n - 1);
  std::vector<TestType> deaths(n - 1);
  auto call = [&](const std::vector<TestType>& m, index_t rows, index_t cols, index_t np = 5, index_t nd = 5) {  // n - 1 = 5
    persistence_pairs(cpu, matrix_view<const TestType>(m.data(), rows, cols), vector_view<edge>(pairs.data(), np),
                      vector_view<TestType>(deaths.data(), nd));
  };
  CHECK_NOTHROW(call(d, n, n));
  CHECK_THROWS_WITH(call(d, n, n - 1), Contains("dist") && Contains("square"));
  CHECK_THROWS_WITH(call(d, 1, 1, 0, 0), Contains("dist") && Contains("at least 2"));
  CHECK_THROWS_WITH(call(d, n, n, n), Contains("pairs") && Contains("5"));
  CHECK_THROWS_WITH(call(d, n, n, n - 1, 2), Contains("deaths"));
  CHECK_THROWS_AS(persistence_pairs(cpu, matrix_view<const TestType>(nullptr, n, n), vector_view<edge>(pairs.data(), n - 1)),
                  topofr::error);
  const TestType nan = std::numeric_limits<TestType>::quiet_NaN(), inf = std::numeric_limits<TestType>::infinity();
  for (TestType bad : {nan, inf, -inf, TestType(-0.5), -std::numeric_limits<TestType>::denorm_min()}) {
    for (index_t i : {0, 3, 5})  // upper and lower triangle entries
      for (index_t j : {1, 4}) {
        if (i == j) continue;
        std::vector<TestType> m = d;
        m[i * n + j] = bad;
        CHECK_THROWS_WITH(call(m, n, n), Contains("dist") && Contains("(" + std::to_string(i) + ", " + std::to_string(j) + ")"));
      }
  }
  std::vector<TestType> diag = d;
  diag[2 * n + 2] = nan;  // the diagonal is ignored
  CHECK_NOTHROW(call(diag, n, n));
  // Batched and from_points forms name the matrix.
  std::vector<TestType> two(2 * n * n);
  std::copy(d.begin(), d.end(), two.begin());
  std::copy(d.begin(), d.end(), two.begin() + n * n);
  two[n * n + 8] = nan;  // matrix 1, entry (1, 2)
  std::vector<edge> bp(2 * (n - 1));
  CHECK_THROWS_WITH(persistence_pairs(cpu, batch_view<const TestType>(two.data(), 2, n, n), matrix_view<edge>(bp.data(), 2, n - 1)),
                    Contains("dist") && Contains("matrix 1") && Contains("(1, 2)"));
  CHECK_THROWS_WITH(persistence_pairs(cpu, batch_view<const TestType>(two.data(), 2, n, n), matrix_view<edge>(bp.data(), 1, n - 1)),
                    Contains("pairs"));
  std::vector<TestType> pts = normal<TestType>(2 * n * 3, 9);
  CHECK_THROWS_WITH(persistence_pairs_from_points(cpu, batch_view<const TestType>(pts.data(), 2, n, 3), 0.0,
                                                  matrix_view<edge>(bp.data(), 2, n - 1)),
                    Contains("scale"));
  CHECK_THROWS_WITH(persistence_pairs_from_points(cpu, batch_view<const TestType>(pts.data(), 2, 1, 3), 1.0,
                                                  matrix_view<edge>(bp.data(), 2, 0)),
                    Contains("points") && Contains("at least 2"));
  pts[n * 3 + 4] = inf;  // batch 1, row 1
  CHECK_THROWS_WITH(persistence_pairs_from_points(cpu, batch_view<const TestType>(pts.data(), 2, n, 3), 1.0,
                                                  matrix_view<edge>(bp.data(), 2, n - 1)),
                    Contains("points") && Contains("batch 1") && Contains("row 1"));
}
