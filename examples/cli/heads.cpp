// examples/cli/heads.cpp — `topofr arcface` and `topofr margin-ce`: the combined-margin head (logits, backward) and its fused cross-entropy; they share the margins and the --cos checks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <topofr/topofr.hpp>
#include <topofr/arcface.hpp>

#include "commands.hpp"
#include "device.hpp"
#include "io.hpp"

namespace topofr_cli {
namespace {

topofr::combined_margin margins(const args& a) {
  topofr::combined_margin m;
  m.s = a.number("--s", m.s);
  m.m1 = a.number("--m1", m.m1);
  m.m2 = a.number("--m2", m.m2);
  m.m3 = a.number("--m3", m.m3);
  m.straight_through = a.choice("--margin-grad", {"exact", "straight-through"}, "exact") == "straight-through";
  return m;
}

/// N = 0 (no samples) and C = 0 (no classes) are errors for arcface and margin-ce alike: there is no
/// logit, loss or mean to compute.
std::pair<index_t, index_t> cos_shape(const npy::array& c, const std::string& path) {
  if (c.ndim() != 2) throw usage_error(str("--cos: expected an (N, C) matrix, got shape ", shape_of(c)));
  if (c.shape[0] == 0) throw usage_error(str("--cos: ", path, " has no samples (shape ", shape_of(c), "): need N >= 1"));
  if (c.shape[1] == 0) throw usage_error(str("--cos: ", path, " has no classes (shape ", shape_of(c), "): need C >= 1"));
  return {c.shape[0], c.shape[1]};
}

template <class T>
int arcface_run(const args& a, device dev, const npy::array& ca, const npy::array& la, const npy::array* ga,
                const std::string& cp, const std::string& gp, const topofr::combined_margin& m, const std::string& logits_out,
                const std::optional<std::string>& grad_out) {
  const auto shape = cos_shape(ca, cp);
  const topofr::index_t n = shape.first, c = shape.second;
  const std::vector<T> cs = floats<T>("--cos", ca, cp);
  const std::vector<std::int64_t> y = labels("--labels", la, n);
  std::vector<T> gin;
  if (ga) {
    if (ga->shape != ca.shape)
      throw usage_error(str("--grad-in: expected the shape of --cos ", shape_of(ca), ", got ", shape_of(*ga)));
    gin = floats<T>("--grad-in", *ga, gp);
    if (const index_t k = first_nonfinite(gin); k >= 0)
      throw usage_error(str("--grad-in: ", gp, ": element ", where(ga->shape, k), " is not finite, got ", g(gin[k]),
                            "; dL/dlogits must be finite"));
  }
  std::vector<T> logits(cs.size()), gcos(ga ? cs.size() : 0);
  on_device(a, dev, [&](auto exec) {
    topofr::matrix_view<const T> cv(cs.data(), n, c);
    topofr::vector_view<const std::int64_t> yv(y.data(), n);
    topofr::margin_logits(exec, cv, yv, m, topofr::matrix_view<T>(logits.data(), n, c));
    if (ga)
      topofr::margin_logits_backward(exec, cv, yv, m, topofr::matrix_view<const T>(gin.data(), n, c),
                                     topofr::matrix_view<T>(gcos.data(), n, c));
  });
  if (const index_t k = first_nonfinite(gcos); k >= 0)
    throw usage_error(str("--grad-out: dL/dcos at ", where(ca.shape, k), " overflows ", type_name<T>(), " (", g(gcos[k]),
                          "): --grad-in ", gp, " times the margin slope and --s is beyond the ", type_name<T>(),
                          " range; rescale --grad-in", std::is_same<T, float>::value ? " or use --dtype float64" : ""));
  save("--logits-out", logits_out, logits, {n, c});
  const auto [lo, hi] = min_max(logits);
  std::printf("arcface: N=%lld, C=%lld, s=%s m1=%s m2=%s m3=%s, logits in [%s, %s] -> %s\n", static_cast<long long>(n),
              static_cast<long long>(c), g(m.s).c_str(), g(m.m1).c_str(), g(m.m2).c_str(), g(m.m3).c_str(),
              g(lo).c_str(), g(hi).c_str(), logits_out.c_str());
  if (ga) {
    save("--grad-out", *grad_out, gcos, {n, c});
    const auto [glo, ghi] = min_max(gcos);
    std::printf("grad: dL/dcos, shape %s, in [%s, %s] -> %s\n", shape_of(ca).c_str(), g(glo).c_str(), g(ghi).c_str(),
                grad_out->c_str());
  }
  return 0;
}

int cmd_arcface(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const std::string cp = *io.input("--cos", true), lp = *io.input("--labels", true);
  const auto gp = io.input("--grad-in", false);
  const std::string logits_out = *io.output("--logits-out", true);
  const auto grad_out = io.output("--grad-out", false);
  if (gp.has_value() != grad_out.has_value())
    throw usage_error(gp ? "--grad-out: required with --grad-in" : "--grad-in: required with --grad-out");
  const topofr::combined_margin m = margins(a);
  a.integer("--repeat", 0, 1);
  const npy::array ca = load("--cos", cp), la = load("--labels", lp);
  std::optional<npy::array> ga;
  if (gp) ga = load("--grad-in", *gp);
  const npy::array* gptr = ga ? &*ga : nullptr;
  const std::string gpath = gp ? *gp : "";
  if (compute_dtype(a, {&ca, gptr}) == npy::dtype::float32)
    return arcface_run<float>(a, dev, ca, la, gptr, cp, gpath, m, logits_out, grad_out);
  return arcface_run<double>(a, dev, ca, la, gptr, cp, gpath, m, logits_out, grad_out);
}

struct ce_outputs {
  std::string loss, entropy, pgt;
  std::optional<std::string> lse, grad;
};

template <class T>
int margin_ce_run(const args& a, device dev, const npy::array& ca, const npy::array& la, const npy::array* wa,
                  const std::string& cp, const std::string& wp, const topofr::combined_margin& m, double eps, const ce_outputs& out) {
  const auto shape = cos_shape(ca, cp);
  const topofr::index_t n = shape.first, c = shape.second;
  const std::vector<T> cs = floats<T>("--cos", ca, cp);
  const std::vector<std::int64_t> y = labels("--labels", la, n);
  std::vector<T> w(static_cast<std::size_t>(n), T(1));
  if (wa) {
    if (wa->ndim() != 1 || wa->shape[0] != n)
      throw usage_error(str("--weights: expected shape (", n, ",) to match --cos, got ", shape_of(*wa)));
    w = floats<T>("--weights", *wa, wp);
  }
  std::vector<T> loss(n), ent(n), pgt(n), lse(n), gcos(out.grad ? cs.size() : 0);
  on_device(a, dev, [&](auto exec) {
    topofr::matrix_view<const T> cv(cs.data(), n, c);
    topofr::vector_view<const std::int64_t> yv(y.data(), n);
    topofr::margin_ce_forward(exec, cv, yv, m, eps, topofr::vector_view<T>(loss.data(), n),
                              topofr::vector_view<T>(ent.data(), n), topofr::vector_view<T>(pgt.data(), n),
                              topofr::vector_view<T>(lse.data(), n));
    if (out.grad)
      topofr::margin_ce_backward(exec, cv, yv, m, topofr::vector_view<const T>(lse.data(), n),
                                 topofr::vector_view<const T>(w.data(), n), 1.0 / double(n),
                                 topofr::matrix_view<T>(gcos.data(), n, c));
  });
  auto mean = [](const std::vector<T>& v) {
    double s = 0;
    for (T e : v) s += e;
    return v.empty() ? 0.0 : s / double(v.size());
  };
  double wloss = 0;
  for (index_t i = 0; i < n; ++i) wloss += double(w[i]) * double(loss[i]);
  save("--loss-out", out.loss, loss, {n});
  std::printf("margin-ce: N=%lld, C=%lld, mean loss=%s, weighted mean loss=%s (%s) -> %s\n", static_cast<long long>(n),
              static_cast<long long>(c), g(mean(loss)).c_str(), g(n ? wloss / double(n) : 0.0).c_str(), type_name<T>(),
              out.loss.c_str());
  save("--entropy-out", out.entropy, ent, {n});
  std::printf("entropy: mean=%s -> %s\n", g(mean(ent)).c_str(), out.entropy.c_str());
  save("--pgt-out", out.pgt, pgt, {n});
  std::printf("p_gt: mean=%s -> %s\n", g(mean(pgt)).c_str(), out.pgt.c_str());
  if (out.lse) {
    save("--lse-out", *out.lse, lse, {n});
    std::printf("lse: mean=%s -> %s\n", g(mean(lse)).c_str(), out.lse->c_str());
  }
  if (out.grad) {
    save("--grad-out", *out.grad, gcos, {n, c});
    const auto [glo, ghi] = min_max(gcos);
    std::printf("grad: d(mean w*loss)/dcos, shape %s, in [%s, %s] -> %s\n", shape_of(ca).c_str(), g(glo).c_str(),
                g(ghi).c_str(), out.grad->c_str());
  }
  return 0;
}

int cmd_margin_ce(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const std::string cp = *io.input("--cos", true), lp = *io.input("--labels", true);
  const auto wp = io.input("--weights", false);
  ce_outputs out;
  out.loss = *io.output("--loss-out", true);
  out.entropy = *io.output("--entropy-out", true);
  out.pgt = *io.output("--pgt-out", true);
  out.lse = io.output("--lse-out", false);
  out.grad = io.output("--grad-out", false);
  const topofr::combined_margin m = margins(a);
  const double eps = a.number("--entropy-eps", 1e-5);
  a.integer("--repeat", 0, 1);
  const npy::array ca = load("--cos", cp), la = load("--labels", lp);
  std::optional<npy::array> wa;
  if (wp) wa = load("--weights", *wp);
  const npy::array* wptr = wa ? &*wa : nullptr;
  const std::string wpath = wp ? *wp : "";
  if (compute_dtype(a, {&ca}) == npy::dtype::float32)
    return margin_ce_run<float>(a, dev, ca, la, wptr, cp, wpath, m, eps, out);
  return margin_ce_run<double>(a, dev, ca, la, wptr, cp, wpath, m, eps, out);
}

/// The flags both heads take (--cos, --labels, the margins s, m1, m2, m3: read by margins()), then `rest`.
std::vector<flag> with_margin_flags(const char* labels_help, std::initializer_list<flag> rest) {
  std::vector<flag> f = {{"--cos", "C.npy", "cosines (N, C), in [-1, 1]"},
                         {"--labels", "Y.npy", labels_help},
                         {"--s", "s", "logit scale (default 64)"},
                         {"--m1", "m1", "multiplicative angular margin (default 1)"},
                         {"--m2", "m2", "additive angular margin (default 0.5)"},
                         {"--m3", "m3", "additive cosine margin (default 0)"},
                         {"--margin-grad", "exact|straight-through",
                          "target column's gradient: s f'(cos) (default) or s (arcface_torch's no_grad margin)"}};
  f.insert(f.end(), rest.begin(), rest.end());
  return f;
}

}  // namespace

const command& arcface_command() {
  static const command c = {"arcface", "--cos C.npy --labels Y.npy [--s 64] [--m1 1] [--m2 0.5] [--m3 0] [--margin-grad exact] --logits-out L.npy "
                  "[--grad-in G.npy --grad-out GC.npy]",
       "Combined-margin logits s*(cos(m1*theta + m2) - m3) at the label, s*cos elsewhere; and their backward.",
       with_margin_flags("int32 or int64 (N,), in [0, C), -1 (class in another shard) or -100 (ignored)",
                         {{"--logits-out", "L.npy", "the logits (N, C)"},
                          {"--grad-in", "G.npy", "dL/dlogits (N, C); needs --grad-out"},
                          {"--grad-out", "GC.npy", "dL/dcos (N, C); needs --grad-in"}}),
       cmd_arcface};
  return c;
}

const command& margin_ce_command() {
  static const command c = {"margin-ce", "--cos C.npy --labels Y.npy [--s --m1 --m2 --m3 --margin-grad] [--weights W.npy] [--entropy-eps 1e-5] "
                    "--loss-out L.npy --entropy-out E.npy --pgt-out P.npy [--lse-out S.npy] [--grad-out GC.npy]",
       "Fused margin-softmax cross-entropy: per-sample loss, entropy and p_gt; gradient of mean_i w_i loss_i.",
       with_margin_flags("int32 or int64 (N,), in [0, C), -1 (class in another shard: loss 0, gradient of its "
                         "log-sum-exp) or -100 (ignored: loss 0, no gradient)",
                         {{"--weights", "W.npy", "per-sample weights w (N,) for --grad-out (default 1)"},
                          {"--entropy-eps", "e", "entropy = -sum p log(p + e) (default 1e-5)"},
                          {"--loss-out", "L.npy", "per-sample cross-entropy (N,)"},
                          {"--entropy-out", "E.npy", "per-sample entropy of the margin softmax (N,)"},
                          {"--pgt-out", "P.npy", "per-sample softmax probability of the label (N,)"},
                          {"--lse-out", "S.npy", "per-sample log-sum-exp of the logits (N,)"},
                          {"--grad-out", "GC.npy", "d(mean_i w_i loss_i)/dcos (N, C)"}}),
       cmd_margin_ce};
  return c;
}

}  // namespace topofr_cli
