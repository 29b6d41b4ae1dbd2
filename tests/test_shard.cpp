// Tests of the class-sharded head primitives (include/topofr/shard.hpp). Oracle: the single-process fused
// head (margin_ce_forward / margin_ce_backward on the whole N x C matrix); W shards are simulated by column
// slices of one cosine matrix (matrix_view with ld = C). shard_range against its formula by brute force.
#include "support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <topofr/arcface.hpp>
#include <topofr/shard.hpp>

using namespace topofr;
using namespace topofr::test;

namespace {

template <class T>
struct tol;
template <>
struct tol<double> {
  static constexpr double rel = 1e-12, floor = 1e-300;
};
template <>
struct tol<float> {
  static constexpr double rel = 1e-5, floor = 1e-20;  // below it, float's exp flushes / is subnormal
};

/// |a - b| <= tol max(|b|, floor).
template <class T>
bool close(double a, double b, double floor) {
  return std::abs(a - b) <= tol<T>::rel * std::max(std::abs(b), floor);
}

/// A cosine batch (n x c, contiguous) with the given global labels; targets spread over both branches.
template <class T>
std::vector<T> make_cos(index_t n, index_t c, const std::vector<std::int64_t>& labels, std::uint64_t seed) {
  auto g = normal<double>(static_cast<std::size_t>(n * c), seed, 0.3);
  auto t = uniform<double>(static_cast<std::size_t>(n), seed + 1, -0.99, 0.99);
  std::vector<T> cos(g.size());
  for (std::size_t k = 0; k < g.size(); ++k) cos[k] = static_cast<T>(std::clamp(g[k], -0.999, 0.999));
  for (index_t i = 0; i < n; ++i) {
    const auto yi = labels[static_cast<std::size_t>(i)];
    if (yi >= 0) cos[static_cast<std::size_t>(i * c + yi)] = static_cast<T>(t[static_cast<std::size_t>(i)]);
  }
  if (n > 1 && labels[1] >= 0) cos[static_cast<std::size_t>(c + labels[1])] = static_cast<T>(-0.95);  // second branch
  return cos;
}

struct sharded_out {
  std::vector<double> lse, loss, pgt, h0, heps, grad;
};

/// The sharded pipeline for W ranks, every rank on its column slice of one cosine matrix.
template <class T>
sharded_out run_sharded(const std::vector<T>& cos, index_t n, index_t c, const std::vector<std::int64_t>& labels,
                        const combined_margin& m, index_t world, double eps, double gs,
                        std::vector<std::vector<std::int64_t>>* locals = nullptr) {
  std::vector<shard_row_stats> stats(static_cast<std::size_t>(world * n));
  std::vector<std::vector<std::int64_t>> local(static_cast<std::size_t>(world));
  std::vector<class_range> ranges;
  for (index_t r = 0; r < world; ++r) {
    const class_range cr = shard_range(c, world, r);
    ranges.push_back(cr);
    auto& lr = local[static_cast<std::size_t>(r)];
    lr.resize(static_cast<std::size_t>(n));
    localize_labels(cpu, vector_view<const std::int64_t>(labels.data(), n), cr, c,
                    vector_view<std::int64_t>(lr.data(), n));
    matrix_view<const T> slice(cos.data() + cr.begin, n, cr.size(), c);
    shard_stats(cpu, slice, vector_view<const std::int64_t>(lr.data(), n), m,
                vector_view<shard_row_stats>(stats.data() + r * n, n));
  }
  std::vector<T> lse(static_cast<std::size_t>(n)), loss(lse.size()), pgt(lse.size()), h0(lse.size());
  combine_shard_stats(stats.data(), world, n, vector_view<T>(lse.data(), n), vector_view<T>(loss.data(), n),
                      vector_view<T>(pgt.data(), n), vector_view<T>(h0.data(), n));
  // eps entropy: one partial per rank, summed in rank order (the all-reduce), negated.
  std::vector<double> heps(static_cast<std::size_t>(n), 0.0), part(static_cast<std::size_t>(n));
  sharded_out o;
  o.grad.assign(static_cast<std::size_t>(n * c), 0.0);
  for (index_t r = 0; r < world; ++r) {
    const class_range cr = ranges[static_cast<std::size_t>(r)];
    matrix_view<const T> slice(cos.data() + cr.begin, n, cr.size(), c);
    const vector_view<const std::int64_t> lv(local[static_cast<std::size_t>(r)].data(), n);
    shard_entropy_eps_partial(cpu, slice, lv, m, vector_view<const T>(lse.data(), n), eps,
                              vector_view<double>(part.data(), n));
    for (index_t i = 0; i < n; ++i) heps[static_cast<std::size_t>(i)] -= part[static_cast<std::size_t>(i)];
    std::vector<T> g(static_cast<std::size_t>(n * cr.size()));
    margin_ce_backward(cpu, slice, lv, m, vector_view<const T>(lse.data(), n), vector_view<const T>(), gs,
                       matrix_view<T>(g.data(), n, cr.size()));
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < cr.size(); ++j)
        o.grad[static_cast<std::size_t>(i * c + cr.begin + j)] =
            static_cast<double>(g[static_cast<std::size_t>(i * cr.size() + j)]);
  }
  o.lse.assign(lse.begin(), lse.end());
  o.loss.assign(loss.begin(), loss.end());
  o.pgt.assign(pgt.begin(), pgt.end());
  o.h0.assign(h0.begin(), h0.end());
  o.heps = heps;
  if (locals) *locals = local;
  return o;
}

/// The whole-matrix head: the oracle.
template <class T>
sharded_out run_whole(const std::vector<T>& cos, index_t n, index_t c, const std::vector<std::int64_t>& labels,
                      const combined_margin& m, double eps, double gs, std::vector<T>* lse_out = nullptr) {
  const matrix_view<const T> cv(cos.data(), n, c);
  const vector_view<const std::int64_t> yv(labels.data(), n);
  std::vector<T> lse(static_cast<std::size_t>(n)), loss(lse.size()), pgt(lse.size()), h0(lse.size()), heps(lse.size());
  margin_ce_forward(cpu, cv, yv, m, 0.0, vector_view<T>(loss.data(), n), vector_view<T>(h0.data(), n),
                    vector_view<T>(pgt.data(), n), vector_view<T>(lse.data(), n));
  std::vector<T> loss2(lse.size());
  margin_ce_forward(cpu, cv, yv, m, eps, vector_view<T>(loss2.data(), n), vector_view<T>(heps.data(), n));
  std::vector<T> g(static_cast<std::size_t>(n * c));
  margin_ce_backward(cpu, cv, yv, m, vector_view<const T>(lse.data(), n), vector_view<const T>(), gs,
                     matrix_view<T>(g.data(), n, c));
  sharded_out o;
  o.lse.assign(lse.begin(), lse.end());
  o.loss.assign(loss.begin(), loss.end());
  o.pgt.assign(pgt.begin(), pgt.end());
  o.h0.assign(h0.begin(), h0.end());
  o.heps.assign(heps.begin(), heps.end());
  o.grad.assign(g.begin(), g.end());
  if (lse_out) *lse_out = lse;
  return o;
}

template <class T>
void check_vec(const std::vector<double>& a, const std::vector<double>& b, double floor, const std::string& what) {
  REQUIRE(a.size() == b.size());
  std::size_t bad = 0;
  double worst = 0.0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (!close<T>(a[k], b[k], floor)) ++bad;
    worst = std::max(worst, std::abs(a[k] - b[k]) / std::max(std::abs(b[k]), floor));
  }
  INFO(what << ": worst relative error " << worst);
  CHECK(bad == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("sharded head equals the whole-matrix head (W = 1, 2, 3, 5)", "[shard]", float, double) {
  using T = TestType;
  const combined_margin arcface{}, cosface{64.0, 1.0, 0.0, 0.35};
  struct label_case {
    std::string name;
    index_t c;
    std::vector<std::int64_t> labels;
  };
  std::vector<label_case> cases;
  {
    // C = 10 (uneven for W = 3), a -100 row, a -1 row, labels everywhere.
    cases.push_back({"mixed C=10", 10, {3, 9, 0, ignore_label, 5, -1, 7, 1, 4, 8, 2, 6}});
    // all labels on the first shard of every W (class 0 and 1 are on rank 0 for C = 10, W <= 5).
    cases.push_back({"one shard C=10", 10, {0, 1, 1, 0, ignore_label, 0, 1, 0}});
    // C = 37: uneven for every W > 1.
    std::vector<std::int64_t> y;
    auto u = uniform<double>(20, 99, 0.0, 1.0);
    for (std::size_t i = 0; i < u.size(); ++i)
      y.push_back(i == 6 ? ignore_label : std::min<std::int64_t>(36, static_cast<std::int64_t>(u[i] * 37)));
    cases.push_back({"random C=37", 37, y});
  }
  for (const auto& lc : cases)
    for (int mk = 0; mk < 2; ++mk) {
      const combined_margin& m = mk == 0 ? arcface : cosface;
      const index_t n = static_cast<index_t>(lc.labels.size()), c = lc.c;
      const auto cos = make_cos<T>(n, c, lc.labels, 17 + static_cast<std::uint64_t>(c));
      const double gs = 1.0 / static_cast<double>(n), eps = 1e-5;
      std::vector<T> whole_lse;
      const sharded_out ref = run_whole(cos, n, c, lc.labels, m, eps, gs, &whole_lse);
      for (index_t world : {1, 2, 3, 5}) {
        INFO(lc.name << (mk == 0 ? " ArcFace" : " CosFace") << " W = " << world);
        std::vector<std::vector<std::int64_t>> locals;
        const sharded_out got = run_sharded(cos, n, c, lc.labels, m, world, eps, gs, &locals);
        check_vec<T>(got.lse, ref.lse, 1.0, "lse");
        check_vec<T>(got.loss, ref.loss, 1.0, "loss");
        check_vec<T>(got.pgt, ref.pgt, 1.0, "p_gt");
        check_vec<T>(got.h0, ref.h0, 1.0, "entropy (eps = 0)");
        check_vec<T>(got.heps, ref.heps, 1.0, "entropy (eps = 1e-5)");
        check_vec<T>(got.grad, ref.grad, tol<T>::floor, "grad_cos");
        // Every row's target is local on exactly one rank (none for -1 and -100).
        for (index_t i = 0; i < n; ++i) {
          int owners = 0;
          for (const auto& l : locals) owners += l[static_cast<std::size_t>(i)] >= 0;
          CHECK(owners == (lc.labels[static_cast<std::size_t>(i)] >= 0 ? 1 : 0));
        }
        if (world == 1) {
          // W = 1: the local labels are the global ones, so the backward from the head's own lse is the
          // head's backward bitwise.
          CHECK(locals[0] == lc.labels);
          std::vector<T> g(static_cast<std::size_t>(n * c));
          margin_ce_backward(cpu, matrix_view<const T>(cos.data(), n, c),
                             vector_view<const std::int64_t>(locals[0].data(), n), m,
                             vector_view<const T>(whole_lse.data(), n), vector_view<const T>(), gs,
                             matrix_view<T>(g.data(), n, c));
          bool same = true;
          for (std::size_t k = 0; k < g.size(); ++k) same &= static_cast<double>(g[k]) == ref.grad[k];
          CHECK(same);
        }
      }
    }
}

TEST_CASE("combine_shard_stats: fixed rank order, empty outputs, ignored rows", "[shard]") {
  // Two ranks, three rows: target on rank 1, on rank 0, on none.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<shard_row_stats> st = {
      {1.0, 2.0, -0.5, nan}, {3.0, 1.5, -0.1, 2.5}, {0.0, 1.0, 0.0, nan},  // rank 0
      {2.0, 1.0, 0.0, 1.5},  {0.5, 3.0, -1.0, nan}, {0.0, 1.0, 0.0, nan},  // rank 1
  };
  std::vector<double> lse(3), loss(3), pgt(3), h(3);
  combine_shard_stats(st.data(), 2, 3, vector_view<double>(lse.data(), 3), vector_view<double>(loss.data(), 3),
                      vector_view<double>(pgt.data(), 3), vector_view<double>(h.data(), 3));
  // Brute force row 0: M = 2, S = 2 e^-1 + 1.
  const double s0 = 2.0 * std::exp(-1.0) + 1.0;
  CHECK(rel(lse[0], 2.0 + std::log(s0)) < 1e-15);
  CHECK(rel(loss[0], 2.0 + std::log(s0) - 1.5) < 1e-15);
  CHECK(rel(pgt[0], std::exp(1.5 - lse[0])) < 1e-14);
  // entropy = lse - sum_r e^(max_r - M)(sum_exp_z_r + max_r sum_exp_r) / S (unshifted form).
  CHECK(rel(h[0], lse[0] - (std::exp(-1.0) * (-0.5 + 1.0 * 2.0) + (0.0 + 2.0 * 1.0)) / s0) < 1e-14);
  CHECK(loss[2] == 0.0);
  CHECK(pgt[2] == 0.0);
  CHECK(rel(lse[2], std::log(2.0)) < 1e-15);
  CHECK(rel(h[2], std::log(2.0)) < 1e-15);
  // Only the lse.
  std::vector<double> lse2(3);
  combine_shard_stats(st.data(), 2, 3, vector_view<double>(lse2.data(), 3));
  CHECK(lse2 == lse);
  // A target on two ranks is an error.
  st[3].target = 0.5;
  st[0].target = 0.5;
  CHECK_THROWS_WITH(combine_shard_stats(st.data(), 2, 3, vector_view<double>(lse2.data(), 3)),
                    Catch::Contains("per_rank: row 0 has a target on ranks 0 and 1"));
}

TEST_CASE("shard_range equals insightface's split for many (C, W)", "[shard]") {
  for (index_t c = 1; c <= 60; ++c)
    for (index_t w = 1; w <= c; ++w) {
      index_t next = 0;
      for (index_t r = 0; r < w; ++r) {
        const class_range cr = shard_range(c, w, r);
        const index_t q = c / w, rem = c % w;
        const index_t size = q + (r < rem ? 1 : 0), begin = q * r + std::min(r, rem);
        REQUIRE(cr.begin == begin);
        REQUIRE(cr.size() == size);
        REQUIRE(cr.begin == next);  // contiguous, in rank order, covering [0, C)
        next = cr.end;
      }
      REQUIRE(next == c);
    }
  const class_range big = shard_range(85742, 8, 7);
  CHECK(big.begin == 10717 * 7 + 6);
  CHECK(big.size() == 10717);
}

TEST_CASE("localize_labels maps, aliases and rejects", "[shard]") {
  const std::vector<std::int32_t> y = {0, 3, 4, 9, -1, -100, 6};
  const class_range cr = shard_range(10, 3, 1);  // [4, 7)
  REQUIRE(cr.begin == 4);
  REQUIRE(cr.end == 7);
  std::vector<std::int32_t> out(y.size());
  localize_labels(cpu, vector_view<const std::int32_t>(y.data(), 7), cr, 10, vector_view<std::int32_t>(out.data(), 7));
  CHECK(out == std::vector<std::int32_t>{-1, -1, 0, -1, -1, -100, 2});
  std::vector<std::int32_t> alias = y;  // in place
  localize_labels(cpu, vector_view<const std::int32_t>(alias.data(), 7), cr, 10,
                  vector_view<std::int32_t>(alias.data(), 7));
  CHECK(alias == out);
}

TEST_CASE("shard errors name the argument and the value", "[shard]") {
  using Catch::Contains;
  CHECK_THROWS_AS(shard_range(3, 4, 0), topofr::error);
  CHECK_THROWS_WITH(shard_range(3, 4, 0), Contains("topofr::shard_range: classes: world > number of classes"));
  CHECK_THROWS_WITH(shard_range(10, 3, 3), Contains("topofr::shard_range: rank: must be in [0, world = 3), got 3"));
  CHECK_THROWS_WITH(shard_range(10, 3, -1), Contains("rank: must be in [0, world = 3), got -1"));
  CHECK_THROWS_WITH(shard_range(10, 0, 0), Contains("topofr::shard_range: world: must be >= 1, got 0"));

  const class_range cr = shard_range(10, 2, 0);
  std::vector<std::int64_t> y = {1, 10}, out(2, 42);
  CHECK_THROWS_WITH(localize_labels(cpu, vector_view<const std::int64_t>(y.data(), 2), cr, 10,
                                    vector_view<std::int64_t>(out.data(), 2)),
                    Contains("topofr::localize_labels: labels: element 1 is 10"));
  CHECK(out == std::vector<std::int64_t>{42, 42});  // nothing written
  y = {-2, 0};
  CHECK_THROWS_WITH(localize_labels(cpu, vector_view<const std::int64_t>(y.data(), 2), cr, 10,
                                    vector_view<std::int64_t>(out.data(), 2)),
                    Contains("labels: element 0 is -2"));
  CHECK_THROWS_WITH(localize_labels(cpu, vector_view<const std::int64_t>(y.data(), 2), cr, 10,
                                    vector_view<std::int64_t>(out.data(), 1)),
                    Contains("localize_labels: local: expected size 2, got 1"));

  // shard_stats: the head's checks (a cosine out of range, a label outside the shard).
  std::vector<double> cos = {0.1, 0.2, 1.5, 0.0};
  std::vector<std::int64_t> lab = {0, 1};
  std::vector<shard_row_stats> st(2);
  CHECK_THROWS_WITH(shard_stats(cpu, matrix_view<const double>(cos.data(), 2, 2),
                                vector_view<const std::int64_t>(lab.data(), 2), combined_margin{},
                                vector_view<shard_row_stats>(st.data(), 2)),
                    Contains("topofr::shard_stats: cos: element (1, 0) is 1.5"));
  cos[2] = 0.3;
  lab[1] = 2;  // a global label not localized
  CHECK_THROWS_WITH(shard_stats(cpu, matrix_view<const double>(cos.data(), 2, 2),
                                vector_view<const std::int64_t>(lab.data(), 2), combined_margin{},
                                vector_view<shard_row_stats>(st.data(), 2)),
                    Contains("topofr::shard_stats: labels: element 1 is 2"));
  lab[1] = 1;
  std::vector<double> lse = {1.0, std::nan("")}, part(2);
  CHECK_THROWS_WITH(shard_entropy_eps_partial(cpu, matrix_view<const double>(cos.data(), 2, 2),
                                              vector_view<const std::int64_t>(lab.data(), 2), combined_margin{},
                                              vector_view<const double>(lse.data(), 2), 1e-5,
                                              vector_view<double>(part.data(), 2)),
                    Contains("topofr::shard_entropy_eps_partial: lse_global: element 1 is not finite"));
  lse[1] = 1.0;
  CHECK_THROWS_WITH(shard_entropy_eps_partial(cpu, matrix_view<const double>(cos.data(), 2, 2),
                                              vector_view<const std::int64_t>(lab.data(), 2), combined_margin{},
                                              vector_view<const double>(lse.data(), 2), -1.0,
                                              vector_view<double>(part.data(), 2)),
                    Contains("entropy_eps: must be >= 0"));
  for (double eps : {1e-5, 0.0}) {  // both paths (lanes for eps >= the smallest normal, else element-wise)
    cos[1] = -1.25;
    CHECK_THROWS_WITH(shard_entropy_eps_partial(cpu, matrix_view<const double>(cos.data(), 2, 2),
                                                vector_view<const std::int64_t>(lab.data(), 2), combined_margin{},
                                                vector_view<const double>(lse.data(), 2), eps,
                                                vector_view<double>(part.data(), 2)),
                      Contains("topofr::shard_entropy_eps_partial: cos: element (0, 1) is -1.25"));
    cos[1] = 0.2;
  }
  CHECK_THROWS_WITH(combine_shard_stats(st.data(), 0, 2, vector_view<double>(lse.data(), 2)),
                    Contains("topofr::combine_shard_stats: world: must be >= 1, got 0"));
}

namespace {
/// Oracle for partial_fc_sample: partial_fc_v2.py's PartialFC_V2.sample written out plainly, with the keys
/// drawn from the documented stream: perm[j] = uniform, perm[positive] = 2.0, the num_sample largest (a
/// stable sort, so ties go to the lower class), sorted; labels mapped by a linear search.
std::vector<index_t> reference_sample(const std::vector<std::int64_t>& y, class_range sh, index_t num_sample,
                                      std::uint64_t seed, std::uint64_t step, std::vector<std::int64_t>& mapped) {
  const index_t c = sh.size();
  std::vector<double> perm(static_cast<std::size_t>(c));
  for (index_t j = 0; j < c; ++j)
    perm[static_cast<std::size_t>(j)] =
        counter_rng(seed, static_cast<std::uint64_t>(sh.begin + j) + (std::uint64_t(1) << 32), step).uniform();
  std::vector<index_t> positive;
  for (const std::int64_t v : y)
    if (v >= 0) perm[static_cast<std::size_t>(v)] = 2.0;
  for (index_t j = 0; j < c; ++j)
    if (perm[static_cast<std::size_t>(j)] == 2.0) positive.push_back(j);
  std::vector<index_t> index;
  if (num_sample >= static_cast<index_t>(positive.size())) {
    std::vector<index_t> all(static_cast<std::size_t>(c));
    for (index_t j = 0; j < c; ++j) all[static_cast<std::size_t>(j)] = j;
    std::stable_sort(all.begin(), all.end(), [&](index_t a, index_t b) {
      return perm[static_cast<std::size_t>(a)] > perm[static_cast<std::size_t>(b)];
    });
    index.assign(all.begin(), all.begin() + num_sample);
    std::sort(index.begin(), index.end());
  } else {
    index = positive;
  }
  mapped = y;
  for (auto& v : mapped)
    if (v >= 0) v = std::find(index.begin(), index.end(), v) - index.begin();
  return index;
}
}  // namespace

TEST_CASE("partial_fc_sample equals Partial FC's sample (oracle: partial_fc_v2 written out)", "[shard]") {
  const index_t classes = 103;
  for (const index_t world : {1, 2, 4}) {
    for (index_t rank = 0; rank < world; ++rank) {
      const class_range sh = shard_range(classes, world, rank);
      for (const double rate : {0.1, 0.3, 1.0}) {
        const index_t num_sample = std::max<index_t>(1, static_cast<index_t>(rate * static_cast<double>(sh.size())));
        for (const std::uint64_t step : {0u, 1u, 7u}) {
          // Global labels of a gathered batch of 40 rows (some -100), localised to this shard.
          std::vector<std::int64_t> global(40), local(40), sampled(40), mapped;
          for (index_t i = 0; i < 40; ++i)
            global[static_cast<std::size_t>(i)] = i % 13 == 5 ? ignore_label : (i * 37 + 11) % classes;
          localize_labels(cpu, vector_view<const std::int64_t>(global.data(), 40), sh, classes,
                          vector_view<std::int64_t>(local.data(), 40));
          std::vector<index_t> index(static_cast<std::size_t>(sh.size()));
          const index_t count = partial_fc_sample(cpu, vector_view<const std::int64_t>(local.data(), 40), sh,
                                                  num_sample, 42, step, vector_view<index_t>(index.data(), sh.size()),
                                                  vector_view<std::int64_t>(sampled.data(), 40));
          const std::vector<index_t> want = reference_sample(local, sh, num_sample, 42, step, mapped);
          REQUIRE(count == static_cast<index_t>(want.size()));
          CHECK(std::equal(want.begin(), want.end(), index.begin()));
          for (index_t j = count; j < sh.size(); ++j) CHECK(index[static_cast<std::size_t>(j)] == -1);
          CHECK(sampled == mapped);
          for (index_t i = 0; i < 40; ++i) {  // a sampled label points at its class
            const std::int64_t l = local[static_cast<std::size_t>(i)], s = sampled[static_cast<std::size_t>(i)];
            if (l >= 0) CHECK(index[static_cast<std::size_t>(s)] == l);
            else CHECK(s == l);
          }
          if (rate == 1.0) CHECK(count == sh.size());
        }
      }
    }
  }
}

TEST_CASE("partial_fc_sample: more positives than num_sample, in place, determinism, errors", "[shard]") {
  const class_range sh{10, 30};  // 20 local classes
  std::vector<std::int32_t> y = {0, 3, 3, 7, 19, -1, -100, 12};
  std::vector<index_t> index(20);
  std::vector<std::int32_t> out(y.size());
  // 5 positives, num_sample 2: the sample is the positives (oracle: partial_fc_v2's else-branch).
  const index_t count =
      partial_fc_sample(cpu, vector_view<const std::int32_t>(y.data(), 8), sh, 2, 1, 0,
                        vector_view<index_t>(index.data(), 20), vector_view<std::int32_t>(out.data(), 8));
  CHECK(count == 5);
  CHECK(std::vector<index_t>(index.begin(), index.begin() + 5) == std::vector<index_t>{0, 3, 7, 12, 19});
  CHECK(out == std::vector<std::int32_t>{0, 1, 1, 2, 4, -1, -100, 3});
  // In place (sampled_labels aliasing local_labels) gives the same; the same (seed, step) the same sample,
  // another step another one (oracle: the stream contract of counter_rng).
  std::vector<std::int32_t> inplace = y;
  partial_fc_sample(cpu, vector_view<const std::int32_t>(inplace.data(), 8), sh, 2, 1, 0,
                    vector_view<index_t>(index.data(), 20), vector_view<std::int32_t>(inplace.data(), 8));
  CHECK(inplace == out);
  std::vector<index_t> a(20), b(20), c2(20);
  std::vector<std::int32_t> none(1, -1), o(1);
  auto draw = [&](std::vector<index_t>& into, std::uint64_t step) {
    partial_fc_sample(cpu, vector_view<const std::int32_t>(none.data(), 1), sh, 6, 9, step,
                      vector_view<index_t>(into.data(), 20), vector_view<std::int32_t>(o.data(), 1));
  };
  draw(a, 3);
  draw(b, 3);
  draw(c2, 4);
  CHECK(a == b);
  CHECK(a != c2);
  auto call = [&](index_t num, class_range s, std::int32_t label, index_t index_size) {
    std::vector<std::int32_t> l(1, label), r(1);
    std::vector<index_t> idx(static_cast<std::size_t>(std::max<index_t>(index_size, 0)));
    partial_fc_sample(cpu, vector_view<const std::int32_t>(l.data(), 1), s, num, 0, 0,
                      vector_view<index_t>(idx.data(), index_size), vector_view<std::int32_t>(r.data(), 1));
  };
  CHECK_THROWS_WITH(call(0, sh, 0, 20), Catch::Contains("num_sample") && Catch::Contains("got 0"));
  CHECK_THROWS_WITH(call(21, sh, 0, 20), Catch::Contains("num_sample") && Catch::Contains("got 21"));
  CHECK_THROWS_WITH(call(2, sh, 20, 20), Catch::Contains("local_labels") && Catch::Contains("is 20"));
  CHECK_THROWS_WITH(call(2, sh, -2, 20), Catch::Contains("local_labels") && Catch::Contains("is -2"));
  CHECK_THROWS_WITH(call(2, sh, 0, 19), Catch::Contains("index"));
  CHECK_THROWS_WITH(call(2, class_range{5, 5}, 0, 0), Catch::Contains("shard"));
}
