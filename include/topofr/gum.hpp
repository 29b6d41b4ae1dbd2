// topofr/gum.hpp — structure damage estimation (SDE): the Gaussian–uniform mixture (GUM) posterior of the
// per-sample entropies, fitted by the released code's EM (docs/fidelity.md), and the structure damage score
// omega = (1 + h)^lambda (1 - p_gt) (docs/fidelity.md). Derivations and fidelity notes: docs/math.md.
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/fastmath.hpp"
#include "core/view.hpp"

namespace topofr {

/// reference: the released GUM.py `gauss_unif` step for step; a step where it would produce NaN throws.
/// robust: the same EM, with the uniform density floored at 0.001 whenever 3*C2 - C1^2 < 0.001 and an
/// empty Gaussian component (N1 underflowing to 0) treated as the fixed point h = 1.
enum class gum_mode { reference, robust };

struct gum_options {
  gum_mode mode = gum_mode::reference;
  int max_iter = 1000;     // reference value
  double tol = 1e-10;      // reference stopping tolerance on the change of sum_i (pi phi_i + (1 - pi) c)
  bool symmetrize = true;  // negate entries 0, 2, ..., 2(floor(n/2)-1) first, as the released code does
};

/// pi: weight of the Gaussian (clean) component; sigma: its variance (of the standardised entropies);
/// c: the uniform density; iterations: EM iterations run; converged: stopped before max_iter.
struct gum_result {
  double pi;
  double sigma;
  double c;
  int iterations;
  bool converged;
};

namespace detail {

// is_real_v lives in core/view.hpp (shared by every block).

/// The M-step's uniform density from the moments C1, C2 of the uniform-weighted standardised entropies,
/// as the released code writes it: 1 / (2 sqrt(3 C2 - C1^2)) (a uniform of width 2 sqrt(3 (C2 - C1^2))
/// has these moments; the code's C1^2 lacks the factor 3, see docs/math.md).
/// 3 C2 - C1^2 >= C2 >= 0 holds in exact arithmetic (docs/math.md), so the reference's NaN branch
/// is a guard, not a code path real data takes.
inline double gum_uniform_density(double c1, double c2, gum_mode mode, int iteration) {
  const double d = 3.0 * c2 - c1 * c1;
  if (mode == gum_mode::robust) {
    if (!(d >= 0.001)) return 0.001;  // also catches NaN
    // Keeps (1 - pi) c > 0 so that every E-step denominator stays positive (d = inf gives c = 0).
    return std::fmax(1.0 / (2.0 * std::sqrt(d) + 1e-10), std::numeric_limits<double>::min());
  }
  if (std::abs(d) < 0.001) return 0.001;
  if (!(d > 0.0) || !std::isfinite(d))
    fail("gum_fit", "entropy", "EM diverged at iteration ", iteration, ": 3*C2 - C1^2 = ", d,
         " (the released code takes the square root of it and turns NaN); use gum_mode::robust");
  return 1.0 / (2.0 * std::sqrt(d) + 1e-10);
}

/// Standardises x in place as sklearn.preprocessing.scale does, step for step: subtract the mean; if the
/// centred data's mean is not within 1e-8 of 0 (precision lost to a large offset), subtract that too;
/// divide by the population std of the data as given, where a std below 10 * DBL_EPSILON
/// (sklearn's _handle_zeros_in_scale) leaves x centred and unscaled; re-centre again in the same way.
/// Computed on x scaled by a power of two (exact), so finite inputs of any magnitude never overflow.
inline void gum_standardize(std::vector<double>& x) {
  const auto n = static_cast<double>(x.size());
  double amax = 0.0;
  for (double v : x) amax = std::fmax(amax, std::abs(v));
  if (amax == 0.0) return;
  const int e = std::ilogb(amax);  // work on x 2^-e; thresholds below are on the true scale
  const auto mean = [&] {
    double m = 0.0;
    for (double v : x) m += v;
    return m / n;
  };
  for (double& v : x) v = std::ldexp(v, -e);
  const double m0 = mean();
  double var = 0.0;
  for (double& v : x) {
    v -= m0;
    var += v * v;
  }
  const double sd = std::sqrt(var / n);
  const bool constant = sd < std::ldexp(10.0 * std::numeric_limits<double>::epsilon(), -e);
  const double m1 = mean();
  if (std::abs(std::ldexp(m1, e)) > 1e-8)
    for (double& v : x) v -= m1;
  for (double& v : x) v = constant ? std::ldexp(v, e) : v / sd;
  const double m2 = mean();
  if (std::abs(m2) > 1e-8)
    for (double& v : x) v -= m2;
}

}  // namespace detail

namespace detail {
/// gum_fit's option checks (shared with cuda::objective, which checks everything before enqueuing).
inline void gum_check_options(const gum_options& opt, const char* fn) {
  require(opt.mode == gum_mode::reference || opt.mode == gum_mode::robust, fn, "opt.mode", "unknown gum_mode ",
          static_cast<int>(opt.mode));
  require(opt.max_iter >= 1, fn, "opt.max_iter", "must be >= 1, got ", opt.max_iter);
  require(opt.tol >= 0.0, fn, "opt.tol", "must be >= 0, got ", opt.tol);  // false for NaN
}

/// gum_fit's argument checks, shared by the CPU and CUDA overloads (the values are checked where they are
/// read: on the host here, on the device there).
template <class In, class T, class S>
void gum_check_args(const vector_view<In, S>& entropy, const vector_view<T, S>& hard_posterior, const gum_options& opt,
                    const char* fn) {
  detail::check_view(entropy, fn, "entropy");
  detail::require(entropy.size() >= 1, fn, "entropy", "expected at least 1 entropy, got ", entropy.size());
  detail::check_size(hard_posterior, entropy.size(), fn, "hard_posterior");
  gum_check_options(opt, fn);
}
}  // namespace detail

/// Fits the released code's Gaussian–uniform mixture to n entropies by EM and writes the posterior of the
/// uniform (hard-sample) component, h = 1 - gamma, to hard_posterior (size n; it may alias entropy).
/// Throws topofr::error on an empty or non-finite input, a size mismatch, bad options, and, in reference
/// mode, on a step where the released code would turn NaN.
template <class In, class T = std::remove_const_t<In>>
gum_result gum_fit(cpu_t, vector_view<In> entropy, vector_view<T> hard_posterior, const gum_options& opt = {}) {
  static_assert(detail::is_real_v<std::remove_const_t<In>> && detail::is_real_v<T>,
                "gum_fit: entropy and hard_posterior must be float or double");
  constexpr const char* fn = "gum_fit";
  detail::gum_check_args(entropy, hard_posterior, opt, fn);

  const index_t n = entropy.size();
  std::vector<double> eps_buf(static_cast<std::size_t>(n)), eps2_buf(static_cast<std::size_t>(n));
  double* const eps = eps_buf.data();    // standardised entropies
  double* const eps2 = eps2_buf.data();  // their squares
  for (index_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(entropy[i]);
    detail::require(std::isfinite(v), fn, "entropy", "must be finite, got ", v, " at index ", i);
    eps[i] = (opt.symmetrize && i % 2 == 0 && i + 1 < n) ? -v : v;  // i = 0, 2, ..., 2(floor(n/2) - 1)
  }
  detail::gum_standardize(eps_buf);
  double sigma = 0.0;
  for (index_t i = 0; i < n; ++i) sigma += (eps2[i] = eps[i] * eps[i]);
  sigma /= static_cast<double>(n);

  const double nd = static_cast<double>(n);
  const double two_pi = 6.283185307179586476925;
  double pi = 0.1, c = 0.2, log_like0 = 0.0;
  // The last E-step's parameters: h_i = b / (a exp(k eps_i^2) + b).
  double a = 0.0, b = 0.0, k = 0.0;
  gum_result res{pi, sigma, c, 0, false};
  bool empty_gaussian = false;
  for (int it = 0; it < opt.max_iter; ++it) {
    // E-step: phi_i = N(eps_i | 0, sigma + 1e-3); gamma_i = pi phi_i / (pi phi_i + (1 - pi) c), 1 - gamma_i
    // computed directly as (1 - pi) c / (...) so that the uniform-side moments suffer no cancellation.
    const double var = sigma + 1e-3, norm = 1.0 / std::sqrt(two_pi * var);
    k = -0.5 / var;
    a = pi * norm;
    b = (1.0 - pi) * c;
    // Fused pass: E-step and every M-step sum. L lanes of fixed-order partial sums vectorise without
    // reassociation flags and give the same result whatever the SIMD width or thread count.
    constexpr index_t L = 8;
    double acc[5][L] = {};
    const auto step = [&](index_t i, index_t l) {
      const double e = fastmath::exp(k * eps2[i]);
      const double t = a * e, r = 1.0 / (t + b);
      const double g = t * r, u = b * r;
      acc[0][l] += g;
      acc[1][l] += g * eps2[i];
      acc[2][l] += u * eps[i];
      acc[3][l] += u * eps2[i];
      acc[4][l] += e;
    };
    index_t i0 = 0;
    for (; i0 + L <= n; i0 += L)
      for (index_t l = 0; l < L; ++l) step(i0 + l, l);
    for (index_t l = 0; i0 + l < n; ++l) step(i0 + l, l);
    double sum[5];
    for (int q = 0; q < 5; ++q) {
      sum[q] = 0.0;
      for (index_t l = 0; l < L; ++l) sum[q] += acc[q][l];
    }
    const double n1 = sum[0], sg2 = sum[1], su1 = sum[2], su2 = sum[3], se = sum[4];
    res.iterations = it + 1;
    // M-step (mu stays 0).
    if (opt.mode == gum_mode::robust) {
      if (n1 < std::numeric_limits<double>::min()) {  // no Gaussian mass left: gamma = 0 is a fixed point
        empty_gaussian = true;
        res.converged = true;
        pi = 0.0;
        break;
      }
    } else if (!(n1 > 0.0)) {
      detail::fail(fn, "entropy", "EM diverged at iteration ", it,
                   ": the Gaussian responsibilities sum to N1 = 0 (the released code divides by it and turns"
                   " NaN); use gum_mode::robust");
    }
    sigma = sg2 / n1;
    pi = std::fmin(n1 / nd, 0.5);
    const double w = 1.0 / (n1 * (1.0 - pi + 1e-10));
    c = detail::gum_uniform_density(su1 * w, su2 * w, opt.mode, it);
    // Stopping rule of the released code: the updated pi and c with this iteration's phi.
    const double log_like = pi * norm * se + nd * (1.0 - pi) * c;
    if (std::abs(log_like - log_like0) < opt.tol) {
      res.converged = true;
      break;
    }
    log_like0 = log_like;
  }
  res.pi = pi;
  res.sigma = sigma;
  res.c = c;
  for (index_t i = 0; i < n; ++i)  // 1 - gamma_i of the last E-step, by the same formula
    hard_posterior[i] = empty_gaussian ? T(1) : static_cast<T>(b / (a * fastmath::exp(k * eps2[i]) + b));
  return res;
}

/// Structure damage score omega_i = (1 + h_i)^lambda * (focal ? 1 - p_gt_i : 1), in double, rounded to T.
/// focal = false reproduces the released code, whose integer p_gt makes the focal term 1 (docs/fidelity.md);
/// p_gt may then be empty (when given it is still checked). omega may alias hard_posterior or p_gt.
template <class InH, class InP = InH, class T = std::remove_const_t<InH>>
void sds_weights(cpu_t, vector_view<InH> hard_posterior, vector_view<InP> p_gt, double lambda, bool focal,
                 vector_view<T> omega) {
  static_assert(detail::is_real_v<std::remove_const_t<InH>> && detail::is_real_v<std::remove_const_t<InP>> &&
                    detail::is_real_v<T>,
                "sds_weights: hard_posterior, p_gt and omega must be float or double");
  constexpr const char* fn = "sds_weights";
  detail::check_view(hard_posterior, fn, "hard_posterior");
  const index_t n = hard_posterior.size();
  detail::check_size(omega, n, fn, "omega");
  detail::require(std::isfinite(lambda), fn, "lambda", "must be finite, got ", lambda);
  if (focal || !p_gt.empty()) {
    detail::check_size(p_gt, n, fn, focal ? "p_gt (required when focal = true)" : "p_gt");
  }
  for (index_t i = 0; i < n; ++i) {
    const double h = static_cast<double>(hard_posterior[i]);
    detail::require(h >= 0.0 && h <= 1.0, fn, "hard_posterior", "must be in [0, 1], got ", h, " at index ", i);
  }
  for (index_t i = 0; i < p_gt.size(); ++i) {
    const double p = static_cast<double>(p_gt[i]);
    detail::require(p >= 0.0 && p <= 1.0, fn, "p_gt", "must be in [0, 1], got ", p, " at index ", i);
  }
  for (index_t i = 0; i < n; ++i) {
    const double focal_term = focal ? 1.0 - static_cast<double>(p_gt[i]) : 1.0;
    omega[i] = static_cast<T>(std::pow(1.0 + static_cast<double>(hard_posterior[i]), lambda) * focal_term);
  }
}

}  // namespace topofr
