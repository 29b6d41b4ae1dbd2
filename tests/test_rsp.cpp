// Tests of core/rng.hpp (Philox4x32-10, counter_rng) and rsp.hpp (random structure perturbation).
// Oracles: the Random123 known-answer vectors; torchvision's own functions (tests/oracles/rsp_oracle.py);
// a brute-force double 2-d convolution written here; binomial bounds for the statistics of the draws.
#include "support.hpp"

#include <topofr/core/rng.hpp>
#include <topofr/rsp.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace topofr;
using Catch::Matchers::Contains;

namespace {

using block = std::array<std::uint32_t, 4>;

constexpr block philox(block c, std::uint32_t k0, std::uint32_t k1) {
  const std::uint32_t key[2] = {k0, k1};
  std::uint32_t ctr[4] = {c[0], c[1], c[2], c[3]}, out[4] = {0, 0, 0, 0};
  philox4x32_10(ctr, key, out);
  return {out[0], out[1], out[2], out[3]};
}

// Known-answer vectors, Random123 distribution, tests/kat_vectors ("philox4x32 10" lines).
constexpr bool kat_zero() {
  const block o = philox({0, 0, 0, 0}, 0, 0);
  return o[0] == 0x6627e8d5u && o[1] == 0xe169c58du && o[2] == 0xbc57ac4cu && o[3] == 0x9b00dbd8u;
}
static_assert(kat_zero(), "philox4x32_10 is constexpr-evaluable and matches Random123 (zeros)");

/// A plan as one row of the oracle's N x 14 table.
std::array<double, 14> row(const rsp_plan& p) {
  return {double(p.kind), p.sigma,    p.brightness, p.contrast,    p.saturation,  p.hue,          double(p.order[0]),
          double(p.order[1]), double(p.order[2]), double(p.order[3]), double(p.top), double(p.left),
          double(p.height), double(p.width)};
}

/// Oracle jobs, run by ONE rsp_oracle.py call (starting Python + torch dominates the test time): each
/// job saves its input batch and plans, and keeps a check that compares our result with the output.
struct torchvision_jobs {
  std::vector<std::string> args;
  std::vector<std::function<void()>> checks;

  template <class T>
  void add(const std::string& name, const std::vector<T>& img, index_t n, index_t c, index_t h, index_t w,
           const std::vector<rsp_plan>& plans, std::vector<T> ours, double tol) {
    const std::string tag = std::to_string(checks.size());
    std::vector<double> table;
    for (const auto& p : plans) for (double v : row(p)) table.push_back(v);
    const std::string in = test::scratch("rsp_in" + tag + ".npy"), plan = test::scratch("rsp_plan" + tag + ".npy"),
                      out = test::scratch("rsp_out" + tag + ".npy");
    test::save(in, img, {n, c, h, w});
    test::save(plan, table, {n, 14});
    args.insert(args.end(), {in, plan, out});
    checks.push_back([=] {
      std::vector<index_t> shape;
      const auto expected = test::load<T>(out, &shape);
      REQUIRE(shape == std::vector<index_t>{n, c, h, w});
      const index_t ss = c * h * w;
      for (index_t i = 0; i < n; ++i) {
        double m = 0;
        for (index_t k = i * ss; k < (i + 1) * ss; ++k)
          m = std::max(m, std::abs(double(ours[k]) - double(expected[k])));
        INFO(name << ": sample " << i << ", kind " << int(plans[i].kind) << ", C = " << c);
        CHECK(m <= tol);
      }
    });
  }

  void run() {
    if (!test::oracle("rsp_oracle.py", args)) return;
    for (auto& f : checks) f();
  }
};

/// Test images in [-1, 1] with the corner cases of the HSV code planted: a gray pixel (max == min),
/// saturated pixels, and ties between the maximal channels.
template <class T>
std::vector<T> test_images(index_t n, index_t c, index_t h, index_t w, std::uint64_t seed) {
  auto v = test::uniform<T>(static_cast<std::size_t>(n * c * h * w), seed, -1.0, 1.0);
  if (c == 3 && h * w >= 4) {
    const index_t hw = h * w;
    for (index_t s = 0; s < n; ++s) {
      T* x = v.data() + s * 3 * hw;
      x[0] = x[hw] = x[2 * hw] = T(0.25);                         // gray
      x[1] = T(1); x[hw + 1] = T(-1); x[2 * hw + 1] = T(1);       // r == b == max
      x[2] = T(0.5); x[hw + 2] = T(0.5); x[2 * hw + 2] = T(-0.2); // r == g == max
      x[3] = T(-1); x[hw + 3] = T(-1); x[2 * hw + 3] = T(-1);     // black
    }
  }
  return v;
}

/// Hand-made plans covering every kind, both sigma extremes, several jitter orders and hue signs.
std::vector<rsp_plan> hand_plans(index_t h, index_t w) {
  std::vector<rsp_plan> ps;
  rsp_plan p;
  ps.push_back(p);  // none
  for (double s : {0.1, 0.7, 2.0, 5.0}) {
    p = {};
    p.kind = rsp_kind::blur;
    p.sigma = s;
    ps.push_back(p);
  }
  p = {};
  p.kind = rsp_kind::grayscale;
  ps.push_back(p);
  const int orders[4][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}};
  const double hues[4] = {-0.1, 0.3, 0.05, -0.5};
  for (int k = 0; k < 4; ++k) {
    p = {};
    p.kind = rsp_kind::color_jitter;
    p.brightness = 0.1 + 0.1 * k;
    p.contrast = 0.3 + 0.1 * k;
    p.saturation = 0.5 - 0.1 * k;
    p.hue = hues[k];
    std::copy(orders[k], orders[k] + 4, p.order);
    ps.push_back(p);
  }
  p = {};
  p.kind = rsp_kind::color_jitter;  // factors > 1 make the clamps bite
  p.brightness = 1.7; p.contrast = 2.5; p.saturation = 3.0; p.hue = 0.45;
  ps.push_back(p);
  p = {};
  p.kind = rsp_kind::erasing;
  p.top = 1; p.left = w > 4 ? 2 : 0; p.height = int(h) - 2; p.width = int(std::min<index_t>(w, 3));
  ps.push_back(p);
  p.top = 0; p.left = 0; p.height = 0; p.width = 0;  // failed erasing: no-op
  ps.push_back(p);
  return ps;
}

/// rsp_apply of the hand-made plans, one per sample.
template <class T>
void add_apply_job(torchvision_jobs& jobs, index_t c, index_t h, index_t w, double tol) {
  const auto plans = hand_plans(h, w);
  const index_t n = static_cast<index_t>(plans.size());
  const auto orig = test_images<T>(n, c, h, w, 42 + c);
  auto img = orig;
  for (index_t i = 0; i < n; ++i) rsp_apply(cpu, plans[i], img.data() + i * c * h * w, c, h, w);
  jobs.add("rsp_apply", orig, n, c, h, w, plans, img, tol);
}

/// rsp_perturb with probability 1 (every kind occurs) against the plans rsp_draw gives.
void add_perturb_job(torchvision_jobs& jobs, index_t c) {
  const index_t n = 40, h = 16, w = 14;
  const auto orig = test_images<float>(n, c, h, w, 5);
  auto img = orig;
  const rsp_options opt{1.0, 1234, 77};
  std::vector<std::int32_t> kinds(n, 99);
  rsp_perturb(cpu, image_batch_view<float>(img.data(), n, c, h, w), opt, make_vector_view(kinds.data(), n));
  std::vector<rsp_plan> plans;
  std::set<int> seen;
  for (index_t i = 0; i < n; ++i) {
    plans.push_back(rsp_draw(opt, i, c, h, w));
    CHECK(kinds[i] == static_cast<std::int32_t>(plans.back().kind));
    seen.insert(kinds[i]);
  }
  CHECK(seen == std::set<int>{0, 1, 2, 3});  // P(a kind missing among 40) < 4 * 0.75^40 = 4e-5
  jobs.add("rsp_perturb", orig, n, c, h, w, plans, img, 1e-5);
}

/// Brute-force double oracle for the blur: direct 9 x 5 2-d sum with torch-style reflected indices
/// (reflection repeated until inside, for images smaller than the kernel).
std::vector<double> blur_brute(const std::vector<double>& x01, index_t c, index_t h, index_t w, double sigma) {
  auto refl = [](index_t i, index_t n) {
    if (n == 1) return index_t(0);
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  };
  std::vector<double> out(x01.size());
  double norm = 0;
  for (int dy = -4; dy <= 4; ++dy)
    for (int dx = -2; dx <= 2; ++dx) norm += std::exp(-0.5 * (dy * dy + dx * dx) / (sigma * sigma));
  for (index_t ch = 0; ch < c; ++ch)
    for (index_t i = 0; i < h; ++i)
      for (index_t j = 0; j < w; ++j) {
        double s = 0;
        for (int dy = -4; dy <= 4; ++dy)
          for (int dx = -2; dx <= 2; ++dx)
            s += std::exp(-0.5 * (dy * dy + dx * dx) / (sigma * sigma)) *
                 x01[(ch * h + refl(i + dy, h)) * w + refl(j + dx, w)];
        out[(ch * h + i) * w + j] = s / norm;
      }
  return out;
}

double binomial_sigma(double n, double p) { return std::sqrt(n * p * (1 - p)); }

}  // namespace

TEST_CASE("philox4x32_10: Random123 known-answer vectors (kat_vectors)", "[rng]") {
  CHECK(philox({0, 0, 0, 0}, 0, 0) == block{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(philox({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, 0xffffffffu, 0xffffffffu) ==
        block{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(philox({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, 0xa4093822u, 0x299f31d0u) ==
        block{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("counter_rng: documented key/counter layout (oracle: direct philox4x32_10 calls)", "[rng]") {
  const std::uint64_t seed = 0x0123456789abcdefull, a = 0x00000000deadbeefull, b = 0x0000000500000007ull;
  counter_rng g(seed, a, b);
  const std::uint32_t k0 = 0x89abcdefu, k1 = 0x01234567u;
  const block b0 = philox({0u, 0xdeadbeefu, 7u, 0u ^ 5u}, k0, k1);
  const block b1 = philox({1u, 0xdeadbeefu, 7u, 0u ^ 5u}, k0, k1);
  for (int i = 0; i < 4; ++i) CHECK(g.next_u32() == b0[i]);
  for (int i = 0; i < 4; ++i) CHECK(g.next_u32() == b1[i]);
  counter_rng u(seed, a, b);
  const double expect = (double(b0[0] >> 5) * 67108864.0 + double(b0[1] >> 6)) / 9007199254740992.0;
  CHECK(u.uniform() == expect);

  SECTION("uniform(): in [0,1), mean and lag-1 correlation within 5 sigma of an ideal U[0,1)") {
    const int n = 200000;
    double s = 0, s2 = 0, prev = 0, cross = 0;
    counter_rng r(7, 3, 11);
    for (int i = 0; i < n; ++i) {
      const double x = r.uniform();
      REQUIRE(x >= 0.0);
      REQUIRE(x < 1.0);
      s += x; s2 += x * x;
      if (i) cross += (x - 0.5) * (prev - 0.5);
      prev = x;
    }
    CHECK(std::abs(s / n - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
    CHECK(std::abs(s2 / n - 1.0 / 3) < 5 * std::sqrt(4.0 / 45 / n));
    CHECK(std::abs(cross / n) < 5 * (1.0 / 12) / std::sqrt(double(n)));
  }
  SECTION("below(n) covers 0..n-1 uniformly (binomial bounds)") {
    counter_rng r(1, 2, 3);
    int hist[6] = {};
    const int n = 60000;
    for (int i = 0; i < n; ++i) {
      const auto k = r.below(6);
      REQUIRE(k >= 0);
      REQUIRE(k < 6);
      ++hist[k];
    }
    for (int k = 0; k < 6; ++k) CHECK(std::abs(hist[k] - n / 6.0) < 5 * binomial_sigma(n, 1.0 / 6));
  }
  SECTION("neighbouring streams are uncorrelated (first uniform of samples i and i+1)") {
    const int n = 100000;
    double cross = 0;
    for (int i = 0; i < n; ++i) {
      counter_rng r1(9, std::uint64_t(i), 4), r2(9, std::uint64_t(i) + 1, 4), r3(9, std::uint64_t(i), 5);
      const double x = r1.uniform() - 0.5;
      cross += x * (r2.uniform() - 0.5) + x * (r3.uniform() - 0.5);
    }
    CHECK(std::abs(cross / n) < 5 * std::sqrt(2.0) / 12 / std::sqrt(double(n)));
  }
}

TEST_CASE("rsp_apply and rsp_perturb match torchvision (oracle: rsp_oracle.py), C = 3 and C = 1",
          "[rsp][oracle]") {
  torchvision_jobs jobs;
  add_apply_job<float>(jobs, 3, 12, 10, 1e-5);
  add_apply_job<double>(jobs, 3, 11, 9, 1e-6);
  add_apply_job<float>(jobs, 1, 9, 13, 1e-5);
  add_apply_job<double>(jobs, 1, 5, 3, 1e-6);  // the smallest image torch can reflect-pad
  add_perturb_job(jobs, 3);
  add_perturb_job(jobs, 1);
  jobs.run();
}

TEST_CASE("rsp blur: tiny and constant images (oracle: brute-force double 2-d convolution)", "[rsp]") {
  for (auto [c, h, w] : {std::array<index_t, 3>{1, 1, 1}, {3, 2, 1}, {1, 3, 2}, {3, 4, 7}, {1, 13, 4}}) {
    for (double sigma : {0.1, 1.3, 5.0}) {
      auto img = test::uniform<double>(std::size_t(c * h * w), 100 + h, -1, 1);
      std::vector<double> x01(img.size());
      for (std::size_t i = 0; i < img.size(); ++i) x01[i] = img[i] * 0.5 + 0.5;
      const auto expect01 = blur_brute(x01, c, h, w, sigma);
      rsp_plan p;
      p.kind = rsp_kind::blur;
      p.sigma = sigma;
      rsp_apply(cpu, p, img.data(), c, h, w);
      INFO("C=" << c << " H=" << h << " W=" << w << " sigma=" << sigma);
      for (std::size_t i = 0; i < img.size(); ++i) CHECK(std::abs(img[i] - (expect01[i] - 0.5) / 0.5) < 1e-12);
    }
  }
  SECTION("all-equal image: blur keeps it, grayscale scales it by 0.9999 (torchvision weights)") {
    std::vector<float> img(3 * 6 * 5, 0.2f);
    rsp_plan p;
    p.kind = rsp_kind::blur;
    p.sigma = 3.0;
    rsp_apply(cpu, p, img.data(), 3, 6, 5);
    for (float v : img) CHECK(v == Approx(0.2f).margin(1e-6));
    p = {};
    p.kind = rsp_kind::grayscale;  // gray of (g,g,g) = 0.9999 g in torchvision's weights
    rsp_apply(cpu, p, img.data(), 3, 6, 5);
    for (float v : img) CHECK(v == Approx(2 * (0.9999 * 0.6) - 1).margin(1e-6));
  }
  SECTION("grayscale of a 1-channel image is the identity, bit for bit") {
    auto img = test::uniform<float>(1 * 4 * 4, 3, -1, 1);
    const auto orig = img;
    rsp_plan p;
    p.kind = rsp_kind::grayscale;
    rsp_apply(cpu, p, img.data(), 1, 4, 4);
    CHECK(img == orig);
  }
}

TEST_CASE("rsp_draw statistics (oracle: binomial bounds at 5 sigma, parameter ranges)", "[rsp]") {
  const index_t n = 40000, h = 112, w = 112;
  const rsp_options opt{0.2, 2024, 3};
  int perturbed = 0, per_kind[4] = {}, first_in_order[4] = {}, failed_erase = 0;
  double sigma_sum = 0;
  for (index_t i = 0; i < n; ++i) {
    const rsp_plan p = rsp_draw(opt, i, 3, h, w);
    if (p.kind == rsp_kind::none) continue;
    ++perturbed;
    ++per_kind[int(p.kind)];
    switch (p.kind) {
      case rsp_kind::blur:
        REQUIRE(p.sigma >= 0.1);
        REQUIRE(p.sigma <= 5.0);
        sigma_sum += p.sigma;
        break;
      case rsp_kind::color_jitter: {
        REQUIRE((p.brightness >= 0.1 && p.brightness <= 0.5));
        REQUIRE((p.contrast >= 0.3 && p.contrast <= 0.6));
        REQUIRE((p.saturation >= 0.2 && p.saturation <= 0.5));
        REQUIRE((p.hue >= -0.1 && p.hue <= 0.3));
        std::set<int> o(p.order, p.order + 4);
        REQUIRE(o == std::set<int>{0, 1, 2, 3});
        ++first_in_order[p.order[0]];
        break;
      }
      case rsp_kind::erasing: {
        if (p.height == 0) { ++failed_erase; break; }
        REQUIRE(p.top >= 0);
        REQUIRE(p.left >= 0);
        REQUIRE(p.top + p.height <= h);
        REQUIRE(p.left + p.width <= w);
        // h, w are sqrt(area * aspect), sqrt(area / aspect) rounded: undo the rounding by +-0.5.
        const double area = double(h) * double(w);
        REQUIRE((p.height - 0.5) * (p.width - 0.5) <= area / 3.0);
        REQUIRE((p.height + 0.5) * (p.width + 0.5) >= 0.02 * area);
        REQUIRE((p.height - 0.5) / (p.width + 0.5) <= 1 / 0.3);
        REQUIRE((p.height + 0.5) / (p.width - 0.5) >= 0.3);
        break;
      }
      default: break;
    }
  }
  CHECK(std::abs(perturbed - 0.2 * n) < 5 * binomial_sigma(n, 0.2));
  for (int k = 0; k < 4; ++k) CHECK(std::abs(per_kind[k] - perturbed / 4.0) < 5 * binomial_sigma(perturbed, 0.25));
  for (int k = 0; k < 4; ++k)
    CHECK(std::abs(first_in_order[k] - per_kind[2] / 4.0) < 5 * binomial_sigma(per_kind[2], 0.25));
  // sigma ~ U[0.1, 5]: mean 2.55, sd 4.9 / sqrt(12)
  CHECK(std::abs(sigma_sum / per_kind[0] - 2.55) < 5 * 4.9 / std::sqrt(12.0 * per_kind[0]));
  // every attempt fits in a 112 x 112 image unless aspect * area pushes a side past 111: rare
  CHECK(failed_erase < per_kind[3] / 20);
}

TEST_CASE("rsp_perturb: determinism, step/seed dependence, thread independence, probability 0 and 1",
          "[rsp]") {
  const index_t n = 64, c = 3, h = 12, w = 11;
  const auto orig = test_images<float>(n, c, h, w, 9);
  auto run = [&](rsp_options opt, std::vector<std::int32_t>* kinds = nullptr) {
    auto img = orig;
    std::vector<std::int32_t> k(n, 99);
    rsp_perturb(cpu, image_batch_view<float>(img.data(), n, c, h, w), opt, make_vector_view(k.data(), n));
    if (kinds) *kinds = k;
    return img;
  };
  std::vector<std::int32_t> k1, k2, k3, k4;
  const auto a = run({0.5, 1, 2}, &k1);
  const auto b = run({0.5, 1, 2}, &k2);
  CHECK(a == b);  // oracle: itself at the same (seed, step) — bitwise reproducibility
  CHECK(k1 == k2);
  run({0.5, 1, 3}, &k3);
  run({0.5, 2, 2}, &k4);
  CHECK(k3 != k1);  // P(equal kind vectors over 64 samples) < 0.5^64
  CHECK(k4 != k1);
  CHECK(a != orig);
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = run({0.5, 1, 2});
  omp_set_num_threads(3);
  const auto three = run({0.5, 1, 2});
  omp_set_num_threads(threads);
  CHECK(one == a);
  CHECK(three == a);
#endif
  std::vector<std::int32_t> k0;
  CHECK(run({0.0, 5, 5}, &k0) == orig);
  CHECK(k0 == std::vector<std::int32_t>(n, -1));
  std::vector<std::int32_t> kall;
  run({1.0, 5, 5}, &kall);
  for (auto k : kall) CHECK(k != -1);
  // NaN probability: rsp_draw (pure, never throws) perturbs nothing
  CHECK(rsp_draw({std::numeric_limits<double>::quiet_NaN(), 0, 0}, 0, 3, 8, 8).kind == rsp_kind::none);
  SECTION("single sample, empty batch, C = 1, double") {
    std::vector<double> one1 = test::uniform<double>(1 * 1 * 7 * 6, 1, -1, 1);
    rsp_perturb(cpu, image_batch_view<double>(one1.data(), 1, 1, 7, 6), rsp_options{1.0, 3, 4});
    const rsp_plan p = rsp_draw({1.0, 3, 4}, 0, 1, 7, 6);
    auto ref = test::uniform<double>(1 * 1 * 7 * 6, 1, -1, 1);
    rsp_apply(cpu, p, ref.data(), 1, 7, 6);
    CHECK(one1 == ref);
    rsp_perturb(cpu, image_batch_view<double>(nullptr, 0, 3, 4, 4), rsp_options{});
  }
}

TEST_CASE("rsp: bad input throws and names the argument; nothing is written", "[rsp][errors]") {
  std::vector<float> img = test::uniform<float>(2 * 3 * 6 * 5, 1, -1, 1);
  const auto orig = img;
  std::vector<std::int32_t> kinds(2);
  auto view = [&](index_t c, index_t h, index_t w) { return image_batch_view<float>(img.data(), 2, c, h, w); };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(rsp_perturb(cpu, view(3, 6, 5), rsp_options{-0.1, 0, 0}), Contains("probability"));
  CHECK_THROWS_WITH(rsp_perturb(cpu, view(3, 6, 5), rsp_options{1.5, 0, 0}), Contains("probability"));
  CHECK_THROWS_WITH(rsp_perturb(cpu, view(3, 6, 5), rsp_options{nan, 0, 0}), Contains("probability"));
  CHECK_THROWS_WITH(rsp_perturb(cpu, image_batch_view<float>(img.data(), 2, 2, 9, 5), rsp_options{}),
                    Contains("images") && Contains("C = 1 or 3"));
  CHECK_THROWS_WITH(rsp_perturb(cpu, view(3, 0, 5), rsp_options{}), Contains("images") && Contains("H, W"));
  CHECK_THROWS_WITH(rsp_perturb(cpu, image_batch_view<float>(nullptr, 2, 3, 6, 5), rsp_options{}),
                    Contains("images") && Contains("null"));
  CHECK_THROWS_WITH(rsp_perturb(cpu, view(3, 6, 5), rsp_options{}, make_vector_view(kinds.data(), 1)),
                    Contains("kinds"));
  img[37] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(rsp_perturb(cpu, view(3, 6, 5), rsp_options{1.0, 0, 0}), Contains("images") && Contains("index 37"));
  img[37] = orig[37];
  img[100] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(rsp_perturb(cpu, view(3, 6, 5), rsp_options{1.0, 0, 0}), Contains("index 100") && Contains("sample 1"));
  img[100] = orig[100];
  CHECK(img == orig);  // every failed call left the batch untouched
  {  // past the first 4096-element block of the scan, and -inf
    std::vector<double> big(2 * 3 * 40 * 40, 0.5);
    big[9000] = -std::numeric_limits<double>::infinity();
    big[9500] = nan;
    CHECK_THROWS_WITH(rsp_perturb(cpu, image_batch_view<double>(big.data(), 2, 3, 40, 40), rsp_options{}),
                      Contains("index 9000") && Contains("sample 1"));
  }

  rsp_plan p;
  p.kind = rsp_kind::blur;
  p.sigma = 1;
  CHECK_THROWS_WITH(rsp_apply<float>(cpu, p, nullptr, 3, 6, 5), Contains("image") && Contains("null"));
  CHECK_THROWS_WITH(rsp_apply(cpu, p, img.data(), 2, 6, 5), Contains("image") && Contains("C = 1 or 3"));
  CHECK_THROWS_WITH(rsp_apply(cpu, p, img.data(), 3, 6, 0), Contains("image") && Contains("H, W"));
  img[4] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(rsp_apply(cpu, p, img.data(), 3, 6, 5), Contains("image") && Contains("index 4"));
  img[4] = orig[4];
  p.sigma = 0;
  CHECK_THROWS_WITH(rsp_apply(cpu, p, img.data(), 3, 6, 5), Contains("plan") && Contains("sigma"));
  p = {};
  p.kind = rsp_kind::color_jitter;
  p.order[2] = 0;
  CHECK_THROWS_WITH(rsp_apply(cpu, p, img.data(), 3, 6, 5), Contains("plan") && Contains("permutation"));
  p.order[2] = 2;
  p.hue = 0.7;
  CHECK_THROWS_WITH(rsp_apply(cpu, p, img.data(), 3, 6, 5), Contains("plan") && Contains("hue"));
  p.hue = 0;
  p.contrast = -1;
  CHECK_THROWS_WITH(rsp_apply(cpu, p, img.data(), 3, 6, 5), Contains("plan") && Contains("contrast"));
  p = {};
  p.kind = rsp_kind::erasing;
  p.top = 4; p.height = 3; p.width = 1;
  CHECK_THROWS_WITH(rsp_apply(cpu, p, img.data(), 3, 6, 5), Contains("plan") && Contains("rectangle"));
  p = {};
  p.kind = static_cast<rsp_kind>(7);
  CHECK_THROWS_WITH(rsp_apply(cpu, p, img.data(), 3, 6, 5), Contains("plan") && Contains("kind"));
  CHECK(img == orig);
}
