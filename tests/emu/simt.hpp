// tests/emu/simt.hpp — a host emulator of the CUDA SIMT model: the device-side language (qualifiers,
// built-in indices, barriers, warp collectives, atomics, intrinsics) for g++. Included by the shadow CUDA
// headers in this folder (cuda_runtime.h, cuda_fp16.h, ...), never directly by library code.
//
// Execution model (implemented in simt.cpp): every CUDA thread of a block is a fiber on its own stack;
// blocks run one after another; inside a block a cooperative scheduler runs each ready fiber until it
// reaches a synchronisation point (a block barrier or a warp collective), in the order chosen by the
// environment variable SIMT_SCHEDULE=forward|reverse|random[:seed]. A collective completes when every
// participant has arrived; the last one to arrive computes the result for all of them, in a fixed
// left-to-right lane/thread order. Threads that can never arrive (exited lanes named in a mask, lanes
// waiting at different collectives, a barrier some thread skips) are reported and the process aborts.
//
// Deliberately a plain C++17 header: the synchronisation entry points live in simt.cpp (a separate
// translation unit), so that g++ cannot cache shared or global memory across a barrier call.
#pragma once

#if defined(__CUDACC__)
#error "tests/emu shadows the CUDA headers for g++ builds only; nvcc must use the real CUDA headers"
#endif

#ifndef TOPOFR_SIMT_EMULATOR
#define TOPOFR_SIMT_EMULATOR 1
#endif

#include <math.h>  // libstdc++'s wrapper: float overloads and ::isfinite & co. in the global namespace

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>  // before __noinline__ is defined: libstdc++ spells __attribute__((__noinline__))
#include <type_traits>
#include <utility>

// ---------------------------------------------------------------------------------------------------
// Qualifiers. Blocks run sequentially, so a function-local static is exactly one object per block:
// __shared__ is `static`. Unlike the device's, such shared memory is NOT undefined at the start of a
// block: it is zero in the first block and keeps the previous block's values (poisoning it would need
// its address range, and g++ ignores a section attribute on the statics of templates and inline
// functions). The dynamic shared memory IS poisoned at the start of every block. `extern __shared__`
// arrays are not supported: dynamic shared memory is simt::dynamic_shared_memory() (see
// topofr::cuda::detail::dynamic_shared).
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __shared__ static
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __device_builtin__
#define __cudart_builtin__
// __restrict__ is a g++ keyword already.

// ---------------------------------------------------------------------------------------------------
// Vector types (the subset CUDA's vector_types.h defines that device code commonly uses).
struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define SIMT_VECTOR_TYPES(T, N)                                                                            \
  struct N##1 {                                                                                            \
    T x;                                                                                                   \
  };                                                                                                       \
  struct alignas(2 * sizeof(T) < 16 ? 2 * sizeof(T) : 16) N##2 {                                           \
    T x, y;                                                                                                \
  };                                                                                                       \
  struct alignas(4 * sizeof(T) < 16 ? 4 * sizeof(T) : 16) N##4 {                                           \
    T x, y, z, w;                                                                                          \
  };                                                                                                       \
  inline N##1 make_##N##1(T x) { return N##1{x}; }                                                         \
  inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }                                                 \
  inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
#define SIMT_VECTOR3(T, N)                                                                                 \
  struct N##3 {                                                                                            \
    T x, y, z;                                                                                             \
  };                                                                                                       \
  inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }
SIMT_VECTOR_TYPES(signed char, char)
SIMT_VECTOR_TYPES(unsigned char, uchar)
SIMT_VECTOR_TYPES(short, short)
SIMT_VECTOR_TYPES(unsigned short, ushort)
SIMT_VECTOR_TYPES(int, int)
SIMT_VECTOR_TYPES(unsigned int, uint)
SIMT_VECTOR_TYPES(long long, longlong)
SIMT_VECTOR_TYPES(unsigned long long, ulonglong)
SIMT_VECTOR_TYPES(float, float)
SIMT_VECTOR_TYPES(double, double)
SIMT_VECTOR3(signed char, char)
SIMT_VECTOR3(unsigned char, uchar)
SIMT_VECTOR3(short, short)
SIMT_VECTOR3(unsigned short, ushort)
SIMT_VECTOR3(int, int)
SIMT_VECTOR3(long long, longlong)
SIMT_VECTOR3(unsigned long long, ulonglong)
SIMT_VECTOR3(float, float)
SIMT_VECTOR3(double, double)
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
#undef SIMT_VECTOR_TYPES
#undef SIMT_VECTOR3

// ---------------------------------------------------------------------------------------------------
namespace simt {

/// Sets the thread (and block) order of the following launches, as SIMT_SCHEDULE does: "forward",
/// "reverse", "random" or "random:<seed>". Returns false (and changes nothing) for anything else.
bool set_schedule(const char* spec);
/// The byte that fills dynamic shared memory at every block start and new/freed device memory (0xff,
/// or SIMT_POISON): NaN for floats and doubles, -1 for signed integers.
unsigned char poison();
/// The current order as set_schedule accepts it ("random:<seed>" names the seed it started from).
const char* schedule();

/// The current block's dynamic shared memory (the launch's smem bytes, 16-byte aligned, poisoned at the
/// start of every block). Used by topofr::cuda::detail::dynamic_shared<T>().
void* dynamic_shared_memory();

namespace detail {

struct thread_info {
  uint3 idx;         // threadIdx
  unsigned linear;   // x + y * blockDim.x + z * blockDim.x * blockDim.y
  unsigned lane;     // linear % 32
  unsigned warp;     // linear / 32
};
struct block_info {
  uint3 idx;  // blockIdx
  dim3 dim;   // blockDim
  dim3 grid;  // gridDim
  unsigned char* smem;
  std::size_t smem_bytes;
  unsigned threads;
};
extern thread_info* g_thread;  // the running fiber (null outside a kernel)
extern block_info g_block;

/// Prints "simt: <kernel> block (..) thread (..): <message>" and aborts (errors a GPU would turn into
/// undefined behaviour, a hang or a trap).
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// One participant of a collective: what it contributes and where its result goes.
struct slot {
  const void* in;
  void* out;
  const void* aux;
  long long a, b;
};
/// The participants as the completing thread sees them. Block collectives: s[0 .. n) in thread order.
/// Warp collectives: s[lane] for every lane set in mask (s points at lane 0 of the warp).
struct group_view {
  slot* s;
  unsigned n;
  unsigned mask;
};
using combine_fn = void (*)(const group_view&);

/// Tag at the start of every emulated cub TempStorage: lets the emulator detect a TempStorage reused
/// by a second collective without a __syncthreads() in between (a race with real CUB).
struct storage_tag {
  unsigned long long magic, block, epoch;
};

// Block barriers: kind 0 = __syncthreads, 1 = _count, 2 = _and, 3 = _or. Returns the count/and/or.
int block_barrier(int kind, int pred);
/// A block-wide collective (all threads of the block must arrive, none may have exited): fn runs once
/// when the last one arrives. tag: the TempStorage (may be null).
void block_collective(const char* name, combine_fn fn, storage_tag* tag, const slot& mine);
/// A warp collective over the lanes in mask (own lane included, none exited).
void warp_collective(const char* name, combine_fn fn, unsigned mask, const slot& mine);
/// Lanes of the current warp that exist and have not exited.
unsigned active_mask();
/// Gives other threads of the block a turn (used by __nanosleep so that spin-waits make progress).
void yield();

// Built-in warp operations (simt.cpp). mode: 0 idx, 1 up, 2 down, 3 xor.
void shfl(int mode, unsigned mask, const void* in, void* out, unsigned size, int arg, int width);
unsigned vote(int op, unsigned mask, int pred);  // op: 0 ballot, 1 any, 2 all
unsigned reduce32(int op, unsigned mask, unsigned value);  // op: 0 add, 1 min_s, 2 max_s, 3 min_u, 4 max_u, 5 and, 6 or, 7 xor
unsigned match(int op, unsigned mask, const void* value, unsigned size, int* pred);  // op: 0 any, 1 all

template <class To, class From>
inline To bit_cast(const From& f) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast: sizes differ");
  To t;
  std::memcpy(&t, &f, sizeof(To));
  return t;
}

}  // namespace detail

inline void* dynamic_shared_memory() { return detail::g_block.smem; }

}  // namespace simt

// ---------------------------------------------------------------------------------------------------
// Built-in variables: read-only, the running fiber's.
#define threadIdx (static_cast<const uint3&>(::simt::detail::g_thread->idx))
#define blockIdx (static_cast<const uint3&>(::simt::detail::g_block.idx))
#define blockDim (static_cast<const dim3&>(::simt::detail::g_block.dim))
#define gridDim (static_cast<const dim3&>(::simt::detail::g_block.grid))
constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------------
// Block barriers.
inline void __syncthreads() { ::simt::detail::block_barrier(0, 0); }
inline int __syncthreads_count(int pred) { return ::simt::detail::block_barrier(1, pred); }
inline int __syncthreads_and(int pred) { return ::simt::detail::block_barrier(2, pred); }
inline int __syncthreads_or(int pred) { return ::simt::detail::block_barrier(3, pred); }

// Warp collectives.
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::simt::detail::warp_collective("__syncwarp", nullptr, mask, ::simt::detail::slot{});
}
inline unsigned __activemask() { return ::simt::detail::active_mask(); }
inline unsigned __ballot_sync(unsigned mask, int pred) { return ::simt::detail::vote(0, mask, pred); }
inline int __any_sync(unsigned mask, int pred) { return static_cast<int>(::simt::detail::vote(1, mask, pred)); }
inline int __all_sync(unsigned mask, int pred) { return static_cast<int>(::simt::detail::vote(2, mask, pred)); }

namespace simt {
namespace detail {
template <class T>
inline T shfl_t(int mode, unsigned mask, T v, int arg, int width) {
  static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8),
                "simt: shuffles move 2-, 4- or 8-byte trivially copyable values");
  T out;
  shfl(mode, mask, &v, &out, sizeof(T), arg, width);
  return out;
}
}  // namespace detail
}  // namespace simt

// Shuffles: one overload per type, as CUDA (so that e.g. a bool argument promotes to int).
#define SIMT_SHFL_OVERLOADS(T)                                                                             \
  inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {                         \
    return ::simt::detail::shfl_t<T>(0, mask, var, src_lane, width);                                       \
  }                                                                                                        \
  inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {                    \
    return ::simt::detail::shfl_t<T>(1, mask, var, static_cast<int>(delta), width);                        \
  }                                                                                                        \
  inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {                  \
    return ::simt::detail::shfl_t<T>(2, mask, var, static_cast<int>(delta), width);                        \
  }                                                                                                        \
  inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {                    \
    return ::simt::detail::shfl_t<T>(3, mask, var, lane_mask, width);                                      \
  }                                                                                                        \
  inline unsigned __match_any_sync(unsigned mask, T value) {                                               \
    return ::simt::detail::match(0, mask, &value, sizeof(T), nullptr);                                     \
  }                                                                                                        \
  inline unsigned __match_all_sync(unsigned mask, T value, int* pred) {                                    \
    return ::simt::detail::match(1, mask, &value, sizeof(T), pred);                                        \
  }
SIMT_SHFL_OVERLOADS(int)
SIMT_SHFL_OVERLOADS(unsigned int)
SIMT_SHFL_OVERLOADS(long)
SIMT_SHFL_OVERLOADS(unsigned long)
SIMT_SHFL_OVERLOADS(long long)
SIMT_SHFL_OVERLOADS(unsigned long long)
SIMT_SHFL_OVERLOADS(float)
SIMT_SHFL_OVERLOADS(double)

// Warp reductions (sm_80): 32-bit integers.
inline unsigned __reduce_add_sync(unsigned mask, unsigned v) { return ::simt::detail::reduce32(0, mask, v); }
inline int __reduce_add_sync(unsigned mask, int v) {
  return static_cast<int>(::simt::detail::reduce32(0, mask, static_cast<unsigned>(v)));
}
inline int __reduce_min_sync(unsigned mask, int v) {
  return static_cast<int>(::simt::detail::reduce32(1, mask, static_cast<unsigned>(v)));
}
inline int __reduce_max_sync(unsigned mask, int v) {
  return static_cast<int>(::simt::detail::reduce32(2, mask, static_cast<unsigned>(v)));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) { return ::simt::detail::reduce32(3, mask, v); }
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) { return ::simt::detail::reduce32(4, mask, v); }
inline unsigned __reduce_and_sync(unsigned mask, unsigned v) { return ::simt::detail::reduce32(5, mask, v); }
inline unsigned __reduce_or_sync(unsigned mask, unsigned v) { return ::simt::detail::reduce32(6, mask, v); }
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v) { return ::simt::detail::reduce32(7, mask, v); }

// ---------------------------------------------------------------------------------------------------
// Memory fences, cache-hinted loads and stores, timers. One OS thread runs every fiber and a fiber only
// switches at a synchronisation point: fences are compiler barriers, hinted accesses plain accesses.
inline void __threadfence() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

long long clock64();                 // nanoseconds of a steady clock
unsigned long long __globaltimer();  // nanoseconds of a steady clock
/// Does not sleep: gives the other threads of the block a turn, so that a spin-wait on a flag another
/// thread of the same block sets can make progress (blocks run one after another: a spin-wait on
/// another BLOCK never ends).
inline void __nanosleep(unsigned) { ::simt::detail::yield(); }
[[noreturn]] inline void __trap() { ::simt::detail::fatal("__trap() called"); }
[[noreturn]] inline void __brkpt() { ::simt::detail::fatal("__brkpt() called"); }

// ---------------------------------------------------------------------------------------------------
// Atomics: fibers never run concurrently and never switch inside an atomic, so a plain read-modify-
// write is atomic. Overloads as CUDA's (sm_60+).
#define SIMT_ATOMIC_RMW(name, T, expr)                                                                     \
  inline T name(T* address, T val) {                                                                       \
    const T old = *address;                                                                                \
    *address = (expr);                                                                                     \
    return old;                                                                                            \
  }                                                                                                        \
  inline T name##_block(T* address, T val) { return name(address, val); }                                 \
  inline T name##_system(T* address, T val) { return name(address, val); }
SIMT_ATOMIC_RMW(atomicAdd, int, old + val)
SIMT_ATOMIC_RMW(atomicAdd, unsigned int, old + val)
SIMT_ATOMIC_RMW(atomicAdd, unsigned long long, old + val)
SIMT_ATOMIC_RMW(atomicAdd, float, old + val)
SIMT_ATOMIC_RMW(atomicAdd, double, old + val)
SIMT_ATOMIC_RMW(atomicSub, int, old - val)
SIMT_ATOMIC_RMW(atomicSub, unsigned int, old - val)
SIMT_ATOMIC_RMW(atomicExch, int, val)
SIMT_ATOMIC_RMW(atomicExch, unsigned int, val)
SIMT_ATOMIC_RMW(atomicExch, unsigned long long, val)
SIMT_ATOMIC_RMW(atomicExch, float, val)
SIMT_ATOMIC_RMW(atomicMin, int, val < old ? val : old)
SIMT_ATOMIC_RMW(atomicMin, unsigned int, val < old ? val : old)
SIMT_ATOMIC_RMW(atomicMin, long long, val < old ? val : old)
SIMT_ATOMIC_RMW(atomicMin, unsigned long long, val < old ? val : old)
SIMT_ATOMIC_RMW(atomicMax, int, val > old ? val : old)
SIMT_ATOMIC_RMW(atomicMax, unsigned int, val > old ? val : old)
SIMT_ATOMIC_RMW(atomicMax, long long, val > old ? val : old)
SIMT_ATOMIC_RMW(atomicMax, unsigned long long, val > old ? val : old)
SIMT_ATOMIC_RMW(atomicAnd, int, old & val)
SIMT_ATOMIC_RMW(atomicAnd, unsigned int, old & val)
SIMT_ATOMIC_RMW(atomicAnd, unsigned long long, old & val)
SIMT_ATOMIC_RMW(atomicOr, int, old | val)
SIMT_ATOMIC_RMW(atomicOr, unsigned int, old | val)
SIMT_ATOMIC_RMW(atomicOr, unsigned long long, old | val)
SIMT_ATOMIC_RMW(atomicXor, int, old ^ val)
SIMT_ATOMIC_RMW(atomicXor, unsigned int, old ^ val)
SIMT_ATOMIC_RMW(atomicXor, unsigned long long, old ^ val)
// CUDA's wrap-around counters: inc: old >= val ? 0 : old + 1; dec: (old == 0 || old > val) ? val : old - 1.
SIMT_ATOMIC_RMW(atomicInc, unsigned int, old >= val ? 0u : old + 1u)
SIMT_ATOMIC_RMW(atomicDec, unsigned int, (old == 0u || old > val) ? val : old - 1u)
#undef SIMT_ATOMIC_RMW
#define SIMT_ATOMIC_CAS(T)                                                                                 \
  inline T atomicCAS(T* address, T compare, T val) {                                                       \
    const T old = *address;                                                                                \
    if (old == compare) *address = val;                                                                    \
    return old;                                                                                            \
  }                                                                                                        \
  inline T atomicCAS_block(T* a, T c, T v) { return atomicCAS(a, c, v); }                                 \
  inline T atomicCAS_system(T* a, T c, T v) { return atomicCAS(a, c, v); }
SIMT_ATOMIC_CAS(int)
SIMT_ATOMIC_CAS(unsigned int)
SIMT_ATOMIC_CAS(unsigned long long)
SIMT_ATOMIC_CAS(unsigned short)
#undef SIMT_ATOMIC_CAS

// ---------------------------------------------------------------------------------------------------
// Integer intrinsics (device semantics: __clz(0) = 32, __ffs(0) = 0).
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline unsigned long long __brevll(unsigned long long x) {
  return (static_cast<unsigned long long>(__brev(static_cast<unsigned>(x))) << 32) | __brev(static_cast<unsigned>(x >> 32));
}
inline int __mulhi(int x, int y) { return static_cast<int>((static_cast<long long>(x) * y) >> 32); }
inline unsigned __umulhi(unsigned x, unsigned y) {
  return static_cast<unsigned>((static_cast<unsigned long long>(x) * y) >> 32);
}
inline long long __mul64hi(long long x, long long y) {
  return static_cast<long long>((static_cast<__int128>(x) * y) >> 64);
}
inline unsigned long long __umul64hi(unsigned long long x, unsigned long long y) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(x) * y) >> 64);
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>((v << (shift & 31)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>(v >> (shift & 31));
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  const unsigned long long v = (static_cast<unsigned long long>(y) << 32) | x;
  unsigned r = 0;
  for (int k = 0; k < 4; ++k) r |= static_cast<unsigned>((v >> (8 * ((s >> (4 * k)) & 7))) & 0xff) << (8 * k);
  return r;
}

// Reinterpretations.
inline unsigned int __float_as_uint(float x) { return ::simt::detail::bit_cast<unsigned int>(x); }
inline int __float_as_int(float x) { return ::simt::detail::bit_cast<int>(x); }
inline float __uint_as_float(unsigned int x) { return ::simt::detail::bit_cast<float>(x); }
inline float __int_as_float(int x) { return ::simt::detail::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return ::simt::detail::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return ::simt::detail::bit_cast<double>(x); }
inline int __double2hiint(double x) { return static_cast<int>(static_cast<unsigned long long>(__double_as_longlong(x)) >> 32); }
inline int __double2loint(double x) { return static_cast<int>(static_cast<unsigned long long>(__double_as_longlong(x)) & 0xffffffffu); }
inline double __hiloint2double(int hi, int lo) {
  return __longlong_as_double(static_cast<long long>((static_cast<unsigned long long>(static_cast<unsigned>(hi)) << 32) |
                                                     static_cast<unsigned>(lo)));
}

// ---------------------------------------------------------------------------------------------------
// Floating-point intrinsics. The device's fast approximations (__expf, __fdividef, ...) are computed with
// the correctly rounded host functions: results can differ from a GPU in the last bits (documented).
inline float __fdividef(float x, float y) { return x / y; }
inline float __expf(float x) { return ::expf(x); }
inline float __exp10f(float x) { return ::exp10f(x); }
inline float __logf(float x) { return ::logf(x); }
inline float __log2f(float x) { return ::log2f(x); }
inline float __log10f(float x) { return ::log10f(x); }
inline float __powf(float x, float y) { return ::powf(x, y); }
inline float __sinf(float x) { return ::sinf(x); }
inline float __cosf(float x) { return ::cosf(x); }
inline float __tanf(float x) { return ::tanf(x); }
inline void __sincosf(float x, float* s, float* c) { *s = ::sinf(x), *c = ::cosf(x); }
inline float rsqrtf(float x) { return 1.0f / ::sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / ::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / ::sqrtf(x); }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }  // NaN -> 0
// Round-to-nearest arithmetic is the host's default rounding: exactly CUDA's _rn intrinsics.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return ::sqrtf(a); }
inline float __fmaf_rn(float a, float b, float c) { return ::fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __drcp_rn(double a) { return 1.0 / a; }
inline double __dsqrt_rn(double a) { return ::sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return ::fma(a, b, c); }

// Float -> integer conversions as the device's cvt: saturating, NaN -> 0.
namespace simt {
namespace detail {
template <class I, class F>
inline I cvt_sat(F r) {
  if (r != r) return 0;
  if (r <= static_cast<F>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (r >= static_cast<F>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(r);
}
}  // namespace detail
}  // namespace simt
inline int __float2int_rn(float x) { return ::simt::detail::cvt_sat<int>(::nearbyintf(x)); }
inline int __float2int_rz(float x) { return ::simt::detail::cvt_sat<int>(::truncf(x)); }
inline int __float2int_rd(float x) { return ::simt::detail::cvt_sat<int>(::floorf(x)); }
inline int __float2int_ru(float x) { return ::simt::detail::cvt_sat<int>(::ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return ::simt::detail::cvt_sat<unsigned>(::nearbyintf(x)); }
inline unsigned __float2uint_rz(float x) { return ::simt::detail::cvt_sat<unsigned>(::truncf(x)); }
inline long long __float2ll_rn(float x) { return ::simt::detail::cvt_sat<long long>(::nearbyintf(x)); }
inline long long __float2ll_rz(float x) { return ::simt::detail::cvt_sat<long long>(::truncf(x)); }
inline int __double2int_rn(double x) { return ::simt::detail::cvt_sat<int>(::nearbyint(x)); }
inline int __double2int_rz(double x) { return ::simt::detail::cvt_sat<int>(::trunc(x)); }
inline long long __double2ll_rn(double x) { return ::simt::detail::cvt_sat<long long>(::nearbyint(x)); }
inline long long __double2ll_rz(double x) { return ::simt::detail::cvt_sat<long long>(::trunc(x)); }
inline unsigned long long __double2ull_rn(double x) { return ::simt::detail::cvt_sat<unsigned long long>(::nearbyint(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline double __int2double_rn(int x) { return static_cast<double>(x); }
inline double __ll2double_rn(long long x) { return static_cast<double>(x); }
inline float __double2float_rn(double x) { return static_cast<float>(x); }

// Device min/max overloads (CUDA declares these in the global namespace).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline unsigned int min(int a, unsigned int b) { return min(static_cast<unsigned>(a), b); }
inline unsigned int max(int a, unsigned int b) { return max(static_cast<unsigned>(a), b); }
inline unsigned int min(unsigned int a, int b) { return min(a, static_cast<unsigned>(b)); }
inline unsigned int max(unsigned int a, int b) { return max(a, static_cast<unsigned>(b)); }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline unsigned long long min(long long a, unsigned long long b) { return min(static_cast<unsigned long long>(a), b); }
inline unsigned long long max(long long a, unsigned long long b) { return max(static_cast<unsigned long long>(a), b); }
inline unsigned long long min(unsigned long long a, long long b) { return min(a, static_cast<unsigned long long>(b)); }
inline unsigned long long max(unsigned long long a, long long b) { return max(a, static_cast<unsigned long long>(b)); }
inline float min(float a, float b) { return ::fminf(a, b); }
inline float max(float a, float b) { return ::fmaxf(a, b); }
inline double min(double a, double b) { return ::fmin(a, b); }
inline double max(double a, double b) { return ::fmax(a, b); }
inline double min(float a, double b) { return ::fmin(a, b); }
inline double max(float a, double b) { return ::fmax(a, b); }
inline double min(double a, float b) { return ::fmin(a, b); }
inline double max(double a, float b) { return ::fmax(a, b); }
inline unsigned int umin(unsigned int a, unsigned int b) { return min(a, b); }
inline unsigned int umax(unsigned int a, unsigned int b) { return max(a, b); }
inline long long llmin(long long a, long long b) { return min(a, b); }
inline long long llmax(long long a, long long b) { return max(a, b); }
inline unsigned long long ullmin(unsigned long long a, unsigned long long b) { return min(a, b); }
inline unsigned long long ullmax(unsigned long long a, unsigned long long b) { return max(a, b); }

// ---------------------------------------------------------------------------------------------------
// Binary16 / bfloat16 rounding shared by cuda_fp16.h and cuda_bf16.h.
namespace simt {
namespace fp {
/// Rounds the positive value m * 2^e (m != 0) to a binary format with p stored mantissa bits, minimum
/// normal exponent emin and an ebits-wide exponent field, to nearest, ties to even; returns the
/// magnitude bits (exponent field | mantissa), infinity on overflow.
inline std::uint32_t round_rne(std::uint64_t m, int e, int p, int emin, int ebits) {
  const int lz = __builtin_clzll(m);
  m <<= lz;
  e -= lz;                                  // value = m * 2^e with m in [2^63, 2^64)
  const int top = e + 63;                   // value in [2^top, 2^(top + 1))
  const int q = (top < emin ? emin : top) - p;  // exponent of the result's unit in the last place
  const int s = q - e;                      // bits dropped (>= 63 - p > 0 for the sources used here)
  if (s > 64) return 0;                     // below half the smallest subnormal
  std::uint64_t kept, rem, half;
  if (s == 64) {
    kept = 0, rem = m, half = std::uint64_t(1) << 63;
  } else {
    kept = m >> s, rem = m & ((std::uint64_t(1) << s) - 1), half = std::uint64_t(1) << (s - 1);
  }
  if (rem > half || (rem == half && (kept & 1))) ++kept;
  const std::uint64_t inf_field = (std::uint64_t(1) << ebits) - 1;
  // Subnormal: kept < 2^p (2^p after rounding up encodes the smallest normal). Normal: kept in
  // [2^p, 2^(p+1)]; adding it on top of the exponent field carries into the exponent when it reaches 2^(p+1).
  const std::uint64_t bits =
      top < emin ? kept : ((std::uint64_t(top - emin + 1) << p) + (kept - (std::uint64_t(1) << p)));
  if ((bits >> p) >= inf_field) return static_cast<std::uint32_t>(inf_field << p);
  return static_cast<std::uint32_t>(bits);
}
/// float -> a narrower format (sign handled here; NaN -> the canonical NaN nan_bits, as the device's cvt).
inline std::uint16_t narrow(float x, int p, int emin, int ebits, std::uint16_t nan_bits) {
  const std::uint32_t f = ::simt::detail::bit_cast<std::uint32_t>(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((f >> 16) & 0x8000u);
  const std::uint32_t a = f & 0x7fffffffu;
  const std::uint16_t inf = static_cast<std::uint16_t>(((1u << ebits) - 1) << p);
  if (a > 0x7f800000u) return nan_bits;
  if (a == 0x7f800000u) return sign | inf;
  if (a == 0) return sign;
  const std::uint32_t ef = a >> 23, mant = a & 0x7fffffu;
  const std::uint64_t m = ef ? (mant | 0x800000u) : mant;
  const int e = ef ? static_cast<int>(ef) - 150 : -149;
  return static_cast<std::uint16_t>(sign | round_rne(m, e, p, emin, ebits));
}
inline std::uint16_t narrow(double x, int p, int emin, int ebits, std::uint16_t nan_bits) {
  const std::uint64_t f = ::simt::detail::bit_cast<std::uint64_t>(x);
  const std::uint16_t sign = static_cast<std::uint16_t>((f >> 48) & 0x8000u);
  const std::uint64_t a = f & 0x7fffffffffffffffull;
  const std::uint16_t inf = static_cast<std::uint16_t>(((1u << ebits) - 1) << p);
  if (a > 0x7ff0000000000000ull) return nan_bits;
  if (a == 0x7ff0000000000000ull) return sign | inf;
  if (a == 0) return sign;
  const std::uint64_t ef = a >> 52, mant = a & 0xfffffffffffffull;
  const std::uint64_t m = ef ? (mant | (std::uint64_t(1) << 52)) : mant;
  const int e = ef ? static_cast<int>(ef) - 1075 : -1074;
  return static_cast<std::uint16_t>(sign | round_rne(m, e, p, emin, ebits));
}
}  // namespace fp
}  // namespace simt
