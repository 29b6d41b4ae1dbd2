// topofr/cuda/rsp.cuh — CUDA twin of rsp_perturb (topofr/rsp.hpp). The random choices come from the SAME
// rsp_draw (TOPOFR_HD, Philox keyed by (seed, sample, step)), so a seed perturbs the same samples the same
// way on both sides; the pixel operations are rsp_apply_one's own host-and-device functions, in double.
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

// The pixel arithmetic is topofr/rsp.hpp's host-and-device code (rsp_reflect, rsp_blur_kernel, rsp_gray,
// rsp_jitter_pixel, ...): only the loops over the image are the kernel's own.
using topofr::detail::rsp_blur_kernel;
using topofr::detail::rsp_gray;
using topofr::detail::rsp_jitter_pixel;
using topofr::detail::rsp_reflect;

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
        rsp_blur_kernel(kx, rsp_param::blur_kernel_w, plan.sigma);
        rsp_blur_kernel(ky, rsp_param::blur_kernel_h, plan.sigma);
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
          const double g = rsp_gray(in01(q), in01(hw + q), in01(2 * hw + q));
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
            rsp_jitter_pixel(p, x, cc, before, 0.0);
            part += cc == 3 ? rsp_gray(x[0], x[1], x[2]) : x[0];
          }
          const double total = reduce(tmp).Sum(part);
          if (tid == 0) mean_sh = total / static_cast<double>(hw);
          __syncthreads();
          mean = mean_sh;
        }
        for (index_t q = tid; q < hw; q += rsp_threads) {
          double x[3];
          for (int ch = 0; ch < cc; ++ch) x[ch] = in01(ch * hw + q);
          rsp_jitter_pixel(p, x, cc, 4, mean);
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
  const char* fn = "rsp_perturb";
  detail::check_rsp_perturb_args(images, opt, kinds, fn);
  const index_t n = images.n();
  const index_t total = n * images.sample_size();
  if (total == 0) return;
  cuda::workspace ws(ctx, static_cast<std::size_t>(total) * sizeof(T) + sizeof(double));
  T* copy = ws.as<T>();
  int* flag = reinterpret_cast<int*>(copy + total);  // 4-byte aligned: sizeof(T) >= 4
  cuda::check_cuda(cudaMemsetAsync(flag, 0, sizeof(int), ctx.stream), fn);
  cuda::detail::launch(fn, cuda::detail::rsp_copy_check_kernel<T>, cuda::detail::grid_for(total, 256, 4096), 256, 0,
                       ctx.stream, images.data(), copy, total, flag, ctx.status);
  cuda::detail::launch(fn, cuda::detail::rsp_apply_kernel<T>, cuda::detail::grid_for(n, 1),
                       cuda::detail::rsp_threads, 0, ctx.stream, images, copy, opt,
                       kinds.empty() ? nullptr : kinds.data(), flag);
}

}  // namespace topofr
