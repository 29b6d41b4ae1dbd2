// topofr/core/fastmath.hpp — exp and log that the compiler can vectorise.
//
// Why hand-written: std::exp/std::log are calls into libm, and GCC only replaces them by vector versions
// (libmvec) under -ffast-math, which the library cannot impose on its users. These are the Cephes
// algorithms (range reduction + polynomial or rational approximation, S. L. Moshier), written branch-free
// — selects instead of ifs, integer bit manipulation instead of frexp/ldexp — so that a plain `for` loop
// calling them auto-vectorises at -O3 with any SIMD target. Accuracy: within ~1-2 ulp of the correctly
// rounded result over the whole domain (tests/test_arcface.cpp checks it against libm); special values
// behave as libm's: exp(-inf) = 0, exp(+inf) = +inf, log(0) = -inf, log(x < 0) = NaN, NaN propagates.
// Subnormal results of exp flush to 0 (exp(x) for x < log(smallest normal)).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

namespace topofr::fastmath {
namespace detail {

template <class To, class From>
inline To bit_cast(From f) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast: sizes differ");
  To t;
  std::memcpy(&t, &f, sizeof(To));
  return t;
}

// c ? a : b through bit masks. A ?: on floats becomes a branch in GIMPLE, and GCC then threads the
// constant arm through the rest of the function, leaving control flow that the vectoriser rejects.
inline float select(bool c, float a, float b) {
  const std::int32_t m = -static_cast<std::int32_t>(c);
  return bit_cast<float>((bit_cast<std::int32_t>(a) & m) | (bit_cast<std::int32_t>(b) & ~m));
}
inline double select(bool c, double a, double b) {
  const std::int64_t m = -static_cast<std::int64_t>(c);
  return bit_cast<double>((bit_cast<std::int64_t>(a) & m) | (bit_cast<std::int64_t>(b) & ~m));
}

// floor(t) for |t| < 2^31, as an integer conversion: std::floor does not vectorise without -ffast-math.
inline std::int32_t ifloor(float t) {
  const std::int32_t k = static_cast<std::int32_t>(t);  // truncation towards 0
  return k - (t < static_cast<float>(k) ? 1 : 0);
}
inline std::int64_t ifloor(double t) {
  const std::int64_t k = static_cast<std::int64_t>(t);
  return k - (t < static_cast<double>(k) ? 1 : 0);
}

// 2^n for an integral n, as the product of two normal powers so that n may span [-2 emax, 2 emax].
inline float pow2_product(float y, std::int32_t n) {
  const std::int32_t n1 = n >> 1, n2 = n - n1;
  return y * bit_cast<float>((n1 + 127) << 23) * bit_cast<float>((n2 + 127) << 23);
}
inline double pow2_product(double y, std::int64_t n) {
  const std::int64_t n1 = n >> 1, n2 = n - n1;
  return y * bit_cast<double>((n1 + 1023) << 52) * bit_cast<double>((n2 + 1023) << 52);
}

}  // namespace detail

/// e^x for a finite x, ~30% cheaper than exp: no NaN propagation, one power-of-two factor, so the result
/// is +inf from x > 127.5 ln 2 ~ 88.38 (float) / 1023.5 ln 2 ~ 709.4 (double) on, a little before the true
/// overflow (88.72 / 709.78). For arguments known to be finite and moderate, like the x <= 0 of a softmax.
inline float exp_finite(float x) {
  constexpr float lo = -87.3365447505f, hi = 88.7228391117f;
  const float xc = detail::select(x >= lo, detail::select(x <= hi, x, hi), lo);
  const std::int32_t k = detail::ifloor(xc * 1.44269504088896341f + 0.5f);
  const float n = static_cast<float>(k);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = (p * r * r + r + 1.0f) * detail::bit_cast<float>((k + 127) << 23);  // k = 128: inf
  return detail::select(x < lo, 0.0f, y);
}

inline double exp_finite(double x) {
  constexpr double lo = -708.396418532264106, hi = 709.782712893383973;
  const double xc = detail::select(x >= lo, detail::select(x <= hi, x, hi), lo);
  const std::int64_t k = detail::ifloor(xc * 1.4426950408889634073599 + 0.5);
  const double n = static_cast<double>(k);
  double r = xc - n * 6.93145751953125e-1;
  r = r - n * 1.42860682030941723212e-6;
  const double z = r * r;
  double p = 1.26177193074810590878e-4;
  p = p * z + 3.02994407707441961300e-2;
  p = p * z + 9.99999999999999999910e-1;
  p = p * r;
  double q = 3.00198505138664455042e-6;
  q = q * z + 2.52448340349684104192e-3;
  q = q * z + 2.27265548208155028766e-1;
  q = q * z + 2.00000000000000000009e0;
  const double y = (1.0 + 2.0 * (p / (q - p))) * detail::bit_cast<double>((k + 1023) << 52);  // k = 1024: inf
  return detail::select(x < lo, 0.0, y);
}

/// e^x (Cephes expf / exp). Branch-free; vectorises.
inline float exp(float x) {
  constexpr float lo = -87.3365447505f;  // log(smallest normal float): below it the result flushes to 0
  constexpr float hi = 88.7228391117f;   // log(largest float): above it the result is +inf
  const float xc = detail::select(x >= lo, detail::select(x <= hi, x, hi), lo);  // NaN -> lo: k finite
  const std::int32_t k = detail::ifloor(xc * 1.44269504088896341f + 0.5f);  // x = k ln2 + r, |r| <= ln2/2
  const float n = static_cast<float>(k);
  float r = xc - n * 0.693359375f;  // ln 2 in two parts: n * the first is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = detail::pow2_product(p * r * r + r + 1.0f, k);
  const float out = detail::select(x < lo, 0.0f, detail::select(x > hi, std::numeric_limits<float>::infinity(), y));
  return detail::select(x == x, out, x);  // NaN in, NaN out
}

inline double exp(double x) {
  constexpr double lo = -708.396418532264106;  // log(smallest normal double)
  constexpr double hi = 709.782712893383973;   // log(largest double)
  const double xc = detail::select(x >= lo, detail::select(x <= hi, x, hi), lo);
  const std::int64_t k = detail::ifloor(xc * 1.4426950408889634073599 + 0.5);
  const double n = static_cast<double>(k);
  double r = xc - n * 6.93145751953125e-1;
  r = r - n * 1.42860682030941723212e-6;
  const double z = r * r;
  double p = 1.26177193074810590878e-4;
  p = p * z + 3.02994407707441961300e-2;
  p = p * z + 9.99999999999999999910e-1;
  p = p * r;
  double q = 3.00198505138664455042e-6;
  q = q * z + 2.52448340349684104192e-3;
  q = q * z + 2.27265548208155028766e-1;
  q = q * z + 2.00000000000000000009e0;
  const double e = 1.0 + 2.0 * (p / (q - p));  // Pade form e^r = 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2))
  const double y = detail::pow2_product(e, k);
  const double out = detail::select(x < lo, 0.0, detail::select(x > hi, std::numeric_limits<double>::infinity(), y));
  return detail::select(x == x, out, x);
}

/// Natural logarithm of a positive, finite, normal float (no special cases: the caller guarantees the
/// domain; about 25% cheaper than log). Cephes logf.
inline float log_normal(float x) {
  const std::int32_t bits = detail::bit_cast<std::int32_t>(x);
  std::int32_t e = ((bits >> 23) & 0xff) - 126;
  float m = detail::bit_cast<float>((bits & ~0x7f800000) | 0x3f000000);  // x = m 2^e, m in [0.5, 1)
  const bool low = m < 0.707106781186547524f;                          // bring m to [sqrt(.5), sqrt(2))
  e = low ? e - 1 : e;
  m = m * detail::select(low, 2.0f, 1.0f) - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  const float fe = static_cast<float>(e);
  float y = p * m * z;
  y = y + fe * -2.12194440e-4f;
  y = y - 0.5f * z;
  return m + y + fe * 0.693359375f;
}

/// Natural logarithm (Cephes logf / log). Branch-free; vectorises. Subnormal inputs are handled exactly.
inline float log(float x) {
  constexpr float tiny = std::numeric_limits<float>::min(), inf = std::numeric_limits<float>::infinity();
  const bool sub = x < tiny;
  const float xs = x * detail::select(sub, 8388608.0f, 1.0f);  // x 2^23: subnormals become normal
  // 0, negative, inf and NaN give a finite garbage value here; the selects below replace it.
  float out = log_normal(xs) - detail::select(sub, 15.942385152878742f, 0.0f);  // - 23 ln 2
  out = detail::select(x > 0.0f, out, detail::select(x == 0.0f, -inf, std::numeric_limits<float>::quiet_NaN()));
  return detail::select(x == inf, inf, out);
}

/// Natural logarithm of a positive, finite, normal double (no special cases). Cephes log.
inline double log_normal(double x) {
  const std::int64_t bits = detail::bit_cast<std::int64_t>(x);
  std::int64_t e = ((bits >> 52) & 0x7ff) - 1022;
  double m = detail::bit_cast<double>((bits & ~0x7ff0000000000000LL) | 0x3fe0000000000000LL);
  const bool low = m < 0.70710678118654752440;
  e = low ? e - 1 : e;
  m = m * detail::select(low, 2.0, 1.0) - 1.0;
  const double z = m * m;
  double p = 1.01875663804580931796e-4;
  p = p * m + 4.97494994976747001425e-1;
  p = p * m + 4.70579119878881725854e0;
  p = p * m + 1.44989225341610930846e1;
  p = p * m + 1.79368678507819816313e1;
  p = p * m + 7.70838733755885391666e0;
  double q = m + 1.12873587189167450590e1;
  q = q * m + 4.52279145837532221105e1;
  q = q * m + 8.29875266912776603211e1;
  q = q * m + 7.11544750618563894466e1;
  q = q * m + 2.31251620126765340583e1;
  const double fe = static_cast<double>(e);
  double y = m * (z * p / q);  // log(1+m) = m - m^2/2 + m^3 P(m)/Q(m)
  y = y - fe * 2.121944400546905827679e-4;
  y = y - 0.5 * z;
  return m + y + fe * 0.693359375;
}

inline double log(double x) {
  constexpr double tiny = std::numeric_limits<double>::min(), inf = std::numeric_limits<double>::infinity();
  const bool sub = x < tiny;
  const double xs = x * detail::select(sub, 4503599627370496.0, 1.0);  // x 2^52
  double out = log_normal(xs) - detail::select(sub, 36.043653389117154, 0.0);  // - 52 ln 2
  out = detail::select(x > 0.0, out, detail::select(x == 0.0, -inf, std::numeric_limits<double>::quiet_NaN()));
  return detail::select(x == inf, inf, out);
}

}  // namespace topofr::fastmath
