// topofr/core/error.hpp — the one exception type, and the argument checks every block shares.
#pragma once

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace topofr {

/// Thrown for every invalid argument. The message names the function, the argument and the value:
///   "topofr::persistence_pairs: dist: expected a square matrix, got 3 x 4"
class error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

namespace detail {

template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << std::forward<Args>(args));
  return os.str();
}

/// Throws topofr::error("topofr::<fn>: <arg>: <what...>").
template <class... Args>
[[noreturn]] void fail(const char* fn, const char* arg, Args&&... what) {
  throw error(concat("topofr::", fn, ": ", arg, ": ", std::forward<Args>(what)...));
}

template <class... Args>
void require(bool ok, const char* fn, const char* arg, Args&&... what) {
  if (!ok) fail(fn, arg, std::forward<Args>(what)...);
}

/// A strictly positive, finite scale divisor.
template <class T>
void require_scale(T s, const char* fn, const char* arg) {
  require(std::isfinite(static_cast<double>(s)) && s > T(0), fn, arg,
          "must be finite and > 0, got ", static_cast<double>(s));
}

}  // namespace detail
}  // namespace topofr
