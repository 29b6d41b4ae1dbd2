// topofr/cuda/persistence.cuh — batched 0-dimensional VR persistence pairs on the GPU, the CUDA twin of
// topofr/persistence.hpp with the same output bit for bit: the n-1 MST edges (u < v) under the strict order
// (dist(u, v) with u < v — the UPPER entry —, u*n + v), listed in that order, deaths = the upper entries
// (canonical: -0.0 reads as +0.0). Dense Prim with the CPU's lexicographic key (docs/math.md: it builds the
// reference Kruskal's tree).
//
// Three kernels, by size (why):
//  * n <= 256 and the matrix fits shared memory (float n <= ~238, double n <= ~168 on sm_90): ONE WARP runs
//    Prim. The block stages the matrix symmetrically (S[i][j] = S[j][i] = D[min][max]) in shared memory while
//    validating every off-diagonal entry; then warp 0 alone does the n-1 steps: lane l owns vertices l + 32 r,
//    their keys live in registers, a step reads row x of S at the owned columns (conflict-free), updates the
//    keys, and takes the warp's lexicographic minimum with __reduce_min_sync on 32-bit words (weight bits,
//    then the code) — no block barrier and no shared-memory round trip per step (~100-150 cycles: ~8-10 us
//    for n = 128). The n-1 tree keys are then ordered by rank (each key counts the smaller ones: keys are
//    distinct) and decoded. The matrix can come from a distance matrix (B strided matrices, or the two of an
//    ISA step: x and z in one B = 2 launch) or from a cloud's Gram tiles (distance.cuh), optionally writing
//    the matrix out as well.
//  * From points: the Gram tiles are spread over many small blocks first (tiles x 512-dimension slices,
//    distance.cuh: ~6 blocks per SM hide the load latency), then the small kernel builds each matrix from the
//    tiles: 2 launches (3 when d > 512). For a few clouds (all tile blocks in one wave, d <= 512: the B = 1
//    training step) it is ONE launch: each cloud's last tile block (threadfence reduction) runs the Prim. A kernel computing a cloud's Gram inside the Prim block (no scratch)
//    was written and dropped: at ~95 KiB of shared memory it runs 2 blocks per SM, and its k-steps then wait
//    on global loads (est. ~110 us for B = 256 x n = 128 x d = 512 against ~85 us spread).
//  * Larger n: one block (up to 1024 threads) per matrix reads D[min][max] from global memory (an L2-cached
//    load per step); each step is a block argmin with one barrier (per-warp minima double-buffered by step
//    parity), ~0.5-1 us, so n = 2048 is ~1-2 ms per wave of matrices; keys in shared memory (or in ctx.alloc
//    scratch beyond that); a bitonic sort of the tree keys.
// Every path gives the same pairs and deaths as the CPU on the same matrix, and from points the same bits as
// pairwise_distances(ctx) followed by persistence_pairs(ctx). Costs and estimates: docs/cuda.md.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
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

// ---- the warp Prim (n <= 256) ------------------------------------------------------------------------------

constexpr int warp_prim_max = 256;   // 8 vertices per lane
constexpr int small_threads = 128;   // the block that stages the matrix; warp 0 then runs Prim

/// A Prim key as 32-bit words compared lexicographically: (w1, w0) = the canonical weight bits (w1 = 0 for
/// float), c = the code min * n + max (< 2^16 for n <= 256). All ones: "none".
struct wkey {
  unsigned w1, w0, c;
  __device__ bool operator<(const wkey& o) const {
    return w1 != o.w1 ? w1 < o.w1 : (w0 != o.w0 ? w0 < o.w0 : c < o.c);
  }
  static __device__ wkey none() { return {~0u, ~0u, ~0u}; }
};
__device__ inline wkey make_wkey(float v, unsigned code) { return {0u, static_cast<unsigned>(canon_bits(v)), code}; }
__device__ inline wkey make_wkey(double v, unsigned code) {
  const std::uint64_t b = canon_bits(v);
  return {static_cast<unsigned>(b >> 32), static_cast<unsigned>(b), code};
}
template <class V> __device__ V wkey_value(const wkey& k);
template <> __device__ inline float wkey_value<float>(const wkey& k) { return __uint_as_float(k.w0); }
template <> __device__ inline double wkey_value<double>(const wkey& k) {
  return __longlong_as_double(static_cast<long long>((static_cast<std::uint64_t>(k.w1) << 32) | k.w0));
}

/// The warp's lexicographic minimum of k; returns it in every lane and sets src to the lane that holds it.
template <class V>
__device__ inline wkey warp_min(const wkey& k, int& src) {
  constexpr unsigned all = 0xffffffffu;
  wkey m;
  bool mine = true;
  if (std::is_same<V, double>::value) {
    m.w1 = __reduce_min_sync(all, k.w1);
    mine = k.w1 == m.w1;
  } else {
    m.w1 = 0u;
  }
  m.w0 = __reduce_min_sync(all, mine ? k.w0 : ~0u);
  mine = mine && k.w0 == m.w0;
  m.c = __reduce_min_sync(all, mine ? k.c : ~0u);
  mine = mine && k.c == m.c;
  src = __ffs(__ballot_sync(all, mine)) - 1;
  return m;
}

/// Prim by the calling warp on the symmetric n x n matrix S (row stride sld) in shared memory; writes the
/// n-1 tree keys (discovery order) to tree. Lane l owns y = l + 32 r, r < 8: key[r] in registers, intree bit r.
template <class V>
__device__ void prim_warp(int n, const V* S, int sld, wkey* tree) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const unsigned un = static_cast<unsigned>(n);
  wkey key[8];
#pragma unroll
  for (int r = 0; r < 8; ++r) key[r] = wkey::none();
  unsigned intree = lane == 0 ? 1u : 0u;  // vertex 0 starts the tree
  int x = 0;
  for (int t = 1; t < n; ++t) {
    const V* row = S + static_cast<index_t>(x) * sld;
    wkey best = wkey::none();
    int by = -1;
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      const int y = lane + 32 * r;
      if (y < n && !((intree >> r) & 1u)) {
        const unsigned a = static_cast<unsigned>(x < y ? x : y), b = static_cast<unsigned>(x < y ? y : x);
        const wkey c = make_wkey(row[y], a * un + b);
        if (c < key[r]) key[r] = c;
        if (key[r] < best) {
          best = key[r];
          by = y;
        }
      }
    }
    int src = 0;
    const wkey m = warp_min<V>(best, src);  // outside vertices hold distinct keys: one lane has it
    const int y = __shfl_sync(0xffffffffu, by, src);
    if (lane == 0) tree[t - 1] = m;
    if (lane == (y & 31)) intree |= 1u << (y >> 5);
    x = y;
  }
  __syncwarp();
}

/// Orders the n-1 distinct tree keys by rank (each lane ranks its keys against all) and writes the pairs
/// and deaths: O(n^2 / 32) per lane, no barrier.
template <class V, class T>
__device__ void rank_emit(int n, const wkey* tree, edge* pairs, T* deaths) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const unsigned un = static_cast<unsigned>(n);
  for (int k = lane; k < n - 1; k += 32) {
    const wkey e = tree[k];
    int rank = 0;
    for (int j = 0; j < n - 1; ++j) rank += tree[j] < e;
    pairs[rank] = edge{static_cast<std::int32_t>(e.c / un), static_cast<std::int32_t>(e.c % un)};
    if (deaths) deaths[rank] = static_cast<T>(wkey_value<V>(e));
  }
}

/// Per-batch-entry pointers: entry b at p0 + b * stride, or (a pair of unrelated buffers, as x and z of an
/// ISA step) p0 for b = 0 and p1 for b = 1.
template <class P>
struct bptr {
  P p0 = nullptr, p1 = nullptr;
  index_t stride = 0;
  __device__ P at(index_t b) const { return p1 ? (b == 0 ? p0 : p1) : (p0 ? p0 + b * stride : nullptr); }
};

template <class T>
struct vr0_out {
  bptr<edge*> pairs;
  bptr<T*> deaths;  // p0 == nullptr: not wanted
};

/// Source: B distance matrices (entries read once, coalesced; every off-diagonal entry validated as on the
/// CPU, the upper one staged into S[i][j] and S[j][i]).
template <class V>
struct matrix_source {
  bptr<const V*> D;
  index_t ld;
  __device__ void stage(index_t b, int n, V* S, int sld, int& bad) const {
    const V* M = D.at(b);
    for (index_t e = threadIdx.x; e < index_t(n) * n; e += blockDim.x) {
      const int i = static_cast<int>(e / n), j = static_cast<int>(e % n);
      if (i == j) continue;
      const V v = M[i * ld + j];
      check_entry(v, bad);
      if (i < j) {
        S[i * sld + j] = v;
        S[j * sld + i] = v;
      }
    }
  }
};

/// Source: clouds whose final Gram tiles are ready (distance.cuh): the distances are computed while staging
/// (gram_distance: the same bits as pairwise_distances), and written to out (n x n, leading dimension ld)
/// when out is set — the ISA needs the matrices themselves.
template <class In, class V>
struct gram_source {
  bptr<const In*> P;  // the points, for the cancellation guard
  index_t pld, pld2 = -1;  // leading dimension of entry 0 (and of entry 1 when it differs)
  int d0, d1;         // dimension and scale of entry 0 and 1 (a strided batch uses d0, scale0)
  double scale0, scale1;
  bptr<const double*> gram;
  bptr<V*> out;
  index_t out_ld;
  bool other_blocks_wrote = false;  // the tiles come from other blocks of the same launch: read past L1
  __device__ double g(const double* G, index_t k) const { return other_blocks_wrote ? __ldcg(G + k) : G[k]; }
  __device__ void stage(index_t b, int n, V* S, int sld, int& bad) const {
    const index_t T = gram_tiles(n);
    const double* G = gram.at(b);
    const In* X = P.at(b);
    const bool second = P.p1 && b == 1;
    const index_t pl = second && pld2 >= 0 ? pld2 : pld;
    const int db = second ? d1 : d0;
    const double sc = second ? scale1 : scale0;
    V* O = out.at(b);
    for (index_t e = threadIdx.x; e < index_t(n) * n; e += blockDim.x) {
      const int i = static_cast<int>(e / n), j = static_cast<int>(e % n);
      if (i > j) continue;
      if (i == j) {
        if (O) O[i * out_ld + i] = V(0);
        continue;
      }
      const V v = static_cast<V>(gram_distance(g(G, gram_at(i, i, T)), g(G, gram_at(j, j, T)), g(G, gram_at(i, j, T)),
                                               X + i * pl, X + j * pl, db, sc));
      if (!finite(v)) bad |= cuda::status_non_finite;
      S[i * sld + j] = v;
      S[j * sld + i] = v;
      if (O) {
        O[i * out_ld + j] = v;
        O[j * out_ld + i] = v;
      }
    }
  }
};

/// Shared memory of the small kernel: S (n x (n + 1) V: the odd stride keeps the transposed stores
/// conflict-free), then the n-1 tree keys.
template <class V>
TOPOFR_HD inline std::size_t small_bytes(index_t n) {
  return (static_cast<std::size_t>(n) * (n + 1) * sizeof(V) + 15) / 16 * 16 + static_cast<std::size_t>(n) * sizeof(wkey);
}

/// The small kernel's body: entry sb of src staged into the block's dynamic shared memory (all threads;
/// the layout of small_bytes), then warp 0 alone runs Prim and writes entry ob of out.
template <class V, class T, class Src>
__device__ void stage_and_prim(const Src& src, index_t sb, int n, const vr0_out<T>& out, index_t ob, int* status) {
  unsigned char* smem = cuda::detail::dynamic_shared<unsigned char>();
  V* S = reinterpret_cast<V*>(smem);
  const int sld = n + 1;
  wkey* tree = reinterpret_cast<wkey*>(smem + (static_cast<std::size_t>(n) * sld * sizeof(V) + 15) / 16 * 16);
  int bad = 0;
  src.stage(sb, n, S, sld, bad);
  if (bad) cuda::detail::report(status, bad);
  __syncthreads();
  if (threadIdx.x >= 32) return;
  prim_warp<V>(n, S, sld, tree);
  rank_emit<V>(n, tree, out.pairs.at(ob), out.deaths.at(ob));
}

/// One block per matrix.
template <class V, class T, class Src>
__global__ void __launch_bounds__(small_threads) vr0_small_kernel(Src src, int n, vr0_out<T> out, int* status) {
  stage_and_prim<V>(src, blockIdx.x, n, out, blockIdx.x, status);
}

/// B clouds with d <= 512 in ONE launch (the B = 1 training case): block (b, p) computes tile p of cloud b's
/// Gram into gram, then counts itself done; the cloud's last block (threadfence reduction: each block's tile
/// is visible device-wide before its count) builds the matrix from the tiles and runs the warp Prim, as the
/// small kernel would: the same bits, one launch and no dependent-launch gap. counters: B zeroed words.
template <class In, class V, class T>
__global__ void __launch_bounds__(gram_threads)
    vr0_gram_prim_kernel(clouds<In> c, double* gram, unsigned* counters, vr0_out<T> out, int* status) {
  __shared__ __align__(32) double stage[gram_stage_doubles];
  __shared__ bool last;
  const index_t tiles = gram_tiles(c.n), pairs = gram_pairs(c.n);
  const index_t p = blockIdx.x % pairs, b = blockIdx.x / pairs;
  int ti, tj;
  gram_pair_of(p, tiles, ti, tj);
  gram_acc acc[2][2];
  gram_tile_zero(acc);
  bool bad_point = false;
  gram_tile_add(c.P + b * c.stride, c.ld, c.n, gram_tile * ti, gram_tile * tj, 0, c.d, stage, acc, bad_point);
  double* G = gram + b * pairs * (gram_tile * gram_tile);
  gram_tile_store(acc, G + p * (gram_tile * gram_tile), gram_tile);
  if (bad_point) cuda::detail::report(status, cuda::status_non_finite);
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(counters + b, 1u) == static_cast<unsigned>(pairs - 1);
  __syncthreads();
  if (!last) return;
  __threadfence();
  gram_source<In, V> src;
  src.P = {c.P + b * c.stride, nullptr, 0};
  src.pld = c.ld;
  src.d0 = src.d1 = c.d;
  src.scale0 = src.scale1 = c.scale;
  src.gram = {G, nullptr, 0};
  src.out_ld = 0;
  src.other_blocks_wrote = true;
  stage_and_prim<V>(src, 0, c.n, out, b, status);
}

// ---- the block Prim on global memory (n > 256 or too large for shared memory) -----------------------------

/// One block per matrix: every off-diagonal entry validated in one coalesced pass, then Prim reading
/// D[min][max] from global memory. gkeys: keys and tree in global memory (n + npow2 per block) when they do
/// not fit shared memory.
template <class V, class T, bool Packed>
__global__ void __launch_bounds__(1024)
    vr0_large_kernel(bptr<const V*> D, int n, index_t ld, vr0_out<T> out, vr0_key<Packed>* gkeys, int* status) {
  using K = vr0_key<Packed>;
  unsigned char* const smem = cuda::detail::dynamic_shared<unsigned char>();
  const vr0_layout<K> L(n);
  const index_t b = blockIdx.x;
  const V* M = D.at(b);
  int bad = 0;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = threadIdx.x; j < n; j += blockDim.x)
      if (i != j) check_entry(M[i * ld + j], bad);
  if (bad) cuda::detail::report(status, bad);
  K* keys = gkeys ? gkeys + b * (n + L.npow2) : reinterpret_cast<K*>(smem + L.keys);
  K* tree = gkeys ? keys + n : reinterpret_cast<K*>(smem + L.tree);
  __syncthreads();
  K* red = reinterpret_cast<K*>(smem + L.red);
  int* redy = reinterpret_cast<int*>(smem + L.redy);
  prim_block(n, keys, tree, red, redy, [&](int a, int c) { return canon_bits(__ldg(M + a * ld + c)); });
  sort_and_emit<V>(n, L.npow2, tree, out.pairs.at(b), out.deaths.at(b));
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

/// True when the warp Prim's kernel can hold an n x n matrix of V.
template <class V, class T, class Src>
bool small_fits(index_t n, const char* fn) {
  return n <= warp_prim_max && small_bytes<V>(n) <= cuda::detail::max_dynamic_shared(vr0_small_kernel<V, T, Src>, fn);
}

template <class V, class T, class Src>
void launch_small(const cuda::context& ctx, const Src& src, index_t B, index_t n, const vr0_out<T>& out,
                  const char* fn) {
  auto kernel = vr0_small_kernel<V, T, Src>;
  cuda::detail::allow_dynamic_shared(kernel, fn);
  cuda::detail::launch(fn, kernel, static_cast<unsigned>(B), small_threads, small_bytes<V>(n), ctx.stream, src,
                       static_cast<int>(n), out, ctx.status);
}

template <class V, class T, bool Packed>
void launch_large_k(const cuda::context& ctx, const bptr<const V*>& D, index_t B, index_t n, index_t ld,
                    const vr0_out<T>& out, const char* fn) {
  using K = vr0_key<Packed>;
  const vr0_layout<K> L(n);
  auto kernel = vr0_large_kernel<V, T, Packed>;
  const bool keys_in_smem = L.head_bytes <= cuda::detail::max_dynamic_shared(kernel, fn);
  const std::size_t bytes = keys_in_smem ? L.head_bytes : L.keys;
  cuda::workspace gk(ctx, keys_in_smem ? 0 : static_cast<std::size_t>(B) * (n + L.npow2) * sizeof(K));
  cuda::detail::allow_dynamic_shared(kernel, fn);
  const int threads = static_cast<int>(n >= 1024 ? 1024 : (n + 31) / 32 * 32);
  cuda::detail::launch(fn, kernel, static_cast<unsigned>(B), threads, bytes, ctx.stream, D, static_cast<int>(n), ld,
                       out, gk.as<K>(), ctx.status);
}

/// Pairs of B matrices (entry b of D), the kernel chosen by size.
template <class V, class T>
void launch_vr0_matrix(const cuda::context& ctx, const bptr<const V*>& D, index_t B, index_t n, index_t ld,
                       const vr0_out<T>& out, const char* fn) {
  if (B == 0) return;
  require(B <= 0x7fffffff, fn, "dist", "batch too large for one grid: ", B);
  if (small_fits<V, T, matrix_source<V>>(n, fn)) return launch_small<V, T>(ctx, matrix_source<V>{D, ld}, B, n, out, fn);
  if (packs_key<V>(n)) launch_large_k<V, T, true>(ctx, D, B, n, ld, out, fn);
  else launch_large_k<V, T, false>(ctx, D, B, n, ld, out, fn);
}

template <class P>
bptr<P> strided(P p, index_t stride) {
  bptr<P> r;
  r.p0 = p;
  r.stride = stride;
  return r;
}

}  // namespace cu
}  // namespace detail

/// The n-1 persistence pairs of the n x n distance matrix dist (device memory), sorted by (dist(u, v),
/// u*n + v), u < v, deaths (optional) = dist(u, v): identical to persistence_pairs(cpu, ...), ties and
/// asymmetric matrices included. Shapes are checked on the host (topofr::error, as on the CPU); an
/// off-diagonal NaN/Inf or negative entry sets cuda::status_non_finite / status_negative_distance in
/// ctx.status (the outputs are then unspecified, but every pair is within 0 <= u < v < n).
template <class In, class T = std::remove_const_t<In>>
void persistence_pairs(const cuda::context& ctx, device_matrix_view<In> dist, device_vector_view<edge> pairs,
                       device_vector_view<T> deaths = {}) {
  using V = std::remove_const_t<In>;
  static_assert(detail::is_real_v<V> && detail::is_real_v<T>, "topofr: float or double only");
  constexpr const char* fn = "persistence_pairs";
  const index_t n = detail::check_vr0_args(dist, pairs, deaths, fn);
  detail::cu::vr0_out<T> out{detail::cu::strided(pairs.data(), 0),
                             detail::cu::strided(deaths.empty() ? static_cast<T*>(nullptr) : deaths.data(), 0)};
  detail::cu::launch_vr0_matrix<V, T>(ctx, detail::cu::strided(static_cast<const V*>(dist.data()), 0), 1, n,
                                      dist.ld(), out, fn);
}

/// The batched form: B matrices, one launch: pairs B x (n-1), deaths B x (n-1) optional.
template <class In, class T = std::remove_const_t<In>>
void persistence_pairs(const cuda::context& ctx, device_batch_view<In> dist, device_matrix_view<edge> pairs,
                       device_matrix_view<T> deaths = {}) {
  using V = std::remove_const_t<In>;
  static_assert(detail::is_real_v<V> && detail::is_real_v<T>, "topofr: float or double only");
  constexpr const char* fn = "persistence_pairs";
  const index_t nb = dist.batch();
  const index_t n = detail::check_vr0_batch_args(dist, pairs, deaths, fn);
  detail::cu::vr0_out<T> out{detail::cu::strided(pairs.data(), pairs.ld()),
                             detail::cu::strided(deaths.empty() ? static_cast<T*>(nullptr) : deaths.data(),
                                                 deaths.empty() ? 0 : deaths.ld())};
  detail::cu::launch_vr0_matrix<V, T>(ctx, detail::cu::strided(static_cast<const V*>(dist.data()), dist.batch_stride()),
                                      nb, n, dist.ld(), out, fn);
}

namespace detail {
namespace cu {

/// Pairs of B clouds from their points (checked by the caller): for n <= 256, the Gram tiles spread over
/// many blocks (chunks of at most 256 MiB of tiles) and the small kernel building each matrix from them;
/// for larger n the distance matrices (chunks of at most 256 MiB) and the block Prim.
template <class In, class T>
void vr0_from_points(const cuda::context& ctx, const In* P, index_t nb, index_t n, index_t d, index_t ld,
                     index_t stride, double scale, const vr0_out<T>& out, const char* fn) {
  using V = std::remove_const_t<In>;
  using Src = gram_source<V, V>;
  require(n <= (index_t(1) << 20) && d <= 0x7fffffff && nb <= 0x7fffffff, fn, "points",
          "too large for the CUDA kernels: ", nb, " x ", n, " x ", d);
  const clouds<V> all{P, stride, ld, static_cast<int>(n), static_cast<int>(d), scale};
  auto sub = [&](const vr0_out<T>& o, index_t b0) {  // the outputs of entries b0 ..
    vr0_out<T> r = o;
    r.pairs.p0 += b0 * o.pairs.stride;
    if (r.deaths.p0) r.deaths.p0 += b0 * o.deaths.stride;
    return r;
  };
  const index_t pairs = gram_pairs(n);
  auto one = vr0_gram_prim_kernel<V, V, T>;
  if (d <= gram_slice && n <= warp_prim_max && nb * pairs <= device_attribute(cudaDevAttrMultiProcessorCount, fn) &&
      small_bytes<V>(n) <= cuda::detail::max_dynamic_shared(one, fn)) {
    // A few clouds, one wave of tile blocks: Gram and Prim in one launch (counters zeroed first).
    cuda::workspace w(ctx, static_cast<std::size_t>(nb) * gram_bytes(n) + static_cast<std::size_t>(nb) * sizeof(unsigned));
    unsigned* counters = reinterpret_cast<unsigned*>(w.as<unsigned char>() + static_cast<std::size_t>(nb) * gram_bytes(n));
    cuda::check_cuda(cudaMemsetAsync(counters, 0, static_cast<std::size_t>(nb) * sizeof(unsigned), ctx.stream), fn);
    cuda::detail::allow_dynamic_shared(one, fn);
    cuda::detail::launch(fn, one, static_cast<unsigned>(nb * pairs), gram_threads, small_bytes<V>(n), ctx.stream, all,
                         w.as<double>(), counters, out, ctx.status);
    return;
  }
  if (small_fits<V, T, Src>(n, fn)) {
    const std::size_t per = gram_bytes(n);
    const index_t chunk = std::max<index_t>(1, std::min<index_t>(nb, static_cast<index_t>((std::size_t(256) << 20) / per)));
    cuda::workspace g(ctx, static_cast<std::size_t>(chunk) * per);
    for (index_t b0 = 0; b0 < nb; b0 += chunk) {
      const index_t m = std::min(chunk, nb - b0);
      clouds<V> c = all;
      c.P += b0 * stride;
      launch_gram(ctx, c, m, g.as<double>(), fn);
      Src src;
      src.P = strided(c.P, stride);
      src.pld = ld;
      src.d0 = src.d1 = static_cast<int>(d);
      src.scale0 = src.scale1 = scale;
      src.gram = strided(static_cast<const double*>(g.as<double>()), gram_pairs(n) * gram_tile * gram_tile);
      src.out_ld = n;
      launch_small<V, T>(ctx, src, m, n, sub(out, b0), fn);
    }
    return;
  }
  const std::size_t per = static_cast<std::size_t>(n) * static_cast<std::size_t>(n) * sizeof(V);
  const index_t chunk = std::max<index_t>(1, std::min<index_t>(nb, static_cast<index_t>((std::size_t(256) << 20) / per)));
  cuda::workspace ws(ctx, static_cast<std::size_t>(chunk) * per);
  for (index_t b0 = 0; b0 < nb; b0 += chunk) {
    const index_t m = std::min(chunk, nb - b0);
    launch_distances(ctx, P + b0 * stride, m, n, d, ld, stride, ws.as<V>(), n, n * n, scale, fn);
    launch_vr0_matrix<V, T>(ctx, strided(static_cast<const V*>(ws.as<V>()), n * n), m, n, n, sub(out, b0), fn);
  }
}

}  // namespace cu
}  // namespace detail

/// Pairs of B point clouds (B x n x d, device) with the distances computed on the fly, in double as on the
/// CPU (see distance.cuh); equal bit for bit to pairwise_distances(ctx, ...) followed by
/// persistence_pairs(ctx, ...). Scratch from ctx.alloc: Gram tiles (~n^2 doubles per cloud) or, for
/// n > 256, distance matrices, in chunks of at most 256 MiB. A NaN/Inf coordinate sets cuda::status_non_finite. Shape errors: as on the CPU.
template <class In, class T = std::remove_const_t<In>>
void persistence_pairs_from_points(const cuda::context& ctx, device_batch_view<In> points, double scale,
                                   device_matrix_view<edge> pairs, device_matrix_view<T> deaths = {}) {
  using V = std::remove_const_t<In>;
  static_assert(detail::is_real_v<V> && detail::is_real_v<T>, "topofr: float or double only");
  constexpr const char* fn = "persistence_pairs_from_points";
  const index_t nb = points.batch(), n = points.rows(), d = points.cols();
  detail::check_vr0_points_args(points, scale, pairs, deaths, fn);
  if (nb == 0) return;
  const detail::cu::vr0_out<T> out{detail::cu::strided(pairs.data(), pairs.ld()),
                                   detail::cu::strided(deaths.empty() ? static_cast<T*>(nullptr) : deaths.data(),
                                                       deaths.empty() ? 0 : deaths.ld())};
  detail::cu::vr0_from_points<V, T>(ctx, static_cast<const V*>(points.data()), nb, n, d, points.ld(),
                                    points.batch_stride(), scale, out, fn);
}

}  // namespace topofr
