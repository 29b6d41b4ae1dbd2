// topofr/gather.hpp — persistence-pair gathering M[γ] and its adjoint (docs/math.md).
#pragma once

#include <type_traits>

#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/view.hpp"

namespace topofr {
namespace detail {

/// Pairs must index an n x n matrix as (u, v) with 0 <= u < v < n (the persistence_pairs convention).
/// (Host memory: the CUDA twins check the pairs on the device.)
inline void check_pair_values(vector_view<const edge> pairs, index_t n, const char* fn) {
  for (index_t k = 0; k < pairs.size(); ++k) {
    const edge e = pairs[k];
    require(e.u >= 0 && e.u < e.v && e.v < n, fn, "pairs", "pair ", k, " = (", e.u, ", ", e.v,
            ") must satisfy 0 <= u < v < n = ", n);
  }
}

template <class M, class S>
void check_square(const matrix_view<M, S>& m, const char* fn, const char* arg) {
  check_view(m, fn, arg);
  require(m.rows() == m.cols(), fn, arg, "expected a square matrix, got ", m.rows(), " x ", m.cols());
}

/// The host-side checks of gather_pairs / scatter_pairs_add, shared by the CPU and CUDA overloads: `m` (dist
/// or grad_dist, named `m_arg`) square, pairs a valid view, values of the pairs' size.
template <class M, class V, class S>
void check_gather_args(const matrix_view<M, S>& m, const char* m_arg, const vector_view<const edge, S>& pairs,
                       const vector_view<V, S>& values, const char* fn) {
  check_square(m, fn, m_arg);
  check_view(pairs, fn, "pairs");
  check_size(values, pairs.size(), fn, "values");
}

template <class A, class B>
constexpr bool both_real_v = (std::is_same<std::remove_const_t<A>, float>::value ||
                              std::is_same<std::remove_const_t<A>, double>::value) &&
                             (std::is_same<B, float>::value || std::is_same<B, double>::value);

}  // namespace detail

/// values[k] = dist(u_k, v_k) (the entry as stored: the upper triangle for pairs from persistence_pairs).
/// Errors: dist not square, a pair outside 0 <= u < v < n, values of a size other than pairs'.
template <class In, class T = std::remove_const_t<In>>
void gather_pairs(cpu_t, matrix_view<In> dist, vector_view<const edge> pairs, vector_view<T> values) {
  static_assert(detail::both_real_v<In, T>, "topofr: float or double only");
  constexpr const char* fn = "gather_pairs";
  detail::check_gather_args(dist, "dist", pairs, values, fn);
  detail::check_pair_values(pairs, dist.rows(), fn);
  for (index_t k = 0; k < pairs.size(); ++k) values[k] = static_cast<T>(dist(pairs[k].u, pairs[k].v));
}

/// The adjoint of gather_pairs: grad_dist(u_k, v_k) += values[k], in pair order (repeated pairs
/// accumulate; deterministic). Only the entries (u_k, v_k) are touched. Errors: as gather_pairs.
template <class In, class T = std::remove_const_t<In>>
void scatter_pairs_add(cpu_t, vector_view<const edge> pairs, vector_view<In> values, matrix_view<T> grad_dist) {
  static_assert(detail::both_real_v<In, T>, "topofr: float or double only");
  constexpr const char* fn = "scatter_pairs_add";
  detail::check_gather_args(grad_dist, "grad_dist", pairs, values, fn);
  detail::check_pair_values(pairs, grad_dist.rows(), fn);
  for (index_t k = 0; k < pairs.size(); ++k)
    grad_dist(pairs[k].u, pairs[k].v) += static_cast<T>(values[k]);
}

}  // namespace topofr
