// topofr/distance.hpp — Euclidean distance matrices of point clouds (docs/math.md).
// dist(i, j) = ||x_i - x_j|| / scale, exactly symmetric, 0 on the diagonal, no n x n x d temporary.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <Eigen/Dense>

#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/view.hpp"

namespace topofr {

/// The reference's input-space scale: the largest distance between two C x H x W images with values in
/// [-1, 1], sqrt(4 C H W) (docs/fidelity.md).
inline double image_scale(index_t channels, index_t height, index_t width) {
  detail::require(channels > 0 && height > 0 && width > 0, "image_scale", "shape",
                  "C, H and W must be > 0, got ", channels, " x ", height, " x ", width);
  return std::sqrt(4.0 * static_cast<double>(channels) * static_cast<double>(height) *
                   static_cast<double>(width));
}

namespace detail {

// is_real_v lives in core/view.hpp (shared by every block).

using dmatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// True when every one of the d values is finite: an exponent-field test on the bits, which vectorises
/// (std::isfinite in a loop does not, and cost 6 ms on an image batch).
template <class V>
bool all_finite(const V* r, index_t d) {
  using U = std::conditional_t<sizeof(V) == 4, std::uint32_t, std::uint64_t>;
  constexpr U mask = sizeof(V) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  U bad = 0;
  for (index_t k = 0; k < d; ++k) {
    U b;
    std::memcpy(&b, r + k, sizeof b);
    bad |= static_cast<U>((b & mask) == mask);
  }
  return bad == 0;
}

/// Rejects NaN/Inf in the points, naming the row (and the batch entry b when b >= 0).
template <class In>
void check_finite_points(matrix_view<In> p, const char* fn, const char* arg, index_t b = -1) {
  static_assert(std::numeric_limits<std::remove_const_t<In>>::is_iec559, "topofr: IEEE float or double");
  for (index_t i = 0; i < p.rows(); ++i) {
    const In* r = p.row(i);
    if (all_finite(r, p.cols())) continue;
    for (index_t k = 0; k < p.cols(); ++k) {
      if (std::isfinite(r[k])) continue;
      if (b >= 0) fail(fn, arg, "batch ", b, ", row ", i, ", column ", k, " is not finite, got ", r[k]);
      fail(fn, arg, "row ", i, ", column ", k, " is not finite, got ", r[k]);
    }
  }
}

/// Points -> a contiguous double n x d copy (O(nd); the Gram product then runs in double for float input).
template <class In>
void points_to_double(matrix_view<In> p, dmatrix& x) {
  x.resize(p.rows(), p.cols());
  for (index_t i = 0; i < p.rows(); ++i)
    for (index_t k = 0; k < p.cols(); ++k) x(i, k) = static_cast<double>(p(i, k));
}

/// The distance matrix of the double points x (n x d) into dist, in double and then rounded once.
/// Gram trick d2 = |a|^2 + |b|^2 - 2 a.b for speed (one symmetric rank-k update); the subtraction loses
/// about (|a|^2 + |b|^2) * O(d eps) absolutely, so pairs with d2 < 1e-3 (|a|^2 + |b|^2) (nearly
/// coincident relative to their norms) and non-finite d2 are recomputed directly (docs/math.md).
template <class T>
void distances_double(const dmatrix& x, matrix_view<T> dist, double scale, dmatrix& gram) {
  const index_t n = x.rows(), d = x.cols();
  gram.setZero(n, n);
  gram.template selfadjointView<Eigen::Lower>().rankUpdate(x);  // lower triangle of x x^T (half a GEMM)
  for (index_t i = 0; i < n; ++i) {
    const double si = gram(i, i);
    dist(i, i) = T(0);
    for (index_t j = 0; j < i; ++j) {
      const double sj = gram(j, j), norms = si + sj;
      double d2 = norms - 2.0 * gram(i, j);
      if (!(d2 >= 1e-3 * norms)) {  // cancellation (or overflow): direct sum of squared differences
        const double* a = x.data() + i * d;
        const double* b = x.data() + j * d;
        d2 = 0.0;
        for (index_t k = 0; k < d; ++k) d2 += (a[k] - b[k]) * (a[k] - b[k]);
      }
      // Divide (not multiply by 1/scale) so that scale = 1 and exact quotients stay exact.
      const T v = static_cast<T>(std::sqrt(d2) / scale);
      dist(i, j) = v;
      dist(j, i) = v;
    }
  }
}

// ---- Float points: a float Gram matrix accumulated in double, then the guard (docs/math.md) -------------
//
// The columns are cut into chunks of 512. For each chunk the points are centred on the chunk's column means
// (y = fl(x - c), c a float; distances do not depend on c) and copied into a padded panel; every pair's
// partial dot product is summed in 16 float lanes, each lane over at most 32 products, the lanes reduced
// to 4 in float and added into a double accumulator. So each Gram entry carries at most
// gamma_34 * |y_a| |y_b| (float) plus a double-rounding term, whatever d is; the norms |y|^2 are summed in
// double. A pair whose bound could exceed the contract (nearly coincident points, relative to their
// distance from the centre; overflow) is recomputed directly as sum (a_k - b_k)^2 from the original
// points, 4 x 4 pairs at a time in float lanes (all terms positive: no cancellation), in double where a
// float square over- or underflows.

namespace fgram {

constexpr index_t min_dims = 64;            // float points of lower dimension take the double path
constexpr index_t lanes = 16;               // float lanes of one accumulator
constexpr index_t chunk = 512;              // columns per panel
constexpr index_t per_lane = chunk / lanes;  // products summed in float by one lane (32)
constexpr index_t tile = 4;                 // a register tile: 4 x 4 pairs of rows
constexpr index_t slice_chunks = 4;         // chunks per slice, the unit of parallel work
constexpr index_t slice_budget = index_t(1) << 22;  // doubles of partial Gram matrices (32 MiB), at most
/// The distance's relative error allowed before the output is rounded (the contract is 1e-5).
constexpr double tau = 9.5e-6;

#if defined(__GNUC__) && !defined(__CUDACC__)
#define TOPOFR_FGRAM_VECTOR 1
typedef float vf __attribute__((vector_size(64)));  // GCC/Clang vector extension, 16 floats
#else
struct vf {  // the same arithmetic, lane by lane, for other compilers
  float v[lanes];
  vf& operator+=(const vf& o) {
    for (index_t l = 0; l < lanes; ++l) v[l] += o.v[l];
    return *this;
  }
  friend vf operator*(const vf& a, const vf& b) {
    vf r;
    for (index_t l = 0; l < lanes; ++l) r.v[l] = a.v[l] * b.v[l];
    return r;
  }
  friend vf operator-(const vf& a, const vf& b) {
    vf r;
    for (index_t l = 0; l < lanes; ++l) r.v[l] = a.v[l] - b.v[l];
    return r;
  }
};
#endif
static_assert(sizeof(vf) == lanes * sizeof(float), "topofr: 16 float lanes");

/// Keeps a loaded vector in a register: without it GCC folds the loads into the 16 FMAs (20 loads per
/// 16 FMAs instead of 8), which halves the kernel's speed on AVX-512. A no-op elsewhere.
inline void pin(vf& v) {
#if defined(TOPOFR_FGRAM_VECTOR) && defined(__AVX512F__)
  __asm__("" : "+v"(v));
#else
  (void)v;
#endif
}

/// How the columns are grouped: nchunks chunks of 512, cps chunks per slice, nslices slices. A function
/// of (n, d) only, so the result never depends on the thread count.
struct plan {
  index_t n = 0, d = 0, np = 0, nchunks = 0, cps = 0, nslices = 0;
  plan(index_t rows, index_t cols) : n(rows), d(cols) {
    np = (n + tile - 1) / tile * tile;
    nchunks = (d + chunk - 1) / chunk;
    cps = slice_chunks;
    const index_t max_slices = std::max<index_t>(1, slice_budget / std::max<index_t>(1, n * n));
    if ((nchunks + cps - 1) / cps > max_slices) cps = (nchunks + max_slices - 1) / max_slices;
    nslices = std::max<index_t>(1, (nchunks + cps - 1) / cps);
  }
};

/// Chunk c of the points: centre, copy into the panel (np x chunk floats, rows >= n stay zero, columns
/// past the chunk zeroed up to a multiple of 16), add |y_i|^2 to norm[i] (double). finite becomes false if
/// a column sum is not finite, i.e. if the chunk holds a NaN or an infinity (n finite floats cannot
/// overflow a double sum): the finite check costs nothing more.
inline index_t pack(matrix_view<const float> x, index_t c, float* panel, double* norm, bool& finite) {
  const index_t n = x.rows(), k0 = c * chunk, kc = std::min(chunk, x.cols() - k0);
  const index_t kp = (kc + lanes - 1) / lanes * lanes;
  double colsum[chunk];
  float centre[chunk];
  for (index_t k = 0; k < kc; ++k) colsum[k] = 0.0;
  const index_t kn = std::min(chunk, x.cols() - k0 - kc);  // the next chunk's width (0 after the last)
  for (index_t i = 0; i < n; ++i) {
    const float* r = x.row(i) + k0;
    for (index_t k = 0; k < kc; ++k) colsum[k] += static_cast<double>(r[k]);
#if defined(__GNUC__)
    // n rows read 2 KiB at a time are more streams than the hardware prefetcher follows: ask for the
    // next chunk now, it arrives while this one is multiplied (~4% of the total, measured).
    for (index_t k = 0; k < kn; k += lanes) __builtin_prefetch(r + kc + k);
#endif
  }
  const double inv_n = 1.0 / static_cast<double>(n);
  bool ok = true;
  for (index_t k = 0; k < kc; ++k) {
    ok &= std::isfinite(colsum[k]);
    centre[k] = static_cast<float>(colsum[k] * inv_n);
  }
  if (!ok) finite = false;
  for (index_t i = 0; i < n; ++i) {
    const float* r = x.row(i) + k0;
    float* p = panel + i * chunk;
    for (index_t k = 0; k < kc; ++k) p[k] = r[k] - centre[k];
    for (index_t k = kc; k < kp; ++k) p[k] = 0.0f;
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (index_t k = 0; k < kp; k += 8)
      for (index_t l = 0; l < 8; ++l) s[l] += static_cast<double>(p[k + l]) * static_cast<double>(p[k + l]);
    norm[i] += ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
  }
  return kp;
}

/// The 16 lanes of v added in double (exactly converted; a fixed order).
inline double lane_sum(const vf& v) {
  float t[lanes];
  std::memcpy(t, &v, sizeof t);
  double h[8];
  for (index_t l = 0; l < 8; ++l) h[l] = static_cast<double>(t[l]) + static_cast<double>(t[l + 8]);
  return ((h[0] + h[4]) + (h[2] + h[6])) + ((h[1] + h[5]) + (h[3] + h[7]));
}

#if defined(TOPOFR_FGRAM_VECTOR) && defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector) && __has_builtin(__builtin_convertvector)
#define TOPOFR_FGRAM_SHUFFLE 1
#endif
#endif

#if defined(TOPOFR_FGRAM_SHUFFLE)
/// g[0..3] += the sums of the four accumulators acc[0..3]: lanes added in two float steps (16 -> 8 -> 4
/// per accumulator, all four at once), then in double. A row of a tile in ~20 vector operations instead of
/// four horizontal sums: the flush was a third of the kernel's time.
inline void flush_row(const vf (&acc)[tile], double* g) {
  typedef double v8d __attribute__((vector_size(64)));
  typedef double v4d __attribute__((vector_size(32)));
  const vf x = __builtin_shufflevector(acc[0], acc[1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               __builtin_shufflevector(acc[0], acc[1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const vf y = __builtin_shufflevector(acc[2], acc[3], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
               __builtin_shufflevector(acc[2], acc[3], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  const vf z = __builtin_shufflevector(x, y, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
               __builtin_shufflevector(x, y, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  const v8d lo = __builtin_convertvector(__builtin_shufflevector(z, z, 0, 1, 2, 3, 4, 5, 6, 7), v8d);
  const v8d hi = __builtin_convertvector(__builtin_shufflevector(z, z, 8, 9, 10, 11, 12, 13, 14, 15), v8d);
  const v8d u = __builtin_shufflevector(lo, hi, 0, 1, 4, 5, 8, 9, 12, 13) +
                __builtin_shufflevector(lo, hi, 2, 3, 6, 7, 10, 11, 14, 15);
  v4d w = __builtin_shufflevector(u, u, 0, 2, 4, 6) + __builtin_shufflevector(u, u, 1, 3, 5, 7);
  v4d old;
  std::memcpy(&old, g, sizeof old);
  w += old;
  std::memcpy(g, &w, sizeof w);
}
#endif

/// g[i * n + j] += the panel's dot product of rows i > j (the lower triangle; kp columns).
inline void gram_panel(const float* panel, index_t n, index_t np, index_t kp, double* g) {
  for (index_t bi = 0; bi < np; bi += tile)
    for (index_t bj = 0; bj <= bi; bj += tile) {
      vf acc[tile][tile] = {};
      const float* pa = panel + bi * chunk;
      const float* pb = panel + bj * chunk;
      for (index_t k = 0; k < kp; k += lanes) {
        vf a[tile], b[tile];
        for (index_t r = 0; r < tile; ++r) std::memcpy(&a[r], pa + r * chunk + k, sizeof(vf));
        for (index_t s = 0; s < tile; ++s) std::memcpy(&b[s], pb + s * chunk + k, sizeof(vf));
        for (index_t r = 0; r < tile; ++r) pin(a[r]);
        for (index_t s = 0; s < tile; ++s) pin(b[s]);
        for (index_t r = 0; r < tile; ++r)
          for (index_t s = 0; s < tile; ++s) acc[r][s] += a[r] * b[s];
      }
#if defined(TOPOFR_FGRAM_SHUFFLE)
      if (bj + tile <= n) {  // whole rows of 4 (entries j >= i land in g's unused upper triangle)
        for (index_t r = 0; r < tile && bi + r < n; ++r) flush_row(acc[r], g + (bi + r) * n + bj);
        continue;
      }
#endif
      for (index_t r = 0; r < tile; ++r)
        for (index_t s = 0; s < tile; ++s) {
          const index_t i = bi + r, j = bj + s;
          if (i >= n || j >= i) continue;
          g[i * n + j] += lane_sum(acc[r][s]);
        }
    }
}

/// The guard's recomputation, a 4 x 4 tile of pairs at a time: out[r][s] = sum_k (a_rk - b_sk)^2 of the
/// original float rows a[r], b[s] (d columns), the differences rounded to float and squared in float
/// lanes of at most 32 terms, added in double. All terms are positive, so the relative error is at most
/// (1 + u)^2 (1 + gamma_32) (1 + c_d) - 1 ~ 2.1e-6 on d^2, whatever the cancellation (docs/math.md),
/// unless a square overflows or underflows: the caller checks.
inline void diff_tile(const float* const* a, const float* const* b, index_t d, double (*out)[tile]) {
  for (index_t r = 0; r < tile; ++r)
    for (index_t s = 0; s < tile; ++s) out[r][s] = 0.0;
  const index_t d16 = d / lanes * lanes;
  for (index_t k0 = 0; k0 < d16; k0 += chunk) {
    const index_t k1 = std::min(d16, k0 + chunk);
    vf acc[tile][tile] = {};
    for (index_t k = k0; k < k1; k += lanes) {
      vf va[tile], vb[tile];
      for (index_t r = 0; r < tile; ++r) std::memcpy(&va[r], a[r] + k, sizeof(vf));
      for (index_t s = 0; s < tile; ++s) std::memcpy(&vb[s], b[s] + k, sizeof(vf));
      for (index_t r = 0; r < tile; ++r) pin(va[r]);
      for (index_t s = 0; s < tile; ++s) pin(vb[s]);
      for (index_t r = 0; r < tile; ++r)
        for (index_t s = 0; s < tile; ++s) {
          const vf t = va[r] - vb[s];
          acc[r][s] += t * t;
        }
    }
    for (index_t r = 0; r < tile; ++r)
      for (index_t s = 0; s < tile; ++s) out[r][s] += lane_sum(acc[r][s]);
  }
  for (index_t r = 0; r < tile; ++r)  // the last d mod 16 columns, in double
    for (index_t s = 0; s < tile; ++s)
      for (index_t k = d16; k < d; ++k) {
        const double t = static_cast<double>(a[r][k]) - static_cast<double>(b[s][k]);
        out[r][s] += t * t;
      }
}

/// sum_k (a_k - b_k)^2 in double (eight partial sums): the guard's exact recomputation.
template <class V>
double direct_d2(const V* a, const V* b, index_t d) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const index_t d8 = d / 8 * 8;
  for (index_t k = 0; k < d8; k += 8)
    for (index_t l = 0; l < 8; ++l) {
      const double t = static_cast<double>(a[k + l]) - static_cast<double>(b[k + l]);
      s[l] += t * t;
    }
  for (index_t k = d8; k < d; ++k) {
    const double t = static_cast<double>(a[k]) - static_cast<double>(b[k]);
    s[0] += t * t;
  }
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

}  // namespace fgram

/// The distance matrix of float points (n x d, any ld) into dist: the blocked float Gram matrix, exact
/// recomputation where its error bound could exceed the contract. work: scratch (reused in a batch).
/// Returns false, having written nothing, when the points hold a NaN or an infinity.
template <class T>
bool distances_float(matrix_view<const float> x, matrix_view<T> dist, double scale, dmatrix& work) {
  using namespace fgram;
  const index_t n = x.rows(), d = x.cols();
  const plan p(n, d);
  const index_t nn = n * n;
  work.setZero(p.nslices * (n + 1) + 1, n);  // nslices x (n x n Gram + n norms), then n roots
  double* const gram = work.data();                  // nslices partial Gram matrices (lower triangles)
  double* const norms = work.data() + p.nslices * nn;  // nslices partial squared norms
  if (n == 1 && !all_finite(x.row(0), d)) return false;
  if (n > 1) {
#if defined(_OPENMP)
    // Slices in parallel, unless already inside a parallel region (a batch): the sums are the same.
    const index_t threads = p.nslices > 1 && !omp_in_parallel() ? index_t(omp_get_max_threads()) : index_t(1);
#else
    const index_t threads = 1;
#endif
    const index_t panel_size = p.np * chunk;
    std::unique_ptr<float[]> panels(new float[static_cast<std::size_t>(threads * panel_size)]);
    std::unique_ptr<bool[]> finite_slices(new bool[static_cast<std::size_t>(p.nslices)]);
    bool* const finite = finite_slices.get();
    for (index_t t = 0; t < threads; ++t)  // padding rows (>= n) of each thread's panel: zero
      std::fill(panels.get() + t * panel_size + n * chunk, panels.get() + (t + 1) * panel_size, 0.0f);
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(threads)) if (threads > 1)
#endif
    for (index_t s = 0; s < p.nslices; ++s) {
#if defined(_OPENMP)
      float* panel = panels.get() + index_t(omp_get_thread_num()) * panel_size;
#else
      float* panel = panels.get();
#endif
      const index_t c1 = std::min(p.nchunks, (s + 1) * p.cps);
      finite[s] = true;
      for (index_t c = s * p.cps; c < c1; ++c) {
        const index_t kp = pack(x, c, panel, norms + s * n, finite[s]);
        gram_panel(panel, n, p.np, kp, gram + s * nn);
      }
    }
    for (index_t s = 0; s < p.nslices; ++s)
      if (!finite[s]) return false;
    for (index_t s = 1; s < p.nslices; ++s) {  // the slices, added in order
      for (index_t i = 0; i < n; ++i) {
        norms[i] += norms[s * n + i];
        for (index_t j = 0; j < i; ++j) gram[i * n + j] += gram[s * nn + i * n + j];
      }
    }
  }
  // Error bounds (docs/math.md): |d2 - |y_a - y_b|^2| <= e1, ||y_a - y_b| - |x_a - x_b|| <= e2.
  const double uf = std::ldexp(1.0, -24), tiny = std::ldexp(1.0, -126), dd = static_cast<double>(d);
  // Each product passes through at most per_lane + 2 float roundings (the lane, then two lane additions).
  const double m = static_cast<double>(per_lane + 2), gam = m * uf / (1.0 - m * uf);
  const double cd = static_cast<double>(d + 16 * p.nchunks + p.nslices + 16) * std::ldexp(1.0, -52);
  const double under1 = 4.0 * dd * tiny, under2 = 2.0 * std::sqrt(dd) * tiny, urep = uf * (1.0 + 2.0 * uf);
  double* const rn = norms + p.nslices * n;  // |y_i|
  for (index_t i = 0; i < n; ++i) rn[i] = std::sqrt(norms[i]);
  const index_t nt = p.np / tile;
  std::vector<unsigned char> redo;  // n x n: pairs the guard rejects, recomputed below by 4 x 4 tiles
  std::vector<index_t> tiles;       // bi * nt + bj of the tiles holding such pairs
  auto put = [&](index_t i, index_t j, double r) {
    const T v = static_cast<T>(r / scale);  // divide (not multiply by 1/scale): scale = 1 stays exact
    dist(i, j) = v;
    dist(j, i) = v;
  };
  for (index_t i = 0; i < n; ++i) {
    dist(i, i) = T(0);
    for (index_t j = 0; j < i; ++j) {
      const double na = norms[i], nb = norms[j], ra = rn[i], rb = rn[j];
      const double d2 = na + nb - 2.0 * gram[i * n + j];
      if (d2 > 0.0 && d2 <= std::numeric_limits<double>::max()) {
        const double root = std::sqrt(d2);
        const double e1 = 2.0 * (gam + cd) * ra * rb + 2.0 * cd * (na + nb) + under1;
        const double e2 = urep * (ra + rb) + under2;
        // (1 + tau) (e1 / root + e2) <= tau root, times root > 0; false for NaN/Inf bounds.
        if ((1.0 + tau) * (e1 + e2 * root) <= tau * d2) {
          put(i, j, root);
          continue;
        }
      }
      if (redo.empty()) redo.assign(static_cast<std::size_t>(n * n), 0);
      redo[static_cast<std::size_t>(i * n + j)] = 1;
      const index_t t = (i / tile) * nt + j / tile;
      if (tiles.empty() || tiles.back() != t) {  // tiles of one row block come in order
        if (std::find(tiles.begin(), tiles.end(), t) == tiles.end()) tiles.push_back(t);
      }
    }
  }
  if (tiles.empty()) return true;
  // The rejected pairs: sum (a_k - b_k)^2 of the original points, float lanes (diff_tile), or in double
  // where a float square could overflow or underflow (d^2 not finite, or below d * 2^-40).
  const index_t ntiles = static_cast<index_t>(tiles.size());
  const double lo = std::max(1.0, dd) * std::ldexp(1.0, -40);
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) if (ntiles > 8 && !omp_in_parallel())
#endif
  for (index_t q = 0; q < ntiles; ++q) {
    const index_t bi = tiles[static_cast<std::size_t>(q)] / nt * tile, bj = tiles[static_cast<std::size_t>(q)] % nt * tile;
    const float* ra[tile];
    const float* rb[tile];
    for (index_t r = 0; r < tile; ++r) {
      ra[r] = x.row(std::min(bi + r, n - 1));
      rb[r] = x.row(std::min(bj + r, n - 1));
    }
    double out[tile][tile];
    diff_tile(ra, rb, d, out);
    for (index_t r = 0; r < tile; ++r)
      for (index_t s = 0; s < tile; ++s) {
        const index_t i = bi + r, j = bj + s;
        if (i >= n || j >= i || !redo[static_cast<std::size_t>(i * n + j)]) continue;
        const double d2 = out[r][s];
        put(i, j, std::sqrt(d2 >= lo && d2 <= std::numeric_limits<double>::max() ? d2 : direct_d2(x.row(i), x.row(j), d)));
      }
  }
  return true;
}

/// One cloud's distances, the path pairwise_distances takes: float points with d >= 64 through
/// distances_float; double points, and float points of lower dimension (where a double Gram matrix costs
/// little and the float one would gain nothing), through a double copy and distances_double. x and gram
/// are scratch (reused in a batch). Returns false, having written nothing, when the points hold a NaN or
/// an infinity.
template <class In, class T>
bool cloud_distances(matrix_view<In> points, matrix_view<T> dist, double scale, dmatrix& x, dmatrix& gram) {
  if constexpr (std::is_same<std::remove_const_t<In>, float>::value) {
    if (points.cols() >= fgram::min_dims) return distances_float(matrix_view<const float>(points), dist, scale, gram);
  }
  for (index_t i = 0; i < points.rows(); ++i)
    if (!all_finite(points.row(i), points.cols())) return false;
  points_to_double(points, x);
  distances_double(x, dist, scale, gram);
  return true;
}

/// Batch extents: B >= 0, data non-null when B > 0, and (for an output) matrices that do not overlap.
template <class V>
void check_batch(const batch_view<V>& v, const char* fn, const char* arg, bool output = false) {
  require(v.batch() >= 0, fn, arg, "negative batch ", v.batch());
  require(v.batch_stride() >= 0, fn, arg, "negative batch stride ", v.batch_stride());
  require(!output || v.batch() <= 1 || v.batch_stride() >= v.rows() * v.ld(), fn, arg, "batch stride ",
          v.batch_stride(), " < rows * ld = ", v.rows() * v.ld(), " (output matrices overlap)");
  require(v.batch() == 0 || v.data() != nullptr, fn, arg, "null data pointer for a batch of ", v.batch());
}

template <class In, class T>
void check_distance_args(matrix_view<In> points, matrix_view<T> dist, double scale, const char* fn) {
  static_assert(is_real_v<std::remove_const_t<In>> && is_real_v<T>, "topofr: float or double only");
  check_view(points, fn, "points");
  require(points.rows() >= 1, fn, "points", "need at least one point, got ", points.rows());
  require_scale(scale, fn, "scale");
  check_shape(dist, points.rows(), points.rows(), fn, "dist");
}

}  // namespace detail

/// dist (n x n) = the Euclidean distances between the rows of points (n x d), divided by scale.
/// Exactly symmetric, 0 on the diagonal; relative error <= 1e-5 for float points (a float Gram matrix
/// accumulated in double, guarded: docs/math.md), double points computed in double.
/// Errors: NaN/Inf in points (names the row), scale not finite or <= 0, n < 1, dist not n x n.
template <class In, class T = std::remove_const_t<In>>
void pairwise_distances(cpu_t, matrix_view<In> points, matrix_view<T> dist, double scale = 1.0) {
  constexpr const char* fn = "pairwise_distances";
  detail::check_distance_args(points, dist, scale, fn);
  detail::dmatrix x, gram;
  // A NaN/Inf is found on the way (the float path: while packing) and nothing is written; then the
  // scan below names it.
  if (!detail::cloud_distances(points, dist, scale, x, gram)) detail::check_finite_points(points, fn, "points");
}

/// The batched form: dist[b] = pairwise_distances(points[b]) for b < B.
template <class In, class T = std::remove_const_t<In>>
void pairwise_distances(cpu_t, batch_view<In> points, batch_view<T> dist, double scale = 1.0) {
  constexpr const char* fn = "pairwise_distances";
  detail::check_batch(points, fn, "points");
  detail::check_batch(dist, fn, "dist", true);
  detail::require(dist.batch() == points.batch(), fn, "dist", "expected batch ", points.batch(), ", got ",
                  dist.batch());
  const index_t nb = points.batch();
  if (nb == 0) return;
  for (index_t b = 0; b < nb; ++b) {  // everything is checked before anything is written
    detail::check_distance_args(points[b], dist[b], scale, fn);
    detail::check_finite_points(points[b], fn, "points", b);
  }
#if defined(_OPENMP)
#pragma omp parallel
#endif
  {
    detail::dmatrix x, gram;  // per-thread scratch
#if defined(_OPENMP)
#pragma omp for schedule(dynamic)
#endif
    for (index_t b = 0; b < nb; ++b) {
      detail::cloud_distances(points[b], dist[b], scale, x, gram);
    }
  }
}

}  // namespace topofr
