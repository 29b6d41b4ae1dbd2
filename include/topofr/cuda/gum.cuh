// topofr/cuda/gum.cuh — CUDA twins of topofr/gum.hpp: the Gaussian–uniform mixture EM (one kernel, one
// block: the whole loop runs on the device, no host round trip per iteration) and the SDS weights.
// Hand-written: n is a batch size (~10^2–10^3), far too small for device-wide primitives; one block keeps
// the standardised entropies in shared memory (global scratch from ctx.alloc when they do not fit) and
// every EM sum is a cub::BlockReduce in a fixed order (deterministic).
//
// Asynchronous result: gum_result cannot be returned by value without a synchronisation, so the CUDA
// gum_fit returns void and writes the result to an optional DEVICE pointer (e.g. a field of a struct the
// caller copies back when it synchronises anyway). A reference-mode step where the released code would
// produce NaN, or an empty Gaussian component, sets status_diverged (the CPU throws); a non-finite entropy
// sets status_non_finite. In both cases hard_posterior is filled with NaN and result->converged = false.
#pragma once

#include <math_constants.h>

#include <cub/block/block_reduce.cuh>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../gum.hpp"
#include "context.cuh"

namespace topofr {
namespace cuda {
namespace detail {

constexpr int gum_threads = 256;

using topofr::detail::gum_sums;
struct gum_sums_add {
  __device__ gum_sums operator()(const gum_sums& a, const gum_sums& b) const {
    gum_sums r;
    for (int q = 0; q < 5; ++q) r.v[q] = a.v[q] + b.v[q];
    return r;
  }
};
struct gum_dmax {
  __device__ double operator()(double a, double b) const { return a > b ? a : b; }
};

/// Block sum of one double (result valid in every thread).
template <class Reduce, class Storage>
__device__ double block_sum(Storage& st, double* bcast, double v) {
  const double r = Reduce(st).Sum(v);
  if (threadIdx.x == 0) *bcast = r;
  __syncthreads();
  const double out = *bcast;
  __syncthreads();
  return out;
}

/// topofr::gum_fit on one block: the same arithmetic (topofr/gum.hpp's host-and-device gum_scaling,
/// gum_estep, gum_m_step), summed by the block; see the file comment for the failure conventions.
template <class In, class T>
__global__ void __launch_bounds__(gum_threads)
    gum_kernel(const In* entropy, index_t n, T* h, gum_options opt, double* scratch, gum_result* result,
               int* status) {
  using reduce1 = cub::BlockReduce<double, gum_threads>;
  using reduce5 = cub::BlockReduce<gum_sums, gum_threads>;
  __shared__ union {
    typename reduce1::TempStorage one;
    typename reduce5::TempStorage five;
  } tmp;
  __shared__ double bcast;
  __shared__ gum_sums bsum;
  double* const eps = scratch ? scratch : dynamic_shared<double>();
  double* const eps2 = eps + n;
  const int tid = threadIdx.x;
  const double nd = static_cast<double>(n);
  auto sum = [&](double v) { return block_sum<reduce1>(tmp.one, &bcast, v); };
  auto mean = [&] {
    double m = 0.0;
    for (index_t i = tid; i < n; i += gum_threads) m += eps[i];
    return sum(m) / nd;
  };
  auto finish = [&](int bit, int iterations) {  // failure: NaN posterior, not converged
    if (tid == 0) {
      report(status, bit);
      if (result) *result = gum_result{CUDART_NAN, CUDART_NAN, CUDART_NAN, iterations, false};
    }
    for (index_t i = tid; i < n; i += gum_threads) h[i] = static_cast<T>(CUDART_NAN);
  };

  bool bad = false;
  for (index_t i = tid; i < n; i += gum_threads) {
    const double v = static_cast<double>(entropy[i]);
    bad |= !::isfinite(v);
    eps[i] = (opt.symmetrize && i % 2 == 0 && i + 1 < n) ? -v : v;
  }
  if (__syncthreads_or(bad)) return finish(status_non_finite, 0);

  // Standardise as topofr::detail::gum_standardize (sklearn's scale), step for step.
  double amax = 0.0;
  for (index_t i = tid; i < n; i += gum_threads) amax = ::fmax(amax, topofr::detail::gum_abs(eps[i]));
  amax = reduce1(tmp.one).Reduce(amax, gum_dmax());
  if (tid == 0) bcast = amax;
  __syncthreads();
  amax = bcast;
  __syncthreads();
  if (amax != 0.0) {
    const topofr::detail::gum_scaling sc(amax);
    for (index_t i = tid; i < n; i += gum_threads) eps[i] = sc.down(eps[i]);
    __syncthreads();
    const double m0 = mean();
    double var = 0.0;
    for (index_t i = tid; i < n; i += gum_threads) {
      eps[i] -= m0;
      var += eps[i] * eps[i];
    }
    const double sd = ::sqrt(sum(var) / nd);
    const bool constant = sc.constant(sd);
    const double m1 = mean();
    if (sc.recentre_centred(m1))
      for (index_t i = tid; i < n; i += gum_threads) eps[i] -= m1;
    for (index_t i = tid; i < n; i += gum_threads) eps[i] = sc.scale(eps[i], sd, constant);
    __syncthreads();
    const double m2 = mean();
    if (topofr::detail::gum_scaling::recentre_scaled(m2))
      for (index_t i = tid; i < n; i += gum_threads) eps[i] -= m2;
  }
  double s0 = 0.0;
  for (index_t i = tid; i < n; i += gum_threads) s0 += (eps2[i] = eps[i] * eps[i]);
  topofr::detail::gum_state st;
  st.sigma = sum(s0) / nd;  // (the sum's barrier also publishes eps2)

  topofr::detail::gum_estep est(st.pi, st.sigma, st.c);  // the last E-step's parameters
  int iterations = 0;
  bool converged = false, empty_gaussian = false;
  for (int it = 0; it < opt.max_iter; ++it) {
    est = topofr::detail::gum_estep(st.pi, st.sigma, st.c);
    gum_sums acc{{0.0, 0.0, 0.0, 0.0, 0.0}};
    for (index_t i = tid; i < n; i += gum_threads)
      est.add(eps[i], eps2[i], ::exp(est.k * eps2[i]), acc.v[0], acc.v[1], acc.v[2], acc.v[3], acc.v[4]);
    const gum_sums s = reduce5(tmp.five).Reduce(acc, gum_sums_add());
    if (tid == 0) bsum = s;
    __syncthreads();
    const gum_sums total = bsum;
    __syncthreads();
    iterations = it + 1;
    const topofr::detail::gum_step r = topofr::detail::gum_m_step(total, nd, est.norm, opt, st);
    if (r == topofr::detail::gum_step::empty_gaussian) {
      empty_gaussian = true;
      converged = true;
      break;
    }
    if (r == topofr::detail::gum_step::diverged_n1 || r == topofr::detail::gum_step::diverged_density)
      return finish(status_diverged, iterations);
    if (r == topofr::detail::gum_step::converged) {
      converged = true;
      break;
    }
  }
  if (tid == 0 && result) *result = gum_result{st.pi, st.sigma, st.c, iterations, converged};
  for (index_t i = tid; i < n; i += gum_threads)
    h[i] = empty_gaussian ? T(1) : static_cast<T>(est.hard(::exp(est.k * eps2[i])));
}

template <class InH, class InP, class T>
__global__ void sds_kernel(const InH* h, const InP* p, index_t n, double lambda, bool focal, T* omega, int* status) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    const double hv = static_cast<double>(h[i]);
    const double pv = p ? static_cast<double>(p[i]) : 0.0;
    const bool ok = hv >= 0.0 && hv <= 1.0 && pv >= 0.0 && pv <= 1.0;  // false for NaN
    if (!ok) report(status, status_non_finite);
    omega[i] = static_cast<T>(ok ? topofr::detail::sds_weight(hv, pv, lambda, focal) : CUDART_NAN);
  }
}

}  // namespace detail
}  // namespace cuda

/// CUDA twin of gum_fit: one kernel on ctx.stream. The result goes to *device_result (a device pointer;
/// nullptr: not written). Host-side errors as the CPU (size, options); device-side: see the file comment.
template <class In, class T = std::remove_const_t<In>>
void gum_fit(const cuda::context& ctx, device_vector_view<In> entropy, device_vector_view<T> hard_posterior,
             const gum_options& opt = {}, gum_result* device_result = nullptr) {
  static_assert(detail::is_real_v<std::remove_const_t<In>> && detail::is_real_v<T>,
                "gum_fit: entropy and hard_posterior must be float or double");
  constexpr const char* fn = "gum_fit";
  detail::gum_check_args(entropy, hard_posterior, opt, fn);
  const index_t n = entropy.size();
  // eps and eps^2 in dynamic shared memory when they fit beside the kernel's static shared memory (limit
  // from cudaFuncGetAttributes: 16 n + static bytes crossing 48 KiB needs the opt-in), else global scratch.
  auto kernel = cuda::detail::gum_kernel<std::remove_const_t<In>, T>;
  const std::size_t want = static_cast<std::size_t>(2 * n) * sizeof(double);
  const bool in_smem = want <= cuda::detail::max_dynamic_shared(kernel, fn);
  if (in_smem) cuda::detail::allow_dynamic_shared(kernel, fn);
  cuda::workspace ws(ctx, in_smem ? 0 : want);
  const std::size_t smem = in_smem ? want : 0;
  cuda::detail::launch(fn, kernel, 1, cuda::detail::gum_threads, smem,
                       ctx.stream, entropy.data(), n, hard_posterior.data(), opt, ws.as<double>(), device_result,
                       ctx.status);
}

/// CUDA twin of sds_weights. Values of hard_posterior or p_gt outside [0, 1] (or NaN) are reported as
/// status_non_finite (the "invalid value" bit) and give omega = NaN.
template <class InH, class InP = InH, class T = std::remove_const_t<InH>>
void sds_weights(const cuda::context& ctx, device_vector_view<InH> hard_posterior, device_vector_view<InP> p_gt, double lambda,
                 bool focal, device_vector_view<T> omega) {
  constexpr const char* fn = "sds_weights";
  const index_t n = detail::check_sds_args(hard_posterior, p_gt, lambda, focal, omega, fn);
  if (n == 0) return;
  cuda::detail::launch(fn, cuda::detail::sds_kernel<std::remove_const_t<InH>, std::remove_const_t<InP>, T>,
                       cuda::detail::grid_for(n, 256, 1024), 256, 0, ctx.stream, hard_posterior.data(),
                       p_gt.empty() ? static_cast<const InP*>(nullptr) : p_gt.data(), n, lambda, focal, omega.data(),
                       ctx.status);
}

}  // namespace topofr
