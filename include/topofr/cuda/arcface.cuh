// topofr/cuda/arcface.cuh — CUDA twins of topofr/arcface.hpp: combined-margin logits (elementwise kernels)
// and the fused two-pass margin-softmax cross-entropy head. Same signatures with `const cuda::context&`
// first, same numbers (docs/cuda.md).
//
// Hand-written (not cuBLAS/CUB device-wide): the head is memory-bound, so each pass reads the cosines once
// and does all of its per-row work on that read. Pass 1 is one block per row: an online (max, sum, sum e d)
// sweep gives the log-sum-exp and, for eps = 0, the entropy in the same read; eps > 0 needs one more sweep
// over the row (from L2). Per-thread partial sums are double and reduced by cub::BlockReduce in a fixed
// order: results are deterministic run to run.
// Inputs may be float, double, __half or __nv_bfloat16; the arithmetic type is float for the 16-bit types.
// Values only the device sees (labels outside [-1, C), cosines outside [-1, 1] or NaN, non-finite lse or
// weights) set ctx.status bits; the outputs of such a row are then unspecified (NaN where possible).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <math_constants.h>

#include <cub/block/block_reduce.cuh>
#include <cmath>
#include <cstdint>
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

template <class In> __device__ inline acc_t<In> load(const In* p) { return static_cast<acc_t<In>>(*p); }
template <> __device__ inline float load<const __half>(const __half* p) { return __half2float(*p); }
template <> __device__ inline float load<__half>(const __half* p) { return __half2float(*p); }
template <> __device__ inline float load<const __nv_bfloat16>(const __nv_bfloat16* p) { return __bfloat162float(*p); }
template <> __device__ inline float load<__nv_bfloat16>(const __nv_bfloat16* p) { return __bfloat162float(*p); }

/// sqrt(machine epsilon) of the INPUT type: the smallest sin(theta) of a representable cos(theta) < 1.
template <class In> inline double sin_floor_of() {
  using V = std::remove_const_t<In>;
  if (std::is_same<V, __half>::value) return std::sqrt(0.0009765625);      // 2^-10
  if (std::is_same<V, __nv_bfloat16>::value) return std::sqrt(0.0078125);  // 2^-7
  return std::sqrt(static_cast<double>(std::numeric_limits<acc_t<In>>::epsilon()));
}

inline unsigned grid_rows(index_t n) { return static_cast<unsigned>(n < 65535 ? n : 65535); }

/// The device copy of topofr::detail::arc::margin_fn (same fields, same formulas).
struct dmargin {
  double s, m1, m2, m3, cos_m2, sin_m2, threshold, sinmm, floor;
  static dmargin from(const topofr::detail::arc::margin_fn& f, double floor) {
    return {f.s, f.m1, f.m2, f.m3, f.cos_m2, f.sin_m2, f.threshold, f.sinmm, floor};
  }
  __device__ static double sin_theta(double x) { return ::sqrt((1.0 - x) * (1.0 + x)); }
  __device__ double f(double x) const {
    if (!(x > threshold)) return x - m3 - sinmm;
    if (m1 == 1.0) return x * cos_m2 - sin_theta(x) * sin_m2 - m3;
    return ::cos(m1 * ::acos(x) + m2) - m3;
  }
  __device__ double df(double x) const {
    if (!(x > threshold)) return 1.0;
    const double st = ::fmax(sin_theta(x), floor);
    if (m1 == 1.0) return cos_m2 + x * sin_m2 / st;
    return m1 * ::sin(m1 * ::acos(x) + m2) / st;
  }
};

/// Reads labels[i]; reports and returns -2 when it is outside [-1, c).
template <class L>
__device__ inline index_t label_at(const L* labels, index_t i, index_t c, int* status) {
  const index_t y = static_cast<index_t>(labels[i]);
  if (y < -1 || y >= c) {
    topofr::cuda::detail::report(status, status_label_out_of_range);
    return -2;
  }
  return y;
}

template <class A> __device__ inline bool cos_ok(A v) { return ::fabs(v) <= A(1); }  // false for NaN

template <class InC, class L, class T>
__global__ void margin_logits_kernel(matrix_view<InC> cos, const L* labels, dmargin mf, matrix_view<T> out,
                                     int* status) {
  using A = acc_t<InC>;
  const index_t n = cos.rows(), c = cos.cols();
  const A s = static_cast<A>(mf.s);
  for (index_t i = blockIdx.y; i < n; i += gridDim.y) {
    const index_t y = label_at(labels, i, c, status);
    const InC* ci = cos.row(i);
    T* oi = out.row(i);
    bool ok = true;
    for (index_t j = blockIdx.x * index_t(blockDim.x) + threadIdx.x; j < c; j += index_t(gridDim.x) * blockDim.x) {
      const A v = load(ci + j);
      ok &= cos_ok(v);
      oi[j] = (j == y) ? static_cast<T>(mf.s * mf.f(static_cast<double>(v))) : static_cast<T>(s * v);
    }
    if (!ok) report(status, status_cos_out_of_range);
  }
}

template <class InC, class L, class InG, class T>
__global__ void margin_logits_backward_kernel(matrix_view<InC> cos, const L* labels, dmargin mf,
                                              matrix_view<InG> g, matrix_view<T> out, int* status) {
  using A = acc_t<InC>;
  const index_t n = cos.rows(), c = cos.cols();
  const A s = static_cast<A>(mf.s);
  for (index_t i = blockIdx.y; i < n; i += gridDim.y) {
    const index_t y = label_at(labels, i, c, status);
    const InC* ci = cos.row(i);
    const InG* gi = g.row(i);
    T* oi = out.row(i);
    bool ok = true;
    for (index_t j = blockIdx.x * index_t(blockDim.x) + threadIdx.x; j < c; j += index_t(gridDim.x) * blockDim.x) {
      const A v = load(ci + j);
      ok &= cos_ok(v);
      const A gv = static_cast<A>(gi[j]);
      oi[j] = (j == y) ? static_cast<T>(mf.s * mf.df(static_cast<double>(v)) * static_cast<double>(gv))
                       : static_cast<T>(s * gv);
    }
    if (!ok) report(status, status_cos_out_of_range);
  }
}

// float/double overloads of the math functions (no reliance on ::exp(float) overload resolution).
__device__ inline float fexp(float x) { return expf(x); }
__device__ inline double fexp(double x) { return ::exp(x); }
__device__ inline float flog(float x) { return logf(x); }
__device__ inline double flog(double x) { return ::log(x); }
__device__ inline float ffma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ inline double ffma(double a, double b, double c) { return ::fma(a, b, c); }

struct dmax {
  __device__ double operator()(double a, double b) const { return a > b ? a : b; }
};
struct dsum2 {
  double a, b;
};
struct dsum2_add {
  __device__ dsum2 operator()(const dsum2& x, const dsum2& y) const { return {x.a + y.a, x.b + y.b}; }
};

constexpr int head_threads = 1024;  // one block per row: enough loads in flight to saturate HBM
constexpr int head_unroll = 8;

/// Pass 1: one block per row (grid-stride over rows).
template <class InC, class L, class T>
__global__ void __launch_bounds__(head_threads)
    margin_ce_forward_kernel(matrix_view<InC> cos, const L* labels, dmargin mf, double eps, T* loss, T* entropy,
                             T* p_gt, T* lse, int* status) {
  using A = acc_t<InC>;
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

  for (index_t i = blockIdx.x; i < n; i += gridDim.x) {
    const index_t y = label_at(labels, i, c, threadIdx.x == 0 ? status : nullptr);
    const InC* ci = cos.row(i);
    // Online sweep: per thread m = the largest cosine seen (j != y), S = sum exp(s (c_j - m)),
    // E = sum exp(s (c_j - m)) s (c_j - m); rescaling to a larger m' with delta = s (m - m') <= 0 is
    // S' = e^delta S, E' = e^delta (E + delta S) (no cancellation: every term of E is <= 0).
    // Chunks of head_unroll elements per thread, loads issued before use.
    A m = -std::numeric_limits<A>::infinity();
    double S = 0.0, E = 0.0;
    bool ok = true;
    const index_t stride = index_t(head_threads) * head_unroll;
    for (index_t j0 = threadIdx.x; j0 < c; j0 += stride) {
      A v[head_unroll];
#pragma unroll
      for (int u = 0; u < head_unroll; ++u) {
        const index_t j = j0 + index_t(u) * head_threads;
        v[u] = j < c ? load(ci + j) : A(0);
      }
      A cm = m;
#pragma unroll
      for (int u = 0; u < head_unroll; ++u) {
        const index_t j = j0 + index_t(u) * head_threads;
        if (j < c) {
          ok &= cos_ok(v[u]);
          if (j != y && v[u] > cm) cm = v[u];
        }
      }
      if (cm > m) {  // rescale to the new maximum (S = E = 0 while m = -inf)
        if (S > 0.0) {
          const double delta = sd * (static_cast<double>(m) - static_cast<double>(cm));
          const double f = ::exp(delta);
          E = f * (E + delta * S);
          S *= f;
        }
        m = cm;
      }
#pragma unroll
      for (int u = 0; u < head_unroll; ++u) {
        const index_t j = j0 + index_t(u) * head_threads;
        if (j < c && j != y && cos_ok(v[u])) {
          const A d = s * (v[u] - m);
          const A e = fexp(d);
          S += static_cast<double>(e);
          E += static_cast<double>(e * d);
        }
      }
    }
    const bool cos_bad = __syncthreads_or(!ok) != 0;
    // Block maximum, then every thread rescales its (S, E) to it and the sums are reduced.
    const double bm = max_reduce(tmp.max).Reduce(static_cast<double>(m), dmax());
    if (threadIdx.x == 0) sh_m = bm;
    __syncthreads();
    const double M = sh_m;
    if (S > 0.0 && static_cast<double>(m) < M) {
      const double delta = sd * (static_cast<double>(m) - M);
      const double f = ::exp(delta);
      E = f * (E + delta * S);
      S *= f;
    }
    const dsum2 se = sum_reduce(tmp.sum).Reduce(dsum2{S, E}, dsum2_add());
    if (threadIdx.x == 0) sh_se = se;
    __syncthreads();
    const bool bad = cos_bad || y == -2;
    if (threadIdx.x == 0 && cos_bad) report(status, status_cos_out_of_range);
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
    double h = 0.0;
    if (want_h && !bad) {
      if (eps_log) {  // one more sweep (the row is in L2): -sum p log(p + eps), p = e_j exp(k) in A
        const A inv = static_cast<A>(::exp(k)), ea = static_cast<A>(eps);
        const A Mt = static_cast<A>(M);
        double acc = 0.0;
        for (index_t j = threadIdx.x; j < c; j += head_threads) {
          if (j == y) continue;
          const A p = fexp(s * (load(ci + j) - Mt)) * inv;
          acc += static_cast<double>(p * flog(p + ea));
        }
        __syncthreads();  // tmp reuse
        const dsum2 r = sum_reduce(tmp.sum).Reduce(dsum2{acc, 0.0}, dsum2_add());
        h = -r.a;
        if (y >= 0) h -= p_y * ::log(p_y + eps);
      } else {  // eps = 0: -sum_{j != y} p_j log p_j = -e^k (E + k S); every term >= 0
        h = (S_ > 0.0 ? -::exp(k) * (E_ + k * S_) : 0.0) - (y >= 0 ? p_y * (dy - log_sum) : 0.0);
      }
    }
    if (threadIdx.x == 0) {
      const double nan = CUDART_NAN;
      loss[i] = static_cast<T>(bad ? nan : (y >= 0 ? log_sum - dy : 0.0));
      if (p_gt) p_gt[i] = static_cast<T>(bad ? nan : p_y);
      if (lse) lse[i] = static_cast<T>(bad ? nan : sd * ref + log_sum);
      if (entropy) entropy[i] = static_cast<T>(bad ? nan : h);
    }
    __syncthreads();  // shared state is rewritten for the next row
  }
}

/// Pass 2: elementwise, rows on blockIdx.y. grad(i, j) = coef exp(s c_ij - lse_i) (j != y),
/// coef expm1(s f(x) - lse) f'(x) in the label column, coef = w_i grad_scale s.
template <class InC, class L, class InS, class InW, class T>
__global__ void margin_ce_backward_kernel(matrix_view<InC> cos, const L* labels, dmargin mf, const InS* lse,
                                          const InW* weights, double grad_scale, matrix_view<T> grad, int* status) {
  using A = acc_t<InC>;
  const index_t n = cos.rows(), c = cos.cols();
  const A s = static_cast<A>(mf.s);
  for (index_t i = blockIdx.y; i < n; i += gridDim.y) {
    const bool lead = blockIdx.x == 0 && threadIdx.x == 0;
    const index_t y = label_at(labels, i, c, lead ? status : nullptr);
    const double w = weights ? static_cast<double>(weights[i]) : 1.0;
    const A l = static_cast<A>(lse[i]);
    const bool finite = ::isfinite(w) && ::isfinite(static_cast<double>(lse[i]));
    if (lead && !finite) report(status, status_non_finite);
    const A coef = static_cast<A>(w * grad_scale * mf.s);
    const InC* ci = cos.row(i);
    T* gi = grad.row(i);
    bool ok = true;
    for (index_t j = blockIdx.x * index_t(blockDim.x) + threadIdx.x; j < c; j += index_t(gridDim.x) * blockDim.x) {
      const A v = load(ci + j);
      ok &= cos_ok(v);
      A out;
      if (y < 0) {
        out = A(0);  // label -1 (or invalid: reported above)
      } else if (j != y) {
        out = coef * fexp(ffma(s, v, -l));
      } else {
        const double x = static_cast<double>(v);
        const double p_minus_1 = ::expm1(mf.s * mf.f(x) - static_cast<double>(l));
        out = static_cast<A>(static_cast<double>(coef) * p_minus_1 * mf.df(x));
      }
      gi[j] = static_cast<T>(out);
    }
    if (!ok) report(status, status_cos_out_of_range);
  }
}

/// Elementwise launch shape: 256 threads, enough column blocks for ~4 waves of 128 rows.
inline dim3 elementwise_grid(index_t n, index_t c) {
  const index_t per_block = 256 * 4;
  const index_t bx = (c + per_block - 1) / per_block;
  return dim3(static_cast<unsigned>(bx < 1 ? 1 : (bx > 65535 ? 65535 : bx)), grid_rows(n));
}

template <class L>
void check_label_view(vector_view<L> labels, index_t n, const char* fn) {
  static_assert(std::is_same<std::remove_const_t<L>, std::int32_t>::value ||
                    std::is_same<std::remove_const_t<L>, std::int64_t>::value,
                "labels must be int32 or int64");
  topofr::detail::check_size(labels, n, fn, "labels");  // values are checked on the device
}

}  // namespace detail
}  // namespace cuda

/// CUDA twin of margin_logits (topofr/arcface.hpp). Labels and cosines are range-checked on the device
/// (status_label_out_of_range / status_cos_out_of_range); an invalid label gets no margin.
template <class InC, class L, class T = cuda::detail::acc_t<InC>>
void margin_logits(const cuda::context& ctx, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                   matrix_view<T> logits) {
  static_assert(cuda::detail::is_cos_input_v<InC> && std::is_same<T, cuda::detail::acc_t<InC>>::value,
                "margin_logits: cos float/double/half/bfloat16, logits its arithmetic type");
  constexpr const char* fn = "margin_logits";
  const auto mf = detail::arc::checked_margin<T>(m, fn);
  detail::arc::check_cos_view(cos, fn);
  const index_t n = cos.rows(), c = cos.cols();
  cuda::detail::check_label_view(labels, n, fn);
  detail::check_shape(logits, n, c, fn, "logits");
  if (n == 0) return;
  const auto dm = cuda::detail::dmargin::from(mf, cuda::detail::sin_floor_of<InC>());
  cuda::detail::launch(fn, cuda::detail::margin_logits_kernel<InC, L, T>, cuda::detail::elementwise_grid(n, c), 256,
                       0, ctx.stream, cos, labels.data(), dm, logits, ctx.status);
}

/// CUDA twin of margin_logits_backward.
template <class InC, class L, class InG, class T = cuda::detail::acc_t<InC>>
void margin_logits_backward(const cuda::context& ctx, matrix_view<InC> cos, vector_view<L> labels,
                            const combined_margin& m, matrix_view<InG> grad_logits, matrix_view<T> grad_cos) {
  static_assert(cuda::detail::is_cos_input_v<InC> && std::is_same<T, cuda::detail::acc_t<InC>>::value &&
                    std::is_same<std::remove_const_t<InG>, T>::value,
                "margin_logits_backward: grad_logits and grad_cos in the arithmetic type of cos");
  constexpr const char* fn = "margin_logits_backward";
  const auto mf = detail::arc::checked_margin<T>(m, fn);
  detail::arc::check_cos_view(cos, fn);
  const index_t n = cos.rows(), c = cos.cols();
  cuda::detail::check_label_view(labels, n, fn);
  detail::check_shape(grad_logits, n, c, fn, "grad_logits");
  detail::check_shape(grad_cos, n, c, fn, "grad_cos");
  if (n == 0) return;
  const auto dm = cuda::detail::dmargin::from(mf, cuda::detail::sin_floor_of<InC>());
  cuda::detail::launch(fn, cuda::detail::margin_logits_backward_kernel<InC, L, InG, T>,
                       cuda::detail::elementwise_grid(n, c), 256, 0, ctx.stream, cos, labels.data(), dm, grad_logits,
                       grad_cos, ctx.status);
}

/// CUDA twin of margin_ce_forward (pass 1): outputs are device vectors, written asynchronously.
template <class InC, class L, class T = cuda::detail::acc_t<InC>>
void margin_ce_forward(const cuda::context& ctx, matrix_view<InC> cos, vector_view<L> labels,
                       const combined_margin& m, double entropy_eps, vector_view<T> loss,
                       vector_view<T> entropy = {}, vector_view<T> p_gt = {}, vector_view<T> lse = {}) {
  static_assert(cuda::detail::is_cos_input_v<InC> && std::is_same<T, cuda::detail::acc_t<InC>>::value,
                "margin_ce_forward: outputs in the arithmetic type of cos (float for half/bfloat16)");
  constexpr const char* fn = "margin_ce_forward";
  const auto mf = detail::arc::checked_margin<T>(m, fn);
  detail::require(entropy_eps >= 0.0 && entropy_eps <= static_cast<double>(std::numeric_limits<T>::max()), fn,
                  "entropy_eps", "must be >= 0 and finite in the scalar type, got ", entropy_eps);
  detail::arc::check_cos_view(cos, fn);
  const index_t n = cos.rows();
  cuda::detail::check_label_view(labels, n, fn);
  detail::check_size(loss, n, fn, "loss");
  if (!entropy.empty()) detail::check_size(entropy, n, fn, "entropy");
  if (!p_gt.empty()) detail::check_size(p_gt, n, fn, "p_gt");
  if (!lse.empty()) detail::check_size(lse, n, fn, "lse");
  if (n == 0) return;
  const auto dm = cuda::detail::dmargin::from(mf, cuda::detail::sin_floor_of<InC>());
  const unsigned blocks = static_cast<unsigned>(n < 1 << 20 ? n : 1 << 20);
  cuda::detail::launch(fn, cuda::detail::margin_ce_forward_kernel<InC, L, T>, blocks, cuda::detail::head_threads, 0,
                       ctx.stream, cos, labels.data(), dm, entropy_eps, loss.data(),
                       entropy.empty() ? nullptr : entropy.data(), p_gt.empty() ? nullptr : p_gt.data(),
                       lse.empty() ? nullptr : lse.data(), ctx.status);
}

/// CUDA twin of margin_ce_backward (pass 2). lse and weights are device vectors; their finiteness is
/// checked on the device (status_non_finite).
template <class InC, class L, class InS, class InW, class T = cuda::detail::acc_t<InC>>
void margin_ce_backward(const cuda::context& ctx, matrix_view<InC> cos, vector_view<L> labels,
                        const combined_margin& m, vector_view<InS> lse, vector_view<InW> weights, double grad_scale,
                        matrix_view<T> grad_cos) {
  static_assert(cuda::detail::is_cos_input_v<InC> && std::is_same<T, cuda::detail::acc_t<InC>>::value &&
                    std::is_same<std::remove_const_t<InS>, T>::value &&
                    std::is_same<std::remove_const_t<InW>, T>::value,
                "margin_ce_backward: lse, weights and grad_cos in the arithmetic type of cos");
  constexpr const char* fn = "margin_ce_backward";
  const auto mf = detail::arc::checked_margin<T>(m, fn);
  detail::arc::check_cos_view(cos, fn);
  const index_t n = cos.rows(), c = cos.cols();
  cuda::detail::check_label_view(labels, n, fn);
  detail::check_size(lse, n, fn, "lse");
  if (!weights.empty()) detail::check_size(weights, n, fn, "weights");
  detail::require(std::isfinite(grad_scale), fn, "grad_scale", "must be finite, got ", grad_scale);
  detail::check_shape(grad_cos, n, c, fn, "grad_cos");
  if (n == 0) return;
  const auto dm = cuda::detail::dmargin::from(mf, cuda::detail::sin_floor_of<InC>());
  cuda::detail::launch(fn, cuda::detail::margin_ce_backward_kernel<InC, L, InS, InW, T>,
                       cuda::detail::elementwise_grid(n, c), 256, 0, ctx.stream, cos, labels.data(), dm, lse.data(),
                       weights.empty() ? static_cast<const InW*>(nullptr) : weights.data(), grad_scale, grad_cos,
                       ctx.status);
}

}  // namespace topofr
