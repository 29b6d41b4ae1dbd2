// topofr/rsp.hpp — random structure perturbation (RSP, TopoFR §3.2): each sample of a normalised image
// batch is, with probability ξ, replaced by one of four perturbations picked uniformly — Gaussian blur,
// grayscale, colour jitter, random erasing — with torchvision/timm semantics (docs/fidelity.md).
// Every random choice comes from a counter-based stream keyed by (seed, step, sample) (core/rng.hpp), so
// the plan of a sample does not depend on threads, batch order or device: rsp_draw is the single
// definition of the choices, shared with the CUDA twin. Contract and derivations: docs/math.md.
#pragma once

#include <math.h>  // ::exp, ::log, ::sqrt, ::rint: callable from host and device code

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/rng.hpp"
#include "core/view.hpp"

namespace topofr {

enum class rsp_kind : std::int32_t { none = -1, blur = 0, grayscale = 1, color_jitter = 2, erasing = 3 };

struct rsp_options {
  double probability = 0.2;  ///< ξ: chance that a sample is perturbed, in [0, 1]
  std::uint64_t seed = 0;    ///< Philox key
  std::uint64_t step = 0;    ///< training step (iteration): a fresh, independent draw per step
};

/// Every random choice for one sample; a pure function of (seed, step, sample, C, H, W) via rsp_draw.
struct rsp_plan {
  rsp_kind kind = rsp_kind::none;
  double sigma = 0;  // blur: one σ for both axes
  // colour jitter: factors, and the order in which they are applied (0 = brightness, 1 = contrast,
  // 2 = saturation, 3 = hue)
  double brightness = 1, contrast = 1, saturation = 1, hue = 0;
  int order[4] = {0, 1, 2, 3};
  int top = 0, left = 0, height = 0, width = 0;  // erasing: the rectangle (height = 0: no erase)
};

/// The parameter ranges of the released training code (torchvision GaussianBlur / ColorJitter, timm
/// RandomErasing defaults).
namespace rsp_param {
inline constexpr int blur_kernel_w = 5, blur_kernel_h = 9;  // torchvision kernel_size=(5, 9) = (kx, ky)
inline constexpr double sigma_min = 0.1, sigma_max = 5.0;
inline constexpr double brightness_min = 0.1, brightness_max = 0.5;
inline constexpr double contrast_min = 0.3, contrast_max = 0.6;
inline constexpr double saturation_min = 0.2, saturation_max = 0.5;
inline constexpr double hue_min = -0.1, hue_max = 0.3;
inline constexpr double erase_area_min = 0.02, erase_area_max = 1.0 / 3.0;
inline constexpr double erase_aspect_min = 0.3;  // max = 1 / min; log-uniform
inline constexpr int erase_attempts = 10;
// torchvision's tensor rgb_to_grayscale weights (used by Grayscale, adjust_contrast, adjust_saturation).
// Note 0.2989, not PIL's 0.299: the released code perturbs tensors, so this is what it computes.
inline constexpr double gray_r = 0.2989, gray_g = 0.587, gray_b = 0.114;
}  // namespace rsp_param

/// Draws the plan of sample `sample` (its index in the batch) at (opt.seed, opt.step) for a C x H x W
/// image. Stream: counter_rng(seed, sample, step); order of draws: u0 (perturb iff u0 < probability),
/// kind = floor(4 u1), then the kind's parameters (docs/math.md). Pure; never throws.
TOPOFR_HD inline rsp_plan rsp_draw(const rsp_options& opt, index_t sample, index_t c, index_t h,
                                   index_t w) {
  (void)c;  // the choices do not depend on C (grayscale/saturation/hue are identities for C = 1)
  rsp_plan p;
  counter_rng g(opt.seed, static_cast<std::uint64_t>(sample), opt.step);
  if (!(g.uniform() < opt.probability)) return p;
  switch (g.below(4)) {
    case 0:
      p.kind = rsp_kind::blur;
      p.sigma = g.uniform(rsp_param::sigma_min, rsp_param::sigma_max);
      break;
    case 1:
      p.kind = rsp_kind::grayscale;
      break;
    case 2:
      p.kind = rsp_kind::color_jitter;
      for (int i = 3; i > 0; --i) {  // Fisher–Yates: a uniform permutation, as torch.randperm(4)
        const int j = static_cast<int>(g.below(i + 1));
        const int t = p.order[i];
        p.order[i] = p.order[j];
        p.order[j] = t;
      }
      p.brightness = g.uniform(rsp_param::brightness_min, rsp_param::brightness_max);
      p.contrast = g.uniform(rsp_param::contrast_min, rsp_param::contrast_max);
      p.saturation = g.uniform(rsp_param::saturation_min, rsp_param::saturation_max);
      p.hue = g.uniform(rsp_param::hue_min, rsp_param::hue_max);
      break;
    default: {
      p.kind = rsp_kind::erasing;  // timm RandomErasing(probability=1, mode='const'), count = 1
      const double area = static_cast<double>(h) * static_cast<double>(w);
      const double log_a = ::log(rsp_param::erase_aspect_min);
      for (int attempt = 0; attempt < rsp_param::erase_attempts; ++attempt) {
        const double target = g.uniform(rsp_param::erase_area_min, rsp_param::erase_area_max) * area;
        const double aspect = ::exp(g.uniform(log_a, -log_a));
        // Python's round(): half to even = rint in the default rounding mode.
        const auto eh = static_cast<index_t>(::rint(::sqrt(target * aspect)));
        const auto ew = static_cast<index_t>(::rint(::sqrt(target / aspect)));
        if (ew < w && eh < h) {
          p.top = static_cast<int>(g.below(h - eh + 1));  // randint(0, H - h), inclusive
          p.left = static_cast<int>(g.below(w - ew + 1));
          p.height = static_cast<int>(eh);
          p.width = static_cast<int>(ew);
          break;
        }
      }
      break;
    }
  }
  return p;
}

namespace detail {

// ---- the pixel arithmetic, host-and-device: rsp_apply_one (below) and the CUDA kernel
// (topofr/cuda/rsp.cuh) differ only in how they loop over the image; every formula is here.

/// std::min / std::max as host-and-device functions (the same comparisons, so the same results).
TOPOFR_HD inline double rsp_min(double a, double b) { return b < a ? b : a; }
TOPOFR_HD inline double rsp_max(double a, double b) { return a < b ? b : a; }

/// torch's 'reflect' padding index (edge not repeated), extended periodically for n <= pad.
TOPOFR_HD inline index_t rsp_reflect(index_t i, index_t n) {
  if (n == 1) return 0;
  const index_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// min(max(.)) rather than nested ?: so that both comparisons are unconditional and loops using it can be
// if-converted and vectorised without -fno-trapping-math.
TOPOFR_HD inline double rsp_clamp01(double v) { return rsp_min(rsp_max(v, 0.0), 1.0); }

/// The normalised 1-d Gaussian kernel of torchvision's gaussian_blur: k(t) ~ exp(-(t / sigma)^2 / 2),
/// t = -(len - 1)/2 .. (len - 1)/2.
TOPOFR_HD inline void rsp_blur_kernel(double* k, int len, double sigma) {
  double s = 0;
  for (int i = 0; i < len; ++i) {
    const double t = (i - (len - 1) * 0.5) / sigma;
    s += k[i] = ::exp(-0.5 * t * t);
  }
  for (int i = 0; i < len; ++i) k[i] /= s;
}

/// torchvision's rgb_to_grayscale weights.
TOPOFR_HD inline double rsp_gray(double r, double g, double b) {
  return rsp_param::gray_r * r + rsp_param::gray_g * g + rsp_param::gray_b * b;
}

/// torchvision adjust_hue on one pixel (its _rgb2hsv / _hsv2rgb, including the max == min case).
/// Selects rather than a switch: GCC turns them into cmov/blends where it can.
TOPOFR_HD inline void rsp_hue_pixel(double& r, double& g, double& b, double hue) {
  const double R = r, G = g, B = b;
  const double maxc = rsp_max(R, rsp_max(G, B)), minc = rsp_min(R, rsp_min(G, B));
  const bool eqc = maxc == minc;  // torchvision then divides by 1: s = 0, h = 0
  const double cr = maxc - minc;
  const double s = cr / (eqc ? 1.0 : maxc);
  const double inv = 1.0 / (eqc ? 1.0 : cr);
  const double rc = (maxc - R) * inv, gc = (maxc - G) * inv, bc = (maxc - B) * inv;
  double hh = maxc == R ? bc - gc : (maxc == G ? 2.0 + rc - bc : 4.0 + gc - rc);
  hh = hh / 6.0 + 1.0;  // in [5/6, 11/6]
  hh -= ::floor(hh);    // = torch.fmod(hh, 1) for hh >= 0 (exact)
  hh += hue;
  hh -= ::floor(hh);  // torch's % (remainder): in [0, 1)
  const double i6 = ::floor(hh * 6.0), f = hh * 6.0 - i6;
  const double sec = i6 >= 6.0 ? 0.0 : i6;  // torch: i % 6 (i6 <= 6)
  const double v = maxc;
  const double p = rsp_clamp01(v * (1.0 - s)), q = rsp_clamp01(v * (1.0 - s * f)),
               t = rsp_clamp01(v * (1.0 - s * (1.0 - f)));
  // sector 0..5 -> (r, g, b) = (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q)
  r = (sec == 0.0 || sec == 5.0) ? v : (sec == 1.0 ? q : (sec == 4.0 ? t : p));
  g = (sec == 1.0 || sec == 2.0) ? v : (sec == 0.0 ? t : (sec == 3.0 ? q : p));
  b = (sec == 3.0 || sec == 4.0) ? v : (sec == 2.0 ? t : (sec == 5.0 ? q : p));
}

/// Colour jitter's brightness f: clamp(f x, 0, 1).
TOPOFR_HD inline double rsp_brightness(double f, double x) { return rsp_clamp01(f * x); }
/// Contrast (m: the image mean of the gray values) and saturation (m: the pixel's gray value):
/// clamp(f x + (1 - f) m, 0, 1), with add = rsp_blend_add(f, m) computed once per image or pixel.
TOPOFR_HD inline double rsp_blend_add(double f, double m) { return (1.0 - f) * m; }
TOPOFR_HD inline double rsp_blend(double f, double x, double add) { return rsp_clamp01(f * x + add); }

/// Colour-jitter operations order[0 .. stop) on one pixel x[0 .. c) in [0, 1], the contrast mean given
/// (the CUDA kernel's per-pixel form of rsp_jitter).
TOPOFR_HD inline void rsp_jitter_pixel(const rsp_plan& p, double* x, int c, int stop, double mean) {
  for (int k = 0; k < stop; ++k) {
    switch (p.order[k]) {
      case 0:
        for (int ch = 0; ch < c; ++ch) x[ch] = rsp_brightness(p.brightness, x[ch]);
        break;
      case 1: {
        const double add = rsp_blend_add(p.contrast, mean);
        for (int ch = 0; ch < c; ++ch) x[ch] = rsp_blend(p.contrast, x[ch], add);
        break;
      }
      case 2:
        if (c == 3) {
          const double add = rsp_blend_add(p.saturation, rsp_gray(x[0], x[1], x[2]));
          for (int ch = 0; ch < 3; ++ch) x[ch] = rsp_blend(p.saturation, x[ch], add);
        }
        break;
      default:
        if (c == 3) rsp_hue_pixel(x[0], x[1], x[2], p.hue);
        break;
    }
  }
}

/// torchvision gaussian_blur(kernel [5, 9], sigma [s, s]) on a C x H x W image x in [0,1]; the 2-d kernel
/// is the outer product of two normalised 1-d kernels, so two 1-d passes (tmp: C*H*W).
inline void rsp_blur(double* x, double* tmp, index_t c, index_t h, index_t w, double sigma) {
  double kx[rsp_param::blur_kernel_w], ky[rsp_param::blur_kernel_h];
  rsp_blur_kernel(kx, rsp_param::blur_kernel_w, sigma);
  rsp_blur_kernel(ky, rsp_param::blur_kernel_h, sigma);
  constexpr int rx = rsp_param::blur_kernel_w / 2, ry = rsp_param::blur_kernel_h / 2;
  for (index_t ch = 0; ch < c; ++ch) {
    double* img = x + ch * h * w;
    double* t = tmp + ch * h * w;
    for (index_t i = 0; i < h; ++i) {
      const double* row = img + i * w;
      for (index_t j = 0; j < w; ++j) {
        double s = 0;
        if (j >= rx && j + rx < w) {
          for (int d = 0; d < rsp_param::blur_kernel_w; ++d) s += kx[d] * row[j + d - rx];
        } else {
          for (int d = 0; d < rsp_param::blur_kernel_w; ++d) s += kx[d] * row[rsp_reflect(j + d - rx, w)];
        }
        t[i * w + j] = s;
      }
    }
    for (index_t i = 0; i < h; ++i) {
      double* out = img + i * w;
      for (index_t j = 0; j < w; ++j) out[j] = 0;
      for (int d = 0; d < rsp_param::blur_kernel_h; ++d) {
        const double* row = t + rsp_reflect(i + d - ry, h) * w;
        const double k = ky[d];
        for (index_t j = 0; j < w; ++j) out[j] += k * row[j];
      }
    }
  }
}

inline double rsp_gray(const double* x, index_t hw, index_t p) { return rsp_gray(x[p], x[hw + p], x[2 * hw + p]); }

/// rsp_hue_pixel on the planes r, g, b of n pixels.
inline void rsp_hue(double* r, double* g, double* b, index_t n, double hue) {
  for (index_t i = 0; i < n; ++i) rsp_hue_pixel(r[i], g[i], b[i], hue);
}

/// torchvision ColorJitter's four adjustments, in plan.order, on x in [0,1] (C = 1: saturation and hue
/// are identities, contrast blends with the plain mean — as torchvision does for 1-channel tensors).
inline void rsp_jitter(const rsp_plan& p, double* x, index_t c, index_t h, index_t w) {
  const index_t hw = h * w, n = c * hw;
  for (int o : p.order) {
    switch (o) {
      case 0:
        for (index_t i = 0; i < n; ++i) x[i] = rsp_brightness(p.brightness, x[i]);
        break;
      case 1: {
        double mean = 0;
        if (c == 3) for (index_t i = 0; i < hw; ++i) mean += rsp_gray(x, hw, i);
        else for (index_t i = 0; i < hw; ++i) mean += x[i];
        mean /= static_cast<double>(hw);
        const double add = rsp_blend_add(p.contrast, mean);
        for (index_t i = 0; i < n; ++i) x[i] = rsp_blend(p.contrast, x[i], add);
        break;
      }
      case 2:
        if (c != 3) break;
        for (index_t i = 0; i < hw; ++i) {
          const double add = rsp_blend_add(p.saturation, rsp_gray(x, hw, i));
          for (index_t ch = 0; ch < 3; ++ch) x[ch * hw + i] = rsp_blend(p.saturation, x[ch * hw + i], add);
        }
        break;
      default:
        if (c != 3) break;
        rsp_hue(x, x + hw, x + 2 * hw, hw, p.hue);
        break;
    }
  }
}

/// Applies a (validated) plan to one C x H x W sample in [-1, 1]; buf is the caller's scratch.
template <class T>
void rsp_apply_one(const rsp_plan& p, T* img, index_t c, index_t h, index_t w, std::vector<double>& buf) {
  const index_t hw = h * w, n = c * hw;
  switch (p.kind) {
    case rsp_kind::none: return;
    case rsp_kind::erasing:  // written in the normalised image (timm erases after Normalize)
      for (index_t ch = 0; ch < c; ++ch)
        for (index_t i = p.top; i < p.top + p.height; ++i)
          std::fill_n(img + ch * hw + i * w + p.left, p.width, T(0));
      return;
    case rsp_kind::grayscale:
      if (c != 3) return;  // torchvision: a 1-channel image is already gray
      break;
    default: break;
  }
  buf.resize(static_cast<std::size_t>(p.kind == rsp_kind::blur ? 2 * n : n));
  double* x = buf.data();
  for (index_t i = 0; i < n; ++i) x[i] = static_cast<double>(img[i]) * 0.5 + 0.5;  // to [0, 1]
  if (p.kind == rsp_kind::blur) {
    rsp_blur(x, x + n, c, h, w, p.sigma);
  } else if (p.kind == rsp_kind::grayscale) {
    for (index_t i = 0; i < hw; ++i) x[i] = x[hw + i] = x[2 * hw + i] = rsp_gray(x, hw, i);
  } else {
    rsp_jitter(p, x, c, h, w);
  }
  for (index_t i = 0; i < n; ++i) img[i] = static_cast<T>((x[i] - 0.5) / 0.5);  // Normalize(0.5, 0.5)
}

inline void rsp_check_shape(const char* fn, const char* arg, index_t c, index_t h, index_t w) {
  require(c == 1 || c == 3, fn, arg, "expected C = 1 or 3 channels, got ", c);
  require(h >= 1 && w >= 1, fn, arg, "expected H, W >= 1, got ", h, " x ", w);
}

/// rsp_perturb's host-side checks, shared by the CPU and CUDA overloads (the values are checked where
/// they are read: on the host by the CPU, on the device by the CUDA twin).
template <class T, class S>
void check_rsp_perturb_args(const image_batch_view<T, S>& images, const rsp_options& opt,
                            const vector_view<std::int32_t, S>& kinds, const char* fn) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "rsp_perturb: T must be float or double");
  require(opt.probability >= 0.0 && opt.probability <= 1.0, fn, "probability", "must be in [0, 1], got ",
          opt.probability);
  const index_t n = images.n();
  require(n >= 0, fn, "images", "negative batch size ", n);
  require(n <= (index_t(1) << 32), fn, "images", "batch size must be <= 2^32, got ", n);
  rsp_check_shape(fn, "images", images.c(), images.h(), images.w());
  require(images.data() != nullptr || n == 0, fn, "images", "null data pointer for ", n, " samples");
  if (!kinds.empty()) check_size(kinds, n, fn, "kinds");
}

/// First non-finite element of data[0, n) (deterministic: the smallest index), or n. Blocks are scanned
/// with a branch-free, vectorisable test; only a block that fails is searched element by element.
template <class T>
index_t rsp_first_nonfinite(const T* data, index_t n) {
  constexpr index_t block = 4096;
  const index_t blocks = (n + block - 1) / block;
  index_t bad = n;
#if defined(_OPENMP)
#pragma omp parallel for reduction(min : bad) schedule(static)
#endif
  for (index_t b = 0; b < blocks; ++b) {
    const index_t lo = b * block, hi = std::min(n, lo + block);
    int nonfinite = 0;  // an int sum rather than a bool &= : GCC vectorises this form
    for (index_t i = lo; i < hi; ++i) nonfinite += std::abs(data[i]) <= std::numeric_limits<T>::max() ? 0 : 1;
    if (nonfinite == 0) continue;
    for (index_t i = lo; i < hi; ++i)
      if (!std::isfinite(data[i])) { bad = std::min(bad, i); break; }
  }
  return bad;
}

inline void rsp_check_plan(const rsp_plan& p, index_t h, index_t w) {
  const char* fn = "rsp_apply";
  switch (p.kind) {
    case rsp_kind::none:
    case rsp_kind::grayscale:
      return;
    case rsp_kind::blur:
      require(std::isfinite(p.sigma) && p.sigma > 0, fn, "plan", "blur sigma must be finite and > 0, got ",
              p.sigma);
      return;
    case rsp_kind::color_jitter: {
      require(std::isfinite(p.brightness) && p.brightness >= 0, fn, "plan",
              "brightness must be finite and >= 0, got ", p.brightness);
      require(std::isfinite(p.contrast) && p.contrast >= 0, fn, "plan",
              "contrast must be finite and >= 0, got ", p.contrast);
      require(std::isfinite(p.saturation) && p.saturation >= 0, fn, "plan",
              "saturation must be finite and >= 0, got ", p.saturation);
      require(p.hue >= -0.5 && p.hue <= 0.5, fn, "plan", "hue must be in [-0.5, 0.5], got ", p.hue);
      int seen = 0;
      for (int o : p.order) {
        require(o >= 0 && o < 4, fn, "plan", "order entries must be in 0..3, got ", o);
        seen |= 1 << o;
      }
      require(seen == 15, fn, "plan", "order must be a permutation of 0..3, got ", p.order[0], ",",
              p.order[1], ",", p.order[2], ",", p.order[3]);
      return;
    }
    case rsp_kind::erasing:
      require(p.height >= 0 && p.width >= 0 && p.top >= 0 && p.left >= 0 && p.top + index_t(p.height) <= h &&
                  p.left + index_t(p.width) <= w,
              fn, "plan", "erase rectangle (top ", p.top, ", left ", p.left, ", ", p.height, " x ", p.width,
              ") outside the ", h, " x ", w, " image");
      return;
  }
  fail(fn, "plan", "unknown kind ", static_cast<std::int32_t>(p.kind));
}

}  // namespace detail

/// Applies `plan` to one C x H x W sample (NCHW layout, values normalised to [-1, 1]) in place: blur,
/// grayscale and colour jitter act on x * 0.5 + 0.5 and map back with (y - 0.5) / 0.5; erasing writes 0.
/// Throws topofr::error for a null image, C not in {1, 3}, H or W < 1, a non-finite value (its index) or
/// an invalid plan (sigma <= 0, factors < 0, |hue| > 0.5, order not a permutation, rectangle outside).
template <class T>
void rsp_apply(cpu_t, const rsp_plan& plan, T* image, index_t c, index_t h, index_t w) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "rsp_apply: T must be float or double");
  const char* fn = "rsp_apply";
  detail::require(image != nullptr, fn, "image", "null data pointer");
  detail::rsp_check_shape(fn, "image", c, h, w);
  detail::rsp_check_plan(plan, h, w);
  const index_t n = c * h * w, bad = detail::rsp_first_nonfinite(image, n);
  detail::require(bad == n, fn, "image", "non-finite value at index ", bad, ": ",
                  bad < n ? static_cast<double>(image[bad]) : 0.0);
  std::vector<double> buf;
  detail::rsp_apply_one(plan, image, c, h, w, buf);
}

/// RSP on a batch in place: sample i gets rsp_draw(opt, i, C, H, W) applied (rsp_apply semantics);
/// kinds (optional, size N) receives the applied rsp_kind of each sample. All inputs are checked before
/// anything is written. Throws topofr::error for probability outside [0, 1] or NaN, C not in {1, 3},
/// H or W < 1, null data with N > 0, N >= 2^32, kinds of the wrong size, a non-finite value (its index).
/// Results do not depend on the number of OpenMP threads.
template <class T>
void rsp_perturb(cpu_t, image_batch_view<T> images, const rsp_options& opt,
                 vector_view<std::int32_t> kinds = {}) {
  const char* fn = "rsp_perturb";
  detail::check_rsp_perturb_args(images, opt, kinds, fn);
  const index_t n = images.n(), c = images.c(), h = images.h(), w = images.w();
  const index_t ss = images.sample_size(), total = n * ss;
  if (total == 0) return;
  const index_t bad = detail::rsp_first_nonfinite(images.data(), total);
  detail::require(bad == total, fn, "images", "non-finite value at index ", bad, " (sample ",
                  bad / ss, "): ", bad < total ? static_cast<double>(images.data()[bad]) : 0.0);

#if defined(_OPENMP)
#pragma omp parallel
#endif
  {
    std::vector<double> buf;  // per thread: one sample's scratch
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 4)
#endif
    for (index_t i = 0; i < n; ++i) {
      const rsp_plan p = rsp_draw(opt, i, c, h, w);
      detail::rsp_apply_one(p, images.sample(i), c, h, w, buf);
      if (!kinds.empty()) kinds[i] = static_cast<std::int32_t>(p.kind);
    }
  }
}

}  // namespace topofr
