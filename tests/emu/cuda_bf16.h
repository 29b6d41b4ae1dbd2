// tests/emu/cuda_bf16.h — shadow of CUDA's bfloat16 header for the SIMT emulator: __nv_bfloat16 with
// CUDA's conversions, rounded to nearest even and bit-exact with the device (subnormals kept; NaN becomes
// the canonical NaN 0x7fff, as the device's cvt.rn.bf16).
#pragma once

#include "cuda_runtime.h"

struct __nv_bfloat16_raw {
  unsigned short x;
};

struct __nv_bfloat16 {
  unsigned short __x;  // the upper 16 bits of a binary32

  __nv_bfloat16() = default;
  constexpr __nv_bfloat16(__nv_bfloat16_raw r) : __x(r.x) {}
  __nv_bfloat16(float f) : __x(::simt::fp::narrow(f, 7, -126, 8, 0x7fff)) {}
  __nv_bfloat16(double d) : __x(::simt::fp::narrow(d, 7, -126, 8, 0x7fff)) {}
  __nv_bfloat16(int i) : __nv_bfloat16(static_cast<double>(i)) {}
  __nv_bfloat16(unsigned int i) : __nv_bfloat16(static_cast<double>(i)) {}
  __nv_bfloat16(long long i) : __nv_bfloat16(static_cast<double>(i)) {}
  __nv_bfloat16(unsigned long long i) : __nv_bfloat16(static_cast<double>(i)) {}
  __nv_bfloat16(short i) : __nv_bfloat16(static_cast<double>(i)) {}
  __nv_bfloat16(unsigned short i) : __nv_bfloat16(static_cast<double>(i)) {}
  __nv_bfloat16& operator=(float f) { return *this = __nv_bfloat16(f); }
  __nv_bfloat16& operator=(double d) { return *this = __nv_bfloat16(d); }
  constexpr operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
  operator float() const { return ::simt::detail::bit_cast<float>(static_cast<unsigned>(__x) << 16); }
};
typedef __nv_bfloat16 nv_bfloat16;

struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
typedef __nv_bfloat162 nv_bfloat162;

inline float __bfloat162float(__nv_bfloat16 h) { return static_cast<float>(h); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __double2bfloat16(double d) { return __nv_bfloat16(d); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline short __bfloat16_as_short(__nv_bfloat16 h) { return static_cast<short>(h.__x); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16(__nv_bfloat16_raw{u}); }
inline __nv_bfloat16 __short_as_bfloat16(short s) {
  return __nv_bfloat16(__nv_bfloat16_raw{static_cast<unsigned short>(s)});
}
inline bool __hisnan(__nv_bfloat16 h) { return (h.__x & 0x7fffu) > 0x7f80u; }
inline int __hisinf(__nv_bfloat16 h) { return (h.__x & 0x7fffu) == 0x7f80u ? ((h.__x & 0x8000u) ? -1 : 1) : 0; }
inline __nv_bfloat16 __habs(__nv_bfloat16 h) {
  return __nv_bfloat16(__nv_bfloat16_raw{static_cast<unsigned short>(h.__x & 0x7fffu)});
}
inline __nv_bfloat16 __hneg(__nv_bfloat16 h) {
  return __nv_bfloat16(__nv_bfloat16_raw{static_cast<unsigned short>(h.__x ^ 0x8000u)});
}
inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16(static_cast<float>(a) + static_cast<float>(b)); }
inline __nv_bfloat16 __hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16(static_cast<float>(a) - static_cast<float>(b)); }
inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16(static_cast<float>(a) * static_cast<float>(b)); }
inline __nv_bfloat16 __hdiv(__nv_bfloat16 a, __nv_bfloat16 b) {
  return __nv_bfloat16(static_cast<double>(static_cast<float>(a)) / static_cast<float>(b));
}
inline __nv_bfloat16 operator+(__nv_bfloat16 a, __nv_bfloat16 b) { return __hadd(a, b); }
inline __nv_bfloat16 operator-(__nv_bfloat16 a, __nv_bfloat16 b) { return __hsub(a, b); }
inline __nv_bfloat16 operator*(__nv_bfloat16 a, __nv_bfloat16 b) { return __hmul(a, b); }
inline __nv_bfloat16 operator/(__nv_bfloat16 a, __nv_bfloat16 b) { return __hdiv(a, b); }
inline __nv_bfloat16 operator-(__nv_bfloat16 a) { return __hneg(a); }
inline bool operator==(__nv_bfloat16 a, __nv_bfloat16 b) { return static_cast<float>(a) == static_cast<float>(b); }
inline bool operator!=(__nv_bfloat16 a, __nv_bfloat16 b) { return static_cast<float>(a) != static_cast<float>(b); }
inline bool operator<(__nv_bfloat16 a, __nv_bfloat16 b) { return static_cast<float>(a) < static_cast<float>(b); }
inline bool operator>(__nv_bfloat16 a, __nv_bfloat16 b) { return static_cast<float>(a) > static_cast<float>(b); }
inline bool operator<=(__nv_bfloat16 a, __nv_bfloat16 b) { return static_cast<float>(a) <= static_cast<float>(b); }
inline bool operator>=(__nv_bfloat16 a, __nv_bfloat16 b) { return static_cast<float>(a) >= static_cast<float>(b); }

inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return __nv_bfloat162{__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return float2{static_cast<float>(h.x), static_cast<float>(h.y)}; }

inline __nv_bfloat16 __shfl_sync(unsigned mask, __nv_bfloat16 v, int src, int width = warpSize) {
  return ::simt::detail::shfl_t<__nv_bfloat16>(0, mask, v, src, width);
}
inline __nv_bfloat16 __shfl_up_sync(unsigned mask, __nv_bfloat16 v, unsigned d, int width = warpSize) {
  return ::simt::detail::shfl_t<__nv_bfloat16>(1, mask, v, static_cast<int>(d), width);
}
inline __nv_bfloat16 __shfl_down_sync(unsigned mask, __nv_bfloat16 v, unsigned d, int width = warpSize) {
  return ::simt::detail::shfl_t<__nv_bfloat16>(2, mask, v, static_cast<int>(d), width);
}
inline __nv_bfloat16 __shfl_xor_sync(unsigned mask, __nv_bfloat16 v, int m, int width = warpSize) {
  return ::simt::detail::shfl_t<__nv_bfloat16>(3, mask, v, m, width);
}
