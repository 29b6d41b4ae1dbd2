// Tests of the ArcFace head (include/topofr/arcface.hpp) and of core/fastmath.hpp. Oracles: PyTorch
// autograd in float64 of the insightface formula (tests/oracles/arcface_oracle.py), finite differences in
// double, closed forms and brute-force double computations written here, and libm (long double) for
// fastmath.
#include "support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <topofr/arcface.hpp>

using namespace topofr;
using namespace topofr::test;

namespace {

/// A cosine batch with padding (ld = c + pad), labels (some -1 = target on another shard, some
/// ignore_label = -100) and the targets spread over both branches of the margin (x above and below
/// cos(pi - m)).
template <class T>
struct batch {
  index_t n, c, ld;
  std::vector<T> cos;  // n x ld
  std::vector<std::int64_t> labels;
  batch(index_t n_, index_t c_, std::uint64_t seed, index_t pad = 3) : n(n_), c(c_), ld(c_ + pad) {
    auto g = normal<double>(static_cast<std::size_t>(n * ld), seed, 0.3);
    auto t = uniform<double>(static_cast<std::size_t>(n), seed + 1, -0.99, 0.99);
    auto y = uniform<double>(static_cast<std::size_t>(n), seed + 2, 0.0, 1.0);
    cos.resize(g.size());
    for (std::size_t k = 0; k < g.size(); ++k) cos[k] = static_cast<T>(std::clamp(g[k], -0.999, 0.999));
    labels.resize(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      labels[i] = (i % 7 == 3)   ? -1
                  : (i % 7 == 5) ? ignore_label
                                 : std::min<std::int64_t>(c - 1, static_cast<std::int64_t>(y[i] * c));
      if (labels[i] >= 0) cos[i * ld + labels[i]] = static_cast<T>(t[i]);
    }
    if (n > 1 && labels[1] >= 0) cos[1 * ld + labels[1]] = static_cast<T>(-0.95);  // second branch
  }
  matrix_view<const T> view() const { return {cos.data(), n, c, ld}; }
  vector_view<const std::int64_t> yv() const { return {labels.data(), n}; }
  std::vector<T> dense() const {  // contiguous n x c copy for the oracle
    std::vector<T> d(static_cast<std::size_t>(n * c));
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < c; ++j) d[i * c + j] = cos[i * ld + j];
    return d;
  }
};

struct head_out {
  std::vector<double> logits, glogits, loss, entropy, pgt, lse, grad;
};

/// One oracle case: a batch, a margin, eps; the weights, upstream gradient and grad_scale are derived.
template <class T>
struct oracle_case {
  std::string tag;
  batch<T> b;
  combined_margin m;
  double eps;
  double gs() const { return 1.0 / static_cast<double>(b.n); }
  std::vector<T> w() const { return uniform<T>(static_cast<std::size_t>(b.n), 7, 0.0, 2.0); }
  std::vector<T> gup() const { return normal<T>(static_cast<std::size_t>(b.n * b.c), 8); }
};

/// Runs the PyTorch oracle once for all cases (importing torch dominates its time).
template <class T>
bool run_oracle(const std::vector<oracle_case<T>>& cases, std::vector<head_out>& out) {
  std::vector<std::string> args;
  if (!cases.empty() && cases[0].m.straight_through) args.push_back("--straight-through");  // one mode per run
  for (const auto& k : cases) REQUIRE(k.m.straight_through == cases[0].m.straight_through);
  for (const auto& k : cases) {
    const std::string p = scratch(k.tag);
    save(p + "_cos.npy", k.b.dense(), {k.b.n, k.b.c});
    save(p + "_labels.npy", k.b.labels, {k.b.n});
    save(p + "_weights.npy", k.w(), {k.b.n});
    save(p + "_gup.npy", k.gup(), {k.b.n, k.b.c});
    for (const std::string& a : {p, detail::concat(k.m.s), detail::concat(k.m.m1), detail::concat(k.m.m2),
                                 detail::concat(k.m.m3), detail::concat(k.eps), detail::concat(k.gs())})
      args.push_back(a);
  }
  if (!oracle("arcface_oracle.py", args)) return false;
  out.clear();
  for (const auto& k : cases) {
    const std::string p = scratch(k.tag);
    out.push_back({load<double>(p + "_logits.npy"), load<double>(p + "_glogits.npy"), load<double>(p + "_loss.npy"),
                   load<double>(p + "_entropy.npy"), load<double>(p + "_pgt.npy"), load<double>(p + "_lse.npy"),
                   load<double>(p + "_grad.npy")});
  }
  return true;
}

/// |got - want| <= rtol |want| + atol, element by element, with the worst offender reported.
template <class T>
void check_close(const std::string& what, const std::vector<T>& got, const std::vector<double>& want,
                 double rtol, double atol) {
  REQUIRE(got.size() == want.size());
  double worst = 0.0;
  std::size_t at = 0;
  for (std::size_t k = 0; k < got.size(); ++k) {
    const double err = std::abs(static_cast<double>(got[k]) - want[k]) / (rtol * std::abs(want[k]) + atol);
    if (!(err <= worst)) worst = err, at = k;
  }
  INFO(what << ": worst element " << at << ": got " << static_cast<double>(got[at]) << ", want " << want[at]
            << " (rtol " << rtol << ", atol " << atol << ")");
  CHECK(worst <= 1.0);
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

/// Runs every public function on the case (outputs padded: ld = C + 5) and compares with the oracle.
template <class T>
void compare(const oracle_case<T>& k, const head_out& o) {
  INFO("case " << k.tag);
  const double rtol = std::is_same<T, float>::value ? 1e-5 : 1e-10;
  const batch<T>& b = k.b;
  const index_t n = b.n, c = b.c, ld = c + 5;
  const std::vector<T> w = k.w(), gup = k.gup();
  std::vector<T> logits(n * ld), gl(n * ld), grad(n * ld), loss(n), entropy(n), pgt(n), lse(n);
  margin_logits(cpu, b.view(), b.yv(), k.m, matrix_view<T>(logits.data(), n, c, ld));
  std::vector<T> gup_padded(n * ld);  // every view padded (ld = C + 5)
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < c; ++j) gup_padded[i * ld + j] = gup[i * c + j];
  margin_logits_backward(cpu, b.view(), b.yv(), k.m, matrix_view<const T>(gup_padded.data(), n, c, ld),
                         matrix_view<T>(gl.data(), n, c, ld));
  margin_ce_forward(cpu, b.view(), b.yv(), k.m, k.eps, vector_view<T>(loss.data(), n),
                    vector_view<T>(entropy.data(), n), vector_view<T>(pgt.data(), n), vector_view<T>(lse.data(), n));
  margin_ce_backward(cpu, b.view(), b.yv(), k.m, vector_view<const T>(lse.data(), n),
                     vector_view<const T>(w.data(), n), k.gs(), matrix_view<T>(grad.data(), n, c, ld));
  auto unpad = [&](const std::vector<T>& v) {
    std::vector<T> d(static_cast<std::size_t>(n * c));
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < c; ++j) d[i * c + j] = v[i * ld + j];
    return d;
  };
  check_close("logits", unpad(logits), o.logits, rtol, rtol * 1e-2);
  check_close("margin_logits_backward", unpad(gl), o.glogits, rtol, rtol * 1e-2 * max_abs(o.glogits));
  check_close("loss", loss, o.loss, rtol, rtol * 1e-2);
  check_close("lse", lse, o.lse, rtol, rtol * 1e-2);
  check_close("p_gt", pgt, o.pgt, rtol, rtol * 1e-2);
  check_close("entropy", entropy, o.entropy, rtol, rtol * 1e-1);
  check_close("margin_ce_backward", unpad(grad), o.grad, rtol, rtol * 1e-2 * max_abs(o.grad));
}

const combined_margin arcface{64.0, 1.0, 0.5, 0.0};
const combined_margin cosface{64.0, 1.0, 0.0, 0.35};
const combined_margin combined{30.0, 1.35, 0.25, 0.15};

}  // namespace

TEMPLATE_TEST_CASE("margin head matches PyTorch autograd of the insightface formula (float64 oracle)", "[arcface]",
                   float, double) {
  using T = TestType;
  const std::vector<oracle_case<T>> cases = {
      {"arcface_s64_m05_eps1e-5", batch<T>(23, 301, 11), arcface, 1e-5},
      {"cosface_m3_035_eps0", batch<T>(19, 97, 12), cosface, 0.0},
      {"combined_m1_135_m2_025_m3_015_s30_eps1e-3", batch<T>(17, 130, 13), combined, 1e-3},
      {"near_uniform_s2_c4099", batch<T>(5, 4099, 14), combined_margin{2.0, 1.0, 0.5, 0.0}, 1e-5},
  };
  std::vector<head_out> out;
  if (!run_oracle(cases, out)) return;
  for (std::size_t k = 0; k < cases.size(); ++k) compare(cases[k], out[k]);
}

TEMPLATE_TEST_CASE("straight-through margin gradient matches arcface_torch's no_grad margin (float64 oracle)",
                   "[arcface]", float, double) {
  using T = TestType;
  auto st = [](combined_margin m) {
    m.straight_through = true;
    return m;
  };
  const std::vector<oracle_case<T>> cases = {
      {"st_arcface_s64_m05_eps1e-5", batch<T>(23, 301, 11), st(arcface), 1e-5},
      {"st_combined_s30_eps1e-3", batch<T>(17, 130, 13), st(combined), 1e-3},
  };
  std::vector<head_out> out;
  if (!run_oracle(cases, out)) return;
  for (std::size_t k = 0; k < cases.size(); ++k) compare(cases[k], out[k]);
  // The switch changes the label column's gradient only: the exact head must differ there (else the test
  // above could not tell the two modes apart), and agree everywhere else.
  const auto& b = cases[0].b;
  const index_t n = b.n, c = b.c;
  std::vector<T> lse(n), loss(n), g_exact(n * c), g_st(n * c);
  margin_ce_forward(cpu, b.view(), b.yv(), arcface, 0.0, vector_view<T>(loss.data(), n), {}, {},
                    vector_view<T>(lse.data(), n));
  std::vector<T> loss_st(n), lse_st(n);
  margin_ce_forward(cpu, b.view(), b.yv(), st(arcface), 0.0, vector_view<T>(loss_st.data(), n), {}, {},
                    vector_view<T>(lse_st.data(), n));
  CHECK(loss == loss_st);
  CHECK(lse == lse_st);
  margin_ce_backward(cpu, b.view(), b.yv(), arcface, vector_view<const T>(lse.data(), n), vector_view<const T>{}, 1.0,
                     matrix_view<T>(g_exact.data(), n, c, c));
  margin_ce_backward(cpu, b.view(), b.yv(), st(arcface), vector_view<const T>(lse.data(), n), vector_view<const T>{},
                     1.0, matrix_view<T>(g_st.data(), n, c, c));
  index_t differ = 0;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < c; ++j) {
      if (j == b.labels[i]) differ += g_exact[i * c + j] != g_st[i * c + j];
      else CHECK(g_exact[i * c + j] == g_st[i * c + j]);
    }
  CHECK(differ > n / 2);
}

// The differentiated function: sum_i w_i g_i with g_i the loss of a class label, the row's lse for label -1
// (target on another shard: the gradient of this shard's part of the softmax) and 0 for ignore_label.
TEST_CASE("gradients of the combined margin match central finite differences in double", "[arcface]") {
  const combined_margin m{10.0, 1.35, 0.25, 0.15};
  const index_t n = 6, c = 9;
  batch<double> b(n, c, 21, 0);
  for (index_t i = 0; i < n; ++i) b.labels[i] = (i == 2) ? -1 : (i == 4) ? ignore_label : (i * 5) % c;
  b.cos[0 * c + b.labels[0]] = -0.9;  // below cos((pi - m2) / m1): the linear branch
  std::vector<double> w = uniform<double>(n, 22, 0.5, 1.5), gup = normal<double>(n * c, 23);
  const double gs = 0.25, h = 1e-5;

  auto logits_dot = [&](const std::vector<double>& x) {
    std::vector<double> z(n * c);
    margin_logits(cpu, matrix_view<const double>(x.data(), n, c), b.yv(), m, matrix_view<double>(z.data(), n, c));
    double s = 0.0;
    for (index_t k = 0; k < n * c; ++k) s += z[k] * gup[k];
    return s;
  };
  auto weighted_loss = [&](const std::vector<double>& x) {
    std::vector<double> loss(n), lse(n);
    margin_ce_forward(cpu, matrix_view<const double>(x.data(), n, c), b.yv(), m, 0.0,
                      vector_view<double>(loss.data(), n), {}, {}, vector_view<double>(lse.data(), n));
    double s = 0.0;
    for (index_t i = 0; i < n; ++i) s += w[i] * (b.labels[i] == -1 ? lse[i] : loss[i]);
    return gs * s;
  };
  std::vector<double> g1(n * c), g2(n * c), lse(n), loss(n);
  margin_logits_backward(cpu, b.view(), b.yv(), m, matrix_view<const double>(gup.data(), n, c),
                         matrix_view<double>(g1.data(), n, c));
  margin_ce_forward(cpu, b.view(), b.yv(), m, 0.0, vector_view<double>(loss.data(), n), {}, {},
                    vector_view<double>(lse.data(), n));
  margin_ce_backward(cpu, b.view(), b.yv(), m, vector_view<const double>(lse.data(), n),
                     vector_view<const double>(w.data(), n), gs, matrix_view<double>(g2.data(), n, c));
  for (index_t k = 0; k < n * c; ++k) {
    std::vector<double> xp = b.cos, xm = b.cos;
    xp[k] += h, xm[k] -= h;
    const double fd1 = (logits_dot(xp) - logits_dot(xm)) / (2 * h);
    const double fd2 = (weighted_loss(xp) - weighted_loss(xm)) / (2 * h);
    INFO("element " << k);
    CHECK(g1[k] == Approx(fd1).epsilon(1e-6).margin(1e-7));
    CHECK(g2[k] == Approx(fd2).epsilon(1e-6).margin(1e-8));  // gradients are O(s gs) = O(1)
  }
}

static_assert(ignore_label == -100, "PyTorch's default ignore_index");

// insightface Partial FC (recognition/arcface_torch/partial_fc_v2.py) on W shards of the class columns:
// each rank sets the labels of rows whose class is elsewhere to -1, all-reduces the row maxima and sums
// into the global softmax, and its local gradient is (p - [j = y]) / B. Here: shard k runs
// margin_ce_backward on its columns with its local labels (-1 for other shards' targets) and the global
// lse (logaddexp of the shards' own lse), grad_scale 1/B. Oracle: the unsharded head on the full matrix
// (itself checked against PyTorch above); the concatenated shard gradients must equal its gradient.
TEMPLATE_TEST_CASE("label -1 reproduces Partial FC's sharded gradient (oracle: the unsharded head)", "[arcface]",
                   float, double) {
  using T = TestType;
  const double tol = std::is_same<T, float>::value ? 2e-5 : 1e-11;
  const index_t n = 12, c = 50;
  batch<T> b(n, c, 61, 0);  // labels include -1 (no target on any shard) and ignore_label rows
  const std::vector<T> w = uniform<T>(n, 62, 0.5, 1.5);
  const double gs = 1.0 / static_cast<double>(n);
  for (const combined_margin& m : {arcface, combined}) {
    std::vector<T> loss(n), lse(n), g(n * c);
    margin_ce_forward(cpu, b.view(), b.yv(), m, 0.0, vector_view<T>(loss.data(), n), {}, {},
                      vector_view<T>(lse.data(), n));
    margin_ce_backward(cpu, b.view(), b.yv(), m, vector_view<const T>(lse.data(), n),
                       vector_view<const T>(w.data(), n), gs, matrix_view<T>(g.data(), n, c));
    for (const index_t shards : {index_t(2), index_t(3)}) {
      INFO(shards << " shards, margin s = " << m.s);
      std::vector<index_t> start(shards + 1);
      for (index_t k = 0; k <= shards; ++k) start[k] = k * c / shards;
      // Per shard: local labels, the shard's own lse; then the global lse as Partial FC all-reduces it.
      std::vector<std::vector<std::int64_t>> local(shards, std::vector<std::int64_t>(n));
      std::vector<double> global(n, -std::numeric_limits<double>::infinity());
      for (index_t k = 0; k < shards; ++k) {
        const index_t c0 = start[k], ck = start[k + 1] - c0;
        for (index_t i = 0; i < n; ++i) {
          const std::int64_t y = b.labels[i];
          local[k][i] = (y >= c0 && y < c0 + ck) ? y - c0 : (y == ignore_label ? ignore_label : -1);
        }
        std::vector<T> lk(n), sk(n);
        margin_ce_forward(cpu, matrix_view<const T>(b.cos.data() + c0, n, ck, c),
                          vector_view<const std::int64_t>(local[k].data(), n), m, 0.0, vector_view<T>(lk.data(), n),
                          {}, {}, vector_view<T>(sk.data(), n));
        for (index_t i = 0; i < n; ++i) {
          const double a = global[i], x = static_cast<double>(sk[i]), top = std::max(a, x);
          global[i] = top + std::log(std::exp(a - top) + std::exp(x - top));
        }
      }
      std::vector<T> glse(n);
      for (index_t i = 0; i < n; ++i) {
        glse[i] = static_cast<T>(global[i]);
        CHECK(static_cast<double>(glse[i]) == Approx(static_cast<double>(lse[i])).epsilon(tol));
      }
      std::vector<T> gsh(n * c, T(9));
      for (index_t k = 0; k < shards; ++k) {
        const index_t c0 = start[k], ck = start[k + 1] - c0;
        margin_ce_backward(cpu, matrix_view<const T>(b.cos.data() + c0, n, ck, c),
                           vector_view<const std::int64_t>(local[k].data(), n), m,
                           vector_view<const T>(glse.data(), n), vector_view<const T>(w.data(), n), gs,
                           matrix_view<T>(gsh.data() + c0, n, ck, c));
      }
      double scale = 0.0;
      for (T v : g) scale = std::max(scale, std::abs(static_cast<double>(v)));
      for (index_t k = 0; k < n * c; ++k) {
        INFO("element (" << k / c << ", " << k % c << "), label " << b.labels[k / c]);
        CHECK(static_cast<double>(gsh[k]) == Approx(static_cast<double>(g[k])).epsilon(tol).margin(tol * scale));
      }
    }
  }
}

TEMPLATE_TEST_CASE("cos = +1 and -1 at the label give finite logits and gradients (floored sin theta)", "[arcface]",
                   float, double) {
  using T = TestType;
  const index_t n = 4, c = 5;
  std::vector<T> cos = {1, 0.2f, -0.3f, 0.1f, 0,   -1, 0.2f, 0.3f, 0.1f, 0,
                        0.1f, 1, 0.5f, 0, 0,      0.1f, 0.2f, -1, 0, 0.3f};
  std::vector<std::int32_t> labels = {0, 0, 1, 2};
  const matrix_view<const T> cv(cos.data(), n, c);
  const vector_view<const std::int32_t> yv(labels.data(), n);
  for (const combined_margin& m : {arcface, combined}) {
    std::vector<T> z(n * c), gup(n * c, T(1)), gz(n * c), loss(n), ent(n), pgt(n), lse(n), g(n * c);
    margin_logits(cpu, cv, yv, m, matrix_view<T>(z.data(), n, c));
    margin_logits_backward(cpu, cv, yv, m, matrix_view<const T>(gup.data(), n, c), matrix_view<T>(gz.data(), n, c));
    margin_ce_forward(cpu, cv, yv, m, 1e-5, vector_view<T>(loss.data(), n), vector_view<T>(ent.data(), n),
                      vector_view<T>(pgt.data(), n), vector_view<T>(lse.data(), n));
    margin_ce_backward(cpu, cv, yv, m, vector_view<const T>(lse.data(), n), vector_view<const T>(), 1.0,
                       matrix_view<T>(g.data(), n, c));
    for (index_t k = 0; k < n * c; ++k) {
      INFO("element " << k);
      CHECK(std::isfinite(z[k]));
      CHECK(std::isfinite(gz[k]));
      CHECK(std::isfinite(g[k]));
    }
    for (index_t i = 0; i < n; ++i) CHECK((std::isfinite(loss[i]) && std::isfinite(ent[i]) && std::isfinite(lse[i])));
  }
  // The documented slope at x = 1 (m1 = 1): cos m + sin m / sqrt(eps_T), x = 1 > cos(pi - m); at x = -1 the
  // linear branch, slope 1. Written from the formula, independently of the implementation.
  std::vector<T> gup(n * c, T(1)), gz(n * c);
  margin_logits_backward(cpu, cv, yv, arcface, matrix_view<const T>(gup.data(), n, c), matrix_view<T>(gz.data(), n, c));
  const double floor = std::sqrt(static_cast<double>(std::numeric_limits<T>::epsilon()));
  CHECK(gz[0] == Approx(64.0 * (std::cos(0.5) + std::sin(0.5) / floor)).epsilon(1e-6));
  CHECK(gz[5] == Approx(64.0).epsilon(1e-6));
}

TEMPLATE_TEST_CASE("degenerate batches against brute-force double formulas", "[arcface]", float, double) {
  using T = TestType;
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-12;

  SECTION("labels -1 and -100: loss 0, p_gt 0, plain-softmax entropy and lse; gradient s p (-1) or zero (-100)") {
    const index_t n = 4, c = 7;
    std::vector<T> cos = uniform<T>(n * c, 31, -0.9, 0.9);
    const std::int32_t ign = static_cast<std::int32_t>(ignore_label);
    std::vector<std::int32_t> labels = {-1, ign, ign, -1};
    std::vector<T> loss(n, T(9)), ent(n), pgt(n, T(9)), lse(n), g(n * c, T(9)), w = {T(1), T(1), T(0.5), T(0.5)};
    const matrix_view<const T> cv(cos.data(), n, c);
    const vector_view<const std::int32_t> yv(labels.data(), n);
    margin_ce_forward(cpu, cv, yv, arcface, 1e-5, vector_view<T>(loss.data(), n), vector_view<T>(ent.data(), n),
                      vector_view<T>(pgt.data(), n), vector_view<T>(lse.data(), n));
    const double gs = 0.25;
    margin_ce_backward(cpu, cv, yv, arcface, vector_view<const T>(lse.data(), n), vector_view<const T>(w.data(), n),
                       gs, matrix_view<T>(g.data(), n, c));
    for (index_t i = 0; i < n; ++i) {
      INFO("row " << i << ", label " << labels[i]);
      double mx = -1e300, sum = 0.0, h = 0.0;
      for (index_t j = 0; j < c; ++j) mx = std::max(mx, 64.0 * cos[i * c + j]);
      for (index_t j = 0; j < c; ++j) sum += std::exp(64.0 * cos[i * c + j] - mx);
      for (index_t j = 0; j < c; ++j) {
        const double p = std::exp(64.0 * cos[i * c + j] - mx) / sum;
        h -= p * std::log(p + 1e-5);
        // -1: d lse_i / d cos_ij = s p_ij (times w grad_scale); -100: exactly zero.
        if (labels[i] == -1)
          CHECK(g[i * c + j] == Approx(static_cast<double>(w[i]) * gs * 64.0 * p).epsilon(tol).margin(tol));
        else
          CHECK(g[i * c + j] == T(0));
      }
      CHECK(loss[i] == T(0));
      CHECK(pgt[i] == T(0));
      CHECK(lse[i] == Approx(mx + std::log(sum)).epsilon(tol));
      CHECK(ent[i] == Approx(h).epsilon(tol).margin(tol));
    }
    // No margin in either kind of row: logits s cos, margin_logits_backward s grad_logits.
    std::vector<T> z(n * c), gup = normal<T>(n * c, 32), gz(n * c);
    margin_logits(cpu, cv, yv, arcface, matrix_view<T>(z.data(), n, c));
    margin_logits_backward(cpu, cv, yv, arcface, matrix_view<const T>(gup.data(), n, c),
                           matrix_view<T>(gz.data(), n, c));
    for (index_t k = 0; k < n * c; ++k) {
      CHECK(z[k] == static_cast<T>(64) * cos[k]);
      CHECK(gz[k] == static_cast<T>(64) * gup[k]);
    }
  }

  SECTION("C = 1 and N = 1: p = 1, loss 0, entropy -log(1 + eps), zero gradient") {
    std::vector<T> cos = {T(0.3)}, loss(1), ent(1), pgt(1), lse(1), g(1);
    std::vector<std::int32_t> labels = {0};
    const matrix_view<const T> cv(cos.data(), 1, 1);
    const vector_view<const std::int32_t> yv(labels.data(), 1);
    margin_ce_forward(cpu, cv, yv, arcface, 1e-5, vector_view<T>(loss.data(), 1), vector_view<T>(ent.data(), 1),
                      vector_view<T>(pgt.data(), 1), vector_view<T>(lse.data(), 1));
    margin_ce_backward(cpu, cv, yv, arcface, vector_view<const T>(lse.data(), 1), vector_view<const T>(), 1.0,
                       matrix_view<T>(g.data(), 1, 1));
    const double x = 0.3, target = 64.0 * (x * std::cos(0.5) - std::sqrt(1 - x * x) * std::sin(0.5));
    CHECK(loss[0] == Approx(0.0).margin(tol));
    CHECK(pgt[0] == Approx(1.0).epsilon(tol));
    CHECK(ent[0] == Approx(-std::log1p(1e-5)).margin(2 * std::numeric_limits<T>::epsilon()));  // 1 + eps rounds in T
    CHECK(lse[0] == Approx(target).epsilon(tol));
    CHECK(g[0] == Approx(0.0).margin(64.0 * tol));  // gradients scale with s; lse is stored in T
  }

  SECTION("all-equal cosines: entropy log C (eps = 0) and -log(1/C + eps) (eps > 0)") {
    const index_t n = 3, c = 1000;
    std::vector<T> cos(n * c, T(0.25)), loss(n), ent(n), ent0(n);
    std::vector<std::int32_t> labels(n, -1);
    const matrix_view<const T> cv(cos.data(), n, c);
    const vector_view<const std::int32_t> yv(labels.data(), n);
    margin_ce_forward(cpu, cv, yv, arcface, 1e-5, vector_view<T>(loss.data(), n), vector_view<T>(ent.data(), n));
    margin_ce_forward(cpu, cv, yv, arcface, 0.0, vector_view<T>(loss.data(), n), vector_view<T>(ent0.data(), n));
    for (index_t i = 0; i < n; ++i) {
      CHECK(ent0[i] == Approx(std::log(double(c))).epsilon(tol));
      CHECK(ent[i] == Approx(-std::log(1.0 / c + 1e-5)).epsilon(tol));
    }
  }

  SECTION("eps = 0 with underflowing probabilities: 0 log 0 = 0") {
    const index_t c = 200;
    std::vector<T> cos(c, T(-1)), loss(1), ent(1);
    cos[0] = T(1);
    cos[1] = T(0.98);
    std::vector<std::int32_t> labels = {-1};
    margin_ce_forward(cpu, matrix_view<const T>(cos.data(), 1, c), vector_view<const std::int32_t>(labels.data(), 1),
                      arcface, 0.0, vector_view<T>(loss.data(), 1), vector_view<T>(ent.data(), 1));
    const double a = std::exp(64.0 * (0.98 - 1.0)), p0 = 1 / (1 + a), p1 = a / (1 + a);  // e^-128 terms vanish
    const double h = -(p0 * std::log(p0) + p1 * std::log(p1));
    CHECK(std::isfinite(ent[0]));
    CHECK(ent[0] == Approx(h).epsilon(std::is_same<T, float>::value ? 1e-4 : 1e-10));
  }

  SECTION("huge s = 1e12: one-hot softmax, finite loss (brute-force log-sum-exp in double)") {
    const combined_margin big{1e12, 1.0, 0.5, 0.0};
    std::vector<T> cos = {T(0.3), T(0.9), T(0.5), T(0.3), T(0.9), T(0.5)}, loss(2), ent(2), pgt(2), lse(2), g(6);
    std::vector<std::int32_t> labels = {1, 0};  // row 0: the target logit is the largest; row 1: it is not
    const matrix_view<const T> cv(cos.data(), 2, 3);
    const vector_view<const std::int32_t> yv(labels.data(), 2);
    margin_ce_forward(cpu, cv, yv, big, 1e-5, vector_view<T>(loss.data(), 2), vector_view<T>(ent.data(), 2),
                      vector_view<T>(pgt.data(), 2), vector_view<T>(lse.data(), 2));
    margin_ce_backward(cpu, cv, yv, big, vector_view<const T>(lse.data(), 2), vector_view<const T>(), 1.0,
                       matrix_view<T>(g.data(), 2, 3));
    const double sd = static_cast<double>(static_cast<T>(1e12));
    auto f = [](double x) { return x * std::cos(0.5) - std::sqrt(1 - x * x) * std::sin(0.5); };
    for (index_t i = 0; i < 2; ++i) {
      std::vector<double> z(3);
      for (index_t j = 0; j < 3; ++j) z[j] = sd * static_cast<double>(cos[i * 3 + j]);
      z[labels[i]] = sd * f(static_cast<double>(cos[i * 3 + labels[i]]));
      const double mx = *std::max_element(z.begin(), z.end());
      double sum = 0.0;
      for (double v : z) sum += std::exp(v - mx);
      const double want_lse = mx + std::log(sum), want_loss = want_lse - z[labels[i]];
      INFO("row " << i);
      CHECK(lse[i] == Approx(want_lse).epsilon(1e-6));
      CHECK(loss[i] == Approx(want_loss).epsilon(1e-6).margin(1e-6));
      CHECK(pgt[i] == Approx(std::exp(-want_loss)).margin(1e-6));
      CHECK(ent[i] == Approx(-std::log1p(1e-5)).margin(1e-6));  // one-hot: -1 log(1 + eps)
      for (index_t j = 0; j < 3; ++j) CHECK(std::isfinite(g[i * 3 + j]));
    }
  }

  SECTION("weights all zero: zero gradient") {
    batch<T> b(5, 40, 41);
    std::vector<T> loss(5), lse(5), w(5, T(0)), g(5 * 40, T(7));
    margin_ce_forward(cpu, b.view(), b.yv(), arcface, 1e-5, vector_view<T>(loss.data(), 5), {}, {},
                      vector_view<T>(lse.data(), 5));
    margin_ce_backward(cpu, b.view(), b.yv(), arcface, vector_view<const T>(lse.data(), 5),
                       vector_view<const T>(w.data(), 5), 0.2, matrix_view<T>(g.data(), 5, 40));
    for (T v : g) CHECK(v == T(0));
  }
}

#if defined(_OPENMP)
TEST_CASE("results do not depend on the number of threads (the one-thread run is the oracle)", "[arcface]") {
  batch<float> b(16, 2000, 51);
  auto run = [&](int threads, std::vector<float>& out) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    const index_t n = b.n, c = b.c;
    out.assign(static_cast<std::size_t>(4 * n + n * c), 0.f);
    float* o = out.data();
    margin_ce_forward(cpu, b.view(), b.yv(), arcface, 1e-5, vector_view<float>(o, n), vector_view<float>(o + n, n),
                      vector_view<float>(o + 2 * n, n), vector_view<float>(o + 3 * n, n));
    margin_ce_backward(cpu, b.view(), b.yv(), arcface, vector_view<const float>(o + 3 * n, n),
                       vector_view<const float>(), 1.0 / n, matrix_view<float>(o + 4 * n, n, c));
    omp_set_num_threads(saved);
  };
  std::vector<float> one, two, three;
  run(1, one);
  run(2, two);
  run(3, three);
  CHECK(one == two);
  CHECK(one == three);
}
#endif

TEMPLATE_TEST_CASE("fastmath exp, exp_finite, log, log_normal are within 2 ulp of libm (long double)", "[fastmath]", float, double) {
  using T = TestType;
  auto ulp_err = [](T got, long double want) {
    const T w = static_cast<T>(want);
    const long double ulp = std::nextafter(w, std::numeric_limits<T>::infinity()) - w;
    return static_cast<double>(std::fabs(static_cast<long double>(got) - want) / ulp);
  };
  const double emax = std::log(static_cast<double>(std::numeric_limits<T>::max()));
  const double emin = std::log(static_cast<double>(std::numeric_limits<T>::min()));
  const std::size_t k = 200000;
  const std::vector<T> xs = uniform<T>(k, 61, emin, emax);
  const std::vector<double> ls = uniform<double>(k, 62, emin - 15, emax);
  std::vector<T> e(k), ef(k), l(k), ln(k), lx(k);
  for (std::size_t i = 0; i < k; ++i) lx[i] = static_cast<T>(std::exp(ls[i]));  // includes subnormals
  for (std::size_t i = 0; i < k; ++i) e[i] = fastmath::exp(xs[i]);  // loops the compiler vectorises
  for (std::size_t i = 0; i < k; ++i) ef[i] = fastmath::exp_finite(xs[i]);
  for (std::size_t i = 0; i < k; ++i) l[i] = fastmath::log(lx[i]);
  for (std::size_t i = 0; i < k; ++i) ln[i] = fastmath::log_normal(std::max(lx[i], std::numeric_limits<T>::min()));
  const double fin = (std::numeric_limits<T>::max_exponent - 0.5) * std::log(2.0);  // exp_finite's inf edge
  double we = 0.0, wf = 0.0, wl = 0.0, wn = 0.0;
  for (std::size_t i = 0; i < k; ++i) {
    const long double ex = std::exp(static_cast<long double>(xs[i])), lg = std::log(static_cast<long double>(lx[i]));
    we = std::max(we, ulp_err(e[i], ex));
    if (xs[i] < fin) wf = std::max(wf, ulp_err(ef[i], ex));
    wl = std::max(wl, ulp_err(l[i], lg));
    if (lx[i] >= std::numeric_limits<T>::min()) wn = std::max(wn, ulp_err(ln[i], lg));
  }
  CHECK(we <= 2.0);
  CHECK(wf <= 2.0);
  CHECK(wl <= 2.0);
  CHECK(wn <= 2.0);
  CHECK(fastmath::exp_finite(T(emin - 1)) == T(0));
  CHECK(fastmath::exp_finite(T(emax + 1)) == std::numeric_limits<T>::infinity());
  CHECK(fastmath::exp_finite(T(0)) == T(1));
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  CHECK(fastmath::exp(-inf) == T(0));
  CHECK(fastmath::exp(inf) == inf);
  CHECK(fastmath::exp(T(emax + 1)) == inf);
  CHECK(fastmath::exp(T(emin - 1)) == T(0));
  CHECK(std::isnan(fastmath::exp(nan)));
  CHECK(fastmath::exp(T(0)) == T(1));
  CHECK(fastmath::log(T(0)) == -inf);
  CHECK(fastmath::log(inf) == inf);
  CHECK(std::isnan(fastmath::log(T(-1))));
  CHECK(std::isnan(fastmath::log(nan)));
  CHECK(fastmath::log(T(1)) == T(0));
}

TEST_CASE("invalid arguments are rejected with the argument named", "[arcface][errors]") {
  const index_t n = 2, c = 3;
  std::vector<float> cos = {0.1f, 0.2f, 0.3f, -0.4f, 0.5f, 0.6f}, out(n * c), g(n * c, 1.f), v(n), w(n, 1.f);
  std::vector<std::int32_t> labels = {0, 2};
  const matrix_view<const float> cv(cos.data(), n, c);
  const vector_view<const std::int32_t> yv(labels.data(), n);
  const matrix_view<float> ov(out.data(), n, c);
  const matrix_view<const float> gv(g.data(), n, c);
  const vector_view<float> vv(v.data(), n);
  const vector_view<const float> wv(w.data(), n), lv(w.data(), n);
  using Catch::Contains;

  auto all = [&](matrix_view<const float> cc, vector_view<const std::int32_t> yy, combined_margin m,
                 const std::string& arg) {
    CHECK_THROWS_WITH(margin_logits(cpu, cc, yy, m, ov), Contains(arg));
    CHECK_THROWS_WITH(margin_logits_backward(cpu, cc, yy, m, gv, ov), Contains(arg));
    CHECK_THROWS_WITH(margin_ce_forward(cpu, cc, yy, m, 1e-5, vv), Contains(arg));
    CHECK_THROWS_WITH(margin_ce_backward(cpu, cc, yy, m, lv, wv, 0.5, ov), Contains(arg));
  };
  SECTION("cos outside [-1, 1], NaN, Inf: the element is named") {
    for (float bad : {1.5f, -1.0001f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      for (index_t at : {index_t(0), index_t(4), index_t(5)}) {  // label column, other column, last element
        std::vector<float> b = cos;
        b[at] = bad;
        const std::string where = "(" + std::to_string(at / c) + ", " + std::to_string(at % c) + ")";
        all(matrix_view<const float>(b.data(), n, c), yv, arcface, "cos: element " + where);
      }
    }
  }
  SECTION("labels other than -1, -100 and [0, C): the element and the accepted values are named") {
    for (std::int32_t bad : {3, 4, -2, -99, -101, std::numeric_limits<std::int32_t>::min()}) {
      std::vector<std::int32_t> y = {0, bad};
      const std::string msg = "labels: element 1 is " + std::to_string(bad) +
                              ", expected -1 (target on another shard), -100 (ignored) or a class in [0, 3)";
      all(cv, vector_view<const std::int32_t>(y.data(), n), arcface, msg);
    }
    std::vector<std::int64_t> y64 = {std::numeric_limits<std::int64_t>::min(), 0};
    CHECK_THROWS_WITH(margin_ce_forward(cpu, cv, vector_view<const std::int64_t>(y64.data(), n), arcface, 1e-5, vv),
                      Contains("labels: element 0 is " + std::to_string(y64[0])));
    all(cv, vector_view<const std::int32_t>(labels.data(), 1), arcface, "labels");
    // -1 and -100 are accepted by all four.
    std::vector<std::int32_t> ok = {-1, -100};
    const vector_view<const std::int32_t> okv(ok.data(), n);
    CHECK_NOTHROW(margin_logits(cpu, cv, okv, arcface, ov));
    CHECK_NOTHROW(margin_logits_backward(cpu, cv, okv, arcface, gv, ov));
    CHECK_NOTHROW(margin_ce_forward(cpu, cv, okv, arcface, 1e-5, vv));
    CHECK_NOTHROW(margin_ce_backward(cpu, cv, okv, arcface, lv, wv, 0.5, ov));
  }
  SECTION("margin parameters: s <= 0 or not finite, m1 <= 0, m2 / m3 not finite") {
    all(cv, yv, combined_margin{0.0, 1.0, 0.5, 0.0}, "margin.s");
    all(cv, yv, combined_margin{-64.0, 1.0, 0.5, 0.0}, "margin.s");
    all(cv, yv, combined_margin{std::numeric_limits<double>::infinity(), 1.0, 0.5, 0.0}, "margin.s");
    all(cv, yv, combined_margin{1e300, 1.0, 0.5, 0.0}, "margin.s");  // not finite in float
    all(cv, yv, combined_margin{64.0, 0.0, 0.5, 0.0}, "margin.m1");
    all(cv, yv, combined_margin{64.0, 1.0, std::numeric_limits<double>::quiet_NaN(), 0.0}, "margin.m2");
    all(cv, yv, combined_margin{64.0, 1.0, 0.5, std::numeric_limits<double>::infinity()}, "margin.m3");
  }
  SECTION("shape mismatches") {
    std::vector<float> big(3 * 4);
    const matrix_view<float> wrong(big.data(), 3, 3);
    CHECK_THROWS_WITH(margin_logits(cpu, cv, yv, arcface, wrong), Contains("logits"));
    CHECK_THROWS_WITH(margin_logits_backward(cpu, cv, yv, arcface, matrix_view<const float>(big.data(), 2, 4), ov),
                      Contains("grad_logits"));
    CHECK_THROWS_WITH(margin_logits_backward(cpu, cv, yv, arcface, gv, wrong), Contains("grad_cos"));
    CHECK_THROWS_WITH(margin_ce_forward(cpu, cv, yv, arcface, 1e-5, vector_view<float>(v.data(), 1)), Contains("loss"));
    CHECK_THROWS_WITH(margin_ce_forward(cpu, cv, yv, arcface, 1e-5, vv, vector_view<float>(big.data(), 3)),
                      Contains("entropy"));
    CHECK_THROWS_WITH(margin_ce_forward(cpu, cv, yv, arcface, 1e-5, vv, {}, vector_view<float>(big.data(), 3)),
                      Contains("p_gt"));
    CHECK_THROWS_WITH(margin_ce_forward(cpu, cv, yv, arcface, 1e-5, vv, {}, {}, vector_view<float>(big.data(), 1)),
                      Contains("lse"));
    CHECK_THROWS_WITH(margin_ce_backward(cpu, cv, yv, arcface, vector_view<const float>(w.data(), 1), wv, 1.0, ov),
                      Contains("lse"));
    CHECK_THROWS_WITH(margin_ce_backward(cpu, cv, yv, arcface, lv, vector_view<const float>(big.data(), 3), 1.0, ov),
                      Contains("weights"));
    CHECK_THROWS_WITH(margin_ce_backward(cpu, cv, yv, arcface, lv, wv, 1.0, wrong), Contains("grad_cos"));
    CHECK_THROWS_WITH(margin_logits(cpu, matrix_view<const float>(cos.data(), 2, 0), yv, arcface, ov), Contains("cos"));
    CHECK_THROWS_WITH(margin_logits(cpu, matrix_view<const float>(cos.data(), 2, 3, 2), yv, arcface, ov),
                      Contains("cos: leading dimension"));
  }
  SECTION("entropy_eps, lse, weights, grad_scale values") {
    CHECK_THROWS_WITH(margin_ce_forward(cpu, cv, yv, arcface, -1e-5, vv), Contains("entropy_eps"));
    CHECK_THROWS_WITH(margin_ce_forward(cpu, cv, yv, arcface, std::numeric_limits<double>::quiet_NaN(), vv),
                      Contains("entropy_eps"));
    CHECK_THROWS_WITH(margin_ce_forward(cpu, cv, yv, arcface, 1e300, vv), Contains("entropy_eps"));
    std::vector<float> bad = {0.f, std::numeric_limits<float>::quiet_NaN()};
    const vector_view<const float> bv(bad.data(), n);
    CHECK_THROWS_WITH(margin_ce_backward(cpu, cv, yv, arcface, bv, wv, 1.0, ov), Contains("lse: element 1"));
    CHECK_THROWS_WITH(margin_ce_backward(cpu, cv, yv, arcface, lv, bv, 1.0, ov), Contains("weights: element 1"));
    CHECK_THROWS_WITH(margin_ce_backward(cpu, cv, yv, arcface, lv, wv, std::numeric_limits<double>::infinity(), ov),
                      Contains("grad_scale"));
  }
}
