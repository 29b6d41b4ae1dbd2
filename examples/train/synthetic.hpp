// examples/train/synthetic.hpp — procedural synthetic face identities, the training driver's built-in data.
// An identity is a vector of shape parameters (face oval, jaw, hair, eyes, brows, nose, mouth, skin tone,
// glasses); every image of it adds nuisances (pose, lighting, expression, background, occlusion, noise).
// Everything is drawn from counter_rng streams keyed by (seed, identity, image), so an image depends only
// on (seed, identity, image index, size): deterministic, thread-count independent, and identity k is the
// same person whatever the number of identities. Rendering is analytic anti-aliasing (coverage from an
// approximate signed distance), one sample per pixel. The generator's parameters are listed in
// docs/train.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "dataset.hpp"

namespace topofr::train {

namespace detail_synth {

struct rng {
  counter_rng g;
  double u(double lo, double hi) { return g.uniform(lo, hi); }
  double normal(double sd) {  // Box-Muller (own transform: std::normal_distribution is not portable)
    const double a = 1.0 - g.uniform(), b = g.uniform();
    return sd * std::sqrt(-2.0 * std::log(a)) * std::cos(6.283185307179586 * b);
  }
  bool chance(double p) { return g.uniform() < p; }
};

/// Shape of one identity (units: half the image height; v grows downwards; face centred at (0, cy)).
struct identity {
  double cy, a, b, jaw;                       // face oval centre, half width, half height, jaw taper
  double skin;                                // skin gray level
  double hair, hairline, hair_top, hair_side, hair_curve;  // hair gray, hairline (rel. to cy), volume
  double eye_y, eye_dx, eye_w, eye_h, iris;   // eyes: height (rel.), half spacing, size, iris gray
  double brow_dy, brow_t, brow_arch, brow_tilt, brow_len, brow;  // brows: offset, thickness, shape, gray
  double nose_len, nose_w;                    // nose tip below the eyes, nostril half spread
  double mouth_dy, mouth_w, mouth_curve, lip_t, lip;  // mouth below the nose tip, half width, smile, lips
  bool glasses;
  double glasses_r;
};

inline identity make_identity(rng& r) {
  identity p;
  p.cy = r.u(0.02, 0.12);
  p.a = r.u(0.50, 0.68);
  p.b = r.u(0.68, 0.86);
  p.jaw = r.u(0.70, 1.0);
  p.skin = r.u(0.45, 0.85);
  p.hair = r.u(0.05, 0.50);
  p.hairline = r.u(-0.62, -0.30);
  p.hair_top = r.u(0.04, 0.20);
  p.hair_side = r.u(0.0, 0.12);
  p.hair_curve = r.u(0.0, 0.6);
  p.eye_y = r.u(-0.16, 0.0);
  p.eye_dx = r.u(0.19, 0.30);
  p.eye_w = r.u(0.07, 0.12);
  p.eye_h = r.u(0.035, 0.06);
  p.iris = r.u(0.05, 0.45);
  p.brow_dy = r.u(0.08, 0.15);
  p.brow_t = r.u(0.018, 0.05);
  p.brow_arch = r.u(-0.04, 0.08);
  p.brow_tilt = r.u(-0.06, 0.06);
  p.brow_len = r.u(0.9, 1.5);
  p.brow = r.u(0.05, 0.40);
  p.nose_len = r.u(0.17, 0.32);
  p.nose_w = r.u(0.04, 0.09);
  p.mouth_dy = r.u(0.10, 0.20);
  p.mouth_w = r.u(0.11, 0.22);
  p.mouth_curve = r.u(-0.04, 0.05);
  p.lip_t = r.u(0.015, 0.04);
  p.lip = r.u(0.15, 0.45);
  p.glasses = r.chance(0.2);
  p.glasses_r = r.u(0.10, 0.14);
  return p;
}

/// Nuisances of one image.
struct nuisance {
  double cos_t, sin_t, tx, ty, scale;  // pose: rotation, translation, scale
  double lx, ly, lz, ambient, gain;    // lighting: unit direction, ambient share, overall gain
  double smile, open;                  // expression: added mouth curvature, eye openness
  double bg, bg_slope, noise;          // background level and horizontal gradient, pixel noise sd
  bool occluded;
  double ox0, oy0, ox1, oy1, olevel;   // occlusion rectangle (pixel fractions) and gray level
};

inline nuisance make_nuisance(rng& r) {
  nuisance n;
  const double t = std::clamp(r.normal(0.087), -0.21, 0.21);  // 5 degrees sd, at most 12
  n.cos_t = std::cos(t);
  n.sin_t = std::sin(t);
  n.tx = r.u(-0.06, 0.06);
  n.ty = r.u(-0.06, 0.06);
  n.scale = r.u(0.94, 1.06);
  const double az = r.u(-0.7, 0.7), el = r.u(0.1, 0.6);
  n.lx = std::sin(az) * std::cos(el);
  n.ly = -std::sin(el);
  n.lz = std::cos(az) * std::cos(el);
  n.ambient = r.u(0.5, 0.75);
  n.gain = r.u(0.9, 1.1);
  n.smile = r.normal(0.02);
  n.open = std::min(1.0, r.u(0.3, 1.3));
  n.bg = r.u(0.25, 0.75);
  n.bg_slope = r.u(-0.1, 0.1);
  n.noise = r.u(0.01, 0.04);
  n.occluded = r.chance(0.25);
  const double w = r.u(0.12, 0.3), h = r.u(0.12, 0.3);
  n.ox0 = r.u(0.0, 1.0 - w);
  n.oy0 = r.u(0.0, 1.0 - h);
  n.ox1 = n.ox0 + w;
  n.oy1 = n.oy0 + h;
  n.olevel = r.u(0.0, 1.0);
  return n;
}

/// Approximate signed distance to an axis-aligned ellipse (negative inside): f / |grad f|, f = k - 1.
inline double ellipse_sd(double x, double y, double a, double b) {
  const double k = std::sqrt((x / a) * (x / a) + (y / b) * (y / b));
  const double gx = x / (a * a), gy = y / (b * b), g = std::sqrt(gx * gx + gy * gy);
  return g * k < 1e-12 ? -std::min(a, b) : (k - 1.0) * k / g;
}

/// Signed distance to a stroke of thickness t along y = y0 + c * (1 - (x / w)^2) + s * x, |x| <= w.
inline double arc_sd(double x, double y, double y0, double w, double c, double s, double t) {
  const double xc = std::clamp(x, -w, w);
  const double yc = y0 + c * (1.0 - (xc / w) * (xc / w)) + s * xc;
  const double slope = -2.0 * c * xc / (w * w) + s;
  const double dy = (y - yc) / std::sqrt(1.0 + slope * slope);
  const double dx = x - xc;
  return std::sqrt(dx * dx + dy * dy) - 0.5 * t;
}

inline double blend(double dst, double src, double cover) { return dst + (src - dst) * cover; }

/// Renders one face into h x w gray values in [0, 1].
inline void render(const identity& p, const nuisance& n, rng& r, int h, int w, float* out) {
  const double half = 0.5 * h, px = 1.0 / (half * n.scale);  // one pixel in face units
  auto cover = [px](double d) { return std::clamp(0.5 - d / px, 0.0, 1.0); };
  for (int iy = 0; iy < h; ++iy)
    for (int ix = 0; ix < w; ++ix) {
      // Image point -> face frame (inverse pose).
      const double qx = (ix + 0.5 - 0.5 * w) / half - n.tx, qy = (iy + 0.5) / half - 1.0 - n.ty;
      const double x = (n.cos_t * qx + n.sin_t * qy) / n.scale, y = (-n.sin_t * qx + n.cos_t * qy) / n.scale;
      double val = n.bg + n.bg_slope * qx;

      // Hair volume behind the head.
      const double hy = y - p.cy + 0.5 * p.hair_top;
      val = blend(val, p.hair * n.gain, cover(ellipse_sd(x, hy, p.a + p.hair_side, p.b + 0.5 * p.hair_top) + 0.25 * std::max(0.0, hy)));

      // Face oval, narrower towards the chin, Lambert-shaded as an ellipsoid.
      const double fy = y - p.cy;
      const double taper = 1.0 - (1.0 - p.jaw) * std::clamp(fy / p.b, 0.0, 1.0);
      const double fx = x / taper;
      const double face = cover(ellipse_sd(fx, fy, p.a, p.b));
      if (face <= 0) {
        out[iy * w + ix] = static_cast<float>(val);
        continue;
      }
      const double nx = std::clamp(fx / p.a, -1.0, 1.0), ny = std::clamp(fy / p.b, -1.0, 1.0);
      const double nz = std::sqrt(std::max(0.0, 1.0 - nx * nx - ny * ny));
      const double shade = n.gain * (n.ambient + (1.0 - n.ambient) * std::max(0.0, nx * n.lx + ny * n.ly + nz * n.lz));
      double f = p.skin * shade;
      // Forehead hair above a curved hairline.
      f = blend(f, p.hair * n.gain, cover(fy - (p.hairline + p.hair_curve * x * x)));
      // Eyes: sclera, iris (eye openness squeezes both), brows above.
      for (double side : {-1.0, 1.0}) {
        const double ex = x - side * p.eye_dx, ey = fy - p.eye_y;
        const double eh = p.eye_h * n.open;
        f = blend(f, 0.85 * shade, cover(ellipse_sd(ex, ey, p.eye_w, eh)));
        f = blend(f, p.iris * shade, cover(std::max(ellipse_sd(ex, ey, 0.45 * p.eye_w, 0.45 * p.eye_w), ellipse_sd(ex, ey, p.eye_w, eh))));
        f = blend(f, p.brow * shade,
                  cover(arc_sd(ex, ey, -p.brow_dy, p.brow_len * p.eye_w, -p.brow_arch, side * p.brow_tilt, p.brow_t)));
        if (p.glasses) {
          const double d = std::abs(std::sqrt(ex * ex + ey * ey) - p.glasses_r) - 0.012;
          f = blend(f, 0.1 * n.gain, cover(d));
        }
      }
      if (p.glasses) f = blend(f, 0.1 * n.gain, cover(arc_sd(x, fy - p.eye_y, 0.0, p.eye_dx - p.glasses_r, -0.02, 0.0, 0.02)));
      // Nose: a soft ridge shadow on the side away from the light, and two nostrils.
      const double tip = p.eye_y + p.nose_len;
      const double ridge = std::abs(x + 0.03 * (n.lx > 0 ? -1 : 1)) - 0.012 * (1.0 + (fy - p.eye_y) / p.nose_len);
      if (fy > p.eye_y + 0.05 && fy < tip) f = blend(f, 0.75 * f, 0.6 * cover(ridge));
      for (double side : {-1.0, 1.0})
        f = blend(f, 0.3 * shade * p.skin, cover(ellipse_sd(x - side * p.nose_w, fy - tip, 0.025, 0.015)));
      // Mouth: a curved stroke whose curvature is the identity's plus the expression's.
      f = blend(f, p.lip * shade,
                cover(arc_sd(x, fy, tip + p.mouth_dy, p.mouth_w, -(p.mouth_curve + n.smile), 0.0, p.lip_t)));
      val = blend(val, f, face);
      out[iy * w + ix] = static_cast<float>(val);
    }
  // Occlusion (a flat rectangle with its own texture), then sensor noise.
  if (n.occluded) {
    const int x0 = static_cast<int>(n.ox0 * w), x1 = static_cast<int>(n.ox1 * w);
    const int y0 = static_cast<int>(n.oy0 * h), y1 = static_cast<int>(n.oy1 * h);
    for (int iy = y0; iy < y1; ++iy)
      for (int ix = x0; ix < x1; ++ix) out[iy * w + ix] = static_cast<float>(n.olevel + 0.08 * std::sin(0.9 * ix + 1.7 * iy));
  }
  for (int k = 0; k < h * w; ++k) out[k] = static_cast<float>(out[k] + r.normal(n.noise));
}

}  // namespace detail_synth

/// identities x per_identity synthetic faces (identity-major order), height x width, 3 replicated gray
/// channels quantised to 8 bits and mapped to [-1, 1] like decoded images. Deterministic from seed.
inline image_set synthetic_faces(int identities, int per_identity, int height, int width, std::uint64_t seed) {
  using topofr::detail::require;
  const char* fn = "synthetic_faces";
  require(identities > 0, fn, "identities", "must be > 0, got ", identities);
  require(per_identity > 0, fn, "per_identity", "must be > 0, got ", per_identity);
  require(height >= 8 && height <= 4096, fn, "height", "must be in [8, 4096], got ", height);
  require(width >= 8 && width <= 4096, fn, "width", "must be in [8, 4096], got ", width);
  require(static_cast<double>(identities) * per_identity < 4294967296.0, fn, "identities", "too many images");

  image_set s;
  s.height = height;
  s.width = width;
  const std::int64_t n = static_cast<std::int64_t>(identities) * per_identity, hw = std::int64_t(height) * width;
  s.pixels.resize(static_cast<std::size_t>(n * 3 * hw));
  s.labels.resize(n);
  s.files.assign(n, std::string());
  for (int k = 0; k < identities; ++k) s.names.push_back("synthetic_" + std::to_string(k));
#pragma omp parallel for schedule(dynamic)
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t k = i / per_identity, j = i % per_identity;
    detail_synth::rng ri{counter_rng(seed, static_cast<std::uint64_t>(k), 0)};
    const detail_synth::identity p = detail_synth::make_identity(ri);
    detail_synth::rng rn{counter_rng(seed, static_cast<std::uint64_t>(k), static_cast<std::uint64_t>(j) + 1)};
    const detail_synth::nuisance nu = detail_synth::make_nuisance(rn);
    float* img = s.pixels.data() + i * 3 * hw;
    detail_synth::render(p, nu, rn, height, width, img);
    for (std::int64_t q = 0; q < hw; ++q) {
      const float g = std::round(std::clamp(img[q], 0.0f, 1.0f) * 255.0f) / 127.5f - 1.0f;
      img[q] = img[hw + q] = img[2 * hw + q] = g;
    }
    s.labels[i] = k;
  }
  return s;
}

}  // namespace topofr::train
