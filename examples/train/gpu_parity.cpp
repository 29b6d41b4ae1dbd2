// topofr-train-gpu-check — does the trainer's CUDA path (autograd.hpp -> gpu_blocks.cu on LibTorch's stream and
// caching allocator) compute what its CPU path computes, and does it train? Built only with a CUDA LibTorch and
// nvcc (TOPOFR_TRAIN_GPU); run by tests/gpu_train_check.sh on a GPU machine. Prints a markdown table of
// PASS/FAIL/SKIPPED rows and exits 1 when a row failed.
//
//   1. blocks-float, blocks-double: the TopoFR loss blocks alone, the trainer's own autograd functions
//      (MarginCE with SDS, ISA on the unit-normalised embedding) on the SAME cosines / embeddings, once as CPU
//      tensors (the CPU blocks) and once as CUDA tensors (the CUDA blocks): losses, d/dcos, d/dz, the SDS weights
//      and the GUM fit. Tolerances (relative, max-abs error over max-abs of the CPU value):
//        float  1e-4: the library's own CPU<->CUDA contract for float (docs/cuda.md): CUDA's expf/logf and
//               another summation order move each value by a few ulp, and s = 64 scales the logits (64 * 6e-8
//               ~ 4e-6 relative in the probabilities); ISA sums in double on both sides;
//        double 1e-7: the same computations in double (errors ~1e-14) but GUM's stopping rule (EM stops when a
//               change falls below 1e-10, so the two sides may stop one iteration apart, |d iterations| <= 1 is
//               required, and ~200 slowly converging iterations leave the fits ~1e-9 apart): far below any bug.
//        (Measured on the CPU: the float blocks differ from the double ones by <= 5e-7, and a 1e-7 relative
//        perturbation of the cosines moves the float results by <= 2e-6.)
//   2. streams: the float blocks again under a non-default LibTorch stream (c10::cuda::CUDAStreamGuard) give the
//      default stream's results (the blocks follow LibTorch's current stream); bit-identity is reported.
//   3. errors: a label out of range and a NaN embedding on CUDA throw topofr::error naming the device status,
//      and the caching allocator holds exactly the bytes it held before (scratch released by RAII), and the
//      next call works.
//   4. end-to-end (double): a small IResNet and one batch, from the same weights and data on CPU and CUDA:
//      the full TopoFR loss (L_cls + alpha L_sa, RSP on the host as the trainer), d/dcos, d/dz and every
//      parameter gradient. Double, because the backbone on the GPU (cuDNN, TF32) differs from the CPU's in float
//      by ~1e-5..1e-3, which would both hide a block bug and possibly flip a persistence pair (a discrete change
//      of the ISA gradient) at a near-tie; in double the backbones agree to ~1e-12 and the tolerance is 1e-6
//      (per tensor, relative to its max-abs, floored at 1e-3 of the largest gradient entry for the tensors whose
//      gradient is ~0, e.g. the FC bias in front of the embedding BatchNorm).
//   5. train (float, the trainer's precision): --steps SGD steps on the synthetic faces on CUDA; every loss is
//      finite and the loss and the unweighted ArcFace CE fall (mean of the last 10 steps below 0.8 x the mean of
//      the first 10); device memory held by tensors does not grow between step 10 and the last by one
//      caching-allocator block (512 bytes) per step or more (a leaked scratch block per step).
// Usage: topofr-train-gpu-check [--steps N (50)] [--seed S (1)] [--device cuda|cpu (train only; cpu: calibration)]
//        [--self-test: checks 1, 4 and 5 with the CPU in place of CUDA (errors must be 0): tests this program]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <topofr/core/error.hpp>
#include <topofr/rsp.hpp>

#include "autograd.hpp"
#include "dataset.hpp"
#include "iresnet.hpp"
#include "stb_impl.hpp"
#include "synthetic.hpp"

#if defined(TOPOFR_TRAIN_TORCH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

using namespace topofr;
using namespace topofr::train;
using clock_type = std::chrono::steady_clock;
namespace F = torch::nn::functional;

namespace {

struct row {
  std::string name, result, detail;
  double seconds = 0;
};
std::vector<row> rows;
bool failed = false;

/// Runs one check; it returns "" on success or what failed. Exceptions are failures.
void check(const std::string& name, const std::function<std::string(std::string& detail)>& body) {
  const auto t0 = clock_type::now();
  row r{name, "PASS", "", 0};
  try {
    const std::string why = body(r.detail);
    if (!why.empty()) r.result = "FAIL", r.detail = why + (r.detail.empty() ? "" : "; " + r.detail);
  } catch (const std::exception& e) {
    r.result = "FAIL";
    r.detail = std::string("exception: ") + e.what() + (r.detail.empty() ? "" : "; " + r.detail);
  }
  r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (r.result != "PASS") failed = true;
  std::fprintf(stderr, "[%s] %s (%.1f s) %s\n", r.result.c_str(), name.c_str(), r.seconds, r.detail.c_str());
  rows.push_back(r);
}
void skip(const std::string& name, const std::string& why) { rows.push_back({name, "SKIPPED", why, 0}); }

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

/// max |got - ref| / max(max |ref|, floor), both moved to the CPU in double.
double rel_err(const torch::Tensor& got, const torch::Tensor& ref, double floor = 1e-300) {
  const torch::Tensor g = got.detach().to(torch::kCPU, torch::kDouble), r = ref.detach().to(torch::kCPU, torch::kDouble);
  if (g.sizes() != r.sizes()) return INFINITY;
  if (r.numel() == 0) return 0;
  const double num = (g - r).abs().max().item<double>();
  const double den = std::max(r.abs().max().item<double>(), floor);
  return std::isnan(num) ? INFINITY : num / den;
}
double rel_err(double got, double ref) {
  return std::abs(got - ref) / std::max(std::abs(ref), 1e-300) + (std::isfinite(got) ? 0 : INFINITY);
}

/// Accumulates "name err" entries and the worst ratio err / tol.
struct compare {
  explicit compare(double t) : tol(t) {}
  double tol;
  std::ostringstream text;
  std::string bad;
  void add(const std::string& what, double err) {
    text << (text.tellp() > 0 ? ", " : "") << what << ' ' << fmt("%.2g", err);
    if (!(err <= tol)) bad += (bad.empty() ? "" : ", ") + what + " " + fmt("%.3g", err) + " > " + fmt("%.0e", tol);
  }
};

/// Images [first, first + n) of a set as an n x C x H x W float tensor and their labels.
std::pair<torch::Tensor, torch::Tensor> batch_of(const image_set& s, std::int64_t first, std::int64_t n) {
  torch::Tensor x = torch::empty({n, s.channels, s.height, s.width}, torch::kFloat);
  std::copy(s.image(first), s.image(first) + n * s.image_size(), x.data_ptr<float>());
  torch::Tensor y = torch::empty({n}, torch::kLong);
  for (std::int64_t i = 0; i < n; ++i) y[i] = s.labels[static_cast<std::size_t>(first + i)];
  return {x, y};
}

torch::Tensor rsp_copy(const torch::Tensor& x, std::uint64_t seed, std::uint64_t step) {
  torch::Tensor xp = x.clone();
  rsp_options ro;
  ro.probability = 0.2;
  ro.seed = seed;
  ro.step = step;
  rsp_perturb(cpu, image_batch_view<float>(xp.data_ptr<float>(), xp.size(0), xp.size(1), xp.size(2), xp.size(3)), ro);
  return xp;
}

margin_ce_config topofr_head() {
  margin_ce_config mc;  // the trainer's --loss topofr: s = 64, m = 0.5, SDS with the focal term, lambda = 1
  mc.sds = true;
  return mc;
}
isa_options topofr_isa(const torch::Tensor& x) {
  isa_options o = image_isa_options(x.size(1), x.size(2), x.size(3), isa_variant::symmetric);
  o.z_scale = 2.0;  // the trainer's default --isa-latent normalized: unit embeddings, distances / 2
  return o;
}
constexpr double kAlpha = 0.1;

// ---- 1/2: the blocks alone ----

struct block_out {
  double lcls = 0, lsa = 0;
  margin_ce_stats st;
  torch::Tensor gcos, gz;
};

/// MarginCE (SDS) on cos and ISA on zhat, both leaves on `dev` in `dtype`; gradients by autograd::grad.
block_out run_blocks(const torch::Tensor& cos0, const torch::Tensor& zhat0, const torch::Tensor& x, const torch::Tensor& y,
                     torch::Device dev, torch::ScalarType dtype) {
  block_out o;
  const torch::Tensor cos = cos0.to(dev, dtype).detach().requires_grad_(true);
  const torch::Tensor zhat = zhat0.to(dev, dtype).detach().requires_grad_(true);
  const torch::Tensor l = MarginCE::apply(cos, y, topofr_head(), &o.st);
  o.gcos = torch::autograd::grad({l}, {cos})[0].to(torch::kCPU);
  const torch::Tensor s = ISA::apply(x, zhat, topofr_isa(x));
  o.gz = torch::autograd::grad({s}, {zhat})[0].to(torch::kCPU);
  o.lcls = l.item<double>();
  o.lsa = s.item<double>();
  return o;
}

std::string compare_blocks(const block_out& g, const block_out& c, double tol, bool check_iterations, std::string& detail) {
  compare cmp(tol);
  cmp.add("L_cls", rel_err(g.lcls, c.lcls));
  cmp.add("CE", rel_err(g.st.loss_unweighted, c.st.loss_unweighted));
  cmp.add("d/dcos", rel_err(g.gcos, c.gcos));
  cmp.add("SDS w", rel_err(g.st.weights, c.st.weights));
  cmp.add("GUM pi", rel_err(g.st.pi, c.st.pi));
  cmp.add("L_sa", rel_err(g.lsa, c.lsa));
  cmp.add("d/dz", rel_err(g.gz, c.gz));
  detail = cmp.text.str() + "; GUM iterations CPU " + std::to_string(c.st.gum_iterations) + ", CUDA " +
           std::to_string(g.st.gum_iterations) + "; L_cls " + fmt("%.6g", c.lcls) + ", L_sa " + fmt("%.6g", c.lsa);
  std::string bad = cmp.bad;
  // In double the two EM runs see the same entropies up to ~1e-15 and may stop one iteration apart; in float the
  // entropies themselves differ by a few ulp, and the weights' tolerance above is what bounds the effect.
  if (check_iterations && std::abs(g.st.gum_iterations - c.st.gum_iterations) > 1)
    bad += (bad.empty() ? "" : ", ") + std::string("GUM iterations differ by more than 1");
  return bad;
}

// ---- 4: end to end ----

struct e2e_out {
  double loss = 0, lcls = 0, lsa = 0;
  torch::Tensor gcos, gz;
  std::vector<std::pair<std::string, torch::Tensor>> grads;
};

e2e_out run_e2e(IResNet& net, NormClassifier& head, const torch::Tensor& x, const torch::Tensor& xp, const torch::Tensor& y,
                torch::Device dev) {
  net->train();
  net->zero_grad();
  head->zero_grad();
  const auto dtype = torch::kDouble;
  torch::Tensor z = net->forward(xp.to(dev, dtype));
  z.retain_grad();
  torch::Tensor cos = head->forward(z);
  cos.retain_grad();
  margin_ce_stats st;
  const torch::Tensor lcls = MarginCE::apply(cos, y, topofr_head(), &st);
  const torch::Tensor lsa = ISA::apply(x, F::normalize(z, F::NormalizeFuncOptions().dim(1)), topofr_isa(x));
  const torch::Tensor loss = lcls + kAlpha * lsa;
  loss.backward();
  e2e_out o;
  o.loss = loss.item<double>();
  o.lcls = lcls.item<double>();
  o.lsa = lsa.item<double>();
  o.gcos = cos.grad().to(torch::kCPU);
  o.gz = z.grad().to(torch::kCPU);
  for (const auto& p : net->named_parameters())
    if (p.value().requires_grad()) o.grads.emplace_back("net." + p.key(), p.value().grad().to(torch::kCPU));
  for (const auto& p : head->named_parameters()) o.grads.emplace_back("head." + p.key(), p.value().grad().to(torch::kCPU));
  return o;
}

/// dst's parameters and buffers := src's (same architecture).
template <class M>
void copy_module(M& dst, const M& src) {
  torch::NoGradGuard ng;
  auto sp = src->named_parameters();
  for (auto& p : dst->named_parameters()) p.value().copy_(sp[p.key()]);
  auto sb = src->named_buffers();
  for (auto& b : dst->named_buffers()) b.value().copy_(sb[b.key()]);
}

// ---- 5: training ----

std::string train_check(torch::Device dev, int steps, std::uint64_t seed, std::string& detail) {
  const image_set all = synthetic_faces(16, 16, 32, 32, seed);
  const std::int64_t batch = 32, n = all.size();
  torch::manual_seed(seed);
  iresnet_options mo;
  mo.depth = 18;
  mo.width = 0.25;
  mo.height = mo.width_px = 32;
  mo.embedding = 128;
  IResNet net(mo);
  NormClassifier head(mo.embedding, all.identities());
  net->to(dev);
  head->to(dev);
  std::vector<torch::Tensor> params;
  for (auto& p : net->parameters())
    if (p.requires_grad()) params.push_back(p);
  for (auto& p : head->parameters()) params.push_back(p);
  const double lr0 = 0.1;
  torch::optim::SGD opt(params, torch::optim::SGDOptions(lr0).momentum(0.9).weight_decay(5e-4));
  const margin_ce_config mc = topofr_head();
  std::vector<double> loss, ce, ms;
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  std::int64_t held10 = -1, held_end = -1;
  const int warmup = std::max(1, steps / 20);
  net->train();
  for (int step = 0; step < steps; ++step) {
    const auto t0 = clock_type::now();
    const double lr = step < warmup ? lr0 * (step + 1) / (warmup + 1)
                                    : lr0 * std::pow(1.0 - static_cast<double>(step - warmup) / std::max(1, steps - warmup), 2.0);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);
    const std::int64_t per_epoch = n / batch, k = step % per_epoch;
    if (k == 0) {  // a fresh seeded permutation per epoch
      std::iota(perm.begin(), perm.end(), 0);
      counter_rng r(seed, static_cast<std::uint64_t>(step / per_epoch), 7);
      for (std::int64_t i = n - 1; i > 0; --i) std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(r.below(i + 1))]);
    }
    torch::Tensor x = torch::empty({batch, all.channels, all.height, all.width});
    torch::Tensor y = torch::empty({batch}, torch::kLong);
    for (std::int64_t i = 0; i < batch; ++i) {
      const std::int64_t j = perm[static_cast<std::size_t>(k * batch + i)];
      std::copy(all.image(j), all.image(j) + all.image_size(), x.data_ptr<float>() + i * all.image_size());
      y[i] = all.labels[static_cast<std::size_t>(j)];
    }
    const torch::Tensor xp = rsp_copy(x, seed, static_cast<std::uint64_t>(step));
    const torch::Tensor z = net->forward(xp.to(dev));
    margin_ce_stats st;
    const torch::Tensor lcls = MarginCE::apply(head->forward(z), y, mc, &st);
    const torch::Tensor lsa = ISA::apply(x, F::normalize(z, F::NormalizeFuncOptions().dim(1)), topofr_isa(x));
    const torch::Tensor l = lcls + kAlpha * lsa;
    opt.zero_grad();
    l.backward();
    opt.step();
    loss.push_back(l.item<double>());
    ce.push_back(st.loss_unweighted);
    ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
#if defined(TOPOFR_TRAIN_TORCH_CUDA)
    if (dev.is_cuda() && (step + 1 == 10 || step + 1 == steps)) {
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.index() < 0 ? c10::cuda::current_device() : dev.index());
      (step + 1 == 10 ? held10 : held_end) = stats.allocated_bytes[0].current;  // [0]: all pools
    }
#endif
  }
  const int m = std::min<int>(10, steps / 2);
  auto mean = [](const std::vector<double>& v, std::size_t a, std::size_t b) {
    return std::accumulate(v.begin() + static_cast<std::ptrdiff_t>(a), v.begin() + static_cast<std::ptrdiff_t>(b), 0.0) /
           static_cast<double>(b - a);
  };
  const double l0 = mean(loss, 0, m), l1 = mean(loss, loss.size() - m, loss.size());
  const double c0 = mean(ce, 0, m), c1 = mean(ce, ce.size() - m, ce.size());
  std::vector<double> steady(ms.begin() + std::min<std::size_t>(5, ms.size()), ms.end());
  std::sort(steady.begin(), steady.end());
  const double med = steady.empty() ? NAN : steady[steady.size() / 2];
  detail = std::to_string(steps) + " steps on " + dev.str() + ", IResNet-18 x0.25, 32x32, batch 32, 16 identities: loss " +
           fmt("%.4g", l0) + " -> " + fmt("%.4g", l1) + " (means of the first / last " + std::to_string(m) +
           "), ArcFace CE " + fmt("%.4g", c0) + " -> " + fmt("%.4g", c1) + "; median step " + fmt("%.1f", med) + " ms";
  if (held10 >= 0) detail += "; tensor bytes held at step 10 / end: " + std::to_string(held10) + " / " + std::to_string(held_end);
  for (std::size_t i = 0; i < loss.size(); ++i)
    if (!std::isfinite(loss[i])) return "loss not finite at step " + std::to_string(i + 1);
  std::string bad;
  if (!(l1 < 0.8 * l0)) bad += "the loss did not fall below 0.8x its start";
  if (!(c1 < 0.8 * c0)) bad += std::string(bad.empty() ? "" : ", ") + "the ArcFace CE did not fall below 0.8x its start";
  // One leaked block of scratch per step would add >= 512 bytes (the caching allocator's granularity) per step.
  if (held10 >= 0 && held_end - held10 >= 512 * (steps - 10))
    bad += std::string(bad.empty() ? "" : ", ") + "device memory held grew (a leak per step?)";
  return bad;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 50;
  std::uint64_t seed = 1;
  std::string train_device = "cuda";
  bool self_test = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = std::max(20, std::atoi(argv[++i]));
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--device" && i + 1 < argc) train_device = argv[++i];
    else if (a == "--self-test") self_test = true, train_device = "cpu";
    else {
      std::cerr << "usage: topofr-train-gpu-check [--steps N] [--seed S] [--device cuda|cpu]\n";
      return 2;
    }
  }
  const bool have_cuda = torch::cuda::is_available();
  std::fprintf(stderr, "LibTorch %s, CUDA available: %s\n", TORCH_VERSION, have_cuda ? "yes" : "no");
#if defined(TOPOFR_TRAIN_GPU)
  const bool blocks = have_cuda || self_test;
  const std::string no_blocks = "no CUDA device visible to LibTorch";
#else
  const bool blocks = self_test;
  const std::string no_blocks = "built without the CUDA blocks (TOPOFR_TRAIN_GPU)";
#endif
  // The device compared with the CPU (the CPU itself in --self-test).
  const torch::Device cuda_dev = self_test ? torch::Device(torch::kCPU) : torch::Device(torch::kCUDA, 0);

  // One batch of 64 synthetic faces (16 identities x 8) and a small IResNet's cosines / embeddings for the blocks.
  const image_set faces = synthetic_faces(16, 8, 32, 32, seed);
  const auto batch = batch_of(faces, 0, 64);
  const torch::Tensor x = batch.first, y = batch.second;
  const torch::Tensor xp = rsp_copy(x, seed, 0);
  torch::manual_seed(seed);
  iresnet_options mo;
  mo.depth = 18;
  mo.width = 0.25;
  mo.height = mo.width_px = 32;
  mo.embedding = 64;
  IResNet net(mo);
  NormClassifier head(mo.embedding, faces.identities());
  torch::Tensor cos_ref, zhat_ref;
  {
    torch::NoGradGuard ng;
    const torch::Tensor z = net->forward(xp);
    cos_ref = head->forward(z).contiguous();
    zhat_ref = F::normalize(z, F::NormalizeFuncOptions().dim(1)).contiguous();
  }

  block_out float_default;
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    const std::string name = dtype == torch::kFloat ? "blocks-float" : "blocks-double";
    if (!blocks) {
      skip(name, no_blocks);
      continue;
    }
    check(name, [&](std::string& detail) {
      const block_out c = run_blocks(cos_ref, zhat_ref, x, y, torch::kCPU, dtype);
      const block_out g = run_blocks(cos_ref, zhat_ref, x, y, cuda_dev, dtype);
      if (dtype == torch::kFloat) float_default = g;
      return compare_blocks(g, c, dtype == torch::kFloat ? 1e-4 : 1e-7, dtype == torch::kDouble, detail);
    });
  }

#if defined(TOPOFR_TRAIN_GPU)
  if (self_test) {
    skip("streams", "--self-test");
    skip("errors", "--self-test");
  } else if (blocks) {
    check("streams", [&](std::string& detail) -> std::string {
      if (!float_default.gcos.defined()) return "blocks-float did not run";
      const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, 0);
      block_out g;
      {
        const c10::cuda::CUDAStreamGuard guard(side);
        g = run_blocks(cos_ref, zhat_ref, x, y, cuda_dev, torch::kFloat);  // every result is on the host after this
      }
      const bool same = g.lcls == float_default.lcls && g.lsa == float_default.lsa &&
                        torch::equal(g.gcos, float_default.gcos) && torch::equal(g.gz, float_default.gz);
      std::string bad = compare_blocks(g, float_default, 1e-4, false, detail);
      detail = std::string("side stream vs default stream, bit-identical: ") + (same ? "yes" : "no") + "; " + detail;
      return bad;
    });

    check("errors", [&](std::string& detail) -> std::string {
      const c10::DeviceIndex di = 0;
      auto held = [&] { return c10::cuda::CUDACachingAllocator::getDeviceStats(di).allocated_bytes[0].current; };
      const torch::Tensor cos = cos_ref.to(cuda_dev).requires_grad_(true);
      torch::Tensor ybad = y.clone();
      ybad[3] = faces.identities() + 5;
      std::string bad;
      const auto before = held();
      try {
        (void)MarginCE::apply(cos, ybad, topofr_head(), nullptr);
        bad = "a label out of range did not throw";
      } catch (const topofr::error& e) {
        detail = std::string("label: \"") + e.what() + "\"";
        if (std::string(e.what()).find("label out of range") == std::string::npos) bad = "wrong message for the label";
      }
      const auto after_label = held();
      torch::Tensor znan = zhat_ref.to(cuda_dev).clone();
      znan[5][1] = NAN;
      try {
        (void)ISA::apply(x, znan.requires_grad_(true), topofr_isa(x));
        bad += std::string(bad.empty() ? "" : ", ") + "a NaN embedding did not throw";
      } catch (const topofr::error& e) {
        detail += std::string("; NaN: \"") + e.what() + "\"";
        if (std::string(e.what()).find("non-finite") == std::string::npos)
          bad += std::string(bad.empty() ? "" : ", ") + "wrong message for the NaN";
      }
      znan = torch::Tensor();
      const auto after_nan = held();
      detail += "; bytes held before / after / after: " + std::to_string(before) + " / " + std::to_string(after_label) +
                " / " + std::to_string(after_nan);
      if (after_label != before || after_nan != before)
        bad += std::string(bad.empty() ? "" : ", ") + "device memory not released after an error";
      // The stream is still usable: a valid call after the errors.
      const torch::Tensor l = MarginCE::apply(cos, y, topofr_head(), nullptr);
      if (!std::isfinite(l.item<double>())) bad += std::string(bad.empty() ? "" : ", ") + "call after the errors failed";
      return bad;
    });
  } else {
    skip("streams", no_blocks);
    skip("errors", no_blocks);
  }
#else
  skip("streams", no_blocks);
  skip("errors", no_blocks);
#endif

  if (!blocks) {
    skip("end-to-end-double", no_blocks);
  } else {
    check("end-to-end-double", [&](std::string& detail) {
      IResNet cnet(mo), gnet(mo);
      NormClassifier chead(mo.embedding, faces.identities()), ghead(mo.embedding, faces.identities());
      cnet->to(torch::kDouble);
      chead->to(torch::kDouble);
      copy_module(cnet, net);
      copy_module(chead, head);
      gnet->to(cuda_dev, torch::kDouble);
      ghead->to(cuda_dev, torch::kDouble);
      copy_module(gnet, cnet);
      copy_module(ghead, chead);
      const e2e_out c = run_e2e(cnet, chead, x, xp, y, torch::kCPU);
      const e2e_out g = run_e2e(gnet, ghead, x, xp, y, cuda_dev);
      const double tol = 1e-6;
      compare cmp(tol);
      cmp.add("loss", rel_err(g.loss, c.loss));
      cmp.add("L_cls", rel_err(g.lcls, c.lcls));
      cmp.add("L_sa", rel_err(g.lsa, c.lsa));
      cmp.add("d/dcos", rel_err(g.gcos, c.gcos));
      cmp.add("d/dz", rel_err(g.gz, c.gz));
      double top = 0;
      for (const auto& [name, t] : c.grads) top = std::max(top, t.abs().max().item<double>());
      double worst = -1;
      std::string worst_name;
      for (std::size_t i = 0; i < c.grads.size(); ++i) {
        const double e = rel_err(g.grads[i].second, c.grads[i].second, 1e-3 * top);
        if (!(e <= worst)) worst = e, worst_name = c.grads[i].first;
      }
      cmp.add("params (worst: " + worst_name + ")", worst);
      detail = cmp.text.str() + "; " + std::to_string(c.grads.size()) + " parameter tensors; loss " + fmt("%.8g", c.loss);
      return cmp.bad;
    });
  }

  const torch::Device tdev = train_device == "cpu" ? torch::Device(torch::kCPU) : cuda_dev;
  if (tdev.is_cuda() && !have_cuda) {
    skip("train", "no CUDA device visible to LibTorch");
  } else {
    check("train", [&](std::string& detail) { return train_check(tdev, steps, seed, detail); });
  }

  std::printf("| check | result | seconds | detail |\n|---|---|---|---|\n");
  for (const auto& r : rows)
    std::printf("| %s | %s | %.1f | %s |\n", r.name.c_str(), r.result.c_str(), r.seconds, r.detail.c_str());
  std::printf("\n%s\n", failed ? "RESULT: FAIL" : "RESULT: PASS");
  return failed ? 1 : 0;
}
