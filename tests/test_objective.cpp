// topofr::objective against an independent oracle: the whole TopoFR loss written in float64 PyTorch
// autograd (tests/oracles/objective_oracle.py, with its own NumPy GUM EM and its own Kruskal).
#include <topofr/objective.hpp>

#include <algorithm>
#include <cmath>

#include "support.hpp"

using namespace topofr;
namespace tt = topofr::test;

namespace {

struct problem {
  index_t n = 24, dx = 40, dz = 12, classes = 30;
  std::vector<double> x, z, cos;
  std::vector<std::int64_t> labels;
};

problem make_problem(std::uint64_t seed) {
  problem p;
  p.x = tt::normal<double>(p.n * p.dx, seed);
  p.z = tt::normal<double>(p.n * p.dz, seed + 1);
  // Cosines of normalised embeddings against normalised class weights, as a trainer produces them.
  auto w = tt::normal<double>(p.classes * p.dz, seed + 2);
  p.cos.resize(p.n * p.classes);
  std::mt19937_64 g(seed + 3);
  p.labels.resize(p.n);
  for (index_t i = 0; i < p.n; ++i) {
    p.labels[i] = static_cast<std::int64_t>(g() % p.classes);
    double zn = 0;
    for (index_t k = 0; k < p.dz; ++k) zn += p.z[i * p.dz + k] * p.z[i * p.dz + k];
    for (index_t j = 0; j < p.classes; ++j) {
      double dot = 0, wn = 0;
      for (index_t k = 0; k < p.dz; ++k) {
        dot += p.z[i * p.dz + k] * w[j * p.dz + k];
        wn += w[j * p.dz + k] * w[j * p.dz + k];
      }
      p.cos[i * p.classes + j] = std::clamp(dot / std::sqrt(zn * wn), -1.0, 1.0);
    }
    // Pull some samples towards their class so that the batch has easy and hard samples.
    if (i % 3 == 0) p.cos[i * p.classes + p.labels[i]] = 0.6 + 0.01 * static_cast<double>(i % 7);
  }
  return p;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double a : v) m = std::max(m, std::abs(a));
  return m;
}

template <class T>
void compare_with_oracle(const objective_options& opt, std::uint64_t seed, double tol) {
  const problem p = make_problem(seed);
  const std::string dir = tt::scratch("objective_" + std::to_string(seed));
  std::filesystem::create_directories(dir);
  tt::save(dir + "/x.npy", p.x, {p.n, p.dx});
  tt::save(dir + "/z.npy", p.z, {p.n, p.dz});
  tt::save(dir + "/cos.npy", p.cos, {p.n, p.classes});
  tt::save(dir + "/labels.npy", p.labels, {p.n});
  const std::string variant = opt.isa.variant == isa_variant::symmetric ? "symmetric" : "sorted_deaths";
  if (!tt::oracle("objective_oracle.py",
                  {dir, std::to_string(opt.alpha), std::to_string(opt.margin.s), std::to_string(opt.margin.m2), variant,
                   opt.focal ? "1" : "0", opt.use_sds ? "1" : "0", opt.use_isa ? "1" : "0",
                   std::to_string(opt.isa.x_scale), std::to_string(opt.isa.z_scale)}))
    return;

  const auto x = cast<T>(p.x), z = cast<T>(p.z), cos = cast<T>(p.cos);
  std::vector<T> gz(p.n * p.dz), gc(p.n * p.classes);
  objective<T> obj(opt);
  const auto r = obj(cpu, matrix_view<const T>(x.data(), p.n, p.dx), matrix_view<const T>(z.data(), p.n, p.dz),
                     matrix_view<const T>(cos.data(), p.n, p.classes),
                     vector_view<const std::int64_t>(p.labels.data(), p.n), matrix_view<T>(gz.data(), p.n, p.dz),
                     matrix_view<T>(gc.data(), p.n, p.classes));
  const auto stats = tt::load<double>(dir + "/stats.npy");
  INFO("loss " << r.loss << " oracle " << stats[0] << "; cls " << r.loss_cls << " / " << stats[1] << "; isa "
               << r.discrepancy << " / " << stats[2] << "; pi " << r.pi << " / " << stats[3]);
  CHECK(tt::rel(r.loss, stats[0]) < tol);
  CHECK(tt::rel(r.loss_cls, stats[1]) < tol);
  CHECK(std::abs(r.discrepancy - stats[2]) <= tol * std::max(1e-3, std::abs(stats[2])));
  if (opt.use_sds) {
    // float entropies carry float rounding into the EM: pi and sigma then agree to the test tolerance
    CHECK(std::abs(r.pi - stats[3]) < std::max(1e-6, tol));
    CHECK(tt::rel(r.sigma, stats[4], 1e-12) < std::max(1e-6, tol));
    CHECK(r.hard_fraction == Approx(stats[5]));
  }
  const auto ref_gz = tt::load<double>(dir + "/grad_z.npy");
  const auto ref_gc = tt::load<double>(dir + "/grad_cos.npy");
  const auto ref_omega = tt::load<double>(dir + "/omega.npy");
  const double sz = std::max(max_abs(ref_gz), 1e-12), sc = std::max(max_abs(ref_gc), 1e-12);
  double ez = 0, ec = 0, ew = 0;
  for (std::size_t i = 0; i < gz.size(); ++i) ez = std::max(ez, std::abs(gz[i] - ref_gz[i]) / sz);
  for (std::size_t i = 0; i < gc.size(); ++i) ec = std::max(ec, std::abs(gc[i] - ref_gc[i]) / sc);
  for (index_t i = 0; i < p.n; ++i) ew = std::max(ew, std::abs(obj.weights()[i] - ref_omega[i]));
  INFO("max grad_z error " << ez << ", grad_cos error " << ec << ", omega error " << ew);
  CHECK(ez < tol);
  CHECK(ec < tol);
  CHECK(ew < 10 * tol);
}

}  // namespace

TEST_CASE("objective matches the PyTorch-autograd oracle (paper options, double)", "[objective][oracle:torch]") {
  compare_with_oracle<double>(objective_options::paper(), 11, 1e-8);
}

TEST_CASE("objective matches the PyTorch-autograd oracle (released-code options, double)", "[objective][oracle:torch]") {
  auto o = objective_options::released_code();
  o.isa.x_scale = 3.0;
  compare_with_oracle<double>(o, 12, 1e-8);
}

TEST_CASE("objective ablations match the PyTorch-autograd oracle (double)", "[objective][oracle:torch]") {
  auto a = objective_options::paper();
  a.use_sds = false;
  compare_with_oracle<double>(a, 13, 1e-8);
  auto b = objective_options::paper();
  b.use_isa = false;
  compare_with_oracle<double>(b, 14, 1e-8);
}

TEST_CASE("objective in float matches the PyTorch-autograd oracle", "[objective][oracle:torch]") {
  compare_with_oracle<float>(objective_options::paper(), 15, 2e-4);
}

TEST_CASE("objective rejects bad arguments, naming them", "[objective][errors]") {
  auto bad = objective_options::paper();
  bad.alpha = -1;
  CHECK_THROWS_WITH(objective<float>(bad), Catch::Contains("alpha"));
  bad = objective_options::paper();
  bad.lambda = std::nan("");
  CHECK_THROWS_WITH(objective<float>(bad), Catch::Contains("lambda"));

  const problem p = make_problem(3);
  const auto x = cast<float>(p.x), z = cast<float>(p.z), cos = cast<float>(p.cos);
  std::vector<float> gz(p.n * p.dz), gc(p.n * p.classes);
  objective<float> obj;
  // z with a different number of rows than cos
  CHECK_THROWS_WITH(obj(cpu, matrix_view<const float>(x.data(), p.n, p.dx),
                        matrix_view<const float>(z.data(), p.n - 1, p.dz),
                        matrix_view<const float>(cos.data(), p.n, p.classes),
                        vector_view<const std::int64_t>(p.labels.data(), p.n),
                        matrix_view<float>(gz.data(), p.n - 1, p.dz), matrix_view<float>(gc.data(), p.n, p.classes)),
                    Catch::Contains("z"));
  // a label out of range reaches the head's check
  auto labels = p.labels;
  labels[2] = p.classes;
  CHECK_THROWS_WITH(obj(cpu, matrix_view<const float>(x.data(), p.n, p.dx),
                        matrix_view<const float>(z.data(), p.n, p.dz),
                        matrix_view<const float>(cos.data(), p.n, p.classes),
                        vector_view<const std::int64_t>(labels.data(), p.n), matrix_view<float>(gz.data(), p.n, p.dz),
                        matrix_view<float>(gc.data(), p.n, p.classes)),
                    Catch::Contains("labels"));
}

TEST_CASE("objective: labels -1 (target on another shard) and -100 (ignored) reach the head as they are",
          "[objective]") {
  // Oracle: the head's own margin_ce_forward / margin_ce_backward called directly with the objective's SDS
  // weights and grad_scale 1/N (the head itself is checked against PyTorch in test_arcface); and the
  // documented per-kind behaviour: loss 0 for both rows, gradient s p (-1) or zero (-100).
  problem p = make_problem(5);
  p.labels[4] = -1;
  p.labels[7] = ignore_label;
  objective_options opt;
  opt.use_isa = false;
  objective<double> obj(opt);
  std::vector<double> gz(p.n * p.dz), gc(p.n * p.classes);
  const matrix_view<const double> cv(p.cos.data(), p.n, p.classes);
  const vector_view<const std::int64_t> yv(p.labels.data(), p.n);
  const auto r = obj(cpu, matrix_view<const double>(p.x.data(), p.n, p.dx),
                     matrix_view<const double>(p.z.data(), p.n, p.dz), cv, yv,
                     matrix_view<double>(gz.data(), p.n, p.dz), matrix_view<double>(gc.data(), p.n, p.classes));
  CHECK(std::isfinite(r.loss));
  CHECK(obj.sample_loss()[4] == 0.0);
  CHECK(obj.sample_loss()[7] == 0.0);
  std::vector<double> loss(p.n), lse(p.n), want(p.n * p.classes);
  margin_ce_forward(cpu, cv, yv, opt.margin, opt.entropy_eps, vector_view<double>(loss.data(), p.n), {}, {},
                    vector_view<double>(lse.data(), p.n));
  margin_ce_backward(cpu, cv, yv, opt.margin, vector_view<const double>(lse.data(), p.n),
                     vector_view<const double>(obj.weights().data(), p.n), 1.0 / static_cast<double>(p.n),
                     matrix_view<double>(want.data(), p.n, p.classes));
  double row4 = 0;
  for (index_t j = 0; j < p.classes; ++j) {
    CHECK(gc[7 * p.classes + j] == 0.0);
    row4 = std::max(row4, std::abs(gc[4 * p.classes + j]));
  }
  CHECK(row4 > 0.0);
  for (index_t k = 0; k < p.n * p.classes; ++k) CHECK(gc[k] == Approx(want[k]).epsilon(1e-12).margin(1e-15));
}
