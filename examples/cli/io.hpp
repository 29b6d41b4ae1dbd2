// examples/cli/io.hpp — the `topofr` tool's files: which flag names which path (an output never replaces
// an input), reading .npy inputs with the checks only the tool can make (rank, shape, dtype range, sizes
// that overflow or cannot fit in memory), and writing outputs through npy::write, i.e. through
// topofr::detail::write_file (devices and FIFOs written in place, regular files replaced atomically).
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <topofr/npy.hpp>

#include "args.hpp"
#include "common.hpp"

namespace topofr_cli {

namespace npy = topofr::npy;
namespace fs = std::filesystem;

/// The input and output files of one invocation, by flag; refuses to let an output replace an input
/// (or another output) before anything is read or computed.
class files {
 public:
  explicit files(const args& a) : a_(a) {}

  std::optional<std::string> input(const std::string& flag, bool required) {
    auto p = required ? std::optional<std::string>(a_.required(flag)) : a_.get(flag);
    if (p) inputs_.emplace_back(flag, *p);
    return p;
  }
  std::optional<std::string> output(const std::string& flag, bool required) {
    auto p = required ? std::optional<std::string>(a_.required(flag)) : a_.get(flag);
    if (!p) return p;
    for (const auto& [f, q] : inputs_)
      if (same_file(*p, q))
        throw usage_error(str(flag, ": ", *p, " is the input file of ", f, " (", q, "); refusing to overwrite an input"));
    for (const auto& [f, q] : outputs_)
      if (same_file(*p, q)) throw usage_error(str(flag, ": ", *p, " is also the output file of ", f));
    outputs_.emplace_back(flag, *p);
    return p;
  }

 private:
  static bool same_file(const std::string& a, const std::string& b) {
    std::error_code e1, e2;
    if (fs::exists(a, e1) && fs::exists(b, e2)) return fs::equivalent(a, b, e1);  // links included
    return fs::weakly_canonical(a, e1) == fs::weakly_canonical(b, e2);
  }
  const args& a_;
  std::vector<std::pair<std::string, std::string>> inputs_, outputs_;
};

inline npy::array load(const std::string& flag, const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw io_error(str(flag, ": ", path, " is a directory"));
  if (!std::ifstream(path, std::ios::binary)) throw io_error(str(flag, ": cannot open ", path, " for reading"));
  try {
    return npy::read(path);
  } catch (const topofr::error& e) {
    throw usage_error(str(flag, ": ", e.what()));
  }
}

template <class T>
void save(const std::string& flag, const std::string& path, const std::vector<T>& v, std::vector<index_t> shape) {
  try {
    npy::write(path, v.data(), shape);
  } catch (const topofr::error& e) {
    throw io_error(str(flag, ": ", e.what()));
  }
}

inline std::string shape_of(const npy::array& a) { return a.shape_string(); }

/// Elements of a float input, converted to the compute type. A finite float64 value beyond the float32
/// range (--dtype float32) is refused here as out of range: converted, it would become an infinity that
/// the library could only call "not finite".
template <class T>
std::vector<T> floats(const std::string& flag, const npy::array& a, const std::string& path) {
  std::vector<T> v;
  try {
    v = a.as<T>(flag);
  } catch (const topofr::error& e) {
    throw usage_error(e.what());
  }
  if (std::is_same<T, float>::value && a.type == npy::dtype::float64) {
    const std::vector<double> src = a.as<double>(flag);
    for (std::size_t k = 0; k < v.size(); ++k)
      if (std::isfinite(src[k]) && !std::isfinite(v[k]))
        throw usage_error(str(flag, ": ", path, ": element ", where(a.shape, static_cast<index_t>(k)), " = ", g(src[k]),
                              " is out of range for float32 (the compute dtype; the file is float64): use --dtype "
                              "float64 or rescale the input"));
  }
  return v;
}

/// Refuses, before allocating, an array of `count` elements of `elem` bytes that cannot exist: more
/// bytes than the address space or than this machine's physical memory (the allocation would fail or
/// the process be killed while filling it).
inline void require_memory(const std::string& flag, const std::string& shape, const std::string& what,
                    std::optional<index_t> count, std::size_t elem) {
  std::uint64_t bytes = 0;
  const bool overflow = !count || __builtin_mul_overflow(static_cast<std::uint64_t>(*count), elem, &bytes) ||
                        bytes > static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  const std::uint64_t phys = pages > 0 && page > 0 ? std::uint64_t(pages) * std::uint64_t(page) : 0;
  if (overflow)
    throw usage_error(str(flag, ": shape ", shape, " is too large: ", what, " has more elements than a 64-bit size holds"));
  if (phys && bytes > phys)
    throw usage_error(str(flag, ": shape ", shape, " is too large: ", what, " needs ", bytes, " bytes, more than this "
                          "machine's memory (", phys, " bytes)"));
}

/// Class labels: int32 or int64, shape (n,).
inline std::vector<std::int64_t> labels(const std::string& flag, const npy::array& a, index_t n) {
  if (a.ndim() != 1 || a.shape[0] != n)
    throw usage_error(str(flag, ": expected shape (", n, ",) to match --cos, got ", shape_of(a)));
  try {
    return a.as<std::int64_t>(flag);
  } catch (const topofr::error& e) {
    throw usage_error(e.what());
  }
}

/// Points: (n, d), or an image batch (N, C, H, W) seen as N points of dimension C*H*W.
struct points_shape {
  index_t n, d;
  bool image;
  index_t c, h, w;
};
/// Points of dimension 0 (shape (n, 0), or an image batch with C*H*W = 0) are refused by every command:
/// they have no coordinates to compare (all distances would be 0).
inline points_shape points(const std::string& flag, const npy::array& a) {
  points_shape p{};
  if (a.ndim() == 2) {
    p = {a.shape[0], a.shape[1], false, 0, 0, 0};
  } else if (a.ndim() == 4) {
    const auto chw = mul(a.shape[1], a.shape[2]) ? mul(*mul(a.shape[1], a.shape[2]), a.shape[3]) : std::nullopt;
    if (!chw)
      throw usage_error(str(flag, ": image batch of shape ", shape_of(a), " is too large: C*H*W = ", a.shape[1], "*",
                            a.shape[2], "*", a.shape[3], " overflows a 64-bit size"));
    p = {a.shape[0], *chw, true, a.shape[1], a.shape[2], a.shape[3]};
  } else {
    throw usage_error(str(flag, ": expected points of shape (n, d) or an image batch (N, C, H, W), got ", shape_of(a)));
  }
  if (p.d == 0)
    throw usage_error(str(flag, ": points of dimension 0 (shape ", shape_of(a), "): need d >= 1",
                          p.image ? " (C*H*W >= 1)" : "", ", points without coordinates have no distances"));
  return p;
}

/// The compute dtype: --dtype, else float64 when any float input is float64, else float32.
inline npy::dtype compute_dtype(const args& a, std::initializer_list<const npy::array*> inputs) {
  const std::string d = a.choice("--dtype", {"float32", "float64"}, "");
  if (d == "float32") return npy::dtype::float32;
  if (d == "float64") return npy::dtype::float64;
  bool any32 = false;
  for (const npy::array* x : inputs) {
    if (x && x->type == npy::dtype::float64) return npy::dtype::float64;
    if (x && x->type == npy::dtype::float32) any32 = true;
  }
  return any32 ? npy::dtype::float32 : npy::dtype::float64;
}

}  // namespace topofr_cli
