// topofr/cuda/rsp.cuh — CUDA twin of rsp_perturb (topofr/rsp.hpp). The random choices come from the SAME
// rsp_draw (TOPOFR_HD, Philox keyed by (seed, sample, step)), so a seed perturbs the same samples the same
// way on both sides; the pixel operations mirror rsp_apply_one in double.
//
// Two kernels on ctx.stream: (1) a copy of the batch into scratch (ctx.alloc) with the finiteness check —
// a non-finite value sets status_non_finite and a flag that makes (2) write nothing, as the CPU throws
// before writing; (2) one block per sample: draw the plan, then blur / grayscale / colour jitter / erase
// from the copy into the batch (reading a copy makes the 5 x 9 blur and the contrast mean race-free).
#pragma once

#include <cub/block/block_reduce.cuh>
#include <cstdint>
#include <type_traits>

#include "../rsp.hpp"
#include "context.cuh"

namespace topofr {
namespace cuda {
namespace detail {

constexpr int rsp_threads = 256;

__device__ inline index_t rsp_reflect(index_t i, index_t n) {
  if (n == 1) return 0;
  const index_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}
__device__ inline double clamp01(double v) { return ::fmin(::fmax(v, 0.0), 1.0); }
__device__ inline double gray(double r, double g, double b) {
  return rsp_param::gray_r * r + rsp_param::gray_g * g + rsp_param::gray_b * b;
}

/// topofr::detail::rsp_hue for one pixel.
__device__ inline void hue_pixel(double& r, double& g, double& b, double hue) {
  const double R = r, G = g, B = b;
  const double maxc = ::fmax(R, ::fmax(G, B)), minc = ::fmin(R, ::fmin(G, B));
  const bool eqc = maxc == minc;
  const double cr = maxc - minc;
  const double s = cr / (eqc ? 1.0 : maxc);
  const double inv = 1.0 / (eqc ? 1.0 : cr);
  const double rc = (maxc - R) * inv, gc = (maxc - G) * inv, bc = (maxc - B) * inv;
  double hh = maxc == R ? bc - gc : (maxc == G ? 2.0 + rc - bc : 4.0 + gc - rc);
  hh = hh / 6.0 + 1.0;
  hh -= ::floor(hh);
  hh += hue;
  hh -= ::floor(hh);
  const double i6 = ::floor(hh * 6.0), f = hh * 6.0 - i6;
  const double sec = i6 >= 6.0 ? 0.0 : i6;
  const double v = maxc;
  const double p = clamp01(v * (1.0 - s)), q = clamp01(v * (1.0 - s * f)), t = clamp01(v * (1.0 - s * (1.0 - f)));
  r = (sec == 0.0 || sec == 5.0) ? v : (sec == 1.0 ? q : (sec == 4.0 ? t : p));
  g = (sec == 1.0 || sec == 2.0) ? v : (sec == 0.0 ? t : (sec == 3.0 ? q : p));
  b = (sec == 3.0 || sec == 4.0) ? v : (sec == 2.0 ? t : (sec == 5.0 ? q : p));
}

/// Colour-jitter operations order[0 .. stop) on one pixel x[0 .. c) (values in [0, 1]).
__device__ inline void jitter_ops(const rsp_plan& p, double* x, int c, int stop, double mean) {
  for (int k = 0; k < stop; ++k) {
    switch (p.order[k]) {
      case 0:
        for (int ch = 0; ch < c; ++ch) x[ch] = clamp01(p.brightness * x[ch]);
        break;
      case 1: {
        const double add = (1.0 - p.contrast) * mean;
        for (int ch = 0; ch < c; ++ch) x[ch] = clamp01(p.contrast * x[ch] + add);
        break;
      }
      case 2:
        if (c == 3) {
          const double add = (1.0 - p.saturation) * gray(x[0], x[1], x[2]);
          for (int ch = 0; ch < 3; ++ch) x[ch] = clamp01(p.saturation * x[ch] + add);
        }
        break;
      default:
        if (c == 3) hue_pixel(x[0], x[1], x[2], p.hue);
        break;
    }
  }
}

template <class T>
__global__ void rsp_copy_check_kernel(const T* src, T* dst, index_t total, int* flag, int* status) {
  bool bad = false;
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < total; i += index_t(gridDim.x) * blockDim.x) {
    const T v = src[i];
    bad |= !::isfinite(static_cast<double>(v));
    dst[i] = v;
  }
  if (bad) {
    atomicOr(flag, 1);
    report(status, status_non_finite);
  }
}

template <class T>
__global__ void __launch_bounds__(rsp_threads)
    rsp_apply_kernel(device_image_batch_view<T> images, const T* copy, rsp_options opt, std::int32_t* kinds, const int* flag) {
  using reduce = cub::BlockReduce<double, rsp_threads>;
  __shared__ typename reduce::TempStorage tmp;
  // rsp_plan has default member initialisers, which __shared__ variables may not have: raw storage.
  alignas(rsp_plan) __shared__ unsigned char plan_raw[sizeof(rsp_plan)];
  rsp_plan& plan = *reinterpret_cast<rsp_plan*>(plan_raw);
  __shared__ double kx[rsp_param::blur_kernel_w], ky[rsp_param::blur_kernel_h], mean_sh;
  if (*flag) return;  // a non-finite value somewhere: nothing is written (as the CPU, which throws)
  const index_t n = images.n(), c = images.c(), h = images.h(), w = images.w(), hw = h * w;
  const int tid = threadIdx.x;
  for (index_t i = blockIdx.x; i < n; i += gridDim.x) {
    if (tid == 0) {
      plan = rsp_draw(opt, i, c, h, w);
      if (kinds) kinds[i] = static_cast<std::int32_t>(plan.kind);
      if (plan.kind == rsp_kind::blur) {  // the normalised 1-d kernels, as topofr::detail::rsp_blur
        auto kernel = [&](double* k, int len) {
          double s = 0;
          for (int q = 0; q < len; ++q) {
            const double t = (q - (len - 1) * 0.5) / plan.sigma;
            s += k[q] = ::exp(-0.5 * t * t);
          }
          for (int q = 0; q < len; ++q) k[q] /= s;
        };
        kernel(kx, rsp_param::blur_kernel_w);
        kernel(ky, rsp_param::blur_kernel_h);
      }
    }
    __syncthreads();
    const rsp_plan p = plan;
    const T* src = copy + i * images.sample_size();
    T* img = images.sample(i);
    auto in01 = [&](index_t k) { return static_cast<double>(src[k]) * 0.5 + 0.5; };
    auto out = [&](index_t k, double v) { img[k] = static_cast<T>((v - 0.5) / 0.5); };
    switch (p.kind) {
      case rsp_kind::none:
        break;
      case rsp_kind::erasing:
        for (index_t t = tid; t < c * p.height * p.width; t += rsp_threads) {
          const index_t ch = t / (p.height * p.width), r = t % (p.height * p.width);
          img[ch * hw + (p.top + r / p.width) * w + p.left + r % p.width] = T(0);
        }
        break;
      case rsp_kind::grayscale:
        if (c != 3) break;
        for (index_t q = tid; q < hw; q += rsp_threads) {
          const double g = gray(in01(q), in01(hw + q), in01(2 * hw + q));
          out(q, g), out(hw + q, g), out(2 * hw + q, g);
        }
        break;
      case rsp_kind::blur: {
        constexpr int rx = rsp_param::blur_kernel_w / 2, ry = rsp_param::blur_kernel_h / 2;
        for (index_t t = tid; t < c * hw; t += rsp_threads) {
          const index_t ch = t / hw, r = (t % hw) / w, col = t % w;
          double acc = 0;
          for (int d = 0; d < rsp_param::blur_kernel_h; ++d) {
            const index_t row = ch * hw + rsp_reflect(r + d - ry, h) * w;
            double s = 0;
            for (int e = 0; e < rsp_param::blur_kernel_w; ++e) s += kx[e] * in01(row + rsp_reflect(col + e - rx, w));
            acc += ky[d] * s;
          }
          out(t, acc);
        }
        break;
      }
      default: {  // colour jitter: the contrast mean needs the state after the operations before it
        const int cc = static_cast<int>(c);
        int before = 4;
        for (int k = 0; k < 4; ++k)
          if (p.order[k] == 1) before = k;
        double mean = 0.0;
        if (before < 4) {
          double part = 0.0;
          for (index_t q = tid; q < hw; q += rsp_threads) {
            double x[3];
            for (int ch = 0; ch < cc; ++ch) x[ch] = in01(ch * hw + q);
            jitter_ops(p, x, cc, before, 0.0);
            part += cc == 3 ? gray(x[0], x[1], x[2]) : x[0];
          }
          const double total = reduce(tmp).Sum(part);
          if (tid == 0) mean_sh = total / static_cast<double>(hw);
          __syncthreads();
          mean = mean_sh;
        }
        for (index_t q = tid; q < hw; q += rsp_threads) {
          double x[3];
          for (int ch = 0; ch < cc; ++ch) x[ch] = in01(ch * hw + q);
          jitter_ops(p, x, cc, 4, mean);
          for (int ch = 0; ch < cc; ++ch) out(ch * hw + q, x[ch]);
        }
        break;
      }
    }
    __syncthreads();  // plan, kernels and mean are rewritten for the next sample
  }
}

}  // namespace detail
}  // namespace cuda

/// CUDA twin of rsp_perturb: same plans (rsp_draw), same pixels (within double rounding), in place on a
/// device batch; kinds (optional, device, size N). Scratch: one copy of the batch from ctx.alloc.
/// Host checks as the CPU (probability, shape, null, kinds size); non-finite values are found on the
/// device (status_non_finite, and the batch and kinds are left untouched).
template <class T>
void rsp_perturb(const cuda::context& ctx, device_image_batch_view<T> images, const rsp_options& opt,
                 device_vector_view<std::int32_t> kinds = {}) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "rsp_perturb: T must be float or double");
  const char* fn = "rsp_perturb";
  detail::require(opt.probability >= 0.0 && opt.probability <= 1.0, fn, "probability", "must be in [0, 1], got ",
                  opt.probability);
  const index_t n = images.n(), c = images.c(), h = images.h(), w = images.w();
  detail::require(n >= 0, fn, "images", "negative batch size ", n);
  detail::require(n <= (index_t(1) << 32), fn, "images", "batch size must be <= 2^32, got ", n);
  detail::rsp_check_shape(fn, "images", c, h, w);
  detail::require(images.data() != nullptr || n == 0, fn, "images", "null data pointer for ", n, " samples");
  if (!kinds.empty()) detail::check_size(kinds, n, fn, "kinds");
  const index_t total = n * images.sample_size();
  if (total == 0) return;
  cuda::workspace ws(ctx, static_cast<std::size_t>(total) * sizeof(T) + sizeof(double));
  T* copy = ws.as<T>();
  int* flag = reinterpret_cast<int*>(copy + total);  // 4-byte aligned: sizeof(T) >= 4
  cuda::check_cuda(cudaMemsetAsync(flag, 0, sizeof(int), ctx.stream), fn);
  const index_t blocks = (total + 255) / 256;
  cuda::detail::launch(fn, cuda::detail::rsp_copy_check_kernel<T>, static_cast<unsigned>(blocks < 4096 ? blocks : 4096),
                       256, 0, ctx.stream, images.data(), copy, total, flag, ctx.status);
  cuda::detail::launch(fn, cuda::detail::rsp_apply_kernel<T>, static_cast<unsigned>(n < 65535 ? n : 65535),
                       cuda::detail::rsp_threads, 0, ctx.stream, images, copy, opt,
                       kinds.empty() ? nullptr : kinds.data(), flag);
}

}  // namespace topofr
