// topofr/cuda/distance.cuh — Euclidean distance matrices on the GPU, the CUDA twin of topofr/distance.hpp:
// dist(i, j) = ||x_i - x_j|| / scale, (i, j) and (j, i) written with the same bits, 0 on the diagonal.
//
// How (and why hand-written, not cuBLAS): the Gram matrix G = X X^T is computed in DOUBLE on the FP64
// tensor cores (wmma m8n8k4, sm_80+), from float or double points converted once while they are staged in
// shared memory; products of floats are exact in double, so the arithmetic is the CPU's (double Gram,
// d^2 = G_ii + G_jj - 2 G_ij, recomputed as sum (a_k - b_k)^2 in double when d^2 < 1e-3 (G_ii + G_jj) or not
// finite, sqrt / scale rounded once): the CPU's double path, so double results and float results below 64
// dimensions agree with the CPU to ~1 ulp; above 64 dimensions the CPU computes float input through a guarded
// float Gram (docs/math.md) and both sides are within the 1e-5 contract of the exact distance, nearly
// coincident points included. cuBLAS DSYRK would need a converted double copy of the points (3x the
// bytes of an image batch), and its summation order would not be ours (so not the same bits on every
// path); the guard, the norms and the symmetric store are fused here.
//
// Work split: only upper 32 x 32 tiles (ti <= tj) are computed, by 128-thread blocks (4 warps, each a
// 16 x 16 quarter = 2 x 2 mma tiles). The dimension is cut into fixed slices of gram_slice = 512: a task
// is (cloud, tile pair, slice), so one cloud of a 37,632-dimensional image batch spreads over 10 x 74 blocks
// (split-K) and a batch of small clouds over B x 10. Every Gram entry is summed the same way whatever the
// path: k in steps of 4 (one mma) in increasing order within a slice, then the slices added in increasing
// order starting from 0. So pairwise_distances(ctx) and persistence_pairs_from_points(ctx) produce the same
// bits, and the batch size or grid never changes a value.
// Cost (H100, estimated, not measured): FP64 tensor peak 33.5e12 FMA/s; one 32 x 32 x 512 task is 0.52M FMA
// in 8 staging steps (64 dimensions each). A block is small (36 KiB of shared memory), so ~6 run per SM and
// hide each other's load latency; a warp's 16 x 16 quarter loads fragments from shared memory at 1 byte
// per FMA, which caps it near half the tensor peak. docs/cuda.md has the estimates per case.
#pragma once

#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../distance.hpp"
#include "context.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "topofr's CUDA kernels need sm_80 or newer (FP64 tensor cores); set CMAKE_CUDA_ARCHITECTURES (e.g. 80;90)"
#endif

namespace topofr {
namespace detail {
namespace cu {

constexpr int gram_tile = 32;            // output tile edge
constexpr int gram_threads = 128;        // 4 warps: warp w owns rows 16 (w / 2) .., columns 16 (w % 2) ..
constexpr int gram_k = 64;               // dimensions staged per step
constexpr int gram_ld = gram_k + 4;      // staged row stride in doubles (a multiple of 4: 32-byte rows for wmma)
constexpr index_t gram_slice = 512;      // split-K slice: fixed, so every path sums an entry in the same order
constexpr int gram_stage_doubles = 2 * gram_tile * gram_ld;  // A and B staging (B unused on diagonal tiles)

__device__ inline bool finite(float x) { return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u; }
__device__ inline bool finite(double x) {
  return (static_cast<unsigned long long>(__double_as_longlong(x)) & 0x7ff0000000000000ull) !=
         0x7ff0000000000000ull;
}

TOPOFR_HD inline index_t gram_slices(index_t d) { return d <= gram_slice ? 1 : (d + gram_slice - 1) / gram_slice; }
TOPOFR_HD inline index_t gram_tiles(index_t n) { return (n + gram_tile - 1) / gram_tile; }
TOPOFR_HD inline index_t gram_pairs(index_t n) { return gram_tiles(n) * (gram_tiles(n) + 1) / 2; }
/// Index of the upper tile pair (ti <= tj) among T x T tiles, row by row.
TOPOFR_HD inline index_t gram_pair_index(index_t ti, index_t tj, index_t T) { return ti * T - ti * (ti - 1) / 2 + (tj - ti); }
/// The inverse: pair p -> (ti, tj).
TOPOFR_HD inline void gram_pair_of(index_t p, index_t T, int& ti, int& tj) {
  int i = 0;
  while (p >= T - i) p -= T - i++;
  ti = i;
  tj = static_cast<int>(i + p);
}

using gram_acc = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 8, 8, 4, double>;

/// The block's 32 x 32 tile (rows i0.., columns j0..) of P P^T over dimensions [k0, k1), ADDED to each warp's
/// acc[2][2] (its 16 x 16 quarter). P: n x d rows with leading dimension ld; rows >= n and k >= k1 read as 0.
/// stage: gram_stage_doubles doubles of shared memory, 32-byte aligned. bad |= a non-finite coordinate.
/// Every thread of the block must call it (barriers inside).
template <class In>
__device__ void gram_tile_add(const In* __restrict__ P, index_t ld, int n, int i0, int j0, index_t k0, index_t k1,
                              double* stage, gram_acc (&acc)[2][2], bool& bad) {
  namespace wmma = nvcuda::wmma;
  const int tid = static_cast<int>(threadIdx.x), warp = tid >> 5;
  const bool diag = i0 == j0;
  double* sa = stage;
  double* sb = diag ? stage : stage + gram_tile * gram_ld;
  const int r0 = 16 * (warp >> 1), c0 = 16 * (warp & 1);
  for (index_t kb = k0; kb < k1; kb += gram_k) {
    // Stage 32 rows x 64 dims of each operand: a warp reads 32 consecutive coordinates of a row (coalesced);
    // all of a thread's loads are issued before the first store (up to 16 in flight).
    const int lane = tid & 31;
    for (int r = warp; r < (diag ? 1 : 2) * gram_tile; r += gram_threads / 32) {
      const int row = r < gram_tile ? i0 + r : j0 + r - gram_tile;
      double* dst = r < gram_tile ? sa + r * gram_ld : sb + (r - gram_tile) * gram_ld;
#pragma unroll
      for (int h = 0; h < gram_k; h += 32) {
        const index_t k = kb + h + lane;
        double v = 0.0;
        if (row < n && k < k1) {
          const In x = P[static_cast<index_t>(row) * ld + k];
          bad |= !finite(x);
          v = static_cast<double>(x);
        }
        dst[h + lane] = v;
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < gram_k; kk += 4) {
      wmma::fragment<wmma::matrix_a, 8, 8, 4, double, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 8, 8, 4, double, wmma::col_major> b[2];  // B(k, j) = P(j0 + j, k)
#pragma unroll
      for (int q = 0; q < 2; ++q) {
        wmma::load_matrix_sync(a[q], sa + (r0 + 8 * q) * gram_ld + kk, gram_ld);
        wmma::load_matrix_sync(b[q], sb + (c0 + 8 * q) * gram_ld + kk, gram_ld);
      }
#pragma unroll
      for (int p = 0; p < 2; ++p)
#pragma unroll
        for (int q = 0; q < 2; ++q) wmma::mma_sync(acc[p][q], a[p], b[q], acc[p][q]);
    }
    __syncthreads();  // the staging buffers are rewritten next step
  }
}

/// Stores each warp's quarter of a 32 x 32 tile to dst (row-major, leading dimension ldd).
__device__ inline void gram_tile_store(gram_acc (&acc)[2][2], double* dst, int ldd) {
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int r0 = 16 * (warp >> 1), c0 = 16 * (warp & 1);
#pragma unroll
  for (int p = 0; p < 2; ++p)
#pragma unroll
    for (int q = 0; q < 2; ++q)
      nvcuda::wmma::store_matrix_sync(dst + (r0 + 8 * p) * ldd + c0 + 8 * q, acc[p][q], ldd, nvcuda::wmma::mem_row_major);
}

__device__ inline void gram_tile_zero(gram_acc (&acc)[2][2]) {
#pragma unroll
  for (int p = 0; p < 2; ++p)
#pragma unroll
    for (int q = 0; q < 2; ++q) nvcuda::wmma::fill_fragment(acc[p][q], 0.0);
}

/// The distance of rows i != j from their Gram entries, in double (the CPU's formula and guard):
/// d^2 = gii + gjj - 2 gij, or the direct sum of squared differences when that cancels or overflows.
template <class In>
__device__ inline double gram_distance(double gii, double gjj, double gij, const In* __restrict__ pi,
                                       const In* __restrict__ pj, index_t d, double scale) {
  const double norms = gii + gjj;
  double d2 = norms - 2.0 * gij;
  if (!(d2 >= 1e-3 * norms)) {
    d2 = 0.0;
    for (index_t k = 0; k < d; ++k) {
      const double t = static_cast<double>(pi[k]) - static_cast<double>(pj[k]);
      d2 += t * t;
    }
  }
  return sqrt(d2) / scale;
}

/// A batch of clouds: cloud b is P + b * stride (n x d, leading dimension ld).
template <class In>
struct clouds {
  const In* P;
  index_t stride, ld;
  int n, d;
  double scale;
};

/// Grid: one block per (cloud, slice, tile pair). Writes the tile's slice sum to
/// part[((b * S + s) * pairs + p) * 1024] (32 x 32 doubles, row-major).
template <class In>
__global__ void __launch_bounds__(gram_threads) gram_kernel(clouds<In> c, index_t B, double* part, int* status) {
  __shared__ __align__(32) double stage[gram_stage_doubles];
  const index_t T = gram_tiles(c.n), pairs = gram_pairs(c.n), S = gram_slices(c.d);
  bool bad = false;
  for (index_t task = blockIdx.x; task < B * S * pairs; task += gridDim.x) {
    const index_t p = task % pairs, bs = task / pairs, s = bs % S, b = bs / S;
    int ti, tj;
    gram_pair_of(p, T, ti, tj);
    gram_acc acc[2][2];
    gram_tile_zero(acc);
    const index_t k0 = s * gram_slice, k1 = S == 1 ? c.d : std::min<index_t>(c.d, k0 + gram_slice);
    gram_tile_add(c.P + b * c.stride, c.ld, c.n, gram_tile * ti, gram_tile * tj, k0, k1, stage, acc, bad);
    gram_tile_store(acc, part + task * (gram_tile * gram_tile), gram_tile);
  }
  if (bad) cuda::detail::report(status, cuda::status_non_finite);
}

/// gram[b][p][e] = sum over slices s (in order, from 0) of part[b][s][p][e]. Only when S > 1.
/// A template (Acc = double) like every kernel in the headers: a non-template __global__ function would be
/// defined by every nvcc translation unit that includes this header, and their link would fail.
template <class Acc>
__global__ void gram_reduce_kernel(const Acc* __restrict__ part, index_t B, index_t S, index_t per_slice,
                                   Acc* gram) {
  const index_t total = B * per_slice;
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < total; t += index_t(gridDim.x) * blockDim.x) {
    const index_t b = t / per_slice, e = t % per_slice;
    const double* src = part + b * S * per_slice + e;
    double acc = 0.0;
    for (index_t s = 0; s < S; ++s) acc += src[s * per_slice];
    gram[t] = acc;
  }
}

/// G(i, j) of cloud b's final Gram (tiles of gram_pairs(n) x 1024 doubles per cloud), i <= j.
TOPOFR_HD inline index_t gram_at(index_t i, index_t j, index_t T) {
  return gram_pair_index(i / gram_tile, j / gram_tile, T) * (gram_tile * gram_tile) + (i % gram_tile) * gram_tile +
         j % gram_tile;
}

/// dist[b](i, j) and (j, i) from the final Gram, one thread per upper entry (diagonal: 0).
template <class In, class T>
__global__ void gram_distance_kernel(clouds<In> c, index_t B, const double* __restrict__ gram, T* dist, index_t dld,
                                     index_t dstride, int* status) {
  const index_t n = c.n, Tn = gram_tiles(n), per = gram_pairs(n) * gram_tile * gram_tile;
  const index_t total = B * n * n;
  bool bad = false;
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < total; t += index_t(gridDim.x) * blockDim.x) {
    const index_t b = t / (n * n), i = (t / n) % n, j = t % n;
    if (i > j) continue;  // (j, i) writes both
    T* D = dist + b * dstride;
    if (i == j) {
      D[i * dld + i] = T(0);
      continue;
    }
    const double* G = gram + b * per;
    const In* P = c.P + b * c.stride;
    const double v = gram_distance(G[gram_at(i, i, Tn)], G[gram_at(j, j, Tn)], G[gram_at(i, j, Tn)], P + i * c.ld,
                                   P + j * c.ld, c.d, c.scale);
    const T tv = static_cast<T>(v);
    bad |= !finite(tv);
    D[i * dld + j] = tv;
    D[j * dld + i] = tv;
  }
  if (bad) cuda::detail::report(status, cuda::status_non_finite);
}

using cuda::detail::grid_for;  // (topofr/cuda/context.cuh)

/// The final Gram tiles of B clouds into `gram` (B x gram_pairs(n) x 1024 doubles): one task launch, plus a
/// fixed-order slice reduction when d > gram_slice (part: B x S x pairs x 1024 doubles of scratch).
template <class In>
void launch_gram(const cuda::context& ctx, const clouds<In>& c, index_t B, double* gram, const char* fn) {
  const index_t S = gram_slices(c.d), per = gram_pairs(c.n) * gram_tile * gram_tile;
  const index_t tasks = B * S * gram_pairs(c.n);
  if (S == 1) {
    cuda::detail::launch(fn, gram_kernel<In>, grid_for(tasks, 1, 0x7fffffff), gram_threads, 0, ctx.stream, c, B,
                         gram, ctx.status);
    return;
  }
  cuda::workspace part(ctx, static_cast<std::size_t>(B * S * per) * sizeof(double));
  cuda::detail::launch(fn, gram_kernel<In>, grid_for(tasks, 1, 0x7fffffff), gram_threads, 0, ctx.stream, c, B,
                       part.as<double>(), ctx.status);
  cuda::detail::launch(fn, gram_reduce_kernel<double>, grid_for(B * per), 256, 0, ctx.stream,
                       static_cast<const double*>(part.as<double>()), B, S, per, gram);
}

/// Gram scratch per cloud, in bytes.
inline std::size_t gram_bytes(index_t n) {
  return static_cast<std::size_t>(gram_pairs(n)) * gram_tile * gram_tile * sizeof(double);
}

/// Enqueues B clouds' distance matrices (checked by the caller), in chunks whose Gram scratch stays under
/// 256 MiB.
template <class In, class T>
void launch_distances(const cuda::context& ctx, const In* P, index_t B, index_t n, index_t d, index_t pld,
                      index_t pstride, T* dist, index_t dld, index_t dstride, double scale, const char* fn) {
  if (B == 0 || n == 0) return;
  require(n <= (index_t(1) << 20) && d <= 0x7fffffff, fn, "points", "too large for the CUDA kernels: ", n, " x ", d);
  const std::size_t per = gram_bytes(n);
  const index_t chunk = std::max<index_t>(1, std::min<index_t>(B, static_cast<index_t>((std::size_t(256) << 20) / per)));
  cuda::workspace g(ctx, static_cast<std::size_t>(chunk) * per);
  for (index_t b0 = 0; b0 < B; b0 += chunk) {
    const index_t m = std::min(chunk, B - b0);
    const clouds<In> c{P + b0 * pstride, pstride, pld, static_cast<int>(n), static_cast<int>(d), scale};
    launch_gram(ctx, c, m, g.as<double>(), fn);
    cuda::detail::launch(fn, gram_distance_kernel<In, T>, grid_for(m * n * n), 256, 0, ctx.stream, c, m,
                         static_cast<const double*>(g.as<double>()), dist + b0 * dstride, dld, dstride, ctx.status);
  }
}

}  // namespace cu
}  // namespace detail

/// dist (n x n, device) = distances between the rows of points (n x d, device) / scale; the CUDA twin of
/// pairwise_distances(cpu, ...). Shapes are checked on the host (topofr::error); a NaN/Inf coordinate
/// sets cuda::status_non_finite in ctx.status (dist is then unspecified). Asynchronous on ctx.stream;
/// scratch from ctx.alloc: the Gram tiles, ~n^2 doubles (x the slices d / 512 while they are summed).
template <class In, class T = std::remove_const_t<In>>
void pairwise_distances(const cuda::context& ctx, device_matrix_view<In> points, device_matrix_view<T> dist,
                        double scale = 1.0) {
  detail::check_distance_args(detail::shape_view(points), detail::shape_view(dist), scale, "pairwise_distances");
  detail::cu::launch_distances(ctx, points.data(), 1, points.rows(), points.cols(), points.ld(), 0, dist.data(),
                               dist.ld(), 0, scale, "pairwise_distances");
}

/// The batched form: dist[b] = pairwise_distances(points[b]) for b < B, the same bits as B single calls.
template <class In, class T = std::remove_const_t<In>>
void pairwise_distances(const cuda::context& ctx, device_batch_view<In> points, device_batch_view<T> dist, double scale = 1.0) {
  constexpr const char* fn = "pairwise_distances";
  detail::check_batch(detail::shape_view(points), fn, "points");
  detail::check_batch(detail::shape_view(dist), fn, "dist", true);
  detail::require(dist.batch() == points.batch(), fn, "dist", "expected batch ", points.batch(), ", got ",
                  dist.batch());
  if (points.batch() == 0) return;
  detail::check_distance_args(detail::shape_view(points[0]), detail::shape_view(dist[0]), scale, fn);
  detail::cu::launch_distances(ctx, points.data(), points.batch(), points.rows(), points.cols(), points.ld(),
                               points.batch_stride(), dist.data(), dist.ld(), dist.batch_stride(), scale, fn);
}

}  // namespace topofr
