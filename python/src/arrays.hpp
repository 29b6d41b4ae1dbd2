// arrays.hpp — DLPack arrays (nanobind ndarrays) seen as topofr views, zero-copy. Every check names the Python
// function and argument; a violation is topofr.Error (a ValueError) or, for a wrong dtype or device, TypeError.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <string>

#include "topofr/core/error.hpp"
#include "topofr/core/view.hpp"

namespace topofr_py {

namespace nb = nanobind;
using topofr::index_t;

using in_array = nb::ndarray<nb::ro>;  // an input: any dtype or device, read-only arrays accepted
using out_array = nb::ndarray<>;       // an output: must be writable

/// A TypeError naming the function and the argument.
template <class... Args>
[[noreturn]] void type_fail(const char* fn, const char* arg, Args&&... what) {
  throw nb::type_error(topofr::detail::concat("topofr.", fn, ": ", arg, ": ", std::forward<Args>(what)...).c_str());
}
/// A topofr.Error (ValueError) naming the function and the argument.
template <class... Args>
[[noreturn]] void value_fail(const char* fn, const char* arg, Args&&... what) {
  throw topofr::error(topofr::detail::concat("topofr.", fn, ": ", arg, ": ", std::forward<Args>(what)...));
}

inline std::string dtype_name(nb::dlpack::dtype d) {
  const char* kind = "unknown";
  switch (static_cast<nb::dlpack::dtype_code>(d.code)) {
    case nb::dlpack::dtype_code::Int: kind = "int"; break;
    case nb::dlpack::dtype_code::UInt: kind = "uint"; break;
    case nb::dlpack::dtype_code::Float: kind = "float"; break;
    case nb::dlpack::dtype_code::Bool: return "bool";
    case nb::dlpack::dtype_code::Complex: kind = "complex"; break;
    case nb::dlpack::dtype_code::Bfloat: kind = "bfloat"; break;
    default: break;
  }
  return kind + std::to_string(int(d.bits));
}

template <class T> bool is(const nb::dlpack::dtype& d) { return d == nb::dtype<T>(); }

/// Calls f(T{}) with T the array's real type (float32 or float64).
template <class A, class F>
decltype(auto) with_real(const A& a, const char* fn, const char* arg, F&& f) {
  if (is<float>(a.dtype())) return f(float{});
  if (is<double>(a.dtype())) return f(double{});
  type_fail(fn, arg, "expected float32 or float64, got ", dtype_name(a.dtype()));
}
/// Calls f(L{}) with L the array's label type (int32 or int64).
template <class A, class F>
decltype(auto) with_label(const A& a, const char* fn, const char* arg, F&& f) {
  if (is<std::int32_t>(a.dtype())) return f(std::int32_t{});
  if (is<std::int64_t>(a.dtype())) return f(std::int64_t{});
  type_fail(fn, arg, "expected int32 or int64 labels, got ", dtype_name(a.dtype()));
}

enum class space { cpu, cuda };

inline const char* device_name(int t) {
  return t == nb::device::cpu::value ? "cpu" : t == nb::device::cuda::value ? "cuda" : "another device";
}

template <class A> space space_of(const A& a, const char* fn, const char* arg) {
  if (a.device_type() == nb::device::cpu::value) return space::cpu;
  if (a.device_type() == nb::device::cuda::value) return space::cuda;
  type_fail(fn, arg, "arrays must live on the CPU or a CUDA device, got device type ", a.device_type());
}

/// The checks every view shares: element type, device, rank, unit stride along the last axis and non-negative
/// strides (a view has a leading dimension but no other strides; topofr/__init__.py copies a strided *input*
/// first, never an output).
template <class T, class A>
void check_array(const A& a, std::size_t ndim, space where, const char* fn, const char* arg) {
  if (!is<T>(a.dtype()))
    type_fail(fn, arg, "expected ", dtype_name(nb::dtype<T>()), ", got ", dtype_name(a.dtype()));
  const space s = space_of(a, fn, arg);
  if (s != where)
    type_fail(fn, arg, "is on ", device_name(a.device_type()), " but the other arrays are on ",
              where == space::cpu ? "cpu" : "cuda");
  if (a.ndim() != ndim) value_fail(fn, arg, "expected ", ndim, " dimensions, got ", a.ndim());
  if (a.size() == 0) return;  // no element is addressed: strides are arbitrary (torch.from_numpy gives 0s)
  if (ndim >= 1 && a.shape(ndim - 1) > 1 && a.stride(ndim - 1) != 1)
    value_fail(fn, arg, "the last axis must be contiguous (stride 1), got stride ", a.stride(ndim - 1),
               "; pass a contiguous array");
  for (std::size_t k = 0; k + 1 < ndim; ++k)
    if (a.stride(k) < 0) value_fail(fn, arg, "negative strides are not supported, axis ", k);
}

template <class A> index_t dim(const A& a, std::size_t k) { return static_cast<index_t>(a.shape(k)); }

/// The leading dimension of axis k: its stride, or the extent of the axis after it when axis k has length
/// <= 1 (whose stride frameworks leave arbitrary).
template <class A> index_t ld(const A& a, std::size_t k, index_t minimum) {
  return a.shape(k) <= 1 || a.size() == 0 ? minimum : static_cast<index_t>(a.stride(k));
}

template <class T, class Space = topofr::host_memory, class A>
topofr::vector_view<T, Space> vec(const A& a, const char* fn, const char* arg,
                                  space where = space::cpu) {
  check_array<std::remove_const_t<T>>(a, 1, where, fn, arg);
  return {static_cast<T*>(const_cast<void*>(static_cast<const void*>(a.data()))), dim(a, 0)};
}

template <class T, class Space = topofr::host_memory, class A>
topofr::matrix_view<T, Space> mat(const A& a, const char* fn, const char* arg, space where = space::cpu) {
  check_array<std::remove_const_t<T>>(a, 2, where, fn, arg);
  const index_t cols = dim(a, 1), l = ld(a, 0, cols);
  if (l < cols) value_fail(fn, arg, "rows overlap (row stride ", l, " < ", cols, " columns)");
  return {static_cast<T*>(const_cast<void*>(static_cast<const void*>(a.data()))), dim(a, 0), cols, l};
}

template <class T, class Space = topofr::host_memory, class A>
topofr::batch_view<T, Space> batch(const A& a, const char* fn, const char* arg, space where = space::cpu) {
  check_array<std::remove_const_t<T>>(a, 3, where, fn, arg);
  const index_t rows = dim(a, 1), cols = dim(a, 2), l = ld(a, 1, cols), bs = ld(a, 0, rows * l);
  if (l < cols) value_fail(fn, arg, "rows overlap (row stride ", l, " < ", cols, " columns)");
  return {static_cast<T*>(const_cast<void*>(static_cast<const void*>(a.data()))), dim(a, 0), rows, cols, l, bs};
}

/// An (m, 2) int32 array of persistence pairs as a span of edges (rows must be dense: stride 2).
template <class E, class Space = topofr::host_memory, class A>
topofr::vector_view<E, Space> edges(const A& a, const char* fn, const char* arg, space where = space::cpu) {
  check_array<std::int32_t>(a, 2, where, fn, arg);
  if (a.shape(1) != 2) value_fail(fn, arg, "expected shape (m, 2), got (", a.shape(0), ", ", a.shape(1), ")");
  if (a.shape(0) > 1 && a.size() != 0 && a.stride(0) != 2)
    value_fail(fn, arg, "rows must be dense (row stride 2), got ", a.stride(0));
  return {static_cast<E*>(const_cast<void*>(static_cast<const void*>(a.data()))), dim(a, 0)};
}

/// A (B, m, 2) int32 array of pairs as a B x m matrix of edges.
template <class E, class Space = topofr::host_memory, class A>
topofr::matrix_view<E, Space> edge_batch(const A& a, const char* fn, const char* arg, space where = space::cpu) {
  check_array<std::int32_t>(a, 3, where, fn, arg);
  if (a.shape(2) != 2)
    value_fail(fn, arg, "expected shape (B, m, 2), got (", a.shape(0), ", ", a.shape(1), ", ", a.shape(2), ")");
  if (a.shape(1) > 1 && a.size() != 0 && a.stride(1) != 2)
    value_fail(fn, arg, "rows must be dense (stride 2), got ", a.stride(1));
  const index_t m = dim(a, 1), l = ld(a, 0, 2 * m);
  if (l % 2 != 0 || l < 2 * m) value_fail(fn, arg, "unsupported batch stride ", l);
  return {static_cast<E*>(const_cast<void*>(static_cast<const void*>(a.data()))), dim(a, 0), m, l / 2};
}

}  // namespace topofr_py
