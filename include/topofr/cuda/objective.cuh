// topofr/cuda/objective.cuh — the TopoFR objective (topofr/objective.hpp) on the device: the same steps,
// the CUDA blocks, everything enqueued on ctx.stream with no host synchronisation inside.
//
//   cuda::objective<T> f(opts);
//   f(ctx, x, z, cos, labels, grad_z, grad_cos, device_result);   // device_result: objective_result<T>*
//
// Asynchronous result: the scalars (loss, loss_cls, discrepancy, pi, sigma, hard_fraction, gum_iterations)
// are written to *device_result, a DEVICE pointer to topofr::objective_result<T>; the per-sample values
// go to the optional device views of objective_samples (scratch from ctx.alloc where a view is empty).
// Invalid device values set ctx.status bits (see the blocks); the caller reads them when it synchronises.
#pragma once

#include <cub/block/block_reduce.cuh>
#include <cmath>
#include <limits>
#include <type_traits>

#include "../objective.hpp"
#include "arcface.cuh"
#include "context.cuh"
#include "gum.cuh"
#include "isa.cuh"

namespace topofr {
namespace cuda {

/// Optional per-sample outputs (device views of size N; empty: kept in scratch and discarded).
template <class T>
struct objective_samples {
  device_vector_view<T> loss, entropy, p_gt, hard_posterior, weights;
};

namespace detail {

template <class T>
__global__ void fill2_kernel(T* a, T va, T* b, T vb, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x)
    a[i] = va, b[i] = vb;
}

/// One block: L_cls = sum omega_i loss_i / N (double, fixed order), the hard fraction, and the result.
template <class T>
__global__ void __launch_bounds__(256)
    objective_finish_kernel(const T* loss, const T* omega, const T* hard, index_t n, const T* disc,
                            const gum_result* g, double alpha, objective_result<T>* out) {
  using reduce = cub::BlockReduce<double, 256>;
  __shared__ typename reduce::TempStorage tmp;
  __shared__ double cls_sh;
  double cls = 0.0, hardc = 0.0;
  for (index_t i = threadIdx.x; i < n; i += 256) {
    cls += static_cast<double>(omega[i]) * static_cast<double>(loss[i]);
    hardc += hard[i] > T(0.5) ? 1.0 : 0.0;
  }
  const double c = reduce(tmp).Sum(cls);
  if (threadIdx.x == 0) cls_sh = c;
  __syncthreads();
  const double hc = reduce(tmp).Sum(hardc);
  if (threadIdx.x != 0 || !out) return;
  objective_result<T> r;
  r.loss_cls = static_cast<T>(cls_sh / static_cast<double>(n));
  r.discrepancy = disc ? *disc : T(0);
  r.loss = static_cast<T>(static_cast<double>(r.loss_cls) + alpha * static_cast<double>(r.discrepancy));
  if (g) {
    r.pi = g->pi;
    r.sigma = g->sigma;
    r.gum_iterations = g->iterations;
    r.hard_fraction = hc / static_cast<double>(n);
  }
  *out = r;
}

inline unsigned blocks_for(index_t total) { return grid_for(total, 256, 4096); }

}  // namespace detail

template <class T>
class objective {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "T must be float or double");

 public:
  explicit objective(objective_options opt = {}) : opt_(opt) { topofr::detail::check_objective_options(opt); }

  const objective_options& options() const { return opt_; }

  /// As topofr::objective<T>::operator() (x: n x dx clean inputs, z: n x dz perturbed embeddings, cos:
  /// N x C, labels: N, as for the head: a class, -1 = target on another shard or ignore_label; grad_z and
  /// grad_cos overwritten), all views on the device. cos may be half or
  /// bfloat16 when T is float. The scalars go to *device_result (device pointer; nullptr: not written).
  template <class InX, class InZ, class InC, class L>
  void operator()(const context& ctx, device_matrix_view<InX> x, device_matrix_view<InZ> z, device_matrix_view<InC> cos,
                  device_vector_view<L> labels, device_matrix_view<T> grad_z, device_matrix_view<T> grad_cos,
                  objective_result<T>* device_result, const objective_samples<T>& samples = {}) const {
    static_assert(std::is_same<detail::acc_t<InC>, T>::value, "cos must have the objective's scalar type");
    check(x, z, cos, labels, grad_z, grad_cos, samples);  // every host-visible error before anything is enqueued
    const index_t n = cos.rows();

    // Scratch: 6 per-sample vectors, the GUM result and the discrepancy.
    const std::size_t vec_bytes = static_cast<std::size_t>(n) * sizeof(T);
    const std::size_t vec_pad = (vec_bytes + 15) / 16 * 16;
    workspace ws(ctx, 6 * vec_pad + sizeof(gum_result) + 16);
    char* base = ws.as<char>();
    auto slot = [&](int k, device_vector_view<T> user) {
      return user.empty() ? device_vector_view<T>(reinterpret_cast<T*>(base + k * vec_pad), n) : user;
    };
    const device_vector_view<T> loss = slot(0, samples.loss), entropy = slot(1, samples.entropy),
                         pgt = slot(2, samples.p_gt), hard = slot(3, samples.hard_posterior),
                         omega = slot(4, samples.weights), lse = slot(5, {});
    auto* gres = reinterpret_cast<gum_result*>(base + 6 * vec_pad);
    T* disc = reinterpret_cast<T*>(base + 6 * vec_pad + (sizeof(gum_result) + 7) / 8 * 8);

    // Launches, all on ctx.stream, no host synchronisation: head pass 1; GUM; SDS weights (or a fill); head
    // pass 2 (omega_i / N per row); the ISA (Gram tiles of x and z, one B = 2 persistence launch, terms,
    // coefficients, chain rule with alpha folded in); the finish (L_cls, hard fraction, the result).
    margin_ce_forward(ctx, cos, labels, opt_.margin, opt_.entropy_eps, loss, entropy, pgt, lse);
    if (opt_.use_sds) {
      gum_fit(ctx, device_vector_view<const T>(entropy), hard, opt_.gum, gres);
      sds_weights(ctx, device_vector_view<const T>(hard), device_vector_view<const T>(pgt), opt_.lambda, opt_.focal, omega);
    } else {
      detail::launch("objective", detail::fill2_kernel<T>, detail::blocks_for(n), 256, 0, ctx.stream, omega.data(), T(1),
                     hard.data(), T(0), n);
    }
    margin_ce_backward(ctx, cos, labels, opt_.margin, device_vector_view<const T>(lse), device_vector_view<const T>(omega),
                       1.0 / static_cast<double>(n), grad_cos);
    if (opt_.use_isa) {
      isa_loss_from_points(ctx, x, z, opt_.isa, device_vector_view<T>(disc, 1), grad_z, device_matrix_view<T>(), opt_.alpha);
    } else if (!grad_z.empty()) {
      detail::zero_matrix(ctx, grad_z, "objective");
    }
    detail::launch("objective", detail::objective_finish_kernel<T>, 1, 256, 0, ctx.stream, loss.data(), omega.data(),
                   hard.data(), n, opt_.use_isa ? disc : nullptr, opt_.use_sds ? gres : nullptr, opt_.alpha,
                   device_result);
  }

 private:
  /// The host-side checks of every block the call runs, so that a shape error throws before any kernel
  /// is enqueued (the blocks check again when called; that costs nanoseconds).
  template <class InX, class InZ, class InC, class L>
  void check(device_matrix_view<InX> x, device_matrix_view<InZ> z, device_matrix_view<InC> cos, device_vector_view<L> labels,
             device_matrix_view<T> grad_z, device_matrix_view<T> grad_cos, const objective_samples<T>& samples) const {
    constexpr const char* fn = "objective";
    const index_t n = cos.rows();
    topofr::detail::require(n >= 1, fn, "cos", "needs at least one row, got ", n);
    topofr::detail::arc::checked_margin<T>(opt_.margin, fn);
    topofr::detail::arc::check_cos_view(cos, fn);
    topofr::detail::arc::check_label_size(labels, n, fn);
    topofr::detail::check_shape(grad_cos, n, cos.cols(), fn, "grad_cos");
    topofr::detail::arc::check_entropy_eps<T>(opt_.entropy_eps, fn);
    const char* names[5] = {"samples.loss", "samples.entropy", "samples.p_gt", "samples.hard_posterior",
                            "samples.weights"};
    const device_vector_view<T> given[5] = {samples.loss, samples.entropy, samples.p_gt, samples.hard_posterior,
                                     samples.weights};
    for (int k = 0; k < 5; ++k)
      if (!given[k].empty()) topofr::detail::check_size(given[k], n, fn, names[k]);
    if (opt_.use_sds) topofr::detail::gum_check_options(opt_.gum, fn);  // its sizes are n, checked above
    if (opt_.use_isa) {
      topofr::detail::require(z.rows() == n, fn, "z", "has ", z.rows(), " rows but cos has ", n);
      topofr::detail::isa_check_points_args(x, z, opt_.isa, grad_z, device_matrix_view<T>(), fn);
    } else {
      topofr::detail::check_view(grad_z, fn, "grad_z");
    }
  }

  objective_options opt_;
};

}  // namespace cuda
}  // namespace topofr
