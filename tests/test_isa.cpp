// Tests of the ISA loss (include/topofr/isa.hpp). Oracles: PyTorch autograd in float64 after the released
// TopologicalSignatureDistance (tests/oracles/isa_oracle.py, with its own Kruskal), finite differences in
// double, and brute-force double computations written here (distances, the chain rule from a dense
// distance gradient to the points).
#include "support.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <topofr/isa.hpp>

using namespace topofr;
using namespace topofr::test;

namespace {

const isa_variant variants[] = {isa_variant::symmetric, isa_variant::sorted_deaths};
const reduction reductions[] = {reduction::sum, reduction::mean};

struct oracle_out {
  std::vector<double> loss;  // [variant][reduction], 2 x 2
  std::vector<double> gz;    // 2 x 2 x n x dz
  std::vector<double> gx;    // 2 x 2 x n x dx
  std::vector<edge> px, pz;  // the pairs the oracle used
};

std::vector<edge> to_edges(const std::vector<std::int64_t>& v) {
  std::vector<edge> e(v.size() / 2);
  for (std::size_t k = 0; k < e.size(); ++k)
    e[k] = {static_cast<std::int32_t>(v[2 * k]), static_cast<std::int32_t>(v[2 * k + 1])};
  return e;
}
std::vector<std::int64_t> from_edges(const std::vector<edge>& e) {
  std::vector<std::int64_t> v;
  for (edge p : e) v.push_back(p.u), v.push_back(p.v);
  return v;
}

/// Runs the PyTorch oracle on x (n x dx) and z (n x dz); pairs are the oracle's own Kruskal unless given.
template <class T>
bool run_oracle(const std::string& tag, const std::vector<T>& x, index_t dx, const std::vector<T>& z,
                index_t dz, double xs, double zs, oracle_out& o, const std::vector<edge>* px = nullptr,
                const std::vector<edge>* pz = nullptr) {
  const index_t n = static_cast<index_t>(z.size()) / dz;
  const std::string base = scratch(tag);
  save(base + "_x.npy", x, {n, dx});
  save(base + "_z.npy", z, {n, dz});
  std::vector<std::string> args = {base + "_x.npy", base + "_z.npy", detail::concat(xs), detail::concat(zs),
                                   base + "_out"};
  if (px) {
    save(base + "_px.npy", from_edges(*px), {n - 1, 2});
    save(base + "_pz.npy", from_edges(*pz), {n - 1, 2});
    args.push_back(base + "_px.npy");
    args.push_back(base + "_pz.npy");
  }
  if (!oracle("isa_oracle.py", args)) return false;
  o.loss = load<double>(base + "_out_loss.npy");
  o.gz = load<double>(base + "_out_grad_z.npy");
  o.gx = load<double>(base + "_out_grad_x.npy");
  o.px = to_edges(load<std::int64_t>(base + "_out_pairs_x.npy"));
  o.pz = to_edges(load<std::int64_t>(base + "_out_pairs_z.npy"));
  return true;
}

/// Brute-force double distances ||p_i - p_j|| / s of a padded (ld) row-major array.
template <class T>
std::vector<double> brute_dist(const std::vector<T>& p, index_t n, index_t d, double s, index_t ld = -1) {
  if (ld < 0) ld = d;
  std::vector<double> m(n * n);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      double r2 = 0;
      for (index_t k = 0; k < d; ++k) {
        const double t = double(p[i * ld + k]) - double(p[j * ld + k]);
        r2 += t * t;
      }
      m[i * n + j] = std::sqrt(r2) / s;
    }
  return m;
}

/// Brute-force chain rule of a dense gradient G w.r.t. M(i, j) = ||p_i - p_j|| / s (all entries).
std::vector<double> brute_chain(const std::vector<double>& g, const std::vector<double>& p, index_t n, index_t d,
                                double s) {
  std::vector<double> out(n * d, 0.0);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      if (g[i * n + j] == 0) continue;
      double r2 = 0;
      for (index_t k = 0; k < d; ++k) r2 += (p[i * d + k] - p[j * d + k]) * (p[i * d + k] - p[j * d + k]);
      const double r = std::sqrt(r2);
      if (r == 0) continue;
      for (index_t k = 0; k < d; ++k) {
        const double c = g[i * n + j] * (p[i * d + k] - p[j * d + k]) / (s * r);
        out[i * d + k] += c;
        out[j * d + k] -= c;
      }
    }
  return out;
}

double max_abs(const double* a, std::size_t m) {
  double r = 0;
  for (std::size_t k = 0; k < m; ++k) r = std::max(r, std::abs(a[k]));
  return r;
}

/// max_k |a_k - b_k| / max(max|b|, floor): the error relative to the gradient's size.
template <class A>
double rel_max(const A* a, const double* b, std::size_t m, double floor = 1e-300) {
  double e = 0;
  for (std::size_t k = 0; k < m; ++k) e = std::max(e, std::abs(double(a[k]) - b[k]));
  return e / std::max(max_abs(b, m), floor);
}

/// Compares isa_loss_from_points (all four variant/reduction pairs, gradients w.r.t. z and x, through
/// padded views) with the oracle.
template <class T>
void check_points_against_oracle(const std::vector<T>& x, index_t dx, const std::vector<T>& z, index_t dz,
                                 double xs, double zs, const oracle_out& o, double tol_loss, double tol_grad) {
  const index_t n = static_cast<index_t>(z.size()) / dz;
  // Our pairs must be the oracle's (a precondition: the gradients are only comparable on the same pairs).
  std::vector<T> mx(n * n), mz(n * n);
  std::vector<edge> px(n - 1), pz(n - 1);
  pairwise_distances(cpu, matrix_view<const T>(x.data(), n, dx), matrix_view<T>(mx.data(), n, n), xs);
  pairwise_distances(cpu, matrix_view<const T>(z.data(), n, dz), matrix_view<T>(mz.data(), n, n), zs);
  persistence_pairs(cpu, matrix_view<const T>(mx.data(), n, n), vector_view<edge>(px.data(), n - 1));
  persistence_pairs(cpu, matrix_view<const T>(mz.data(), n, n), vector_view<edge>(pz.data(), n - 1));
  REQUIRE(px == o.px);
  REQUIRE(pz == o.pz);

  // Padded copies: the views' leading dimension must be honoured.
  const index_t ldx = dx + 3, ldz = dz + 2;
  std::vector<T> xp(n * ldx, T(7)), zp(n * ldz, T(-7));
  for (index_t i = 0; i < n; ++i) {
    std::copy_n(&x[i * dx], dx, &xp[i * ldx]);
    std::copy_n(&z[i * dz], dz, &zp[i * ldz]);
  }
  for (int v = 0; v < 2; ++v)
    for (int r = 0; r < 2; ++r) {
      CAPTURE(v, r);
      const isa_options opt{variants[v], reductions[r], xs, zs};
      std::vector<T> gz(n * ldz, T(99)), gx(n * ldx, T(99));
      const T loss = isa_loss_from_points(cpu, matrix_view<const T>(xp.data(), n, dx, ldx),
                                          matrix_view<T>(zp.data(), n, dz, ldz), opt,
                                          matrix_view<T>(gz.data(), n, dz, ldz), matrix_view<T>(gx.data(), n, dx, ldx));
      CHECK(rel(loss, o.loss[v * 2 + r]) <= tol_loss);
      std::vector<T> gzc(n * dz), gxc(n * dx);
      for (index_t i = 0; i < n; ++i) {
        std::copy_n(&gz[i * ldz], dz, &gzc[i * dz]);
        std::copy_n(&gx[i * ldx], dx, &gxc[i * dx]);
        for (index_t k = dz; k < ldz; ++k) CHECK(gz[i * ldz + k] == T(99));  // padding untouched
      }
      CHECK(rel_max(gzc.data(), &o.gz[(v * 2 + r) * n * dz], n * dz) <= tol_grad);
      CHECK(rel_max(gxc.data(), &o.gx[(v * 2 + r) * n * dx], n * dx) <= tol_grad);
      // Without grad_x, same loss and grad_z; without any gradient, same loss.
      std::vector<T> gz2(n * dz);
      const T loss2 = isa_loss_from_points(cpu, matrix_view<const T>(x.data(), n, dx),
                                           matrix_view<const T>(z.data(), n, dz), opt,
                                           matrix_view<T>(gz2.data(), n, dz));
      CHECK(loss2 == loss);
      CHECK(gz2 == gzc);
      CHECK(isa_loss_from_points(cpu, matrix_view<const T>(x.data(), n, dx), matrix_view<const T>(z.data(), n, dz),
                                 opt) == loss);
    }
}

}  // namespace

TEST_CASE("isa_loss_from_points, double: loss and gradients vs PyTorch autograd (isa_oracle.py)", "[isa]") {
  const index_t n = 14, dx = 9, dz = 5;
  const double xs = 2.5, zs = 1.3;
  const auto x = normal<double>(n * dx, 11), z = normal<double>(n * dz, 12);
  oracle_out o;
  if (!run_oracle("pts_d", x, dx, z, dz, xs, zs, o)) return;
  check_points_against_oracle(x, dx, z, dz, xs, zs, o, 1e-10, 1e-9);
}

TEST_CASE("isa_loss_from_points, float: loss and gradients vs PyTorch autograd (isa_oracle.py)", "[isa]") {
  const index_t n = 16, dx = 12, dz = 6;
  const double xs = 3.0, zs = 1.0;
  const auto x = normal<float>(n * dx, 21), z = normal<float>(n * dz, 22);
  oracle_out o;
  if (!run_oracle("pts_f", x, dx, z, dz, xs, zs, o)) return;
  check_points_against_oracle(x, dx, z, dz, xs, zs, o, 1e-6, 1e-5);
}

TEST_CASE("isa_loss_from_points: image batch N x (C*H*W) with x_scale = image_scale vs PyTorch (isa_oracle.py)",
          "[isa]") {
  const index_t n = 6, c = 3, h = 8, w = 7, dz = 8;
  const auto x = uniform<float>(n * c * h * w, 31, -1.0, 1.0);
  const auto z = normal<float>(n * dz, 32);
  const double xs = image_scale(c, h, w);
  CHECK(xs == std::sqrt(4.0 * c * h * w));
  oracle_out o;
  if (!run_oracle("img", x, c * h * w, z, dz, xs, 1.0, o)) return;
  // The batch viewed as an NCHW image batch, flattened to points.
  const image_batch_view<const float> img(x.data(), n, c, h, w);
  std::vector<float> gz(n * dz);
  const isa_options opt{isa_variant::sorted_deaths, reduction::mean, xs, 1.0};
  const float loss = isa_loss_from_points(cpu, img.as_points(), matrix_view<const float>(z.data(), n, dz), opt,
                                          matrix_view<float>(gz.data(), n, dz));
  CHECK(rel(loss, o.loss[1 * 2 + 1]) <= 1e-6);
  CHECK(rel_max(gz.data(), &o.gz[3 * n * dz], n * dz) <= 1e-5);
}

TEST_CASE("isa_loss (low level): loss vs PyTorch, dense gradient chained to the points = points-level gradient "
          "(brute-force chain rule here; isa_oracle.py)", "[isa]") {
  const index_t n = 11, dx = 6, dz = 4;
  const double xs = 1.7, zs = 0.8;
  const auto x = normal<double>(n * dx, 41), z = normal<double>(n * dz, 42);
  oracle_out o;
  if (!run_oracle("low", x, dx, z, dz, xs, zs, o)) return;
  const auto mx = brute_dist(x, n, dx, xs), mz = brute_dist(z, n, dz, zs);
  const vector_view<const edge> px(o.px.data(), n - 1), pz(o.pz.data(), n - 1);
  for (int v = 0; v < 2; ++v)
    for (int r = 0; r < 2; ++r) {
      CAPTURE(v, r);
      std::vector<double> gmz(n * n, 5.0), gmx(n * n, 5.0);
      const double loss = isa_loss(cpu, matrix_view<const double>(mx.data(), n, n),
                                   matrix_view<const double>(mz.data(), n, n), px, pz, variants[v], reductions[r],
                                   matrix_view<double>(gmz.data(), n, n), matrix_view<double>(gmx.data(), n, n));
      CHECK(rel(loss, o.loss[v * 2 + r]) <= 1e-12);
      // Adjoint check: the dense distance gradient, chained by brute force, is autograd's point gradient.
      const auto gz = brute_chain(gmz, z, n, dz, zs), gx = brute_chain(gmx, x, n, dx, xs);
      CHECK(rel_max(gz.data(), &o.gz[(v * 2 + r) * n * dz], n * dz) <= 1e-12);
      CHECK(rel_max(gx.data(), &o.gx[(v * 2 + r) * n * dx], n * dx) <= 1e-12);
      // Nonzero only at the pairs' (u, v) entries (never the lower triangle).
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j <= i; ++j) CHECK(gmz[i * n + j] == 0);
    }
}

TEST_CASE("isa_loss (low level): an edge in both pair sets contributes twice (PyTorch autograd, isa_oracle.py)",
          "[isa]") {
  const index_t n = 7, dx = 3, dz = 3;
  const auto x = normal<double>(n * dx, 51), z = normal<double>(n * dz, 52);
  // Given pairs (not MSTs): a path and a star sharing the edges (0,1) and (0,2).
  std::vector<edge> px, pz;
  for (int i = 0; i + 1 < n; ++i) px.push_back({i, i + 1});
  pz.push_back({0, 1});
  for (int i = 2; i < n; ++i) pz.push_back({0, i});
  oracle_out o;
  if (!run_oracle("both", x, dx, z, dz, 1.0, 1.0, o, &px, &pz)) return;
  const auto mx = brute_dist(x, n, dx, 1.0), mz = brute_dist(z, n, dz, 1.0);
  for (int v = 0; v < 2; ++v)
    for (int r = 0; r < 2; ++r) {
      CAPTURE(v, r);
      std::vector<double> gmz(n * n), gmx(n * n);
      const double loss = isa_loss(cpu, matrix_view<const double>(mx.data(), n, n),
                                   matrix_view<const double>(mz.data(), n, n), vector_view<edge>(px.data(), n - 1),
                                   vector_view<edge>(pz.data(), n - 1), variants[v], reductions[r],
                                   matrix_view<double>(gmz.data(), n, n), matrix_view<double>(gmx.data(), n, n));
      CHECK(rel(loss, o.loss[v * 2 + r]) <= 1e-12);
      const auto gz = brute_chain(gmz, z, n, dz, 1.0), gx = brute_chain(gmx, x, n, dx, 1.0);
      CHECK(rel_max(gz.data(), &o.gz[(v * 2 + r) * n * dz], n * dz) <= 1e-12);
      CHECK(rel_max(gx.data(), &o.gx[(v * 2 + r) * n * dx], n * dx) <= 1e-12);
      if (v == 0) {  // symmetric: the shared edge (0,1) gets both terms, c (MZ - MX) each
        const double c = r == 1 ? 1.0 / n : 1.0;
        CHECK(gmz[0 * n + 1] == Approx(2 * c * (mz[1] - mx[1])).epsilon(1e-14));
      }
    }
}

TEST_CASE("isa_loss (low level): dense gradients vs central finite differences in double", "[isa]") {
  const index_t n = 9;
  const auto x = normal<double>(n * 3, 61), z = normal<double>(n * 4, 62);
  const auto mx = brute_dist(x, n, 3, 1.0), mz = brute_dist(z, n, 4, 1.0);
  std::vector<edge> px(n - 1), pz(n - 1);
  persistence_pairs(cpu, matrix_view<const double>(mx.data(), n, n), vector_view<edge>(px.data(), n - 1));
  persistence_pairs(cpu, matrix_view<const double>(mz.data(), n, n), vector_view<edge>(pz.data(), n - 1));
  for (int v = 0; v < 2; ++v)
    for (int r = 0; r < 2; ++r) {
      CAPTURE(v, r);
      auto f = [&](const std::vector<double>& a, const std::vector<double>& b) {
        return isa_loss(cpu, matrix_view<const double>(a.data(), n, n), matrix_view<const double>(b.data(), n, n),
                        vector_view<edge>(px.data(), n - 1), vector_view<edge>(pz.data(), n - 1), variants[v],
                        reductions[r]);
      };
      std::vector<double> gmz(n * n), gmx(n * n);
      isa_loss(cpu, matrix_view<const double>(mx.data(), n, n), matrix_view<const double>(mz.data(), n, n),
               vector_view<edge>(px.data(), n - 1), vector_view<edge>(pz.data(), n - 1), variants[v], reductions[r],
               matrix_view<double>(gmz.data(), n, n), matrix_view<double>(gmx.data(), n, n));
      const double h = 1e-5;
      for (index_t e = 0; e < n * n; ++e) {  // every entry, so zero off the pairs is checked too
        auto a = mz, b = mz;
        a[e] += h, b[e] -= h;
        if (b[e] < 0) continue;  // the diagonal: negative distances are rejected
        CHECK(gmz[e] == Approx((f(mx, a) - f(mx, b)) / (2 * h)).margin(1e-9));
        auto c = mx, d = mx;
        c[e] += h, d[e] -= h;
        CHECK(gmx[e] == Approx((f(c, mz) - f(d, mz)) / (2 * h)).margin(1e-9));
      }
    }
}

TEST_CASE("isa_loss_from_points: gradients vs central finite differences in double", "[isa]") {
  const index_t n = 10, dx = 5, dz = 4;
  const double xs = 1.5, zs = 0.7;
  const auto x = normal<double>(n * dx, 71), z = normal<double>(n * dz, 72);
  for (int v = 0; v < 2; ++v)
    for (int r = 0; r < 2; ++r) {
      CAPTURE(v, r);
      const isa_options opt{variants[v], reductions[r], xs, zs};
      auto f = [&](const std::vector<double>& a, const std::vector<double>& b) {
        return isa_loss_from_points(cpu, matrix_view<const double>(a.data(), n, dx),
                                    matrix_view<const double>(b.data(), n, dz), opt);
      };
      std::vector<double> gz(n * dz), gx(n * dx);
      isa_loss_from_points(cpu, matrix_view<const double>(x.data(), n, dx), matrix_view<const double>(z.data(), n, dz),
                           opt, matrix_view<double>(gz.data(), n, dz), matrix_view<double>(gx.data(), n, dx));
      const double h = 1e-6;  // small enough that no pair changes for these well-separated points
      for (index_t e = 0; e < n * dz; ++e) {
        auto a = z, b = z;
        a[e] += h, b[e] -= h;
        CHECK(gz[e] == Approx((f(x, a) - f(x, b)) / (2 * h)).margin(1e-7));
      }
      for (index_t e = 0; e < n * dx; ++e) {
        auto a = x, b = x;
        a[e] += h, b[e] -= h;
        CHECK(gx[e] == Approx((f(a, z) - f(b, z)) / (2 * h)).margin(1e-7));
      }
    }
}

TEST_CASE("isa_loss_from_points: n = 2 (brute-force formula here and isa_oracle.py)", "[isa]") {
  const std::vector<double> x = {0.0, 0.0, 3.0, 4.0}, z = {1.0, 2.0};  // |x0-x1| = 5, |z0-z1| = 1
  for (int v = 0; v < 2; ++v)
    for (int r = 0; r < 2; ++r) {
      CAPTURE(v, r);
      std::vector<double> gz(2);
      const double loss = isa_loss_from_points(cpu, matrix_view<const double>(x.data(), 2, 2),
                                               matrix_view<const double>(z.data(), 2, 1),
                                               isa_options{variants[v], reductions[r], 1.0, 1.0},
                                               matrix_view<double>(gz.data(), 2, 1));
      // One pair (0,1) in both sets: both variants are (5 - 1)^2 (the symmetric 1/2 halves two equal terms).
      const double c = r == 1 ? 0.5 : 1.0;
      CHECK(loss == Approx(16 * c).epsilon(1e-15));
      // dL/dz0 = -2 c (5 - 1) d|z0 - z1|/dz0 = -8 c * sign(z0 - z1) = +8 c.
      CHECK(gz[0] == Approx(8 * c).epsilon(1e-15));
      CHECK(gz[1] == Approx(-8 * c).epsilon(1e-15));
    }
  oracle_out o;
  if (!run_oracle("n2", x, 2, z, 1, 1.0, 1.0, o)) return;
  CHECK(o.loss[0] == Approx(16));
  CHECK(o.loss[3] == Approx(8));
}

TEST_CASE("isa_loss_from_points: duplicate latent points give a zero (sub)gradient there, no NaN "
          "(PyTorch autograd, isa_oracle.py)", "[isa]") {
  const index_t n = 8, dx = 4, dz = 3;
  const auto x = normal<double>(n * dx, 81);
  auto z = normal<double>(n * dz, 82);
  std::copy_n(&z[2 * dz], dz, &z[5 * dz]);  // z5 == z2
  oracle_out o;
  if (!run_oracle("dup", x, dx, z, dz, 1.0, 1.0, o)) return;
  for (int v = 0; v < 2; ++v) {
    std::vector<double> gz(n * dz), gx(n * dx);
    const double loss = isa_loss_from_points(cpu, matrix_view<const double>(x.data(), n, dx),
                                             matrix_view<const double>(z.data(), n, dz),
                                             isa_options{variants[v], reduction::mean, 1.0, 1.0},
                                             matrix_view<double>(gz.data(), n, dz), matrix_view<double>(gx.data(), n, dx));
    CHECK(std::isfinite(loss));
    for (double g : gz) CHECK(std::isfinite(g));
    CHECK(rel(loss, o.loss[v * 2 + 1]) <= 1e-10);
    CHECK(rel_max(gz.data(), &o.gz[(v * 2 + 1) * n * dz], n * dz) <= 1e-9);
    CHECK(rel_max(gx.data(), &o.gx[(v * 2 + 1) * n * dx], n * dx) <= 1e-9);
  }
}

TEST_CASE("isa_loss_from_points: all latent points coincident: zero gradient, loss = brute-force sum", "[isa]") {
  const index_t n = 5, dx = 3, dz = 2;
  const auto x = normal<double>(n * dx, 91);
  const std::vector<double> z(n * dz, 0.25);
  std::vector<double> mx = brute_dist(x, n, dx, 1.0);
  std::vector<edge> px(n - 1);
  persistence_pairs(cpu, matrix_view<const double>(mx.data(), n, n), vector_view<edge>(px.data(), n - 1));
  double deaths2 = 0;
  for (edge e : px) deaths2 += mx[e.u * n + e.v] * mx[e.u * n + e.v];
  std::vector<double> gz(n * dz, 1.0);
  // symmetric: 1/2 (sum over gX of MX^2 + sum over gZ (any n-1 edges) of MX^2), sorted: sum of MX deaths^2.
  const double loss = isa_loss_from_points(cpu, matrix_view<const double>(x.data(), n, dx),
                                           matrix_view<const double>(z.data(), n, dz),
                                           isa_options{isa_variant::sorted_deaths, reduction::sum, 1.0, 1.0},
                                           matrix_view<double>(gz.data(), n, dz));
  CHECK(loss == Approx(deaths2).epsilon(1e-13));
  for (double g : gz) CHECK(g == 0.0);
}

TEST_CASE("isa_loss_from_points: identical X and Z configurations give loss 0 and gradient 0", "[isa]") {
  const index_t n = 12, d = 6;
  for (int v = 0; v < 2; ++v) {
    const auto x = normal<float>(n * d, 101);
    std::vector<float> gz(n * d, 1.f), gx(n * d, 1.f);
    const float loss = isa_loss_from_points(cpu, matrix_view<const float>(x.data(), n, d),
                                            matrix_view<const float>(x.data(), n, d),
                                            isa_options{variants[v], reduction::mean, 2.0, 2.0},
                                            matrix_view<float>(gz.data(), n, d), matrix_view<float>(gx.data(), n, d));
    CHECK(loss == 0.f);
    for (float g : gz) CHECK(g == 0.f);
    for (float g : gx) CHECK(g == 0.f);
  }
}

TEST_CASE("isa_loss: invalid arguments name the argument", "[isa][errors]") {
  const index_t n = 4;
  const auto x = normal<double>(n * 2, 111), z = normal<double>(n * 2, 112);
  auto mx = brute_dist(x, n, 2, 1.0), mz = brute_dist(z, n, 2, 1.0);
  std::vector<edge> px(n - 1), pz(n - 1);
  persistence_pairs(cpu, matrix_view<const double>(mx.data(), n, n), vector_view<edge>(px.data(), n - 1));
  persistence_pairs(cpu, matrix_view<const double>(mz.data(), n, n), vector_view<edge>(pz.data(), n - 1));
  std::vector<double> g1(n * n), g2(n * n);
  using M = matrix_view<const double>;
  using P = vector_view<const edge>;
  const M dx(mx.data(), n, n), dz(mz.data(), n, n);
  const P vx(px.data(), n - 1), vz(pz.data(), n - 1);
  const auto sym = isa_variant::symmetric;
  const auto mean = reduction::mean;
  using Catch::Contains;

  CHECK_THROWS_AS(isa_loss(cpu, M(mx.data(), 1, 1), M(mz.data(), 1, 1), P(), P(), sym, mean), topofr::error);
  CHECK_THROWS_WITH(isa_loss(cpu, M(mx.data(), 1, 1), M(mz.data(), 1, 1), P(), P(), sym, mean), Contains("dist_x"));
  CHECK_THROWS_WITH(isa_loss(cpu, M(mx.data(), n, n - 1), dz, vx, vz, sym, mean), Contains("dist_x"));
  CHECK_THROWS_WITH(isa_loss(cpu, dx, M(mz.data(), n - 1, n - 1), vx, vz, sym, mean), Contains("dist_z"));
  CHECK_THROWS_WITH(isa_loss(cpu, M(nullptr, n, n), dz, vx, vz, sym, mean), Contains("dist_x"));
  CHECK_THROWS_WITH(isa_loss(cpu, dx, M(mz.data(), n, n, n - 1), vx, vz, sym, mean), Contains("dist_z"));
  {
    auto bad = mz;
    bad[1 * n + 2] = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_WITH(isa_loss(cpu, dx, M(bad.data(), n, n), vx, vz, sym, mean),
                      Contains("dist_z") && Contains("(1, 2)"));
    bad[1 * n + 2] = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH(isa_loss(cpu, M(bad.data(), n, n), dz, vx, vz, sym, mean), Contains("dist_x"));
    bad[1 * n + 2] = -1.0;
    CHECK_THROWS_WITH(isa_loss(cpu, dx, M(bad.data(), n, n), vx, vz, sym, mean), Contains("dist_z"));
  }
  CHECK_THROWS_WITH(isa_loss(cpu, dx, dz, P(px.data(), n - 2), vz, sym, mean), Contains("pairs_x"));
  CHECK_THROWS_WITH(isa_loss(cpu, dx, dz, vx, P(pz.data(), n), sym, mean), Contains("pairs_z"));
  CHECK_THROWS_WITH(isa_loss(cpu, dx, dz, P(nullptr, n - 1), vz, sym, mean), Contains("pairs_x"));
  for (edge e : {edge{1, 1}, edge{2, 1}, edge{-1, 2}, edge{0, std::int32_t(n)}}) {
    auto bad = pz;
    bad[1] = e;
    CHECK_THROWS_WITH(isa_loss(cpu, dx, dz, vx, P(bad.data(), n - 1), sym, mean),
                      Contains("pairs_z") && Contains("pair 1"));
  }
  CHECK_THROWS_WITH(isa_loss(cpu, dx, dz, vx, vz, static_cast<isa_variant>(7), mean), Contains("variant"));
  CHECK_THROWS_WITH(isa_loss(cpu, dx, dz, vx, vz, sym, static_cast<reduction>(7)), Contains("reduce"));
  CHECK_THROWS_WITH(isa_loss(cpu, dx, dz, vx, vz, sym, mean, matrix_view<double>(g1.data(), n, n - 1)),
                    Contains("grad_dist_z"));
  CHECK_THROWS_WITH(isa_loss(cpu, dx, dz, vx, vz, sym, mean, matrix_view<double>(g1.data(), n, n),
                             matrix_view<double>(g2.data(), n - 1, n)),
                    Contains("grad_dist_x"));
  CHECK_THROWS_WITH(isa_loss(cpu, dx, dz, vx, vz, sym, mean, matrix_view<double>(g1.data(), n, n),
                             matrix_view<double>(g1.data(), n, n)),
                    Contains("grad_dist_x"));
  CHECK_NOTHROW(isa_loss(cpu, dx, dz, vx, vz, sym, mean, matrix_view<double>(g1.data(), n, n),
                         matrix_view<double>(g2.data(), n, n)));
}

TEST_CASE("isa_loss_from_points: invalid arguments name the argument", "[isa][errors]") {
  const index_t n = 5, dx = 3, dz = 2;
  auto x = normal<float>(n * dx, 121), z = normal<float>(n * dz, 122);
  std::vector<float> gz(n * dz), gx(n * dx);
  using M = matrix_view<const float>;
  const M vx(x.data(), n, dx), vz(z.data(), n, dz);
  const isa_options ok{};
  using Catch::Contains;

  CHECK_THROWS_AS(isa_loss_from_points(cpu, M(x.data(), 1, dx), M(z.data(), 1, dz), ok), topofr::error);
  CHECK_THROWS_WITH(isa_loss_from_points(cpu, M(x.data(), 1, dx), M(z.data(), 1, dz), ok), Contains("x"));
  CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, M(z.data(), n - 1, dz), ok), Contains("z:"));
  CHECK_THROWS_WITH(isa_loss_from_points(cpu, M(nullptr, n, dx), vz, ok), Contains("x:"));
  CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, M(z.data(), n, dz, 1), ok), Contains("z:"));
  CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, M(z.data(), n, 0), ok), Contains("z:"));
  {
    auto bad = x;
    bad[2 * dx + 1] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(isa_loss_from_points(cpu, M(bad.data(), n, dx), vz, ok), Contains("x:") && Contains("(2, 1)"));
    auto badz = z;
    badz[3 * dz] = -std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, M(badz.data(), n, dz), ok), Contains("z:") && Contains("(3, 0)"));
  }
  for (double s : {0.0, -1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    isa_options o1 = ok, o2 = ok;
    o1.x_scale = s;
    o2.z_scale = s;
    CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, vz, o1), Contains("x_scale"));
    CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, vz, o2), Contains("z_scale"));
  }
  {
    isa_options o1 = ok, o2 = ok;
    o1.variant = static_cast<isa_variant>(-1);
    o2.reduce = static_cast<reduction>(9);
    CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, vz, o1), Contains("variant"));
    CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, vz, o2), Contains("reduce"));
  }
  CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, vz, ok, matrix_view<float>(gz.data(), n, dz + 1)),
                    Contains("grad_z"));
  CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, vz, ok, matrix_view<float>(gz.data(), n, dz),
                                         matrix_view<float>(gx.data(), n - 1, dx)),
                    Contains("grad_x"));
  CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, matrix_view<float>(z.data(), n, dz), ok,
                                         matrix_view<float>(z.data(), n, dz)),
                    Contains("grad_z"));
  // Distances that overflow float although the points are finite.
  {
    std::vector<float> big(n * dz, 0.f);
    big[0] = 3e38f, big[dz] = -3e38f;
    CHECK_THROWS_WITH(isa_loss_from_points(cpu, vx, M(big.data(), n, dz), ok), Contains("z"));
  }
  CHECK_NOTHROW(isa_loss_from_points(cpu, vx, vz, ok, matrix_view<float>(gz.data(), n, dz),
                                     matrix_view<float>(gx.data(), n, dx)));
}
