// topofr/cuda/distance.cuh — Euclidean distance matrices on the GPU (DESIGN §3.1), the CUDA twin of
// topofr/distance.hpp: dist(i, j) = ||x_i - x_j|| / scale, both (i, j) and (j, i) written with the same
// value, 0 on the diagonal.
//
// Hand-written tiled kernel rather than cuBLAS: the Gram product, the norms, the cancellation guard and the
// symmetric store are fused, and the same tile routine computes a cloud's matrix straight into shared
// memory for persistence_pairs_from_points (persistence.cuh), so both give bit-identical distances.
// Accuracy: like the CPU, in double (points converted once when staged; products of floats are exact in
// double), guard d2 < 1e-3 (|a|^2 + |b|^2) -> direct sum of squared differences, sqrt / scale rounded once.
// Only the summation order differs from the CPU, so float results agree with it to <= 1 ulp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "../distance.hpp"
#include "context.cuh"

namespace topofr {
namespace detail {
namespace cu {

constexpr int tile = 64;          // a block computes a tile x tile block of the matrix
constexpr int tile_k = 16;        // dimensions staged per step
constexpr int tile_pad = tile + 1;  // k-major staging, padded against bank conflicts on the transposed store
constexpr int tile_threads = 256;   // 16 x 16 threads, 4 x 4 entries each
/// Shared doubles the tile routine needs: A and B chunks, then the 2 x 64 norms.
constexpr int tile_smem_doubles = 2 * tile_k * tile_pad + 2 * tile;

__device__ inline bool finite(float x) { return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u; }
__device__ inline bool finite(double x) {
  return (static_cast<unsigned long long>(__double_as_longlong(x)) & 0x7ff0000000000000ull) !=
         0x7ff0000000000000ull;
}

/// Distances between rows i0..i0+63 and j0..j0+63 of the cloud P (n x d, leading dimension ld), computed
/// by the whole block (exactly tile_threads threads). store(i, j, value_in_double) is called once per
/// entry with i, j < n (including i == j, whose value is meaningless: callers write 0). bad |= a
/// non-finite coordinate was read. Every entry's sums run sequentially in k, whatever the tile position,
/// so a matrix computed by tiles of any grid is the same bit for bit.
template <class In, class Store>
__device__ void distance_tile(const In* __restrict__ P, index_t ld, int n, int d, double scale, int i0,
                              int j0, double* sh, bool& bad, Store&& store) {
  double* sa = sh;
  double* sb = sh + tile_k * tile_pad;
  double* sn = sh + 2 * tile_k * tile_pad;
  const int tid = static_cast<int>(threadIdx.x), tx = tid & 15, ty = tid >> 4;
  double acc[4][4] = {};
  double nrm = 0.0;  // threads < 64: |a_tid|^2; 64..127: |b_(tid-64)|^2
  for (int k0 = 0; k0 < d; k0 += tile_k) {
    for (int q = 0; q < (tile * tile_k) / tile_threads; ++q) {
      const int e = tid + tile_threads * q, r = e / tile_k, c = e % tile_k, k = k0 + c;
      double a = 0.0, b = 0.0;
      if (k < d && i0 + r < n) {
        const In x = P[static_cast<index_t>(i0 + r) * ld + k];
        bad |= !finite(x);
        a = static_cast<double>(x);
      }
      if (k < d && j0 + r < n) {
        const In x = P[static_cast<index_t>(j0 + r) * ld + k];
        bad |= !finite(x);
        b = static_cast<double>(x);
      }
      sa[c * tile_pad + r] = a;
      sb[c * tile_pad + r] = b;
    }
    __syncthreads();
    if (tid < tile) {
      for (int c = 0; c < tile_k; ++c) nrm = fma(sa[c * tile_pad + tid], sa[c * tile_pad + tid], nrm);
    } else if (tid < 2 * tile) {
      for (int c = 0; c < tile_k; ++c)
        nrm = fma(sb[c * tile_pad + tid - tile], sb[c * tile_pad + tid - tile], nrm);
    }
#pragma unroll 4
    for (int c = 0; c < tile_k; ++c) {
      double a[4], b[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) a[r] = sa[c * tile_pad + ty + 16 * r];
#pragma unroll
      for (int s = 0; s < 4; ++s) b[s] = sb[c * tile_pad + tx + 16 * s];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int s = 0; s < 4; ++s) acc[r][s] = fma(a[r], b[s], acc[r][s]);
    }
    __syncthreads();
  }
  if (tid < 2 * tile) sn[tid] = nrm;
  __syncthreads();
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const int i = i0 + ty + 16 * r, j = j0 + tx + 16 * s;
      if (i >= n || j >= n) continue;
      const double norms = sn[ty + 16 * r] + sn[tile + tx + 16 * s];
      double d2 = norms - 2.0 * acc[r][s];
      if (!(d2 >= 1e-3 * norms) && i != j) {  // cancellation (or overflow): direct sum, as on the CPU
        const In* a = P + static_cast<index_t>(i) * ld;
        const In* b = P + static_cast<index_t>(j) * ld;
        d2 = 0.0;
        for (int k = 0; k < d; ++k) {
          const double t = static_cast<double>(a[k]) - static_cast<double>(b[k]);
          d2 += t * t;
        }
      }
      store(i, j, sqrt(d2) / scale);
    }
  __syncthreads();  // sh is reused by the caller's next tile
}

/// One block per upper tile pair (ti <= tj) and batch entry: writes both (i, j) and (j, i).
template <class In, class T>
__global__ void __launch_bounds__(tile_threads)
    distance_kernel(const In* __restrict__ P, index_t B, int n, int d, index_t pld, index_t pstride, T* dist,
                    index_t dld, index_t dstride, double scale, int* status) {
  __shared__ double sh[tile_smem_doubles];
  const int tiles = (n + tile - 1) / tile;
  const int ti = static_cast<int>(blockIdx.x) / tiles, tj = static_cast<int>(blockIdx.x) % tiles;
  if (ti > tj) return;  // whole block exits together: no barrier is split
  bool bad = false;
  for (index_t b = blockIdx.y; b < B; b += gridDim.y) {
    T* D = dist + b * dstride;
    distance_tile(P + b * pstride, pld, n, d, scale, ti * tile, tj * tile, sh, bad, [&](int i, int j, double v) {
      const T t = i == j ? T(0) : static_cast<T>(v);
      if (!finite(t)) cuda::detail::report(status, cuda::status_non_finite);
      D[static_cast<index_t>(i) * dld + j] = t;
      D[static_cast<index_t>(j) * dld + i] = t;
    });
  }
  if (bad) cuda::detail::report(status, cuda::status_non_finite);
}

/// Enqueues the distance kernel for B clouds (checked by the caller).
template <class In, class T>
void launch_distances(const cuda::context& ctx, const In* P, index_t B, index_t n, index_t d, index_t pld,
                      index_t pstride, T* dist, index_t dld, index_t dstride, double scale) {
  if (B == 0 || n == 0) return;
  require(n <= (index_t(1) << 24) && d <= 0x7fffffff, "pairwise_distances", "points",
          "too large for the CUDA kernel: ", n, " x ", d);
  const index_t tiles = (n + tile - 1) / tile;
  require(tiles * tiles <= 0x7fffffff, "pairwise_distances", "points", "too many points for one grid: ", n);
  const dim3 grid(static_cast<unsigned>(tiles * tiles), static_cast<unsigned>(B < 65535 ? B : 65535));
  cuda::detail::launch("pairwise_distances", distance_kernel<In, T>, grid, tile_threads, 0, ctx.stream, P, B,
                       static_cast<int>(n), static_cast<int>(d), pld, pstride, dist, dld, dstride, scale, ctx.status);
}

}  // namespace cu
}  // namespace detail

/// dist (n x n, device) = distances between the rows of points (n x d, device) / scale; the CUDA twin of
/// pairwise_distances(cpu, ...). Shapes are checked on the host (topofr::error); a NaN/Inf coordinate
/// sets cuda::status_non_finite in ctx.status (dist is then unspecified). Asynchronous on ctx.stream.
template <class In, class T = std::remove_const_t<In>>
void pairwise_distances(const cuda::context& ctx, matrix_view<In> points, matrix_view<T> dist,
                        double scale = 1.0) {
  detail::check_distance_args(points, dist, scale, "pairwise_distances");
  detail::cu::launch_distances(ctx, points.data(), 1, points.rows(), points.cols(), points.ld(), 0, dist.data(),
                               dist.ld(), 0, scale);
}

/// The batched form: dist[b] = pairwise_distances(points[b]) for b < B, one launch.
template <class In, class T = std::remove_const_t<In>>
void pairwise_distances(const cuda::context& ctx, batch_view<In> points, batch_view<T> dist, double scale = 1.0) {
  constexpr const char* fn = "pairwise_distances";
  detail::check_batch(points, fn, "points");
  detail::check_batch(dist, fn, "dist", true);
  detail::require(dist.batch() == points.batch(), fn, "dist", "expected batch ", points.batch(), ", got ",
                  dist.batch());
  if (points.batch() == 0) return;
  detail::check_distance_args(points[0], dist[0], scale, fn);
  detail::cu::launch_distances(ctx, points.data(), points.batch(), points.rows(), points.cols(), points.ld(),
                               points.batch_stride(), dist.data(), dist.ld(), dist.batch_stride(), scale);
}

}  // namespace topofr
