// topofr/cuda/persistence.cuh — batched 0-dimensional VR persistence pairs on the GPU (DESIGN §3.2), the
// CUDA twin of topofr/persistence.hpp with the same output bit for bit: the n-1 MST edges (u < v) under the
// strict order (dist(u, v) with u < v — the UPPER entry —, u*n + v), listed in that order, deaths = the
// upper entries (canonical: -0.0 reads as +0.0).
//
// Algorithm (why): one thread block per matrix runs dense Prim with the CPU's lexicographic key (packed
// into one uint64 (bits(w) << 32 | code) for float with n*n <= 2^32, else a (weight bits, code) pair).
//  * Training sizes (n = 128): the block stages the matrix's upper triangle in shared memory (row stride
//    n + 1, so the row part and the column part of a Prim "row" are both conflict-free), then each of the
//    n-1 steps is one shared-memory pass + warp-shuffle argmin + ONE __syncthreads (per-warp minima are
//    double-buffered by step parity). B matrices = B blocks in one launch; n = 128 float uses 66 KiB of
//    dynamic shared memory (opted in with cudaFuncSetAttribute).
//  * Matrices too large for shared memory (n >~ 230 float): the same Prim reads the upper entries from
//    global memory (a column read is just another L2-cached load, so no symmetry checksum is needed);
//    each step costs about one L2 round trip (~0.5-1 us), so n = 2048 is ~1-2 ms per wave of matrices,
//    independent of B up to ~2 blocks per SM. Borůvka rounds would parallelise one large matrix better;
//    Prim was chosen because it is obviously the CPU's algorithm (correctness first).
//  * Reading the upper entry D[min][max] directly makes asymmetric matrices exact without the CPU's
//    checksum + rerun. Entries are validated in the same pass that stages them.
//  * The n-1 tree keys are sorted inside the block (bitonic sort in shared memory) and emitted.
// From points: for B >= the number of SMs and a matrix that fits shared memory, one fused kernel computes
// each cloud's distances into its block's shared memory (distance.cuh's tile routine, double precision)
// and runs Prim there: no B x n x n buffer. Otherwise (few clouds, so one SM per cloud would leave the GPU
// idle, or large n) distances are computed by the many-block distance kernel into a workspace of at most
// 256 MiB of matrices at a time, then the matrix kernel runs: the same values bit for bit.
// Details and costs: docs/cuda.md.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "../persistence.hpp"
#include "context.cuh"
#include "distance.cuh"

namespace topofr {
namespace detail {
namespace cu {

__device__ inline std::uint64_t canon_bits(float v) { return __float_as_uint(v) & 0x7fffffffu; }
__device__ inline std::uint64_t canon_bits(double v) {
  return static_cast<std::uint64_t>(__double_as_longlong(v)) & 0x7fffffffffffffffull;
}
template <class V> __device__ V value_of_bits(std::uint64_t b);
template <> __device__ inline float value_of_bits<float>(std::uint64_t b) {
  return __uint_as_float(static_cast<unsigned>(b));
}
template <> __device__ inline double value_of_bits<double>(std::uint64_t b) {
  return __longlong_as_double(static_cast<long long>(b));
}

/// The Prim/Kruskal key: (weight bits, code) ordered lexicographically. Two reserved values above every
/// real key: inf (not reached yet) < tree (vertex already in the tree, never updated, never the minimum
/// while an outside vertex remains — after the first step every outside vertex holds a real key).
template <bool Packed> struct vr0_key;
template <> struct vr0_key<true> {  // float, n*n <= 2^32: canonical bits < 2^31, so real keys < 2^63
  std::uint64_t k;
  static __device__ vr0_key make(std::uint64_t w, std::uint64_t code) { return {(w << 32) | code}; }
  static __device__ vr0_key inf() { return {~0ull - 1}; }
  static __device__ vr0_key tree() { return {~0ull}; }
  __device__ bool operator<(vr0_key o) const { return k < o.k; }
  __device__ bool is_tree() const { return k == ~0ull; }
  __device__ std::uint64_t weight() const { return k >> 32; }
  __device__ std::uint64_t code() const { return k & 0xffffffffull; }
  __device__ vr0_key shfl_down(int off) const { return {__shfl_down_sync(0xffffffffu, k, off)}; }
};
template <> struct vr0_key<false> {  // double (or float with n*n > 2^32): canonical bits < 2^63
  std::uint64_t w, c;
  static __device__ vr0_key make(std::uint64_t w, std::uint64_t code) { return {w, code}; }
  static __device__ vr0_key inf() { return {~0ull, ~0ull - 1}; }
  static __device__ vr0_key tree() { return {~0ull, ~0ull}; }
  __device__ bool operator<(vr0_key o) const { return w < o.w || (w == o.w && c < o.c); }
  __device__ bool is_tree() const { return w == ~0ull && c == ~0ull; }
  __device__ std::uint64_t weight() const { return w; }
  __device__ std::uint64_t code() const { return c; }
  __device__ vr0_key shfl_down(int off) const {
    return {__shfl_down_sync(0xffffffffu, w, off), __shfl_down_sync(0xffffffffu, c, off)};
  }
};

/// The shared-memory layout of one block: [partial minima][their vertices][keys n][tree keys N][matrix].
template <class K>
struct vr0_layout {
  TOPOFR_HD static constexpr std::size_t align(std::size_t b) { return (b + 15) / 16 * 16; }
  index_t n, npow2;
  std::size_t red, redy, keys, tree, matrix;  // byte offsets
  std::size_t head_bytes;                     // everything but the matrix
  __host__ __device__ vr0_layout(index_t n_) : n(n_), npow2(1) {
    while (npow2 < n - 1) npow2 *= 2;
    red = 0;
    redy = align(2 * 32 * sizeof(K));
    keys = redy + align(2 * 32 * sizeof(int));
    tree = keys + align(static_cast<std::size_t>(n) * sizeof(K));
    matrix = tree + align(static_cast<std::size_t>(npow2) * sizeof(K));
    head_bytes = matrix;
  }
};

/// Dense Prim by one block. weight(a, b) (a < b) returns the canonical bits of the upper entry. Writes
/// the n-1 tree keys (discovery order) into tree[0..n-2]. Each outside vertex y is owned by thread
/// y % blockDim, which alone reads and writes keys[y]: the only cross-thread traffic is the argmin.
template <class K, class W>
__device__ void prim_block(int n, K* keys, K* tree, K* red, int* redy, W&& weight) {
  const int tid = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  const int lane = tid & 31, warp = tid >> 5, nw = (nt + 31) >> 5;
  const std::uint64_t un = static_cast<std::uint64_t>(n);
  for (int y = tid; y < n; y += nt) keys[y] = K::inf();
  int x = 0;  // the vertex that joined last
  for (int t = 1; t < n; ++t) {
    K best = K::tree();
    int by = -1;
    for (int y = tid; y < n; y += nt) {
      K k = keys[y];
      if (y == x) {
        keys[y] = K::tree();
        continue;
      }
      if (k.is_tree()) continue;
      const int a = x < y ? x : y, b = x < y ? y : x;
      const K c = K::make(weight(a, b), static_cast<std::uint64_t>(a) * un + static_cast<std::uint64_t>(b));
      if (c < k) {
        k = c;
        keys[y] = k;
      }
      if (k < best) {
        best = k;
        by = y;
      }
    }
    for (int off = 16; off > 0; off >>= 1) {  // keys of outside vertices are distinct: no tie to break
      const K o = best.shfl_down(off);
      const int oy = __shfl_down_sync(0xffffffffu, by, off);
      if (o < best) {
        best = o;
        by = oy;
      }
    }
    const int buf = (t & 1) * 32;  // double buffer: the writes of step t + 2 come after step t + 1's barrier
    if (lane == 0) {
      red[buf + warp] = best;
      redy[buf + warp] = by;
    }
    __syncthreads();
    best = red[buf];
    by = redy[buf];
    for (int w = 1; w < nw; ++w) {
      const K o = red[buf + w];
      if (o < best) {
        best = o;
        by = redy[buf + w];
      }
    }
    if (tid == 0) tree[t - 1] = best;
    x = by;
  }
  __syncthreads();
}

/// Sorts tree[0..n-2] ascending (bitonic over npow2 slots, the tail padded with K::tree()) and writes
/// pairs[k] = (code / n, code % n), deaths[k] = the weight (as V, converted to T).
template <class V, class T, class K>
__device__ void sort_and_emit(int n, index_t npow2, K* tree, edge* pairs, T* deaths) {
  const int tid = static_cast<int>(threadIdx.x), nt = static_cast<int>(blockDim.x);
  for (index_t i = n - 1 + tid; i < npow2; i += nt) tree[i] = K::tree();
  __syncthreads();
  for (index_t k = 2; k <= npow2; k <<= 1)
    for (index_t j = k >> 1; j > 0; j >>= 1) {
      for (index_t i = tid; i < npow2; i += nt) {
        const index_t l = i ^ j;
        if (l <= i) continue;
        const K a = tree[i], b = tree[l];
        const bool up = (i & k) == 0;
        if (up ? (b < a) : (a < b)) {
          tree[i] = b;
          tree[l] = a;
        }
      }
      __syncthreads();
    }
  const std::uint64_t un = static_cast<std::uint64_t>(n);
  for (int k = tid; k < n - 1; k += nt) {
    const K e = tree[k];
    pairs[k] = edge{static_cast<std::int32_t>(e.code() / un), static_cast<std::int32_t>(e.code() % un)};
    if (deaths) deaths[k] = static_cast<T>(value_of_bits<V>(e.weight()));
  }
}

/// Off-diagonal entries must be finite and >= 0 (-0.0 allowed), as on the CPU.
template <class V>
__device__ inline void check_entry(V v, int& bad) {
  if (!finite(v)) bad |= cuda::status_non_finite;
  else if (v < V(0)) bad |= cuda::status_negative_distance;
}

struct vr0_out {
  edge* pairs;
  index_t pairs_ld;
  void* deaths;
  index_t deaths_ld;
};

/// One block per matrix. staged: the upper triangle is copied to shared memory (stride n + 1); else read
/// from global memory. gkeys: keys and tree in global memory (per block n + npow2) when they do not fit.
template <class V, class T, bool Packed>
__global__ void __launch_bounds__(1024) vr0_matrix_kernel(const V* __restrict__ D, int n, index_t ld, index_t stride, vr0_out out,
                                  bool staged, vr0_key<Packed>* gkeys, int* status) {
  using K = vr0_key<Packed>;
  unsigned char* const smem = cuda::detail::dynamic_shared<unsigned char>();
  const vr0_layout<K> L(n);
  const index_t b = blockIdx.x;
  const V* M = D + b * stride;
  V* S = reinterpret_cast<V*>(smem + L.matrix);
  const index_t sld = n + 1;
  int bad = 0;
  for (index_t i = 0; i < n; ++i)  // coalesced row reads: validate every entry, stage the upper part
    for (index_t j = threadIdx.x; j < n; j += blockDim.x) {
      if (i == j) continue;
      const V v = M[i * ld + j];
      check_entry(v, bad);
      if (staged && i < j) S[i * sld + j] = v;
    }
  if (bad) cuda::detail::report(status, bad);
  K* keys = gkeys ? gkeys + b * (n + L.npow2) : reinterpret_cast<K*>(smem + L.keys);
  K* tree = gkeys ? keys + n : reinterpret_cast<K*>(smem + L.tree);
  __syncthreads();
  K* red = reinterpret_cast<K*>(smem + L.red);
  int* redy = reinterpret_cast<int*>(smem + L.redy);
  if (staged)
    prim_block(n, keys, tree, red, redy, [&](int a, int c) { return canon_bits(S[a * sld + c]); });
  else
    prim_block(n, keys, tree, red, redy, [&](int a, int c) { return canon_bits(__ldg(M + a * ld + c)); });
  sort_and_emit<V>(n, L.npow2, tree, out.pairs + b * out.pairs_ld,
                   out.deaths ? static_cast<T*>(out.deaths) + b * out.deaths_ld : static_cast<T*>(nullptr));
}

/// Fused from points (exactly tile_threads threads): the cloud's upper distances go into shared memory by
/// distance_tile (the same values as pairwise_distances), then Prim as above.
template <class In, class V, class T, bool Packed>
__global__ void __launch_bounds__(tile_threads)
    vr0_points_kernel(const In* __restrict__ P, int n, int d, index_t ld, index_t stride, double scale,
                      vr0_out out, int* status) {
  using K = vr0_key<Packed>;
  unsigned char* const smem = cuda::detail::dynamic_shared<unsigned char>();
  const vr0_layout<K> L(n);
  const index_t b = blockIdx.x;
  V* S = reinterpret_cast<V*>(smem + L.matrix);
  const index_t sld = n + 1;
  double* tile_buf = reinterpret_cast<double*>(
      smem + vr0_layout<K>::align(L.matrix + static_cast<std::size_t>(n) * sld * sizeof(V)));
  bool bad_point = false, bad_dist = false;
  const int tiles = (n + tile - 1) / tile;
  for (int ti = 0; ti < tiles; ++ti)
    for (int tj = ti; tj < tiles; ++tj)
      distance_tile(P + b * stride, ld, n, d, scale, ti * tile, tj * tile, tile_buf, bad_point,
                    [&](int i, int j, double v) {
                      if (i >= j) return;
                      const V t = static_cast<V>(v);
                      bad_dist |= !finite(t);
                      S[i * sld + j] = t;
                    });
  if (bad_point || bad_dist) cuda::detail::report(status, cuda::status_non_finite);
  K* keys = reinterpret_cast<K*>(smem + L.keys);
  K* tree = reinterpret_cast<K*>(smem + L.tree);
  K* red = reinterpret_cast<K*>(smem + L.red);
  int* redy = reinterpret_cast<int*>(smem + L.redy);
  prim_block(n, keys, tree, red, redy, [&](int a, int c) { return canon_bits(S[a * sld + c]); });
  sort_and_emit<V>(n, L.npow2, tree, out.pairs + b * out.pairs_ld,
                   out.deaths ? static_cast<T*>(out.deaths) + b * out.deaths_ld : static_cast<T*>(nullptr));
}

inline int device_attribute(cudaDeviceAttr a, const char* fn) {
  int dev = 0, v = 0;
  cuda::check_cuda(cudaGetDevice(&dev), fn);
  cuda::check_cuda(cudaDeviceGetAttribute(&v, a, dev), fn);
  return v;
}

template <class V>
constexpr bool packs_key(index_t n) {
  return std::is_same<V, float>::value && std::uint64_t(n) * std::uint64_t(n) <= (std::uint64_t(1) << 32);
}

template <class V, class T, bool Packed>
void launch_vr0_matrix_k(const cuda::context& ctx, const V* D, index_t B, index_t n, index_t ld, index_t stride,
                         vr0_out out, const char* fn) {
  using K = vr0_key<Packed>;
  const vr0_layout<K> L(n);
  const std::size_t smax = static_cast<std::size_t>(device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, fn));
  const std::size_t staged_bytes = L.head_bytes + static_cast<std::size_t>(n) * (n + 1) * sizeof(V);
  const bool staged = staged_bytes <= smax;
  const bool keys_in_smem = L.head_bytes <= smax;
  const std::size_t bytes = staged ? staged_bytes : keys_in_smem ? L.head_bytes : L.keys;
  // Keys that do not fit (n in the tens of thousands): global scratch from the caller's allocator.
  cuda::workspace gk(ctx, keys_in_smem ? 0 : static_cast<std::size_t>(B) * (n + L.npow2) * sizeof(K));
  auto kernel = vr0_matrix_kernel<V, T, Packed>;
  cuda::check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
                   fn);
  const int threads = static_cast<int>(n <= 128 ? 128 : n >= 1024 ? 1024 : (n + 31) / 32 * 32);
  for (index_t b0 = 0; b0 < B; b0 += 0x7fffffff) {  // grid.x limit
    const index_t nb = B - b0 < 0x7fffffff ? B - b0 : 0x7fffffff;
    vr0_out o = out;
    o.pairs += b0 * out.pairs_ld;
    if (o.deaths) o.deaths = static_cast<T*>(o.deaths) + b0 * out.deaths_ld;
    cuda::detail::launch(fn, kernel, static_cast<unsigned>(nb), threads, bytes, ctx.stream, D + b0 * stride,
                         static_cast<int>(n), ld, stride, o, staged, gk.as<K>(), ctx.status);
  }
}

template <class V, class T>
void launch_vr0_matrix(const cuda::context& ctx, const V* D, index_t B, index_t n, index_t ld, index_t stride,
                       vr0_out out, const char* fn) {
  if (B == 0) return;
  if (packs_key<V>(n)) launch_vr0_matrix_k<V, T, true>(ctx, D, B, n, ld, stride, out, fn);
  else launch_vr0_matrix_k<V, T, false>(ctx, D, B, n, ld, stride, out, fn);
}

/// Tries the fused kernel; false when the matrix does not fit shared memory or the batch is too small
/// to fill the GPU with one block per cloud.
template <class In, class V, class T, bool Packed>
bool launch_vr0_points_fused(const cuda::context& ctx, const In* P, index_t B, index_t n, index_t d, index_t ld,
                             index_t stride, double scale, vr0_out out, const char* fn) {
  using K = vr0_key<Packed>;
  const vr0_layout<K> L(n);
  const std::size_t smax = static_cast<std::size_t>(device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, fn));
  const std::size_t bytes = vr0_layout<K>::align(L.head_bytes + static_cast<std::size_t>(n) * (n + 1) * sizeof(V)) +
                            tile_smem_doubles * sizeof(double);
  const index_t sms = device_attribute(cudaDevAttrMultiProcessorCount, fn);
  if (bytes > smax || B < sms || B > 0x7fffffff || d > 0x7fffffff) return false;
  auto kernel = vr0_points_kernel<In, V, T, Packed>;
  cuda::check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
                   fn);
  cuda::detail::launch(fn, kernel, static_cast<unsigned>(B), tile_threads, bytes, ctx.stream, P, static_cast<int>(n),
                       static_cast<int>(d), ld, stride, scale, out, ctx.status);
  return true;
}

}  // namespace cu
}  // namespace detail

/// The n-1 persistence pairs of the n x n distance matrix dist (device memory), sorted by (dist(u, v),
/// u*n + v), u < v, deaths (optional) = dist(u, v): identical to persistence_pairs(cpu, ...), ties and
/// asymmetric matrices included. Shapes are checked on the host (topofr::error, as on the CPU); an
/// off-diagonal NaN/Inf or negative entry sets cuda::status_non_finite / status_negative_distance in
/// ctx.status (the outputs are then unspecified, but every pair is within 0 <= u < v < n).
template <class In, class T = std::remove_const_t<In>>
void persistence_pairs(const cuda::context& ctx, matrix_view<In> dist, vector_view<edge> pairs,
                       vector_view<T> deaths = {}) {
  using V = std::remove_const_t<In>;
  static_assert(detail::is_real_v<V> && detail::is_real_v<T>, "topofr: float or double only");
  constexpr const char* fn = "persistence_pairs";
  detail::check_view(dist, fn, "dist");
  detail::check_vr0_shape(dist.rows(), dist.cols(), dist.ld(), fn, "dist");
  const index_t n = dist.rows();
  detail::check_size(pairs, n - 1, fn, "pairs");
  if (!deaths.empty()) detail::check_size(deaths, n - 1, fn, "deaths");
  detail::cu::launch_vr0_matrix<V, T>(ctx, dist.data(), 1, n, dist.ld(), 0,
                                      {pairs.data(), 0, deaths.empty() ? nullptr : deaths.data(), 0}, fn);
}

/// The batched form: B matrices, one block each, one launch: pairs B x (n-1), deaths B x (n-1) optional.
template <class In, class T = std::remove_const_t<In>>
void persistence_pairs(const cuda::context& ctx, batch_view<In> dist, matrix_view<edge> pairs,
                       matrix_view<T> deaths = {}) {
  using V = std::remove_const_t<In>;
  static_assert(detail::is_real_v<V> && detail::is_real_v<T>, "topofr: float or double only");
  constexpr const char* fn = "persistence_pairs";
  const index_t nb = dist.batch();
  const index_t n = detail::check_vr0_batch_args(dist, pairs, deaths, fn);
  detail::cu::launch_vr0_matrix<V, T>(
      ctx, dist.data(), nb, n, dist.ld(), dist.batch_stride(),
      {pairs.data(), pairs.ld(), deaths.empty() ? nullptr : deaths.data(), deaths.empty() ? 0 : deaths.ld()}, fn);
}

/// Pairs of B point clouds (B x n x d, device) with the distances computed on the fly, in double as on the
/// CPU (see distance.cuh); equal bit for bit to pairwise_distances(ctx, ...) followed by
/// persistence_pairs(ctx, ...). No B x n x n buffer: large batches of small clouds run fused in shared
/// memory; otherwise matrices go through a workspace of at most 256 MiB (ctx.alloc). A NaN/Inf coordinate
/// sets cuda::status_non_finite. Shape errors: as on the CPU.
template <class In, class T = std::remove_const_t<In>>
void persistence_pairs_from_points(const cuda::context& ctx, batch_view<In> points, double scale,
                                   matrix_view<edge> pairs, matrix_view<T> deaths = {}) {
  using V = std::remove_const_t<In>;
  static_assert(detail::is_real_v<V> && detail::is_real_v<T>, "topofr: float or double only");
  constexpr const char* fn = "persistence_pairs_from_points";
  const index_t nb = points.batch(), n = points.rows(), d = points.cols();
  detail::check_batch(points, fn, "points");
  detail::require(d >= 0 && points.ld() >= d, fn, "points", "invalid shape ", n, " x ", d, " (ld ", points.ld(), ")");
  detail::require(n >= 2, fn, "points", "need at least 2 points, got n = ", n);
  detail::require(n <= std::numeric_limits<std::int32_t>::max(), fn, "points", "n must fit the int32 edge type, got ",
                  n);
  detail::require_scale(scale, fn, "scale");
  detail::check_shape(pairs, nb, n - 1, fn, "pairs");
  if (!deaths.empty()) detail::check_shape(deaths, nb, n - 1, fn, "deaths");
  if (nb == 0) return;
  const detail::cu::vr0_out out{pairs.data(), pairs.ld(), deaths.empty() ? nullptr : deaths.data(),
                                deaths.empty() ? 0 : deaths.ld()};
  const bool fused =
      detail::cu::packs_key<V>(n)
          ? detail::cu::launch_vr0_points_fused<In, V, T, true>(ctx, points.data(), nb, n, d, points.ld(),
                                                                points.batch_stride(), scale, out, fn)
          : detail::cu::launch_vr0_points_fused<In, V, T, false>(ctx, points.data(), nb, n, d, points.ld(),
                                                                 points.batch_stride(), scale, out, fn);
  if (fused) return;
  const std::size_t per = static_cast<std::size_t>(n) * static_cast<std::size_t>(n) * sizeof(V);
  const std::size_t budget = std::size_t(256) << 20;
  const index_t chunk = std::max<index_t>(1, std::min<index_t>(nb, static_cast<index_t>(budget / per)));
  cuda::workspace ws(ctx, static_cast<std::size_t>(chunk) * per);
  for (index_t b0 = 0; b0 < nb; b0 += chunk) {
    const index_t m = std::min(chunk, nb - b0);
    detail::cu::launch_distances(ctx, points.data() + b0 * points.batch_stride(), m, n, d, points.ld(),
                                 points.batch_stride(), ws.as<V>(), n, n * n, scale);
    detail::cu::vr0_out o = out;
    o.pairs += b0 * out.pairs_ld;
    if (o.deaths) o.deaths = static_cast<T*>(o.deaths) + b0 * out.deaths_ld;
    detail::cu::launch_vr0_matrix<V, T>(ctx, ws.as<V>(), m, n, n, n * n, o, fn);
  }
}

}  // namespace topofr
