// examples/train/autograd.hpp — the library's hand-written gradients as LibTorch autograd functions.
//   MarginCE: (cos, labels) -> mean_i w_i L_arc,i, with w = SDS weights from the GUM posterior (constants,
//             as the paper) or 1; backward = topofr::margin_ce_backward with w and 1/N.
//   ISA:      (x_clean, z) -> isa_loss_from_points(x, z); backward = the saved dL/dz times grad_output.
// CUDA tensors go to the library's CUDA blocks when the trainer is built with them (TOPOFR_TRAIN_GPU: a CUDA
// LibTorch and nvcc; gpu_blocks.cu) on LibTorch's current stream with its caching allocator (torch_gpu_env.hpp);
// otherwise, and for CPU tensors, the CPU blocks run on host memory (tensors on another device are copied to the
// CPU for the call and the gradient is copied back). Float and double tensors are supported (the library's two
// scalar types).
#pragma once

#include <torch/torch.h>

#include <topofr/arcface.hpp>
#include <topofr/distance.hpp>
#include <topofr/gum.hpp>
#include <topofr/isa.hpp>

#if defined(TOPOFR_TRAIN_GPU)
#include "gpu_blocks.hpp"
#include "torch_gpu_env.hpp"
#endif

#include <cstdint>
#include <stdexcept>
#include <string>

namespace topofr::train {

struct margin_ce_config {
  combined_margin margin{};  // s = 64, m = 0.5
  bool sds = false;          // weight the samples by the structure damage score
  double lambda = 1.0;
  bool focal = true;         // false: the released code (omega = (1 + h)^lambda)
  double entropy_eps = 1e-5;
  gum_options gum{};
};

/// Diagnostics of the last MarginCE forward (optional output).
struct margin_ce_stats {
  double loss_unweighted = 0;  // mean_i L_arc,i
  double pi = 0, sigma = 0, hard_fraction = 0;
  int gum_iterations = 0;
  torch::Tensor weights;        // N, the SDS weights used (CPU, the cosines' dtype)
};

namespace detail_ag {

inline torch::Tensor host(const torch::Tensor& t) { return t.detach().to(torch::kCPU).contiguous(); }

inline void check_float(const torch::Tensor& t, const char* fn, const char* arg) {
  if (t.scalar_type() != torch::kFloat && t.scalar_type() != torch::kDouble)
    throw std::invalid_argument(std::string(fn) + ": " + arg + " must be float32 or float64, got " +
                                std::string(c10::toString(t.scalar_type())));
}

template <class T>
matrix_view<const T> cmat(const torch::Tensor& t) {
  return {t.data_ptr<T>(), t.size(0), t.numel() / std::max<std::int64_t>(1, t.size(0))};
}
template <class T>
matrix_view<T> mat(torch::Tensor& t) {
  return {t.data_ptr<T>(), t.size(0), t.numel() / std::max<std::int64_t>(1, t.size(0))};
}
template <class T>
vector_view<T> vec(torch::Tensor& t) {
  return {t.data_ptr<T>(), t.numel()};
}

/// The margin, carried from a forward to its backward in the context's saved_data (which holds IValues).
inline void save_margin(torch::autograd::AutogradContext* ctx, const combined_margin& m) {
  ctx->saved_data["s"] = m.s;
  ctx->saved_data["m1"] = m.m1;
  ctx->saved_data["m2"] = m.m2;
  ctx->saved_data["m3"] = m.m3;
  ctx->saved_data["straight_through"] = m.straight_through;  // the margin gradient the forward was asked for
}
inline combined_margin saved_margin(torch::autograd::AutogradContext* ctx) {
  combined_margin m{ctx->saved_data["s"].toDouble(), ctx->saved_data["m1"].toDouble(),
                    ctx->saved_data["m2"].toDouble(), ctx->saved_data["m3"].toDouble()};
  m.straight_through = ctx->saved_data["straight_through"].toBool();
  return m;
}

/// MarginCE's value (1/N) sum_i w_i loss_i, in double, from host tensors of N rows: w (all 1 on entry) becomes
/// the SDS weights of the GUM posterior on `entropy` when cfg.sds (entropy is not read otherwise); stats, when
/// given, receives the fit and the unweighted mean.
template <class T>
double weighted_mean(const torch::Tensor& loss, const torch::Tensor& entropy, const torch::Tensor& p_gt,
                     const margin_ce_config& cfg, torch::Tensor& w, margin_ce_stats* stats) {
  const std::int64_t n = loss.size(0);
  if (cfg.sds) {
    torch::Tensor h = torch::empty({n}, loss.options());
    const gum_result g = gum_fit(cpu, vector_view<const T>(entropy.data_ptr<T>(), n), vec<T>(h), cfg.gum);
    sds_weights(cpu, vector_view<const T>(h.data_ptr<T>(), n), vector_view<const T>(p_gt.data_ptr<T>(), n),
                cfg.lambda, cfg.focal, vec<T>(w));
    if (stats) {
      stats->pi = g.pi;
      stats->sigma = g.sigma;
      stats->gum_iterations = g.iterations;
      stats->hard_fraction = h.gt(0.5).to(torch::kDouble).mean().item<double>();
    }
  }
  double value = 0, unweighted = 0;
  const T* l = loss.data_ptr<T>();
  const T* wi = w.data_ptr<T>();
  for (std::int64_t i = 0; i < n; ++i) {
    value += static_cast<double>(wi[i]) * static_cast<double>(l[i]);
    unweighted += static_cast<double>(l[i]);
  }
  if (stats) {
    stats->loss_unweighted = unweighted / static_cast<double>(n);
    stats->weights = w;
  }
  return value / static_cast<double>(n);
}

/// The host backward of MarginCE and sharded_margin_ce: grad_out (a scalar) times margin_ce_backward with the
/// saved cosines c, labels y, lse and weights w, and grad_scale 1/N; on grad_out's device.
inline torch::Tensor host_backward(const torch::Tensor& c, const torch::Tensor& y, const torch::Tensor& lse,
                                   const torch::Tensor& w, const combined_margin& m, const torch::Tensor& grad_out) {
  const std::int64_t n = c.size(0);
  torch::Tensor g = torch::empty_like(c);
  const double go = grad_out.to(torch::kCPU).to(torch::kDouble).item<double>();
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "margin_ce_backward", [&] {
    using T = scalar_t;
    margin_ce_backward(cpu, cmat<T>(c), vector_view<const std::int64_t>(y.data_ptr<std::int64_t>(), n), m,
                       vector_view<const T>(lse.data_ptr<T>(), n), vector_view<const T>(w.data_ptr<T>(), n),
                       go / static_cast<double>(n), mat<T>(g));
  });
  return g.to(grad_out.device());
}

}  // namespace detail_ag

#if defined(TOPOFR_TRAIN_GPU)
/// MarginCE's forward on the device (the library's CUDA blocks); the same outputs as the host path.
/// Synchronises the stream twice: once in gpu::margin_ce_forward (its status word and the GUM fit), once for
/// the statistics when `stats` is given (one copy); the loss itself stays on the device.
inline torch::Tensor margin_ce_forward_gpu(torch::autograd::AutogradContext* ctx, const torch::Tensor& cos,
                                           const torch::Tensor& labels, const margin_ce_config& cfg,
                                           margin_ce_stats* stats) {
  const torch::Tensor c = cos.detach().contiguous();
  const torch::Tensor y = labels.to(c.device()).to(torch::kLong).contiguous();
  if (y.dim() != 1 || y.size(0) != c.size(0))
    throw std::invalid_argument("MarginCE: labels must have N = " + std::to_string(c.size(0)) + " entries");
  const std::int64_t n = c.size(0);
  const auto o = c.options();
  torch::Tensor loss = torch::empty({n}, o), ent = torch::empty({n}, o), pgt = torch::empty({n}, o),
                lse = torch::empty({n}, o), w = torch::ones({n}, o), h;
  if (cfg.sds) h = torch::empty({n}, o);
  gum_result g{};
  const torch_gpu_env dev(c);
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "MarginCE_gpu", [&] {
    using T = scalar_t;
    const gpu::sds_options so{cfg.gum, cfg.lambda, cfg.focal};
    g = gpu::margin_ce_forward<T>(dev.env(), c.data_ptr<T>(), y.data_ptr<std::int64_t>(), n, c.size(1), cfg.margin,
                                  cfg.entropy_eps, loss.data_ptr<T>(), ent.data_ptr<T>(), pgt.data_ptr<T>(),
                                  lse.data_ptr<T>(), cfg.sds ? &so : nullptr, cfg.sds ? h.data_ptr<T>() : nullptr,
                                  w.data_ptr<T>());
  });
  // (1/N) sum_i w_i L_i in double, as the host path, left on the device.
  const torch::Tensor wd = w.to(torch::kDouble), ld = loss.to(torch::kDouble);
  const torch::Tensor value = (wd * ld).sum() / static_cast<double>(n);
  if (stats) {
    const torch::Tensor hard = cfg.sds ? h.gt(0.5).to(torch::kDouble).mean() : torch::zeros({}, wd.options());
    const torch::Tensor host = torch::cat({ld.sum().reshape({1}), hard.reshape({1}), wd}).to(torch::kCPU);
    const double* p = host.data_ptr<double>();
    stats->loss_unweighted = p[0] / static_cast<double>(n);
    if (cfg.sds) {
      stats->pi = g.pi;
      stats->sigma = g.sigma;
      stats->gum_iterations = g.iterations;
      stats->hard_fraction = p[1];
    }
    stats->weights = host.narrow(0, 2, n).to(c.scalar_type());  // exact: double holds every float
  }
  ctx->save_for_backward({c, y, lse, w});
  detail_ag::save_margin(ctx, cfg.margin);
  return value.to(cos.scalar_type());
}
#endif

class MarginCE : public torch::autograd::Function<MarginCE> {
 public:
  /// cos: N x C cosines (float or double, requires grad); labels: N int64, each a class in [0, C), -1 (class
  /// in another shard: loss 0, gradient of its lse) or topofr::ignore_label (-100: ignored, no gradient).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& cos,
                               const torch::Tensor& labels, const margin_ce_config& cfg, margin_ce_stats* stats) {
    detail_ag::check_float(cos, "MarginCE", "cos");
    if (cos.dim() != 2) throw std::invalid_argument("MarginCE: cos must be N x C, got " + std::to_string(cos.dim()) + " dims");
#if defined(TOPOFR_TRAIN_GPU)
    if (cos.is_cuda()) return margin_ce_forward_gpu(ctx, cos, labels, cfg, stats);
#endif
    const torch::Tensor c = detail_ag::host(cos);
    const torch::Tensor y = detail_ag::host(labels).to(torch::kLong);
    if (y.dim() != 1 || y.size(0) != c.size(0))
      throw std::invalid_argument("MarginCE: labels must have N = " + std::to_string(c.size(0)) + " entries");
    const std::int64_t n = c.size(0);
    const auto o = c.options();
    torch::Tensor loss = torch::empty({n}, o), ent = torch::empty({n}, o), pgt = torch::empty({n}, o),
                  lse = torch::empty({n}, o), w = torch::ones({n}, o);
    double value = 0;
    AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "MarginCE", [&] {
      using T = scalar_t;
      const vector_view<const std::int64_t> yv(y.data_ptr<std::int64_t>(), n);
      margin_ce_forward(cpu, detail_ag::cmat<T>(c), yv, cfg.margin, cfg.entropy_eps, detail_ag::vec<T>(loss),
                        detail_ag::vec<T>(ent), detail_ag::vec<T>(pgt), detail_ag::vec<T>(lse));
      value = detail_ag::weighted_mean<T>(loss, ent, pgt, cfg, w, stats);
    });
    ctx->save_for_backward({c, y, lse, w});
    detail_ag::save_margin(ctx, cfg.margin);
    return torch::full({}, value, cos.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &c = saved[0], &y = saved[1], &lse = saved[2], &w = saved[3];
    const combined_margin m = detail_ag::saved_margin(ctx);
#if defined(TOPOFR_TRAIN_GPU)
    if (c.is_cuda()) {
      const std::int64_t n = c.size(0);
      torch::Tensor g = torch::empty_like(c);
      // grad_output stays on the device (reading it would be one more synchronisation): the blocks scale by
      // 1/N and the incoming gradient multiplies the result (exact when it is 1, as for a loss's own term).
      const torch_gpu_env dev(c);
      AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "MarginCE_backward_gpu", [&] {
        using T = scalar_t;
        gpu::margin_ce_backward<T>(dev.env(), c.data_ptr<T>(), y.data_ptr<std::int64_t>(), n, c.size(1), m,
                                   lse.data_ptr<T>(), w.data_ptr<T>(), 1.0 / static_cast<double>(n), g.data_ptr<T>());
      });
      g.mul_(grad_out[0].to(g.device(), g.scalar_type()));
      return {g, torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
#endif
    return {detail_ag::host_backward(c, y, lse, w, m, grad_out[0]), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

class ISA : public torch::autograd::Function<ISA> {
 public:
  /// x: the clean inputs (N x ..., flattened per sample; no gradient), z: N x d latents (requires grad).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& z,
                               const isa_options& opt) {
    detail_ag::check_float(z, "ISA", "z");
    if (z.dim() != 2) throw std::invalid_argument("ISA: z must be N x d, got " + std::to_string(z.dim()) + " dims");
#if defined(TOPOFR_TRAIN_GPU)
    if (z.is_cuda()) {
      const torch::Tensor zd = z.detach().contiguous();
      const torch::Tensor xd = x.detach().to(zd.device(), zd.scalar_type()).reshape({x.size(0), -1}).contiguous();
      if (xd.size(0) != zd.size(0))  // the device views below take N from z
        throw std::invalid_argument("ISA: x has " + std::to_string(xd.size(0)) + " samples, z has " +
                                    std::to_string(zd.size(0)));
      torch::Tensor gd = torch::empty_like(zd);
      double v = 0;
      const torch_gpu_env dev(zd);
      AT_DISPATCH_FLOATING_TYPES(zd.scalar_type(), "ISA_gpu", [&] {
        using T = scalar_t;
        v = gpu::isa<T>(dev.env(), xd.data_ptr<T>(), zd.data_ptr<T>(), zd.size(0), xd.size(1), zd.size(1), opt,
                        gd.data_ptr<T>());
      });
      ctx->save_for_backward({gd});
      return torch::full({}, v, z.options());
    }
#endif
    const torch::Tensor zc = detail_ag::host(z);
    const torch::Tensor xc = detail_ag::host(x).to(zc.scalar_type()).reshape({x.size(0), -1});
    torch::Tensor g = torch::empty_like(zc);
    double value = 0;
    AT_DISPATCH_FLOATING_TYPES(zc.scalar_type(), "ISA", [&] {
      using T = scalar_t;
      value = static_cast<double>(isa_loss_from_points(cpu, detail_ag::cmat<T>(xc), detail_ag::cmat<T>(zc), opt,
                                                       detail_ag::mat<T>(g)));
    });
    ctx->save_for_backward({g});
    return torch::full({}, value, z.options());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const torch::Tensor g = ctx->get_saved_variables()[0];
    return {torch::Tensor(), (g.to(grad_out[0].device()) * grad_out[0]), torch::Tensor()};
  }
};

/// The paper's ISA options for an image batch of C x H x W: input distances / sqrt(4 C H W), latent / 1,
/// mean over the batch.
inline isa_options image_isa_options(std::int64_t c, std::int64_t h, std::int64_t w, isa_variant variant) {
  isa_options o;
  o.variant = variant;
  o.reduce = reduction::mean;
  o.x_scale = image_scale(c, h, w);
  o.z_scale = 1.0;
  return o;
}

}  // namespace topofr::train
