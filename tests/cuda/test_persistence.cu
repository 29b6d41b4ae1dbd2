// CUDA persistence pairs vs the CPU library (itself tested against ripser/GUDHI/brute force) and vs a
// transcription of the reference's Kruskal written here: pairs identical (ties, asymmetric matrices,
// padded ld), deaths identical, batched = B separate CPU calls, from points = pairwise_distances(cuda) +
// persistence_pairs, device-detected bad values set the status bits, bad shapes throw on the host.
#pragma nv_diag_suppress 20012  // Eigen's defaulted __host__ __device__ members (CPU headers under nvcc)
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <topofr/cuda/distance.cuh>
#include <topofr/cuda/persistence.cuh>
#include <topofr/persistence.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <vector>

using namespace topofr;

namespace {

template <class T>
using dbuf = topofr::test::device_buffer<T>;
using test_ctx = topofr::test::test_context;

/// Under compute-sanitizer (tests/gpu_check.sh) the largest cases are left out to keep the check short.
bool sanitizing() { return std::getenv("TOPOFR_GPU_SANITIZER") != nullptr; }

/// The released algorithm (tests/support.hpp's transcription, shared with the CPU tests): its pairs.
template <class V>
std::vector<edge> kruskal_reference(const std::vector<V>& d, index_t n, index_t ld) {
  std::vector<edge> pairs;
  std::vector<double> deaths;
  test::reference_pairs(d.data(), n, ld, pairs, deaths);
  return pairs;
}

template <class V>
std::vector<V> cloud_matrix(index_t n, index_t d, std::uint64_t seed, index_t ld = -1) {
  if (ld < 0) ld = n;
  const std::vector<double> x = test::normal<double>(static_cast<std::size_t>(n * d), seed);
  std::vector<V> m(static_cast<std::size_t>(n * ld), std::numeric_limits<V>::quiet_NaN());  // NaN padding
  pairwise_distances(cpu, matrix_view<const double>(x.data(), n, d), matrix_view<V>(m.data(), n, n, ld));
  return m;
}

/// GPU pairs/deaths of one matrix (host data, any ld) == the CPU's, bit for bit.
template <class V>
void check_matrix(const std::vector<V>& m, index_t n, index_t ld, bool with_reference = false) {
  std::vector<edge> cp(n - 1);
  std::vector<V> cd(n - 1);
  persistence_pairs(cpu, matrix_view<const V>(m.data(), n, n, ld), vector_view<edge>(cp.data(), n - 1),
                    vector_view<V>(cd.data(), n - 1));
  test_ctx t;
  dbuf<V> dm(m);
  dbuf<edge> gp(n - 1);
  dbuf<V> gd(n - 1);
  persistence_pairs(t.ctx, device_matrix_view<const V>(dm.p, n, n, ld), device_vector_view<edge>(gp.p, n - 1),
                    device_vector_view<V>(gd.p, n - 1));
  CHECK(t.status() == topofr::cuda::status_ok);
  const std::vector<edge> p = gp.get();
  const std::vector<V> dd = gd.get();
  CHECK(p == cp);
  CHECK(dd == cd);
  if (with_reference) CHECK(p == kruskal_reference(m, n, ld));  // independent transcription (ties)
}

}  // namespace

TEST_CASE("cuda persistence_pairs == CPU on random clouds, n = 2 ... 2048, float and double") {
  for (index_t n : {2, 3, 33, 128, 168, 169, 256, 257, 300, 1024}) {
    if (n > 300 && (sanitizing() || topofr::test::emulated())) continue;
    INFO("n = " << n);
    check_matrix(cloud_matrix<float>(n, 7, 10 + n), n, n, n <= 300);
    check_matrix(cloud_matrix<double>(n, 7, 20 + n), n, n, n <= 300);
  }
  if (!sanitizing() && !topofr::test::emulated()) check_matrix(cloud_matrix<float>(2048, 5, 77), 2048, 2048);  // > 1024: several vertices per thread
}

TEST_CASE("cuda persistence_pairs: ties (lattice, duplicates, all zero) == reference Kruskal transcription") {
  SECTION("integer lattice: many equal distances") {
    const index_t n = 125;
    std::vector<double> x;
    for (int a = 0; a < 5; ++a)
      for (int b = 0; b < 5; ++b)
        for (int c = 0; c < 5; ++c) x.insert(x.end(), {double(a), double(b), double(c)});
    std::vector<float> m(n * n);
    pairwise_distances(cpu, matrix_view<const double>(x.data(), n, 3), matrix_view<float>(m.data(), n, n));
    check_matrix(m, n, n, true);
    std::vector<double> md(n * n);
    pairwise_distances(cpu, matrix_view<const double>(x.data(), n, 3), matrix_view<double>(md.data(), n, n));
    check_matrix(md, n, n, true);
  }
  SECTION("duplicated points") {
    const index_t n = 90;
    std::vector<double> x = test::normal<double>(30 * 4, 5);
    for (int r = 0; r < 2; ++r) x.insert(x.end(), x.begin(), x.begin() + 30 * 4);
    std::vector<float> m(n * n);
    pairwise_distances(cpu, matrix_view<const double>(x.data(), n, 4), matrix_view<float>(m.data(), n, n));
    check_matrix(m, n, n, true);
  }
  SECTION("all-zero matrix, with -0.0 entries (read as +0.0)") {
    for (index_t n : {2, 64, 300}) {
      std::vector<float> m(n * n, 0.0f);
      for (index_t k = 0; k < n * n; k += 3) m[k] = -0.0f;
      check_matrix(m, n, n, true);
      check_matrix(std::vector<double>(n * n, 0.0), n, n, true);
    }
  }
  SECTION("quantised distances") {
    for (index_t n : {128, 257}) {
      std::vector<float> m = cloud_matrix<float>(n, 3, 300 + n);
      for (auto& v : m) v = std::round(v * 4.0f) / 4.0f;
      check_matrix(m, n, n, true);
    }
  }
}

TEST_CASE("cuda persistence_pairs: asymmetric matrices use the upper entry (== CPU, == reference)") {
  for (index_t n : {16, 128, 300}) {
    std::vector<float> m = cloud_matrix<float>(n, 6, 40 + n);
    const std::vector<float> noise = test::uniform<float>(static_cast<std::size_t>(n * n), 41 + n, 0.0, 3.0);
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < i; ++j) m[i * n + j] = noise[i * n + j];  // lower triangle: unrelated values
    check_matrix(m, n, n, true);
    std::vector<double> md(m.begin(), m.end());
    check_matrix(md, n, n, true);
  }
}

TEST_CASE("cuda persistence_pairs: padded leading dimension (NaN padding is never read)") {
  for (index_t n : {5, 128, 300}) {
    check_matrix(cloud_matrix<float>(n, 4, 50 + n, n + 3), n, n + 3);
    check_matrix(cloud_matrix<double>(n, 4, 60 + n, n + 1), n, n + 1);
  }
}

TEST_CASE("cuda persistence_pairs batched == B separate CPU calls (float matrix, double deaths)") {
  for (index_t n : {2, 128, 300}) {
    const index_t B = 5, ld = n + 2, stride = n * ld + 7;
    std::vector<float> all(static_cast<std::size_t>(B * stride), std::numeric_limits<float>::quiet_NaN());
    for (index_t b = 0; b < B; ++b) {
      const std::vector<float> m = cloud_matrix<float>(n, 3 + b, 70 + b, ld);
      std::copy(m.begin(), m.end(), all.begin() + b * stride);
    }
    const index_t pld = n + 1;  // padded outputs too
    test_ctx t;
    dbuf<float> dm(all);
    dbuf<edge> gp(static_cast<std::size_t>(B * pld));
    dbuf<double> gd(static_cast<std::size_t>(B * pld));
    persistence_pairs(t.ctx, device_batch_view<const float>(dm.p, B, n, n, ld, stride),
                      device_matrix_view<edge>(gp.p, B, n - 1, pld), device_matrix_view<double>(gd.p, B, n - 1, pld));
    CHECK(t.status() == topofr::cuda::status_ok);
    const std::vector<edge> p = gp.get();
    const std::vector<double> d = gd.get();
    for (index_t b = 0; b < B; ++b) {
      std::vector<edge> cp(n - 1);
      std::vector<double> cd(n - 1);
      persistence_pairs(cpu, matrix_view<const float>(all.data() + b * stride, n, n, ld),
                        vector_view<edge>(cp.data(), n - 1), vector_view<double>(cd.data(), n - 1));
      INFO("n = " << n << ", b = " << b);
      CHECK(std::equal(cp.begin(), cp.end(), p.begin() + b * pld));
      CHECK(std::equal(cd.begin(), cd.end(), d.begin() + b * pld));
    }
  }
}

namespace {

/// From points: (1) == persistence_pairs(cpu) on the GPU's own distance matrices, bit for bit; (2) the
/// GPU distances are within 1e-6 relative of the CPU's (double arithmetic on both); (3) where every
/// distance is bit-identical to the CPU's, the pairs equal persistence_pairs_from_points(cpu).
template <class V>
void check_points(index_t B, index_t n, index_t d, std::uint64_t seed, double scale = 1.0, bool dups = false) {
  INFO("B = " << B << ", n = " << n << ", d = " << d);
  const index_t ld = d + 1, stride = n * ld;
  std::vector<V> x = test::normal<V>(static_cast<std::size_t>(B * stride), seed);
  if (dups) {  // duplicated and nearly coincident points far from the origin: the cancellation guard
    const std::vector<V> noise = test::normal<V>(static_cast<std::size_t>(d), seed + 1);
    for (index_t b = 0; b < B; ++b) {
      V* p = x.data() + b * stride;
      for (index_t i = 0; i < n; ++i)
        for (index_t k = 0; k < d; ++k) p[i * ld + k] += V(100);
      for (index_t i = 1; i < n; i += 2)
        for (index_t k = 0; k < d; ++k)
          p[i * ld + k] = p[(i - 1) * ld + k] + (i % 4 == 1 ? V(0) : V(1e-3) * V(i) * noise[k]);
    }
  }
  test_ctx t;
  dbuf<V> dx(x);
  dbuf<edge> gp(static_cast<std::size_t>(B * (n - 1)));
  dbuf<V> gd(static_cast<std::size_t>(B * (n - 1)));
  dbuf<V> gm(static_cast<std::size_t>(B * n * n));
  const device_batch_view<const V> pts(dx.p, B, n, d, ld, stride);
  persistence_pairs_from_points(t.ctx, pts, scale, device_matrix_view<edge>(gp.p, B, n - 1), device_matrix_view<V>(gd.p, B, n - 1));
  pairwise_distances(t.ctx, pts, device_batch_view<V>(gm.p, B, n, n), scale);
  CHECK(t.status() == topofr::cuda::status_ok);
  const std::vector<edge> p = gp.get();
  const std::vector<V> dd = gd.get(), gmat = gm.get();
  std::vector<edge> cp(static_cast<std::size_t>(B * (n - 1))), ep(cp.size());
  std::vector<V> cd(cp.size()), ed(cp.size()), cmat(static_cast<std::size_t>(B * n * n));
  persistence_pairs(cpu, batch_view<const V>(gmat.data(), B, n, n), matrix_view<edge>(cp.data(), B, n - 1),
                    matrix_view<V>(cd.data(), B, n - 1));
  CHECK(p == cp);  // (1)
  CHECK(dd == cd);
  pairwise_distances(cpu, batch_view<const V>(x.data(), B, n, d, ld, stride),
                     batch_view<V>(cmat.data(), B, n, n), scale);
  double worst = 0.0;
  for (std::size_t k = 0; k < cmat.size(); ++k)
    worst = std::max(worst, std::abs(double(gmat[k]) - double(cmat[k])) / std::max(double(cmat[k]), 1e-300));
  CHECK(worst <= 1e-6);  // (2)
  persistence_pairs_from_points(cpu, batch_view<const V>(x.data(), B, n, d, ld, stride), scale,
                                matrix_view<edge>(ep.data(), B, n - 1), matrix_view<V>(ed.data(), B, n - 1));
  for (std::size_t k = 0; k < ed.size(); ++k)
    CHECK(std::abs(double(dd[k]) - double(ed[k])) <= 1e-5 * std::max(double(ed[k]), 1e-30));
  if (gmat == cmat) CHECK(p == ep);  // (3)
  else WARN("GPU distances differ from the CPU's in the last bit somewhere: pairs compared via (1) only");
}

int sm_count() {
  int dev = 0, v = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev);
  return v;
}

}  // namespace

TEST_CASE("cuda persistence_pairs_from_points == pairwise_distances + persistence_pairs; vs CPU") {
  const index_t many = sm_count() + 3;  // more clouds than SMs
  SECTION("B = 1 and small B") {
    check_points<float>(1, 128, 512, 1);
    check_points<float>(3, 2, 9, 2);
    check_points<double>(2, 128, 40, 3, 7.5);
    check_points<float>(2, 300, 33, 4);
  }
  SECTION("B > #SMs: more Gram tasks than one wave") {
    check_points<float>(many, 128, 64, 5, 3.0);
    check_points<double>(many, 100, 20, 6);
    check_points<float>(many, 2, 3, 7);
  }
  SECTION("near-coincident and duplicated points (guard path), both paths") {
    check_points<float>(2, 128, 48, 8, 1.0, true);
    check_points<float>(many, 64, 48, 9, 1.0, true);
  }
  SECTION("d = 0: all distances 0") { check_points<float>(2, 10, 0, 10); }
  SECTION("d > 512: Gram summed over dimension slices") {
    check_points<float>(2, 100, 1100, 11);
    check_points<double>(1, 64, 1025, 12);
    check_points<float>(many, 40, 1100, 13, 2.0);
  }
  SECTION("around the warp Prim's limit (n = 256) and the shared-memory limit of double") {
    check_points<float>(2, 256, 16, 14);
    check_points<double>(2, 168, 16, 15);
    if (!topofr::test::emulated()) {
      check_points<float>(2, 257, 16, 16);
      check_points<double>(2, 169, 16, 17);
    }
  }
}

TEST_CASE("cuda persistence: device-detected invalid entries set the status bits, outputs stay in bounds") {
  const index_t n = 64;
  auto run = [&](std::vector<float> m, index_t B) {
    test_ctx t;
    dbuf<float> dm(m);
    dbuf<edge> gp(static_cast<std::size_t>(B * (n - 1)));
    persistence_pairs(t.ctx, device_batch_view<const float>(dm.p, B, n, n), device_matrix_view<edge>(gp.p, B, n - 1));
    const int s = t.status();
    for (const edge e : gp.get()) CHECK((e.u >= 0 && e.u < e.v && e.v < n));
    return s;
  };
  std::vector<float> m = cloud_matrix<float>(n, 3, 90);
  CHECK(run(m, 1) == topofr::cuda::status_ok);
  std::vector<float> bad = m;
  bad[5 * n + 9] = std::numeric_limits<float>::quiet_NaN();
  CHECK(run(bad, 1) == topofr::cuda::status_non_finite);
  bad = m;
  bad[40 * n + 3] = std::numeric_limits<float>::infinity();  // lower triangle: validated too, as on the CPU
  CHECK(run(bad, 1) == topofr::cuda::status_non_finite);
  bad = m;
  bad[2 * n + 7] = -1.0f;
  CHECK(run(bad, 1) == topofr::cuda::status_negative_distance);
  bad = m;
  bad[3 * n + 3] = std::numeric_limits<float>::quiet_NaN();  // the diagonal is ignored
  CHECK(run(bad, 1) == topofr::cuda::status_ok);
  std::vector<float> two(2 * n * n);
  std::copy(m.begin(), m.end(), two.begin());
  std::copy(m.begin(), m.end(), two.begin() + n * n);
  two[n * n + 1] = -2.0f;
  CHECK(run(two, 2) == topofr::cuda::status_negative_distance);

  SECTION("non-finite points") {
    std::vector<float> x = test::normal<float>(4 * 8, 3);
    x[11] = std::numeric_limits<float>::infinity();
    test_ctx t;
    dbuf<float> dx(x);
    dbuf<edge> gp(3);
    persistence_pairs_from_points(t.ctx, device_batch_view<const float>(dx.p, 1, 4, 8), 1.0, device_matrix_view<edge>(gp.p, 1, 3));
    CHECK(t.status() == topofr::cuda::status_non_finite);
  }
}

TEST_CASE("cuda persistence: bad shapes throw on the host, naming the argument") {
  test_ctx t;
  dbuf<float> m(16 * 16);
  dbuf<edge> p(16);
  dbuf<float> d(16);
  CHECK_THROWS_WITH(persistence_pairs(t.ctx, device_matrix_view<const float>(m.p, 4, 5), device_vector_view<edge>(p.p, 3)),
                    Catch::Contains("dist") && Catch::Contains("square"));
  CHECK_THROWS_WITH(persistence_pairs(t.ctx, device_matrix_view<const float>(m.p, 1, 1), device_vector_view<edge>(p.p, 0)),
                    Catch::Contains("dist") && Catch::Contains("n = 1"));
  CHECK_THROWS_WITH(persistence_pairs(t.ctx, device_matrix_view<const float>(m.p, 4, 4), device_vector_view<edge>(p.p, 4)),
                    Catch::Contains("pairs"));
  CHECK_THROWS_WITH(persistence_pairs(t.ctx, device_matrix_view<const float>(m.p, 4, 4), device_vector_view<edge>(p.p, 3),
                                      device_vector_view<float>(d.p, 2)),
                    Catch::Contains("deaths"));
  CHECK_THROWS_WITH(persistence_pairs(t.ctx, device_matrix_view<const float>(nullptr, 4, 4), device_vector_view<edge>(p.p, 3)),
                    Catch::Contains("dist") && Catch::Contains("null"));
  CHECK_THROWS_WITH(persistence_pairs(t.ctx, device_batch_view<const float>(m.p, 2, 4, 4), device_matrix_view<edge>(p.p, 3, 3)),
                    Catch::Contains("pairs"));
  CHECK_THROWS_WITH(persistence_pairs_from_points(t.ctx, device_batch_view<const float>(m.p, 2, 4, 2), 0.0,
                                                  device_matrix_view<edge>(p.p, 2, 3)),
                    Catch::Contains("scale"));
  CHECK_THROWS_WITH(persistence_pairs_from_points(t.ctx, device_batch_view<const float>(m.p, 2, 1, 2), 1.0,
                                                  device_matrix_view<edge>(p.p, 2, 0)),
                    Catch::Contains("points"));
  CHECK_THROWS_WITH(persistence_pairs_from_points(t.ctx, device_batch_view<const float>(m.p, 2, 4, 2), 1.0,
                                                  device_matrix_view<edge>(p.p, 2, 3), device_matrix_view<float>(d.p, 1, 3)),
                    Catch::Contains("deaths"));
  CHECK(t.status() == topofr::cuda::status_ok);  // nothing was launched
}
