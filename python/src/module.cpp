// module.cpp — topofr._core: the library's blocks on DLPack arrays (NumPy, PyTorch, anything with __dlpack__),
// zero-copy. Every function here writes into arrays the caller passes; topofr/__init__.py allocates outputs in
// the caller's framework and gives the Python API its defaults. Argument names are those of the C++ API
// (docs/api.md). The GIL is released while a block runs.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <optional>
#include <string>
#include <tuple>
#include <variant>

#include "arrays.hpp"
#include "topofr/topofr.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using namespace topofr_py;
using topofr::cpu;
using topofr::edge;
using topofr::index_t;

namespace {

using opt_out = std::optional<out_array>;
using opt_in = std::optional<in_array>;

topofr::isa_variant parse_variant(const std::string& s, const char* fn) {
  if (s == "symmetric") return topofr::isa_variant::symmetric;
  if (s == "sorted_deaths") return topofr::isa_variant::sorted_deaths;
  value_fail(fn, "variant", "expected 'symmetric' or 'sorted_deaths', got '", s, "'");
}
topofr::reduction parse_reduction(const std::string& s, const char* fn) {
  if (s == "mean") return topofr::reduction::mean;
  if (s == "sum") return topofr::reduction::sum;
  value_fail(fn, "reduction", "expected 'mean' or 'sum', got '", s, "'");
}
topofr::gum_mode parse_mode(const std::string& s, const char* fn) {
  if (s == "reference") return topofr::gum_mode::reference;
  if (s == "robust") return topofr::gum_mode::robust;
  value_fail(fn, "mode", "expected 'reference' or 'robust', got '", s, "'");
}

/// Every array of a call must be on the CPU in this module (the CUDA twin is topofr/_core_cuda, when built).
template <class A> void on_cpu(const A& a, const char* fn, const char* arg) {
  if (space_of(a, fn, arg) != space::cpu)
    type_fail(fn, arg, "is a CUDA array, but this topofr was built without CUDA (topofr.has_cuda() is False)");
}

// ---- distances ---------------------------------------------------------------------------------------------
void pairwise_distances(const in_array& points, const out_array& dist, double scale) {
  const char* fn = "pairwise_distances";
  on_cpu(points, fn, "points");
  with_real(points, fn, "points", [&](auto t) {
    using T = decltype(t);
    if (points.ndim() == 2) {
      auto p = mat<const T>(points, fn, "points");
      auto d = mat<T>(dist, fn, "dist");
      nb::gil_scoped_release nogil;
      topofr::pairwise_distances(cpu, p, d, scale);
    } else if (points.ndim() == 3) {
      auto p = batch<const T>(points, fn, "points");
      auto d = batch<T>(dist, fn, "dist");
      nb::gil_scoped_release nogil;
      topofr::pairwise_distances(cpu, p, d, scale);
    } else {
      value_fail(fn, "points", "expected (n, d) or (B, n, d), got ", points.ndim(), " dimensions");
    }
  });
}

// ---- persistence -------------------------------------------------------------------------------------------
void persistence_pairs(const in_array& dist, const out_array& pairs, const opt_out& deaths) {
  const char* fn = "persistence_pairs";
  on_cpu(dist, fn, "dist");
  with_real(dist, fn, "dist", [&](auto t) {
    using T = decltype(t);
    auto run = [&](auto d_t) {
      using D = decltype(d_t);
      if (dist.ndim() == 2) {
        auto m = mat<const T>(dist, fn, "dist");
        auto p = edges<edge>(pairs, fn, "pairs");
        topofr::vector_view<D> dv = deaths ? vec<D>(*deaths, fn, "deaths") : topofr::vector_view<D>();
        nb::gil_scoped_release nogil;
        topofr::persistence_pairs(cpu, m, p, dv);
      } else if (dist.ndim() == 3) {
        auto m = batch<const T>(dist, fn, "dist");
        auto p = edge_batch<edge>(pairs, fn, "pairs");
        topofr::matrix_view<D> dv = deaths ? mat<D>(*deaths, fn, "deaths") : topofr::matrix_view<D>();
        nb::gil_scoped_release nogil;
        topofr::persistence_pairs(cpu, m, p, dv);
      } else {
        value_fail(fn, "dist", "expected (n, n) or (B, n, n), got ", dist.ndim(), " dimensions");
      }
    };
    if (deaths) with_real(*deaths, fn, "deaths", run); else run(T{});
  });
}

void persistence_pairs_from_points(const in_array& points, double scale, const out_array& pairs,
                                   const opt_out& deaths) {
  const char* fn = "persistence_pairs_from_points";
  on_cpu(points, fn, "points");
  with_real(points, fn, "points", [&](auto t) {
    using T = decltype(t);
    auto run = [&](auto d_t) {
      using D = decltype(d_t);
      auto x = batch<const T>(points, fn, "points");
      auto p = edge_batch<edge>(pairs, fn, "pairs");
      topofr::matrix_view<D> dv = deaths ? mat<D>(*deaths, fn, "deaths") : topofr::matrix_view<D>();
      nb::gil_scoped_release nogil;
      topofr::persistence_pairs_from_points(cpu, x, scale, p, dv);
    };
    if (deaths) with_real(*deaths, fn, "deaths", run); else run(T{});
  });
}

// ---- gather / scatter --------------------------------------------------------------------------------------
void gather_pairs(const in_array& dist, const in_array& pairs, const out_array& values) {
  const char* fn = "gather_pairs";
  on_cpu(dist, fn, "dist");
  with_real(dist, fn, "dist", [&](auto t) {
    using T = decltype(t);
    with_real(values, fn, "values", [&](auto v_t) {
      using V = decltype(v_t);
      auto d = mat<const T>(dist, fn, "dist");
      auto p = edges<const edge>(pairs, fn, "pairs");
      auto v = vec<V>(values, fn, "values");
      nb::gil_scoped_release nogil;
      topofr::gather_pairs(cpu, d, p, v);
    });
  });
}

void scatter_pairs_add(const in_array& pairs, const in_array& values, const out_array& grad_dist) {
  const char* fn = "scatter_pairs_add";
  on_cpu(grad_dist, fn, "grad_dist");
  with_real(grad_dist, fn, "grad_dist", [&](auto t) {
    using T = decltype(t);
    with_real(values, fn, "values", [&](auto v_t) {
      using V = decltype(v_t);
      auto p = edges<const edge>(pairs, fn, "pairs");
      auto v = vec<const V>(values, fn, "values");
      auto g = mat<T>(grad_dist, fn, "grad_dist");
      nb::gil_scoped_release nogil;
      topofr::scatter_pairs_add(cpu, p, v, g);
    });
  });
}

// ---- ISA ---------------------------------------------------------------------------------------------------
double isa_loss(const in_array& dist_x, const in_array& dist_z, const in_array& pairs_x, const in_array& pairs_z,
                const std::string& variant, const std::string& reduction, const opt_out& grad_dist_z,
                const opt_out& grad_dist_x) {
  const char* fn = "isa_loss";
  on_cpu(dist_x, fn, "dist_x");
  const auto v = parse_variant(variant, fn);
  const auto r = parse_reduction(reduction, fn);
  return with_real(dist_x, fn, "dist_x", [&](auto t) -> double {
    using T = decltype(t);
    auto mx = mat<const T>(dist_x, fn, "dist_x");
    auto mz = mat<const T>(dist_z, fn, "dist_z");
    auto px = edges<const edge>(pairs_x, fn, "pairs_x");
    auto pz = edges<const edge>(pairs_z, fn, "pairs_z");
    auto gz = grad_dist_z ? mat<T>(*grad_dist_z, fn, "grad_dist_z") : topofr::matrix_view<T>();
    auto gx = grad_dist_x ? mat<T>(*grad_dist_x, fn, "grad_dist_x") : topofr::matrix_view<T>();
    nb::gil_scoped_release nogil;
    return static_cast<double>(topofr::isa_loss(cpu, mx, mz, px, pz, v, r, gz, gx));
  });
}

double isa_loss_from_points(const in_array& x, const in_array& z, const std::string& variant,
                            const std::string& reduction, double x_scale, double z_scale, const opt_out& grad_z,
                            const opt_out& grad_x) {
  const char* fn = "isa_loss_from_points";
  on_cpu(x, fn, "x");
  topofr::isa_options opt;
  opt.variant = parse_variant(variant, fn);
  opt.reduce = parse_reduction(reduction, fn);
  opt.x_scale = x_scale;
  opt.z_scale = z_scale;
  return with_real(x, fn, "x", [&](auto t) -> double {
    using T = decltype(t);
    auto xv = mat<const T>(x, fn, "x");
    auto zv = mat<const T>(z, fn, "z");
    auto gz = grad_z ? mat<T>(*grad_z, fn, "grad_z") : topofr::matrix_view<T>();
    auto gx = grad_x ? mat<T>(*grad_x, fn, "grad_x") : topofr::matrix_view<T>();
    nb::gil_scoped_release nogil;
    return static_cast<double>(topofr::isa_loss_from_points(cpu, xv, zv, opt, gz, gx));
  });
}

// ---- GUM / SDS ---------------------------------------------------------------------------------------------
topofr::gum_options gum_opts(const std::string& mode, int max_iter, double tol, bool symmetrize, const char* fn) {
  topofr::gum_options o;
  o.mode = parse_mode(mode, fn);
  o.max_iter = max_iter;
  o.tol = tol;
  o.symmetrize = symmetrize;
  return o;
}

std::tuple<double, double, double, int, bool> gum_fit(const in_array& entropy, const out_array& hard_posterior,
                                                      const std::string& mode, int max_iter, double tol,
                                                      bool symmetrize) {
  const char* fn = "gum_fit";
  on_cpu(entropy, fn, "entropy");
  const auto o = gum_opts(mode, max_iter, tol, symmetrize, fn);
  return with_real(entropy, fn, "entropy", [&](auto t) {
    using T = decltype(t);
    return with_real(hard_posterior, fn, "hard_posterior", [&](auto h_t) {
      using H = decltype(h_t);
      auto e = vec<const T>(entropy, fn, "entropy");
      auto h = vec<H>(hard_posterior, fn, "hard_posterior");
      nb::gil_scoped_release nogil;
      const auto g = topofr::gum_fit(cpu, e, h, o);
      return std::make_tuple(g.pi, g.sigma, g.c, g.iterations, g.converged);
    });
  });
}

void sds_weights(const in_array& hard_posterior, const opt_in& p_gt, double lambda, bool focal,
                 const out_array& omega) {
  const char* fn = "sds_weights";
  on_cpu(hard_posterior, fn, "hard_posterior");
  with_real(hard_posterior, fn, "hard_posterior", [&](auto t) {
    using H = decltype(t);
    with_real(omega, fn, "omega", [&](auto o_t) {
      using O = decltype(o_t);
      auto run = [&](auto p_t) {
        using P = decltype(p_t);
        auto h = vec<const H>(hard_posterior, fn, "hard_posterior");
        auto p = p_gt ? vec<const P>(*p_gt, fn, "p_gt") : topofr::vector_view<const P>();
        auto w = vec<O>(omega, fn, "omega");
        nb::gil_scoped_release nogil;
        topofr::sds_weights(cpu, h, p, lambda, focal, w);
      };
      if (p_gt) with_real(*p_gt, fn, "p_gt", run); else run(H{});
    });
  });
}

// ---- combined-margin head ----------------------------------------------------------------------------------
using margin_t = std::tuple<double, double, double, double>;  // (s, m1, m2, m3)
topofr::combined_margin margin_of(const margin_t& m) {
  return {std::get<0>(m), std::get<1>(m), std::get<2>(m), std::get<3>(m)};
}

void margin_logits(const in_array& cos, const in_array& labels, const margin_t& margin, const out_array& logits) {
  const char* fn = "margin_logits";
  on_cpu(cos, fn, "cos");
  with_real(cos, fn, "cos", [&](auto t) {
    using T = decltype(t);
    with_label(labels, fn, "labels", [&](auto l_t) {
      using L = decltype(l_t);
      auto c = mat<const T>(cos, fn, "cos");
      auto y = vec<const L>(labels, fn, "labels");
      auto o = mat<T>(logits, fn, "logits");
      nb::gil_scoped_release nogil;
      topofr::margin_logits(cpu, c, y, margin_of(margin), o);
    });
  });
}

void margin_logits_backward(const in_array& cos, const in_array& labels, const margin_t& margin,
                            const in_array& grad_logits, const out_array& grad_cos) {
  const char* fn = "margin_logits_backward";
  on_cpu(cos, fn, "cos");
  with_real(cos, fn, "cos", [&](auto t) {
    using T = decltype(t);
    with_label(labels, fn, "labels", [&](auto l_t) {
      using L = decltype(l_t);
      auto c = mat<const T>(cos, fn, "cos");
      auto y = vec<const L>(labels, fn, "labels");
      auto gl = mat<const T>(grad_logits, fn, "grad_logits");
      auto gc = mat<T>(grad_cos, fn, "grad_cos");
      nb::gil_scoped_release nogil;
      topofr::margin_logits_backward(cpu, c, y, margin_of(margin), gl, gc);
    });
  });
}

void margin_ce_forward(const in_array& cos, const in_array& labels, const margin_t& margin, double entropy_eps,
                       const out_array& loss, const opt_out& entropy, const opt_out& p_gt, const opt_out& lse) {
  const char* fn = "margin_ce_forward";
  on_cpu(cos, fn, "cos");
  with_real(cos, fn, "cos", [&](auto t) {
    using T = decltype(t);
    with_label(labels, fn, "labels", [&](auto l_t) {
      using L = decltype(l_t);
      auto c = mat<const T>(cos, fn, "cos");
      auto y = vec<const L>(labels, fn, "labels");
      auto lo = vec<T>(loss, fn, "loss");
      auto en = entropy ? vec<T>(*entropy, fn, "entropy") : topofr::vector_view<T>();
      auto pg = p_gt ? vec<T>(*p_gt, fn, "p_gt") : topofr::vector_view<T>();
      auto ls = lse ? vec<T>(*lse, fn, "lse") : topofr::vector_view<T>();
      nb::gil_scoped_release nogil;
      topofr::margin_ce_forward(cpu, c, y, margin_of(margin), entropy_eps, lo, en, pg, ls);
    });
  });
}

void margin_ce_backward(const in_array& cos, const in_array& labels, const margin_t& margin, const in_array& lse,
                        const opt_in& weights, double grad_scale, const out_array& grad_cos) {
  const char* fn = "margin_ce_backward";
  on_cpu(cos, fn, "cos");
  with_real(cos, fn, "cos", [&](auto t) {
    using T = decltype(t);
    with_label(labels, fn, "labels", [&](auto l_t) {
      using L = decltype(l_t);
      auto c = mat<const T>(cos, fn, "cos");
      auto y = vec<const L>(labels, fn, "labels");
      auto s = vec<const T>(lse, fn, "lse");
      auto w = weights ? vec<const T>(*weights, fn, "weights") : topofr::vector_view<const T>();
      auto g = mat<T>(grad_cos, fn, "grad_cos");
      nb::gil_scoped_release nogil;
      topofr::margin_ce_backward(cpu, c, y, margin_of(margin), s, w, grad_scale, g);
    });
  });
}

// ---- RSP ---------------------------------------------------------------------------------------------------
void rsp_perturb(const out_array& images, double probability, std::uint64_t seed, std::uint64_t step,
                 const opt_out& kinds) {
  const char* fn = "rsp_perturb";
  on_cpu(images, fn, "images");
  with_real(images, fn, "images", [&](auto t) {
    using T = decltype(t);
    check_array<T>(images, 4, space::cpu, fn, "images");
    const index_t n = dim(images, 0), c = dim(images, 1), h = dim(images, 2), w = dim(images, 3);
    const bool dense = n * c * h * w == 0 ||
                       ((h * w <= 1 || images.stride(1) == h * w || c == 1) && (n <= 1 || images.stride(0) == c * h * w) &&
                        (h <= 1 || images.stride(2) == w));
    if (!dense) value_fail(fn, "images", "must be a contiguous (N, C, H, W) array (it is written in place)");
    topofr::image_batch_view<T> im(static_cast<T*>(images.data()), n, c, h, w);
    auto k = kinds ? vec<std::int32_t>(*kinds, fn, "kinds") : topofr::vector_view<std::int32_t>();
    topofr::rsp_options o;
    o.probability = probability;
    o.seed = seed;
    o.step = step;
    nb::gil_scoped_release nogil;
    topofr::rsp_perturb(cpu, im, o, k);
  });
}

nb::dict rsp_draw(index_t sample, index_t c, index_t h, index_t w, double probability, std::uint64_t seed,
                  std::uint64_t step) {
  topofr::rsp_options o;
  o.probability = probability;
  o.seed = seed;
  o.step = step;
  const topofr::rsp_plan p = topofr::rsp_draw(o, sample, c, h, w);
  static const char* kinds[] = {"none", "blur", "grayscale", "color_jitter", "erasing"};
  nb::dict d;
  d["kind"] = kinds[static_cast<int>(p.kind) + 1];
  d["sigma"] = p.sigma;
  d["brightness"] = p.brightness;
  d["contrast"] = p.contrast;
  d["saturation"] = p.saturation;
  d["hue"] = p.hue;
  d["order"] = nb::make_tuple(p.order[0], p.order[1], p.order[2], p.order[3]);
  d["top"] = p.top;
  d["left"] = p.left;
  d["height"] = p.height;
  d["width"] = p.width;
  return d;
}

// ---- the objective -----------------------------------------------------------------------------------------
/// topofr::objective<float> and <double> behind one Python class; the scalar type is the cosines'.
class objective {
 public:
  explicit objective(const topofr::objective_options& o) : f_(o), d_(o) {}

  nb::dict call(const in_array& x, const in_array& z, const in_array& cos, const in_array& labels,
                const out_array& grad_z, const out_array& grad_cos, const opt_out& sample_loss,
                const opt_out& entropy, const opt_out& p_gt, const opt_out& hard_posterior, const opt_out& weights) {
    const char* fn = "Objective";
    on_cpu(cos, fn, "cos");
    return with_real(cos, fn, "cos", [&](auto t) {
      using T = decltype(t);
      auto& obj = select(t);
      auto c = mat<const T>(cos, fn, "cos");
      auto xv = mat<const T>(x, fn, "x");
      auto zv = mat<const T>(z, fn, "z");
      auto gz = mat<T>(grad_z, fn, "grad_z");
      auto gc = mat<T>(grad_cos, fn, "grad_cos");
      std::optional<topofr::objective_result<T>> r;
      with_label(labels, fn, "labels", [&](auto l_t) {
        using L = decltype(l_t);
        auto y = vec<const L>(labels, fn, "labels");
        nb::gil_scoped_release nogil;
        r = obj(cpu, xv, zv, c, y, gz, gc);
      });
      copy(obj.sample_loss(), sample_loss, "sample_loss");
      copy(obj.entropy(), entropy, "entropy");
      copy(obj.p_gt(), p_gt, "p_gt");
      copy(obj.hard_posterior(), hard_posterior, "hard_posterior");
      copy(obj.weights(), weights, "weights");
      nb::dict d;
      d["loss"] = static_cast<double>(r->loss);
      d["loss_cls"] = static_cast<double>(r->loss_cls);
      d["discrepancy"] = static_cast<double>(r->discrepancy);
      d["pi"] = r->pi;
      d["sigma"] = r->sigma;
      d["hard_fraction"] = r->hard_fraction;
      d["gum_iterations"] = r->gum_iterations;
      return d;
    });
  }

 private:
  topofr::objective<float>& select(float) { return f_; }
  topofr::objective<double>& select(double) { return d_; }
  template <class T> static void copy(const std::vector<T>& v, const opt_out& out, const char* arg) {
    if (!out) return;
    auto o = vec<T>(*out, "Objective", arg);
    if (o.size() != static_cast<index_t>(v.size()))
      value_fail("Objective", arg, "expected ", v.size(), " entries, got ", o.size());
    std::copy(v.begin(), v.end(), o.data());
  }
  topofr::objective<float> f_;
  topofr::objective<double> d_;
};

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "topofr's blocks on DLPack arrays, writing into caller-provided outputs (see topofr/__init__.py).";
  nb::exception<topofr::error>(m, "Error", PyExc_ValueError);

  m.def("has_cuda", [] { return false; });
  m.def("image_scale", &topofr::image_scale, "c"_a, "h"_a, "w"_a);
  m.def("pairwise_distances", &pairwise_distances, "points"_a, "dist"_a, "scale"_a);
  m.def("persistence_pairs", &persistence_pairs, "dist"_a, "pairs"_a, "deaths"_a.none());
  m.def("persistence_pairs_from_points", &persistence_pairs_from_points, "points"_a, "scale"_a, "pairs"_a,
        "deaths"_a.none());
  m.def("gather_pairs", &gather_pairs, "dist"_a, "pairs"_a, "values"_a);
  m.def("scatter_pairs_add", &scatter_pairs_add, "pairs"_a, "values"_a, "grad_dist"_a);
  m.def("isa_loss", &isa_loss, "dist_x"_a, "dist_z"_a, "pairs_x"_a, "pairs_z"_a, "variant"_a, "reduction"_a,
        "grad_dist_z"_a.none(), "grad_dist_x"_a.none());
  m.def("isa_loss_from_points", &isa_loss_from_points, "x"_a, "z"_a, "variant"_a, "reduction"_a, "x_scale"_a,
        "z_scale"_a, "grad_z"_a.none(), "grad_x"_a.none());
  m.def("gum_fit", &gum_fit, "entropy"_a, "hard_posterior"_a, "mode"_a, "max_iter"_a, "tol"_a, "symmetrize"_a);
  m.def("sds_weights", &sds_weights, "hard_posterior"_a, "p_gt"_a.none(), "lambda_"_a, "focal"_a, "omega"_a);
  m.def("margin_logits", &margin_logits, "cos"_a, "labels"_a, "margin"_a, "logits"_a);
  m.def("margin_logits_backward", &margin_logits_backward, "cos"_a, "labels"_a, "margin"_a, "grad_logits"_a,
        "grad_cos"_a);
  m.def("margin_ce_forward", &margin_ce_forward, "cos"_a, "labels"_a, "margin"_a, "entropy_eps"_a, "loss"_a,
        "entropy"_a.none(), "p_gt"_a.none(), "lse"_a.none());
  m.def("margin_ce_backward", &margin_ce_backward, "cos"_a, "labels"_a, "margin"_a, "lse"_a, "weights"_a.none(),
        "grad_scale"_a, "grad_cos"_a);
  m.def("rsp_perturb", &rsp_perturb, "images"_a, "probability"_a, "seed"_a, "step"_a, "kinds"_a.none());
  m.def("rsp_draw", &rsp_draw, "sample"_a, "c"_a, "h"_a, "w"_a, "probability"_a, "seed"_a, "step"_a);

  nb::class_<topofr::objective_options>(m, "ObjectiveOptions")
      .def("__init__", [](topofr::objective_options* self, const margin_t& margin, double alpha, double lambda,
                          bool use_isa, bool use_sds, bool focal, double entropy_eps, const std::string& gum_mode,
                          int gum_max_iter, double gum_tol, bool gum_symmetrize, const std::string& isa_variant,
                          const std::string& isa_reduction, double x_scale, double z_scale) {
        auto* o = new (self) topofr::objective_options();
        o->margin = margin_of(margin);
        o->alpha = alpha;
        o->lambda = lambda;
        o->use_isa = use_isa;
        o->use_sds = use_sds;
        o->focal = focal;
        o->entropy_eps = entropy_eps;
        o->gum = gum_opts(gum_mode, gum_max_iter, gum_tol, gum_symmetrize, "Objective");
        o->isa.variant = parse_variant(isa_variant, "Objective");
        o->isa.reduce = parse_reduction(isa_reduction, "Objective");
        o->isa.x_scale = x_scale;
        o->isa.z_scale = z_scale;
      }, "margin"_a, "alpha"_a, "lambda_"_a, "use_isa"_a, "use_sds"_a, "focal"_a, "entropy_eps"_a, "gum_mode"_a,
         "gum_max_iter"_a, "gum_tol"_a, "gum_symmetrize"_a, "isa_variant"_a, "isa_reduction"_a, "x_scale"_a,
         "z_scale"_a);

  nb::class_<objective>(m, "Objective")
      .def(nb::init<const topofr::objective_options&>(), "options"_a)
      .def("__call__", &objective::call, "x"_a, "z"_a, "cos"_a, "labels"_a, "grad_z"_a, "grad_cos"_a,
           "sample_loss"_a.none(), "entropy"_a.none(), "p_gt"_a.none(), "hard_posterior"_a.none(),
           "weights"_a.none());
}
