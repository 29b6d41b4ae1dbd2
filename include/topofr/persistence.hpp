// topofr/persistence.hpp — 0-dimensional Vietoris–Rips persistence pairs of a distance matrix
// (docs/math.md, docs/fidelity.md): the n-1 edges that merge components, exactly as the reference's Kruskal emits them.
//
// Semantics (the released code): the weight of edge (i, j), i < j, is the UPPER entry dist(i, j) (a
// torch.cdist matrix is not exactly symmetric); edges are ordered by the strict total order
// (weight, i*n + j) (a stable sort of the row-major upper triangle); the output is the unique minimum
// spanning tree under that order, listed in that order. deaths[k] = weight of pairs[k].
//
// Algorithm: dense Prim with the same lexicographic key (same tree as Kruskal, O(n^2) time, O(n) extra
// memory). Each row is read once, in one fused branch-free pass that also validates the entries and
// accumulates a symmetry checksum; an asymmetric matrix is redone by an exact (slower) pass that reads
// the upper entries only. Arguments: docs/math.md.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/view.hpp"
#include "distance.hpp"

namespace topofr {
namespace detail {

template <class V> struct real_bits;
template <> struct real_bits<float> {
  using type = std::uint32_t;
  static constexpr type sign = 0x80000000u, max_finite = 0x7f7fffffu;  // FLT_MAX
};
template <> struct real_bits<double> {
  using type = std::uint64_t;
  static constexpr type sign = 0x8000000000000000ull, max_finite = 0x7fefffffffffffffull;  // DBL_MAX
};
template <class V> using bits_t = typename real_bits<V>::type;

template <class V> inline bits_t<V> to_bits(V v) {
  bits_t<V> b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
template <class V> inline V from_bits(bits_t<V> b) {
  V v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

/// Scratch of one Prim run: O(n) words. Reused across the matrices of a batch (one per thread).
struct vr0_workspace {
  std::vector<std::uint64_t> key, code, mask, tree_w, tree_code;
  std::vector<std::uint64_t> r, s;    // odd checksum multipliers
  std::vector<std::uint32_t> r32, s32;  // their low halves, for the float checksum
  std::vector<float> dist_f;          // from_points: one cloud's distance matrix
  std::vector<double> dist_d;
  dmatrix x, gram;
  template <class V> std::vector<V>& dist_scratch() {
    if constexpr (std::is_same<V, float>::value) return dist_f; else return dist_d;
  }
};

/// Float weights with n*n <= 2^32 pack (bits, code) into one uint64 key.
template <class V> constexpr bool packs(index_t n) {
  return std::is_same<V, float>::value && std::uint64_t(n) * std::uint64_t(n) <= (std::uint64_t(1) << 32);
}

/// Fresh odd multipliers for the symmetry checksum: a per-thread splitmix64 stream seeded once from
/// std::random_device, so that no fixed input can be built to fool the check (docs: checksum argument).
inline void checksum_multipliers(vr0_workspace& ws, index_t n) {
  thread_local std::uint64_t state = [] {
    std::random_device rd;
    return (std::uint64_t(rd()) << 32) ^ rd();
  }();
  ws.r.resize(static_cast<std::size_t>(n));
  ws.s.resize(static_cast<std::size_t>(n));
  auto next = [] {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) | 1u;
  };
  for (std::size_t i = 0; i < ws.r.size(); ++i) {
    ws.r[i] = next();
    ws.s[i] = next();
  }
}

/// Accumulated over the rows of one fast Prim run.
template <class B>
struct row_flags {
  B max_canon = 0, max_raw = 0;  // validity: max(|bits|) <= max_finite and max(bits) <= sign (-0.0 ok)
  B sum_up = 0, sum_lo = 0;      // symmetry checksum (mod 2^bits)
  bool valid(B max_finite, B sign) const { return max_canon <= max_finite && max_raw <= sign; }
};

/// Accumulators of one packed row segment.
struct packed_acc {
  std::uint32_t max_canon = 0, max_raw = 0, sum = 0;
  std::uint64_t run = ~std::uint64_t(0);
};

/// Portable packed update of y in [lo, hi): code(y) = code + (y - lo) * step (fits 32 bits: n*n <= 2^32),
/// checksum multipliers m[y]. See packed_row.
inline void packed_segment_scalar(const float* row, index_t lo, index_t hi, std::uint32_t code,
                                  std::uint32_t step, std::uint64_t* key, const std::uint32_t* m,
                                  packed_acc& a) {
  std::uint32_t mc = a.max_canon, mr = a.max_raw, sum = a.sum;
  std::uint64_t run = a.run;
  for (index_t y = lo; y < hi; ++y, code += step) {
    std::uint32_t b;
    std::memcpy(&b, row + y, 4);
    const std::uint32_t c = b & 0x7fffffffu;  // also canonicalises -0.0
    mc = mc > c ? mc : c;
    mr = mr > b ? mr : b;
    sum += c * m[y];
    const std::uint64_t k = (std::uint64_t(c) << 32) | code;
    const std::uint64_t kk = key[y] < k ? key[y] : k;
    key[y] = kk;
    run = run < kk - 1 ? run : kk - 1;
  }
  a = {mc, mr, sum, run};
}

#if defined(__AVX512F__)
#ifndef TOPOFR_VR0_PREFETCH
#define TOPOFR_VR0_PREFETCH 2048  // bytes ahead within the row: hides L3 latency when rows are visited in Prim order
#endif
/// AVX-512 version of packed_segment_scalar (same integer results). The key (c << 32 | code) is built by
/// one two-source permute per 8 lanes instead of widen + shift + or; the rest is 32-bit work.
inline void packed_segment(const float* row, index_t lo, index_t hi, std::uint32_t code, std::uint32_t step,
                           std::uint64_t* key, const std::uint32_t* m, packed_acc& a) {
  index_t y = lo;
  if (hi - lo >= 16) {
    const __m512i mask31 = _mm512_set1_epi32(0x7fffffff), ones = _mm512_set1_epi64(-1);
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i idx_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i idx_hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const __m512i inc = _mm512_set1_epi32(static_cast<int>(16u * step));
    __m512i vcode = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(code)),
                                     _mm512_mullo_epi32(lanes, _mm512_set1_epi32(static_cast<int>(step))));
    __m512i vmc = _mm512_setzero_si512(), vmr = _mm512_setzero_si512(), vsum = _mm512_setzero_si512();
    __m512i vrun = ones;
    for (; y + 16 <= hi; y += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(row + y) + TOPOFR_VR0_PREFETCH, _MM_HINT_T0);
      const __m512i b = _mm512_loadu_si512(row + y);
      const __m512i c = _mm512_and_si512(b, mask31);
      vmc = _mm512_max_epu32(vmc, c);
      vmr = _mm512_max_epu32(vmr, b);
      vsum = _mm512_add_epi32(vsum, _mm512_mullo_epi32(c, _mm512_loadu_si512(m + y)));
      const __m512i k0 = _mm512_min_epu64(_mm512_loadu_si512(key + y), _mm512_permutex2var_epi32(vcode, idx_lo, c));
      const __m512i k1 = _mm512_min_epu64(_mm512_loadu_si512(key + y + 8), _mm512_permutex2var_epi32(vcode, idx_hi, c));
      _mm512_storeu_si512(key + y, k0);
      _mm512_storeu_si512(key + y + 8, k1);
      vrun = _mm512_min_epu64(vrun, _mm512_min_epu64(_mm512_add_epi64(k0, ones), _mm512_add_epi64(k1, ones)));
      vcode = _mm512_add_epi32(vcode, inc);
    }
    const std::uint32_t mc = static_cast<std::uint32_t>(_mm512_reduce_max_epu32(vmc));
    const std::uint32_t mr = static_cast<std::uint32_t>(_mm512_reduce_max_epu32(vmr));
    const std::uint64_t run = static_cast<std::uint64_t>(_mm512_reduce_min_epu64(vrun));
    a.max_canon = a.max_canon > mc ? a.max_canon : mc;
    a.max_raw = a.max_raw > mr ? a.max_raw : mr;
    // Wrapping checksum, summed in unsigned lanes (_mm512_reduce_add_epi32 adds signed ints: UB on overflow).
    alignas(64) std::uint32_t sums[16];
    _mm512_store_si512(sums, vsum);
    for (const std::uint32_t v : sums) a.sum += v;
    a.run = a.run < run ? a.run : run;
    code += static_cast<std::uint32_t>(y - lo) * step;
  }
  packed_segment_scalar(row, y, hi, code, step, key, m, a);
}
#else
inline void packed_segment(const float* row, index_t lo, index_t hi, std::uint32_t code, std::uint32_t step,
                           std::uint64_t* key, const std::uint32_t* m, packed_acc& a) {
  packed_segment_scalar(row, lo, hi, code, step, key, m, a);
}
#endif

/// The fast pass over row x for float with n*n <= 2^32: key[y] = min(key[y], (bits(w) << 32 | code)),
/// code = min(x,y)*n + max(x,y). Tree vertices hold key 0, so min() keeps them at 0 without a branch
/// (a real key is >= 1: code 0 would be the diagonal (0, 0)); the running min of key - 1 (0 wraps to
/// UINT64_MAX) is the next edge's key - 1. Returns it. The diagonal splits the row into the lower part
/// (code y*n + x, multipliers r[y]) and the upper part (code x*n + y, multipliers s[y]).
inline std::uint64_t packed_row(const float* row, index_t n, index_t x, std::uint64_t* key,
                                const std::uint32_t* r, const std::uint32_t* s,
                                row_flags<std::uint32_t>& f) {
  const std::uint32_t un = static_cast<std::uint32_t>(n), ux = static_cast<std::uint32_t>(x);
  packed_acc lo, up;
  packed_segment(row, 0, x, ux, un, key, r, lo);
  packed_segment(row, x + 1, n, ux * un + ux + 1, 1, key, s, up);
  f.sum_lo += s[x] * lo.sum;
  f.sum_up += r[x] * up.sum;
  f.max_canon = std::max({f.max_canon, lo.max_canon, up.max_canon});
  f.max_raw = std::max({f.max_raw, lo.max_raw, up.max_raw});
  return std::min(lo.run, up.run);
}

/// The fast pass for double (or n*n > 2^32): the key is the pair (weight bits, code), compared
/// lexicographically. Tree vertices have mask = ~0, which forces their weight to UINT64_MAX (never
/// below a real weight: max_finite < UINT64_MAX). Returns the minimum weight; the caller finds the code.
template <class V>
std::uint64_t pair_row(const V* row, index_t n, index_t x, std::uint64_t* wk, std::uint64_t* cd,
                       const std::uint64_t* mask, const std::uint64_t* r, const std::uint64_t* s,
                       row_flags<bits_t<V>>& f) {
  using B = bits_t<V>;
  B mc = 0, mr = 0, acc = 0;
  std::uint64_t run = ~std::uint64_t(0);
  const std::uint64_t un = static_cast<std::uint64_t>(n), ux = static_cast<std::uint64_t>(x);
  auto step = [&](index_t y, std::uint64_t k, B mult) {
    B b;
    std::memcpy(&b, row + y, sizeof b);
    const B c = b & ~real_bits<V>::sign;
    mc = mc > c ? mc : c;
    mr = mr > b ? mr : b;
    acc += c * mult;
    const std::uint64_t w = std::uint64_t(c) | mask[y];
    const bool better = (w < wk[y]) | ((w == wk[y]) & (k < cd[y]));
    wk[y] = better ? w : wk[y];
    cd[y] = better ? k : cd[y];
    run = run < wk[y] ? run : wk[y];
  };
  for (index_t y = 0; y < x; ++y) step(y, std::uint64_t(y) * un + ux, static_cast<B>(r[y]));
  f.sum_lo += static_cast<B>(s[x]) * acc;
  acc = 0;
  for (index_t y = x + 1; y < n; ++y) step(y, ux * un + std::uint64_t(y), static_cast<B>(s[y]));
  f.sum_up += static_cast<B>(r[x]) * acc;
  f.max_canon = f.max_canon > mc ? f.max_canon : mc;
  f.max_raw = f.max_raw > mr ? f.max_raw : mr;
  return run;
}

/// Throws for the first invalid off-diagonal entry in row-major order (the error path only).
template <class V>
[[noreturn]] void report_invalid(matrix_view<const V> dist, const char* fn, index_t batch) {
  const index_t n = dist.rows();
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      const V v = dist(i, j);
      if (i == j || (v >= V(0) && v <= std::numeric_limits<V>::max())) continue;
      if (batch >= 0)
        fail(fn, "dist", "matrix ", batch, ", entry (", i, ", ", j, ") must be finite and >= 0, got ", v);
      fail(fn, "dist", "entry (", i, ", ", j, ") must be finite and >= 0, got ", v);
    }
  fail(fn, "dist", "invalid entry");  // unreachable: called only when a row pass flagged one
}

/// Exact Prim for any (validated) matrix: w(x, y) = canonical bits of dist(min, max), so the lower
/// triangle is never read. Column reads make it slower; used only when the checksum shows asymmetry.
template <class V>
void prim_upper(matrix_view<const V> dist, vr0_workspace& ws) {
  const index_t n = dist.rows();
  const std::uint64_t un = static_cast<std::uint64_t>(n), none = ~std::uint64_t(0);
  ws.key.assign(static_cast<std::size_t>(n), none);   // weight bits
  ws.code.assign(static_cast<std::size_t>(n), none);  // code
  ws.mask.assign(static_cast<std::size_t>(n), 0);     // 1 = in tree
  ws.tree_w.clear();
  ws.tree_code.clear();
  std::uint64_t* key = ws.key.data();
  std::uint64_t* cd = ws.code.data();
  std::uint64_t* mask = ws.mask.data();
  index_t x = 0;
  for (index_t t = 0; t < n; ++t) {
    mask[x] = 1;
    if (t > 0) {
      ws.tree_w.push_back(key[x]);
      ws.tree_code.push_back(cd[x]);
    }
    index_t next = -1;
    for (index_t y = 0; y < n; ++y) {
      if (mask[y]) continue;
      const index_t a = std::min(x, y), b = std::max(x, y);
      const std::uint64_t w = std::uint64_t(to_bits<V>(dist(a, b)) & ~real_bits<V>::sign);
      const std::uint64_t k = std::uint64_t(a) * un + std::uint64_t(b);
      if (w < key[y] || (w == key[y] && k < cd[y])) {
        key[y] = w;
        cd[y] = k;
      }
      if (next < 0 || key[y] < key[next] || (key[y] == key[next] && cd[y] < cd[next]))
        next = y;
    }
    x = next;
  }
}

/// The fast Prim run. Fills ws.tree_w / ws.tree_code (discovery order) and returns false when the
/// checksum shows the matrix is not symmetric. Throws on an invalid entry.
template <class V>
bool prim_fast(matrix_view<const V> dist, vr0_workspace& ws, const char* fn, index_t batch) {
  using B = bits_t<V>;
  const index_t n = dist.rows();
  const std::uint64_t un = static_cast<std::uint64_t>(n);
  checksum_multipliers(ws, n);
  ws.tree_w.clear();
  ws.tree_code.clear();
  row_flags<B> f;
  const bool packed = packs<V>(n);
  if constexpr (std::is_same<V, float>::value) {
    if (packed) {
      ws.r32.assign(ws.r.begin(), ws.r.end());  // 32-bit multipliers (still odd) for the float checksum
      ws.s32.assign(ws.s.begin(), ws.s.end());
      const std::uint32_t* r = ws.r32.data();
      const std::uint32_t* s = ws.s32.data();
      ws.key.assign(static_cast<std::size_t>(n), ~std::uint64_t(0));
      std::uint64_t* key = ws.key.data();
      key[0] = 0;
      std::uint64_t run = packed_row(dist.row(0), n, 0, key, r, s, f);
      for (index_t t = 1; t < n; ++t) {
        if (!f.valid(real_bits<V>::max_finite, real_bits<V>::sign)) report_invalid(dist, fn, batch);
        const std::uint64_t e = run + 1;
        const std::uint64_t code = e & 0xffffffffu;
        const index_t a = static_cast<index_t>(code / un), b = static_cast<index_t>(code % un);
        const index_t v = key[a] == 0 ? b : a;
        ws.tree_w.push_back(e >> 32);
        ws.tree_code.push_back(code);
        key[v] = 0;
        run = packed_row(dist.row(v), n, v, key, r, s, f);
      }
    }
  }
  if (!packed) {
    ws.key.assign(static_cast<std::size_t>(n), ~std::uint64_t(0));
    ws.code.assign(static_cast<std::size_t>(n), ~std::uint64_t(0));
    ws.mask.assign(static_cast<std::size_t>(n), 0);
    std::uint64_t* wk = ws.key.data();
    std::uint64_t* cd = ws.code.data();
    std::uint64_t* mask = ws.mask.data();
    index_t x = 0;
    mask[0] = ~std::uint64_t(0);
    wk[0] = ~std::uint64_t(0);
    std::uint64_t run = pair_row<V>(dist.row(0), n, 0, wk, cd, mask, ws.r.data(), ws.s.data(), f);
    for (index_t t = 1; t < n; ++t) {
      if (!f.valid(real_bits<V>::max_finite, real_bits<V>::sign)) report_invalid(dist, fn, batch);
      std::uint64_t code = ~std::uint64_t(0);  // smallest code among the minimum weights
      for (index_t y = 0; y < n; ++y) {
        const std::uint64_t c = wk[y] == run ? cd[y] : ~std::uint64_t(0);
        code = code < c ? code : c;
      }
      const index_t a = static_cast<index_t>(code / un), b = static_cast<index_t>(code % un);
      x = mask[a] ? b : a;
      ws.tree_w.push_back(run);
      ws.tree_code.push_back(code);
      mask[x] = ~std::uint64_t(0);
      wk[x] = ~std::uint64_t(0);
      run = pair_row<V>(dist.row(x), n, x, wk, cd, mask, ws.r.data(), ws.s.data(), f);
    }
  }
  if (!f.valid(real_bits<V>::max_finite, real_bits<V>::sign)) report_invalid(dist, fn, batch);
  return f.sum_up == f.sum_lo;
}

/// One matrix: validate (fused), Prim, sort the tree by (weight, code), emit.
template <class V, class T>
void vr0_one(matrix_view<const V> dist, edge* pairs, T* deaths, vr0_workspace& ws, const char* fn,
             index_t batch) {
  const index_t n = dist.rows();
  if (!prim_fast(dist, ws, fn, batch)) prim_upper(dist, ws);
  const std::uint64_t un = static_cast<std::uint64_t>(n);
  const index_t m = n - 1;
  // Sort the tree edges by (weight bits, code). Packed keys are one integer; else sort an index.
  std::uint64_t* tw = ws.tree_w.data();
  const std::uint64_t* tc = ws.tree_code.data();
  if (packs<V>(n)) {
    for (index_t k = 0; k < m; ++k) tw[k] = (tw[k] << 32) | tc[k];
    std::sort(ws.tree_w.begin(), ws.tree_w.end());
    for (index_t k = 0; k < m; ++k) {
      const std::uint64_t code = tw[k] & 0xffffffffu;
      pairs[k] = edge{static_cast<std::int32_t>(code / un), static_cast<std::int32_t>(code % un)};
      if (deaths) deaths[k] = static_cast<T>(from_bits<V>(static_cast<bits_t<V>>(tw[k] >> 32)));
    }
  } else {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> e(static_cast<std::size_t>(m));
    auto* ek = e.data();
    for (index_t k = 0; k < m; ++k) ek[k] = {tw[k], tc[k]};
    std::sort(e.begin(), e.end());
    for (index_t k = 0; k < m; ++k) {
      pairs[k] = edge{static_cast<std::int32_t>(ek[k].second / un), static_cast<std::int32_t>(ek[k].second % un)};
      if (deaths) deaths[k] = static_cast<T>(from_bits<V>(static_cast<bits_t<V>>(ek[k].first)));
    }
  }
}

inline void check_vr0_shape(index_t rows, index_t cols, index_t ld, const char* fn, const char* arg) {
  require(rows == cols, fn, arg, "expected a square matrix, got ", rows, " x ", cols);
  require(rows >= 2, fn, arg, "need at least 2 points, got n = ", rows);
  require(rows <= std::numeric_limits<std::int32_t>::max(), fn, arg, "n must fit the int32 edge type, got ",
          rows);
  require(ld >= cols, fn, arg, "leading dimension ", ld, " < cols ", cols);
}

/// Runs body(b, workspace) for b < nb, over OpenMP threads; rethrows the error of the lowest b.
template <class F>
void for_each_batch(index_t nb, F&& body) {
  std::exception_ptr err;
  index_t err_b = nb;
#if defined(_OPENMP)
#pragma omp parallel
#endif
  {
    vr0_workspace ws;
#if defined(_OPENMP)
#pragma omp for schedule(dynamic)
#endif
    for (index_t b = 0; b < nb; ++b) {
      try {
        body(b, ws);
      } catch (...) {
#if defined(_OPENMP)
#pragma omp critical(topofr_vr0_error)
#endif
        if (b < err_b) {
          err_b = b;
          err = std::current_exception();
        }
      }
    }
  }
  if (err) std::rethrow_exception(err);
}

/// persistence_pairs' host-side checks (one matrix), shared by the CPU and CUDA overloads. Returns n.
template <class In, class T, class S>
index_t check_vr0_args(const matrix_view<In, S>& dist, const vector_view<edge, S>& pairs,
                       const vector_view<T, S>& deaths, const char* fn) {
  check_view(dist, fn, "dist");
  check_vr0_shape(dist.rows(), dist.cols(), dist.ld(), fn, "dist");
  const index_t n = dist.rows();
  check_size(pairs, n - 1, fn, "pairs");
  if (!deaths.empty()) check_size(deaths, n - 1, fn, "deaths");
  return n;
}

/// persistence_pairs_from_points' host-side checks, shared by the CPU and CUDA overloads (the CPU also
/// checks the coordinates; the CUDA twin does on the device).
template <class In, class T, class S>
void check_vr0_points_args(const batch_view<In, S>& points, double scale, const matrix_view<edge, S>& pairs,
                           const matrix_view<T, S>& deaths, const char* fn) {
  const index_t nb = points.batch(), n = points.rows();
  check_batch(shape_view(points), fn, "points");
  require(points.cols() >= 0 && points.ld() >= points.cols(), fn, "points", "invalid shape ", n, " x ",
          points.cols(), " (ld ", points.ld(), ")");
  require(n >= 2, fn, "points", "need at least 2 points, got n = ", n);
  require(n <= std::numeric_limits<std::int32_t>::max(), fn, "points", "n must fit the int32 edge type, got ", n);
  require_scale(scale, fn, "scale");
  check_shape(pairs, nb, n - 1, fn, "pairs");
  if (!deaths.empty()) check_shape(deaths, nb, n - 1, fn, "deaths");
}

}  // namespace detail

/// The n-1 persistence pairs of the n x n distance matrix dist, sorted by (dist(u, v), u*n + v), each
/// with u < v; deaths (optional, size n-1) = dist(u, v). Only the upper triangle defines the weights; the
/// diagonal is ignored. Errors: dist not square, n < 2, n > INT32_MAX, an off-diagonal NaN/Inf/negative
/// entry (named with its index and value), pairs/deaths of the wrong size.
template <class In, class T = std::remove_const_t<In>>
void persistence_pairs(cpu_t, matrix_view<In> dist, vector_view<edge> pairs, vector_view<T> deaths = {}) {
  using V = std::remove_const_t<In>;
  static_assert(detail::is_real_v<V> && detail::is_real_v<T>, "topofr: float or double only");
  constexpr const char* fn = "persistence_pairs";
  detail::check_vr0_args(dist, pairs, deaths, fn);
  detail::vr0_workspace ws;
  detail::vr0_one<V, T>(matrix_view<const V>(dist), pairs.data(), deaths.empty() ? nullptr : deaths.data(),
                        ws, fn, -1);
}

namespace detail {
/// The batched persistence_pairs' shape checks, shared by the CPU and CUDA overloads. Returns n.
template <class In, class T, class S>
index_t check_vr0_batch_args(const batch_view<In, S>& dist, const matrix_view<edge, S>& pairs,
                             const matrix_view<T, S>& deaths, const char* fn) {
  const index_t nb = dist.batch();
  check_batch(shape_view(dist), fn, "dist");
  check_vr0_shape(dist.rows(), dist.cols(), dist.ld(), fn, "dist");
  const index_t n = dist.rows();
  check_shape(pairs, nb, n - 1, fn, "pairs");
  if (!deaths.empty()) check_shape(deaths, nb, n - 1, fn, "deaths");
  return n;
}
}  // namespace detail

/// The batched form: pairs (B x (n-1)) and deaths (B x (n-1), optional) for B distance matrices.
/// Matrices run in parallel (OpenMP); the result does not depend on the thread count.
template <class In, class T = std::remove_const_t<In>>
void persistence_pairs(cpu_t, batch_view<In> dist, matrix_view<edge> pairs, matrix_view<T> deaths = {}) {
  using V = std::remove_const_t<In>;
  static_assert(detail::is_real_v<V> && detail::is_real_v<T>, "topofr: float or double only");
  constexpr const char* fn = "persistence_pairs";
  const index_t nb = dist.batch();
  detail::check_vr0_batch_args(dist, pairs, deaths, fn);
  detail::for_each_batch(nb, [&](index_t b, detail::vr0_workspace& ws) {
    detail::vr0_one<V, T>(matrix_view<const V>(dist[b]), pairs.row(b),
                          deaths.empty() ? nullptr : deaths.row(b), ws, fn, b);
  });
}

/// Pairs of B point clouds (B x n x d) without materialising B distance matrices: each thread computes
/// one cloud's pairwise_distances(points[b], scale) into an n x n scratch, then its pairs.
/// Equal to pairwise_distances followed by persistence_pairs. Errors: as both.
template <class In, class T = std::remove_const_t<In>>
void persistence_pairs_from_points(cpu_t, batch_view<In> points, double scale, matrix_view<edge> pairs,
                                   matrix_view<T> deaths = {}) {
  using V = std::remove_const_t<In>;
  static_assert(detail::is_real_v<V> && detail::is_real_v<T>, "topofr: float or double only");
  constexpr const char* fn = "persistence_pairs_from_points";
  const index_t nb = points.batch(), n = points.rows();
  detail::check_vr0_points_args(points, scale, pairs, deaths, fn);
  for (index_t b = 0; b < nb; ++b) detail::check_finite_points(points[b], fn, "points", b);
  detail::for_each_batch(nb, [&](index_t b, detail::vr0_workspace& ws) {
    std::vector<V>& scratch = ws.template dist_scratch<V>();
    scratch.resize(static_cast<std::size_t>(n * n));
    detail::cloud_distances(points[b], matrix_view<V>(scratch.data(), n, n), scale, ws.x, ws.gram);
    detail::vr0_one<V, T>(matrix_view<const V>(scratch.data(), n, n), pairs.row(b),
                          deaths.empty() ? nullptr : deaths.row(b), ws, fn, b);
  });
}

}  // namespace topofr
