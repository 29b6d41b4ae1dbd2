// Tests of topofr/gum.hpp: the GUM EM (gum_fit) and the structure damage score (sds_weights).
// Oracles: tests/oracles/gum_oracle.py (an independent, unfused NumPy transcription of the released EM,
// itself checked against the released SciPy code during development) for gum_fit; a direct double formula
// written here for sds_weights; exact invariances (scale, reference == robust on well-posed data).
#include "support.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <topofr/gum.hpp>

using namespace topofr;
using namespace topofr::test;

namespace {

/// Realistic batch entropies: most samples confident (small entropy), ~15 % hard ones (large entropy).
template <class T>
std::vector<T> realistic(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::exponential_distribution<double> easy(20.0);
  std::uniform_real_distribution<double> hard(0.5, 4.0), coin(0.0, 1.0);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(coin(g) < 0.15 ? hard(g) : easy(g));
  return v;
}

struct expected {
  std::vector<double> h;
  double pi, sigma, c;
  int iterations;
  bool converged;
};

int case_id = 0;

template <class T>
expected run_oracle(const std::vector<T>& e, const gum_options& opt) {
  const std::string base = scratch("gum" + std::to_string(case_id++));
  save(base + "_in.npy", e, {static_cast<index_t>(e.size())});
  std::vector<std::string> args{base + "_in.npy", base};
  if (!opt.symmetrize) args.push_back("--no-symmetrize");
  args.insert(args.end(), {"--max-iter", std::to_string(opt.max_iter), "--tol", detail::concat(opt.tol)});
  expected x{};
  if (!oracle("gum_oracle.py", args)) return x;
  x.h = load<double>(base + "_h.npy");
  const auto p = load<double>(base + "_params.npy");
  REQUIRE(p.size() == 6);
  REQUIRE(p[5] < 0);  // the oracle did not diverge
  x.pi = p[0], x.sigma = p[1], x.c = p[2], x.iterations = static_cast<int>(p[3]), x.converged = p[4] != 0;
  return x;
}

/// gum_fit on e (through a const view) against the NumPy oracle: h within 1e-6 absolute, pi, sigma and c
/// within 1e-6 relative. The oracle sums log_like in another order, so the stopping test may fire one
/// iteration apart when the change sits at the tolerance; that moves h by far less than 1e-6.
template <class T>
void check_against_oracle(const std::vector<T>& e, gum_options opt = {}) {
  std::vector<T> h(e.size(), T(-1));
  const gum_result r = gum_fit(cpu, vector_view<const T>(e.data(), static_cast<index_t>(e.size())),
                               make_vector_view(h.data(), static_cast<index_t>(h.size())), opt);
  const expected x = run_oracle(e, opt);
  if (x.h.empty()) return;  // oracle skipped
  INFO("n = " << e.size() << ", symmetrize = " << opt.symmetrize << ", T = " << sizeof(T) * 8 << " bit");
  REQUIRE(x.h.size() == e.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < e.size(); ++i) worst = std::max(worst, std::abs(double(h[i]) - x.h[i]));
  const double h_tol = std::is_same<T, float>::value ? 1e-6 : 1e-9;  // float output: rounding 6e-8
  CHECK(worst <= h_tol);
  CHECK(rel(r.pi, x.pi, 1e-12) <= 1e-6);
  CHECK(rel(r.sigma, x.sigma, 1e-12) <= 1e-6);
  CHECK(rel(r.c, x.c, 1e-12) <= 1e-6);
  CHECK(std::abs(r.iterations - x.iterations) <= 1);
  CHECK(r.converged == x.converged);
}

template <class T>
void check_both_symmetrizations(const std::vector<T>& e) {
  for (bool sym : {true, false}) {
    gum_options opt;
    opt.symmetrize = sym;
    check_against_oracle(e, opt);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("gum_fit: realistic float entropies, n = 128, against the NumPy oracle", "[gum]", float,
                   double) {
  for (std::uint64_t seed : {1, 2, 3}) check_both_symmetrizations(realistic<TestType>(128, seed));
}

TEMPLATE_TEST_CASE("gum_fit: uniform random entropies and n = 1024, against the NumPy oracle", "[gum]", float,
                   double) {
  check_both_symmetrizations(uniform<TestType>(128, 11, 0.0, 5.0));
  check_both_symmetrizations(realistic<TestType>(1024, 12));
}

TEMPLATE_TEST_CASE("gum_fit: tiny batches n = 1, 2, 3, 5, against the NumPy oracle", "[gum]", float, double) {
  for (std::size_t n : {1, 2, 3, 5}) check_both_symmetrizations(realistic<TestType>(n, 20 + n));
  check_both_symmetrizations(std::vector<TestType>{TestType(0.3)});
  check_both_symmetrizations(std::vector<TestType>{TestType(0.3), TestType(0.3)});
  check_both_symmetrizations(std::vector<TestType>{TestType(2), TestType(0.01), TestType(0.02)});
}

TEMPLATE_TEST_CASE("gum_fit: degenerate batches (all equal, all zero, huge outlier), against the NumPy oracle",
                   "[gum]", float, double) {
  // All equal and nonzero: symmetrised it is +-v; unsymmetrised the std is 0 and eps stays 0.
  check_both_symmetrizations(std::vector<TestType>(128, TestType(0.7)));
  check_both_symmetrizations(std::vector<TestType>(7, TestType(3.3)));
  // All zero: std = 0, the sklearn-style scale leaves it centred (all 0).
  check_both_symmetrizations(std::vector<TestType>(128, TestType(0)));
  check_both_symmetrizations(std::vector<TestType>(3, TestType(0)));
  // One huge outlier among small entropies.
  auto e = realistic<TestType>(128, 30);
  e[77] = TestType(1e6);
  check_both_symmetrizations(e);
  e[77] = TestType(1e30);
  check_both_symmetrizations(e);
}

TEST_CASE("gum_fit: ill-conditioned offset (sklearn's re-centring), against the NumPy oracle", "[gum]") {
  // Spacing 0.125 at 1e15: the rounded mean leaves the centred data with mean 0.075, which sklearn removes.
  const std::vector<double> e{1e15, 1e15, 1e15 + 0.25, 1e15 + 0.125, 1e15};
  check_both_symmetrizations(e);
}

TEST_CASE("gum_fit: max_iter and tol are honoured, against the NumPy oracle", "[gum]") {
  const auto e = realistic<double>(128, 40);
  gum_options opt;
  opt.max_iter = 3;  // stops early, not converged
  check_against_oracle(e, opt);
  opt.max_iter = 40;
  opt.tol = 0.0;  // never converges: exactly max_iter iterations
  check_against_oracle(e, opt);
  std::vector<double> h(e.size());
  const auto r = gum_fit(cpu, make_vector_view(e.data(), 128), make_vector_view(h.data(), 128), opt);
  CHECK(r.iterations == 40);
  CHECK_FALSE(r.converged);
  opt.tol = 1e-3;  // a loose tolerance stops earlier than the default
  check_against_oracle(e, opt);
}

TEMPLATE_TEST_CASE("gum_fit: invariances (exact): power-of-two scale, robust == reference, aliasing", "[gum]",
                   float, double) {
  // Oracle: standardisation makes the fit invariant to scaling the entropies (by a power of two the scaled
  // data are exact; only sklearn's absolute 1e-8 re-centring threshold may then act on a ~1e-17 residual).
  const auto e = realistic<TestType>(128, 50);
  std::vector<TestType> h(128), hs(128), hr(128);
  const auto r = gum_fit(cpu, make_vector_view(e.data(), 128), make_vector_view(h.data(), 128));
  std::vector<TestType> es(e);
  for (auto& v : es) v = std::ldexp(v, std::is_same<TestType, float>::value ? 100 : 900);
  const auto rs = gum_fit(cpu, make_vector_view(es.data(), 128), make_vector_view(hs.data(), 128));
  for (int i = 0; i < 128; ++i) CHECK(std::abs(double(h[i]) - double(hs[i])) <= 1e-9);
  CHECK(rel(r.pi, rs.pi) <= 1e-9);
  CHECK(rel(r.sigma, rs.sigma) <= 1e-9);
  // Oracle: robust mode differs from the reference only where the reference would turn NaN.
  gum_options robust;
  robust.mode = gum_mode::robust;
  const auto rr = gum_fit(cpu, make_vector_view(e.data(), 128), make_vector_view(hr.data(), 128), robust);
  CHECK(h == hr);
  CHECK(r.pi == rr.pi);
  CHECK(r.c == rr.c);
  // hard_posterior may alias entropy.
  std::vector<TestType> inout(e);
  gum_fit(cpu, make_vector_view(inout.data(), 128), make_vector_view(inout.data(), 128));
  CHECK(inout == h);
  // Mixed precision: double entropies, float posterior (rounded from the same double computation).
  std::vector<double> ed(e.begin(), e.end());
  std::vector<float> hf(128);
  gum_fit(cpu, make_vector_view(ed.data(), 128), make_vector_view(hf.data(), 128));
  for (int i = 0; i < 128; ++i) CHECK(std::abs(double(hf[i]) - double(h[i])) <= 1e-6);
}

TEST_CASE("gum_fit: h is the hard-sample posterior (oracle: the mixture's meaning)", "[gum]") {
  // Without symmetrisation, large entropies sit far from 0 after standardising: h must grow with the
  // entropy's distance from the Gaussian at 0 and the big ones must be flagged hard.
  auto e = realistic<double>(128, 60);
  std::vector<double> h(128);
  gum_options opt;
  opt.symmetrize = false;
  gum_fit(cpu, make_vector_view(e.data(), 128), make_vector_view(h.data(), 128), opt);
  for (int i = 0; i < 128; ++i) {
    CHECK(h[i] >= 0.0);
    CHECK(h[i] <= 1.0);
    if (e[i] > 2.0) CHECK(h[i] > 0.99);
  }
}

TEST_CASE("gum_fit: the divergence guard (3*C2 - C1^2 < 0): reference throws, robust floors c", "[gum]") {
  // No input reaches it: C1^2 <= 2 C2 always holds for centred data (proof in docs/math.md; a random
  // search, `gum_oracle.py --search-divergent OUT 20000`, found max C1^2/C2 = 0.37). So the guard
  // is checked on the M-step helper with moments that violate the bound. Oracle: the formula itself.
  // (detail::gum_uniform_density is the host-and-device helper both gum_fit overloads use.)
  const auto density = [](double c1, double c2, gum_mode mode, bool ok = true) {
    double c = -1.0, d = 0.0;
    CHECK(detail::gum_uniform_density(c1, c2, mode, c, d) == ok);
    const double want = 3.0 * c2 - c1 * c1;
    CHECK((d == want || (std::isnan(d) && std::isnan(want))));
    return c;
  };
  density(2.0, 1.0, gum_mode::reference, false);
  density(std::nan(""), 1.0, gum_mode::reference, false);
  CHECK_THROWS_WITH(detail::gum_diverged("gum_fit", 7, detail::gum_step::diverged_density, -1.0),
                    Catch::Contains("diverged at iteration 7") && Catch::Contains("3*C2 - C1^2 = -1") &&
                        Catch::Contains("gum_mode::robust"));
  CHECK_THROWS_WITH(detail::gum_diverged("gum_fit", 3, detail::gum_step::diverged_n1, 0.0),
                    Catch::Contains("diverged at iteration 3") && Catch::Contains("N1 = 0"));
  CHECK(density(2.0, 1.0, gum_mode::robust) == 0.001);
  CHECK(density(0.0, 0.0002, gum_mode::robust) == 0.001);
  double c = 0.0, d = 0.0;
  CHECK(detail::gum_uniform_density(std::nan(""), 1.0, gum_mode::robust, c, d));
  CHECK(c == 0.001);
  CHECK(density(1.0, 1.0, gum_mode::robust) == 1.0 / (2.0 * std::sqrt(2.0) + 1e-10));
  // d = inf (moments overflowed): the reference formula gives c = 0; robust keeps c > 0.
  CHECK(density(0.0, std::numeric_limits<double>::infinity(), gum_mode::robust) > 0.0);
  // Reference branch agrees with the released formula where it is defined, including |d| < 0.001.
  CHECK(density(1.0, 1.0, gum_mode::reference) == 1.0 / (2.0 * std::sqrt(2.0) + 1e-10));
  CHECK(density(0.03, 0.0003, gum_mode::reference) == 0.001);  // d = 0 exactly-ish
  CHECK(density(0.0, -0.0002, gum_mode::reference) == 0.001);  // |d| < 0.001
}

TEST_CASE("gum_fit: invalid arguments name the argument", "[gum][errors]") {
  std::vector<double> e{0.1, 0.2, 0.3, 0.4}, h(4);
  auto ev = make_vector_view(e.data(), 4);
  auto hv = make_vector_view(h.data(), 4);
  CHECK_THROWS_WITH(gum_fit(cpu, vector_view<const double>(), vector_view<double>()),
                    Catch::Contains("entropy") && Catch::Contains("at least 1"));
  e[2] = std::nan("");
  CHECK_THROWS_WITH(gum_fit(cpu, ev, hv), Catch::Contains("entropy") && Catch::Contains("index 2") &&
                                              Catch::Contains("nan"));
  e[2] = -std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(gum_fit(cpu, ev, hv), Catch::Contains("entropy") && Catch::Contains("index 2") &&
                                              Catch::Contains("inf"));
  e[2] = 0.3;
  CHECK_THROWS_WITH(gum_fit(cpu, ev, make_vector_view(h.data(), 3)),
                    Catch::Contains("hard_posterior") && Catch::Contains("expected size 4, got 3"));
  CHECK_THROWS_WITH(gum_fit(cpu, vector_view<const double>(nullptr, 4), hv), Catch::Contains("null"));
  gum_options opt;
  opt.max_iter = 0;
  CHECK_THROWS_WITH(gum_fit(cpu, ev, hv, opt), Catch::Contains("max_iter"));
  opt = {};
  opt.tol = -1.0;
  CHECK_THROWS_WITH(gum_fit(cpu, ev, hv, opt), Catch::Contains("tol"));
  opt.tol = std::nan("");
  CHECK_THROWS_WITH(gum_fit(cpu, ev, hv, opt), Catch::Contains("tol"));
  opt = {};
  opt.mode = static_cast<gum_mode>(5);
  CHECK_THROWS_WITH(gum_fit(cpu, ev, hv, opt), Catch::Contains("mode"));
  CHECK(h == std::vector<double>(4, 0.0));  // nothing written on error
}

// ---- sds_weights --------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("sds_weights: against the direct double formula (1 + h)^lambda (1 - p_gt)", "[sds]", float,
                   double) {
  auto h = uniform<TestType>(257, 70);
  auto p = uniform<TestType>(257, 71);
  h[0] = 0, h[1] = 1, p[2] = 0, p[3] = 1;  // the ends of [0, 1]
  for (double lambda : {1.0, 0.0, 2.5, -0.7}) {
    for (bool focal : {true, false}) {
      std::vector<TestType> w(257);
      sds_weights(cpu, vector_view<const TestType>(h.data(), 257), vector_view<const TestType>(p.data(), 257),
                  lambda, focal, make_vector_view(w.data(), 257));
      for (int i = 0; i < 257; ++i) {
        const double want = std::pow(1.0 + double(h[i]), lambda) * (focal ? 1.0 - double(p[i]) : 1.0);
        INFO("i = " << i << ", lambda = " << lambda << ", focal = " << focal);
        CHECK(rel(double(w[i]), want, 1e-300) <= (std::is_same<TestType, float>::value ? 6e-8 : 1e-15));
      }
    }
  }
  // focal = false with no p_gt (the released code's behaviour); omega may alias hard_posterior.
  std::vector<TestType> w(h);
  sds_weights(cpu, make_vector_view(w.data(), 257), vector_view<const TestType>(), 1.0, false,
              make_vector_view(w.data(), 257));
  for (int i = 0; i < 257; ++i) CHECK(w[i] == static_cast<TestType>(1.0 + double(h[i])));
}

TEST_CASE("sds_weights: gum_fit's posterior feeds it; empty batch is fine", "[sds]") {
  // Oracle: the formula, on the posterior of a real fit (h in [0, 1] as sds_weights requires).
  const auto e = realistic<float>(128, 80);
  std::vector<float> h(128), w(128);
  gum_fit(cpu, make_vector_view(e.data(), 128), make_vector_view(h.data(), 128));
  sds_weights(cpu, make_vector_view(h.data(), 128), vector_view<const float>(), 1.0, false,
              make_vector_view(w.data(), 128));
  for (int i = 0; i < 128; ++i) CHECK(w[i] == static_cast<float>(1.0 + double(h[i])));
  sds_weights(cpu, vector_view<const float>(), vector_view<const float>(), 1.0, true, vector_view<float>());
}

TEST_CASE("sds_weights: invalid arguments name the argument", "[sds][errors]") {
  std::vector<double> h{0.1, 0.5, 0.9}, p{0.2, 0.3, 0.4}, w(3);
  auto hv = make_vector_view(h.data(), 3);
  auto pv = make_vector_view(p.data(), 3);
  auto wv = make_vector_view(w.data(), 3);
  CHECK_THROWS_WITH(sds_weights(cpu, hv, pv, 1.0, true, make_vector_view(w.data(), 2)),
                    Catch::Contains("omega") && Catch::Contains("expected size 3, got 2"));
  CHECK_THROWS_WITH(sds_weights(cpu, hv, make_vector_view(p.data(), 2), 1.0, true, wv),
                    Catch::Contains("p_gt") && Catch::Contains("got 2"));
  CHECK_THROWS_WITH(sds_weights(cpu, hv, vector_view<double>(), 1.0, true, wv),
                    Catch::Contains("p_gt") && Catch::Contains("focal"));
  CHECK_THROWS_WITH(sds_weights(cpu, hv, pv, std::nan(""), true, wv), Catch::Contains("lambda"));
  CHECK_THROWS_WITH(sds_weights(cpu, hv, pv, std::numeric_limits<double>::infinity(), true, wv),
                    Catch::Contains("lambda"));
  p[2] = 1.5;
  CHECK_THROWS_WITH(sds_weights(cpu, hv, pv, 1.0, true, wv),
                    Catch::Contains("p_gt") && Catch::Contains("index 2") && Catch::Contains("1.5"));
  p[2] = -0.1;
  CHECK_THROWS_WITH(sds_weights(cpu, hv, pv, 1.0, true, wv), Catch::Contains("p_gt") && Catch::Contains("index 2"));
  p[2] = std::nan("");
  CHECK_THROWS_WITH(sds_weights(cpu, hv, pv, 1.0, true, wv), Catch::Contains("p_gt") && Catch::Contains("index 2"));
  p[2] = 0.4;
  h[1] = 1.0000001;
  CHECK_THROWS_WITH(sds_weights(cpu, hv, pv, 1.0, false, wv),
                    Catch::Contains("hard_posterior") && Catch::Contains("index 1"));
  h[1] = std::nan("");
  CHECK_THROWS_WITH(sds_weights(cpu, hv, pv, 1.0, false, wv),
                    Catch::Contains("hard_posterior") && Catch::Contains("index 1"));
  CHECK_THROWS_WITH(sds_weights(cpu, vector_view<const double>(nullptr, 3), pv, 1.0, false, wv),
                    Catch::Contains("hard_posterior") && Catch::Contains("null"));
  CHECK(w == std::vector<double>(3, 0.0));  // nothing written on error
}
