// topofr/shard.hpp — the communication-free primitives of a class-sharded ArcFace head (insightface
// Partial FC, recognition/arcface_torch/partial_fc_v2.py): which classes a rank owns, its local labels, its
// per-row softmax statistics, and their combination in a fixed rank order. The caller moves the
// statistics between ranks (an all-gather of shard_row_stats, or the all-reduces of Partial FC); nothing
// here communicates. The backward needs no new function: margin_ce_backward with the local labels and the
// combined lse is the sharded backward (docs/api.md). partial_fc_sample draws Partial FC's class sample from
// a counter-based stream, so that any rank can recompute any rank's sample. CUDA twins: topofr/cuda/shard.cuh;
// what both evaluate per element or per row (the logit, the sample key, the label map, the rank combine) is
// written once below as TOPOFR_HD code, and the host argument checks once as templates over the memory space.
#pragma once

#include <math.h>  // ::exp, ::log, ::fma, ::isfinite, ::isnan: callable from host and device code

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "arcface.hpp"
#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/rng.hpp"
#include "core/view.hpp"

namespace topofr {

/// The classes [begin, end) of one rank.
struct class_range {
  index_t begin, end;
  TOPOFR_HD index_t size() const { return end - begin; }
};

/// insightface's split of C classes over W ranks: rank r owns C/W + (r < C%W) classes, starting at
/// (C/W) r + min(r, C%W) (the first C%W ranks get one more).
inline class_range shard_range(index_t classes, index_t world, index_t rank) {
  constexpr const char* fn = "shard_range";
  detail::require(world >= 1, fn, "world", "must be >= 1, got ", world);
  detail::require(rank >= 0 && rank < world, fn, "rank", "must be in [0, world = ", world, "), got ", rank);
  detail::require(classes >= world, fn, "classes", "world > number of classes: world = ", world, ", classes = ",
                  classes);
  const index_t q = classes / world, r = classes % world;
  const index_t begin = q * rank + std::min(rank, r);
  return class_range{begin, begin + q + (rank < r ? 1 : 0)};
}

namespace detail {
namespace shard {

/// A global label to this shard's label (the label already checked by arc::label_ok(y, classes)): a class in
/// the shard -> y - begin, a class elsewhere -> -1; -1 and ignore_label (-100) stay.
TOPOFR_HD inline index_t localize(index_t y, index_t begin, index_t end) {
  return y >= 0 ? ((y >= begin && y < end) ? y - begin : index_t(-1)) : y;
}

/// The host-side checks of localize_labels (CPU and CUDA; the label values are checked where they are read).
template <class L, class S>
void check_localize_args(const char* fn, const vector_view<const L, S>& labels, class_range shard, index_t classes,
                         const vector_view<L, S>& local) {
  static_assert(std::is_same<L, std::int32_t>::value || std::is_same<L, std::int64_t>::value,
                "localize_labels: labels must be int32 or int64");
  detail::check_view(labels, fn, "labels");
  detail::check_size(local, labels.size(), fn, "local");
  detail::require(classes >= 1, fn, "classes", "must be >= 1, got ", classes);
  detail::require(shard.begin >= 0 && shard.begin <= shard.end && shard.end <= classes, fn, "shard",
                  "expected 0 <= begin <= end <= classes = ", classes, ", got [", shard.begin, ", ", shard.end,
                  ")");
}

}  // namespace shard
}  // namespace detail

/// Global labels to this shard's labels: a class y in the shard -> y - shard.begin; a class in [0, classes)
/// outside it -> -1 (target on another shard); -1 and ignore_label (-100) stay as they are. Any other value
/// is an error (naming the index and the value), detected before anything is written: local may alias labels.
template <class L>
void localize_labels(cpu_t, vector_view<const detail::identity_t<L>> labels, class_range shard, index_t classes,
                     vector_view<L> local) {
  constexpr const char* fn = "localize_labels";
  detail::shard::check_localize_args<L>(fn, labels, shard, classes, local);
  const index_t n = labels.size();
  for (index_t i = 0; i < n; ++i) {
    const index_t y = static_cast<index_t>(labels[i]);
    detail::require(detail::arc::label_ok(y, classes), fn, "labels", "element ", i, " is ", y,
                    ", expected -1, -100 (ignored) or a class in [0, ", classes, ")");
  }
  for (index_t i = 0; i < n; ++i)
    local[i] = static_cast<L>(detail::shard::localize(static_cast<index_t>(labels[i]), shard.begin, shard.end));
}

namespace detail {
namespace shard {

/// The sample key of a positive class: above every uniform key in [0, 1).
constexpr double positive_key = 2.0;

/// The sample key of the non-positive class `global_class` (shard.begin + j) at (seed, step).
TOPOFR_HD inline double sample_key(std::uint64_t seed, index_t global_class, std::uint64_t step) {
  return counter_rng(seed, static_cast<std::uint64_t>(global_class) + (std::uint64_t(1) << 32), step).uniform();
}

/// The host-side checks of partial_fc_sample (CPU and CUDA; the label values are checked where they are read).
template <class L, class S>
void check_sample_args(const char* fn, const vector_view<const L, S>& local_labels, class_range shard,
                       index_t num_sample, const vector_view<index_t, S>& index,
                       const vector_view<L, S>& sampled_labels) {
  static_assert(std::is_same<L, std::int32_t>::value || std::is_same<L, std::int64_t>::value,
                "partial_fc_sample: labels must be int32 or int64");
  detail::check_view(local_labels, fn, "local_labels");
  detail::require(shard.begin >= 0 && shard.end > shard.begin, fn, "shard", "expected 0 <= begin < end, got [",
                  shard.begin, ", ", shard.end, ")");
  const index_t c = shard.size(), n = local_labels.size();
  detail::require(num_sample >= 1 && num_sample <= c, fn, "num_sample", "must be in [1, ", c,
                  "] (the shard's classes), got ", num_sample);
  detail::check_size(index, c, fn, "index");
  detail::check_size(sampled_labels, n, fn, "sampled_labels");
}

}  // namespace shard
}  // namespace detail

/// Partial FC's class sample on one rank (partial_fc_v2.py, PartialFC_V2.sample): every local class that is
/// some row's target (a positive) is kept, and the other classes with the highest keys fill the sample up to
/// num_sample; `index` receives the chosen local classes in ascending order (count of them, the rest of
/// `index` is set to -1) and `sampled_labels` each local label's position in `index` (-1 and -100 stay).
/// Key of local class j: counter_rng(seed, shard.begin + j + 2^32, step).uniform(), positives 2 (the +2^32
/// keeps these streams apart from RSP's counter_rng(seed, sample, step) for steps < 2^32). So the sample is a
/// function of (seed, step, shard, positives): every rank can recompute every rank's sample without talking.
/// Ties (equal keys) go to the lower class. Returns count = max(num_sample, number of positives).
/// local_labels: N labels of this shard (localize_labels' output); sampled_labels may alias it.
template <class L>
index_t partial_fc_sample(cpu_t, vector_view<const detail::identity_t<L>> local_labels, class_range shard,
                          index_t num_sample, std::uint64_t seed, std::uint64_t step, vector_view<index_t> index,
                          vector_view<L> sampled_labels) {
  constexpr const char* fn = "partial_fc_sample";
  detail::shard::check_sample_args<L>(fn, local_labels, shard, num_sample, index, sampled_labels);
  const index_t c = shard.size(), n = local_labels.size();
  std::vector<double> key(static_cast<std::size_t>(c));
  for (index_t i = 0; i < n; ++i) {
    const index_t y = static_cast<index_t>(local_labels[i]);
    detail::require((y >= 0 && y < c) || y == -1 || y == static_cast<index_t>(ignore_label), fn, "local_labels",
                    "element ", i, " is ", y, ", expected -1, -100 (ignored) or a local class in [0, ", c, ")");
    if (y >= 0) key[static_cast<std::size_t>(y)] = detail::shard::positive_key;
  }
  std::vector<index_t> order(static_cast<std::size_t>(c));
  index_t positives = 0;
  for (index_t j = 0; j < c; ++j) {
    auto& k = key[static_cast<std::size_t>(j)];
    if (k == detail::shard::positive_key) ++positives;
    else k = detail::shard::sample_key(seed, shard.begin + j, step);
    order[static_cast<std::size_t>(j)] = j;
  }
  const index_t count = std::max(num_sample, positives);
  // The count highest keys, ties to the lower class; then in ascending class order, as partial_fc_v2 sorts.
  auto higher = [&](index_t a, index_t b) {
    const double ka = key[static_cast<std::size_t>(a)], kb = key[static_cast<std::size_t>(b)];
    return ka > kb || (ka == kb && a < b);
  };
  std::nth_element(order.begin(), order.begin() + (count - 1), order.end(), higher);
  std::sort(order.begin(), order.begin() + count);
  for (index_t j = 0; j < c; ++j) index[j] = j < count ? order[static_cast<std::size_t>(j)] : -1;
  for (index_t i = 0; i < n; ++i) {
    const index_t y = static_cast<index_t>(local_labels[i]);
    if (y >= 0)
      sampled_labels[i] = static_cast<L>(std::lower_bound(index.begin(), index.begin() + count, y) - index.begin());
    else
      sampled_labels[i] = static_cast<L>(y);
  }
  return count;
}

/// One row's softmax statistics over one shard's margin logits z (s f(cos) in the local label column,
/// s cos elsewhere). With mx = max_j z_j:
///   max        mx
///   sum_exp    sum_j exp(z_j - mx)
///   sum_exp_z  sum_j exp(z_j - mx) (z_j - mx)   (shifted by mx, see below; for the exact entropy)
///   target     z_y when the row's label is local, else NaN
/// sum_exp_z is the sum of exp(z_j - mx) z_j less mx sum_exp: the entropy lse - sum_j p_j z_j subtracts two
/// numbers of size s (64) to get one that may be ~1e-3, so the shift keeps its relative accuracy.
struct shard_row_stats {
  double max;
  double sum_exp;
  double sum_exp_z;
  double target;
};

namespace detail {
namespace shard {

/// The margin logit of one element in double: s f(x) in the label column, s x elsewhere (s rounded to T, as
/// the head does). The same code on the host and on the device.
TOPOFR_HD inline double logit(const arc::margin_fn& mf, double x, bool label_column) {
  return label_column ? mf.s * mf.f(x) : mf.s * x;
}

/// se += sum_j exp(d_j), sez += sum_j exp(d_j) d_j over [b, e), with d_j = s c_j - mx <= 0 in double: eight
/// double lanes, each its own accumulator, so the loop vectorises without reassociation (and its order
/// does not depend on the SIMD width); fastmath::exp_finite is within 2 ulp of the C library's exp.
template <class T>
void exp_sums(const T* c, index_t b, index_t e, double s, double mx, double& se, double& sez) {
  constexpr index_t W = 8;
  double a[W], az[W];
  for (index_t l = 0; l < W; ++l) a[l] = 0.0, az[l] = 0.0;
  index_t j = b;
  for (; j + W <= e; j += W)
    for (index_t l = 0; l < W; ++l) {
      const double d = s * static_cast<double>(c[j + l]) - mx, x = fastmath::exp_finite(d);
      a[l] += x;
      az[l] += x * d;
    }
  for (; j < e; ++j) {
    const double d = s * static_cast<double>(c[j]) - mx, x = fastmath::exp_finite(d);
    a[0] += x;
    az[0] += x * d;
  }
  for (index_t l = 0; l < W; ++l) se += a[l], sez += az[l];
}

/// sum_j p_j log(p_j + eps) over [b, e), p_j = exp(s c_j - l), for eps >= the smallest normal double (p + eps
/// is then a positive normal number, the domain of fastmath::log_normal); eight double lanes, as exp_sums.
template <class T>
double eps_sum(const T* c, index_t b, index_t e, double s, double l, double eps) {
  constexpr index_t W = 8;
  double a[W];
  for (index_t k = 0; k < W; ++k) a[k] = 0.0;
  index_t j = b;
  for (; j + W <= e; j += W)
    for (index_t k = 0; k < W; ++k) {
      const double p = fastmath::exp_finite(s * static_cast<double>(c[j + k]) - l);
      a[k] += p * fastmath::log_normal(p + eps);
    }
  for (; j < e; ++j) {
    const double p = fastmath::exp_finite(s * static_cast<double>(c[j]) - l);
    a[0] += p * fastmath::log_normal(p + eps);
  }
  double sum = 0.0;
  for (index_t k = 0; k < W; ++k) sum += a[k];
  return sum;
}

/// The logits of row i of a shard in double (logit above). Calls op(j, z_j) for every j; false when a
/// cosine is out of [-1, 1].
template <class T, class L, class Op>
bool row_logits(const arc::margin_fn& mf, const T* ci, index_t c, index_t y, Op op) {
  bool ok = true;
  for (index_t j = 0; j < c; ++j) {
    const double x = static_cast<double>(ci[j]);
    ok &= std::fabs(x) <= 1.0;
    op(j, logit(mf, x, j == y));
  }
  return ok;
}

/// The host-side checks of shard_stats (CPU and CUDA; the values of cos and labels are checked where they
/// are read). Returns the checked margin function.
template <class T, class InC, class L, class S>
arc::margin_fn check_stats_args(const char* fn, const combined_margin& m, const matrix_view<InC, S>& cos,
                                const vector_view<L, S>& local_labels, const vector_view<shard_row_stats, S>& stats) {
  const auto mf = arc::checked_margin<T>(m, fn);
  arc::check_cos_view(cos, fn);
  arc::check_label_size(local_labels, cos.rows(), fn);
  detail::check_size(stats, cos.rows(), fn, "stats");
  return mf;
}

/// The host-side checks of shard_entropy_eps_partial (CPU and CUDA; the values of cos, labels and lse_global
/// are checked where they are read). Returns the checked margin function.
template <class T, class InC, class L, class InS, class S>
arc::margin_fn check_eps_partial_args(const char* fn, const combined_margin& m, const matrix_view<InC, S>& cos,
                                      const vector_view<L, S>& local_labels, const vector_view<InS, S>& lse_global,
                                      double eps, const vector_view<double, S>& partial) {
  const auto mf = arc::checked_margin<T>(m, fn);
  arc::check_entropy_eps<T>(eps, fn);
  arc::check_cos_view(cos, fn);
  const index_t n = cos.rows();
  arc::check_label_size(local_labels, n, fn);
  detail::check_size(lse_global, n, fn, "lse_global");
  detail::check_size(partial, n, fn, "partial");
  return mf;
}

/// The host-side checks of combine_shard_stats (CPU and CUDA). per_rank: a pointer to world x n stats.
template <class T, class S>
void check_combine_args(const char* fn, const shard_row_stats* per_rank, index_t world, index_t n,
                        const vector_view<T, S>& lse, const vector_view<T, S>& loss, const vector_view<T, S>& p_gt,
                        const vector_view<T, S>& entropy) {
  static_assert(detail::is_real_v<T>, "combine_shard_stats: float or double");
  detail::require(world >= 1, fn, "world", "must be >= 1, got ", world);
  detail::require(n >= 0, fn, "n", "must be >= 0, got ", n);
  detail::require(per_rank != nullptr || n == 0, fn, "per_rank", "null pointer for ", world, " x ", n, " stats");
  if (!lse.empty()) detail::check_size(lse, n, fn, "lse");
  if (!loss.empty()) detail::check_size(loss, n, fn, "loss");
  if (!p_gt.empty()) detail::check_size(p_gt, n, fn, "p_gt");
  if (!entropy.empty()) detail::check_size(entropy, n, fn, "entropy");
}

/// One row of combine_shard_stats, or why it cannot be combined.
struct combined_row {
  double lse, loss, p_gt, entropy;
};
enum combine_fault : int {
  combine_ok = 0,
  combine_bad_stats,    // rank `rank`: max, sum_exp >= 1, sum_exp_z not all finite
  combine_two_targets,  // targets on ranks `other` and `rank`
  combine_bad_target,   // rank `rank`: target not finite (and not NaN)
};

/// Combines row i of the W x n stats in rank order 0, 1, ..., W-1 (see combine_shard_stats). The CPU loop
/// and the CUDA kernel both call this very function. Every multiply-add is an explicit fma (one rounding,
/// the same on every compiler and on the device, which would otherwise contract a * b + c as it likes),
/// so the arithmetic is bitwise the same everywhere; exp and log are the platform's (the C library's on
/// the host, CUDA's on the device), so host and device may differ in the last bits where those do.
/// On a fault, returns it with the rank(s) concerned and leaves `out` unset.
TOPOFR_HD inline combine_fault combine_row(const shard_row_stats* per_rank, index_t world, index_t n, index_t i,
                                           combined_row& out, index_t& rank, index_t& other) {
  double mx = -HUGE_VAL, target = 0.0;
  index_t owner = -1;
  for (index_t r = 0; r < world; ++r) {
    const shard_row_stats& st = per_rank[r * n + i];
    if (!(::isfinite(st.max) && ::isfinite(st.sum_exp) && st.sum_exp >= 1.0 && ::isfinite(st.sum_exp_z))) {
      rank = r;
      return combine_bad_stats;
    }
    mx = mx < st.max ? st.max : mx;  // std::max(mx, st.max)
    if (!::isnan(st.target)) {
      if (owner >= 0) {
        rank = r, other = owner;
        return combine_two_targets;
      }
      if (!::isfinite(st.target)) {
        rank = r;
        return combine_bad_target;
      }
      owner = r, target = st.target;
    }
  }
  double s = 0.0, sz = 0.0;
  for (index_t r = 0; r < world; ++r) {
    const shard_row_stats& st = per_rank[r * n + i];
    const double sh = st.max - mx, w = ::exp(sh);
    s = ::fma(st.sum_exp, w, s);                             // s += sum_exp w
    sz = ::fma(w, ::fma(sh, st.sum_exp, st.sum_exp_z), sz);  // sz += w (sum_exp_z + sh sum_exp)
  }
  const double log_s = ::log(s);
  // loss = log S + (M - target): exact when the target is the maximum, no cancellation of two ~s terms.
  const double l = owner >= 0 ? log_s + (mx - target) : 0.0;
  out.lse = mx + log_s;
  out.loss = l;
  out.p_gt = owner >= 0 ? ::exp(-l) : 0.0;
  out.entropy = log_s - sz / s;
  return combine_ok;
}

}  // namespace shard
}  // namespace detail

/// Per-row statistics of this shard (see shard_row_stats), computed in double. cos: N x C_local, entries
/// in [-1, 1]; local_labels: N, each -1, ignore_label or a local class in [0, C_local) (localize_labels);
/// stats: N. The same argument checks as margin_ce_forward.
template <class InC, class L>
void shard_stats(cpu_t, matrix_view<InC> cos, vector_view<L> local_labels, const combined_margin& m,
                 vector_view<shard_row_stats> stats) {
  using T = std::remove_const_t<InC>;
  static_assert(detail::is_real_v<T>, "shard_stats: cos must be float or double");
  constexpr const char* fn = "shard_stats";
  const auto mf = detail::shard::check_stats_args<T>(fn, m, cos, local_labels, stats);
  const index_t n = cos.rows(), c = cos.cols();
  detail::arc::check_labels(local_labels, n, c, fn);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // One thread per row, two sweeps in a fixed order: results do not depend on the thread count. The
  // logits are s c_j in double (s f(c_y) at the label), as the head forms them; the max is taken over the
  // cosines (s > 0: the same maximum) and the sums in lanes, so both sweeps vectorise.
  const double inf = std::numeric_limits<double>::infinity();
  detail::arc::for_rows(cos, fn, [&](index_t i) {
    const T* ci = cos.row(i);
    const index_t y = static_cast<index_t>(local_labels[i]);
    const index_t split = y >= 0 ? y : c;
    T mc = -std::numeric_limits<T>::infinity();
    bool ok = detail::arc::max_checked(ci, 0, split, mc);
    if (y >= 0) ok &= detail::arc::max_checked(ci, y + 1, c, mc) && std::fabs(ci[y]) <= T(1);
    if (!ok) return false;
    const double zy = y >= 0 ? detail::shard::logit(mf, static_cast<double>(ci[y]), true) : -inf;
    const double mx = std::max(mf.s * static_cast<double>(mc), zy);
    double se = 0.0, sez = 0.0;
    detail::shard::exp_sums(ci, 0, split, mf.s, mx, se, sez);
    if (y >= 0) {
      detail::shard::exp_sums(ci, y + 1, c, mf.s, mx, se, sez);
      const double d = zy - mx, e = std::exp(d);
      se += e;
      sez += e * d;
    }
    stats[i] = shard_row_stats{mx, se, sez, y >= 0 ? zy : nan};
    return true;
  });
}

/// Combines the statistics of W ranks (per_rank: W x N, rank-major) in rank order 0, 1, ..., W-1, so every
/// rank that runs it on the same all-gathered array gets bitwise the same result. Per row, with
/// M = max_r max_r, S = sum_r sum_exp_r exp(max_r - M):
///   lse = M + log S; loss = lse - target; p_gt = exp(target - lse);
///   entropy (eps = 0) = log S - sum_r exp(max_r - M) (sum_exp_z_r + (max_r - M) sum_exp_r) / S
/// where target is the one finite target over the ranks. A row whose target is on no rank (ignore_label)
/// gets loss 0 and p_gt 0. Any of lse, loss, p_gt, entropy may be empty (not computed).
template <class T>
void combine_shard_stats(const shard_row_stats* per_rank, index_t world, index_t n, vector_view<T> lse,
                         vector_view<T> loss = {}, vector_view<T> p_gt = {}, vector_view<T> entropy = {}) {
  constexpr const char* fn = "combine_shard_stats";
  detail::shard::check_combine_args(fn, per_rank, world, n, lse, loss, p_gt, entropy);
  // O(W N) work: serial, which also lets the checks throw where they find a bad row.
  for (index_t i = 0; i < n; ++i) {
    detail::shard::combined_row out;
    index_t r = -1, other = -1;
    switch (detail::shard::combine_row(per_rank, world, n, i, out, r, other)) {
      case detail::shard::combine_ok:
        break;
      case detail::shard::combine_bad_stats: {
        const shard_row_stats& st = per_rank[r * n + i];
        detail::fail(fn, "per_rank", "rank ", r, " row ", i, ": max, sum_exp >= 1, sum_exp_z must be finite, got ",
                     st.max, ", ", st.sum_exp, ", ", st.sum_exp_z);
      }
      case detail::shard::combine_two_targets:
        detail::fail(fn, "per_rank", "row ", i, " has a target on ranks ", other, " and ", r);
      case detail::shard::combine_bad_target:
        detail::fail(fn, "per_rank", "rank ", r, " row ", i, ": target is not finite, got ", per_rank[r * n + i].target);
    }
    if (!lse.empty()) lse[i] = static_cast<T>(out.lse);
    if (!loss.empty()) loss[i] = static_cast<T>(out.loss);
    if (!p_gt.empty()) p_gt[i] = static_cast<T>(out.p_gt);
    if (!entropy.empty()) entropy[i] = static_cast<T>(out.entropy);
  }
}

/// The eps > 0 entropy (the released code's eps = 1e-5) does not follow from shard_row_stats: log(p + eps)
/// needs every p_j, hence the global lse. So it costs one more reduction: after combine_shard_stats, each
/// rank writes partial_i = sum_{j local} p_ij log(p_ij + eps), p_ij = exp(z_ij - lse_global_i) (in double),
/// the caller all-reduces partial (SUM, over the ranks) and negates: entropy_i = -sum_r partial_r,i.
/// The arguments are checked as for shard_stats; lse_global: N finite entries; eps >= 0 and finite in T;
/// partial: N.
template <class InC, class L, class InS>
void shard_entropy_eps_partial(cpu_t, matrix_view<InC> cos, vector_view<L> local_labels, const combined_margin& m,
                               vector_view<InS> lse_global, double eps, vector_view<double> partial) {
  using T = std::remove_const_t<InC>;
  static_assert(detail::is_real_v<T> && std::is_same<std::remove_const_t<InS>, T>::value,
                "shard_entropy_eps_partial: float or double, the same for cos and lse_global");
  constexpr const char* fn = "shard_entropy_eps_partial";
  const auto mf = detail::shard::check_eps_partial_args<T>(fn, m, cos, local_labels, lse_global, eps, partial);
  const index_t n = cos.rows(), c = cos.cols();
  detail::arc::check_labels(local_labels, n, c, fn);
  detail::arc::check_finite(lse_global, fn, "lse_global");
  // eps >= the smallest normal double (the released code's 1e-5): p + eps is a positive normal number, so the
  // lanes of eps_sum apply; otherwise (eps = 0: 0 log 0 = 0) one element at a time with the C library.
  const bool lanes = eps >= std::numeric_limits<double>::min();
  detail::arc::for_rows(cos, fn, [&](index_t i) {
    const T* ci = cos.row(i);
    const index_t y = static_cast<index_t>(local_labels[i]);
    const double l = static_cast<double>(lse_global[i]);
    double acc = 0.0;
    if (lanes) {
      T mx = -std::numeric_limits<T>::infinity();  // only the range check is wanted
      if (!detail::arc::max_checked(ci, 0, c, mx)) return false;
      const index_t split = y >= 0 ? y : c;
      acc = detail::shard::eps_sum(ci, 0, split, mf.s, l, eps);
      if (y >= 0) {
        acc += detail::shard::eps_sum(ci, y + 1, c, mf.s, l, eps);
        const double p = std::exp(detail::shard::logit(mf, static_cast<double>(ci[y]), true) - l);
        acc += p * std::log(p + eps);
      }
      partial[i] = acc;
      return true;
    }
    const bool ok = detail::shard::row_logits<T, L>(mf, ci, c, y, [&](index_t, double z) {
      const double p = std::exp(z - l);
      if (p > 0.0 || eps > 0.0) acc += p * std::log(p + eps);  // eps = 0: 0 log 0 = 0
    });
    partial[i] = acc;
    return ok;
  });
}

}  // namespace topofr
