// topofr/distance.hpp — Euclidean distance matrices of point clouds (docs/math.md).
// dist(i, j) = ||x_i - x_j|| / scale, exactly symmetric, 0 on the diagonal, no n x n x d temporary.
#pragma once

#include <cmath>
#include <type_traits>
#include <vector>

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

/// Rejects NaN/Inf in the points, naming the row (and the batch entry b when b >= 0).
template <class In>
void check_finite_points(matrix_view<In> p, const char* fn, const char* arg, index_t b = -1) {
  for (index_t i = 0; i < p.rows(); ++i) {
    const In* r = p.row(i);
    bool finite = true;
    for (index_t k = 0; k < p.cols(); ++k) finite &= std::isfinite(r[k]);
    if (finite) continue;
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
/// Exactly symmetric, 0 on the diagonal; relative error <= 1e-5 for float output (computed in double).
/// Errors: NaN/Inf in points (names the row), scale not finite or <= 0, n < 1, dist not n x n.
template <class In, class T = std::remove_const_t<In>>
void pairwise_distances(cpu_t, matrix_view<In> points, matrix_view<T> dist, double scale = 1.0) {
  constexpr const char* fn = "pairwise_distances";
  detail::check_distance_args(points, dist, scale, fn);
  detail::check_finite_points(points, fn, "points");
  detail::dmatrix x, gram;
  detail::points_to_double(points, x);
  detail::distances_double(x, dist, scale, gram);
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
      detail::points_to_double(points[b], x);
      detail::distances_double(x, dist[b], scale, gram);
    }
  }
}

}  // namespace topofr
