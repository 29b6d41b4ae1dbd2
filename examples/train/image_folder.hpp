// examples/train/image_folder.hpp — the training driver's image-folder loader (one subfolder per identity).
// PNG/JPEG are decoded by stb_image; binary PGM/PPM (P5/P6) by a strict parser of our own, because
// stb_image silently accepts truncated PNM files. Resizing is the antialiased bilinear (triangle) filter.
// Header-only; the program includes stb_impl.hpp once (or links libstb).
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include <stb/stb_image.h>
#include <topofr/core/error.hpp>

#include "dataset.hpp"

namespace topofr::train {

/// Default largest image accepted by load_image_folder, in pixels (width x height; 4096 x 4096). Checked from
/// the header before anything is decoded: a small file can declare a huge image (a 224 KB PNG of 12000 x
/// 12000 decodes to 1.1 GB).
constexpr std::int64_t kDefaultMaxImagePixels = 4096LL * 4096;

namespace detail_train {

/// Gray levels in [0, 255] of one decoded image.
struct gray_image {
  int width = 0, height = 0;
  std::vector<float> v;  // height x width
};

inline float luma(float r, float g, float b) { return 0.299f * r + 0.587f * g + 0.114f * b; }  // ITU-R BT.601

/// Strict binary PNM (P5 gray / P6 RGB, maxval 1..65535, 16-bit big-endian): header tokens separated by
/// whitespace or '#' comments, exactly one whitespace byte after maxval, all samples present and <= maxval,
/// nothing after them; at most max_pixels pixels.
inline gray_image parse_pnm(const std::vector<unsigned char>& b, const std::string& path, std::int64_t max_pixels) {
  const char* fn = "load_image_folder";
  const int chans = b[1] == '5' ? 1 : 3;
  std::size_t p = 2;
  auto token = [&](const char* what, long long lo, long long hi) {
    for (;;) {  // skip whitespace and comments
      while (p < b.size() && std::isspace(b[p])) ++p;
      if (p < b.size() && b[p] == '#') {
        while (p < b.size() && b[p] != '\n' && b[p] != '\r') ++p;
      } else {
        break;
      }
    }
    long long v = 0;
    std::size_t start = p;
    while (p < b.size() && b[p] >= '0' && b[p] <= '9' && v <= hi) v = v * 10 + (b[p++] - '0');
    if (p == start || v < lo || v > hi || (p < b.size() && !std::isspace(b[p])))
      fail(fn, path.c_str(), "corrupt PNM header: bad ", what, " (expected an integer in [", lo, ", ", hi, "])");
    return v;
  };
  const long long w = token("width", 1, 1 << 20), h = token("height", 1, 1 << 20);
  if (w * h > max_pixels)
    fail(fn, path.c_str(), "image of ", w, " x ", h, " = ", w * h, " pixels exceeds the limit of ", max_pixels,
         " pixels (--max-image-pixels)");
  const long long maxval = token("maxval", 1, 65535);
  ++p;  // the single whitespace byte that ends the header
  const long long bps = maxval < 256 ? 1 : 2, count = w * h * chans;
  if (p > b.size() || static_cast<long long>(b.size() - p) < count * bps)
    fail(fn, path.c_str(), "truncated PNM: ", w, " x ", h, " x ", chans, " samples of ", bps, " byte(s) need ",
         count * bps, " bytes of data, the file has ", p > b.size() ? 0 : b.size() - p);
  if (static_cast<long long>(b.size() - p) > count * bps)
    fail(fn, path.c_str(), "corrupt PNM: ", static_cast<long long>(b.size() - p) - count * bps,
         " trailing byte(s) after the ", count * bps, " bytes of pixel data");
  gray_image g;
  g.width = static_cast<int>(w);
  g.height = static_cast<int>(h);
  g.v.resize(static_cast<std::size_t>(w * h));
  const double scale = 255.0 / static_cast<double>(maxval);
  auto sample = [&](long long k) {
    const long long s = bps == 1 ? b[p + k] : (b[p + 2 * k] << 8 | b[p + 2 * k + 1]);
    if (s > maxval) fail(fn, path.c_str(), "corrupt PNM: sample ", k, " = ", s, " exceeds maxval ", maxval);
    return static_cast<float>(s * scale);
  };
  for (long long i = 0; i < w * h; ++i)
    g.v[i] = chans == 1 ? sample(i) : luma(sample(3 * i), sample(3 * i + 1), sample(3 * i + 2));
  return g;
}

/// The format an image file name promises: "pgm", "png", "jpeg", or "" (not an image name).
inline std::string image_kind(const std::string& name) {
  std::string ext = std::filesystem::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".pgm") return "pgm";
  if (ext == ".png") return "png";
  if (ext == ".jpg" || ext == ".jpeg") return "jpeg";
  return "";
}

/// Decodes one file to gray levels; throws topofr::error naming the file. The content must be the format
/// its extension names (magic bytes: PNG \x89PNG\r\n\x1a\n, JPEG FF D8 FF, PGM P5; a .pgm may also hold a
/// binary PPM, P6), and the image at most max_pixels pixels (checked from the header, before decoding).
inline gray_image read_gray(const std::string& path, std::int64_t max_pixels = kDefaultMaxImagePixels) {
  const char* fn = "load_image_folder";
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(fn, path.c_str(), "cannot open file");
  std::vector<unsigned char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(fn, path.c_str(), "read error");
  if (b.empty()) fail(fn, path.c_str(), "empty file");
  const std::string kind = image_kind(path);
  auto starts = [&](const char* magic, std::size_t n) {
    return b.size() >= n && std::equal(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n),
                                       reinterpret_cast<const unsigned char*>(magic));
  };
  const bool pnm = b.size() >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6');
  if (kind == "pgm" && !pnm) fail(fn, path.c_str(), "not a binary PGM (a .pgm file must start with P5)");
  if (kind == "png" && !starts("\x89PNG\r\n\x1a\n", 8)) fail(fn, path.c_str(), "not a PNG (no PNG signature)");
  if (kind == "jpeg" && !starts("\xff\xd8\xff", 3)) fail(fn, path.c_str(), "not a JPEG (no JPEG SOI marker)");
  if (pnm) return parse_pnm(b, path, max_pixels);
  if (b.size() > static_cast<std::size_t>(INT32_MAX)) fail(fn, path.c_str(), "file too large");
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(b.data(), static_cast<int>(b.size()), &w, &h, &c)) {
    const char* why = stbi_failure_reason();
    fail(fn, path.c_str(), "cannot decode image (", why ? why : "unknown reason", ")");
  }
  if (static_cast<std::int64_t>(w) * h > max_pixels)
    fail(fn, path.c_str(), "image of ", w, " x ", h, " = ", static_cast<std::int64_t>(w) * h,
         " pixels exceeds the limit of ", max_pixels, " pixels (--max-image-pixels)");
  unsigned char* px = stbi_load_from_memory(b.data(), static_cast<int>(b.size()), &w, &h, &c, 3);
  if (!px) {
    const char* why = stbi_failure_reason();
    fail(fn, path.c_str(), "cannot decode image (", why ? why : "unknown reason", ")");
  }
  gray_image g;
  g.width = w;
  g.height = h;
  g.v.resize(static_cast<std::size_t>(w) * h);
  for (std::size_t i = 0; i < g.v.size(); ++i) g.v[i] = luma(px[3 * i], px[3 * i + 1], px[3 * i + 2]);
  stbi_image_free(px);
  return g;
}

/// Taps of the antialiased bilinear (triangle) filter along one axis, as PIL's BILINEAR resize:
/// output pixel o has centre c = (o + 0.5) * in / out in input coordinates; input pixel i (centre i + 0.5)
/// gets weight max(0, 1 - |i + 0.5 - c| / s), s = max(1, in / out) (the kernel widens when shrinking, so
/// every input pixel contributes); taps outside the image are dropped and the rest renormalised.
struct taps {
  std::vector<int> first;
  std::vector<std::vector<double>> w;
};
inline taps triangle_taps(int in, int out) {
  taps t;
  const double scale = static_cast<double>(in) / out, s = std::max(1.0, scale);
  for (int o = 0; o < out; ++o) {
    const double c = (o + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(std::floor(c - s))), hi = std::min(in - 1, static_cast<int>(std::ceil(c + s)));
    std::vector<double> w;
    double sum = 0;
    for (int i = lo; i <= hi; ++i) {
      const double wi = std::max(0.0, 1.0 - std::abs(i + 0.5 - c) / s);
      w.push_back(wi);
      sum += wi;
    }
    for (auto& x : w) x /= sum;
    t.first.push_back(lo);
    t.w.push_back(std::move(w));
  }
  return t;
}

/// Separable triangle-filter resize of one gray image (row-major) to height x width.
inline std::vector<float> resize(const gray_image& g, int height, int width) {
  if (g.height == height && g.width == width) return g.v;
  const taps tx = triangle_taps(g.width, width), ty = triangle_taps(g.height, height);
  std::vector<double> rows(static_cast<std::size_t>(g.height) * width);
  for (int y = 0; y < g.height; ++y)
    for (int x = 0; x < width; ++x) {
      double acc = 0;
      const float* src = g.v.data() + static_cast<std::size_t>(y) * g.width + tx.first[x];
      for (std::size_t k = 0; k < tx.w[x].size(); ++k) acc += tx.w[x][k] * src[k];
      rows[static_cast<std::size_t>(y) * width + x] = acc;
    }
  std::vector<float> out(static_cast<std::size_t>(height) * width);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      double acc = 0;
      for (std::size_t k = 0; k < ty.w[y].size(); ++k)
        acc += ty.w[y][k] * rows[static_cast<std::size_t>(ty.first[y] + k) * width + x];
      out[static_cast<std::size_t>(y) * width + x] = static_cast<float>(acc);
    }
  return out;
}

inline bool is_image_name(const std::string& name) { return !image_kind(name).empty(); }

/// Sorted names of the entries of dir (hidden ones skipped) that are directories (or, directories false:
/// regular files, and every entry named like an image, whatever it is, so that a dangling link or a
/// directory named x.png is reported rather than skipped silently).
inline std::vector<std::string> list(const std::filesystem::path& dir, bool directories) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  if (ec) fail("load_image_folder", dir.string().c_str(), "cannot list directory: ", ec.message());
  std::vector<std::string> names;
  for (; it != end; it.increment(ec)) {
    if (ec) fail("load_image_folder", dir.string().c_str(), "cannot list directory: ", ec.message());
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code e2;
    if (directories ? it->is_directory(e2) : it->is_regular_file(e2) || is_image_name(name)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

/// Appends image g, resized to the set's size, as 3 replicated channels of gray / 127.5 - 1.
inline void append_gray(image_set& s, const std::vector<float>& g) {
  const std::size_t hw = static_cast<std::size_t>(s.height * s.width);
  const std::size_t base = s.pixels.size();
  s.pixels.resize(base + s.channels * hw);
  for (std::int64_t c = 0; c < s.channels; ++c)
    for (std::size_t k = 0; k < hw; ++k) s.pixels[base + c * hw + k] = g[k] / 127.5f - 1.0f;
}

}  // namespace detail_train

/// Loads DIR/<identity>/<image>: identities are the subfolders (sorted by name; hidden entries and
/// non-directories ignored), images their *.pgm *.png *.jpg *.jpeg files (case-insensitive; other files
/// ignored), converted to gray (BT.601 luma), resized to height x width, replicated to 3 channels.
/// A corrupt or unreadable image throws topofr::error naming it; so do content that is not the format
/// its extension names, an image above max_pixels pixels, trailing bytes after PGM data, and an entry
/// named like an image that is a dangling link, a directory or not a regular file. With skip_bad each is
/// skipped and a line naming it is appended to *warnings (when given). An identity folder with no image
/// is dropped (warning).
inline image_set load_image_folder(const std::string& dir, int height, int width, bool skip_bad,
                                   std::vector<std::string>* warnings = nullptr,
                                   std::int64_t max_pixels = kDefaultMaxImagePixels) {
  using namespace detail_train;
  const char* fn = "load_image_folder";
  require(height > 0, fn, "height", "must be > 0, got ", height);
  require(width > 0, fn, "width", "must be > 0, got ", width);
  require(max_pixels > 0, fn, "max_pixels", "must be > 0, got ", max_pixels);
  namespace fs = std::filesystem;
  std::error_code ec;
  require(fs::is_directory(dir, ec), fn, "dir", "not a directory: '", dir, "'");
  auto warn = [&](std::string line) {
    if (warnings) warnings->push_back(std::move(line));
  };

  image_set s;
  s.height = height;
  s.width = width;
  const std::vector<std::string> ids = list(dir, true);
  require(!ids.empty(), fn, "dir", "no identity subfolders in '", dir, "' (expected DIR/<identity>/<image>)");
  for (const std::string& id : ids) {
    const fs::path sub = fs::path(dir) / id;
    const auto label = s.identities();
    std::int64_t count = 0;
    for (const std::string& f : list(sub, false)) {
      if (!is_image_name(f)) continue;
      const std::string path = (sub / f).string();
      gray_image g;
      try {
        std::error_code e2;
        const fs::file_status st = fs::status(path, e2);  // follows links
        if (fs::is_symlink(fs::symlink_status(path, e2)) && !fs::exists(st))
          fail(fn, path.c_str(), "dangling symbolic link");
        if (fs::is_directory(st)) fail(fn, path.c_str(), "a directory named like an image");
        if (!fs::is_regular_file(st)) fail(fn, path.c_str(), "not a regular file");
        g = read_gray(path, max_pixels);
      } catch (const topofr::error& e) {
        if (!skip_bad) throw;
        warn(std::string("skipped ") + e.what());
        continue;
      }
      append_gray(s, resize(g, height, width));
      s.labels.push_back(label);
      s.files.push_back(path);
      ++count;
    }
    if (count > 0)
      s.names.push_back(id);
    else
      warn("identity folder '" + sub.string() + "' has no readable image; ignored");
  }
  require(s.size() > 0, fn, "dir", "no images (*.pgm, *.png, *.jpg, *.jpeg) under '", dir, "'");
  return s;
}

}  // namespace topofr::train
