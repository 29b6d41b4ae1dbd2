// examples/train/plot.hpp — PNG plots for the training driver (loss curves, persistence diagrams,
// histograms) with a tiny anti-aliased rasteriser: axes with "nice" ticks, grid, legend, title, labels.
// Text is stb_easy_font's public-domain vector font; PNG encoding is stb_image_write. Files are written
// atomically (temporary file + rename).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include <stb/stb_image_write.h>
#include <topofr/core/error.hpp>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <stb/stb_easy_font.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace topofr::train {

/// One named curve or point set; x and y have the same length. Non-finite points are skipped (a line
/// is broken there).
struct series {
  std::string name;
  std::vector<double> x, y;
};

namespace detail_plot {

using rgb = std::array<unsigned char, 3>;

inline rgb palette(std::size_t i) {  // matplotlib's tab10
  static const rgb c[10] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                            {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  return c[i % 10];
}

struct canvas {
  int w, h;
  std::vector<unsigned char> px;
  canvas(int w_, int h_) : w(w_), h(h_), px(static_cast<std::size_t>(w_) * h_ * 3, 255) {}

  void blend(int x, int y, rgb c, double a) {
    if (x < 0 || y < 0 || x >= w || y >= h || a <= 0) return;
    a = std::min(a, 1.0);
    unsigned char* p = &px[(static_cast<std::size_t>(y) * w + x) * 3];
    for (int k = 0; k < 3; ++k) p[k] = static_cast<unsigned char>(std::lround(p[k] + (c[k] - p[k]) * a));
  }
  void rect(int x0, int y0, int x1, int y1, rgb c) {  // filled, [x0, x1) x [y0, y1)
    for (int y = std::max(0, y0); y < std::min(h, y1); ++y)
      for (int x = std::max(0, x0); x < std::min(w, x1); ++x) blend(x, y, c, 1.0);
  }
  /// Text with stb_easy_font at an integer scale; vertical text reads bottom to top, (x, y) = its start.
  void text(double x, double y, const std::string& s, rgb c, int scale, bool vertical = false) {
    std::string t;
    for (char ch : s) t += (ch >= 32 && ch < 127) ? ch : '?';
    std::vector<char> buf(t.size() * 2048 + 64);  // up to 32 quads of 64 bytes per glyph
    const int quads = stb_easy_font_print(0, 0, t.data(), nullptr, buf.data(), static_cast<int>(buf.size()));
    for (int q = 0; q < quads; ++q) {
      const float* v0 = reinterpret_cast<const float*>(buf.data() + q * 64);
      const float* v2 = reinterpret_cast<const float*>(buf.data() + q * 64 + 32);
      const int qx0 = static_cast<int>(v0[0]) * scale, qy0 = static_cast<int>(v0[1]) * scale;
      const int qx1 = static_cast<int>(v2[0]) * scale, qy1 = static_cast<int>(v2[1]) * scale;
      const int ix = static_cast<int>(std::lround(x)), iy = static_cast<int>(std::lround(y));
      if (vertical)
        rect(ix + qy0, iy - qx1, ix + qy1, iy - qx0, c);
      else
        rect(ix + qx0, iy + qy0, ix + qx1, iy + qy1, c);
    }
  }
  static int text_width(const std::string& s, int scale) {
    std::string t;
    for (char ch : s) t += (ch >= 32 && ch < 127) ? ch : '?';
    return stb_easy_font_width(t.data()) * scale;
  }
};

/// Per-series coverage, max-combined, so that overlapping segments of one polyline do not darken joints.
struct coverage {
  int x0, y0, x1, y1;  // clip rectangle
  std::vector<float> a;
  coverage(int x0_, int y0_, int x1_, int y1_)
      : x0(x0_), y0(y0_), x1(x1_), y1(y1_), a(static_cast<std::size_t>(x1_ - x0_) * (y1_ - y0_), 0.f) {}
  void put(int x, int y, double v) {
    if (x < x0 || y < y0 || x >= x1 || y >= y1 || v <= 0) return;
    float& p = a[static_cast<std::size_t>(y - y0) * (x1 - x0) + (x - x0)];
    p = std::max(p, static_cast<float>(std::min(v, 1.0)));
  }
  /// Segment of half width r: coverage = clamp(r + 0.5 - distance to the segment).
  void segment(double ax, double ay, double bx, double by, double r) {
    const double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    const int lx = std::max(x0, static_cast<int>(std::floor(std::min(ax, bx) - r - 1)));
    const int hx = std::min(x1 - 1, static_cast<int>(std::ceil(std::max(ax, bx) + r + 1)));
    const int ly = std::max(y0, static_cast<int>(std::floor(std::min(ay, by) - r - 1)));
    const int hy = std::min(y1 - 1, static_cast<int>(std::ceil(std::max(ay, by) + r + 1)));
    for (int y = ly; y <= hy; ++y)
      for (int x = lx; x <= hx; ++x) {
        const double px = x + 0.5 - ax, py = y + 0.5 - ay;
        const double t = len2 > 0 ? std::clamp((px * dx + py * dy) / len2, 0.0, 1.0) : 0.0;
        const double ex = px - t * dx, ey = py - t * dy;
        put(x, y, r + 0.5 - std::sqrt(ex * ex + ey * ey));
      }
  }
  void disc(double cx, double cy, double r) { segment(cx, cy, cx, cy, r); }
  void paint(canvas& c, rgb col, double alpha = 1.0) const {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) c.blend(x, y, col, alpha * a[static_cast<std::size_t>(y - y0) * (x1 - x0) + (x - x0)]);
  }
};

/// "Nice" tick step (1, 2 or 5 times a power of ten) giving about `want` intervals over span.
inline double nice_step(double span, int want) {
  const double raw = span / want, p = std::pow(10.0, std::floor(std::log10(raw))), m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

inline std::string tick_label(double v, double step) {
  if (std::abs(v) < step * 1e-9) v = 0;  // no "-0" or "1e-17"
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

struct range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  /// Padded by `pad` of the span; empty -> [0, 1]; a single value v -> v +- max(0.5, |v| / 10).
  void finish(double pad) {
    if (!(lo <= hi)) {
      lo = 0;
      hi = 1;
      return;
    }
    if (hi == lo) {
      const double d = std::max(0.5, std::abs(lo) / 10);
      lo -= d;
      hi += d;
      return;
    }
    const double s = hi - lo;
    lo -= pad * s;
    hi += pad * s;
  }
};

/// The frame of one plot: canvas, data -> pixel mapping, axes, grid, ticks, labels, title, legend.
struct figure {
  static constexpr int W = 800, H = 560, L = 96, R = 24, T = 52, B = 76;
  canvas c{W, H};
  range xr, yr;

  double px(double x) const { return L + (x - xr.lo) / (xr.hi - xr.lo) * (W - L - R); }
  double py(double y) const { return H - B - (y - yr.lo) / (yr.hi - yr.lo) * (H - T - B); }
  coverage plot_area() const { return coverage(L, T, W - R, H - B); }

  void frame(const std::string& title, const std::string& xlabel, const std::string& ylabel) {
    const rgb grid{225, 225, 225}, ink{40, 40, 40};
    const double sx = nice_step(xr.hi - xr.lo, 6), sy = nice_step(yr.hi - yr.lo, 5);
    for (double v = std::ceil(xr.lo / sx) * sx; v <= xr.hi + 1e-9 * sx; v += sx) {
      const int x = static_cast<int>(std::lround(px(v)));
      c.rect(x, T, x + 1, H - B, grid);
      c.rect(x, H - B, x + 1, H - B + 6, ink);
      const std::string s = tick_label(v, sx);
      c.text(x - canvas::text_width(s, 2) / 2.0, H - B + 10, s, ink, 2);
    }
    for (double v = std::ceil(yr.lo / sy) * sy; v <= yr.hi + 1e-9 * sy; v += sy) {
      const int y = static_cast<int>(std::lround(py(v)));
      c.rect(L, y, W - R, y + 1, grid);
      c.rect(L - 6, y, L, y + 1, ink);
      const std::string s = tick_label(v, sy);
      c.text(L - 10 - canvas::text_width(s, 2), y - 7, s, ink, 2);
    }
    c.rect(L, T, L + 1, H - B + 1, ink);           // y axis
    c.rect(L, H - B, W - R + 1, H - B + 1, ink);   // x axis
    c.rect(W - R, T, W - R + 1, H - B + 1, ink);   // box
    c.rect(L, T, W - R + 1, T + 1, ink);
    c.text((W - canvas::text_width(title, 3)) / 2.0, 12, title, ink, 3);
    c.text(L + (W - L - R - canvas::text_width(xlabel, 2)) / 2.0, H - 32, xlabel, ink, 2);
    c.text(10, T + (H - T - B + canvas::text_width(ylabel, 2)) / 2.0, ylabel, ink, 2, true);
  }

  void legend(const std::vector<std::string>& names) {
    bool any = false;
    int wmax = 0;
    for (const auto& n : names) {
      any = any || !n.empty();
      wmax = std::max(wmax, canvas::text_width(n, 2));
    }
    if (!any) return;
    const int row = 22, x1 = W - R - 10, x0 = x1 - wmax - 46, y0 = T + 10;
    const int y1 = y0 + row * static_cast<int>(names.size()) + 8;
    c.rect(x0, y0, x1, y1, {150, 150, 150});
    c.rect(x0 + 1, y0 + 1, x1 - 1, y1 - 1, {255, 255, 255});
    for (std::size_t i = 0; i < names.size(); ++i) {
      const int y = y0 + 8 + row * static_cast<int>(i);
      c.rect(x0 + 8, y + 4, x0 + 32, y + 10, palette(i));
      c.text(x0 + 38, y, names[i], {40, 40, 40}, 2);
    }
  }

  void save(const std::string& png, const char* fn) const {
    namespace fs = std::filesystem;
    const std::string tmp = png + ".tmp";
    if (!stbi_write_png(tmp.c_str(), W, H, 3, c.px.data(), W * 3))
      detail::fail(fn, "png", "cannot write '", tmp, "'");
    std::error_code ec;
    fs::rename(tmp, png, ec);
    if (ec) {
      fs::remove(tmp, ec);
      detail::fail(fn, "png", "cannot rename '", tmp, "' to '", png, "'");
    }
  }
};

inline void check_series(const std::vector<series>& s, const char* fn, const char* arg) {
  for (std::size_t i = 0; i < s.size(); ++i)
    detail::require(s[i].x.size() == s[i].y.size(), fn, arg, "series ", i, " ('", s[i].name, "') has ", s[i].x.size(),
                    " x values and ", s[i].y.size(), " y values");
}

inline bool finite(double a, double b) { return std::isfinite(a) && std::isfinite(b); }

}  // namespace detail_plot

/// Line plot: one polyline per series (distinct colours), legend from the names.
inline void plot_lines(const std::string& png, const std::string& title, const std::string& xlabel,
                       const std::string& ylabel, const std::vector<series>& lines) {
  using namespace detail_plot;
  const char* fn = "plot_lines";
  detail::require(!png.empty(), fn, "png", "empty file name");
  check_series(lines, fn, "lines");
  figure f;
  for (const auto& s : lines)
    for (std::size_t k = 0; k < s.x.size(); ++k)
      if (finite(s.x[k], s.y[k])) {
        f.xr.add(s.x[k]);
        f.yr.add(s.y[k]);
      }
  f.xr.finish(0.02);
  f.yr.finish(0.05);
  f.frame(title, xlabel, ylabel);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const series& s = lines[i];
    coverage cv = f.plot_area();
    for (std::size_t k = 0; k < s.x.size(); ++k) {
      if (!finite(s.x[k], s.y[k])) continue;
      if (k + 1 < s.x.size() && finite(s.x[k + 1], s.y[k + 1]))
        cv.segment(f.px(s.x[k]), f.py(s.y[k]), f.px(s.x[k + 1]), f.py(s.y[k + 1]), 1.0);
      else if (k == 0 || !finite(s.x[k - 1], s.y[k - 1]))
        cv.disc(f.px(s.x[k]), f.py(s.y[k]), 1.5);  // an isolated point stays visible
    }
    cv.paint(f.c, palette(i));
    names.push_back(s.name);
  }
  f.legend(names);
  f.save(png, fn);
}

/// Scatter plot (e.g. persistence diagrams): one colour per series; with diagonal, both axes share one
/// range and the line y = x is drawn.
inline void plot_scatter(const std::string& png, const std::string& title, const std::string& xlabel,
                         const std::string& ylabel, const std::vector<series>& points, bool diagonal = false) {
  using namespace detail_plot;
  const char* fn = "plot_scatter";
  detail::require(!png.empty(), fn, "png", "empty file name");
  check_series(points, fn, "points");
  figure f;
  for (const auto& s : points)
    for (std::size_t k = 0; k < s.x.size(); ++k)
      if (finite(s.x[k], s.y[k])) {
        f.xr.add(s.x[k]);
        f.yr.add(s.y[k]);
        if (diagonal) {
          f.xr.add(s.y[k]);
          f.yr.add(s.x[k]);
        }
      }
  f.xr.finish(0.05);
  f.yr.finish(0.05);
  f.frame(title, xlabel, ylabel);
  if (diagonal) {
    coverage cv = f.plot_area();
    cv.segment(f.px(f.xr.lo), f.py(f.xr.lo), f.px(f.xr.hi), f.py(f.xr.hi), 0.75);
    cv.paint(f.c, {120, 120, 120});
  }
  std::vector<std::string> names;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const series& s = points[i];
    coverage cv = f.plot_area();
    for (std::size_t k = 0; k < s.x.size(); ++k)
      if (finite(s.x[k], s.y[k])) cv.disc(f.px(s.x[k]), f.py(s.y[k]), 3.0);
    cv.paint(f.c, palette(i), 0.8);
    names.push_back(s.name);
  }
  f.legend(names);
  f.save(png, fn);
}

/// Histogram of the finite values in `bins` equal bins over [min, max] (the last bin closed).
inline void plot_histogram(const std::string& png, const std::string& title, const std::string& xlabel,
                           const std::vector<double>& values, int bins) {
  using namespace detail_plot;
  const char* fn = "plot_histogram";
  detail::require(!png.empty(), fn, "png", "empty file name");
  detail::require(bins >= 1 && bins <= 10000, fn, "bins", "must be in [1, 10000], got ", bins);
  range v;
  for (double x : values) v.add(x);
  if (!(v.lo <= v.hi)) {
    v.lo = 0;
    v.hi = 1;
  } else if (v.lo == v.hi) {
    v.lo -= 0.5;
    v.hi += 0.5;
  }
  std::vector<double> count(bins, 0.0);
  for (double x : values)
    if (std::isfinite(x)) {
      const auto b = static_cast<int>((x - v.lo) / (v.hi - v.lo) * bins);
      count[std::clamp(b, 0, bins - 1)] += 1;
    }
  figure f;
  f.xr = v;
  f.xr.finish(0.02);
  f.yr.add(0);
  f.yr.add(*std::max_element(count.begin(), count.end()) * 1.08);
  if (f.yr.hi <= 0) f.yr.hi = 1;
  f.frame(title, xlabel, "count");
  for (int b = 0; b < bins; ++b) {
    if (count[b] <= 0) continue;
    const double a = v.lo + (v.hi - v.lo) * b / bins, z = v.lo + (v.hi - v.lo) * (b + 1) / bins;
    const int x0 = static_cast<int>(std::lround(f.px(a))), x1 = static_cast<int>(std::lround(f.px(z)));
    const int y0 = static_cast<int>(std::lround(f.py(count[b]))), y1 = static_cast<int>(std::lround(f.py(0)));
    f.c.rect(x0, y0, std::max(x1, x0 + 1), y1, {31, 119, 180});
    if (x1 - x0 > 2) f.c.rect(x1 - 1, y0, x1, y1, {255, 255, 255});  // bar separator
  }
  f.save(png, fn);
}

}  // namespace topofr::train
