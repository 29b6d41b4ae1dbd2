// CUDA ArcFace head (include/topofr/cuda/arcface.cuh). Oracle: the CPU head (include/topofr/arcface.hpp,
// itself tested against PyTorch autograd) on the same inputs — values within 1e-6 relative in double,
// 1e-4 in float; half/bfloat16 inputs against the CPU float head on the rounded cosines, except the label
// column of margin_ce_backward, whose sin(theta) floor is the INPUT type's on the GPU (documented) and
// float's on the CPU: that entry is checked against the formula coef expm1(s f(x) - lse) f'(x) written out
// below in double (label_grad_oracle). For float/double the label entries are checked against both the
// formula and the CPU head, within tol plus the rounding noise of the exponent (label_grad::slack: with
// p_y ~ 1 the entry IS that noise). Device-detected bad values must set the documented status bits; bad
// shapes must throw on the host.
//
// Layouts: every device matrix lies inside a larger buffer (an offset before row 0, a leading dimension
// >= C, a guard after the last row) whose other elements are NaN: an input read outside the view would set
// status_cos_out_of_range, an output written outside it is caught by the bitwise check of the padding, and
// an output element left unwritten stays NaN and fails the comparison with the oracle. Offsets and leading
// dimensions that are not multiples of 16 bytes exercise the kernels' scalar prefix / 16-byte vector body
// / scalar tail, and an output placed differently from the cosines their non-co-aligned scalar path.
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
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

/// Where a matrix lies in its device buffer: `off` elements before row 0, leading dimension c + extra.
struct layout {
  index_t off = 0, extra = 3;
};

template <class T>
T nan_of() {
  return static_cast<T>(std::numeric_limits<float>::quiet_NaN());
}
template <class T>
bool same_bits(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

/// An n x c device matrix at layout L inside a buffer of NaN (guard: 8 more elements after the last row).
template <class T>
struct placed {
  index_t n, c, ld, off, size;
  dvec<T> d;
  placed(index_t n_, index_t c_, layout L, const std::vector<T>& dense = {})
      : n(n_), c(c_), ld(c_ + L.extra), off(L.off), size(L.off + n_ * (c_ + L.extra) + 8),
        d(static_cast<std::size_t>(size)) {
    REQUIRE(reinterpret_cast<std::uintptr_t>(d.p) % 256 == 0);  // cudaMalloc: the offsets below are exact
    std::vector<T> h(static_cast<std::size_t>(size), nan_of<T>());
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < c && !dense.empty(); ++j) h[off + i * ld + j] = dense[i * c + j];
    d.put(h);
  }
  bool inside(index_t p) const { return p >= off && p < off + n * ld && (p - off) % ld < c; }
  device_matrix_view<T> view() const { return device_matrix_view<T>(d.p + off, n, c, ld); }
  device_matrix_view<const T> cview() const { return device_matrix_view<const T>(d.p + off, n, c, ld); }
  device_vector_view<T> vec() const { return device_vector_view<T>(d.p + off, n * c); }  // for n = 1
  /// The n x c values (dense), after checking that nothing outside the view was written.
  std::vector<T> values() const {
    const std::vector<T> h = d.get();
    index_t touched = 0;
    for (index_t p = 0; p < size; ++p)
      if (!inside(p) && !same_bits(h[p], nan_of<T>())) ++touched;
    INFO("elements written outside the view (padding, offset, guard)");
    CHECK(touched == 0);
    std::vector<T> v(static_cast<std::size_t>(n * c));
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < c; ++j) v[i * c + j] = h[off + i * ld + j];
    return v;
  }
};

/// A device vector of n values with one NaN guard before and after it.
template <class T>
struct placed_vec : placed<T> {
  explicit placed_vec(index_t n_) : placed<T>(1, n_, layout{1, 0}) {}
  device_vector_view<T> view() const { return this->vec(); }
};

/// The scalar prefix and tail of row i as the kernels split it (16-byte boundaries of the device address).
struct split {
  index_t pre, tail;
};
inline split split_of(layout L, index_t c, index_t i, std::size_t elt) {
  const index_t w = static_cast<index_t>(16 / elt);
  const index_t mis = static_cast<index_t>(((L.off + i * (c + L.extra)) * static_cast<index_t>(elt)) % 16);
  const index_t pre = std::min<index_t>(c, mis ? (16 - mis) / static_cast<index_t>(elt) : 0);
  return {pre, (c - pre) % w};
}

/// Dense n x c cosines (normal, sd 0.3, clamped to +-0.999) and labels: -1 (target on another shard) on
/// rows i = 3 mod 7, ignore_label (-100) on rows i = 5 mod 7; on the others a random class, except rows
/// i = 0 mod 3 with a scalar prefix (label in it) and rows i = 1 mod 3 with a scalar tail (label C - 1),
/// given the device layout L of elements of size elt. Label cosines on both branches of the margin; row 1's
/// is -0.95, row 2's is 1 (x = 1: the derivative floor).
template <class T>
struct batch {
  index_t n, c;
  std::vector<T> cos;
  std::vector<std::int64_t> labels;
  batch(index_t n_, index_t c_, std::uint64_t seed, layout L, std::size_t elt) : n(n_), c(c_) {
    auto g = normal<double>(static_cast<std::size_t>(n * c), seed, 0.3);
    auto t = uniform<double>(static_cast<std::size_t>(n), seed + 1, -0.99, 0.99);
    auto y = uniform<double>(static_cast<std::size_t>(n), seed + 2, 0.0, 1.0);
    cos.resize(g.size());
    for (std::size_t k = 0; k < g.size(); ++k) cos[k] = static_cast<T>(std::clamp(g[k], -0.999, 0.999));
    labels.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      labels[i] = (i % 7 == 3)   ? -1
                  : (i % 7 == 5) ? ignore_label
                                 : std::min<std::int64_t>(c - 1, static_cast<std::int64_t>(y[i] * c));
      const split sp = split_of(L, c, i, elt);
      if (labels[i] >= 0 && i % 3 == 0 && sp.pre > 0) labels[i] = sp.pre - 1;
      if (labels[i] >= 0 && i % 3 == 1 && sp.tail > 0) labels[i] = c - 1;
      if (labels[i] >= 0) cos[i * c + labels[i]] = static_cast<T>(t[i]);
    }
    if (n > 1 && labels[1] >= 0) cos[1 * c + labels[1]] = static_cast<T>(-0.95);
    if (n > 2 && labels[2] >= 0) cos[2 * c + labels[2]] = T(1);
  }
  std::int64_t label(index_t i) const { return labels[static_cast<std::size_t>(i)]; }
};

/// sqrt(epsilon) of the cosines' type: the sin(theta) floor of the GPU's label-column derivative.
template <class H> double input_floor() { return std::sqrt(static_cast<double>(std::numeric_limits<H>::epsilon())); }
template <> double input_floor<__half>() { return std::ldexp(1.0, -5); }        // sqrt(2^-10)
template <> double input_floor<__nv_bfloat16>() { return std::pow(2.0, -3.5); }  // sqrt(2^-7)

/// The label entry of margin_ce_backward, written out independently of both heads from docs/math.md, in
/// double: coef expm1(s f(x) - lse) f'(x). Above the threshold cos((pi - m2) / m1):
/// f(x) = cos(m1 theta + m2) - m3 and f'(x) = m1 sin(m1 theta + m2) / sin(theta), for m1 = 1 in the
/// insightface form x cos m2 - sin(theta) sin m2 - m3 and cos m2 + x sin m2 / sin(theta); sin(theta) =
/// sqrt((1 - x)(1 + x)) floored at `floor` in f'. Below it f(x) = x - m3 - m2 sin(pi - m2), f'(x) = 1.
/// slack: what a few roundings of the double exponent s f(x) - lse change in the entry, |coef f'| times a
/// few ulps of |s f| + |lse| — the whole entry when p_y ~ 1 (p_y - 1 is then rounding noise of the
/// exponent, and two correct evaluations, e.g. with and without an FMA, differ by that much).
struct label_grad {
  double value, slack;
};
label_grad label_grad_oracle(double x, double lse, double coef, const combined_margin& m, double floor) {
  const double pi = 3.14159265358979323846;
  const double angle = std::clamp((pi - m.m2) / m.m1, 0.0, pi);
  double f = x - m.m3 - std::sin(pi - m.m2) * m.m2, df = 1.0;
  if (x > std::cos(angle)) {
    const double sin_theta = std::sqrt((1.0 - x) * (1.0 + x)), st = std::max(sin_theta, floor);
    if (m.m1 == 1.0) {
      f = x * std::cos(m.m2) - sin_theta * std::sin(m.m2) - m.m3;
      df = std::cos(m.m2) + x * std::sin(m.m2) / st;
    } else {
      const double theta = std::acos(x);
      f = std::cos(m.m1 * theta + m.m2) - m.m3;
      df = m.m1 * std::sin(m.m1 * theta + m.m2) / st;
    }
  }
  if (m.straight_through) df = 1.0;  // arcface_torch: the margin is a constant to autograd
  const double slack = std::abs(coef * df) * (std::abs(m.s * f) + std::abs(lse)) * 8 * DBL_EPSILON;
  return {coef * std::expm1(m.s * f - lse) * df, slack};
}

/// grad's label entries against label_grad_oracle (x: the cosines as the device reads them), and against
/// the CPU head's entries when `cpu` is given, within tol relative plus the oracle's slack.
template <class T, class X>
void check_label_column(const std::vector<T>& grad, const std::vector<X>& x, const batch<X>& b,
                        const std::vector<T>& lse, const std::vector<T>& w, double grad_scale,
                        const combined_margin& m, double floor, double tol, const std::vector<T>* cpu = nullptr) {
  for (index_t i = 0; i < b.n; ++i) {
    const std::int64_t y = b.label(i);
    if (y < 0) continue;
    const double xv = static_cast<double>(x[i * b.c + y]);
    const double coef = (w.empty() ? 1.0 : static_cast<double>(w[i])) * grad_scale * m.s;
    const label_grad want = label_grad_oracle(xv, static_cast<double>(lse[i]), coef, m, floor);
    const double got = static_cast<double>(grad[i * b.c + y]);
    INFO("row " << i << ", label column " << y << " (x = " << xv << "): got " << got << ", want " << want.value
                << " (slack " << want.slack << ")");
    CHECK(std::abs(got - want.value) <= tol * std::abs(want.value) + want.slack);
    if (cpu) {
      const double c = static_cast<double>((*cpu)[i * b.c + y]);
      INFO("CPU head: " << c);
      CHECK(std::abs(got - c) <= tol * std::abs(c) + want.slack);
    }
  }
}

/// close() on everything but the label entries (taken from `got`, so that they compare equal).
template <class T, class X>
void close_except_labels(const std::vector<T>& got, std::vector<T> want, const batch<X>& b, double tol,
                         double abs_floor) {
  for (index_t i = 0; i < b.n; ++i)
    if (b.label(i) >= 0) want[i * b.c + b.label(i)] = got[i * b.c + b.label(i)];
  close(got, want, tol, abs_floor);
}

/// Forward + backward + logits on CPU and GPU, compared: cosines at layout `in`, the output matrices (and
/// grad_logits) at layout `out`.
template <class T>
void parity(index_t n, index_t c, double eps, const combined_margin& m, double tol, layout in = {},
            layout out = {}) {
  INFO("parity<" << sizeof(T) * 8 << "-bit> n = " << n << ", C = " << c << ", cos at +" << in.off << " ld C+"
                 << in.extra << ", outputs at +" << out.off << " ld C+" << out.extra << ", eps = " << eps);
  batch<T> b(n, c, 11 + static_cast<std::uint64_t>(c), in, sizeof(T));
  const matrix_view<const T> hc(b.cos.data(), n, c);
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
  placed<T> dc(n, c, in, b.cos), dup(n, c, out, up), dgrad(n, c, out), dlog(n, c, out), dgup(n, c, out);
  placed_vec<T> dloss(n), dent(n), dpgt(n), dlse(n);
  dvec<T> dw(w);
  dvec<std::int64_t> dy(b.labels);
  const device_vector_view<const std::int64_t> gy(dy.p, n);
  margin_ce_forward(t.ctx, dc.cview(), gy, m, eps, dloss.view(), dent.view(), dpgt.view(), dlse.view());
  // Pass 2 from the CPU's lse, so that the comparison isolates the backward kernel.
  dvec<T> hlse(lse);
  margin_ce_backward(t.ctx, dc.cview(), gy, m, device_vector_view<const T>(hlse.p, n), device_vector_view<const T>(dw.p, n), 0.125,
                     dgrad.view());
  margin_logits(t.ctx, dc.cview(), gy, m, dlog.view());
  margin_logits_backward(t.ctx, dc.cview(), gy, m, dup.cview(), dgup.view());
  CHECK(t.read() == tc::status_ok);
  close(dloss.values(), loss, tol, 1e-6);
  // The entropy's absolute error is set by the scale of its terms (sum p = 1), not by its value: a row where
  // one class dominates (small C) has |h| ~ eps = 1e-5, and the CPU float head, which adds blocks of 4
  // float terms, is off by ~1e-7 there (against a long double evaluation), hence the 1e-2 floor.
  close(dent.values(), ent, tol, 1e-2);
  close(dpgt.values(), pgt, tol, 1e-12);
  close(dlse.values(), lse, tol, 1.0);
  const auto g = dgrad.values();
  close_except_labels(g, grad, b, tol, 1e-12);
  check_label_column(g, b.cos, b, lse, w, 0.125, m, input_floor<T>(), tol, &grad);
  close(dlog.values(), logits, tol, 1e-6);
  close(dgup.values(), gup, tol, 1e-6);
  for (T v : g) REQUIRE(std::isfinite(static_cast<double>(v)));
}

/// half / bfloat16 cosines: the CPU float head on the rounded values, the label column of the backward
/// against label_grad_oracle with the input type's floor.
template <class H>
void half_parity(index_t n, index_t c, layout in = {}, layout out = {}) {
  INFO("half_parity<" << (std::is_same<H, __half>::value ? "half" : "bfloat16") << "> n = " << n << ", C = " << c
                      << ", cos at +" << in.off << " ld C+" << in.extra << ", outputs at +" << out.off << " ld C+"
                      << out.extra);
  batch<float> b(n, c, 3 + static_cast<std::uint64_t>(c), in, sizeof(H));
  std::vector<H> hh(b.cos.size());
  std::vector<float> rounded(b.cos.size());
  for (std::size_t k = 0; k < hh.size(); ++k) {
    hh[k] = static_cast<H>(b.cos[k]);
    rounded[k] = static_cast<float>(hh[k]);
  }
  const auto N = static_cast<std::size_t>(n);
  std::vector<float> loss(N), ent(N), lse(N), grad(N * c), logits(N * c);
  const matrix_view<const float> hc(rounded.data(), n, c);
  const vector_view<const std::int64_t> hy(b.labels.data(), n);
  margin_ce_forward(cpu, hc, hy, combined_margin{}, 1e-5, vector_view<float>(loss.data(), n),
                    vector_view<float>(ent.data(), n), {}, vector_view<float>(lse.data(), n));
  margin_ce_backward(cpu, hc, hy, combined_margin{}, vector_view<const float>(lse.data(), n),
                     vector_view<const float>(), 1.0, matrix_view<float>(grad.data(), n, c));
  margin_logits(cpu, hc, hy, combined_margin{}, matrix_view<float>(logits.data(), n, c));
  test_ctx t;
  placed<H> dc(n, c, in, hh);
  placed<float> dgrad(n, c, out), dlog(n, c, out);
  placed_vec<float> dloss(n), dent(n), dlse(n);
  dvec<std::int64_t> dy(b.labels);
  const device_vector_view<const std::int64_t> gy(dy.p, n);
  margin_ce_forward(t.ctx, dc.cview(), gy, combined_margin{}, 1e-5, dloss.view(), dent.view(), {}, dlse.view());
  margin_ce_backward(t.ctx, dc.cview(), gy, combined_margin{}, device_vector_view<const float>(dlse.view()),
                     device_vector_view<const float>(), 1.0, dgrad.view());
  margin_logits(t.ctx, dc.cview(), gy, combined_margin{}, dlog.view());
  CHECK(t.read() == tc::status_ok);
  close(dloss.values(), loss, 1e-4, 1e-6);
  close(dent.values(), ent, 1e-4, 1e-2);  // floor: as in parity()
  const auto gl = dlse.values();
  close(gl, lse, 1e-4, 1.0);
  const auto g = dgrad.values();
  // The GPU's pass 2 ran from its own lse: the oracle takes the same.
  close_except_labels(g, grad, b, 1e-3, 1e-9);
  check_label_column(g, rounded, b, gl, std::vector<float>(), 1.0, combined_margin{}, input_floor<H>(), 1e-4);
  close(dlog.values(), logits, 1e-4, 1e-6);
  for (float v : g) REQUIRE(std::isfinite(static_cast<double>(v)));
}

}  // namespace

TEST_CASE("cuda arcface head: parity with the CPU head (oracle: CPU arcface.hpp), double", "[cuda][arcface]") {
  parity<double>(37, 1000, 1e-5, combined_margin{}, 1e-6);
  parity<double>(9, 20000, 0.0, combined_margin{}, 1e-6);                      // eps = 0: online entropy
  parity<double>(5, 777, 1e-5, combined_margin{30.0, 1.0, 0.0, 0.35}, 1e-6);   // CosFace
  parity<double>(5, 300, 1e-5, combined_margin{64.0, 1.35, 0.2, 0.1}, 1e-6);   // combined m1 != 1
  parity<double>(7, 500, 1e-5, combined_margin{64.0, 1.0, 0.5, 0.0, true}, 1e-6);  // straight-through margin gradient
}

TEST_CASE("cuda arcface head: parity with the CPU head (oracle: CPU arcface.hpp), float", "[cuda][arcface]") {
  parity<float>(37, 1000, 1e-5, combined_margin{}, 1e-4);
  parity<float>(9, 20000, 0.0, combined_margin{}, 1e-4);
  parity<float>(3, 85742, 1e-5, combined_margin{}, 1e-4);  // the TopoFR class count
  parity<float>(7, 500, 1e-5, combined_margin{64.0, 1.0, 0.5, 0.0, true}, 1e-4);  // straight-through
}

TEST_CASE("cuda arcface head: degenerate shapes (one class, one row; oracle: CPU head)", "[cuda][arcface]") {
  parity<double>(1, 1, 1e-5, combined_margin{}, 1e-6);
  parity<double>(2, 2, 0.0, combined_margin{}, 1e-6);
  parity<float>(1, 5, 1e-5, combined_margin{}, 1e-4);
}

TEST_CASE("cuda arcface head: half and bfloat16 cosines (oracle: CPU float head on the rounded values, "
          "label column: the formula with the input type's floor)",
          "[cuda][arcface]") {
  half_parity<__half>(6, 3000);
  half_parity<__nv_bfloat16>(6, 3000);
}

TEST_CASE("cuda arcface head: misaligned rows — ld = C+1, C+3, base offset 1 (oracle: CPU head)",
          "[cuda][arcface]") {
  // Co-aligned (outputs placed like the cosines: vector body + scalar prefix/tail) and not (outputs
  // contiguous at offset 0: the scalar path of the elementwise kernels), both leading dimensions.
  for (index_t extra : {1, 3}) {
    const layout in{1, extra};
    parity<float>(9, 1001, 1e-5, combined_margin{}, 1e-4, in, in);
    parity<float>(9, 1001, 0.0, combined_margin{}, 1e-4, in, layout{0, 0});
    parity<double>(7, 999, 1e-5, combined_margin{}, 1e-6, in, in);
    parity<double>(7, 999, 1e-5, combined_margin{30.0, 1.0, 0.0, 0.35}, 1e-6, in, layout{0, 0});
    half_parity<__half>(8, 1001, in, layout{1, extra});
    half_parity<__nv_bfloat16>(8, 1001, in, layout{0, 0});
  }
  // Long misaligned rows: several vector tiles per row in the elementwise kernels and several sweeps per
  // thread in pass 1.
  parity<float>(3, 20011, 1e-5, combined_margin{}, 1e-4, layout{1, 3}, layout{1, 3});
  parity<float>(3, 9001, 0.0, combined_margin{}, 1e-4, layout{1, 3}, layout{0, 0});  // scalar path, 3 tiles
  half_parity<__half>(3, 9001, layout{1, 3}, layout{0, 0});                          // scalar path, 2 tiles
}

TEST_CASE("cuda arcface head: C = 1, 2, 3, 5, 7, 8, 9 around the vector width (oracle: CPU head)",
          "[cuda][arcface]") {
  for (index_t c : {1, 2, 3, 5, 7, 8, 9}) {
    for (const layout in : {layout{0, 0}, layout{1, 1}, layout{1, 3}}) {
      parity<float>(8, c, 1e-5, combined_margin{}, 1e-4, in, in);
      parity<double>(8, c, 0.0, combined_margin{}, 1e-6, in, in);
      half_parity<__half>(8, c, in, in);
      half_parity<__nv_bfloat16>(8, c, in, in);
    }
    parity<float>(8, c, 1e-5, combined_margin{}, 1e-4, layout{1, 1}, layout{0, 0});  // not co-aligned
    half_parity<__half>(8, c, layout{1, 1}, layout{0, 1});
  }
}

TEST_CASE("cuda arcface head: half and bfloat16 with odd C, labels -1, -100 and in the scalar prefix/tail "
          "(oracle: CPU float head, label column: the formula)",
          "[cuda][arcface]") {
  for (index_t c : {2999, 1001, 13}) {
    half_parity<__half>(9, c, layout{0, 0}, layout{0, 0});
    half_parity<__nv_bfloat16>(9, c, layout{0, 0}, layout{0, 0});
    half_parity<__half>(9, c, layout{3, 5}, layout{3, 5});
    half_parity<__nv_bfloat16>(9, c, layout{1, 0}, layout{2, 0});
  }
}

TEST_CASE("cuda arcface head: test layouts put labels in the scalar prefix and tail (self-check)", "[cuda][arcface]") {
  // The cases above rely on batch() placing some labels where the kernels take the scalar path.
  const layout L{1, 1};
  batch<float> b(8, 1001, 1, L, sizeof(float));
  bool in_prefix = false, in_tail = false, other_shard = false, ignored = false;
  for (index_t i = 0; i < b.n; ++i) {
    const split sp = split_of(L, b.c, i, sizeof(float));
    const std::int64_t y = b.label(i);
    in_prefix |= y >= 0 && y < sp.pre;
    in_tail |= y >= 0 && sp.tail > 0 && y >= b.c - sp.tail;
    other_shard |= y == -1;
    ignored |= y == ignore_label;
  }
  CHECK(in_prefix);
  CHECK(in_tail);
  CHECK(other_shard);
  CHECK(ignored);
}

TEST_CASE("cuda arcface head: device-detected bad values set status bits", "[cuda][arcface]") {
  const index_t n = 3, c = 50;
  std::vector<float> cos(static_cast<std::size_t>(n * c), 0.1f);
  std::vector<std::int32_t> labels{0, 1, 2};
  dvec<float> loss(3), lse(3), grad(static_cast<std::size_t>(n * c));
  const device_vector_view<float> lv(loss.p, n);
  SECTION("label >= C") {
    labels[1] = static_cast<std::int32_t>(c);
    test_ctx t;
    dvec<float> dc(cos);
    dvec<std::int32_t> dy(labels);
    margin_ce_forward(t.ctx, device_matrix_view<const float>(dc.p, n, c), device_vector_view<const std::int32_t>(dy.p, n),
                      combined_margin{}, 1e-5, lv);
    CHECK(t.read() == tc::status_label_out_of_range);
    CHECK(std::isnan(loss.get()[1]));
    CHECK(std::isfinite(loss.get()[0]));
  }
  SECTION("labels other than -1, -100 and [0, C): -2, -99, -101, INT32_MIN") {
    for (const std::int32_t bad : {-2, -99, -101, std::numeric_limits<std::int32_t>::min()}) {
      INFO("label " << bad);
      labels[0] = bad;
      labels[2] = -1;
      test_ctx t;
      dvec<float> dc(cos);
      dvec<std::int32_t> dy(labels);
      const device_matrix_view<const float> cv(dc.p, n, c);
      const device_vector_view<const std::int32_t> yv(dy.p, n);
      margin_logits(t.ctx, cv, yv, combined_margin{}, device_matrix_view<float>(grad.p, n, c));
      CHECK(t.read() == tc::status_label_out_of_range);
      test_ctx t2;
      margin_ce_forward(t2.ctx, cv, yv, combined_margin{}, 1e-5, lv);
      CHECK(t2.read() == tc::status_label_out_of_range);
      const auto l = loss.get();
      CHECK(std::isnan(l[0]));
      CHECK(l[1] > 0.f);
      CHECK(l[2] == 0.f);
      test_ctx t3;
      std::vector<float> hl(static_cast<std::size_t>(n), 5.f);
      dvec<float> dl(hl);
      margin_ce_backward(t3.ctx, cv, yv, combined_margin{}, device_vector_view<const float>(dl.p, n),
                         device_vector_view<const float>(), 1.0, device_matrix_view<float>(grad.p, n, c));
      CHECK(t3.read() == tc::status_label_out_of_range);
    }
  }
  SECTION("labels -1 and -100 are valid: no status bit") {
    labels = {-1, -100, 3};
    test_ctx t;
    dvec<float> dc(cos);
    dvec<std::int32_t> dy(labels);
    const device_matrix_view<const float> cv(dc.p, n, c);
    const device_vector_view<const std::int32_t> yv(dy.p, n);
    margin_logits(t.ctx, cv, yv, combined_margin{}, device_matrix_view<float>(grad.p, n, c));
    margin_ce_forward(t.ctx, cv, yv, combined_margin{}, 1e-5, lv, {}, {}, device_vector_view<float>(lse.p, n));
    margin_ce_backward(t.ctx, cv, yv, combined_margin{}, device_vector_view<const float>(lse.p, n),
                       device_vector_view<const float>(), 1.0, device_matrix_view<float>(grad.p, n, c));
    CHECK(t.read() == tc::status_ok);
    const auto g = grad.get();
    // All cosines equal: p = 1/C, so the -1 row's gradient is s / C in every column; the -100 row's is 0.
    for (index_t j = 0; j < c; ++j) {
      CHECK(g[j] == Approx(64.0 / c).epsilon(1e-5));
      CHECK(g[c + j] == 0.f);
    }
  }
  SECTION("cos > 1 and NaN") {
    cos[7] = 1.5f;
    cos[2 * c + 4] = std::nanf("");
    test_ctx t;
    dvec<float> dc(cos);
    dvec<std::int32_t> dy(labels);
    margin_ce_forward(t.ctx, device_matrix_view<const float>(dc.p, n, c), device_vector_view<const std::int32_t>(dy.p, n),
                      combined_margin{}, 1e-5, lv);
    CHECK(t.read() == tc::status_cos_out_of_range);
    const auto l = loss.get();
    CHECK(std::isnan(l[0]));
    CHECK(std::isfinite(l[1]));
    CHECK(std::isnan(l[2]));
    test_ctx t2;
    margin_logits_backward(t2.ctx, device_matrix_view<const float>(dc.p, n, c), device_vector_view<const std::int32_t>(dy.p, n),
                           combined_margin{}, device_matrix_view<const float>(grad.p, n, c), device_matrix_view<float>(grad.p, n, c));
    CHECK(t2.read() == tc::status_cos_out_of_range);
  }
  SECTION("non-finite lse or weights in the backward") {
    std::vector<float> hl{1.f, std::nanf(""), 1.f};
    test_ctx t;
    dvec<float> dc(cos), dl(hl);
    dvec<std::int32_t> dy(labels);
    margin_ce_backward(t.ctx, device_matrix_view<const float>(dc.p, n, c), device_vector_view<const std::int32_t>(dy.p, n),
                       combined_margin{}, device_vector_view<const float>(dl.p, n), device_vector_view<const float>(), 1.0,
                       device_matrix_view<float>(grad.p, n, c));
    CHECK(t.read() == tc::status_non_finite);
  }
}

TEST_CASE("cuda arcface head: bad shapes and parameters throw on the host", "[cuda][arcface]") {
  test_ctx t;
  dvec<float> dc(60), out(60), v(6);
  dvec<std::int32_t> dy(6);
  const device_matrix_view<const float> c(dc.p, 6, 10);
  const device_vector_view<const std::int32_t> y(dy.p, 6);
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, c, device_vector_view<const std::int32_t>(dy.p, 5), combined_margin{}, 1e-5,
                                      device_vector_view<float>(v.p, 6)),
                    Catch::Contains("labels"));
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, c, y, combined_margin{}, 1e-5, device_vector_view<float>(v.p, 5)),
                    Catch::Contains("loss"));
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, c, y, combined_margin{-1.0}, 1e-5, device_vector_view<float>(v.p, 6)),
                    Catch::Contains("margin.s"));
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, c, y, combined_margin{}, -1.0, device_vector_view<float>(v.p, 6)),
                    Catch::Contains("entropy_eps"));
  CHECK_THROWS_WITH(margin_ce_forward(t.ctx, device_matrix_view<const float>(dc.p, 6, 10, 5), y, combined_margin{}, 1e-5,
                                      device_vector_view<float>(v.p, 6)),
                    Catch::Contains("cos"));
  CHECK_THROWS_WITH(margin_ce_backward(t.ctx, c, y, combined_margin{}, device_vector_view<const float>(v.p, 6),
                                       device_vector_view<const float>(v.p, 6), 1.0, device_matrix_view<float>(out.p, 6, 9)),
                    Catch::Contains("grad_cos"));
  CHECK_THROWS_WITH(margin_ce_backward(t.ctx, c, y, combined_margin{}, device_vector_view<const float>(v.p, 6),
                                       device_vector_view<const float>(v.p, 6), std::nan(""), device_matrix_view<float>(out.p, 6, 10)),
                    Catch::Contains("grad_scale"));
  CHECK_THROWS_WITH(margin_logits(t.ctx, c, y, combined_margin{}, device_matrix_view<float>(out.p, 5, 10)),
                    Catch::Contains("logits"));
  CHECK_THROWS_WITH(margin_logits_backward(t.ctx, c, y, combined_margin{}, device_matrix_view<const float>(out.p, 6, 9),
                                           device_matrix_view<float>(out.p, 6, 10)),
                    Catch::Contains("grad_logits"));
  CHECK(t.read() == tc::status_ok);
}

TEST_CASE("cuda arcface head: bad cosines in the scalar prefix, the vector body and the scalar tail of a "
          "misaligned row set the status bit",
          "[cuda][arcface]") {
  const index_t n = 4, c = 50;
  const layout L{1, 1};  // float rows at byte 4 + 204 i: prefixes and tails vary by row
  index_t bad_row = -1;
  for (index_t i = 0; i < n && bad_row < 0; ++i) {
    const split sp = split_of(L, c, i, sizeof(float));
    if (sp.pre > 0 && sp.tail > 0) bad_row = i;
  }
  REQUIRE(bad_row >= 0);
  const split sp = split_of(L, c, bad_row, sizeof(float));
  for (const index_t j : {index_t(0), sp.pre + 5, c - 1}) {  // prefix, body, tail
    for (const float v : {1.5f, std::nanf("")}) {
      INFO("bad cosine " << v << " at (" << bad_row << ", " << j << ")");
      std::vector<float> cos(static_cast<std::size_t>(n * c), 0.1f);
      cos[bad_row * c + j] = v;
      std::vector<std::int32_t> labels{10, 11, -1, 12};
      placed<float> dc(n, c, L, cos);
      dvec<std::int32_t> dy(labels);
      const device_vector_view<const std::int32_t> gy(dy.p, n);
      {
        test_ctx t;
        placed_vec<float> loss(n);
        margin_ce_forward(t.ctx, dc.cview(), gy, combined_margin{}, 1e-5, loss.view());
        CHECK(t.read() == tc::status_cos_out_of_range);
        const auto l = loss.values();
        for (index_t i = 0; i < n; ++i) CHECK(std::isnan(l[i]) == (i == bad_row));
      }
      for (const layout out : {L, layout{0, 0}}) {  // co-aligned (vector) and scalar paths
        test_ctx t;
        placed<float> g(n, c, out);
        dvec<float> lse(std::vector<float>(static_cast<std::size_t>(n), 70.f));
        margin_ce_backward(t.ctx, dc.cview(), gy, combined_margin{}, device_vector_view<const float>(lse.p, n),
                           device_vector_view<const float>(), 1.0, g.view());
        CHECK(t.read() == tc::status_cos_out_of_range);
        test_ctx t2;
        margin_logits(t2.ctx, dc.cview(), gy, combined_margin{}, g.view());
        CHECK(t2.read() == tc::status_cos_out_of_range);
      }
    }
  }
}
