// topofr/isa.hpp — ISA (invariant structure alignment), the topological loss of TopoFR, with hand-written
// gradients. The loss compares the distance matrices of the input batch X and the latent batch Z at their
// 0-dim persistence pairs; derivations are in docs/math.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/view.hpp"
#include "distance.hpp"
#include "persistence.hpp"

namespace topofr {

/// symmetric: the paper, L = 1/2 (|MX[gX] - MZ[gX]|^2 + |MZ[gZ] - MX[gZ]|^2).
/// sorted_deaths: the released code's default, L = sum_k (MX[gX_k] - MZ[gZ_k])^2 (pairs in filtration order).
enum class isa_variant { symmetric, sorted_deaths };
/// mean divides the loss by the batch size n (the released code); sum does not.
enum class reduction { sum, mean };

struct isa_options {
  isa_variant variant = isa_variant::symmetric;
  reduction reduce = reduction::mean;
  double x_scale = 1.0;  ///< input distances are divided by this (image_scale(C, H, W) in the released code)
  double z_scale = 1.0;  ///< latent distances are divided by this
};

namespace detail {

/// One term of the sparse gradient: dL/dM(e.u, e.v) receives g (an edge may receive several terms).
struct isa_term {
  edge e;
  double g;
};

inline void isa_check_enums(isa_variant v, reduction r, const char* fn) {
  require(v == isa_variant::symmetric || v == isa_variant::sorted_deaths, fn, "variant",
          "unknown isa_variant ", static_cast<int>(v));
  require(r == reduction::sum || r == reduction::mean, fn, "reduce", "unknown reduction ",
          static_cast<int>(r));
}

/// The entries of a distance matrix (its shape checked by check_isa_args): finite and >= 0.
template <class In>
void isa_check_dist(matrix_view<In> d, index_t n, const char* fn, const char* arg) {
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      const double v = static_cast<double>(d(i, j));
      require(std::isfinite(v) && v >= 0, fn, arg, "entry (", i, ", ", j, ") must be finite and >= 0, got ", v);
    }
}

/// The pairs (their size checked by check_isa_args): 0 <= u < v < n.
inline void isa_check_pairs(vector_view<const edge> p, index_t n, const char* fn, const char* arg) {
  for (index_t k = 0; k < p.size(); ++k)
    require(p[k].u >= 0 && p[k].u < p[k].v && p[k].v < n, fn, arg, "pair ", k, " = (", p[k].u, ", ",
            p[k].v, ") must satisfy 0 <= u < v < ", n);
}

/// Every entry finite; the error names the first bad (row, col). The common all-finite case is one
/// parallel pass; the serial scan only runs to locate a failure.
template <class In>
void isa_check_finite(matrix_view<In> p, const char* fn, const char* arg) {
  const index_t rows = p.rows(), cols = p.cols();
  int bad = 0;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) reduction(| : bad)
#endif
  for (index_t i = 0; i < rows; ++i)
    for (index_t k = 0; k < cols; ++k) bad |= !std::isfinite(static_cast<double>(p(i, k)));
  if (!bad) return;
  for (index_t i = 0; i < rows; ++i)
    for (index_t k = 0; k < cols; ++k)
      require(std::isfinite(static_cast<double>(p(i, k))), fn, arg, "entry (", i, ", ", k,
              ") is not finite: ", static_cast<double>(p(i, k)));
}

/// The loss (in double) and its sparse gradient terms w.r.t. MZ (tz) and MX (tx), each optional.
/// No checks: the public functions validate first.
template <class DX, class DZ>
double isa_terms(matrix_view<DX> mx, matrix_view<DZ> mz, vector_view<const edge> px, vector_view<const edge> pz,
                 isa_variant variant, reduction reduce, std::vector<isa_term>* tz, std::vector<isa_term>* tx) {
  const index_t n = mx.rows();
  const double c = reduce == reduction::mean ? 1.0 / static_cast<double>(n) : 1.0;
  auto at = [](auto m, edge e) { return static_cast<double>(m(e.u, e.v)); };
  double sum = 0;
  if (variant == isa_variant::symmetric) {
    // L = c/2 sum_e r_e^2 with r_e = MX[e] - MZ[e] on gX and r_e = MZ[e] - MX[e] on gZ: the 1/2 cancels
    // the 2 of the square, so dL/dMX[e] = c (MX[e] - MZ[e]) and dL/dMZ[e] = c (MZ[e] - MX[e]) on both sets.
    for (vector_view<const edge> p : {px, pz})
      for (edge e : p) {
        const double d = at(mx, e) - at(mz, e);
        sum += d * d;
        if (tz) tz->push_back({e, -c * d});
        if (tx) tx->push_back({e, c * d});
      }
    return 0.5 * c * sum;
  }
  for (index_t k = 0; k < px.size(); ++k) {
    const double d = at(mx, px[k]) - at(mz, pz[k]);
    sum += d * d;
    if (tz) tz->push_back({pz[k], -2 * c * d});
    if (tx) tx->push_back({px[k], 2 * c * d});
  }
  return c * sum;
}

/// Writes the dense gradient: zero everywhere, the terms added at (u, v). Only the symmetric variant
/// hits an edge twice (an edge in both pair sets), with two equal terms, so their sum in T is exact.
template <class T>
void isa_scatter(const std::vector<isa_term>& terms, matrix_view<T> grad) {
  for (index_t i = 0; i < grad.rows(); ++i)
    for (index_t j = 0; j < grad.cols(); ++j) grad(i, j) = T(0);
  for (const isa_term& t : terms) grad(t.e.u, t.e.v) += static_cast<T>(t.g);
}

/// Chain rule from the distance entries M(u, v) = ||p_u - p_v|| / scale to the points:
///   out_i = sum_{terms (e, g), i in e} g (p_i - p_j) / (scale ||p_i - p_j||)   (0 where p_i == p_j).
/// The norm is recomputed per edge in double (O(d), accurate even where the distance matrix is float).
/// Each row is summed in double by one thread in a fixed order: the result is thread-count independent.
template <class In, class T>
void isa_chain(matrix_view<In> p, double scale, const std::vector<isa_term>& terms, matrix_view<T> out) {
  const index_t n = p.rows(), d = p.cols(), m = static_cast<index_t>(terms.size());
  const isa_term* term = terms.data();
  std::vector<double> coef_v(static_cast<std::size_t>(m));
  double* coef = coef_v.data();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static)
#endif
  for (index_t t = 0; t < m; ++t) {
    const In* a = p.row(term[t].e.u);
    const In* b = p.row(term[t].e.v);
    double r2 = 0;
    for (index_t k = 0; k < d; ++k) {
      const double diff = static_cast<double>(a[k]) - static_cast<double>(b[k]);
      r2 += diff * diff;
    }
    const double r = std::sqrt(r2);
    coef[t] = r > 0 ? term[t].g / (scale * r) : 0.0;  // PyTorch's norm subgradient at 0
  }
  // Incidence lists in CSR form, in term order: node i sees (j, coef) for each term on an edge {i, j}.
  std::vector<index_t> start_v(static_cast<std::size_t>(n + 1), 0);
  index_t* start = start_v.data();
  for (const isa_term& t : terms) ++start[t.e.u + 1], ++start[t.e.v + 1];
  for (index_t i = 0; i < n; ++i) start[i + 1] += start[i];
  std::vector<index_t> fill_v(start_v.begin(), start_v.end() - 1), other_v(static_cast<std::size_t>(2 * m));
  std::vector<double> weight_v(static_cast<std::size_t>(2 * m));
  index_t* fill = fill_v.data();
  index_t* other = other_v.data();
  double* weight = weight_v.data();
  for (index_t t = 0; t < m; ++t) {
    const edge e = term[t].e;
    other[fill[e.u]] = e.v, weight[fill[e.u]++] = coef[t];
    other[fill[e.v]] = e.u, weight[fill[e.v]++] = coef[t];
  }
#if defined(_OPENMP)
#pragma omp parallel
#endif
  {
    std::vector<double> acc_v(static_cast<std::size_t>(d));
    double* acc = acc_v.data();
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
    for (index_t i = 0; i < n; ++i) {
      std::fill(acc, acc + d, 0.0);
      const In* pi = p.row(i);
      for (index_t s = start[i]; s < start[i + 1]; ++s) {
        const In* pj = p.row(other[s]);
        const double w = weight[s];
        if (w == 0) continue;
        for (index_t k = 0; k < d; ++k) acc[k] += w * (static_cast<double>(pi[k]) - static_cast<double>(pj[k]));
      }
      T* o = out.row(i);
      for (index_t k = 0; k < d; ++k) o[k] = static_cast<T>(acc[k]);
    }
  }
}

/// isa_loss's host-side checks, shared by the CPU and CUDA overloads: shapes, sizes, enums, aliasing (the
/// values are checked where they are read: on the host by the CPU, on the device by the CUDA twin).
/// Returns n.
template <class InX, class InZ, class T, class S>
index_t check_isa_args(const matrix_view<InX, S>& dist_x, const matrix_view<InZ, S>& dist_z,
                       const vector_view<const edge, S>& pairs_x, const vector_view<const edge, S>& pairs_z,
                       isa_variant variant, reduction reduce, const matrix_view<T, S>& grad_dist_z,
                       const matrix_view<T, S>& grad_dist_x, const char* fn) {
  check_view(dist_x, fn, "dist_x");
  const index_t n = dist_x.rows();
  require(n >= 2, fn, "dist_x", "needs n >= 2 points, got ", n);
  require(dist_x.cols() == n, fn, "dist_x", "expected a square matrix, got ", n, " x ", dist_x.cols());
  check_shape(dist_z, n, n, fn, "dist_z");
  check_size(pairs_x, n - 1, fn, "pairs_x");
  check_size(pairs_z, n - 1, fn, "pairs_z");
  isa_check_enums(variant, reduce, fn);
  if (!grad_dist_z.empty()) check_shape(grad_dist_z, n, n, fn, "grad_dist_z");
  if (!grad_dist_x.empty()) check_shape(grad_dist_x, n, n, fn, "grad_dist_x");
  require(grad_dist_z.empty() || grad_dist_x.empty() || grad_dist_z.data() != grad_dist_x.data(), fn,
          "grad_dist_x", "must not be the same buffer as grad_dist_z");
  return n;
}

template <class T, class InX, class InZ>
constexpr void isa_static_checks() {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "topofr ISA: the scalar type must be float or double");
  static_assert(std::is_same<std::remove_const_t<InX>, T>::value && std::is_same<std::remove_const_t<InZ>, T>::value,
                "topofr ISA: X, Z and the gradients must share one scalar type");
}

}  // namespace detail

/// ISA loss from distance matrices (already scaled) and their 0-dim persistence pairs (n-1 edges u < v,
/// in filtration order as persistence_pairs returns them). Returns the loss; writes the dense gradient
/// w.r.t. each distance matrix (n x n, overwritten, nonzero only at the pairs' (u, v) entries; an empty
/// view skips it). Throws topofr::error on any invalid argument.
template <class InX, class InZ, class T = std::remove_const_t<InX>>
T isa_loss(cpu_t, matrix_view<InX> dist_x, matrix_view<InZ> dist_z, vector_view<const edge> pairs_x,
           vector_view<const edge> pairs_z, isa_variant variant, reduction reduce,
           matrix_view<T> grad_dist_z = {}, matrix_view<T> grad_dist_x = {}) {
  detail::isa_static_checks<T, InX, InZ>();
  constexpr const char* fn = "isa_loss";
  const index_t n = detail::check_isa_args(dist_x, dist_z, pairs_x, pairs_z, variant, reduce, grad_dist_z,
                                           grad_dist_x, fn);
  detail::isa_check_dist(dist_x, n, fn, "dist_x");
  detail::isa_check_dist(dist_z, n, fn, "dist_z");
  detail::isa_check_pairs(pairs_x, n, fn, "pairs_x");
  detail::isa_check_pairs(pairs_z, n, fn, "pairs_z");

  std::vector<detail::isa_term> tz, tx;
  const double loss = detail::isa_terms(dist_x, dist_z, pairs_x, pairs_z, variant, reduce,
                                        grad_dist_z.empty() ? nullptr : &tz, grad_dist_x.empty() ? nullptr : &tx);
  // All reads of the inputs are done: a gradient may even overwrite its own distance matrix.
  if (!grad_dist_z.empty()) detail::isa_scatter(tz, grad_dist_z);
  if (!grad_dist_x.empty()) detail::isa_scatter(tx, grad_dist_x);
  return static_cast<T>(loss);
}

namespace detail {
/// The host-side argument checks of isa_loss_from_points, shared by the CPU and CUDA overloads (shapes,
/// scales, options, gradient shapes and aliasing; not the values, which the CUDA side checks on the device).
/// Returns n.
template <class InX, class InZ, class T, class S>
index_t isa_check_points_args(const matrix_view<InX, S>& x, const matrix_view<InZ, S>& z, const isa_options& opt,
                              const matrix_view<T, S>& grad_z, const matrix_view<T, S>& grad_x, const char* fn) {
  detail::check_view(x, fn, "x");
  detail::check_view(z, fn, "z");
  const index_t n = x.rows();
  detail::require(n >= 2, fn, "x", "needs n >= 2 points, got ", n);
  detail::require(z.rows() == n, fn, "z", "expected ", n, " rows (as x), got ", z.rows());
  detail::require(x.cols() >= 1, fn, "x", "needs at least one column, got ", x.cols());
  detail::require(z.cols() >= 1, fn, "z", "needs at least one column, got ", z.cols());
  detail::require_scale(opt.x_scale, fn, "x_scale");
  detail::require_scale(opt.z_scale, fn, "z_scale");
  detail::isa_check_enums(opt.variant, opt.reduce, fn);
  if (!grad_z.empty()) {
    detail::check_shape(grad_z, n, z.cols(), fn, "grad_z");
    detail::require(static_cast<const void*>(grad_z.data()) != static_cast<const void*>(z.data()), fn, "grad_z",
                    "must not alias z");
  }
  if (!grad_x.empty()) {
    detail::check_shape(grad_x, n, x.cols(), fn, "grad_x");
    detail::require(static_cast<const void*>(grad_x.data()) != static_cast<const void*>(x.data()), fn, "grad_x",
                    "must not alias x");
  }
  detail::require(grad_z.empty() || grad_x.empty() || grad_z.data() != grad_x.data(), fn, "grad_x",
                  "must not be the same buffer as grad_z");
  return n;
}

}  // namespace detail

/// ISA loss from the points: x (n x dx, e.g. an image batch flattened to n x C*H*W) and z (n x dz
/// embeddings). Computes the scaled distance matrices, their persistence pairs, the loss, and the gradient
/// w.r.t. z and/or x (overwritten; an empty view skips it; must not alias the points). O(n^2 (dx + dz))
/// for the distances, O(n (dx + dz)) for the sparse chain rule. Throws topofr::error on invalid arguments.
template <class InX, class InZ, class T = std::remove_const_t<InX>>
T isa_loss_from_points(cpu_t, matrix_view<InX> x, matrix_view<InZ> z, const isa_options& opt,
                       matrix_view<T> grad_z = {}, matrix_view<T> grad_x = {}) {
  detail::isa_static_checks<T, InX, InZ>();
  constexpr const char* fn = "isa_loss_from_points";
  const index_t n = detail::isa_check_points_args(x, z, opt, grad_z, grad_x, fn);
  detail::isa_check_finite(x, fn, "x");
  detail::isa_check_finite(z, fn, "z");

  std::vector<T> mx(static_cast<std::size_t>(n * n)), mz(static_cast<std::size_t>(n * n));
  const matrix_view<T> dx(mx.data(), n, n), dz(mz.data(), n, n);
  pairwise_distances(cpu, x, dx, opt.x_scale);
  pairwise_distances(cpu, z, dz, opt.z_scale);
  // Finite points can still have distances beyond the range of T.
  detail::isa_check_finite(matrix_view<const T>(dx), fn, "x (pairwise distances overflow)");
  detail::isa_check_finite(matrix_view<const T>(dz), fn, "z (pairwise distances overflow)");
  std::vector<edge> px(static_cast<std::size_t>(n - 1)), pz(static_cast<std::size_t>(n - 1));
  persistence_pairs(cpu, matrix_view<const T>(dx), vector_view<edge>(px.data(), n - 1));
  persistence_pairs(cpu, matrix_view<const T>(dz), vector_view<edge>(pz.data(), n - 1));

  std::vector<detail::isa_term> tz, tx;
  const vector_view<const edge> vx(px.data(), n - 1), vz(pz.data(), n - 1);
  const double loss = detail::isa_terms(matrix_view<const T>(dx), matrix_view<const T>(dz), vx, vz, opt.variant,
                                        opt.reduce, grad_z.empty() ? nullptr : &tz, grad_x.empty() ? nullptr : &tx);
  if (!grad_z.empty()) detail::isa_chain(z, opt.z_scale, tz, grad_z);
  if (!grad_x.empty()) detail::isa_chain(x, opt.x_scale, tx, grad_x);
  return static_cast<T>(loss);
}

}  // namespace topofr
