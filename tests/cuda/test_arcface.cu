// CUDA ArcFace head (include/topofr/cuda/arcface.cuh). Oracle: the CPU head (include/topofr/arcface.hpp,
// itself tested against PyTorch autograd) on the same inputs — values within 1e-6 relative in double,
// 1e-4 in float; half/bfloat16 inputs against the CPU float head on the rounded cosines. Device-detected
// bad values must set the documented status bits; bad shapes must throw on the host.
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <topofr/arcface.hpp>
#include <topofr/cuda/arcface.cuh>

using namespace topofr;
using namespace topofr::test;
namespace tc = topofr::cuda;

namespace {

template <class T>
using dvec = topofr::test::device_buffer<T>;
using test_ctx = topofr::test::test_context;

/// Cosines with padding (ld = c + 3), labels including -1, targets on both branches of the margin.
template <class T>
struct batch {
  index_t n, c, ld;
  std::vector<T> cos;
  std::vector<std::int64_t> labels;
  batch(index_t n_, index_t c_, std::uint64_t seed) : n(n_), c(c_), ld(c_ + 3) {
    auto g = normal<double>(static_cast<std::size_t>(n * ld), seed, 0.3);
    auto t = uniform<double>(static_cast<std::size_t>(n), seed + 1, -0.99, 0.99);
    auto y = uniform<double>(static_cast<std::size_t>(n), seed + 2, 0.0, 1.0);
    cos.resize(g.size());
    for (std::size_t k = 0; k < g.size(); ++k) cos[k] = static_cast<T>(std::clamp(g[k], -0.999, 0.999));
    labels.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      labels[i] = (i % 7 == 3) ? -1 : std::min<std::int64_t>(c - 1, static_cast<std::int64_t>(y[i] * c));
      if (labels[i] >= 0) cos[i * ld + labels[i]] = static_cast<T>(t[i]);
    }
    if (n > 1 && labels[1] >= 0) cos[1 * ld + labels[1]] = static_cast<T>(-0.95);
    if (n > 2 && labels[2] >= 0) cos[2 * ld + labels[2]] = T(1);  // x = 1: the derivative floor
  }
};

/// Forward + backward + logits on CPU and GPU, compared.
template <class T>
void parity(index_t n, index_t c, double eps, const combined_margin& m, double tol) {
  batch<T> b(n, c, 11 + static_cast<std::uint64_t>(c));
  const matrix_view<const T> hc(b.cos.data(), n, c, b.ld);
  const vector_view<const std::int64_t> hy(b.labels.data(), n);
  const auto N = static_cast<std::size_t>(n);
  std::vector<T> loss(N), ent(N), pgt(N), lse(N), grad(N * c), logits(N * c), glog(N * c), gup(N * c);
  auto w = uniform<T>(N, 5, 0.5, 2.0);
  auto up = normal<T>(N * c, 6);
  margin_ce_forward(cpu, hc, hy, m, eps, vector_view<T>(loss.data(), n), vector_view<T>(ent.data(), n),
                    vector_view<T>(pgt.data(), n), vector_view<T>(lse.data(), n));
  margin_ce_backward(cpu, hc, hy, m, vector_view<const T>(lse.data(), n), vector_view<const T>(w.data(), n),
                     0.125, matrix_view<T>(grad.data(), n, c));
  margin_logits(cpu, hc, hy, m, matrix_view<T>(logits.data(), n, c));
  margin_logits_backward(cpu, hc, hy, m, matrix_view<const T>(up.data(), n, c), matrix_view<T>(gup.data(), n, c));

  test_ctx t;
  dvec<T> dc(b.cos), dw(w), dup(up), dloss(N), dent(N), dpgt(N), dlse(N), dgrad(N * c), dlog(N * c), dgup(N * c);
  dvec<std::int64_t> dy(b.labels);
  const matrix_view<const T> gc(dc.p, n, c, b.ld);
  const vector_view<const std::int64_t> gy(dy.p, n);
  margin_ce_forward(t.ctx, gc, gy, m, eps, vector_view<T>(dloss.p, n), vector_view<T>(dent.p, n),
                    vector_view<T>(dpgt.p, n), vector_view<T>(dlse.p, n));
  // Pass 2 from the CPU's lse, so that the comparison isolates the backward kernel.
  dvec<T> hlse(lse);
  margin_ce_backward(t.ctx, gc, gy, m, vector_view<const T>(hlse.p, n), vector_view<const T>(dw.p, n), 0.125,
                     matrix_view<T>(dgrad.p, n, c));
  margin_logits(t.ctx, gc, gy, m, matrix_view<T>(dlog.p, n, c));
  margin_logits_backward(t.ctx, gc, gy, m, matrix_view<const T>(dup.p, n, c), matrix_view<T>(dgup.p, n, c));
  CHECK(t.read() == tc::status_ok);
  close(dloss.get(), loss, tol, 1e-6);
  close(dent.get(), ent, tol, 1e-6);
  close(dpgt.get(), pgt, tol, 1e-12);
  close(dlse.get(), lse, tol, 1.0);
  close(dgrad.get(), grad, tol, 1e-12);
  close(dlog.get(), logits, tol, 1e-6);
  close(dgup.get(), gup, tol, 1e-6);
  for (T v : dgrad.get()) REQUIRE(std::isfinite(static_cast<double>(v)));
}

}  // namespace

TEST_CASE("cuda arcface head: parity with the CPU head (oracle: CPU arcface.hpp), double", "[cuda][arcface]") {
  parity<double>(37, 1000, 1e-5, combined_margin{}, 1e-6);
  parity<double>(9, 20000, 0.0, combined_margin{}, 1e-6);                      // eps = 0: online entropy
  parity<double>(5, 777, 1e-5, combined_margin{30.0, 1.0, 0.0, 0.35}, 1e-6);   // CosFace
  parity<double>(5, 300, 1e-5, combined_margin{64.0, 1.35, 0.2, 0.1}, 1e-6);   // combined m1 != 1
}

TEST_CASE("cuda arcface head: parity with the CPU head (oracle: CPU arcface.hpp), float", "[cuda][arcface]") {
  parity<float>(37, 1000, 1e-5, combined_margin{}, 1e-4);
  parity<float>(9, 20000, 0.0, combined_margin{}, 1e-4);
  parity<float>(3, 85742, 1e-5, combined_margin{}, 1e-4);  // the TopoFR class count
}

TEST_CASE("cuda arcface head: degenerate shapes (one class, one row; oracle: CPU head)", "[cuda][arcface]") {
  parity<double>(1, 1, 1e-5, combined_margin{}, 1e-6);
  parity<double>(2, 2, 0.0, combined_margin{}, 1e-6);
  parity<float>(1, 5, 1e-5, combined_margin{}, 1e-4);
}

template <class H>
void half_parity() {
  const index_t n = 6, c = 3000;
  batch<float> b(n, c, 3);
  std::vector<H> hh(b.cos.size());
  std::vector<float> rounded(b.cos.size());
  for (std::size_t k = 0; k < hh.size(); ++k) {
    hh[k] = static_cast<H>(b.cos[k]);
    rounded[k] = static_cast<float>(hh[k]);
  }
  const auto N = static_cast<std::size_t>(n);
  std::vector<float> loss(N), ent(N), lse(N), grad(N * c);
  const matrix_view<const float> hc(rounded.data(), n, c, b.ld);
  const vector_view<const std::int64_t> hy(b.labels.data(), n);
  margin_ce_forward(cpu, hc, hy, combined_margin{}, 1e-5, vector_view<float>(loss.data(), n),
                    vector_view<float>(ent.data(), n), {}, vector_view<float>(lse.data(), n));
  margin_ce_backward(cpu, hc, hy, combined_margin{}, vector_view<const float>(lse.data(), n),
                     vector_view<const float>(), 1.0, matrix_view<float>(grad.data(), n, c));
  test_ctx t;
  dvec<H> dc(hh);
  dvec<std::int64_t> dy(b.labels);
  dvec<float> dloss(N), dent(N), dlse(N), dgrad(N * c);
  const matrix_view<const H> gc(dc.p, n, c, b.ld);
  margin_ce_forward(t.ctx, gc, vector_view<const std::int64_t>(dy.p, n), combined_margin{}, 1e-5,
                    vector_view<float>(dloss.p, n), vector_view<float>(dent.p, n), {}, vector_view<float>(dlse.p, n));
  margin_ce_backward(t.ctx, gc, vector_view<const std::int64_t>(dy.p, n), combined_margin{},
                     vector_view<const float>(dlse.p, n), vector_view<const float>(), 1.0,
                     matrix_view<float>(dgrad.p, n, c));
  CHECK(t.read() == tc::status_ok);
  close(dloss.get(), loss, 1e-4, 1e-6);
  close(dent.get(), ent, 1e-4, 1e-6);
  close(dlse.get(), lse, 1e-4, 1.0);
  // The label column uses the input type's derivative floor; elsewhere identical formulas.
  close(dgrad.get(), grad, 1e-3, 1e-9);
}

TEST_CASE("cuda arcface head: half and bfloat16 cosines (oracle: CPU float head on the rounded values)",
          "[cuda][arcface]") {
  half_parity<__half>();
  half_parity<__nv_bfloat16>();
}

TEST_CASE("cuda arcface head: device-detected bad values set status bits", "[cuda][arcface]") {
  const index_t n = 3, c = 50;
  std::vector<float> cos(static_cast<std::size_t>(n * c), 0.1f);
  std::vector<std::int32_t> labels{0, 1, 2};
  dvec<float> loss(3), lse(3), grad(static_cast<std::size_t>(n * c));
  const vector_view<float> lv(loss.p, n);
  SECTION("label >= C") {
    labels[1] = static_cast<std::int32_t>(c);
    test_ctx t;
    dvec<float> dc(cos);
    dvec<std::int32_t> dy(labels);
    margin_ce_forward(t.ctx, matrix_view<const float>(dc.p, n, c), vector_view<const std::int32_t>(dy.p, n),
                      combined_margin{}, 1e-5, lv);
    CHECK(t.read() == tc::status_label_out_of_range);
    CHECK(std::isnan(loss.get()[1]));
    CHECK(std::isfinite(loss.get()[0]));
  }
  SECTION("label < -1") {
    labels[0] = -2;
    test_ctx t;
    dvec<float> dc(cos);
    dvec<std::int32_t> dy(labels);
    margin_logits(t.ctx, matrix_view<const float>(dc.p, n, c), vector_view<const std::int32_t>(dy.p, n),
                  combined_margin{}, matrix_view<float>(grad.p, n, c));
    CHECK(t.read() == tc::status_label_out_of_range);
  }
  SECTION("cos > 1 and NaN") {
    cos[7] = 1.5f;
    cos[2 * c + 4] = std::nanf("");
    test_ctx t;
    dvec<float> dc(cos);
    dvec<std::int32_t> dy(labels);
    margin_ce_forward(t.ctx, matrix_view<const float>(dc.p, n, c), vector_view<const std::int32_t>(dy.p, n),
                      combined_margin{}, 1e-5, lv);
    CHECK(t.read() == tc::status_cos_out_of_range);
    const auto l = loss.get();
    CHECK(std::isnan(l[0]));
    CHECK(std::isfinite(l[1]));
    CHECK(std::isnan(l[2]));
    test_ctx t2;
    margin_logits_backward(t2.ctx, matrix_view<const float>(dc.p, n, c), vector_view<const std::int32_t>(dy.p, n),
                           combined_margin{}, matrix_view<const float>(grad.p, n, c), matrix_view<float>(grad.p, n, c));
    CHECK(t2.read() == tc::status_cos_out_of_range);
  }
  SECTION("non-finite lse or weights in the backward") {
    std::vector<float> hl{1.f, std::nanf(""), 1.f};
    test_ctx t;
    dvec<float> dc(cos), dl(hl);
    dvec<std::int32_t> dy(labels);
    margin_ce_backward(t.ctx, matrix_view<const float>(dc.p, n, c), vector_view<const std::int32_t>(dy.p, n),
                       combined_margin{}, vector_view<const float>(dl.p, n), vector_view<const float>(), 1.0,
                       matrix_view<float>(grad.p, n, c));
    CHECK(t.read() == tc::status_non_finite);
  }
}

TEST_CASE("cuda arcface head: bad shapes and parameters throw on the host", "[cuda][arcface]") {
  test_ctx t;
  dvec<float> dc(60), out(60), v(6);
  dvec<std::int32_t> dy(6);
  const matrix_view<const float> c(dc.p, 6, 10);
  const vector_view<const std::int32_t> y(dy.p, 6);
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, c, vector_view<const std::int32_t>(dy.p, 5), combined_margin{}, 1e-5,
                                      vector_view<float>(v.p, 6)),
                    Catch::Contains("labels"));
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, c, y, combined_margin{}, 1e-5, vector_view<float>(v.p, 5)),
                    Catch::Contains("loss"));
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, c, y, combined_margin{-1.0}, 1e-5, vector_view<float>(v.p, 6)),
                    Catch::Contains("margin.s"));
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, c, y, combined_margin{}, -1.0, vector_view<float>(v.p, 6)),
                    Catch::Contains("entropy_eps"));
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, matrix_view<const float>(dc.p, 6, 10, 5), y, combined_margin{}, 1e-5,
                                      vector_view<float>(v.p, 6)),
                    Catch::Contains("cos"));
  CHECK_THROWS_WITH(margin_ce_backward(t.ctx, c, y, combined_margin{}, vector_view<const float>(v.p, 6),
                                       vector_view<const float>(v.p, 6), 1.0, matrix_view<float>(out.p, 6, 9)),
                    Catch::Contains("grad_cos"));
  CHECK_THROWS_WITH(margin_ce_backward(t.ctx, c, y, combined_margin{}, vector_view<const float>(v.p, 6),
                                       vector_view<const float>(v.p, 6), std::nan(""), matrix_view<float>(out.p, 6, 10)),
                    Catch::Contains("grad_scale"));
  CHECK_THROWS_WITH(margin_logits(t.ctx, c, y, combined_margin{}, matrix_view<float>(out.p, 5, 10)),
                    Catch::Contains("logits"));
  CHECK_THROWS_WITH(margin_logits_backward(t.ctx, c, y, combined_margin{}, matrix_view<const float>(out.p, 6, 9),
                                           matrix_view<float>(out.p, 6, 10)),
                    Catch::Contains("grad_logits"));
  CHECK(t.read() == tc::status_ok);
}
