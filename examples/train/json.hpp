// examples/train/json.hpp — a minimal JSON writer for the training report: null, booleans, numbers
// (integers exactly, doubles as the shortest text that round-trips; NaN and infinities
// become null), UTF-8 strings (escaped per RFC 8259), arrays, objects (insertion order kept, set()
// replaces an existing key). Writing only: the driver never reads JSON.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <topofr/core/error.hpp>

namespace topofr::train {

class json {
 public:
  enum class kind { null, boolean, integer, number, string, array, object };

  json() = default;                                   // null
  json(std::nullptr_t) {}                             // null
  json(bool b) : k_(kind::boolean), b_(b) {}
  json(const char* s) : k_(kind::string), s_(s ? s : "") {}
  json(std::string s) : k_(kind::string), s_(std::move(s)) {}
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  json(T v) : k_(kind::integer), i_(static_cast<std::int64_t>(v)) {}
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  json(T v) : k_(kind::number), d_(static_cast<double>(v)) {}
  /// An array from a vector of anything json is constructible from (numbers, strings, json).
  template <class T>
  json(const std::vector<T>& v) : k_(kind::array) {
    for (const auto& x : v) items_.emplace_back(x);
  }

  static json object() { json j; j.k_ = kind::object; return j; }
  static json array(std::initializer_list<json> items = {}) {
    json j;
    j.k_ = kind::array;
    j.items_.assign(items.begin(), items.end());
    return j;
  }

  kind type() const { return k_; }

  /// Object member (replaced if present); chains on lvalues and temporaries.
  json& set(const std::string& key, json value) & {
    detail::require(k_ == kind::object, "json::set", "key", "'", key, "': not an object");
    for (auto& kv : members_)
      if (kv.first == key) {
        kv.second = std::move(value);
        return *this;
      }
    members_.emplace_back(key, std::move(value));
    return *this;
  }
  json&& set(const std::string& key, json value) && { return std::move(set(key, std::move(value))); }

  /// Array element appended; chains like set().
  json& push(json value) & {
    detail::require(k_ == kind::array, "json::push", "value", "not an array");
    items_.push_back(std::move(value));
    return *this;
  }
  json&& push(json value) && { return std::move(push(std::move(value))); }

  /// Text; indent > 0 pretty-prints with that many spaces per level, indent <= 0 gives one line.
  std::string dump(int indent = 2) const {
    std::string out;
    write(out, indent, 0);
    return out;
  }

  /// Writes dump(indent) and a newline to path atomically (temporary file + rename).
  void save(const std::string& path, int indent = 2) const {
    const std::string tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      f << dump(indent) << '\n';
      f.close();
      if (!f) detail::fail("json::save", "path", "cannot write '", tmp, "'");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) detail::fail("json::save", "path", "cannot rename '", tmp, "' to '", path, "': ", ec.message());
  }

 private:
  kind k_ = kind::null;
  bool b_ = false;
  std::int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::vector<json> items_;
  std::vector<std::pair<std::string, json>> members_;

  static void quote(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            out += b;
          } else {
            out += static_cast<char>(c);
          }
      }
    }
    out += '"';
  }

  static void newline(std::string& out, int indent, int depth) {
    if (indent <= 0) return;
    out += '\n';
    out.append(static_cast<std::size_t>(indent) * depth, ' ');
  }

  void write(std::string& out, int indent, int depth) const {
    switch (k_) {
      case kind::null: out += "null"; break;
      case kind::boolean: out += b_ ? "true" : "false"; break;
      case kind::integer: out += std::to_string(i_); break;
      case kind::number:
        if (!std::isfinite(d_)) {
          out += "null";
        } else {
          char b[32];
#if defined(__cpp_lib_to_chars)
          out.append(b, std::to_chars(b, b + sizeof b, d_).ptr);  // shortest text that round-trips
#else
          std::snprintf(b, sizeof b, "%.17g", d_);
          out += b;
#endif
        }
        break;
      case kind::string: quote(out, s_); break;
      case kind::array:
        out += '[';
        for (std::size_t i = 0; i < items_.size(); ++i) {
          if (i) out += indent > 0 ? "," : ", ";
          newline(out, indent, depth + 1);
          items_[i].write(out, indent, depth + 1);
        }
        if (!items_.empty()) newline(out, indent, depth);
        out += ']';
        break;
      case kind::object:
        out += '{';
        for (std::size_t i = 0; i < members_.size(); ++i) {
          if (i) out += indent > 0 ? "," : ", ";
          newline(out, indent, depth + 1);
          quote(out, members_[i].first);
          out += ": ";
          members_[i].second.write(out, indent, depth + 1);
        }
        if (!members_.empty()) newline(out, indent, depth);
        out += '}';
        break;
    }
  }
};

}  // namespace topofr::train
