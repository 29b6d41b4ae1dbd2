// examples/cli/common.hpp — what every part of the `topofr` command-line tool shares: the two kinds of
// failure (and their exit codes), message building and number formatting.
#pragma once

#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <topofr/topofr.hpp>

namespace topofr_cli {

using topofr::index_t;

/// Bad command line or bad input: exit 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The file system failed us (cannot open, cannot write): exit 1.
struct io_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... A>
std::string str(A&&... a) {
  return topofr::detail::concat(std::forward<A>(a)...);
}

template <class T> const char* type_name() { return std::is_same<T, float>::value ? "float32" : "float64"; }

inline std::string g(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

/// The multi-index "(i, j, ...)" of the flat (C-order) index k of an array of this shape.
inline std::string where(const std::vector<index_t>& shape, index_t k) {
  std::vector<index_t> idx(shape.size(), 0);
  for (std::size_t d = shape.size(); d-- > 0;) {
    if (shape[d] > 0) idx[d] = k % shape[d], k /= shape[d];
  }
  std::string s = "(";
  for (std::size_t d = 0; d < idx.size(); ++d) s += (d ? ", " : "") + std::to_string(idx[d]);
  return s + (idx.size() == 1 ? ",)" : ")");
}

/// The flat index of the first non-finite element, or -1.
template <class T>
index_t first_nonfinite(const std::vector<T>& v) {
  for (std::size_t k = 0; k < v.size(); ++k)
    if (!std::isfinite(v[k])) return static_cast<index_t>(k);
  return -1;
}

/// a * b for sizes >= 0, or nullopt when the product does not fit in index_t.
inline std::optional<index_t> mul(index_t a, index_t b) {
  index_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

}  // namespace topofr_cli
