// tests/emu/cuda_fp16.h — shadow of CUDA's binary16 header for the SIMT emulator: __half with CUDA's
// conversions, rounded to nearest even and bit-exact with the device (float -> half and double -> half
// round once; NaN becomes the canonical NaN 0x7fff, as the device's cvt.rn.f16). Arithmetic operators
// compute in float and round once, which is exact for + - * / of two halves.
#pragma once

#include "cuda_runtime.h"

struct __half_raw {
  unsigned short x;
};

struct __half {
  unsigned short __x;  // the IEEE binary16 bits

  __half() = default;
  constexpr __half(__half_raw r) : __x(r.x) {}
  __half(float f) : __x(::simt::fp::narrow(f, 10, -14, 5, 0x7fff)) {}
  __half(double d) : __x(::simt::fp::narrow(d, 10, -14, 5, 0x7fff)) {}
  __half(int i) : __half(static_cast<double>(i)) {}
  __half(unsigned int i) : __half(static_cast<double>(i)) {}
  __half(long long i) : __half(static_cast<double>(i)) {}
  __half(unsigned long long i) : __half(static_cast<double>(i)) {}
  __half(short i) : __half(static_cast<double>(i)) {}
  __half(unsigned short i) : __half(static_cast<double>(i)) {}
  __half& operator=(float f) { return *this = __half(f); }
  __half& operator=(double d) { return *this = __half(d); }
  constexpr operator __half_raw() const { return __half_raw{__x}; }
  operator float() const {
    const unsigned sign = static_cast<unsigned>(__x & 0x8000u) << 16;
    const unsigned e = (__x >> 10) & 0x1fu, m = __x & 0x3ffu;
    if (e == 0x1f) return ::simt::detail::bit_cast<float>(sign | 0x7f800000u | (m << 13));
    if (e == 0) {  // zero or subnormal: m * 2^-24, exact in float
      const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
      return sign ? -v : v;
    }
    return ::simt::detail::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
  }
};
typedef __half half;

struct __half2 {
  __half x, y;
};
typedef __half2 half2;

inline float __half2float(__half h) { return static_cast<float>(h); }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __double2half(double d) { return __half(d); }
inline __half __int2half_rn(int i) { return __half(i); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline short __half_as_short(__half h) { return static_cast<short>(h.__x); }
inline __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
inline __half __short_as_half(short s) { return __half(__half_raw{static_cast<unsigned short>(s)}); }
inline bool __hisnan(__half h) { return (h.__x & 0x7fffu) > 0x7c00u; }
inline int __hisinf(__half h) { return (h.__x & 0x7fffu) == 0x7c00u ? ((h.__x & 0x8000u) ? -1 : 1) : 0; }
inline __half __habs(__half h) { return __half(__half_raw{static_cast<unsigned short>(h.__x & 0x7fffu)}); }
inline __half __hneg(__half h) { return __half(__half_raw{static_cast<unsigned short>(h.__x ^ 0x8000u)}); }
inline __half __hadd(__half a, __half b) { return __half(static_cast<float>(a) + static_cast<float>(b)); }
inline __half __hsub(__half a, __half b) { return __half(static_cast<float>(a) - static_cast<float>(b)); }
inline __half __hmul(__half a, __half b) { return __half(static_cast<float>(a) * static_cast<float>(b)); }
inline __half __hdiv(__half a, __half b) { return __half(static_cast<float>(a) / static_cast<float>(b)); }
inline __half __hfma(__half a, __half b, __half c) {  // one rounding: the float product is exact
  return __half(static_cast<double>(static_cast<float>(a) * static_cast<float>(b)) + static_cast<float>(c));
}
inline __half operator+(__half a, __half b) { return __hadd(a, b); }
inline __half operator-(__half a, __half b) { return __hsub(a, b); }
inline __half operator*(__half a, __half b) { return __hmul(a, b); }
inline __half operator/(__half a, __half b) { return __hdiv(a, b); }
inline __half operator-(__half a) { return __hneg(a); }
inline __half& operator+=(__half& a, __half b) { return a = a + b; }
inline __half& operator-=(__half& a, __half b) { return a = a - b; }
inline __half& operator*=(__half& a, __half b) { return a = a * b; }
inline __half& operator/=(__half& a, __half b) { return a = a / b; }
inline bool operator==(__half a, __half b) { return static_cast<float>(a) == static_cast<float>(b); }
inline bool operator!=(__half a, __half b) { return static_cast<float>(a) != static_cast<float>(b); }
inline bool operator<(__half a, __half b) { return static_cast<float>(a) < static_cast<float>(b); }
inline bool operator>(__half a, __half b) { return static_cast<float>(a) > static_cast<float>(b); }
inline bool operator<=(__half a, __half b) { return static_cast<float>(a) <= static_cast<float>(b); }
inline bool operator>=(__half a, __half b) { return static_cast<float>(a) >= static_cast<float>(b); }

inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline __half2 __float2half2_rn(float a) { return __half2{__half(a), __half(a)}; }
inline float2 __half22float2(__half2 h) { return float2{static_cast<float>(h.x), static_cast<float>(h.y)}; }
inline float __low2float(__half2 h) { return static_cast<float>(h.x); }
inline float __high2float(__half2 h) { return static_cast<float>(h.y); }

inline __half __shfl_sync(unsigned mask, __half v, int src, int width = warpSize) {
  return ::simt::detail::shfl_t<__half>(0, mask, v, src, width);
}
inline __half __shfl_up_sync(unsigned mask, __half v, unsigned d, int width = warpSize) {
  return ::simt::detail::shfl_t<__half>(1, mask, v, static_cast<int>(d), width);
}
inline __half __shfl_down_sync(unsigned mask, __half v, unsigned d, int width = warpSize) {
  return ::simt::detail::shfl_t<__half>(2, mask, v, static_cast<int>(d), width);
}
inline __half __shfl_xor_sync(unsigned mask, __half v, int m, int width = warpSize) {
  return ::simt::detail::shfl_t<__half>(3, mask, v, m, width);
}
