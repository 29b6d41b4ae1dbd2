// Persistence-pair gathering. Oracles: direct indexing of the matrix (gather), the adjoint identity
// <gather(D), g> == <D, scatter(g)> evaluated in double, and a dense accumulation loop for repeated pairs.
#include "support.hpp"

#include <topofr/gather.hpp>

using namespace topofr;

TEMPLATE_TEST_CASE("gather_pairs reads dist(u, v); scatter_pairs_add is its adjoint", "[gather]", float, double) {
  const index_t n = 23, ld = 29;
  std::vector<TestType> d = topofr::test::normal<TestType>(n * ld, 4);
  std::vector<edge> pairs;
  for (index_t k = 0; k < 60; ++k) {
    const std::int32_t u = std::int32_t((k * 7) % (n - 1)), v = std::int32_t(u + 1 + (k * 13) % (n - 1 - u));
    pairs.push_back({u, v});
  }
  pairs.push_back(pairs[3]);  // repeated edges accumulate
  pairs.push_back(pairs[3]);
  const index_t m = index_t(pairs.size());
  std::vector<TestType> vals(m);
  gather_pairs(cpu, matrix_view<const TestType>(d.data(), n, n, ld), vector_view<edge>(pairs.data(), m),
               vector_view<TestType>(vals.data(), m));
  for (index_t k = 0; k < m; ++k) REQUIRE(vals[k] == d[pairs[k].u * ld + pairs[k].v]);

  std::vector<TestType> g = topofr::test::normal<TestType>(m, 5), grad(n * ld, TestType(0.5));
  scatter_pairs_add(cpu, vector_view<const edge>(pairs.data(), m), vector_view<const TestType>(g.data(), m),
                    matrix_view<TestType>(grad.data(), n, n, ld));
  // Dense oracle: start from 0.5 and add each g_k at (u_k, v_k).
  std::vector<double> expect(n * ld, 0.5);
  for (index_t k = 0; k < m; ++k) expect[pairs[k].u * ld + pairs[k].v] += double(g[k]);
  for (index_t i = 0; i < n * ld; ++i) REQUIRE(grad[i] == Approx(expect[i]).epsilon(1e-6));
  // Adjoint identity in double: <gather(D), g> == <D, scatter(g)> (scatter into zeros).
  std::vector<TestType> s(n * ld, TestType(0));
  scatter_pairs_add(cpu, vector_view<edge>(pairs.data(), m), vector_view<TestType>(g.data(), m), matrix_view<TestType>(s.data(), n, n, ld));
  double lhs = 0, rhs = 0;
  for (index_t k = 0; k < m; ++k) lhs += double(vals[k]) * double(g[k]);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) rhs += double(d[i * ld + j]) * double(s[i * ld + j]);
  CHECK(lhs == Approx(rhs).epsilon(1e-6));
  // Mixed precision: float matrix gathered into double values.
  std::vector<double> vd(m);
  gather_pairs(cpu, matrix_view<TestType>(d.data(), n, n, ld), vector_view<edge>(pairs.data(), m), vector_view<double>(vd.data(), m));
  for (index_t k = 0; k < m; ++k) REQUIRE(vd[k] == double(vals[k]));
}

TEMPLATE_TEST_CASE("gather_pairs and scatter_pairs_add reject bad input", "[gather][errors]", float, double) {
  using Catch::Contains;
  const index_t n = 5;
  std::vector<TestType> d(n * n, TestType(1)), vals(2);
  auto gather = [&](std::vector<edge> p, index_t rows, index_t cols, index_t nv) {
    gather_pairs(cpu, matrix_view<const TestType>(d.data(), rows, cols), vector_view<const edge>(p.data(), index_t(p.size())),
                 vector_view<TestType>(vals.data(), nv));
  };
  auto scatter = [&](std::vector<edge> p, index_t rows, index_t cols, index_t nv) {
    scatter_pairs_add(cpu, vector_view<const edge>(p.data(), index_t(p.size())), vector_view<const TestType>(vals.data(), nv),
                      matrix_view<TestType>(d.data(), rows, cols));
  };
  const std::vector<edge> ok{{0, 1}, {3, 4}};
  CHECK_NOTHROW(gather(ok, n, n, 2));
  CHECK_NOTHROW(scatter(ok, n, n, 2));
  for (std::vector<edge> bad : {std::vector<edge>{{0, 1}, {3, 5}}, std::vector<edge>{{2, 2}, {0, 1}},
                                std::vector<edge>{{3, 1}, {0, 1}}, std::vector<edge>{{-1, 1}, {0, 1}}}) {
    CHECK_THROWS_WITH(gather(bad, n, n, 2), Contains("pairs") && Contains("pair "));
    CHECK_THROWS_WITH(scatter(bad, n, n, 2), Contains("pairs") && Contains("pair "));
  }
  CHECK_THROWS_WITH(gather(ok, n, n - 1, 2), Contains("dist") && Contains("square"));
  CHECK_THROWS_WITH(scatter(ok, n, n - 1, 2), Contains("grad_dist") && Contains("square"));
  CHECK_THROWS_WITH(gather(ok, n, n, 1), Contains("values"));
  CHECK_THROWS_WITH(scatter(ok, n, n, 1), Contains("values"));
  CHECK_THROWS_AS(gather_pairs(cpu, matrix_view<const TestType>(nullptr, n, n), vector_view<const edge>(ok.data(), 2),
                               vector_view<TestType>(vals.data(), 2)), topofr::error);
  CHECK_THROWS_AS(scatter_pairs_add(cpu, vector_view<const edge>(nullptr, 2), vector_view<const TestType>(vals.data(), 2),
                                    matrix_view<TestType>(d.data(), n, n)), topofr::error);
}
