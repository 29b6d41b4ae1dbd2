// topofr/arcface.hpp — combined-margin ArcFace logits and the fused margin-softmax cross-entropy head
//. Math: docs/math.md; paper vs released code: docs/fidelity.md.
//
// The head is memory-bound (an N x C cosine matrix with C ~ 10^5 classes): every pass reads the cosines
// once from memory, validates them while it reads, and keeps the row in cache for the rest of its work.
// Rows are independent and each is reduced by one thread in a fixed order, so results do not depend on
// the number of OpenMP threads.
#pragma once

#include <math.h>  // ::sqrt, ::cos, ::acos, ::sin: callable from host and device code

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/fastmath.hpp"
#include "core/view.hpp"

namespace topofr {

/// Target logit s (cos(m1 theta + m2) - m3): SphereFace (m1), ArcFace (m2), CosFace (m3) in one.
/// Defaults: ArcFace as in TopoFR (s = 64, m = 0.5). CosFace: m2 = 0, m3 = 0.35.
/// straight_through picks the target column's gradient (docs/math.md, "Margin gradient"): false (the
/// default, TopoFR's ArcFace) differentiates the margin, s f'(cos); true passes s straight through, as
/// insightface's arcface_torch does by applying the margin under torch.no_grad(). The forward is the same.
struct combined_margin {
  double s = 64.0, m1 = 1.0, m2 = 0.5, m3 = 0.0;
  bool straight_through = false;
};

/// Labels of the head. A row's label is a class in [0, C), or one of two values without a target column:
///  -1            the target class lives on another shard (insightface Partial FC's convention): no margin,
///                loss 0 and p_gt 0 here, but the row's softmax still covers this shard's classes, so
///                margin_ce_backward gives it p_ij (times w grad_scale s) in every column. With the lse of
///                all shards combined this is exactly Partial FC's local gradient; with one shard it is a
///                row whose target is in no class of the matrix.
///  ignore_label  (-100, PyTorch's default ignore_index) the row is ignored: loss 0, p_gt 0, no margin, and
///                a zero gradient.
/// Every other value is an error. (Entropy and lse of both kinds of rows are those of the plain logits.)
constexpr std::int64_t ignore_label = -100;

namespace detail {
namespace arc {

/// The label of a row whose target is on another shard (see ignore_label).
constexpr index_t other_shard_label = -1;

/// True for a label the head accepts: -1, ignore_label or a class in [0, c).
TOPOFR_HD constexpr bool label_ok(index_t y, index_t c) {
  return (y >= 0 && y < c) || y == other_shard_label || y == static_cast<index_t>(ignore_label);
}

// Elements per inner block: one 64-byte vector. The fixed-size inner loops below are how the row
// reductions vectorise without -ffast-math: each lane keeps its own partial sum, so no reassociation is
// needed (and the summation order is fixed, whatever the SIMD width).
template <class T>
constexpr index_t lanes = 64 / sizeof(T);

/// The target-logit function f and its derivative (docs/math.md). f, df and sin_theta are host-and-device:
/// the CUDA head (topofr/cuda/arcface.cuh) evaluates this very code, in double, as the CPU does.
struct margin_fn {
  double s, m1, m2, m3, cos_m2, sin_m2, threshold, sinmm;
  bool straight_through;

  explicit margin_fn(const combined_margin& m)
      : s(m.s), m1(m.m1), m2(m.m2), m3(m.m3), cos_m2(std::cos(m.m2)), sin_m2(std::sin(m.m2)),
        straight_through(m.straight_through) {
    const double pi = 3.14159265358979323846;
    double angle = (pi - m2) / m1;  // beyond it m1 theta + m2 passes pi and cos(.) stops decreasing
    angle = angle < 0.0 ? 0.0 : (angle > pi ? pi : angle);
    threshold = std::cos(angle);
    sinmm = std::sin(pi - m2) * m2;
  }
  // sin(theta) = sqrt(1 - x^2), computed as (1 - x)(1 + x) to keep its accuracy near x = +-1.
  // (::sqrt, ::cos, ... are the C library's double functions on the host, std::sqrt's own, and the CUDA
  // math library's on the device.)
  TOPOFR_HD static double sin_theta(double x) { return ::sqrt((1.0 - x) * (1.0 + x)); }

  TOPOFR_HD double f(double x) const {
    if (!(x > threshold)) return x - m3 - sinmm;
    if (m1 == 1.0) return x * cos_m2 - sin_theta(x) * sin_m2 - m3;  // the insightface form
    return ::cos(m1 * ::acos(x) + m2) - m3;
  }
  /// df/dx, with sin(theta) floored at sin_floor so that x = +-1 gives a finite slope; 1 when the margin
  /// gradient is straight-through.
  TOPOFR_HD double df(double x, double sin_floor) const {
    if (straight_through || !(x > threshold)) return 1.0;
    const double sq = sin_theta(x);
    const double st = sq < sin_floor ? sin_floor : sq;  // std::max(sq, sin_floor)
    if (m1 == 1.0) return cos_m2 + x * sin_m2 / st;
    return m1 * ::sin(m1 * ::acos(x) + m2) / st;
  }
};

/// sqrt(machine epsilon of T): the smallest sin(theta) of a representable cos(theta) < 1.
template <class T>
double sin_floor() {
  return std::sqrt(static_cast<double>(std::numeric_limits<T>::epsilon()));
}

/// Validates m; the returned s is m.s rounded to T, the scale of every logit (so that the target and the
/// other logits, and the forward and backward, agree to the last bit).
template <class T>
margin_fn checked_margin(const combined_margin& m, const char* fn) {
  require_scale(m.s, fn, "margin.s");
  require(m.s <= static_cast<double>(std::numeric_limits<T>::max()), fn, "margin.s",
          "must be finite in the scalar type, got ", m.s);
  require(std::isfinite(m.m1) && m.m1 > 0.0, fn, "margin.m1", "must be finite and > 0, got ", m.m1);
  require(std::isfinite(m.m2), fn, "margin.m2", "must be finite, got ", m.m2);
  require(std::isfinite(m.m3), fn, "margin.m3", "must be finite, got ", m.m3);
  margin_fn f(m);
  f.s = static_cast<double>(static_cast<T>(m.s));
  return f;
}

template <class InC, class S>
void check_cos_view(matrix_view<InC, S> cos, const char* fn) {
  check_view(cos, fn, "cos");
  require(cos.cols() >= 1 || cos.rows() == 0, fn, "cos", "expected at least one class column, got ",
          cos.rows(), " x ", cos.cols());
}

template <class L, class S>
void check_label_size(const vector_view<L, S>& labels, index_t n, const char* fn) {
  static_assert(std::is_same<std::remove_const_t<L>, std::int32_t>::value ||
                    std::is_same<std::remove_const_t<L>, std::int64_t>::value,
                "labels must be int32 or int64");
  check_size(labels, n, fn, "labels");
}

/// The label values (host memory; the CUDA twins check them on the device).
template <class L>
void check_labels(vector_view<L> labels, index_t n, index_t c, const char* fn) {
  for (index_t i = 0; i < n; ++i) {
    const index_t y = static_cast<index_t>(labels[i]);
    require(label_ok(y, c), fn, "labels", "element ", i, " is ", y,
            ", expected -1 (target on another shard), -100 (ignored) or a class in [0, ", c, ")");
  }
}

template <class In>
void check_finite(vector_view<In> v, const char* fn, const char* arg) {
  for (index_t i = 0; i < v.size(); ++i)
    require(std::isfinite(static_cast<double>(v[i])), fn, arg, "element ", i, " is not finite, got ",
            static_cast<double>(v[i]));
}

/// Called when row i of cos failed the fused range check: names the first bad element.
template <class InC>
[[noreturn]] void fail_cos(matrix_view<InC> cos, index_t i, const char* fn) {
  for (index_t j = 0; j < cos.cols(); ++j) {
    const double v = static_cast<double>(cos(i, j));
    if (!(std::fabs(v) <= 1.0))
      fail(fn, "cos", "element (", i, ", ", j, ") is ", v, ", expected a finite cosine in [-1, 1]");
  }
  fail(fn, "cos", "row ", i, " failed the range check");  // unreachable
}

/// Runs body(i) for every row, in parallel; body returns false when row i holds an invalid cosine.
/// The first such row (deterministically, the smallest index) is reported after the loop: nothing may
/// throw inside an OpenMP region.
template <class InC, class Body>
void for_rows(matrix_view<InC> cos, const char* fn, Body body) {
  const index_t n = cos.rows();
  index_t first_bad = n;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic) reduction(min : first_bad)
#endif
  for (index_t i = 0; i < n; ++i)
    if (!body(i) && i < first_bad) first_bad = i;
  if (first_bad < n) fail_cos(cos, first_bad, fn);
}

/// a b - c with the product unrounded: one FMA where the target has it (GCC/Clang vectorise std::fma
/// only then), else through double (exact for float products).
template <class T>
inline T mul_sub(T a, T b, T c) {
#if defined(__FMA__)
  return std::fma(a, b, -c);
#else
  return std::is_same<T, float>::value ? static_cast<T>(static_cast<double>(a) * b - c) : a * b - c;
#endif
}

/// Sum of term(j) over [b, e) in W lanes; each lane adds blocks of 4 terms in T to its double total. No
/// reassociation is needed to vectorise it, and the order is fixed by the code, not by the SIMD width.
template <class T, class Term>
double lane_sum(index_t b, index_t e, Term term) {
  constexpr index_t W = lanes<T>, B = 4 * W;
  double acc[W];
  for (index_t l = 0; l < W; ++l) acc[l] = 0.0;
  index_t j = b;
  for (; j + B <= e; j += B) {
    T part[W];
    for (index_t l = 0; l < W; ++l) part[l] = term(j + l);
    for (index_t k = W; k < B; k += W)
      for (index_t l = 0; l < W; ++l) part[l] += term(j + k + l);
    for (index_t l = 0; l < W; ++l) acc[l] += static_cast<double>(part[l]);
  }
  for (; j < e; ++j) acc[0] += static_cast<double>(term(j));
  double sum = 0.0;
  for (index_t l = 0; l < W; ++l) sum += acc[l];
  return sum;
}

/// Runs op(j) for j in [0, n) and checks |c[j]| <= 1 (false for NaN) in W lanes: true when all pass.
template <class T, class Op>
bool map_checked(const T* c, index_t n, Op op) {
  constexpr index_t W = lanes<T>;
  T bad[W];
  for (index_t l = 0; l < W; ++l) bad[l] = T(0);
  index_t j = 0;
  for (; j + W <= n; j += W)
    for (index_t l = 0; l < W; ++l) {
      op(j + l);
      bad[l] = fastmath::detail::select(std::fabs(c[j + l]) <= T(1), bad[l], T(1));
    }
  bool ok = true;
  for (; j < n; ++j) op(j), ok &= std::fabs(c[j]) <= T(1);
  for (index_t l = 0; l < W; ++l) ok &= bad[l] == T(0);
  return ok;
}

/// Largest c[j] over [b, e) into mx, and the range check of the same elements.
template <class T>
bool max_checked(const T* c, index_t b, index_t e, T& mx) {
  constexpr index_t W = lanes<T>;
  T m[W], bad[W];
  for (index_t l = 0; l < W; ++l) m[l] = -std::numeric_limits<T>::infinity(), bad[l] = T(0);
  index_t j = b;
  for (; j + W <= e; j += W)
    for (index_t l = 0; l < W; ++l) {
      const T v = c[j + l];
      m[l] = fastmath::detail::select(v > m[l], v, m[l]);
      bad[l] = fastmath::detail::select(std::fabs(v) <= T(1), bad[l], T(1));
    }
  bool ok = true;
  for (; j < e; ++j) mx = c[j] > mx ? c[j] : mx, ok &= std::fabs(c[j]) <= T(1);
  for (index_t l = 0; l < W; ++l) mx = m[l] > mx ? m[l] : mx, ok &= bad[l] == T(0);
  return ok;
}

/// entropy_eps: >= 0 and finite in the scalar type T (shared by the CPU and CUDA heads and the objective).
template <class T>
void check_entropy_eps(double entropy_eps, const char* fn) {
  require(entropy_eps >= 0.0 && entropy_eps <= static_cast<double>(std::numeric_limits<T>::max()), fn,
          "entropy_eps", "must be >= 0 and finite in the scalar type, got ", entropy_eps);
}

// The host-side argument checks of the four head functions, each shared by its CPU and CUDA overloads
// (margin, cos view, label count, output shapes, eps and grad_scale; the values of cos, labels, lse and
// weights are checked where they are read). T: the arithmetic type (the margin's s is rounded to it).
// Each returns the checked margin function.
template <class T, class InC, class L, class S>
margin_fn check_logits_args(const char* fn, const combined_margin& m, const matrix_view<InC, S>& cos,
                            const vector_view<L, S>& labels, const matrix_view<T, S>& logits) {
  const margin_fn mf = checked_margin<T>(m, fn);
  check_cos_view(cos, fn);
  check_label_size(labels, cos.rows(), fn);
  check_shape(logits, cos.rows(), cos.cols(), fn, "logits");
  return mf;
}
template <class T, class InC, class L, class InG, class S>
margin_fn check_logits_backward_args(const char* fn, const combined_margin& m, const matrix_view<InC, S>& cos,
                                     const vector_view<L, S>& labels, const matrix_view<InG, S>& grad_logits,
                                     const matrix_view<T, S>& grad_cos) {
  const margin_fn mf = checked_margin<T>(m, fn);
  check_cos_view(cos, fn);
  check_label_size(labels, cos.rows(), fn);
  check_shape(grad_logits, cos.rows(), cos.cols(), fn, "grad_logits");
  check_shape(grad_cos, cos.rows(), cos.cols(), fn, "grad_cos");
  return mf;
}
template <class T, class InC, class L, class S>
margin_fn check_ce_forward_args(const char* fn, const combined_margin& m, double entropy_eps,
                                const matrix_view<InC, S>& cos, const vector_view<L, S>& labels,
                                const vector_view<T, S>& loss, const vector_view<T, S>& entropy,
                                const vector_view<T, S>& p_gt, const vector_view<T, S>& lse) {
  const margin_fn mf = checked_margin<T>(m, fn);
  check_entropy_eps<T>(entropy_eps, fn);
  check_cos_view(cos, fn);
  const index_t n = cos.rows();
  check_label_size(labels, n, fn);
  check_size(loss, n, fn, "loss");
  if (!entropy.empty()) check_size(entropy, n, fn, "entropy");
  if (!p_gt.empty()) check_size(p_gt, n, fn, "p_gt");
  if (!lse.empty()) check_size(lse, n, fn, "lse");
  return mf;
}
template <class T, class InC, class L, class InS, class InW, class S>
margin_fn check_ce_backward_args(const char* fn, const combined_margin& m, const matrix_view<InC, S>& cos,
                                 const vector_view<L, S>& labels, const vector_view<InS, S>& lse,
                                 const vector_view<InW, S>& weights, double grad_scale,
                                 const matrix_view<T, S>& grad_cos) {
  const margin_fn mf = checked_margin<T>(m, fn);
  check_cos_view(cos, fn);
  const index_t n = cos.rows();
  check_label_size(labels, n, fn);
  check_size(lse, n, fn, "lse");
  if (!weights.empty()) check_size(weights, n, fn, "weights");
  require(std::isfinite(grad_scale), fn, "grad_scale", "must be finite, got ", grad_scale);
  check_shape(grad_cos, n, cos.cols(), fn, "grad_cos");
  return mf;
}

}  // namespace arc
}  // namespace detail

/// logits(i, j) = s f(cos(i, j)) for j = labels[i], s cos(i, j) otherwise (no margin when labels[i] is -1
/// or ignore_label). cos: N x C, entries in [-1, 1]; labels: N, int32 or int64, each -1 (target on another
/// shard), ignore_label (-100) or in [0, C); logits: N x C.
template <class InC, class L, class T = std::remove_const_t<InC>>
void margin_logits(cpu_t, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                   matrix_view<T> logits) {
  static_assert(detail::is_real_v<T> && std::is_same<std::remove_const_t<InC>, T>::value,
                "margin_logits: float or double, the same for cos and logits");
  constexpr const char* fn = "margin_logits";
  const auto mf = detail::arc::check_logits_args<T>(fn, m, cos, labels, logits);
  const index_t n = cos.rows(), c = cos.cols();
  detail::arc::check_labels(labels, n, c, fn);
  const T s = static_cast<T>(mf.s);
  detail::arc::for_rows(cos, fn, [&](index_t i) {
    const T* ci = cos.row(i);
    T* zi = logits.row(i);
    const bool ok = detail::arc::map_checked(ci, c, [&](index_t j) { zi[j] = s * ci[j]; });
    const index_t y = static_cast<index_t>(labels[i]);
    if (ok && y >= 0) logits(i, y) = static_cast<T>(mf.s * mf.f(static_cast<double>(ci[y])));
    return ok;
  });
}

/// grad_cos = d <grad_logits, logits> / d cos: s grad_logits, times f'(cos) in the label column (none for
/// labels -1 and ignore_label).
template <class InC, class L, class InG, class T = std::remove_const_t<InC>>
void margin_logits_backward(cpu_t, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                            matrix_view<InG> grad_logits, matrix_view<T> grad_cos) {
  static_assert(detail::is_real_v<T> && std::is_same<std::remove_const_t<InC>, T>::value &&
                    std::is_same<std::remove_const_t<InG>, T>::value,
                "margin_logits_backward: float or double, the same for every matrix");
  constexpr const char* fn = "margin_logits_backward";
  const auto mf = detail::arc::check_logits_backward_args<T>(fn, m, cos, labels, grad_logits, grad_cos);
  const index_t n = cos.rows(), c = cos.cols();
  detail::arc::check_labels(labels, n, c, fn);
  const T s = static_cast<T>(mf.s);
  const double floor = detail::arc::sin_floor<T>();
  detail::arc::for_rows(cos, fn, [&](index_t i) {
    const T* ci = cos.row(i);
    const T* gi = grad_logits.row(i);
    T* oi = grad_cos.row(i);
    const bool ok = detail::arc::map_checked(ci, c, [&](index_t j) { oi[j] = s * gi[j]; });
    const index_t y = static_cast<index_t>(labels[i]);
    if (ok && y >= 0)
      grad_cos(i, y) = static_cast<T>(mf.s * mf.df(static_cast<double>(ci[y]), floor) * static_cast<double>(gi[y]));
    return ok;
  });
}

/// Fused head, pass 1. Per row i with z = margin logits: loss_i = lse_i - z_i,y, entropy_i =
/// -sum_j p_ij log(p_ij + eps) with p = softmax(z) (eps = 0: the limit 0 log 0 = 0), p_gt_i = p_i,y,
/// lse_i = log sum_j exp z_ij (input of pass 2). Rows labelled -1 (target on another shard) or
/// ignore_label have no target here: z = s cos, loss_i = 0 and p_gt_i = 0.
/// entropy, p_gt, lse may be empty (not computed).
template <class InC, class L, class T = std::remove_const_t<InC>>
void margin_ce_forward(cpu_t, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                       double entropy_eps, vector_view<T> loss, vector_view<T> entropy = {},
                       vector_view<T> p_gt = {}, vector_view<T> lse = {}) {
  static_assert(detail::is_real_v<T> && std::is_same<std::remove_const_t<InC>, T>::value,
                "margin_ce_forward: float or double, the same for cos and the outputs");
  constexpr const char* fn = "margin_ce_forward";
  const auto mf = detail::arc::check_ce_forward_args<T>(fn, m, entropy_eps, cos, labels, loss, entropy, p_gt, lse);
  const index_t n = cos.rows(), c = cos.cols();
  detail::arc::check_labels(labels, n, c, fn);

  const bool want_h = !entropy.empty();
  // eps below the smallest normal T is treated as 0: |p log(p + eps) - p log p| <= eps for every p, so the
  // difference is below C * eps, far under T's resolution.
  const bool eps_log = want_h && entropy_eps >= static_cast<double>(std::numeric_limits<T>::min());
  const T s = static_cast<T>(mf.s), eps = static_cast<T>(entropy_eps);
  const double sd = mf.s;
#if defined(_OPENMP)
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  // Per-thread row of exponentials, reused by the entropy sweep while it is still in cache.
  std::vector<T> work(static_cast<std::size_t>(threads) * static_cast<std::size_t>(c));

  detail::arc::for_rows(cos, fn, [&](index_t i) {
    const T* ci = cos.row(i);
    const index_t y = static_cast<index_t>(labels[i]);
    // Pass A: the largest cosine outside the label column, and the range check.
    T mx = -std::numeric_limits<T>::infinity();
    const index_t split = y >= 0 ? y : c;
    bool ok = detail::arc::max_checked(ci, 0, split, mx);
    if (y >= 0) ok &= detail::arc::max_checked(ci, y + 1, c, mx) && std::fabs(ci[y]) <= T(1);
    if (!ok) return false;
    // Shift by the largest logit, in cosine units: ref_d = max(mx, f(x_y)) in double, ref its value in T.
    // Non-target exponents d_j = s (c_j - ref) <= 0 (ref >= mx, rounding being monotone), with c_j - ref
    // exact near the maximum; the target's d_y = s (f - ref_d) <= 0 stays in double.
    const double inf = std::numeric_limits<double>::infinity();
    const double fy = y >= 0 ? mf.f(static_cast<double>(ci[y])) : -inf;
    const double ref_d = std::max(static_cast<double>(mx), fy);
    const T ref = static_cast<T>(ref_d);
    const double corr = sd * (static_cast<double>(ref) - ref_d);  // the rounding of ref, in logit units
    const double dy = sd * (fy - ref_d);                           // -inf when y < 0 (no target)
    // Pass B, from the cached row: e_j = exp(d_j) into the thread's buffer, S' = sum_{j != y} e_j.
#if defined(_OPENMP)
    T* e = work.data() + static_cast<std::size_t>(omp_get_thread_num()) * static_cast<std::size_t>(c);
#else
    T* e = work.data();
#endif
    auto exp_term = [&](index_t j) { return e[j] = fastmath::exp_finite(s * (ci[j] - ref)); };
    auto rest = [&](auto term) {  // sum over j != y
      return detail::arc::lane_sum<T>(0, split, term) + (y >= 0 ? detail::arc::lane_sum<T>(y + 1, c, term) : 0.0);
    };
    const double sum_rest = rest(exp_term);
    // log S = log(S' e^corr + e^dy), S = sum_j exp(z_j - s ref_d); one of the two terms is ~1 (the
    // maximum's own), so the log-add-exp below is finite whatever s is.
    const double a = sum_rest > 0.0 ? std::log(sum_rest) + corr : -inf, top = std::max(a, dy);
    const double log_sum = top + std::log(std::exp(a - top) + std::exp(dy - top));
    const double p_y = std::exp(dy - log_sum);  // 0 when y < 0
    if (!lse.empty()) lse[i] = static_cast<T>(sd * ref_d + log_sum);
    loss[i] = y >= 0 ? static_cast<T>(log_sum - dy) : T(0);
    if (!p_gt.empty()) p_gt[i] = static_cast<T>(p_y);
    if (!want_h) return true;
    // Pass C, from the buffer (still in cache): p_j = e_j inv for j != y.
    const double inv = std::exp(corr - log_sum);
    double h;
    if (eps_log) {  // -sum_j p_j log(p_j + eps); p + eps is a positive normal number
      const T inv_t = static_cast<T>(inv);
      h = -rest([&](index_t j) {
        const T p = e[j] * inv_t;
        return p * fastmath::log_normal(p + eps);
      });
      if (y >= 0) h -= p_y * std::log(p_y + entropy_eps);
    } else {  // eps = 0, with log p_j = d_j + corr - log S (j != y), log p_y = d_y - log S and sum p = 1:
      // -sum p log p = log S - corr (1 - p_y) - inv sum_{j != y} e_j d_j - p_y d_y; all terms >= 0 but
      // the tiny corr one: no cancellation, no logarithm per element, and 0 log 0 = 0.
      const double sum_ed = rest([&](index_t j) { return e[j] * (s * (ci[j] - ref)); });
      h = log_sum - corr * (1.0 - p_y) - inv * sum_ed - (y >= 0 ? p_y * dy : 0.0);
    }
    entropy[i] = static_cast<T>(h);
    return true;
  });
}

/// Fused head, pass 2: grad_cos(i, j) = weights[i] grad_scale d loss_i / d cos(i, j), from the lse of
/// pass 1. weights empty: all 1. Per row, with p_ij = exp(z_ij - lse_i):
///   label y in [0, C): w grad_scale s (p_ij - [j = y]), times f'(cos) in the label column;
///   label -1 (target on another shard): w grad_scale s p_ij in every column, the gradient of lse_i alone.
///     The loss term of such a row is the lse of a softmax that also covers other shards' classes; given
///     that global lse (Partial FC: the logsumexp all-reduced over ranks, grad_scale = 1/B), this is the
///     shard's part of its gradient, and the owning shard adds the -1 of the target column;
///   label ignore_label: zero.
template <class InC, class L, class InS, class InW, class T = std::remove_const_t<InC>>
void margin_ce_backward(cpu_t, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                        vector_view<InS> lse, vector_view<InW> weights, double grad_scale,
                        matrix_view<T> grad_cos) {
  static_assert(detail::is_real_v<T> && std::is_same<std::remove_const_t<InC>, T>::value &&
                    std::is_same<std::remove_const_t<InS>, T>::value &&
                    std::is_same<std::remove_const_t<InW>, T>::value,
                "margin_ce_backward: float or double, the same for every argument");
  constexpr const char* fn = "margin_ce_backward";
  const auto mf =
      detail::arc::check_ce_backward_args<T>(fn, m, cos, labels, lse, weights, grad_scale, grad_cos);
  const index_t n = cos.rows(), c = cos.cols();
  detail::arc::check_labels(labels, n, c, fn);
  detail::arc::check_finite(lse, fn, "lse");
  detail::arc::check_finite(weights, fn, "weights");
  const double floor = detail::arc::sin_floor<T>();
  const T s = static_cast<T>(mf.s);

  detail::arc::for_rows(cos, fn, [&](index_t i) {
    const T* ci = cos.row(i);
    T* gi = grad_cos.row(i);
    const index_t y = static_cast<index_t>(labels[i]);
    const double w = weights.empty() ? 1.0 : static_cast<double>(weights[i]);
    // d loss / d z_j = p_j - [j = y], and d z_j / d cos_j = s (s f'(cos) in the label column).
    // An ignored row: zero (its cosines are still checked).
    if (y == ignore_label) return detail::arc::map_checked(ci, c, [&](index_t j) { gi[j] = T(0); });
    const T l = lse[i];
    const T coef = static_cast<T>(w * grad_scale * mf.s);
    // p_j = exp(s c_j - lse), the exponent rounded once: lse ~ s, and a rounded s c would cost low bits.
    const bool ok = detail::arc::map_checked(ci, c, [&](index_t j) {
      gi[j] = coef * fastmath::exp_finite(detail::arc::mul_sub(s, ci[j], l));
    });
    if (ok && y >= 0) {  // the target column (none for label -1: its target is on another shard)
      const double x = static_cast<double>(ci[y]);
      const double p_minus_1 = std::expm1(mf.s * mf.f(x) - static_cast<double>(l));  // exact near p_y = 1
      gi[y] = static_cast<T>(coef * p_minus_1 * mf.df(x, floor));
    }
    return ok;
  });
}

}  // namespace topofr
