// examples/train/sharded_head.hpp — the class-sharded ArcFace head (insightface Partial FC) on c10d: the
// library's communication-free primitives (topofr/shard.hpp) plus the few collectives that join them.
//   all_gather_rows:   the global batch of embeddings (backward: all-reduce of the gradient, this rank's rows);
//   ShardedClassifier: this rank's classes of the normalised classifier (optionally Partial FC's class sample);
//   sharded_margin_ce: MarginCE (autograd.hpp) over the classes of all ranks, from this rank's cosines.
// Per step and rank (B global rows, d embedding size): all-gather of B x d embeddings and B labels (the
// caller's two all_gather_rows), all-gather of B x 4 doubles of row statistics, with SDS and entropy_eps > 0
// an all-reduce of B doubles, and in the backward the all-reduce of the B x d embedding gradient; each
// all-gather is preceded by an exchange of 10 int64 per rank that checks the shapes (a clear error instead of
// a Gloo failure or a hang). The library itself never communicates: every collective is in this file.
// CPU tensors (Gloo); other devices are copied to the host for the head, as MarginCE does.
// Contract of every collective: all ranks of the group make the same calls in the same order, forward and
// backward (as DDP requires); the group must outlive the backward pass (its address is kept until then).
#pragma once

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/torch.h>

#include <topofr/gum.hpp>
#include <topofr/shard.hpp>

#include "autograd.hpp"

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace topofr::train {

namespace detail_sh {

static_assert(sizeof(shard_row_stats) == 4 * sizeof(double), "shard_row_stats travels as 4 doubles");

inline std::string on_rank(const c10d::ProcessGroup& pg) {
  return "rank " + std::to_string(pg.getRank()) + " of " + std::to_string(pg.getSize());
}

/// Runs one collective and waits for it. A failure inside c10d/Gloo (a rank that died, the group's timeout)
/// becomes one std::runtime_error that says which step of which function failed on which rank: the raw
/// Gloo message ("Connection closed by peer", "Timed out waiting ...") alone does not tell the user that.
template <class Start>
void run_collective(c10d::ProcessGroup& pg, const char* fn, const std::string& what, Start start) {
  try {
    start()->wait();
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string(fn) + ": " + what + " failed on " + on_rank(pg) +
                             " (another rank died, or the process group's timeout passed): " +
                             e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(fn) + ": " + what + " failed on " + on_rank(pg) +
                             " (another rank died, or the process group's timeout passed): " + e.what());
  }
}

inline void allreduce_sum(c10d::ProcessGroup& pg, torch::Tensor& t, const char* fn, const std::string& what) {
  std::vector<torch::Tensor> v{t};
  run_collective(pg, fn, "all-reduce of " + what, [&] { return pg.allreduce(v); });
}

/// Every rank's t, concatenated along dim 0 in rank order. A small all-gather of (dtype, dim, sizes) comes
/// first: Gloo fails obscurely or waits when the shapes differ, this names the ranks and their shapes, and
/// every rank sees every shape, so all of them throw the same error together (no rank is left waiting).
/// local_error: this rank failed while preparing t; it still takes part in that first exchange, so that
/// the others stop with an error naming it instead of waiting for the timeout, and then rethrows its error.
inline torch::Tensor all_gather(c10d::ProcessGroup& pg, const torch::Tensor& t, const char* fn, const char* arg,
                                std::exception_ptr local_error = nullptr) {
  constexpr int max_dim = 8;
  if (t.dim() < 1 || t.dim() > max_dim)
    throw std::invalid_argument(std::string(fn) + ": " + arg + " must have 1 to 8 dimensions, got " +
                                std::to_string(t.dim()));
  const int world = pg.getSize();
  const torch::Tensor x = t.contiguous();
  torch::Tensor desc = torch::full({max_dim + 2}, -1, torch::kLong);
  desc[0] = local_error ? -2 : static_cast<std::int64_t>(x.scalar_type());
  desc[1] = x.dim();
  for (int k = 0; k < x.dim(); ++k) desc[k + 2] = x.size(k);
  torch::Tensor descs = torch::empty({world, max_dim + 2}, torch::kLong);
  {
    std::vector<std::vector<torch::Tensor>> out(1);
    for (int r = 0; r < world; ++r) out[0].push_back(descs[r]);
    std::vector<torch::Tensor> in{desc};
    run_collective(pg, fn, std::string("all-gather of the shape of ") + arg, [&] { return pg.allgather(out, in); });
  }
  auto shape = [&](int r) {
    const torch::Tensor d = descs[r];
    std::string s = "[";
    for (std::int64_t k = 0; k < d[1].item<std::int64_t>(); ++k)
      s += (k ? ", " : "") + std::to_string(d[k + 2].item<std::int64_t>());
    return s + "] " + c10::toString(static_cast<c10::ScalarType>(d[0].item<std::int64_t>()));
  };
  if (local_error) std::rethrow_exception(local_error);
  for (int r = 0; r < world; ++r)
    if (descs[r][0].item<std::int64_t>() == -2)
      throw std::runtime_error(std::string(fn) + ": rank " + std::to_string(r) + " failed before the all-gather of " +
                               arg + " (its own error says why)");
  for (int r = 0; r < world; ++r)
    if (!descs[r].equal(descs[0]))
      throw std::invalid_argument(std::string(fn) + ": " + arg +
                                  ": every rank must pass the same shape and dtype, got rank 0: " + shape(0) +
                                  ", rank " + std::to_string(r) + ": " + shape(r));
  std::vector<std::int64_t> sizes = x.sizes().vec();
  const std::int64_t rows = sizes[0];
  sizes[0] *= world;
  torch::Tensor result = torch::empty(sizes, x.options());
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < world; ++r) out[0].push_back(result.narrow(0, r * rows, rows));  // Gloo copies into these
  std::vector<torch::Tensor> in{x};
  run_collective(pg, fn, std::string("all-gather of ") + arg, [&] { return pg.allgather(out, in); });
  return result;
}

class AllGatherRows : public torch::autograd::Function<AllGatherRows> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& local,
                               c10d::ProcessGroup* pg) {
    ctx->saved_data["pg"] = reinterpret_cast<std::int64_t>(pg);  // the group outlives the step (contract above)
    ctx->saved_data["rows"] = local.size(0);
    return all_gather(*pg, local.detach(), "all_gather_rows", "local");
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto& pg = *reinterpret_cast<c10d::ProcessGroup*>(ctx->saved_data["pg"].toInt());
    const std::int64_t rows = ctx->saved_data["rows"].toInt();
    // Each rank holds the gradient of its own classes' part of the loss wrt every global row: their sum is the
    // whole gradient. The all-reduce works in place, hence the copy.
    torch::Tensor g = grad_out[0].contiguous().clone();
    allreduce_sum(pg, g, "all_gather_rows", "the gradient");
    return {g.narrow(0, pg.getRank() * rows, rows), torch::Tensor()};
  }
};

/// The combined per-row values of the global head, bitwise the same on every rank: lse, loss (the
/// unweighted L_i), p_gt, and when asked the entropy (eps as margin_ce_forward's entropy_eps). c: B x C_s
/// host, contiguous; y: B int64 host (local labels). Tensors of c's dtype. Also what the test compares.
struct global_rows {
  torch::Tensor lse, loss, p_gt, entropy;
};

inline global_rows combine_rows(c10d::ProcessGroup& pg, const torch::Tensor& c, const torch::Tensor& y,
                                const combined_margin& m, bool want_entropy, double eps) {
  constexpr const char* fn = "sharded_margin_ce";
  const std::int64_t n = c.size(0);
  const int world = pg.getSize();
  const auto o = c.options();
  global_rows g{torch::empty({n}, o), torch::empty({n}, o), torch::empty({n}, o), torch::Tensor()};
  if (want_entropy) g.entropy = torch::empty({n}, o);
  torch::Tensor st = torch::empty({n, 4}, torch::kDouble);
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "sharded_margin_ce", [&] {
    using T = scalar_t;
    const vector_view<const std::int64_t> yv(y.data_ptr<std::int64_t>(), n);
    std::exception_ptr error;  // e.g. a cosine out of range on this shard only: the others must not wait
    try {
      shard_stats(cpu, detail_ag::cmat<T>(c), yv, m,
                  vector_view<shard_row_stats>(reinterpret_cast<shard_row_stats*>(st.data_ptr<double>()), n));
    } catch (...) {
      if (world == 1) throw;
      error = std::current_exception();
    }
    const torch::Tensor all = world > 1 ? all_gather(pg, st, fn, "the row statistics", error) : st;  // W B x 4
    const bool eps_entropy = want_entropy && eps > 0.0;
    combine_shard_stats<T>(reinterpret_cast<const shard_row_stats*>(all.data_ptr<double>()), world, n,
                           detail_ag::vec<T>(g.lse), detail_ag::vec<T>(g.loss), detail_ag::vec<T>(g.p_gt),
                           want_entropy && !eps_entropy ? detail_ag::vec<T>(g.entropy) : vector_view<T>{});
    if (eps_entropy) {  // log(p + eps) needs every p_ij: this rank's partial sums over its classes, summed
      torch::Tensor part = torch::empty({n}, torch::kDouble);
      shard_entropy_eps_partial(cpu, detail_ag::cmat<T>(c), yv, m, vector_view<const T>(g.lse.data_ptr<T>(), n), eps,
                                detail_ag::vec<double>(part));
      // Gloo's ring all-reduce sums each element on one rank and then sends that sum to all: the same bits
      // everywhere, so GUM sees the same entropies on every rank (the test checks the weights bitwise).
      if (world > 1) allreduce_sum(pg, part, fn, "the entropy partial sums");
      g.entropy.copy_(part.neg());
    }
  });
  return g;
}

class ShardedMarginCE : public torch::autograd::Function<ShardedMarginCE> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& cos,
                               const torch::Tensor& local_labels, c10d::ProcessGroup* pg,
                               const margin_ce_config& cfg, margin_ce_stats* stats) {
    detail_ag::check_float(cos, "sharded_margin_ce", "cos");
    if (cos.dim() != 2)
      throw std::invalid_argument("sharded_margin_ce: cos must be B x C_s, got " + std::to_string(cos.dim()) + " dims");
    const torch::Tensor c = detail_ag::host(cos);
    const torch::Tensor y = detail_ag::host(local_labels).to(torch::kLong);
    if (y.dim() != 1 || y.size(0) != c.size(0))
      throw std::invalid_argument("sharded_margin_ce: local_labels must have B = " + std::to_string(c.size(0)) +
                                  " entries");
    const std::int64_t n = c.size(0);
    const auto o = c.options();
    // As MarginCE, but the entropy is only needed (and only costs its all-reduce) for the SDS weights.
    const global_rows g = combine_rows(*pg, c, y, cfg.margin, cfg.sds, cfg.entropy_eps);
    torch::Tensor w = torch::ones({n}, o);
    double value = 0;
    AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "sharded_margin_ce", [&] {
      // The same inputs on every rank: the same GUM fit and weights, no communication.
      value = detail_ag::weighted_mean<scalar_t>(g.loss, g.entropy, g.p_gt, cfg, w, stats);
    });
    ctx->save_for_backward({c, y, g.lse, w});
    detail_ag::save_margin(ctx, cfg.margin);
    return torch::full({}, value, cos.options());
  }

  /// Local: margin_ce_backward with the combined lse is this shard's part of the gradient of the global loss
  /// (arcface.hpp); the embeddings' parts are summed by all_gather_rows' backward.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &c = saved[0], &y = saved[1], &lse = saved[2], &w = saved[3];
    return {detail_ag::host_backward(c, y, lse, w, detail_ag::saved_margin(ctx), grad_out[0]), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace detail_sh

/// Rows of every rank, concatenated in rank order (every rank passes the same number of rows, checked with a
/// clear error). Autograd: backward all-reduces (SUM) the incoming gradient and returns this rank's rows.
/// world 1: identity.
inline torch::Tensor all_gather_rows(c10d::ProcessGroup& pg, const torch::Tensor& local) {
  if (pg.getSize() == 1) return local;
  return detail_sh::AllGatherRows::apply(local, &pg);
}

/// The class-sharded normalised classifier: this rank's rows [range.begin, range.end) of the C x d
/// classifier (NormClassifier's, split by topofr::shard_range).
struct ShardedClassifierImpl : torch::nn::Module {
  /// rows: the shard's initial rows (range.size() x d), copied into the parameter `weight`.
  /// sample_rate in (0, 1]: below 1, each step uses Partial FC's class sample of max(1, floor(sample_rate
  /// C_s)) classes (plus every positive), drawn from (seed, step) so that every rank can recompute it.
  ShardedClassifierImpl(torch::Tensor rows, class_range range_, std::int64_t classes_, double sample_rate_ = 1.0,
                        std::uint64_t seed_ = 0)
      : range(range_), classes(classes_), sample_rate(sample_rate_), seed(seed_) {
    const char* fn = "ShardedClassifier";
    if (!(range.begin >= 0 && range.begin < range.end && range.end <= classes))
      throw std::invalid_argument(std::string(fn) + ": range must satisfy 0 <= begin < end <= classes = " +
                                  std::to_string(classes) + ", got [" + std::to_string(range.begin) + ", " +
                                  std::to_string(range.end) + ") (topofr::shard_range gives it)");
    if (rows.dim() != 2 || rows.size(0) != range.size())
      throw std::invalid_argument(std::string(fn) + ": rows must be range.size() = " + std::to_string(range.size()) +
                                  " x d, got " + c10::str(rows.sizes()));
    detail_ag::check_float(rows, fn, "rows");
    if (!(sample_rate > 0.0 && sample_rate <= 1.0))
      throw std::invalid_argument(std::string(fn) + ": sample_rate must be in (0, 1], got " +
                                  std::to_string(sample_rate));
    weight = register_parameter("weight", rows.detach().clone());
  }

  /// z: the global (all-gathered) embeddings, B x d; labels: their global labels (B, int64; -100 allowed).
  /// Returns (cos, local_labels): cos = normalize(z) . normalize(W_s)^T clamped to [-1, 1] (as
  /// NormClassifier), B x C_s, where W_s is the whole shard, or with sample_rate < 1 Partial FC's class
  /// sample of the shard at `step` (rows picked by index_select: only sampled rows get gradient), and
  /// local_labels = localize_labels (positions in the sample when sampling; -1 = on another shard).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& z, const torch::Tensor& labels,
                                                  std::uint64_t step) {
    if (z.dim() != 2 || z.size(1) != weight.size(1))
      throw std::invalid_argument("ShardedClassifier: z must be B x " + std::to_string(weight.size(1)) + ", got " +
                                  c10::str(z.sizes()));
    const torch::Tensor y = detail_ag::host(labels).to(torch::kLong);
    if (y.dim() != 1 || y.size(0) != z.size(0))
      throw std::invalid_argument("ShardedClassifier: labels must have B = " + std::to_string(z.size(0)) +
                                  " entries, got " + c10::str(labels.sizes()));
    const std::int64_t n = y.size(0);
    torch::Tensor local = torch::empty_like(y);
    localize_labels(cpu, vector_view<const std::int64_t>(y.data_ptr<std::int64_t>(), n), range, classes,
                    vector_view<std::int64_t>(local.data_ptr<std::int64_t>(), n));
    torch::Tensor w = weight;
    if (sample_rate < 1.0) {  // insightface: num_sample = int(sample_rate * num_local)
      const index_t num = std::max<index_t>(1, static_cast<index_t>(sample_rate * static_cast<double>(range.size())));
      torch::Tensor index = torch::empty({range.size()}, torch::kLong);
      const index_t count =
          partial_fc_sample(cpu, vector_view<const std::int64_t>(local.data_ptr<std::int64_t>(), n), range, num, seed,
                            step, vector_view<index_t>(index.data_ptr<std::int64_t>(), range.size()),
                            vector_view<std::int64_t>(local.data_ptr<std::int64_t>(), n));
      w = weight.index_select(0, index.narrow(0, 0, count).to(weight.device()));
    }
    namespace F = torch::nn::functional;
    const auto opts = F::NormalizeFuncOptions().dim(1).eps(1e-12);
    return {F::normalize(z, opts).mm(F::normalize(w, opts).t()).clamp(-1.0, 1.0), local.to(z.device())};
  }

  torch::Tensor weight;
  class_range range;
  std::int64_t classes;
  double sample_rate;
  std::uint64_t seed;
};
TORCH_MODULE(ShardedClassifier);

/// The global head: mean over the B global rows of w_i L_i (w = SDS weights from the GUM posterior on the
/// GLOBAL batch's entropies when cfg.sds, else 1), the same value on every rank, from this rank's cosines
/// (B x C_s) and local labels. stats as MarginCE's. Backward: margin_ce_backward with the local labels, the
/// combined lse, w and 1/B, times the incoming gradient (no communication).
inline torch::Tensor sharded_margin_ce(c10d::ProcessGroup& pg, const torch::Tensor& cos,
                                       const torch::Tensor& local_labels, const margin_ce_config& cfg,
                                       margin_ce_stats* stats = nullptr) {
  return detail_sh::ShardedMarginCE::apply(cos, local_labels, &pg, cfg, stats);
}

}  // namespace topofr::train
