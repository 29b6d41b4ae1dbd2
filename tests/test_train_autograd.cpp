// The trainer's autograd functions (examples/train/autograd.hpp) against an independent oracle: LibTorch
// autograd of the same formula written with tensor ops, in double precision. Built only with LibTorch
// (tests/train.cmake).
#include "support.hpp"

#include <torch/torch.h>

#include <cmath>

#include <topofr/persistence.hpp>

#include "../examples/train/autograd.hpp"
#include "../examples/train/iresnet.hpp"

// LibTorch built with glog (Debian's) defines its own CHECK (abort on failure) over Catch's: restore Catch's.
#undef CHECK
#define CHECK(...) INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)

using namespace topofr;
using topofr::train::ISA;
using topofr::train::MarginCE;

namespace {

/// ArcFace margin CE in tensor ops (insightface's CombinedMarginLoss with m1 = 1, m3 = 0, then
/// cross-entropy): the oracle. Rows labelled -1 (target on another shard) or -100 (ignored) get no margin
/// and a zero loss. With for_gradient, a -1 row adds its logsumexp instead (times w / N): the part of the
/// row's loss whose gradient lives on this shard, p (Partial FC); a -100 row adds nothing. w: constants.
/// straight: the margin applied as arcface_torch does, under no_grad (the logits' derivative is s everywhere).
torch::Tensor oracle_margin_ce(const torch::Tensor& cos, const torch::Tensor& labels, double s, double m,
                               const torch::Tensor& w, bool for_gradient = false, bool straight = false) {
  const auto valid = labels.ge(0);
  const auto idx = labels.clamp_min(0).unsqueeze(1);
  const auto target = cos.gather(1, idx).squeeze(1);
  const auto theta = torch::acos(target);
  const auto with_margin =
      torch::where(target > std::cos(M_PI - m), torch::cos(theta + m), target - std::sin(M_PI - m) * m);
  const auto new_target = torch::where(valid, with_margin, target);
  auto logits = cos.scatter(1, idx, new_target.unsqueeze(1)) * s;
  if (straight) logits = (cos + (logits / s - cos).detach()) * s;
  const auto lse = torch::logsumexp(logits, 1);
  const auto loss = lse - logits.gather(1, idx).squeeze(1);
  auto term = torch::where(valid, loss, torch::zeros_like(loss));
  if (for_gradient) term = term + torch::where(labels.eq(-1), lse, torch::zeros_like(lse));
  return (term * w).mean();
}

/// ISA in tensor ops on fixed persistence pairs (the pairs are piecewise constant in the points).
torch::Tensor oracle_isa(const torch::Tensor& x, const torch::Tensor& z, const std::vector<edge>& px,
                         const std::vector<edge>& pz, const isa_options& o) {
  auto d = [](const torch::Tensor& p, const std::vector<edge>& e, double scale) {
    std::vector<std::int64_t> u, v;
    for (const edge& k : e) u.push_back(k.u), v.push_back(k.v);
    const auto iu = torch::tensor(u), iv = torch::tensor(v);
    return (p.index_select(0, iu) - p.index_select(0, iv)).pow(2).sum(1).sqrt() / scale;
  };
  torch::Tensor l;
  if (o.variant == isa_variant::symmetric)
    l = 0.5 * ((d(x, px, o.x_scale) - d(z, px, o.z_scale)).pow(2).sum() +
               (d(z, pz, o.z_scale) - d(x, pz, o.x_scale)).pow(2).sum());
  else
    l = (d(x, px, o.x_scale) - d(z, pz, o.z_scale)).pow(2).sum();
  return o.reduce == reduction::mean ? l / static_cast<double>(x.size(0)) : l;
}

std::vector<edge> pairs_of(const torch::Tensor& p, double scale) {
  const torch::Tensor c = p.detach().to(torch::kDouble).contiguous();
  const std::int64_t n = c.size(0), d = c.size(1);
  std::vector<double> dist(static_cast<std::size_t>(n * n));
  pairwise_distances(cpu, matrix_view<const double>(c.data_ptr<double>(), n, d),
                     matrix_view<double>(dist.data(), n, n), scale);
  std::vector<edge> e(static_cast<std::size_t>(n - 1));
  persistence_pairs(cpu, matrix_view<const double>(dist.data(), n, n), vector_view<edge>(e.data(), n - 1));
  return e;
}

double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  const auto ad = a.to(torch::kDouble), bd = b.to(torch::kDouble);
  return ((ad - bd).abs().max() / bd.abs().max().clamp_min(1e-300)).item<double>();
}

}  // namespace

TEMPLATE_TEST_CASE("MarginCE gradient vs LibTorch autograd of the ArcFace CE formula (oracle: tensor ops in double)",
                   "[train][autograd]", float, double) {
  const auto dtype = std::is_same<TestType, float>::value ? torch::kFloat : torch::kDouble;
  const double tol = std::is_same<TestType, float>::value ? 2e-4 : 1e-9;
  torch::manual_seed(3);
  const std::int64_t n = 24, c = 10;
  // Cosines in (-0.95, 0.95): away from +-1, where acos in the oracle has an infinite derivative. A few
  // targets below cos(pi - m) exercise the insightface fallback branch.
  torch::Tensor cos0 = (torch::rand({n, c}, torch::kDouble) * 1.9 - 0.95);
  torch::Tensor labels = torch::randint(0, c, {n}, torch::kLong);
  labels[5] = -1;    // a sample whose class is in another shard
  labels[7] = -100;  // an ignored sample (topofr::ignore_label)
  cos0[0][labels[0].item<std::int64_t>()] = -0.93;
  cos0[1][labels[1].item<std::int64_t>()] = 0.94;
  const double go = 2.5;  // a grad_output other than 1

  struct variant {
    bool sds, focal, straight;
  };
  for (const variant v : {variant{false, true, false}, variant{true, true, false}, variant{true, false, false},
                          variant{true, true, true}}) {
    const bool sds = v.sds, focal = v.focal, straight = v.straight;
    DYNAMIC_SECTION("sds " << sds << " focal " << focal << " straight-through " << straight) {
      train::margin_ce_config cfg;
      cfg.sds = sds;
      cfg.focal = focal;
      cfg.margin.s = 64.0;
      cfg.margin.m2 = 0.5;
      cfg.margin.straight_through = straight;
      train::margin_ce_stats st;
      torch::Tensor cos = cos0.to(dtype).clone().set_requires_grad(true);
      torch::Tensor loss = MarginCE::apply(cos, labels, cfg, &st);
      (loss * go).backward();

      // The weights are constants of the objective (no gradient through omega): the oracle takes them.
      REQUIRE(st.weights.numel() == n);
      if (!sds) CHECK(st.weights.eq(1).all().item<bool>());
      if (sds && focal) CHECK(st.weights.le(2.0).all().item<bool>());
      torch::Tensor cd = cos0.to(dtype).to(torch::kDouble).clone().set_requires_grad(true);
      const torch::Tensor wd = st.weights.to(torch::kDouble);
      const torch::Tensor ref = oracle_margin_ce(cd.detach(), labels, 64.0, 0.5, wd);
      (oracle_margin_ce(cd, labels, 64.0, 0.5, wd, true, straight) * go).backward();
      CHECK(std::fabs(loss.item<double>() - ref.item<double>()) <= tol * std::fabs(ref.item<double>()));
      CHECK(max_rel(cos.grad(), cd.grad()) <= tol);
      CHECK(cos.grad()[5].abs().max().item<double>() > 0.0);   // label -1: p (the target is elsewhere)
      CHECK(cos.grad()[7].abs().max().item<double>() == 0.0);  // label -100: no gradient
    }
  }
}

TEMPLATE_TEST_CASE("ISA gradient vs LibTorch autograd on the library's fixed pairs (oracle: tensor ops in double)",
                   "[train][autograd]", float, double) {
  const auto dtype = std::is_same<TestType, float>::value ? torch::kFloat : torch::kDouble;
  const double tol = std::is_same<TestType, float>::value ? 1e-4 : 1e-10;
  torch::manual_seed(5);
  for (std::int64_t n : {2, 3, 16}) {
    for (isa_variant v : {isa_variant::symmetric, isa_variant::sorted_deaths}) {
      DYNAMIC_SECTION("n " << n << " variant " << static_cast<int>(v)) {
        const torch::Tensor x = (torch::rand({n, 3, 6, 5}, torch::kDouble) * 2 - 1).to(dtype);
        const torch::Tensor z0 = torch::randn({n, 8}, torch::kDouble).to(dtype);
        const isa_options o = train::image_isa_options(3, 6, 5, v);
        torch::Tensor z = z0.clone().set_requires_grad(true);
        torch::Tensor loss = ISA::apply(x, z, o);
        (loss * 0.7).backward();

        const torch::Tensor xd = x.to(torch::kDouble).reshape({n, -1});
        torch::Tensor zd = z0.to(torch::kDouble).clone().set_requires_grad(true);
        const auto px = pairs_of(xd, o.x_scale), pz = pairs_of(zd, o.z_scale);
        torch::Tensor ref = oracle_isa(xd, zd, px, pz, o);
        (ref * 0.7).backward();
        CHECK(std::fabs(loss.item<double>() - ref.item<double>()) <= tol * std::fabs(ref.item<double>()) + 1e-12);
        CHECK(max_rel(z.grad(), zd.grad()) <= tol);
      }
    }
  }
}

TEST_CASE("ISA: coincident latent points give a finite gradient; bad inputs throw naming the argument",
          "[train][autograd]") {
  torch::Tensor x = torch::rand({4, 3, 4, 4}, torch::kDouble) * 2 - 1;
  torch::Tensor z = torch::zeros({4, 5}, torch::kDouble).set_requires_grad(true);
  ISA::apply(x, z, train::image_isa_options(3, 4, 4, isa_variant::symmetric)).backward();
  CHECK(torch::isfinite(z.grad()).all().item<bool>());
  // All latent points coincide: the library's convention is a zero gradient (no direction to move apart).
  CHECK(z.grad().abs().max().item<double>() == 0.0);

  torch::Tensor zi = torch::zeros({4, 5}, torch::kLong);
  CHECK_THROWS_WITH(ISA::apply(x, zi, isa_options{}), Catch::Contains("z"));
  torch::Tensor z1 = torch::zeros({1, 5}, torch::kDouble).set_requires_grad(true);
  CHECK_THROWS_WITH(ISA::apply(x.narrow(0, 0, 1), z1, isa_options{}), Catch::Contains("x"));
  torch::Tensor ci = torch::zeros({4, 3}, torch::kInt);
  CHECK_THROWS_WITH(MarginCE::apply(ci, torch::zeros({4}, torch::kLong), train::margin_ce_config{}, nullptr),
                    Catch::Contains("cos"));
  torch::Tensor cos = torch::zeros({4, 3}, torch::kDouble).set_requires_grad(true);
  CHECK_THROWS_WITH(MarginCE::apply(cos, torch::full({4}, 3, torch::kLong), train::margin_ce_config{}, nullptr),
                    Catch::Contains("labels"));
}

TEST_CASE("IResNet: insightface block structure and embedding shape (oracle: the architecture's arithmetic)",
          "[train][iresnet]") {
  torch::manual_seed(1);
  train::iresnet_options o;
  o.depth = 18;
  o.width = 0.25;
  o.height = 40;
  o.width_px = 36;
  o.embedding = 32;
  train::IResNet net(o);
  const auto z = net->forward(torch::rand({3, 3, 40, 36}) * 2 - 1);
  CHECK(z.sizes() == torch::IntArrayRef({3, 32}));
  // Four stride-2 stages: 40 x 36 -> 3 x 3; 128 channels at width 0.25.
  CHECK(net->fc->weight.size(1) == 128 * 3 * 3);
  // Depth 18: 2 + 2 + 2 + 2 blocks; the first block of each stage projects the shortcut.
  std::int64_t blocks = 0, projections = 0;
  for (auto& s : net->stages)
    for (auto& m : s->children()) {
      ++blocks;
      projections += m->as<train::IBasicBlockImpl>()->down_conv ? 1 : 0;
    }
  CHECK(blocks == 8);
  CHECK(projections == 4);
  CHECK_FALSE(net->features->weight.requires_grad());
  CHECK_THROWS_WITH(train::iresnet_layers(20), Catch::Contains("depth"));
}
