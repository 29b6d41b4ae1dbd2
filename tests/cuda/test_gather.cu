// CUDA gather_pairs / scatter_pairs_add vs the CPU functions (exact: each is one load/store or one
// addition per distinct pair) and vs the adjoint identity <gather(D), g> = <D, scatter(g)> evaluated in
// double here; repeated pairs accumulate; invalid pairs set status_bad_pair; bad shapes throw.
#pragma nv_diag_suppress 20012  // Eigen's defaulted __host__ __device__ members (CPU headers under nvcc)
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <topofr/cuda/gather.cuh>
#include <topofr/gather.hpp>
#include <topofr/persistence.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace topofr;

namespace {

template <class T>
using dbuf = topofr::test::device_buffer<T>;
using test_ctx = topofr::test::test_context;

template <class V, class T>
void check_gather_scatter(index_t n, index_t ld, std::uint64_t seed) {
  INFO("n = " << n << ", ld = " << ld);
  std::vector<V> m = test::uniform<V>(static_cast<std::size_t>(n * ld), seed, 0.0, 2.0);
  std::vector<edge> pairs(n - 1);
  persistence_pairs(cpu, matrix_view<const V>(m.data(), n, n, ld), vector_view<edge>(pairs.data(), n - 1));
  pairs.push_back(pairs[0]);  // a repeated pair accumulates twice
  const index_t k = static_cast<index_t>(pairs.size());
  const std::vector<T> g = test::normal<T>(static_cast<std::size_t>(k), seed + 1);
  test_ctx t;
  dbuf<V> dm(m);
  dbuf<edge> dp(pairs);
  dbuf<T> dv(static_cast<std::size_t>(k)), dg(g);
  gather_pairs(t.ctx, device_matrix_view<const V>(dm.p, n, n, ld), device_vector_view<const edge>(dp.p, k), device_vector_view<T>(dv.p, k));
  std::vector<T> grad0 = test::normal<T>(static_cast<std::size_t>(n * ld), seed + 2);
  dbuf<T> dgrad(grad0);
  scatter_pairs_add(t.ctx, device_vector_view<const edge>(dp.p, k), device_vector_view<const T>(dg.p, k),
                    device_matrix_view<T>(dgrad.p, n, n, ld));
  CHECK(t.status() == topofr::cuda::status_ok);
  std::vector<T> cv(static_cast<std::size_t>(k));
  gather_pairs(cpu, matrix_view<const V>(m.data(), n, n, ld), vector_view<const edge>(pairs.data(), k),
               vector_view<T>(cv.data(), k));
  CHECK(dv.get() == cv);
  std::vector<T> cgrad = grad0;
  scatter_pairs_add(cpu, vector_view<const edge>(pairs.data(), k), vector_view<const T>(g.data(), k),
                    matrix_view<T>(cgrad.data(), n, n, ld));
  const std::vector<T> ggrad = dgrad.get();
  // Distinct entries: bit-identical; the repeated one: two additions in either order.
  const std::size_t rep = static_cast<std::size_t>(pairs[0].u * ld + pairs[0].v);
  for (std::size_t i = 0; i < cgrad.size(); ++i) {
    if (i == rep) CHECK(std::abs(double(ggrad[i]) - double(cgrad[i])) <= 4 * std::numeric_limits<T>::epsilon() * (std::abs(double(cgrad[i])) + 10));
    else CHECK(ggrad[i] == cgrad[i]);
  }
  // Adjoint identity in double: <gather(D), g> == <D, scatter(g) - grad0>.
  double lhs = 0.0, rhs = 0.0;
  for (index_t q = 0; q < k; ++q) lhs += double(m[pairs[q].u * ld + pairs[q].v]) * double(g[q]);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) rhs += double(m[i * ld + j]) * (double(ggrad[i * ld + j]) - double(grad0[i * ld + j]));
  CHECK(std::abs(lhs - rhs) <= 1e-4 * (1.0 + std::abs(lhs)));
}

}  // namespace

TEST_CASE("cuda gather_pairs / scatter_pairs_add == CPU (float, double, mixed, padded ld)") {
  check_gather_scatter<float, float>(2, 2, 1);
  check_gather_scatter<float, float>(128, 131, 2);
  check_gather_scatter<double, double>(300, 300, 3);
  check_gather_scatter<float, double>(64, 64, 4);
  check_gather_scatter<double, float>(70, 75, 5);
}

TEST_CASE("cuda gather/scatter: invalid pairs set status_bad_pair and are skipped; shapes throw") {
  const index_t n = 8;
  std::vector<float> m(n * n, 1.0f);
  std::vector<edge> pairs = {{0, 1}, {3, 2}, {1, 8}, {-1, 4}, {5, 5}};
  test_ctx t;
  dbuf<float> dm(m), dv(5), dg(std::vector<float>(5, 1.0f)), dgrad(std::vector<float>(n * n, 0.0f));
  dbuf<edge> dp(pairs);
  gather_pairs(t.ctx, device_matrix_view<const float>(dm.p, n, n), device_vector_view<const edge>(dp.p, 5), device_vector_view<float>(dv.p, 5));
  CHECK(t.status() == topofr::cuda::status_bad_pair);
  CHECK(dv.get() == std::vector<float>{1.0f, 0.0f, 0.0f, 0.0f, 0.0f});
  test_ctx t2;
  scatter_pairs_add(t2.ctx, device_vector_view<const edge>(dp.p, 5), device_vector_view<const float>(dg.p, 5), device_matrix_view<float>(dgrad.p, n, n));
  CHECK(t2.status() == topofr::cuda::status_bad_pair);
  std::vector<float> expect(n * n, 0.0f);
  expect[1] = 1.0f;
  CHECK(dgrad.get() == expect);

  CHECK_THROWS_WITH(gather_pairs(t.ctx, device_matrix_view<const float>(dm.p, n, n - 1), device_vector_view<const edge>(dp.p, 5),
                                 device_vector_view<float>(dv.p, 5)),
                    Catch::Contains("dist"));
  CHECK_THROWS_WITH(gather_pairs(t.ctx, device_matrix_view<const float>(dm.p, n, n), device_vector_view<const edge>(dp.p, 5),
                                 device_vector_view<float>(dv.p, 4)),
                    Catch::Contains("values"));
  CHECK_THROWS_WITH(gather_pairs(t.ctx, device_matrix_view<const float>(dm.p, n, n), device_vector_view<const edge>(nullptr, 5),
                                 device_vector_view<float>(dv.p, 5)),
                    Catch::Contains("pairs"));
  CHECK_THROWS_WITH(scatter_pairs_add(t.ctx, device_vector_view<const edge>(dp.p, 5), device_vector_view<const float>(dg.p, 5),
                                      device_matrix_view<float>(dgrad.p, n - 1, n)),
                    Catch::Contains("grad_dist"));
  CHECK_THROWS_WITH(scatter_pairs_add(t.ctx, device_vector_view<const edge>(dp.p, 5), device_vector_view<const float>(dg.p, 3),
                                      device_matrix_view<float>(dgrad.p, n, n)),
                    Catch::Contains("values"));
}
