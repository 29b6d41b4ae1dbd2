// topofr/objective.hpp — the TopoFR objective wired as the paper does:
//   L = L_cls + alpha * L_sa,   L_cls = (1/N) sum_i omega_i * L_arc(x~_i, y_i),   omega_i = (1 + h_i)^lambda (1 - p_gt_i)
// with omega a constant (no gradient through it, as in the paper and the released code), h the GUM
// hard-sample posterior of the margin-softmax entropies, and L_sa the ISA loss between the clean input
// batch X and the latent batch Z~ = F(X~) of the perturbed images.
// It returns the loss, dL/dZ~ and dL/dcos (the caller back-propagates dL/dcos through its normalised
// classifier), and the diagnostics a trainer logs. Buffers are kept between calls: no allocation per step
// once the batch shape is fixed.
#pragma once

#include <cmath>
#include <vector>

#include "arcface.hpp"
#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/view.hpp"
#include "gum.hpp"
#include "isa.hpp"

namespace topofr {

struct objective_options {
  combined_margin margin{};   // s = 64, m = 0.5 (ArcFace)
  double alpha = 0.1;         // weight of the ISA term
  double lambda = 1.0;        // SDS exponent
  bool use_isa = true;        // PTSA on/off (ablation)
  bool use_sds = true;        // SDE on/off (ablation): off means omega = 1
  bool focal = true;          // (1 - p_gt) factor; false reproduces the released code (docs/fidelity.md)
  double entropy_eps = 1e-5;  // entropy = -sum p log(p + eps)
  gum_options gum{};
  isa_options isa{};          // variant, reduction and the distance divisors of X and Z

  /// The paper's formulas (the defaults).
  static objective_options paper() { return {}; }
  /// What the released training code computes: sorted-deaths ISA, no focal term.
  static objective_options released_code() {
    objective_options o;
    o.focal = false;
    o.isa.variant = isa_variant::sorted_deaths;
    return o;
  }
};

namespace detail {
/// The objective's constructor checks, shared by topofr::objective and topofr::cuda::objective.
inline void check_objective_options(const objective_options& opt) {
  require(std::isfinite(opt.alpha) && opt.alpha >= 0, "objective", "alpha", "must be finite and >= 0, got ",
          opt.alpha);
  require(std::isfinite(opt.lambda), "objective", "lambda", "must be finite, got ", opt.lambda);
}
}  // namespace detail

template <class T>
struct objective_result {
  T loss = 0;              // L_cls + alpha * L_sa
  T loss_cls = 0;          // weighted margin cross-entropy
  T discrepancy = 0;       // L_sa (the topological discrepancy, before alpha); 0 when use_isa is off
  double pi = 0;           // GUM Gaussian weight
  double sigma = 0;        // GUM Gaussian variance (standardised entropies)
  double hard_fraction = 0;  // fraction of samples with h > 0.5
  int gum_iterations = 0;
};

template <class T>
class objective {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "T must be float or double");

 public:
  explicit objective(objective_options opt = {}) : opt_(opt) { detail::check_objective_options(opt); }

  const objective_options& options() const { return opt_; }

  /// x: n x dx clean inputs (an image batch as n x CHW), z: n x dz embeddings of the perturbed batch,
  /// cos: N x C cosines of the perturbed batch (N == n), labels: N labels as for the head (a class, -1 =
  /// target on another shard: no loss here, gradient omega_i / N s p_ij, or ignore_label = ignored row).
  /// grad_z (n x dz) and grad_cos (N x C) are overwritten.
  template <class InX, class InZ, class InC, class L>
  objective_result<T> operator()(cpu_t, matrix_view<InX> x, matrix_view<InZ> z, matrix_view<InC> cos,
                                 vector_view<L> labels, matrix_view<T> grad_z, matrix_view<T> grad_cos) {
    static_assert(std::is_same<std::remove_const_t<InC>, T>::value, "cos must have the objective's scalar type");
    const index_t n = cos.rows();
    detail::require(n >= 1, "objective", "cos", "needs at least one row, got ", n);
    detail::require(!opt_.use_isa || z.rows() == n, "objective", "z", "has ", z.rows(),
                    " rows but cos has ", n);
    resize(n);
    objective_result<T> r;

    // Pass 1 of the head: per-sample loss, entropy, p_gt and the row log-sum-exp for pass 2.
    margin_ce_forward(cpu, cos, labels, opt_.margin, opt_.entropy_eps, vec(loss_), vec(entropy_), vec(pgt_),
                      vec(lse_));

    // SDS weights from the GUM posterior of the entropies.
    if (opt_.use_sds) {
      const gum_result g = gum_fit(cpu, vector_view<const T>(entropy_.data(), n), vec(hard_), opt_.gum);
      sds_weights(cpu, vector_view<const T>(hard_.data(), n), vector_view<const T>(pgt_.data(), n), opt_.lambda,
                  opt_.focal, vec(omega_));
      r.pi = g.pi;
      r.sigma = g.sigma;
      r.gum_iterations = g.iterations;
      index_t hard = 0;
      for (const T h : hard_) hard += h > T(0.5);
      r.hard_fraction = static_cast<double>(hard) / static_cast<double>(n);
    } else {
      std::fill(omega_.begin(), omega_.end(), T(1));
      std::fill(hard_.begin(), hard_.end(), T(0));
    }
    double cls = 0;
    for (std::size_t i = 0; i < loss_.size(); ++i) cls += static_cast<double>(omega_[i]) * static_cast<double>(loss_[i]);
    r.loss_cls = static_cast<T>(cls / static_cast<double>(n));

    // Pass 2: d L_cls / d cos with omega_i / N per row.
    margin_ce_backward(cpu, cos, labels, opt_.margin, vector_view<const T>(lse_.data(), n),
                       vector_view<const T>(omega_.data(), n), 1.0 / static_cast<double>(n), grad_cos);

    // ISA between the clean inputs and the perturbed latents, scaled by alpha.
    if (opt_.use_isa) {
      r.discrepancy = isa_loss_from_points(cpu, x, z, opt_.isa, grad_z);
      const T a = static_cast<T>(opt_.alpha);
      for (index_t i = 0; i < grad_z.rows(); ++i)
        for (index_t j = 0; j < grad_z.cols(); ++j) grad_z(i, j) *= a;
    } else {
      detail::check_view(grad_z, "objective", "grad_z");
      for (index_t i = 0; i < grad_z.rows(); ++i)
        for (index_t j = 0; j < grad_z.cols(); ++j) grad_z(i, j) = T(0);
    }
    r.loss = static_cast<T>(static_cast<double>(r.loss_cls) + opt_.alpha * static_cast<double>(r.discrepancy));
    return r;
  }

  // Per-sample values of the last call (size N).
  const std::vector<T>& sample_loss() const { return loss_; }
  const std::vector<T>& entropy() const { return entropy_; }
  const std::vector<T>& p_gt() const { return pgt_; }
  const std::vector<T>& hard_posterior() const { return hard_; }
  const std::vector<T>& weights() const { return omega_; }

 private:
  void resize(index_t n) {
    for (auto* v : {&loss_, &entropy_, &pgt_, &lse_, &hard_, &omega_}) v->resize(static_cast<std::size_t>(n));
  }
  static vector_view<T> vec(std::vector<T>& v) { return {v.data(), static_cast<index_t>(v.size())}; }

  objective_options opt_;
  std::vector<T> loss_, entropy_, pgt_, lse_, hard_, omega_;
};

}  // namespace topofr
