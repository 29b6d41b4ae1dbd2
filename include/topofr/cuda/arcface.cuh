// topofr/cuda/arcface.cuh — CUDA twins of topofr/arcface.hpp: combined-margin logits (elementwise kernels)
// and the fused two-pass margin-softmax cross-entropy head. Same signatures with `const cuda::context&`
// first, same numbers (docs/cuda.md).
//
// Hand-written (not cuBLAS/CUB device-wide): the head is memory-bound, so each pass reads the cosines once
// and does all of its per-row work on that read. Pass 1 is one block per row: an online (max, sum, sum e d)
// sweep gives the log-sum-exp and, for eps = 0, the entropy in the same read; eps > 0 needs one more sweep
// over the row (from L2, see margin_ce_forward_kernel). Per-thread partial sums are double and reduced by
// cub::BlockReduce in a fixed order: results are deterministic run to run.
// Inputs may be float, double, __half or __nv_bfloat16; the arithmetic type is float for the 16-bit types.
// Values only the device sees (labels other than -1, -100 = ignore_label and [0, C), cosines outside
// [-1, 1] or NaN, non-finite lse or weights) set ctx.status bits; the outputs of such a row are then
// unspecified (NaN where possible).
//
// Memory access. Every kernel moves the cosines in 16-byte vectors (float4, double2, 8 x half/bfloat16),
// issues several independent vector loads per thread before using any, and handles any leading dimension
// and row start: per row, a scalar prefix up to the first 16-byte boundary, the vector body, a scalar tail
// (row_split). The elementwise kernels store in 16-byte vectors too when the output row (and grad_logits)
// is 16-byte aligned at the same column as the cosine row ("co-aligned"); otherwise that row takes a plain
// scalar path (correct, slower). Gradient/logit stores are streaming (st.global.cs, L2 evict-first): they
// are not read back by this head, and must not push the cosines out of L2 (see below).
//
// Expected time on an H100 SXM (HBM3 3.35 TB/s, 50 MB L2, 132 SMs) at N = 128, C = 85,742, float —
// ESTIMATED, NOT MEASURED (docs/cuda.md, "ArcFace head: memory access and expected time"):
//   bytes: cosines 43.9 MB; HBM floor of forward + backward = read them once + write the gradient once
//   = 87.8 MB = 26.2 us at 3.35 TB/s; a streaming copy achieves ~2.6-3.0 TB/s (2.9 taken below).
//   forward, eps = 0:   43.9 MB from HBM = 15 us, + ~2 us launch and block reductions            ~17 us
//   forward, eps > 0:   + the second sweep, from L2: ~16 instructions per element (log skipped),
//                       85,742 elements per SM ~ 5 us, ~44 MB of L2 reads ~ 5 us, overlapping   ~23 us
//   backward:           43.9 MB of gradient to HBM, the cosines re-read from L2 (ew_threads)   ~17 us
//                       (cosines from HBM again: 87.8 MB                                        ~32 us)
//   forward + backward: ~34 us (eps = 0) / ~40 us (eps > 0) = 1.3x / 1.5x the floor (77% / 66% of
//                       HBM peak) IF the backward's cosine reads hit L2; if not ~49 / ~55 us (1.9x / 2.1x).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <math_constants.h>

#include <cub/block/block_reduce.cuh>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../arcface.hpp"
#include "context.cuh"

namespace topofr {
namespace cuda {
namespace detail {

/// The arithmetic type of an input element type: float for float and the 16-bit types, double for double.
template <class In> struct acc_type { using type = float; };
template <> struct acc_type<double> { using type = double; };
template <class In> using acc_t = typename acc_type<std::remove_const_t<In>>::type;

template <class In>
constexpr bool is_cos_input_v = topofr::detail::is_real_v<std::remove_const_t<In>> ||
                                std::is_same<std::remove_const_t<In>, __half>::value ||
                                std::is_same<std::remove_const_t<In>, __nv_bfloat16>::value;

__device__ inline float to_acc(float v) { return v; }
__device__ inline double to_acc(double v) { return v; }
__device__ inline float to_acc(__half v) { return __half2float(v); }
__device__ inline float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class In> __device__ inline acc_t<In> load(const In* p) { return to_acc(*p); }

// ---- 16-byte vectors -------------------------------------------------------------------------------

/// Elements of In in one 16-byte vector: 4 float, 2 double, 8 half or bfloat16.
template <class In>
constexpr int vec_width = static_cast<int>(16 / sizeof(std::remove_const_t<In>));

using raw16 = uint4;  // 16 raw bytes: one 128-bit load or store

__device__ inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

/// One 128-bit load from a 16-byte aligned address.
__device__ inline raw16 load16(const void* p) {
#if defined(TOPOFR_SIMT_EMULATOR)
  if (!aligned16(p)) __trap();  // a GPU faults on a misaligned vector access: so does the emulated run
  raw16 q;
  std::memcpy(&q, p, sizeof q);
  return q;
#else
  return *static_cast<const raw16*>(p);
#endif
}

/// One 128-bit streaming store (st.global.cs: L2 evict-first) to a 16-byte aligned address.
__device__ inline void store16_streaming(void* p, const raw16& q) {
#if defined(TOPOFR_SIMT_EMULATOR)
  if (!aligned16(p)) __trap();
  std::memcpy(p, &q, sizeof q);
#else
  __stcs(static_cast<raw16*>(p), q);
#endif
}

/// A scalar streaming store (the scalar prefix/tail and the non-co-aligned rows).
template <class T>
__device__ inline void store_streaming(T* p, T v) {
  __stcs(p, v);
}

/// The vec_width<In> values of a loaded vector, in the arithmetic type (register moves and conversions).
template <class In>
__device__ inline void unpack(const raw16& q, acc_t<In> (&v)[vec_width<In>]) {
  using V = std::remove_const_t<In>;
  V e[vec_width<In>];
  std::memcpy(static_cast<void*>(e), &q, sizeof q);
#pragma unroll
  for (int k = 0; k < vec_width<In>; ++k) v[k] = to_acc(e[k]);
}

/// W values of T (float or double) at a 16-byte aligned p: W * sizeof(T) / 16 vectors (1, or 2 when the
/// cosines are 16-bit and T is float).
template <int W, class T>
__device__ inline void load_vec(const T* p, T (&v)[W]) {
  static_assert(W * sizeof(T) % 16 == 0, "whole 16-byte vectors");
  constexpr int per = static_cast<int>(16 / sizeof(T));
#pragma unroll
  for (int q = 0; q < W / per; ++q) {
    const raw16 r = load16(p + q * per);
    std::memcpy(static_cast<void*>(v + q * per), &r, sizeof r);
  }
}
template <int W, class T>
__device__ inline void store_vec(T* p, const T (&v)[W]) {
  static_assert(W * sizeof(T) % 16 == 0, "whole 16-byte vectors");
  constexpr int per = static_cast<int>(16 / sizeof(T));
#pragma unroll
  for (int q = 0; q < W / per; ++q) {
    raw16 r;
    std::memcpy(&r, static_cast<const void*>(v + q * per), sizeof r);
    store16_streaming(p + q * per, r);
  }
}

/// A row of c elements of In split at 16-byte boundaries: columns [0, pre) scalar, then nv vectors of
/// vec_width<In> elements, then tail scalar columns. pre < vec_width (pre = c, nv = 0 when the row ends
/// before the first boundary, or when the pointer is not even aligned to its element size).
struct row_split {
  index_t pre, nv, tail;
  __device__ index_t scalars() const { return pre + tail; }
  /// The column of the k-th scalar (k < scalars()): the prefix, then the tail.
  __device__ index_t scalar_col(index_t k, int width) const { return k < pre ? k : pre + nv * width + (k - pre); }
};

template <class In>
__device__ inline row_split split_row(const In* p, index_t c) {
  constexpr index_t W = vec_width<In>;
  constexpr unsigned size = static_cast<unsigned>(sizeof(In));
  const unsigned mis = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(p) & 15u);
  if (mis % size != 0) return {c, 0, 0};
  index_t pre = mis ? static_cast<index_t>((16u - mis) / size) : 0;
  if (pre > c) pre = c;
  const index_t nv = (c - pre) / W;
  return {pre, nv, c - pre - nv * W};
}

// ---- margin ----------------------------------------------------------------------------------------

/// sqrt(machine epsilon) of the INPUT type: the smallest sin(theta) of a representable cos(theta) < 1.
template <class In> inline double sin_floor_of() {
  using V = std::remove_const_t<In>;
  if (std::is_same<V, __half>::value) return std::sqrt(0.0009765625);      // 2^-10
  if (std::is_same<V, __nv_bfloat16>::value) return std::sqrt(0.0078125);  // 2^-7
  return std::sqrt(static_cast<double>(std::numeric_limits<acc_t<In>>::epsilon()));
}

/// The CPU's margin function (topofr::detail::arc::margin_fn, host-and-device) with the sin floor of the
/// input type: the kernels evaluate the same f and df as the CPU head.
struct dmargin {
  topofr::detail::arc::margin_fn fn;
  double s, floor;
  static dmargin from(const topofr::detail::arc::margin_fn& f, double floor) { return {f, f.s, floor}; }
  __device__ double f(double x) const { return fn.f(x); }
  __device__ double df(double x) const { return fn.df(x, floor); }
};

/// What label_at returns for an invalid label: below every accepted value (-100 = ignore_label, -1, the
/// classes), so that `y < -1` means "no gradient", and far enough from INT64_MIN that y - j (column j) in the
/// kernels cannot overflow. (A label equal to it is itself invalid and also maps to it.)
constexpr index_t invalid_label = -(index_t(1) << 31);

/// Reads labels[i]: -1 (target on another shard), ignore_label (-100) or a class in [0, c); reports
/// status_label_out_of_range and returns invalid_label for any other value.
template <class L>
__device__ inline index_t label_at(const L* labels, index_t i, index_t c, int* status) {
  const index_t y = static_cast<index_t>(labels[i]);
  if (!topofr::detail::arc::label_ok(y, c)) {
    topofr::cuda::detail::report(status, status_label_out_of_range);
    return invalid_label;
  }
  return y;
}

template <class A> __device__ inline bool cos_ok(A v) { return ::fabs(v) <= A(1); }  // false for NaN

// float/double overloads of the math functions (no reliance on ::exp(float) overload resolution).
__device__ inline float fexp(float x) { return expf(x); }
__device__ inline double fexp(double x) { return ::exp(x); }
__device__ inline float flog(float x) { return logf(x); }
__device__ inline double flog(double x) { return ::log(x); }
__device__ inline float ffma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ inline double ffma(double a, double b, double c) { return ::fma(a, b, c); }

// ---- elementwise kernels: margin_logits, margin_logits_backward, margin_ce_backward ----------------

// 256 threads x ew_unroll vectors: a tile is 16 KiB of cosines (4096 floats) of one row, every load of it
// issued before the first use. Tiles are numbered (column tile k, row i), k-major, and visited in REVERSE:
// the last column tiles of all rows first. Pass 1 sweeps all N <= #SMs rows at once from column 0 to C,
// so when pass 2 follows, the most recently read (most likely still L2-resident) cosines are the last
// columns of every row; consuming those first means misses can only evict lines already used.
constexpr int ew_threads = 256;
constexpr int ew_unroll = 4;
constexpr index_t ew_max_blocks = index_t(1) << 16;  // grid-stride beyond (rows x tiles) > 65,536

template <class InC>
constexpr index_t ew_tile_cols = index_t(ew_threads) * ew_unroll * vec_width<InC>;

// An element op: row(i, c, status) reads the row's constants (reporting invalid ones when status is
// given); plain(row, x, g) is the output of a column j != y, label(row, x, g) that of the label column y.

/// Element op of margin_logits: s f(x) in the label column, s x elsewhere; labels -1 and ignore_label (and
/// an invalid one) have no label column: no margin.
template <class A, class L>
struct logits_op {
  static constexpr bool has_g = false;
  const L* labels;
  dmargin mf;
  struct row_t {
    index_t y;
  };
  __device__ row_t row(index_t i, index_t c, int* status) const { return {label_at(labels, i, c, status)}; }
  __device__ A plain(const row_t&, A v, A) const { return static_cast<A>(mf.s) * v; }
  __device__ A label(const row_t&, A v, A) const { return static_cast<A>(mf.s * mf.f(static_cast<double>(v))); }
};

/// Element op of margin_logits_backward: s f'(x) g in the label column, s g elsewhere.
template <class A, class L>
struct logits_backward_op {
  static constexpr bool has_g = true;
  const L* labels;
  dmargin mf;
  struct row_t {
    index_t y;
  };
  __device__ row_t row(index_t i, index_t c, int* status) const { return {label_at(labels, i, c, status)}; }
  __device__ A plain(const row_t&, A, A g) const { return static_cast<A>(mf.s) * g; }
  __device__ A label(const row_t&, A v, A g) const {
    return static_cast<A>(mf.s * mf.df(static_cast<double>(v)) * static_cast<double>(g));
  }
};

/// Element op of margin_ce_backward (pass 2): coef exp(s x - lse) (j != y), coef expm1(s f(x) - lse) f'(x)
/// in the label column, coef = w grad_scale s. A row labelled -1 (target on another shard) has no label
/// column: coef exp(s x - lse) everywhere. 0 for a row labelled ignore_label (or with an invalid label).
template <class A, class L, class InS, class InW>
struct ce_backward_op {
  static constexpr bool has_g = false;
  const L* labels;
  dmargin mf;
  const InS* lse;
  const InW* weights;
  double grad_scale;
  struct row_t {
    index_t y;
    A l, coef;
  };
  __device__ row_t row(index_t i, index_t c, int* status) const {
    const index_t y = label_at(labels, i, c, status);
    const double w = weights ? static_cast<double>(weights[i]) : 1.0;
    if (!(::isfinite(w) && ::isfinite(static_cast<double>(lse[i])))) report(status, status_non_finite);
    return {y, static_cast<A>(lse[i]), static_cast<A>(w * grad_scale * mf.s)};
  }
  __device__ A plain(const row_t& r, A v, A) const {
    if (r.y < topofr::detail::arc::other_shard_label) return A(0);  // ignore_label (or invalid: reported)
    // p_j = exp(s c_j - lse), the exponent rounded once (one FMA): lse ~ s, a rounded s c would cost bits.
    return r.coef * fexp(ffma(static_cast<A>(mf.s), v, -r.l));
  }
  __device__ A label(const row_t& r, A v, A) const {  // only called with r.y >= 0
    const double x = static_cast<double>(v);
    const double p_minus_1 = ::expm1(mf.s * mf.f(x) - static_cast<double>(r.l));  // exact near p_y = 1
    return static_cast<A>(static_cast<double>(r.coef) * p_minus_1 * mf.df(x));
  }
};

/// out(i, j) = op.plain(row i, x_ij, g_ij), op.label(...) in the label column, over an N x C matrix (g only
/// when Op::has_g); grid-stride over tiles of (row, ew_unroll 16-byte column chunks per thread), see
/// ew_threads for the order.
template <class InC, class T, class Op>
__global__ void __launch_bounds__(ew_threads)
    rows_elementwise_kernel(device_matrix_view<InC> cos, device_matrix_view<const T> g, device_matrix_view<T> out, Op op,
                            index_t tiles_per_row, int* status) {
  using A = acc_t<InC>;
  static_assert(std::is_same<A, T>::value, "outputs in the arithmetic type");
  constexpr int W = vec_width<InC>;
  constexpr int U = ew_unroll;
  constexpr bool has_g = Op::has_g;
  const index_t n = cos.rows(), c = cos.cols(), total = n * tiles_per_row;
  const int t = static_cast<int>(threadIdx.x);
  bool ok = true;
  for (index_t b = blockIdx.x; b < total; b += gridDim.x) {
    const index_t r = total - 1 - b;  // reversed: the last column tiles first
    const index_t k = r / n, i = r - k * n;
    const auto rs = op.row(i, c, (k == 0 && t == 0) ? status : nullptr);
    const InC* ci = cos.row(i);
    T* oi = out.row(i);
    const T* gi = has_g ? g.row(i) : nullptr;
    const row_split sp = split_row(ci, c);
    // Co-aligned (and a proper split: at most 2 W - 2 scalar columns, handled below by single threads).
    const bool vec = sp.scalars() <= ew_threads && aligned16(oi + sp.pre) && (!has_g || aligned16(gi + sp.pre));
    if (vec) {
      // Vector body: thread t handles vectors k U B + u B + t (B = ew_threads), all U loads first.
      const InC* body = ci + sp.pre;
      const index_t v0 = k * index_t(ew_threads) * U + t;
      raw16 q[U];
      T gv[has_g ? U : 1][W];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const index_t vi = v0 + index_t(u) * ew_threads;
        if (vi < sp.nv) {
          q[u] = load16(body + vi * W);
          if (has_g) load_vec<W>(gi + sp.pre + vi * W, gv[has_g ? u : 0]);
        }
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const index_t vi = v0 + index_t(u) * ew_threads;
        if (vi < sp.nv) {
          A v[W];
          unpack<InC>(q[u], v);
          const index_t j0 = sp.pre + vi * W;
          T o[W];
#pragma unroll
          for (int e = 0; e < W; ++e) {
            ok &= cos_ok(v[e]);
            o[e] = op.plain(rs, v[e], has_g ? gv[has_g ? u : 0][e] : A(0));
          }
          // The label column (once per row): its input picked by a select, one evaluation of op.label.
          const index_t ey = rs.y - j0;
          if (ey >= 0 && ey < W) {
            A x = A(0), xg = A(0);
#pragma unroll
            for (int e = 0; e < W; ++e)
              if (e == ey) x = v[e], xg = has_g ? gv[has_g ? u : 0][e] : A(0);
            const A z = op.label(rs, x, xg);
#pragma unroll
            for (int e = 0; e < W; ++e)
              if (e == ey) o[e] = z;
          }
          store_vec<W>(oi + j0, o);
        }
      }
      // The scalar prefix and tail (< 2 W columns), by the first threads of the row's tile 0.
      if (k == 0 && t < sp.scalars()) {
        const index_t j = sp.scalar_col(t, W);
        const A v = load(ci + j);
        ok &= cos_ok(v);
        const A g1 = has_g ? gi[j] : A(0);
        store_streaming(oi + j, j == rs.y ? op.label(rs, v, g1) : op.plain(rs, v, g1));
      }
    } else {
      // Not co-aligned: plain scalar columns k U W B + q B + t, W loads in flight per group.
      const index_t j0 = k * ew_tile_cols<InC> + t;
#pragma unroll 1
      for (int u = 0; u < U; ++u) {
        A v[W], gv[W];
#pragma unroll
        for (int e = 0; e < W; ++e) {
          const index_t j = j0 + index_t(u * W + e) * ew_threads;
          v[e] = j < c ? load(ci + j) : A(0);
          gv[e] = (has_g && j < c) ? gi[j] : A(0);
        }
#pragma unroll
        for (int e = 0; e < W; ++e) {
          const index_t j = j0 + index_t(u * W + e) * ew_threads;
          if (j < c) {
            ok &= cos_ok(v[e]);
            store_streaming(oi + j, j == rs.y ? op.label(rs, v[e], gv[e]) : op.plain(rs, v[e], gv[e]));
          }
        }
      }
    }
  }
  if (!ok) report(status, status_cos_out_of_range);
}

// ---- pass 1 ----------------------------------------------------------------------------------------

struct dmax {
  __device__ double operator()(double a, double b) const { return a > b ? a : b; }
};
struct dsum2 {
  double a, b;
};
struct dsum2_add {
  __device__ dsum2 operator()(const dsum2& x, const dsum2& y) const { return {x.a + y.a, x.b + y.b}; }
};

// One block of 1024 threads per row (grid-stride over rows). Why: the row reduction must be in a fixed
// order; one block does it without a workspace, a second launch or inter-block synchronisation, and keeps
// the row on one SM for the eps > 0 sweep. At the target N = 128 ~ #SMs (132 on H100) every SM holds one
// row, so the cost is 4 idle SMs (3%) and the reduction tail. Loads in flight per SM: 1024 threads x
// head_unroll x 16 B = 64 KiB, ~3x what Little's law asks at HBM3 rates (3.35 TB/s x ~0.8 us / 132 SMs
// ~ 20 KB). (With N << #SMs a row would have to be split over several blocks: not done.)
constexpr int head_threads = 1024;
constexpr int head_unroll = 4;

/// A thread's online softmax state over the cosines it has seen outside the label column: m the largest,
/// S = sum exp(s (c_j - m)), E = sum exp(s (c_j - m)) s (c_j - m). Moving to a larger m' with
/// delta = s (m - m') <= 0 gives S' = e^delta S, E' = e^delta (E + delta S) (no cancellation: every term
/// of E is <= 0). Every term goes to the double totals on its own: S is ~1 + (small terms) when one class
/// dominates, and a float partial sum would cost p_max (and so the entropy near 0) a float ulp of 1.
template <class A>
struct online_row {
  A m = -std::numeric_limits<A>::infinity();
  double S = 0.0, E = 0.0;
  bool ok = true;

  template <int K>
  __device__ void add(const A (&v)[K], index_t j0, index_t y, A s, double sd) {
    bool use[K];
    A cm = m;
#pragma unroll
    for (int e = 0; e < K; ++e) {
      const bool good = cos_ok(v[e]);
      ok &= good;
      use[e] = good && j0 + e != y;
      if (use[e] && v[e] > cm) cm = v[e];
    }
    if (cm > m) {  // rescale to the new maximum (S = E = 0 while m = -inf)
      if (S > 0.0) rescale(sd * (static_cast<double>(m) - static_cast<double>(cm)));
      m = cm;
    }
#pragma unroll
    for (int e = 0; e < K; ++e)
      if (use[e]) {
        const A d = s * (v[e] - m);
        const A x = fexp(d);
        S += static_cast<double>(x);
        E += static_cast<double>(x * d);
      }
  }
  __device__ void rescale(double delta) {
    const double f = ::exp(delta);
    E = f * (E + delta * S);
    S *= f;
  }
};

/// Calls f(v, j0) on the thread's share of a row, v an array of acc_t<InC> holding columns j0, j0 + 1, ...:
/// its scalar column if it has one (prefix or tail, a 1-element array; all columns are scalar only for a
/// pointer not aligned to its element size), then its vectors t + u B of the
/// body (B = head_threads, a W-element array each), U loads issued before the first is used.
template <int U, class InC, class F>
__device__ inline void sweep_row(const InC* ci, const row_split& sp, int t, F&& f) {
  using A = acc_t<InC>;
  constexpr int W = vec_width<InC>;
  constexpr index_t B = head_threads;
  for (index_t k = t; k < sp.scalars(); k += B) {  // one pass (< 2 W scalars) unless the row is all scalar
    const index_t j = sp.scalar_col(k, W);
    const A v[1] = {load(ci + j)};
    f(v, j);
  }
  const InC* body = ci + sp.pre;
  for (index_t v0 = t; v0 < sp.nv; v0 += B * U) {
    raw16 q[U];
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (v0 + u * B < sp.nv) q[u] = load16(body + (v0 + u * B) * W);
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (v0 + u * B < sp.nv) {
        A v[W];
        unpack<InC>(q[u], v);
        f(v, sp.pre + (v0 + u * B) * W);
      }
  }
}

/// Pass 1: one block per row (grid-stride over rows).
template <class InC, class L, class T>
__global__ void __launch_bounds__(head_threads)
    margin_ce_forward_kernel(device_matrix_view<InC> cos, const L* labels, dmargin mf, double eps, T* loss, T* entropy,
                             T* p_gt, T* lse, int* status) {
  using A = acc_t<InC>;
  constexpr int U = head_unroll;
  using max_reduce = cub::BlockReduce<double, head_threads>;
  using sum_reduce = cub::BlockReduce<dsum2, head_threads>;
  __shared__ union {
    typename max_reduce::TempStorage max;
    typename sum_reduce::TempStorage sum;
  } tmp;
  __shared__ double sh_m;
  __shared__ dsum2 sh_se;
  const index_t n = cos.rows(), c = cos.cols();
  const A s = static_cast<A>(mf.s);
  const double sd = mf.s, inf = CUDART_INF;
  const bool want_h = entropy != nullptr;
  const bool eps_log = want_h && eps >= static_cast<double>(std::numeric_limits<A>::min());
  const int t = static_cast<int>(threadIdx.x);

  for (index_t i = blockIdx.x; i < n; i += gridDim.x) {
    const index_t y = label_at(labels, i, c, t == 0 ? status : nullptr);
    const InC* ci = cos.row(i);
    const row_split sp = split_row(ci, c);
    // The online sweep (head_unroll vectors in flight per thread).
    online_row<A> st;
    sweep_row<U>(ci, sp, t, [&](const auto& v, index_t j0) { st.add(v, j0, y, s, sd); });
    const bool cos_bad = __syncthreads_or(!st.ok) != 0;
    // Block maximum, then every thread rescales its (S, E) to it and the sums are reduced.
    const double bm = max_reduce(tmp.max).Reduce(static_cast<double>(st.m), dmax());
    if (t == 0) sh_m = bm;
    __syncthreads();
    const double M = sh_m;
    if (st.S > 0.0 && static_cast<double>(st.m) < M) st.rescale(sd * (static_cast<double>(st.m) - M));
    const dsum2 se = sum_reduce(tmp.sum).Reduce(dsum2{st.S, st.E}, dsum2_add());
    if (t == 0) sh_se = se;
    __syncthreads();
    const bool bad = cos_bad || y == invalid_label;
    if (t == 0 && cos_bad) report(status, status_cos_out_of_range);
    const double S_ = sh_se.a, E_ = sh_se.b;
    // The row's log-sum-exp as in the CPU head: ref = max(M, f(x_y)) in cosine units.
    const double fy = (y >= 0 && !bad) ? mf.f(static_cast<double>(load(ci + y))) : -inf;
    const double ref = ::fmax(M, fy);
    const double a = S_ > 0.0 ? ::log(S_) + sd * (M - ref) : -inf;  // log sum_{j != y} exp(s c_j - s ref)
    const double dy = sd * (fy - ref);
    const double top = ::fmax(a, dy);
    const double log_sum = top + ::log(::exp(a - top) + ::exp(dy - top));
    const double p_y = ::exp(dy - log_sum);
    const double k = sd * (M - ref) - log_sum;  // log p_j = s (c_j - M) + k for j != y
    const double nan = CUDART_NAN;
    if (t == 0) {  // written now: nothing of them stays live through the entropy sweep
      loss[i] = static_cast<T>(bad ? nan : (y >= 0 ? log_sum - dy : 0.0));
      if (p_gt) p_gt[i] = static_cast<T>(bad ? nan : p_y);
      if (lse) lse[i] = static_cast<T>(bad ? nan : sd * ref + log_sum);
    }
    double h = 0.0;
    if (want_h && !bad) {
      if (eps_log) {
        // eps > 0: -sum p log(p + eps) needs p_j itself, known only now: one more sweep over the row.
        // It should come from L2, not HBM: the row is C sizeof(In) bytes (85,742 x 4 B = 343 KB float,
        // 171 KB half), but all rows in flight (min(N, resident blocks) = 128 at the target, one per SM)
        // sweep together, so between an element's first read and its re-read the GPU reads ~128 x 343 KB
        // = 44 MB (22 MB for 16-bit cosines) — under the 50 MB L2 of an H100/H200, narrowly for float.
        // (A miss costs HBM time, never correctness.) Same thread-to-column map as the first sweep.
        const A inv = static_cast<A>(::exp(k)), ea = static_cast<A>(eps);
        const A Mt = static_cast<A>(M), log_ea = flog(ea);
        double acc = 0.0;
        // Two vectors in flight per thread are enough here: L2 latency is shorter than HBM's, and the
        // sweep is bound by instructions per element rather than by bytes. The logarithm (~20 of them) is
        // skipped where p + eps rounds to eps, i.e. p < eps 2^-24 (nearly every class at s = 64): there
        // log(p + eps) IS log(eps), so the result is the same bits, for ~1/2 of the instructions.
        sweep_row<2>(ci, sp, t, [&](const auto& v, index_t j0) {
          constexpr int K = static_cast<int>(std::extent<std::remove_reference_t<decltype(v)>>::value);
#pragma unroll
          for (int e = 0; e < K; ++e)
            if (j0 + e != y) {
              const A p = fexp(s * (v[e] - Mt)) * inv, pe = p + ea;
              A lg = log_ea;
              if (pe != ea) lg = flog(pe);
              acc += static_cast<double>(p * lg);
            }
        });
        __syncthreads();  // tmp reuse
        const dsum2 r = sum_reduce(tmp.sum).Reduce(dsum2{acc, 0.0}, dsum2_add());
        h = -r.a;
        if (y >= 0) h -= p_y * ::log(p_y + eps);
      } else {  // eps = 0: -sum_{j != y} p_j log p_j = -e^k (E + k S); every term >= 0
        h = (S_ > 0.0 ? -::exp(k) * (E_ + k * S_) : 0.0) - (y >= 0 ? p_y * (dy - log_sum) : 0.0);
      }
    }
    if (t == 0 && entropy) entropy[i] = static_cast<T>(bad ? nan : h);
    __syncthreads();  // shared state is rewritten for the next row
  }
}

/// Launches rows_elementwise_kernel over an n x c matrix.
template <class InC, class T, class Op>
void launch_elementwise(const char* fn, const context& ctx, device_matrix_view<InC> cos, device_matrix_view<const T> g,
                        device_matrix_view<T> out, const Op& op) {
  const index_t n = cos.rows(), c = cos.cols();
  const index_t tiles = (c + ew_tile_cols<InC> - 1) / ew_tile_cols<InC>;
  const index_t total = n * tiles;
  const unsigned blocks = grid_for(total, 1, ew_max_blocks);
  launch(fn, rows_elementwise_kernel<InC, T, Op>, blocks, ew_threads, 0, ctx.stream, cos, g, out, op, tiles,
         ctx.status);
}

}  // namespace detail
}  // namespace cuda

/// CUDA twin of margin_logits (topofr/arcface.hpp). Labels and cosines are range-checked on the device
/// (status_label_out_of_range / status_cos_out_of_range); an invalid label gets no margin.
template <class InC, class L, class T = cuda::detail::acc_t<InC>>
void margin_logits(const cuda::context& ctx, device_matrix_view<InC> cos, device_vector_view<L> labels, const combined_margin& m,
                   device_matrix_view<T> logits) {
  static_assert(cuda::detail::is_cos_input_v<InC> && std::is_same<T, cuda::detail::acc_t<InC>>::value,
                "margin_logits: cos float/double/half/bfloat16, logits its arithmetic type");
  constexpr const char* fn = "margin_logits";
  const auto mf = detail::arc::check_logits_args<T>(fn, m, cos, labels, logits);  // values: on the device
  if (cos.rows() == 0) return;
  const auto dm = cuda::detail::dmargin::from(mf, cuda::detail::sin_floor_of<InC>());
  cuda::detail::launch_elementwise(fn, ctx, cos, device_matrix_view<const T>(), logits,
                                   cuda::detail::logits_op<T, std::remove_const_t<L>>{labels.data(), dm});
}

/// CUDA twin of margin_logits_backward.
template <class InC, class L, class InG, class T = cuda::detail::acc_t<InC>>
void margin_logits_backward(const cuda::context& ctx, device_matrix_view<InC> cos, device_vector_view<L> labels,
                            const combined_margin& m, device_matrix_view<InG> grad_logits, device_matrix_view<T> grad_cos) {
  static_assert(cuda::detail::is_cos_input_v<InC> && std::is_same<T, cuda::detail::acc_t<InC>>::value &&
                    std::is_same<std::remove_const_t<InG>, T>::value,
                "margin_logits_backward: grad_logits and grad_cos in the arithmetic type of cos");
  constexpr const char* fn = "margin_logits_backward";
  const auto mf = detail::arc::check_logits_backward_args<T>(fn, m, cos, labels, grad_logits, grad_cos);
  if (cos.rows() == 0) return;
  const auto dm = cuda::detail::dmargin::from(mf, cuda::detail::sin_floor_of<InC>());
  cuda::detail::launch_elementwise(fn, ctx, cos, device_matrix_view<const T>(grad_logits), grad_cos,
                                   cuda::detail::logits_backward_op<T, std::remove_const_t<L>>{labels.data(), dm});
}

/// CUDA twin of margin_ce_forward (pass 1): outputs are device vectors, written asynchronously.
template <class InC, class L, class T = cuda::detail::acc_t<InC>>
void margin_ce_forward(const cuda::context& ctx, device_matrix_view<InC> cos, device_vector_view<L> labels,
                       const combined_margin& m, double entropy_eps, device_vector_view<T> loss,
                       device_vector_view<T> entropy = {}, device_vector_view<T> p_gt = {}, device_vector_view<T> lse = {}) {
  static_assert(cuda::detail::is_cos_input_v<InC> && std::is_same<T, cuda::detail::acc_t<InC>>::value,
                "margin_ce_forward: outputs in the arithmetic type of cos (float for half/bfloat16)");
  constexpr const char* fn = "margin_ce_forward";
  const auto mf = detail::arc::check_ce_forward_args<T>(fn, m, entropy_eps, cos, labels, loss, entropy, p_gt, lse);
  const index_t n = cos.rows();
  if (n == 0) return;
  const auto dm = cuda::detail::dmargin::from(mf, cuda::detail::sin_floor_of<InC>());
  const unsigned blocks = cuda::detail::grid_for(n, 1, index_t(1) << 20);
  cuda::detail::launch(fn, cuda::detail::margin_ce_forward_kernel<InC, L, T>, blocks, cuda::detail::head_threads, 0,
                       ctx.stream, cos, labels.data(), dm, entropy_eps, loss.data(),
                       entropy.empty() ? nullptr : entropy.data(), p_gt.empty() ? nullptr : p_gt.data(),
                       lse.empty() ? nullptr : lse.data(), ctx.status);
}

/// CUDA twin of margin_ce_backward (pass 2). lse and weights are device vectors; their finiteness is
/// checked on the device (status_non_finite).
template <class InC, class L, class InS, class InW, class T = cuda::detail::acc_t<InC>>
void margin_ce_backward(const cuda::context& ctx, device_matrix_view<InC> cos, device_vector_view<L> labels,
                        const combined_margin& m, device_vector_view<InS> lse, device_vector_view<InW> weights, double grad_scale,
                        device_matrix_view<T> grad_cos) {
  static_assert(cuda::detail::is_cos_input_v<InC> && std::is_same<T, cuda::detail::acc_t<InC>>::value &&
                    std::is_same<std::remove_const_t<InS>, T>::value &&
                    std::is_same<std::remove_const_t<InW>, T>::value,
                "margin_ce_backward: lse, weights and grad_cos in the arithmetic type of cos");
  constexpr const char* fn = "margin_ce_backward";
  const auto mf =
      detail::arc::check_ce_backward_args<T>(fn, m, cos, labels, lse, weights, grad_scale, grad_cos);
  if (cos.rows() == 0) return;
  const auto dm = cuda::detail::dmargin::from(mf, cuda::detail::sin_floor_of<InC>());
  using op_t = cuda::detail::ce_backward_op<T, std::remove_const_t<L>, std::remove_const_t<InS>,
                                            std::remove_const_t<InW>>;
  cuda::detail::launch_elementwise(fn, ctx, cos, device_matrix_view<const T>(), grad_cos,
                                   op_t{labels.data(), dm, lse.data(), weights.empty() ? nullptr : weights.data(),
                                        grad_scale});
}

}  // namespace topofr
