// topofr/npy.hpp — reading and writing NumPy .npy files (format 1.0/2.0/3.0, little-endian float32,
// float64, int32, int64, C order): the interchange format of the `topofr` command-line tool.
// A reader that trusts headers is a security bug, so the header is parsed as strictly as NumPy's own reader
// does (docs/testing.md lists where it is stricter) and the file size must match the header exactly
// (truncated files and trailing bytes are both rejected). npy::parse reads an .npy held in memory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <type_traits>
#include <utility>
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
    for (index_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = load<T>(i);
    return out;
  }

 private:
  template <class T>
  T load(index_t i) const {
    const unsigned char* p = bytes.data() + static_cast<std::size_t>(i) * itemsize(type);
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

/// Where a .npy comes from, for messages: "topofr::npy::read: <path>: <why>".
struct source {
  const char* fn;
  const std::string& name;
  [[noreturn]] void bad(const std::string& why) const {
    throw error(std::string("topofr::npy::") + fn + ": " + name + ": " + why);
  }
};

/// The header text for a message: printable ASCII kept, anything else escaped, at most 160 characters.
inline std::string printable(const std::string& h) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < h.size() && out.size() < 160; ++i) {
    const unsigned char c = static_cast<unsigned char>(h[i]);
    if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else if (c == '\n') out += "\\n";
    else out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
  }
  return out.size() < 160 ? out : out + "...";
}

/// One value of the header's Python literal, in the subset that parse_header understands.
struct pyval {
  enum kind_t { none, boolean, integer, string, tuple } kind = none;
  bool b = false;               // boolean
  bool neg = false, big = false;  // integer: sign; magnitude above 2^63 - 1
  std::uint64_t mag = 0;        // integer magnitude (meaningful when !big)
  std::string s;                // string
  std::vector<pyval> items;     // tuple

  std::string repr() const {
    switch (kind) {
      case none: return "None";
      case boolean: return b ? "True" : "False";
      case integer: return big ? (neg ? "-(huge)" : "(huge)") : (neg ? "-" : "") + std::to_string(mag);
      case string: return "'" + printable(s) + "'";
      default: {
        std::string r = "(";
        for (std::size_t i = 0; i < items.size(); ++i) r += (i ? ", " : "") + items[i].repr();
        return r + (items.size() == 1 ? ",)" : ")");
      }
    }
  }
};

/// A parser for the header: the Python dict literal that NumPy's reader evaluates with ast.literal_eval.
/// Understood: the dict (keys are strings), strings '...' and "..." (prefixes u/r, adjacent strings
/// concatenated), integers (decimal, 0x/0o/0b, underscores, one sign; a Python 2 `L` suffix in format
/// 1.0/2.0, which NumPy filters out), True/False/None, tuples and parenthesised values, spaces, tabs,
/// newlines, form feeds and # comments. Everything NumPy refuses is refused; a few spellings that NumPy
/// evaluates but no writer produces (escapes, triple quotes, byte strings, lists, line continuations,
/// non-ASCII bytes, nesting deeper than 32) are refused too.
class header_parser {
 public:
  header_parser(const std::string& h, bool py2_longs, const source& src) : h_(h), py2_(py2_longs), src_(src) {}

  /// The dict's (key, value) pairs in order. Keys must be among `keys`; a key given twice is an error
  /// (NumPy would keep the last one).
  std::vector<std::pair<std::string, pyval>> dict(const std::vector<std::string>& keys) {
    std::vector<std::pair<std::string, pyval>> out;
    space();
    if (peek() != '{') fail("is not a dict literal");
    ++i_;
    space();
    while (peek() != '}') {
      const std::size_t at = i_;
      pyval k = value(1);
      if (k.kind != pyval::string) fail("has a key that is not a string: " + k.repr(), at);
      space();
      bool known = false;
      for (const auto& key : keys) known = known || key == k.s;
      if (!known) fail("has the unknown key '" + printable(k.s) + "' (expected exactly 'descr', 'fortran_order' and 'shape')", at);
      if (peek() != ':') fail("expects ':' after the key '" + printable(k.s) + "'");
      ++i_;
      pyval v = value(1);
      for (const auto& kv : out)
        if (kv.first == k.s) fail("has the key '" + printable(k.s) + "' more than once", at);
      out.emplace_back(std::move(k.s), std::move(v));
      space();
      if (peek() == ',') {
        ++i_;
        space();
      } else if (peek() != '}') {
        fail("expects ',' or '}' after the value of '" + printable(out.back().first) + "'");
      }
    }
    ++i_;
    space();
    if (i_ != h_.size()) fail("has text after the dict");
    return out;
  }

 private:
  const std::string& h_;
  bool py2_;
  const source& src_;
  std::size_t i_ = 0;

  [[noreturn]] void fail(const std::string& why, std::size_t at = std::string::npos) const {
    if (at == std::string::npos) at = i_;
    src_.bad("header " + why + " (at offset " + std::to_string(at) + "): " + printable(h_));
  }
  int peek() const { return i_ < h_.size() ? static_cast<unsigned char>(h_[i_]) : -1; }
  int peek(std::size_t k) const { return i_ + k < h_.size() ? static_cast<unsigned char>(h_[i_ + k]) : -1; }
  static bool ident_char(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
  }
  static int digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 99;
  }

  // Whitespace and comments between tokens; any other control or non-ASCII byte is refused where it is met.
  void space() {
    for (;;) {
      const int c = peek();
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        ++i_;
      } else if (c == '#') {
        while (i_ < h_.size() && h_[i_] != '\n' && h_[i_] != '\r') {
          const unsigned char d = static_cast<unsigned char>(h_[i_]);
          if ((d < 0x20 && d != '\t' && d != '\f') || d >= 0x7f) fail("has a control or non-ASCII byte in a comment");
          ++i_;
        }
      } else {
        return;
      }
    }
  }

  pyval value(int depth) {
    if (depth > 32) fail("nests deeper than 32 levels");
    space();
    const int c = peek();
    if (c == '\'' || c == '"') return string_value();
    if (c == '(') return paren(depth);
    if (c == '+' || c == '-' || (c >= '0' && c <= '9')) return integer();
    if (ident_char(c) && c < 0x80) {
      std::size_t e = i_;
      while (e < h_.size() && ident_char(static_cast<unsigned char>(h_[e]))) ++e;
      const std::string word = h_.substr(i_, e - i_);
      if (e < h_.size() && (h_[e] == '\'' || h_[e] == '"')) {
        if (word == "u" || word == "U" || word == "r" || word == "R") return string_value();
        fail("has a string prefix " + word + " that is not supported (only u and r)");
      }
      pyval v;
      if (word == "True" || word == "False") {
        v.kind = pyval::boolean;
        v.b = word == "True";
      } else if (word != "None") {
        fail("has an unexpected name '" + printable(word) + "'");
      }
      i_ = e;
      return v;
    }
    if (c == -1) fail("ends where a value is expected");
    if (c == '[' || c == '{') fail("has a list, set or dict value (not supported)");
    fail("has an unexpected character where a value is expected");
  }

  // One or more adjacent string literals, concatenated as Python does.
  pyval string_value() {
    pyval v;
    v.kind = pyval::string;
    for (;;) {
      if (peek() == 'u' || peek() == 'U' || peek() == 'r' || peek() == 'R') ++i_;
      const int q = peek();
      if (peek(1) == q && peek(2) == q) fail("has a triple-quoted string (not supported)");
      const std::size_t open = i_++;
      for (;;) {
        const int c = peek();
        if (c == -1 || c == '\n' || c == '\r') fail("has an unterminated string", open);
        if (c == '\\') fail("has a backslash escape in a string (not supported)");
        if (c < 0x20 || c >= 0x7f) fail("has a control or non-ASCII byte in a string");
        ++i_;
        if (c == q) break;
        v.s += static_cast<char>(c);
      }
      space();
      const int n = peek();
      const bool prefixed = (n == 'u' || n == 'U' || n == 'r' || n == 'R') && (peek(1) == '\'' || peek(1) == '"');
      if (n != '\'' && n != '"' && !prefixed) return v;
    }
  }

  // ( ) -> empty tuple; (v) -> v; (v,) and (v, w, ...) -> tuple.
  pyval paren(int depth) {
    ++i_;
    space();
    pyval t;
    t.kind = pyval::tuple;
    if (peek() == ')') {
      ++i_;
      return t;
    }
    pyval first = value(depth + 1);
    space();
    if (peek() == ')') {
      ++i_;
      return first;
    }
    t.items.push_back(std::move(first));
    for (;;) {
      if (peek() != ',') fail("expects ',' or ')' in a tuple");
      ++i_;
      space();
      if (peek() == ')') break;
      t.items.push_back(value(depth + 1));
      space();
      if (peek() == ')') break;
    }
    ++i_;
    return t;
  }

  // An integer literal with at most one sign (ast.literal_eval's rule).
  pyval integer() {
    pyval v;
    v.kind = pyval::integer;
    if (peek() == '+' || peek() == '-') {
      v.neg = peek() == '-';
      ++i_;
      space();
      if (!(peek() >= '0' && peek() <= '9')) fail("has a sign that is not followed by a number");
    }
    const std::size_t at = i_;
    unsigned base = 10;
    if (peek() == '0' && (peek(1) == 'x' || peek(1) == 'X' || peek(1) == 'o' || peek(1) == 'O' ||
                          peek(1) == 'b' || peek(1) == 'B')) {
      const int p = peek(1) | 0x20;
      base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
      i_ += 2;
    }
    bool any = false, leading_zero = false, nonzero_after_zero = false;
    for (;;) {
      int c = peek();
      if (c == '_' && (any || base != 10)) {  // one underscore between digits (or after a base prefix)
        ++i_;
        c = peek();
        if (digit(c) >= static_cast<int>(base)) fail("has a malformed number", at);
      }
      const int d = digit(c);
      if (d >= static_cast<int>(base)) break;
      if (base == 10 && !any && d == 0) leading_zero = true;
      else if (leading_zero && d != 0) nonzero_after_zero = true;
      if (v.mag > (~std::uint64_t(0) - static_cast<std::uint64_t>(d)) / base) v.big = true;
      else v.mag = v.mag * base + static_cast<std::uint64_t>(d);
      any = true;
      ++i_;
    }
    if (!any || nonzero_after_zero) fail("has a malformed number", at);
    if (py2_ && peek() == 'L' && !ident_char(peek(1))) ++i_;  // Python 2 long, filtered out by NumPy
    if (ident_char(peek()) || peek() == '.') fail("has a number that is not an integer", at);
    if (v.mag > static_cast<std::uint64_t>(INT64_MAX)) v.big = true;
    if (!v.big && v.mag == 0) v.neg = false;  // -0 is 0
    return v;
  }
};

/// What the preamble and header of an .npy say.
struct header {
  dtype type = dtype::float32;
  std::vector<index_t> shape;
  std::size_t data_offset = 0;   // bytes of preamble + header
  std::uint64_t data_bytes = 0;  // shape product x itemsize
};

/// The length of the preamble + header of an .npy of file_size bytes whose first min(file_size, 12)
/// bytes are at `pre`.
inline std::size_t header_extent(const unsigned char* pre, std::uint64_t file_size, const source& src) {
  if (file_size < 10) src.bad("too short to be .npy (" + std::to_string(file_size) + " bytes)");
  if (std::memcmp(pre, "\x93NUMPY", 6) != 0) src.bad("not an .npy file (bad magic)");
  const int major = pre[6], minor = pre[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    src.bad("unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
            " (1.0, 2.0 or 3.0)");
  std::uint64_t hlen, pre_len;
  if (major == 1) {
    hlen = pre[8] | (std::uint32_t(pre[9]) << 8);
    pre_len = 10;
  } else {
    if (file_size < 12) src.bad("truncated header length");
    hlen = pre[8] | (std::uint32_t(pre[9]) << 8) | (std::uint32_t(pre[10]) << 16) | (std::uint32_t(pre[11]) << 24);
    pre_len = 12;
  }
  if (pre_len + hlen > file_size)
    src.bad("header length " + std::to_string(hlen) + " runs past the end of the file");
  return static_cast<std::size_t>(pre_len + hlen);
}

/// Parses the preamble + header (`extent` bytes from header_extent, at `p`) of an .npy of file_size bytes
/// and checks that the data part has exactly the bytes its shape needs.
inline header parse_header(const unsigned char* p, std::size_t extent, std::uint64_t file_size, const source& src) {
  const int major = p[6];
  const std::size_t pre_len = major == 1 ? 10 : 12;
  const std::string h(reinterpret_cast<const char*>(p) + pre_len, extent - pre_len);
  header_parser parser(h, major <= 2, src);
  pyval descr_v, fortran_v, shape_v;
  bool has_descr = false, has_fortran = false, has_shape = false;
  for (auto& kv : parser.dict({"descr", "fortran_order", "shape"})) {
    if (kv.first == "descr") descr_v = std::move(kv.second), has_descr = true;
    else if (kv.first == "fortran_order") fortran_v = std::move(kv.second), has_fortran = true;
    else shape_v = std::move(kv.second), has_shape = true;
  }
  if (!has_descr || !has_fortran || !has_shape)
    src.bad(std::string("header has no '") + (!has_descr ? "descr" : !has_fortran ? "fortran_order" : "shape") +
            "' key: " + printable(h));

  header r;
  if (descr_v.kind != pyval::string) src.bad("unsupported dtype " + descr_v.repr() + " (only '<f4', '<f8', '<i4', '<i8')");
  const std::string& d = descr_v.s;
  if (d == "<f4") r.type = dtype::float32;
  else if (d == "<f8") r.type = dtype::float64;
  else if (d == "<i4") r.type = dtype::int32;
  else if (d == "<i8") r.type = dtype::int64;
  else src.bad("unsupported dtype '" + printable(d) + "' (float32, float64, int32 or int64, little-endian)");
  if (fortran_v.kind != pyval::boolean) src.bad("fortran_order must be True or False, got " + fortran_v.repr());
  if (fortran_v.b) src.bad("Fortran-order arrays are not supported (use C order)");
  if (shape_v.kind != pyval::tuple) src.bad("shape must be a tuple of non-negative integers, got " + shape_v.repr());
  // NumPy's limit: itemsize x the product of the non-zero dimensions fits in a signed 64-bit size, so
  // that no product of dimensions (nor a byte count) can overflow; a 0 dimension makes the array empty.
  std::uint64_t bytes = itemsize(r.type);
  bool empty = false;
  if (shape_v.items.size() > 32)  // NumPy's NPY_MAXDIMS
    src.bad("shape " + shape_v.repr() + " has more than 32 dimensions");
  for (const pyval& x : shape_v.items) {
    if (x.kind != pyval::integer || x.neg || x.big)
      src.bad("shape must be a tuple of non-negative integers below 2^63, got " + shape_v.repr());
    if (x.mag == 0) {
      empty = true;
    } else {
      if (bytes > static_cast<std::uint64_t>(INT64_MAX) / x.mag)
        src.bad("shape " + shape_v.repr() + " is too large (its " + descr(r.type) +
                " data would exceed 2^63 - 1 bytes)");
      bytes *= x.mag;
    }
    r.shape.push_back(static_cast<index_t>(x.mag));
  }
  r.data_offset = extent;
  r.data_bytes = empty ? 0 : bytes;
  const std::uint64_t have = file_size - extent;
  if (have != r.data_bytes)
    src.bad("shape " + shape_v.repr() + " of " + descr(r.type) + " needs " + std::to_string(r.data_bytes) +
            " data bytes, the file has " + std::to_string(have) + (have < r.data_bytes ? " (truncated)" : " (trailing bytes)"));
  if (!little_endian_host()) src.bad("big-endian hosts are not supported");
  return r;
}

}  // namespace detail

/// Parses a whole .npy held in memory (size bytes at data); `name` names it in messages. The checks of
/// read(): a strict header (exactly what NumPy's reader accepts, within the dtypes above) and a data
/// part of exactly the size the shape needs. Throws topofr::error.
inline array parse(const unsigned char* data, std::size_t size, const std::string& name) {
  const detail::source src{"parse", name};
  unsigned char pre[12] = {};
  if (size) std::memcpy(pre, data, size < 12 ? size : 12);
  const std::size_t extent = detail::header_extent(pre, size, src);
  detail::header h = detail::parse_header(data, extent, size, src);
  array a;
  a.type = h.type;
  a.shape = std::move(h.shape);
  a.bytes.assign(data + extent, data + size);
  return a;
}

/// Reads a whole .npy file. Throws topofr::error naming the file and the defect.
inline array read(const std::string& path) {
  const detail::source src{"read", path};
  std::ifstream f(path, std::ios::binary);
  if (!f) src.bad("cannot open for reading");
  f.seekg(0, std::ios::end);
  const std::streamoff end = f.tellg();
  if (end < 0) src.bad("cannot determine the file size");
  const std::uint64_t file_size = static_cast<std::uint64_t>(end);
  f.seekg(0);
  unsigned char pre[12] = {};
  const std::size_t n_pre = file_size < 12 ? static_cast<std::size_t>(file_size) : 12;
  if (!f.read(reinterpret_cast<char*>(pre), static_cast<std::streamsize>(n_pre))) src.bad("read error");
  const std::size_t extent = detail::header_extent(pre, file_size, src);
  std::vector<unsigned char> head(extent);
  f.seekg(0);
  if (!f.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(extent))) src.bad("read error");
  detail::header h = detail::parse_header(head.data(), extent, file_size, src);
  array a;
  a.type = h.type;
  a.shape = std::move(h.shape);
  a.bytes.resize(static_cast<std::size_t>(h.data_bytes));
  if (h.data_bytes && !f.read(reinterpret_cast<char*>(a.bytes.data()), static_cast<std::streamsize>(h.data_bytes)))
    src.bad("read error");
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
