// topofr/cuda/gather.cuh — M[γ] and its adjoint on the GPU (docs/math.md), the CUDA twin of
// topofr/gather.hpp. One thread per pair. Pair validity (0 <= u < v < n) cannot be seen by the host
// without a copy: an invalid pair sets cuda::status_bad_pair and is skipped (gather writes 0 for it).
#pragma once

#include <cuda_runtime.h>

#include <type_traits>

#include "../gather.hpp"
#include "context.cuh"

namespace topofr {
namespace detail {
namespace cu {

__device__ inline bool pair_ok(edge e, index_t n) { return e.u >= 0 && e.u < e.v && e.v < n; }

template <class In, class T>
__global__ void gather_kernel(const In* __restrict__ D, index_t n, index_t ld, const edge* __restrict__ pairs,
                              index_t m, T* values, int* status) {
  for (index_t k = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; k < m;
       k += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const edge e = pairs[k];
    if (!pair_ok(e, n)) {
      cuda::detail::report(status, cuda::status_bad_pair);
      values[k] = T(0);
      continue;
    }
    values[k] = static_cast<T>(D[e.u * ld + e.v]);
  }
}

template <class In, class T>
__global__ void scatter_add_kernel(const edge* __restrict__ pairs, const In* __restrict__ values, index_t m, T* G,
                                   index_t n, index_t ld, int* status) {
  for (index_t k = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; k < m;
       k += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const edge e = pairs[k];
    if (!pair_ok(e, n)) {
      cuda::detail::report(status, cuda::status_bad_pair);
      continue;
    }
    atomicAdd(G + e.u * ld + e.v, static_cast<T>(values[k]));  // order matters only for repeated pairs
  }
}

inline unsigned pair_blocks(index_t m) { return cuda::detail::grid_for(m); }

}  // namespace cu
}  // namespace detail

/// values[k] = dist(u_k, v_k) (device memory throughout). Host errors as gather_pairs(cpu, ...) for the
/// shapes; a pair outside 0 <= u < v < n sets cuda::status_bad_pair (its value is 0).
template <class In, class T = std::remove_const_t<In>>
void gather_pairs(const cuda::context& ctx, device_matrix_view<In> dist, device_vector_view<const edge> pairs,
                  device_vector_view<T> values) {
  static_assert(detail::both_real_v<In, T>, "topofr: float or double only");
  constexpr const char* fn = "gather_pairs";
  detail::check_gather_args(dist, "dist", pairs, values, fn);
  if (pairs.size() == 0) return;
  cuda::detail::launch(fn, detail::cu::gather_kernel<std::remove_const_t<In>, T>, detail::cu::pair_blocks(pairs.size()),
                       256, 0, ctx.stream, dist.data(), dist.rows(), dist.ld(), pairs.data(), pairs.size(),
                       values.data(), ctx.status);
}

/// grad_dist(u_k, v_k) += values[k], the adjoint of gather_pairs. atomicAdd: with distinct pairs (as
/// from persistence_pairs) every entry gets one addition and the result equals the CPU's bit for bit;
/// a repeated pair accumulates in an unspecified order (float rounding may then differ run to run).
template <class In, class T = std::remove_const_t<In>>
void scatter_pairs_add(const cuda::context& ctx, device_vector_view<const edge> pairs, device_vector_view<In> values,
                       device_matrix_view<T> grad_dist) {
  static_assert(detail::both_real_v<In, T>, "topofr: float or double only");
  constexpr const char* fn = "scatter_pairs_add";
  detail::check_gather_args(grad_dist, "grad_dist", pairs, values, fn);
  if (pairs.size() == 0) return;
  cuda::detail::launch(fn, detail::cu::scatter_add_kernel<std::remove_const_t<In>, T>,
                       detail::cu::pair_blocks(pairs.size()), 256, 0, ctx.stream, pairs.data(), values.data(),
                       pairs.size(), grad_dist.data(), grad_dist.rows(), grad_dist.ld(), ctx.status);
}

}  // namespace topofr
