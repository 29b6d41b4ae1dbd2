// examples/cli/isa.cpp — `topofr isa`: the ISA loss between an input batch and a latent batch, and its gradients.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <topofr/topofr.hpp>
#include <topofr/distance.hpp>
#include <topofr/persistence.hpp>
#include <topofr/isa.hpp>

#include "commands.hpp"
#include "device.hpp"
#include "io.hpp"

namespace topofr_cli {
namespace {

template <class T>
int isa_run(const args& a, device dev, const npy::array& xa, const npy::array& za, const std::string& xp,
            const std::string& zp, topofr::isa_options opt, const std::string& loss_out, const std::optional<std::string>& grad_out,
            const std::optional<std::string>& grad_x_out) {
  const points_shape xs = points("--x", xa), zs = points("--z", za);
  if (xs.n != zs.n)
    throw usage_error(str("--z: ", zs.n, " samples (shape ", shape_of(za), ") but --x has ", xs.n, " (shape ",
                          shape_of(xa), ")"));
  if (xs.n < 2) throw usage_error(str("--x: need at least 2 samples, got shape ", shape_of(xa)));
  // isa_loss_from_points holds the (n, n) distance matrices of both spaces.
  require_memory("--x", shape_of(xa), str("the two (n, n) distance matrices of n = ", xs.n, " samples"),
                 mul(xs.n, xs.n) ? mul(*mul(xs.n, xs.n), 2) : std::nullopt, sizeof(T));
  const std::vector<T> x = floats<T>("--x", xa, xp), z = floats<T>("--z", za, zp);
  std::vector<T> gz(grad_out ? z.size() : 0), gx(grad_x_out ? x.size() : 0);
  T loss = 0;
  on_device(a, dev, [&](auto exec) {
    loss = topofr::isa_loss_from_points(exec, topofr::matrix_view<const T>(x.data(), xs.n, xs.d),
                                        topofr::matrix_view<const T>(z.data(), zs.n, zs.d), opt,
                                        grad_out ? topofr::matrix_view<T>(gz.data(), zs.n, zs.d) : topofr::matrix_view<T>(),
                                        grad_x_out ? topofr::matrix_view<T>(gx.data(), xs.n, xs.d) : topofr::matrix_view<T>());
  });
  // Finite inputs can still give a loss or gradient beyond T: an error, never an inf written as a result.
  const char* hint = std::is_same<T, float>::value ? "use --dtype float64 or rescale (--x-scale, --z-scale)"
                                                   : "rescale (--x-scale, --z-scale)";
  if (!std::isfinite(loss))
    throw usage_error(str("the loss of --x ", xp, " and --z ", zp, " is not finite (", g(loss), ") in ", type_name<T>(),
                          ": the distances are finite but the sum of their squared differences overflows; ", hint));
  if (const index_t k = first_nonfinite(gz); k >= 0)
    throw usage_error(str("--grad-out: dL/dz at ", where(za.shape, k), " is not finite (", g(gz[k]), ") in ",
                          type_name<T>(), " for --z ", zp, "; ", hint));
  if (const index_t k = first_nonfinite(gx); k >= 0)
    throw usage_error(str("--grad-x-out: dL/dx at ", where(xa.shape, k), " is not finite (", g(gx[k]), ") in ",
                          type_name<T>(), " for --x ", xp, "; ", hint));
  save("--loss-out", loss_out, std::vector<T>{loss}, {1});
  std::printf("isa: n=%lld, loss=%s (%s, %s, x-scale=%s, z-scale=%s, %s) -> %s\n", static_cast<long long>(xs.n),
              g(loss).c_str(), opt.variant == topofr::isa_variant::symmetric ? "symmetric" : "sorted_deaths",
              opt.reduce == topofr::reduction::mean ? "mean" : "sum", g(opt.x_scale).c_str(), g(opt.z_scale).c_str(),
              type_name<T>(), loss_out.c_str());
  auto norm = [](const std::vector<T>& v) {
    double s = 0;
    for (T e : v) s += double(e) * double(e);
    return std::sqrt(s);
  };
  if (grad_out) {
    save("--grad-out", *grad_out, gz, za.shape);
    std::printf("grad: dL/dz, shape %s, norm=%s -> %s\n", shape_of(za).c_str(), g(norm(gz)).c_str(), grad_out->c_str());
  }
  if (grad_x_out) {
    save("--grad-x-out", *grad_x_out, gx, xa.shape);
    std::printf("grad: dL/dx, shape %s, norm=%s -> %s\n", shape_of(xa).c_str(), g(norm(gx)).c_str(), grad_x_out->c_str());
  }
  return 0;
}

int cmd_isa(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const std::string xp = *io.input("--x", true), zp = *io.input("--z", true);
  const std::string loss_out = *io.output("--loss-out", true);
  const auto grad_out = io.output("--grad-out", false);
  const auto grad_x_out = io.output("--grad-x-out", false);
  topofr::isa_options opt;
  opt.variant = a.choice("--variant", {"symmetric", "sorted_deaths"}, "symmetric") == "symmetric"
                    ? topofr::isa_variant::symmetric
                    : topofr::isa_variant::sorted_deaths;
  opt.reduce = a.choice("--reduction", {"sum", "mean"}, "mean") == "mean" ? topofr::reduction::mean : topofr::reduction::sum;
  const double xs = a.positive("--x-scale", 1.0), zs = a.positive("--z-scale", 1.0);
  a.integer("--repeat", 0, 1);
  const npy::array xa = load("--x", xp), za = load("--z", zp);
  const points_shape xshape = points("--x", xa);
  // The released code divides image-space distances by sqrt(4*C*H*W); points keep scale 1.
  opt.x_scale = a.has("--x-scale") ? xs : (xshape.image ? topofr::image_scale(xshape.c, xshape.h, xshape.w) : 1.0);
  opt.z_scale = zs;
  if (compute_dtype(a, {&xa, &za}) == npy::dtype::float32)
    return isa_run<float>(a, dev, xa, za, xp, zp, opt, loss_out, grad_out, grad_x_out);
  return isa_run<double>(a, dev, xa, za, xp, zp, opt, loss_out, grad_out, grad_x_out);
}

}  // namespace

const command& isa_command() {
  static const command c = {"isa", "--x X.npy --z Z.npy [--x-scale s] [--z-scale s] [--variant V] [--reduction R] --loss-out L.npy "
              "[--grad-out G.npy] [--grad-x-out GX.npy]",
       "ISA topological structure alignment loss between an input batch X and a latent batch Z.",
       {{"--x", "X.npy", "input points (n, d), or an image batch (N, C, H, W) flattened to (N, C*H*W)"},
        {"--z", "Z.npy", "latent points (n, d'), or (N, C, H, W)"},
        {"--x-scale", "s", "divide input distances by s > 0 (default 1; sqrt(4*C*H*W) when --x is 4-d, as the "
                           "released code does)"},
        {"--z-scale", "s", "divide latent distances by s > 0 (default 1)"},
        {"--variant", "symmetric|sorted_deaths", "symmetric: the paper's loss (with 1/2, default); sorted_deaths: "
                                                 "the released code's default"},
        {"--reduction", "sum|mean", "mean divides by n (default mean)"},
        {"--loss-out", "L.npy", "the loss, shape (1,)"},
        {"--grad-out", "G.npy", "dL/dz, the shape of --z"},
        {"--grad-x-out", "G.npy", "dL/dx, the shape of --x"}},
       cmd_isa};
  return c;
}

}  // namespace topofr_cli
