// topofr/npy.hpp — reading and writing NumPy .npy files (format 1.0/2.0/3.0, little-endian float32,
// float64, int32, int64, C order): the interchange format of the `topofr` command-line tool.
// A reader that trusts headers is a security bug, so every field is validated and the file size must
// match the header exactly (truncated files and trailing bytes are both rejected).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "core/file.hpp"
#include "core/view.hpp"

namespace topofr {
namespace npy {

enum class dtype { float32, float64, int32, int64 };

inline const char* descr(dtype t) {
  switch (t) {
    case dtype::float32: return "<f4";
    case dtype::float64: return "<f8";
    case dtype::int32: return "<i4";
    default: return "<i8";
  }
}
inline std::size_t itemsize(dtype t) { return (t == dtype::float32 || t == dtype::int32) ? 4 : 8; }
inline bool is_float(dtype t) { return t == dtype::float32 || t == dtype::float64; }

template <class T> constexpr dtype dtype_of();
template <> constexpr dtype dtype_of<float>() { return dtype::float32; }
template <> constexpr dtype dtype_of<double>() { return dtype::float64; }
template <> constexpr dtype dtype_of<std::int32_t>() { return dtype::int32; }
template <> constexpr dtype dtype_of<std::int64_t>() { return dtype::int64; }

/// An .npy array held in memory: its dtype, shape and raw little-endian bytes.
struct array {
  dtype type = dtype::float32;
  std::vector<index_t> shape;
  std::vector<unsigned char> bytes;

  index_t size() const {
    index_t s = 1;
    for (index_t d : shape) s *= d;
    return s;
  }
  index_t ndim() const { return static_cast<index_t>(shape.size()); }
  std::string shape_string() const {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
  }
  /// The elements converted to T. Floats convert to floats and integers to integers; anything else
  /// (a float array where labels are expected, say) is an error naming `what`.
  template <class T>
  std::vector<T> as(const std::string& what) const {
    const index_t n = size();
    std::vector<T> out(static_cast<std::size_t>(n));
    const bool want_float = std::is_floating_point<T>::value;
    if (want_float != is_float(type))
      throw error(detail::concat("topofr: ", what, ": dtype ", descr(type), " where ",
                                 want_float ? "float32 or float64" : "int32 or int64", " is required"));
    for (index_t i = 0; i < n; ++i) out[i] = load<T>(i);
    return out;
  }

 private:
  template <class T>
  T load(index_t i) const {
    const unsigned char* p = bytes.data() + i * itemsize(type);
    switch (type) {
      case dtype::float32: { float v; std::memcpy(&v, p, 4); return static_cast<T>(v); }
      case dtype::float64: { double v; std::memcpy(&v, p, 8); return static_cast<T>(v); }
      case dtype::int32: { std::int32_t v; std::memcpy(&v, p, 4); return static_cast<T>(v); }
      default: { std::int64_t v; std::memcpy(&v, p, 8); return static_cast<T>(v); }
    }
  }
};

namespace detail {

inline bool little_endian_host() {
  const std::uint16_t one = 1;
  unsigned char b;
  std::memcpy(&b, &one, 1);
  return b == 1;
}

[[noreturn]] inline void bad(const std::string& path, const std::string& why) {
  throw error("topofr::npy::read: " + path + ": " + why);
}

// Parses the value that follows `'key':` in the header dict; returns the position after the key.
inline std::size_t find_key(const std::string& h, const std::string& key, const std::string& path) {
  const std::size_t k = h.find("'" + key + "'");
  if (k == std::string::npos) bad(path, "header has no '" + key + "' field: " + h);
  std::size_t p = h.find(':', k);
  if (p == std::string::npos) bad(path, "malformed header: " + h);
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  return p;
}

}  // namespace detail

/// Reads a whole .npy file. Throws topofr::error naming the file and the defect.
inline array read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) detail::bad(path, "cannot open for reading");
  f.seekg(0, std::ios::end);
  const std::streamoff file_size = f.tellg();
  f.seekg(0);
  unsigned char pre[8];
  if (file_size < 10 || !f.read(reinterpret_cast<char*>(pre), 8)) detail::bad(path, "too short to be .npy");
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) detail::bad(path, "not an .npy file (bad magic)");
  const int major = pre[6];
  std::uint32_t hlen = 0;
  std::size_t pre_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!f.read(reinterpret_cast<char*>(b), 2)) detail::bad(path, "truncated header length");
    hlen = b[0] | (b[1] << 8);
    pre_len = 10;
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!f.read(reinterpret_cast<char*>(b), 4)) detail::bad(path, "truncated header length");
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t(b[3]) << 24);
    pre_len = 12;
  } else {
    detail::bad(path, "unsupported .npy format version " + std::to_string(major));
  }
  if (static_cast<std::streamoff>(pre_len + hlen) > file_size)
    detail::bad(path, "header length " + std::to_string(hlen) + " runs past the end of the file");
  std::string h(hlen, '\0');
  if (!f.read(&h[0], hlen)) detail::bad(path, "truncated header");
  if (h.empty() || h.front() != '{' || h.find('}') == std::string::npos)
    detail::bad(path, "header is not a dict: " + h);

  array a;
  // descr
  std::size_t p = detail::find_key(h, "descr", path);
  if (p >= h.size() || (h[p] != '\'' && h[p] != '"')) detail::bad(path, "malformed descr: " + h);
  const std::size_t q = h.find(h[p], p + 1);
  if (q == std::string::npos) detail::bad(path, "malformed descr: " + h);
  const std::string d = h.substr(p + 1, q - p - 1);
  if (d == "<f4") a.type = dtype::float32;
  else if (d == "<f8") a.type = dtype::float64;
  else if (d == "<i4") a.type = dtype::int32;
  else if (d == "<i8") a.type = dtype::int64;
  else detail::bad(path, "unsupported dtype '" + d + "' (float32, float64, int32 or int64, little-endian)");
  // fortran_order
  p = detail::find_key(h, "fortran_order", path);
  if (h.compare(p, 5, "False") != 0) {
    if (h.compare(p, 4, "True") == 0) detail::bad(path, "Fortran-order arrays are not supported (use C order)");
    detail::bad(path, "malformed fortran_order: " + h);
  }
  // shape
  p = detail::find_key(h, "shape", path);
  if (p >= h.size() || h[p] != '(') detail::bad(path, "malformed shape: " + h);
  const std::size_t e = h.find(')', p);
  if (e == std::string::npos) detail::bad(path, "malformed shape: " + h);
  std::size_t i = p + 1;
  while (i < e) {
    while (i < e && (h[i] == ' ' || h[i] == ',')) ++i;
    if (i >= e) break;
    if (h[i] < '0' || h[i] > '9') detail::bad(path, "malformed shape: " + h.substr(p, e - p + 1));
    std::uint64_t v = 0;
    while (i < e && h[i] >= '0' && h[i] <= '9') {
      v = v * 10 + static_cast<std::uint64_t>(h[i] - '0');
      if (v > (std::uint64_t(1) << 40)) detail::bad(path, "shape dimension too large: " + h.substr(p, e - p + 1));
      ++i;
    }
    while (i < e && h[i] == 'L') ++i;  // Python 2 long suffix
    a.shape.push_back(static_cast<index_t>(v));
    while (i < e && h[i] == ' ') ++i;
    if (i < e && h[i] != ',') detail::bad(path, "malformed shape: " + h.substr(p, e - p + 1));
  }
  // size must match the file exactly
  std::uint64_t count = 1;
  for (index_t s : a.shape) {
    if (s != 0 && count > (std::uint64_t(1) << 50) / static_cast<std::uint64_t>(s))
      detail::bad(path, "shape " + a.shape_string() + " is too large");
    count *= static_cast<std::uint64_t>(s);
  }
  const std::uint64_t data_bytes = count * itemsize(a.type);
  const std::uint64_t have = static_cast<std::uint64_t>(file_size) - pre_len - hlen;
  if (have != data_bytes)
    detail::bad(path, "shape " + a.shape_string() + " of " + descr(a.type) + " needs " +
                          std::to_string(data_bytes) + " data bytes, the file has " + std::to_string(have) +
                          (have < data_bytes ? " (truncated)" : " (trailing bytes)"));
  a.bytes.resize(static_cast<std::size_t>(data_bytes));
  if (data_bytes && !f.read(reinterpret_cast<char*>(a.bytes.data()), static_cast<std::streamsize>(data_bytes)))
    detail::bad(path, "read error");
  if (!detail::little_endian_host()) detail::bad(path, "big-endian hosts are not supported");
  return a;
}

/// Writes an .npy (format 1.0, or 2.0 when the header needs it) through detail::write_file: beside the
/// target and renamed into place (a failed write never leaves half a file), or in place for a device or
/// FIFO such as /dev/null, which a rename would destroy.
inline void write(const std::string& path, dtype type, const std::vector<index_t>& shape, const void* data) {
  std::string h = std::string("{'descr': '") + descr(type) + "', 'fortran_order': False, 'shape': (";
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) throw error("topofr::npy::write: " + path + ": negative dimension");
    h += std::to_string(shape[i]) + (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
    count *= static_cast<std::uint64_t>(shape[i]);
  }
  h += "), }";
  const bool v2 = h.size() + 11 > 65535;
  const std::size_t pre = v2 ? 12 : 10;
  const std::size_t total = ((pre + h.size() + 1 + 63) / 64) * 64;
  h.append(total - pre - h.size() - 1, ' ');
  h += '\n';
  topofr::detail::write_file_stream(path, "npy::write", "path", [&](std::ostream& f) {
    f.write("\x93NUMPY", 6);
    const unsigned char ver[2] = {static_cast<unsigned char>(v2 ? 2 : 1), 0};
    f.write(reinterpret_cast<const char*>(ver), 2);
    const std::uint32_t hl = static_cast<std::uint32_t>(h.size());
    const unsigned char len[4] = {static_cast<unsigned char>(hl & 0xff), static_cast<unsigned char>((hl >> 8) & 0xff),
                                  static_cast<unsigned char>((hl >> 16) & 0xff), static_cast<unsigned char>(hl >> 24)};
    f.write(reinterpret_cast<const char*>(len), v2 ? 4 : 2);
    f.write(h.data(), static_cast<std::streamsize>(h.size()));
    f.write(static_cast<const char*>(data), static_cast<std::streamsize>(count * itemsize(type)));
  });
}

template <class T>
void write(const std::string& path, const T* data, const std::vector<index_t>& shape) {
  write(path, dtype_of<T>(), shape, data);
}

}  // namespace npy
}  // namespace topofr
