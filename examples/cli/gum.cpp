// examples/cli/gum.cpp — `topofr gum`: the Gaussian-uniform mixture EM on per-sample entropies.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <topofr/topofr.hpp>
#include <topofr/gum.hpp>

#include "commands.hpp"
#include "device.hpp"
#include "io.hpp"

namespace topofr_cli {
namespace {

template <class T>
int gum_run(const args& a, device dev, const npy::array& ea, const std::string& ep, const topofr::gum_options& opt,
            const std::string& out,
            const std::optional<std::string>& pi_out, const std::optional<std::string>& gamma_out) {
  if (ea.ndim() != 1) throw usage_error(str("--entropy: expected shape (n,), got ", shape_of(ea)));
  const index_t n = ea.shape[0];
  const std::vector<T> e = floats<T>("--entropy", ea, ep);
  std::vector<T> h(static_cast<std::size_t>(n));
  topofr::gum_result r{};
  on_device(a, dev, [&](auto exec) {
    r = topofr::gum_fit(exec, topofr::vector_view<const T>(e.data(), n), topofr::vector_view<T>(h.data(), n), opt);
  });
  save("--out", out, h, {n});
  index_t hard = 0;
  for (T v : h) hard += v > T(0.5);
  std::printf("gum: n=%lld, pi=%s, sigma=%s, c=%s, %d iterations, %s, %lld samples with h > 0.5 -> %s\n",
              static_cast<long long>(n), g(r.pi).c_str(), g(r.sigma).c_str(), g(r.c).c_str(), r.iterations,
              r.converged ? "converged" : "NOT converged", static_cast<long long>(hard), out.c_str());
  if (pi_out) {
    save("--pi-out", *pi_out, std::vector<T>{static_cast<T>(r.pi)}, {1});
    std::printf("pi: %s -> %s\n", g(r.pi).c_str(), pi_out->c_str());
  }
  if (gamma_out) {  // the Gaussian posterior, what the released gauss_unif returns
    std::vector<T> gamma(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) gamma[i] = static_cast<T>(1.0 - static_cast<double>(h[i]));
    save("--gamma-out", *gamma_out, gamma, {n});
    std::printf("gamma = 1 - h -> %s\n", gamma_out->c_str());
  }
  return 0;
}

int cmd_gum(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const std::string ep = *io.input("--entropy", true);
  const std::string out = *io.output("--out", true);
  const auto pi_out = io.output("--pi-out", false);
  const auto gamma_out = io.output("--gamma-out", false);
  topofr::gum_options opt;
  opt.mode = a.choice("--mode", {"reference", "robust"}, "reference") == "reference" ? topofr::gum_mode::reference
                                                                                  : topofr::gum_mode::robust;
  opt.symmetrize = !a.has("--no-symmetrize");
  opt.max_iter = static_cast<int>(a.integer("--max-iter", opt.max_iter, 1));
  opt.tol = a.has("--tol") ? a.positive("--tol", opt.tol) : opt.tol;
  a.integer("--repeat", 0, 1);
  const npy::array ea = load("--entropy", ep);
  if (compute_dtype(a, {&ea}) == npy::dtype::float32) return gum_run<float>(a, dev, ea, ep, opt, out, pi_out, gamma_out);
  return gum_run<double>(a, dev, ea, ep, opt, out, pi_out, gamma_out);
}

}  // namespace

const command& gum_command() {
  static const command c = {"gum", "--entropy E.npy --out H.npy [--pi-out p.npy] [--gamma-out G.npy] [--mode M] [--no-symmetrize]",
       "Gaussian-uniform mixture EM on per-sample entropies (SDE); h = posterior of the uniform (hard) component.",
       {{"--entropy", "E.npy", "entropies, shape (n,)"},
        {"--out", "H.npy", "hard posterior h = 1 - gamma, shape (n,)"},
        {"--pi-out", "p.npy", "the fitted Gaussian weight [pi], shape (1,)"},
        {"--gamma-out", "G.npy", "Gaussian posterior gamma = 1 - h (what the released gauss_unif returns), shape (n,)"},
        {"--mode", "reference|robust", "reference: the released GUM.py EM (default); robust: the library's "
                                       "numerically principled variant"},
        {"--no-symmetrize", nullptr, "do not negate the entropies at even indices before the fit"},
        {"--max-iter", "N", "at most N EM iterations (default 1000)"},
        {"--tol", "t", "stop when the likelihood sum changes by less than t > 0 (default 1e-10)"}},
       cmd_gum};
  return c;
}

}  // namespace topofr_cli
