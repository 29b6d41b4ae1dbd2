// examples/cli/pairs.cpp — `topofr pairs`: 0-dimensional Vietoris-Rips persistence pairs of a distance matrix or of points.
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

#include "commands.hpp"
#include "device.hpp"
#include "io.hpp"

namespace topofr_cli {
namespace {

/// How `pairs --dist` treats a matrix that is not symmetric or whose diagonal is not 0 (--asymmetric).
/// Only the upper triangle is read by persistence_pairs (the reference's rule); this check tells the
/// user that the rest of their matrix disagrees with it.
enum class asym_mode { warn, error, ignore };

/// The largest |D(i, j) - D(j, i)| (i < j) and the largest |D(i, i)|, NaN counting as the largest; a
/// warning on stderr or an error (--asymmetric) when either is not 0.
template <class T>
void check_symmetric(const std::vector<T>& D, index_t n, const std::string& path, asym_mode mode,
                     const char* command) {
  if (mode == asym_mode::ignore) return;
  double worst = 0;
  index_t wi = -1, wj = -1;
  for (index_t i = 0; i < n && !std::isnan(worst); ++i)
    for (index_t j = i + 1; j < n; ++j) {
      const double a = D[i * n + j], b = D[j * n + i];
      // An invalid upper entry is persistence_pairs' error to report (one message, naming the entry).
      if (a == b || !(std::isfinite(a) && a >= 0)) continue;
      const double d = std::isnan(b) ? std::numeric_limits<double>::quiet_NaN() : std::fabs(a - b);
      if (std::isnan(d) || d > worst) {
        worst = d, wi = i, wj = j;
        if (std::isnan(d)) break;
      }
    }
  double diag = 0;
  index_t di = -1;
  for (index_t i = 0; i < n; ++i) {
    const double v = D[i * n + i];
    if (v == 0) continue;
    if (std::isnan(v)) {
      diag = v, di = i;
      break;
    }
    if (std::fabs(v) > std::fabs(diag)) diag = v, di = i;
  }
  if (wi < 0 && di < 0) return;
  std::string what;
  if (wi >= 0)
    what = str("is not symmetric: max |D - D^T| = ", g(worst), " at (", wi, ", ", wj, "): D[", wi, ", ", wj, "] = ",
               g(D[wi * n + wj]), ", D[", wj, ", ", wi, "] = ", g(D[wj * n + wi]));
  if (di >= 0)
    what += str(wi >= 0 ? "; and " : "", "has a diagonal entry that is not 0: D[", di, ", ", di, "] = ", g(diag));
  const std::string msg = str("--dist: ", path, " ", what, "; only the upper triangle is used");
  if (mode == asym_mode::error) throw usage_error(msg + " (--asymmetric error)");
  std::fflush(stdout);
  std::fprintf(stderr, "topofr %s: warning: %s (--asymmetric error|ignore)\n", command, msg.c_str());
}

template <class T>
int pairs_run(const args& a, device dev, const std::optional<std::string>& dist_path,
              const std::optional<std::string>& points_path, npy::array& in, double scale, asym_mode asym,
              const std::string& out, const std::optional<std::string>& deaths_out) {
  const bool from_points = !dist_path;
  const std::string flag = from_points ? "--points" : "--dist";
  const std::string in_path = from_points ? *points_path : *dist_path;
  index_t n, d = 0;
  if (from_points) {
    const points_shape p = points("--points", in);
    n = p.n;
    d = p.d;
    if (n < 2) throw usage_error(str("--points: need at least 2 points, got shape ", shape_of(in)));
    require_memory("--points", shape_of(in), str("the (n, n) distance matrix of n = ", n, " points"), mul(n, n),
                   sizeof(T));
  } else {
    if (in.ndim() != 2 || in.shape[0] != in.shape[1])
      throw usage_error(str("--dist: expected a square (n, n) matrix, got shape ", shape_of(in)));
    n = in.shape[0];
    if (n < 2) throw usage_error(str("--dist: need n >= 2, got shape ", shape_of(in)));
  }
  const std::vector<T> x = floats<T>(flag, in, in_path);
  const std::string in_shape = shape_of(in);
  in = {};  // the converted copy is all we need
  if (!from_points) check_symmetric(x, n, in_path, asym, "pairs");
  std::vector<T> dist(from_points ? static_cast<std::size_t>(n * n) : 0);
  std::vector<topofr::edge> pairs(static_cast<std::size_t>(n - 1));
  std::vector<T> deaths(static_cast<std::size_t>(n - 1));

  on_device(a, dev, [&](auto exec) {
    topofr::matrix_view<const T> dv(x.data(), n, n);
    if (from_points) {
      topofr::pairwise_distances(exec, topofr::matrix_view<const T>(x.data(), n, d), topofr::matrix_view<T>(dist.data(), n, n), scale);
      // Finite points can still be too far apart for T: name the points the user gave, not `dist`.
      const index_t k = first_nonfinite(dist);
      if (k >= 0) {
        double big = 0;
        for (T v : x) big = std::max(big, std::fabs(double(v)));
        throw usage_error(str("--points: ", in_path, ": the distance between points ", k / n, " and ", k % n,
                              " overflows ", type_name<T>(), " (the coordinates reach ", g(big), ", shape ", in_shape,
                              std::is_same<T, float>::value ? "): use --dtype float64 or rescale the points"
                                                            : "): rescale the points"));
      }
      dv = topofr::matrix_view<const T>(dist.data(), n, n);
    }
    topofr::persistence_pairs(exec, dv, topofr::vector_view<topofr::edge>(pairs.data(), n - 1),
                              topofr::vector_view<T>(deaths.data(), n - 1));
  });

  std::vector<std::int32_t> flat(2 * pairs.size());
  for (std::size_t k = 0; k < pairs.size(); ++k) flat[2 * k] = pairs[k].u, flat[2 * k + 1] = pairs[k].v;
  const auto [lo, hi] = min_max(deaths);
  save("--out", out, flat, {n - 1, 2});
  std::printf("pairs: n=%lld, %lld pairs, max death=%s -> %s\n", static_cast<long long>(n),
              static_cast<long long>(n - 1), g(hi).c_str(), out.c_str());
  if (deaths_out) {
    save("--deaths", *deaths_out, deaths, {n - 1});
    std::printf("deaths: %lld values (%s) in [%s, %s] -> %s\n", static_cast<long long>(n - 1), type_name<T>(),
                g(lo).c_str(), g(hi).c_str(), deaths_out->c_str());
  }
  return 0;
}

int cmd_pairs(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const auto dist = io.input("--dist", false);
  const auto pts = io.input("--points", false);
  if (dist && pts) throw usage_error("--dist and --points are mutually exclusive (give one)");
  if (!dist && !pts) throw usage_error("--dist or --points: one is required");
  if (dist && a.has("--scale")) throw usage_error("--scale: applies to --points only (--dist is used as given)");
  if (pts && a.has("--asymmetric")) throw usage_error("--asymmetric: applies to --dist only");
  const double scale = a.positive("--scale", 1.0);
  const std::string am = a.choice("--asymmetric", {"warn", "error", "ignore"}, "warn");
  const asym_mode asym = am == "warn" ? asym_mode::warn : am == "error" ? asym_mode::error : asym_mode::ignore;
  const std::string out = *io.output("--out", true);
  const auto deaths = io.output("--deaths", false);
  a.integer("--repeat", 0, 1);
  npy::array in = dist ? load("--dist", *dist) : load("--points", *pts);
  if (compute_dtype(a, {&in}) == npy::dtype::float32)
    return pairs_run<float>(a, dev, dist, pts, in, scale, asym, out, deaths);
  return pairs_run<double>(a, dev, dist, pts, in, scale, asym, out, deaths);
}

}  // namespace

const command& pairs_command() {
  static const command c = {"pairs", "--dist D.npy [--asymmetric warn|error|ignore] | --points X.npy [--scale s]  --out P.npy [--deaths d.npy]",
       "0-dimensional Vietoris-Rips persistence pairs: the n-1 merge edges (u < v), sorted by (death, u*n+v).",
       {{"--dist", "D.npy", "an (n, n) distance matrix (symmetric, finite, >= 0)"},
        {"--points", "X.npy", "points (n, d) or an image batch (N, C, H, W); distances computed here"},
        {"--scale", "s", "with --points: divide the distances by s > 0 (default 1)"},
        {"--asymmetric", "warn|error|ignore", "with --dist: a matrix that is not symmetric or whose diagonal is "
                                              "not 0 gives a warning (default), an error, or nothing; only the "
                                              "upper triangle is used"},
        {"--out", "P.npy", "the pairs: int32 (n-1, 2)"},
        {"--deaths", "d.npy", "the death times dist(u, v): (n-1,), compute dtype"}},
       cmd_pairs};
  return c;
}

}  // namespace topofr_cli
