// topofr/gum.hpp — structure damage estimation (SDE): the Gaussian–uniform mixture (GUM) posterior of the
// per-sample entropies, fitted by the released code's EM (docs/fidelity.md), and the structure damage score
// omega = (1 + h)^lambda (1 - p_gt) (docs/fidelity.md). Derivations and fidelity notes: docs/math.md.
#pragma once

#include <float.h>  // DBL_MIN, DBL_EPSILON, DBL_MAX: usable in host and device code
#include <math.h>   // ::sqrt, ::ldexp, ... : callable from host and device code

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

// ---- the EM's arithmetic, host-and-device: gum_fit (below) and its CUDA twin (topofr/cuda/gum.cuh) differ
// only in how they loop and sum (a vector in lanes here, a thread block there); every formula is here.

/// The M-step's uniform density from the moments C1, C2 of the uniform-weighted standardised entropies,
/// as the released code writes it: 1 / (2 sqrt(3 C2 - C1^2)) (a uniform of width 2 sqrt(3 (C2 - C1^2))
/// has these moments; the code's C1^2 lacks the factor 3, see docs/math.md). d = 3 C2 - C1^2.
/// 3 C2 - C1^2 >= C2 >= 0 holds in exact arithmetic (docs/math.md), so the reference's NaN branch
/// is a guard, not a code path real data takes: returns false there (the released code turns NaN).
TOPOFR_HD inline bool gum_uniform_density(double c1, double c2, gum_mode mode, double& c, double& d) {
  d = 3.0 * c2 - c1 * c1;
  if (mode == gum_mode::robust) {
    // Keeps (1 - pi) c > 0 so that every E-step denominator stays positive (d = inf gives c = 0).
    c = !(d >= 0.001) ? 0.001 : ::fmax(1.0 / (2.0 * ::sqrt(d) + 1e-10), DBL_MIN);  // !(>=) also catches NaN
    return true;
  }
  if (::fabs(d) < 0.001) {
    c = 0.001;
    return true;
  }
  if (!(d > 0.0) || !(d <= DBL_MAX)) return false;  // not > 0, or not finite
  c = 1.0 / (2.0 * ::sqrt(d) + 1e-10);
  return true;
}

/// The scalar rules of sklearn.preprocessing.scale as gum_standardize applies them to data x scaled by
/// 2^-e, e = ilogb(max |x|) (exact, so finite inputs of any magnitude never overflow); the thresholds are
/// on the true scale.
struct gum_scaling {
  int e;
  TOPOFR_HD explicit gum_scaling(double amax) : e(::ilogb(amax)) {}
  TOPOFR_HD double down(double v) const { return ::ldexp(v, -e); }
  /// The population std below 10 * DBL_EPSILON (sklearn's _handle_zeros_in_scale): centre only.
  TOPOFR_HD bool constant(double sd) const { return sd < ::ldexp(10.0 * DBL_EPSILON, -e); }
  /// The centred data's mean m not within 1e-8 of 0 (precision lost to a large offset): subtract it too.
  TOPOFR_HD bool recentre_centred(double m) const { return ::fabs(::ldexp(m, e)) > 1e-8; }
  TOPOFR_HD double scale(double v, double sd, bool constant) const { return constant ? ::ldexp(v, e) : v / sd; }
  /// After scaling: the mean not within 1e-8 of 0 is subtracted once more.
  TOPOFR_HD static bool recentre_scaled(double m) { return ::fabs(m) > 1e-8; }
};
TOPOFR_HD inline double gum_abs(double v) { return ::fabs(v); }

/// Standardises x in place as sklearn.preprocessing.scale does, step for step: subtract the mean; if the
/// centred data's mean is not within 1e-8 of 0 (precision lost to a large offset), subtract that too;
/// divide by the population std of the data as given, where a std below 10 * DBL_EPSILON
/// (sklearn's _handle_zeros_in_scale) leaves x centred and unscaled; re-centre again in the same way.
inline void gum_standardize(std::vector<double>& x) {
  const auto n = static_cast<double>(x.size());
  double amax = 0.0;
  for (double v : x) amax = ::fmax(amax, gum_abs(v));
  if (amax == 0.0) return;
  const gum_scaling sc(amax);
  const auto mean = [&] {
    double m = 0.0;
    for (double v : x) m += v;
    return m / n;
  };
  for (double& v : x) v = sc.down(v);
  const double m0 = mean();
  double var = 0.0;
  for (double& v : x) {
    v -= m0;
    var += v * v;
  }
  const double sd = ::sqrt(var / n);
  const bool constant = sc.constant(sd);
  const double m1 = mean();
  if (sc.recentre_centred(m1))
    for (double& v : x) v -= m1;
  for (double& v : x) v = sc.scale(v, sd, constant);
  const double m2 = mean();
  if (gum_scaling::recentre_scaled(m2))
    for (double& v : x) v -= m2;
}

/// The five sums of one EM pass: N1 = sum g, sum g eps^2, sum u eps, sum u eps^2, sum exp(k eps^2).
struct gum_sums {
  double v[5];
};

/// One E-step's parameters: phi_i = N(eps_i | 0, sigma + 1e-3); gamma_i = pi phi_i / (pi phi_i + (1 - pi) c),
/// 1 - gamma_i computed directly as (1 - pi) c / (...) so that the uniform-side moments suffer no
/// cancellation. With e_i = exp(k eps_i^2): g_i = gamma_i = a e_i / (a e_i + b), u_i = b / (a e_i + b).
/// The caller computes e_i (fastmath::exp on the CPU, the CUDA exp on the device).
struct gum_estep {
  double norm, k, a, b;
  TOPOFR_HD gum_estep(double pi, double sigma, double c) {
    const double var = sigma + 1e-3;
    norm = 1.0 / ::sqrt(6.283185307179586476925 * var);
    k = -0.5 / var;
    a = pi * norm;
    b = (1.0 - pi) * c;
  }
  /// Adds sample (eps, eps^2), e = exp(k eps^2), to the five sums.
  TOPOFR_HD void add(double eps, double eps2, double e, double& n1, double& sg2, double& su1, double& su2,
                     double& se) const {
    const double t = a * e, r = 1.0 / (t + b);
    const double g = t * r, u = b * r;
    n1 += g;
    sg2 += g * eps2;
    su1 += u * eps;
    su2 += u * eps2;
    se += e;
  }
  /// h_i = 1 - gamma_i.
  TOPOFR_HD double hard(double e) const { return b / (a * e + b); }
};

/// The EM state between iterations, and what an M-step concluded.
struct gum_state {
  double pi = 0.1, sigma = 0.0, c = 0.2, log_like0 = 0.0;
  double d = 0.0;  // the last 3 C2 - C1^2 (for the divergence message)
};
enum class gum_step { next, converged, empty_gaussian, diverged_n1, diverged_density };

/// The M-step (mu stays 0) from the pass's sums, then the released code's stopping rule (the updated pi
/// and c with this iteration's phi). robust: an empty Gaussian component (N1 underflowing) is the fixed
/// point gamma = 0 (pi = 0, reported as empty_gaussian); reference: N1 = 0 or a NaN density diverge.
TOPOFR_HD inline gum_step gum_m_step(const gum_sums& s, double nd, double norm, const gum_options& opt,
                                     gum_state& st) {
  const double n1 = s.v[0], sg2 = s.v[1], su1 = s.v[2], su2 = s.v[3], se = s.v[4];
  if (opt.mode == gum_mode::robust) {
    if (n1 < DBL_MIN) {
      st.pi = 0.0;
      return gum_step::empty_gaussian;
    }
  } else if (!(n1 > 0.0)) {
    return gum_step::diverged_n1;
  }
  st.sigma = sg2 / n1;
  st.pi = ::fmin(n1 / nd, 0.5);
  const double w = 1.0 / (n1 * (1.0 - st.pi + 1e-10));
  if (!gum_uniform_density(su1 * w, su2 * w, opt.mode, st.c, st.d)) return gum_step::diverged_density;
  const double log_like = st.pi * norm * se + nd * (1.0 - st.pi) * st.c;
  if (::fabs(log_like - st.log_like0) < opt.tol) return gum_step::converged;
  st.log_like0 = log_like;
  return gum_step::next;
}

/// The CPU's error for a diverged reference-mode step (the CUDA twin sets status_diverged instead).
[[noreturn]] inline void gum_diverged(const char* fn, int iteration, gum_step r, double d) {
  if (r == gum_step::diverged_n1)
    fail(fn, "entropy", "EM diverged at iteration ", iteration,
         ": the Gaussian responsibilities sum to N1 = 0 (the released code divides by it and turns NaN);"
         " use gum_mode::robust");
  fail(fn, "entropy", "EM diverged at iteration ", iteration, ": 3*C2 - C1^2 = ", d,
       " (the released code takes the square root of it and turns NaN); use gum_mode::robust");
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
  detail::gum_state st;
  st.sigma = sigma;
  detail::gum_estep est(st.pi, st.sigma, st.c);  // the last E-step's parameters: h_i = est.hard(e_i)
  gum_result res{st.pi, st.sigma, st.c, 0, false};
  bool empty_gaussian = false;
  for (int it = 0; it < opt.max_iter; ++it) {
    est = detail::gum_estep(st.pi, st.sigma, st.c);
    // Fused pass: E-step and every M-step sum. L lanes of fixed-order partial sums vectorise without
    // reassociation flags and give the same result whatever the SIMD width or thread count.
    constexpr index_t L = 8;
    double acc[5][L] = {};
    const auto step = [&](index_t i, index_t l) {
      est.add(eps[i], eps2[i], fastmath::exp(est.k * eps2[i]), acc[0][l], acc[1][l], acc[2][l], acc[3][l],
              acc[4][l]);
    };
    index_t i0 = 0;
    for (; i0 + L <= n; i0 += L)
      for (index_t l = 0; l < L; ++l) step(i0 + l, l);
    for (index_t l = 0; i0 + l < n; ++l) step(i0 + l, l);
    detail::gum_sums sum;
    for (int q = 0; q < 5; ++q) {
      sum.v[q] = 0.0;
      for (index_t l = 0; l < L; ++l) sum.v[q] += acc[q][l];
    }
    res.iterations = it + 1;
    const detail::gum_step r = detail::gum_m_step(sum, nd, est.norm, opt, st);
    if (r == detail::gum_step::empty_gaussian) {  // no Gaussian mass left: gamma = 0 is a fixed point
      empty_gaussian = true;
      res.converged = true;
      break;
    }
    if (r == detail::gum_step::diverged_n1 || r == detail::gum_step::diverged_density)
      detail::gum_diverged(fn, it, r, st.d);
    if (r == detail::gum_step::converged) {
      res.converged = true;
      break;
    }
  }
  res.pi = st.pi;
  res.sigma = st.sigma;
  res.c = st.c;
  for (index_t i = 0; i < n; ++i)  // 1 - gamma_i of the last E-step, by the same formula
    hard_posterior[i] = empty_gaussian ? T(1) : static_cast<T>(est.hard(fastmath::exp(est.k * eps2[i])));
  return res;
}

namespace detail {
/// sds_weights' host-side checks, shared by the CPU and CUDA overloads (the values of hard_posterior and
/// p_gt are checked where they are read). Returns n.
template <class InH, class InP, class T, class S>
index_t check_sds_args(const vector_view<InH, S>& hard_posterior, const vector_view<InP, S>& p_gt, double lambda,
                       bool focal, const vector_view<T, S>& omega, const char* fn) {
  static_assert(is_real_v<std::remove_const_t<InH>> && is_real_v<std::remove_const_t<InP>> && is_real_v<T>,
                "sds_weights: hard_posterior, p_gt and omega must be float or double");
  check_view(hard_posterior, fn, "hard_posterior");
  const index_t n = hard_posterior.size();
  check_size(omega, n, fn, "omega");
  require(std::isfinite(lambda), fn, "lambda", "must be finite, got ", lambda);
  if (focal || !p_gt.empty()) check_size(p_gt, n, fn, focal ? "p_gt (required when focal = true)" : "p_gt");
  return n;
}

/// One structure damage score (host-and-device): (1 + h)^lambda * (focal ? 1 - p_gt : 1), in double.
TOPOFR_HD inline double sds_weight(double h, double p_gt, double lambda, bool focal) {
  return ::pow(1.0 + h, lambda) * (focal ? 1.0 - p_gt : 1.0);
}
}  // namespace detail

/// Structure damage score omega_i = (1 + h_i)^lambda * (focal ? 1 - p_gt_i : 1), in double, rounded to T.
/// focal = false reproduces the released code, whose integer p_gt makes the focal term 1 (docs/fidelity.md);
/// p_gt may then be empty (when given it is still checked). omega may alias hard_posterior or p_gt.
template <class InH, class InP = InH, class T = std::remove_const_t<InH>>
void sds_weights(cpu_t, vector_view<InH> hard_posterior, vector_view<InP> p_gt, double lambda, bool focal,
                 vector_view<T> omega) {
  constexpr const char* fn = "sds_weights";
  const index_t n = detail::check_sds_args(hard_posterior, p_gt, lambda, focal, omega, fn);
  for (index_t i = 0; i < n; ++i) {
    const double h = static_cast<double>(hard_posterior[i]);
    detail::require(h >= 0.0 && h <= 1.0, fn, "hard_posterior", "must be in [0, 1], got ", h, " at index ", i);
  }
  for (index_t i = 0; i < p_gt.size(); ++i) {
    const double p = static_cast<double>(p_gt[i]);
    detail::require(p >= 0.0 && p <= 1.0, fn, "p_gt", "must be in [0, 1], got ", p, " at index ", i);
  }
  for (index_t i = 0; i < n; ++i)
    omega[i] = static_cast<T>(detail::sds_weight(static_cast<double>(hard_posterior[i]),
                                                 focal ? static_cast<double>(p_gt[i]) : 0.0, lambda, focal));
}

}  // namespace topofr
