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

#ifndef TOPOFR_PY_CUDA
#define TOPOFR_PY_CUDA 0
#endif

#include "arrays.hpp"
#include "cuda_api.hpp"
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

// ---- backends: every binding is written once, generic in where it runs --------------------------------------
/// The CPU: topofr::fn(topofr::cpu, ...).
struct cpu_exec {
  static constexpr space where = space::cpu;
  using mem = topofr::host_memory;
};
/// A CUDA device: cuda_api::fn(exec, ...) (module_cuda.cu), on the caller's stream and allocator.
struct cuda_exec {
  static constexpr space where = space::cuda;
  using mem = topofr::device_memory;
  cuda_api::exec e;
};

#define TOPOFR_PY_FORWARD(fn)                                                                     \
  template <class... A> decltype(auto) fn(const cpu_exec&, A&&... a) {                            \
    return topofr::fn(topofr::cpu, std::forward<A>(a)...);                                        \
  }                                                                                               \
  template <class... A> decltype(auto) fn(const cuda_exec& x, A&&... a) {                         \
    return cuda_api::fn(x.e, std::forward<A>(a)...);                                              \
  }
namespace run {
TOPOFR_PY_FORWARD(pairwise_distances)
TOPOFR_PY_FORWARD(persistence_pairs)
TOPOFR_PY_FORWARD(persistence_pairs_from_points)
TOPOFR_PY_FORWARD(gather_pairs)
TOPOFR_PY_FORWARD(scatter_pairs_add)
TOPOFR_PY_FORWARD(isa_loss)
TOPOFR_PY_FORWARD(isa_loss_from_points)
TOPOFR_PY_FORWARD(gum_fit)
TOPOFR_PY_FORWARD(sds_weights)
TOPOFR_PY_FORWARD(margin_logits)
TOPOFR_PY_FORWARD(margin_logits_backward)
TOPOFR_PY_FORWARD(margin_ce_forward)
TOPOFR_PY_FORWARD(margin_ce_backward)
TOPOFR_PY_FORWARD(rsp_perturb)
TOPOFR_PY_FORWARD(localize_labels)
TOPOFR_PY_FORWARD(partial_fc_sample)
TOPOFR_PY_FORWARD(shard_stats)
TOPOFR_PY_FORWARD(shard_entropy_eps_partial)
}  // namespace run
#undef TOPOFR_PY_FORWARD

#if TOPOFR_PY_CUDA
// The caller's allocator, a Python object with allocate(nbytes, stream) -> int and free(ptr, nbytes, stream)
// (topofr/__init__.py wraps torch's caching allocator in one). Called from the library with the GIL released.
void* py_allocate(void* state, std::size_t bytes, void* stream) {
  nb::gil_scoped_acquire gil;
  nb::object p = nb::handle(static_cast<PyObject*>(state))
                     .attr("allocate")(bytes, reinterpret_cast<std::uintptr_t>(stream));
  return reinterpret_cast<void*>(nb::cast<std::uintptr_t>(p));
}
void py_deallocate(void* state, void* ptr, std::size_t bytes, void* stream) {
  nb::gil_scoped_acquire gil;
  try {
    nb::handle(static_cast<PyObject*>(state))
        .attr("free")(reinterpret_cast<std::uintptr_t>(ptr), bytes, reinterpret_cast<std::uintptr_t>(stream));
  } catch (nb::python_error& e) {
    e.discard_as_unraisable("topofr: the allocator's free()");  // called from destructors: must not throw
  }
}
#endif

/// Calls f(cpu_exec) or f(cuda_exec) as `first` lives on the CPU or a CUDA device; the other arrays of the call
/// are checked against it when they are viewed.
template <class A, class F>
decltype(auto) on_backend(const A& first, const char* fn, const char* arg, std::uintptr_t stream,
                          const nb::object& allocator, F&& f) {
  if (space_of(first, fn, arg) == space::cpu) return f(cpu_exec{});
#if TOPOFR_PY_CUDA
  cuda_exec x;
  x.e.device = first.device_id();
  x.e.stream = reinterpret_cast<void*>(stream);
  if (!allocator.is_none()) {
    x.e.alloc_state = allocator.ptr();
    x.e.allocate = &py_allocate;
    x.e.deallocate = &py_deallocate;
  }
  return f(x);
#else
  (void)stream;
  (void)allocator;
  type_fail(fn, arg, "is a CUDA array, but this topofr was built without CUDA (topofr.has_cuda() is False)");
#endif
}

/// f(T{}, U{}) with T the real dtype of `a` and U that of `b` (U = T when `b` is absent). The CPU blocks
/// accept, e.g., float deaths of a double matrix; on CUDA every array of a call has one dtype.
template <class B, class A1, class A2, class F>
void with_reals(const A1& a, const A2* b, const char* fn, const char* arg_a, const char* arg_b, F&& f) {
  with_real(a, fn, arg_a, [&](auto t) {
    using T = decltype(t);
    auto second = [&](auto u) {
      using U = decltype(u);
      if constexpr (B::where == space::cpu || std::is_same<T, U>::value)
        f(t, u);
      else
        type_fail(fn, arg_b, "on CUDA must have the dtype of ", arg_a, " (", dtype_name(a.dtype()), ")");
    };
    if (b) with_real(*b, fn, arg_b, second); else second(t);
  });
}
template <class A> const A* ptr(const std::optional<A>& o) { return o ? &*o : nullptr; }

// Each binding: pick the backend from the first array, dispatch on dtypes, view every array (checking it is on
// the same device), release the GIL, run the block. `stream` and `allocator` only matter on CUDA.
#define TOPOFR_PY_EXEC std::uintptr_t stream, const nb::object& allocator
template <class B> using mem_t = typename B::mem;

// ---- distances ---------------------------------------------------------------------------------------------
void pairwise_distances(const in_array& points, const out_array& dist, double scale, TOPOFR_PY_EXEC) {
  const char* fn = "pairwise_distances";
  on_backend(points, fn, "points", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_real(points, fn, "points", [&](auto t) {
      using T = decltype(t);
      if (points.ndim() == 2) {
        auto p = mat<const T, S>(points, fn, "points", B::where);
        auto d = mat<T, S>(dist, fn, "dist", B::where);
        nb::gil_scoped_release nogil;
        run::pairwise_distances(be, p, d, scale);
      } else if (points.ndim() == 3) {
        auto p = batch<const T, S>(points, fn, "points", B::where);
        auto d = batch<T, S>(dist, fn, "dist", B::where);
        nb::gil_scoped_release nogil;
        run::pairwise_distances(be, p, d, scale);
      } else {
        value_fail(fn, "points", "expected (n, d) or (B, n, d), got ", points.ndim(), " dimensions");
      }
    });
  });
}

// ---- persistence -------------------------------------------------------------------------------------------
void persistence_pairs(const in_array& dist, const out_array& pairs, const opt_out& deaths, TOPOFR_PY_EXEC) {
  const char* fn = "persistence_pairs";
  on_backend(dist, fn, "dist", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_reals<B>(dist, ptr(deaths), fn, "dist", "deaths", [&](auto t, auto d_t) {
      using T = decltype(t);
      using D = decltype(d_t);
      if (dist.ndim() == 2) {
        auto m = mat<const T, S>(dist, fn, "dist", B::where);
        auto p = edges<edge, S>(pairs, fn, "pairs", B::where);
        auto dv = deaths ? vec<D, S>(*deaths, fn, "deaths", B::where) : topofr::vector_view<D, S>();
        nb::gil_scoped_release nogil;
        run::persistence_pairs(be, m, p, dv);
      } else if (dist.ndim() == 3) {
        auto m = batch<const T, S>(dist, fn, "dist", B::where);
        auto p = edge_batch<edge, S>(pairs, fn, "pairs", B::where);
        auto dv = deaths ? mat<D, S>(*deaths, fn, "deaths", B::where) : topofr::matrix_view<D, S>();
        nb::gil_scoped_release nogil;
        run::persistence_pairs(be, m, p, dv);
      } else {
        value_fail(fn, "dist", "expected (n, n) or (B, n, n), got ", dist.ndim(), " dimensions");
      }
    });
  });
}

void persistence_pairs_from_points(const in_array& points, double scale, const out_array& pairs,
                                   const opt_out& deaths, TOPOFR_PY_EXEC) {
  const char* fn = "persistence_pairs_from_points";
  on_backend(points, fn, "points", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_reals<B>(points, ptr(deaths), fn, "points", "deaths", [&](auto t, auto d_t) {
      using T = decltype(t);
      using D = decltype(d_t);
      auto x = batch<const T, S>(points, fn, "points", B::where);
      auto p = edge_batch<edge, S>(pairs, fn, "pairs", B::where);
      auto dv = deaths ? mat<D, S>(*deaths, fn, "deaths", B::where) : topofr::matrix_view<D, S>();
      nb::gil_scoped_release nogil;
      run::persistence_pairs_from_points(be, x, scale, p, dv);
    });
  });
}

// ---- gather / scatter --------------------------------------------------------------------------------------
void gather_pairs(const in_array& dist, const in_array& pairs, const out_array& values, TOPOFR_PY_EXEC) {
  const char* fn = "gather_pairs";
  on_backend(dist, fn, "dist", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_reals<B>(dist, &values, fn, "dist", "values", [&](auto t, auto v_t) {
      auto d = mat<const decltype(t), S>(dist, fn, "dist", B::where);
      auto p = edges<const edge, S>(pairs, fn, "pairs", B::where);
      auto v = vec<decltype(v_t), S>(values, fn, "values", B::where);
      nb::gil_scoped_release nogil;
      run::gather_pairs(be, d, p, v);
    });
  });
}

void scatter_pairs_add(const in_array& pairs, const in_array& values, const out_array& grad_dist,
                       TOPOFR_PY_EXEC) {
  const char* fn = "scatter_pairs_add";
  on_backend(grad_dist, fn, "grad_dist", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_reals<B>(grad_dist, &values, fn, "grad_dist", "values", [&](auto t, auto v_t) {
      auto p = edges<const edge, S>(pairs, fn, "pairs", B::where);
      auto v = vec<const decltype(v_t), S>(values, fn, "values", B::where);
      auto g = mat<decltype(t), S>(grad_dist, fn, "grad_dist", B::where);
      nb::gil_scoped_release nogil;
      run::scatter_pairs_add(be, p, v, g);
    });
  });
}

// ---- ISA ---------------------------------------------------------------------------------------------------
double isa_loss(const in_array& dist_x, const in_array& dist_z, const in_array& pairs_x, const in_array& pairs_z,
                const std::string& variant, const std::string& reduction, const opt_out& grad_dist_z,
                const opt_out& grad_dist_x, TOPOFR_PY_EXEC) {
  const char* fn = "isa_loss";
  const auto v = parse_variant(variant, fn);
  const auto r = parse_reduction(reduction, fn);
  return on_backend(dist_x, fn, "dist_x", stream, allocator, [&](const auto& be) -> double {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    return with_real(dist_x, fn, "dist_x", [&](auto t) -> double {
      using T = decltype(t);
      auto mx = mat<const T, S>(dist_x, fn, "dist_x", B::where);
      auto mz = mat<const T, S>(dist_z, fn, "dist_z", B::where);
      auto px = edges<const edge, S>(pairs_x, fn, "pairs_x", B::where);
      auto pz = edges<const edge, S>(pairs_z, fn, "pairs_z", B::where);
      auto gz = grad_dist_z ? mat<T, S>(*grad_dist_z, fn, "grad_dist_z", B::where) : topofr::matrix_view<T, S>();
      auto gx = grad_dist_x ? mat<T, S>(*grad_dist_x, fn, "grad_dist_x", B::where) : topofr::matrix_view<T, S>();
      nb::gil_scoped_release nogil;
      return static_cast<double>(run::isa_loss(be, mx, mz, px, pz, v, r, gz, gx));
    });
  });
}

double isa_loss_from_points(const in_array& x, const in_array& z, const std::string& variant,
                            const std::string& reduction, double x_scale, double z_scale, const opt_out& grad_z,
                            const opt_out& grad_x, TOPOFR_PY_EXEC) {
  const char* fn = "isa_loss_from_points";
  topofr::isa_options opt;
  opt.variant = parse_variant(variant, fn);
  opt.reduce = parse_reduction(reduction, fn);
  opt.x_scale = x_scale;
  opt.z_scale = z_scale;
  return on_backend(x, fn, "x", stream, allocator, [&](const auto& be) -> double {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    return with_real(x, fn, "x", [&](auto t) -> double {
      using T = decltype(t);
      auto xv = mat<const T, S>(x, fn, "x", B::where);
      auto zv = mat<const T, S>(z, fn, "z", B::where);
      auto gz = grad_z ? mat<T, S>(*grad_z, fn, "grad_z", B::where) : topofr::matrix_view<T, S>();
      auto gx = grad_x ? mat<T, S>(*grad_x, fn, "grad_x", B::where) : topofr::matrix_view<T, S>();
      nb::gil_scoped_release nogil;
      return static_cast<double>(run::isa_loss_from_points(be, xv, zv, opt, gz, gx));
    });
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

using gum_tuple = std::tuple<double, double, double, int, bool>;

gum_tuple gum_fit(const in_array& entropy, const out_array& hard_posterior, const std::string& mode, int max_iter,
                  double tol, bool symmetrize, TOPOFR_PY_EXEC) {
  const char* fn = "gum_fit";
  const auto o = gum_opts(mode, max_iter, tol, symmetrize, fn);
  gum_tuple out;
  on_backend(entropy, fn, "entropy", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_reals<B>(entropy, &hard_posterior, fn, "entropy", "hard_posterior", [&](auto t, auto h_t) {
      auto e = vec<const decltype(t), S>(entropy, fn, "entropy", B::where);
      auto h = vec<decltype(h_t), S>(hard_posterior, fn, "hard_posterior", B::where);
      nb::gil_scoped_release nogil;
      const topofr::gum_result g = run::gum_fit(be, e, h, o);
      out = {g.pi, g.sigma, g.c, g.iterations, g.converged};
    });
  });
  return out;
}

void sds_weights(const in_array& hard_posterior, const opt_in& p_gt, double lambda, bool focal,
                 const out_array& omega, TOPOFR_PY_EXEC) {
  const char* fn = "sds_weights";
  on_backend(hard_posterior, fn, "hard_posterior", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_reals<B>(hard_posterior, &omega, fn, "hard_posterior", "omega", [&](auto h_t, auto o_t) {
      using H = decltype(h_t);
      with_reals<B>(hard_posterior, ptr(p_gt), fn, "hard_posterior", "p_gt", [&](auto, auto p_t) {
        using P = decltype(p_t);
        auto h = vec<const H, S>(hard_posterior, fn, "hard_posterior", B::where);
        auto p = p_gt ? vec<const P, S>(*p_gt, fn, "p_gt", B::where) : topofr::vector_view<const P, S>();
        auto w = vec<decltype(o_t), S>(omega, fn, "omega", B::where);
        nb::gil_scoped_release nogil;
        run::sds_weights(be, h, p, lambda, focal, w);
      });
    });
  });
}

// ---- combined-margin head ----------------------------------------------------------------------------------
using margin_t = std::tuple<double, double, double, double, bool>;  // (s, m1, m2, m3, straight_through)
topofr::combined_margin margin_of(const margin_t& m) {
  topofr::combined_margin c;
  c.s = std::get<0>(m);
  c.m1 = std::get<1>(m);
  c.m2 = std::get<2>(m);
  c.m3 = std::get<3>(m);
  c.straight_through = std::get<4>(m);
  return c;
}

/// The head's bindings: f(be, c, y) with the backend and the views of cos (N x C, float32 or float64) and
/// labels (N, int32 or int64); T = decltype(c)::value_type.
template <class F>
void head(const in_array& cos, const in_array& labels, const char* fn, TOPOFR_PY_EXEC, F&& f) {
  on_backend(cos, fn, "cos", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_real(cos, fn, "cos", [&](auto t) {
      with_label(labels, fn, "labels", [&](auto l) {
        f(be, mat<const decltype(t), S>(cos, fn, "cos", B::where),
          vec<const decltype(l), S>(labels, fn, "labels", B::where));
      });
    });
  });
}

void margin_logits(const in_array& cos, const in_array& labels, const margin_t& margin, const out_array& logits,
                   TOPOFR_PY_EXEC) {
  const char* fn = "margin_logits";
  head(cos, labels, fn, stream, allocator, [&](const auto& be, auto c, auto y) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    using T = typename decltype(c)::value_type;
    auto o = mat<T, S>(logits, fn, "logits", B::where);
    nb::gil_scoped_release nogil;
    run::margin_logits(be, c, y, margin_of(margin), o);
  });
}

void margin_logits_backward(const in_array& cos, const in_array& labels, const margin_t& margin,
                            const in_array& grad_logits, const out_array& grad_cos, TOPOFR_PY_EXEC) {
  const char* fn = "margin_logits_backward";
  head(cos, labels, fn, stream, allocator, [&](const auto& be, auto c, auto y) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    using T = typename decltype(c)::value_type;
    auto gl = mat<const T, S>(grad_logits, fn, "grad_logits", B::where);
    auto gc = mat<T, S>(grad_cos, fn, "grad_cos", B::where);
    nb::gil_scoped_release nogil;
    run::margin_logits_backward(be, c, y, margin_of(margin), gl, gc);
  });
}

void margin_ce_forward(const in_array& cos, const in_array& labels, const margin_t& margin, double entropy_eps,
                       const out_array& loss, const opt_out& entropy, const opt_out& p_gt, const opt_out& lse,
                       TOPOFR_PY_EXEC) {
  const char* fn = "margin_ce_forward";
  head(cos, labels, fn, stream, allocator, [&](const auto& be, auto c, auto y) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    using T = typename decltype(c)::value_type;
    auto opt_vec = [&](const opt_out& a, const char* arg) {
      return a ? vec<T, S>(*a, fn, arg, B::where) : topofr::vector_view<T, S>();
    };
    auto lo = vec<T, S>(loss, fn, "loss", B::where);
    auto en = opt_vec(entropy, "entropy"), pg = opt_vec(p_gt, "p_gt"), ls = opt_vec(lse, "lse");
    nb::gil_scoped_release nogil;
    run::margin_ce_forward(be, c, y, margin_of(margin), entropy_eps, lo, en, pg, ls);
  });
}

void margin_ce_backward(const in_array& cos, const in_array& labels, const margin_t& margin, const in_array& lse,
                        const opt_in& weights, double grad_scale, const out_array& grad_cos, TOPOFR_PY_EXEC) {
  const char* fn = "margin_ce_backward";
  head(cos, labels, fn, stream, allocator, [&](const auto& be, auto c, auto y) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    using T = typename decltype(c)::value_type;
    auto s = vec<const T, S>(lse, fn, "lse", B::where);
    auto w = weights ? vec<const T, S>(*weights, fn, "weights", B::where) : topofr::vector_view<const T, S>();
    auto g = mat<T, S>(grad_cos, fn, "grad_cos", B::where);
    nb::gil_scoped_release nogil;
    run::margin_ce_backward(be, c, y, margin_of(margin), s, w, grad_scale, g);
  });
}

// ---- class-sharded head (topofr/shard.hpp; on CUDA topofr/cuda/shard.cuh) ------------------------------------
// As the other blocks: the backend is picked from the first array, every other array must be on the same side.
// On CUDA the values the CPU checks as it reads them (labels, cosines, lse_global, the stats) are checked on the
// device and come back as topofr.Error from the call's one synchronisation (module_cuda.cu).
static_assert(sizeof(topofr::shard_row_stats) == 4 * sizeof(double) &&
                  alignof(topofr::shard_row_stats) == alignof(double),
              "shard_row_stats is viewed as 4 doubles per row");

/// An (N, 4) float64 array as N shard_row_stats, zero-copy: rows must be dense (row stride 4).
template <class R, class S, class A>
topofr::vector_view<R, S> stats_rows(const A& a, const char* fn, const char* arg, space where) {
  check_array<double>(a, 2, where, fn, arg);
  if (a.shape(1) != 4) value_fail(fn, arg, "expected shape (N, 4), got (", a.shape(0), ", ", a.shape(1), ")");
  if (a.shape(0) > 1 && a.stride(0) != 4)
    value_fail(fn, arg, "rows must be dense (row stride 4), got ", a.stride(0));
  return {reinterpret_cast<R*>(const_cast<void*>(static_cast<const void*>(a.data()))), dim(a, 0)};
}

topofr::class_range class_range_of(index_t begin, index_t end) { return topofr::class_range{begin, end}; }

namespace run {
/// combine_shard_stats: the CPU takes a pointer to the W x N stats, the CUDA twin a device vector of them.
template <class T>
void combine_shard_stats(const cpu_exec&, topofr::vector_view<const topofr::shard_row_stats> per_rank,
                         index_t world, index_t n, topofr::vector_view<T> lse, topofr::vector_view<T> loss,
                         topofr::vector_view<T> p_gt, topofr::vector_view<T> entropy) {
  topofr::combine_shard_stats<T>(n == 0 ? nullptr : per_rank.data(), world, n, lse, loss, p_gt, entropy);
}
template <class T>
void combine_shard_stats(const cuda_exec& x, topofr::device_vector_view<const topofr::shard_row_stats> per_rank,
                         index_t world, index_t n, topofr::device_vector_view<T> lse,
                         topofr::device_vector_view<T> loss, topofr::device_vector_view<T> p_gt,
                         topofr::device_vector_view<T> entropy) {
  cuda_api::combine_shard_stats(x.e, per_rank, world, n, lse, loss, p_gt, entropy);
}
}  // namespace run

void localize_labels(const in_array& labels, index_t begin, index_t end, index_t classes, const out_array& local,
                     TOPOFR_PY_EXEC) {
  const char* fn = "localize_labels";
  on_backend(labels, fn, "labels", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_label(labels, fn, "labels", [&](auto l) {
      using L = decltype(l);
      auto y = vec<const L, S>(labels, fn, "labels", B::where);
      auto o = vec<L, S>(local, fn, "local", B::where);
      nb::gil_scoped_release nogil;
      run::localize_labels(be, y, class_range_of(begin, end), classes, o);
    });
  });
}

index_t partial_fc_sample(const in_array& local_labels, index_t begin, index_t end, index_t num_sample,
                          std::uint64_t seed, std::uint64_t step, const out_array& index,
                          const out_array& sampled_labels, TOPOFR_PY_EXEC) {
  const char* fn = "partial_fc_sample";
  index_t count = 0;
  on_backend(local_labels, fn, "local_labels", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_label(local_labels, fn, "local_labels", [&](auto l) {
      using L = decltype(l);
      auto y = vec<const L, S>(local_labels, fn, "local_labels", B::where);
      auto ix = vec<index_t, S>(index, fn, "index", B::where);
      auto o = vec<L, S>(sampled_labels, fn, "sampled_labels", B::where);
      nb::gil_scoped_release nogil;
      count = run::partial_fc_sample(be, y, class_range_of(begin, end), num_sample, seed, step, ix, o);
    });
  });
  return count;
}

void shard_stats(const in_array& cos, const in_array& local_labels, const margin_t& margin, const out_array& stats,
                 TOPOFR_PY_EXEC) {
  const char* fn = "shard_stats";
  on_backend(cos, fn, "cos", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    auto st = stats_rows<topofr::shard_row_stats, S>(stats, fn, "stats", B::where);
    with_real(cos, fn, "cos", [&](auto t) {
      auto c = mat<const decltype(t), S>(cos, fn, "cos", B::where);
      with_label(local_labels, fn, "local_labels", [&](auto l) {
        auto y = vec<const decltype(l), S>(local_labels, fn, "local_labels", B::where);
        nb::gil_scoped_release nogil;
        run::shard_stats(be, c, y, margin_of(margin), st);
      });
    });
  });
}

void combine_shard_stats(const in_array& per_rank, const opt_out& lse, const opt_out& loss, const opt_out& p_gt,
                         const opt_out& entropy, TOPOFR_PY_EXEC) {
  const char* fn = "combine_shard_stats";
  on_backend(per_rank, fn, "per_rank", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    check_array<double>(per_rank, 3, B::where, fn, "per_rank");
    if (per_rank.shape(2) != 4)
      value_fail(fn, "per_rank", "expected shape (W, N, 4), got (", per_rank.shape(0), ", ", per_rank.shape(1),
                 ", ", per_rank.shape(2), ")");
    const index_t w = dim(per_rank, 0), n = dim(per_rank, 1);
    if (per_rank.size() != 0 && ((n > 1 && per_rank.stride(1) != 4) || (w > 1 && per_rank.stride(0) != 4 * n)))
      value_fail(fn, "per_rank", "must be a contiguous (W, N, 4) array (rank-major), got strides (",
                 per_rank.stride(0), ", ", per_rank.stride(1), ", ", per_rank.stride(2), ")");
    const topofr::vector_view<const topofr::shard_row_stats, S> rows(
        static_cast<const topofr::shard_row_stats*>(static_cast<const void*>(per_rank.data())), w * n);
    // The outputs share one real dtype: the first one given picks it.
    const out_array* first = lse ? &*lse : loss ? &*loss : p_gt ? &*p_gt : entropy ? &*entropy : nullptr;
    if (!first) value_fail(fn, "out", "no output requested (lse, loss, p_gt and entropy are all None)");
    with_real(*first, fn, "out", [&](auto t) {
      using T = decltype(t);
      auto view = [&](const opt_out& a, const char* arg) {
        return a ? vec<T, S>(*a, fn, arg, B::where) : topofr::vector_view<T, S>();
      };
      auto ls = view(lse, "lse"), lo = view(loss, "loss"), pg = view(p_gt, "p_gt"), en = view(entropy, "entropy");
      nb::gil_scoped_release nogil;
      run::combine_shard_stats<T>(be, rows, w, n, ls, lo, pg, en);
    });
  });
}

void shard_entropy_eps_partial(const in_array& cos, const in_array& local_labels, const margin_t& margin,
                               const in_array& lse_global, double eps, const out_array& partial, TOPOFR_PY_EXEC) {
  const char* fn = "shard_entropy_eps_partial";
  on_backend(cos, fn, "cos", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_real(cos, fn, "cos", [&](auto t) {
      using T = decltype(t);
      auto c = mat<const T, S>(cos, fn, "cos", B::where);
      auto s = vec<const T, S>(lse_global, fn, "lse_global", B::where);
      auto o = vec<double, S>(partial, fn, "partial", B::where);
      with_label(local_labels, fn, "local_labels", [&](auto l) {
        auto y = vec<const decltype(l), S>(local_labels, fn, "local_labels", B::where);
        nb::gil_scoped_release nogil;
        run::shard_entropy_eps_partial(be, c, y, margin_of(margin), s, eps, o);
      });
    });
  });
}

// ---- RSP ---------------------------------------------------------------------------------------------------
void rsp_perturb(const out_array& images, double probability, std::uint64_t seed, std::uint64_t step,
                 const opt_out& kinds, TOPOFR_PY_EXEC) {
  const char* fn = "rsp_perturb";
  on_backend(images, fn, "images", stream, allocator, [&](const auto& be) {
    using B = std::decay_t<decltype(be)>;
    using S = mem_t<B>;
    with_real(images, fn, "images", [&](auto t) {
      using T = decltype(t);
      check_array<T>(images, 4, B::where, fn, "images");
      const index_t n = dim(images, 0), c = dim(images, 1), h = dim(images, 2), w = dim(images, 3);
      // Dense NCHW (an axis of length 1 may have any stride): the batch is written in place.
      const index_t want[4] = {c * h * w, h * w, w, 1};
      for (std::size_t k = 0; k < 4 && n * c * h * w > 0; ++k)
        if (images.shape(k) > 1 && images.stride(k) != want[k])
          value_fail(fn, "images", "must be a contiguous (N, C, H, W) array (it is written in place); axis ", k,
                     " has stride ", images.stride(k), ", expected ", want[k]);
      topofr::image_batch_view<T, S> im(static_cast<T*>(images.data()), n, c, h, w);
      auto k = kinds ? vec<std::int32_t, S>(*kinds, fn, "kinds", B::where) : topofr::vector_view<std::int32_t, S>();
      topofr::rsp_options o;
      o.probability = probability;
      o.seed = seed;
      o.step = step;
      nb::gil_scoped_release nogil;
      run::rsp_perturb(be, im, o, k);
    });
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
/// topofr::objective<float> and <double> behind one Python class (the scalar type is the cosines'); on CUDA a
/// topofr::cuda::objective is stateless and made per call from the same options.
class objective {
 public:
  explicit objective(const topofr::objective_options& o) : opt_(o), f_(o), d_(o) {}

  nb::dict call(const in_array& x, const in_array& z, const in_array& cos, const in_array& labels,
                const out_array& grad_z, const out_array& grad_cos, const out_array& sample_loss,
                const out_array& entropy, const out_array& p_gt, const out_array& hard_posterior,
                const out_array& weights, TOPOFR_PY_EXEC) {
    const char* fn = "Objective";
    nb::dict d;
    head(cos, labels, fn, stream, allocator, [&](const auto& be, auto c, auto y) {
      using B = std::decay_t<decltype(be)>;
      using S = mem_t<B>;
      using T = typename decltype(c)::value_type;
      auto xv = mat<const T, S>(x, fn, "x", B::where);
      auto zv = mat<const T, S>(z, fn, "z", B::where);
      auto gz = mat<T, S>(grad_z, fn, "grad_z", B::where);
      auto gc = mat<T, S>(grad_cos, fn, "grad_cos", B::where);
      auto per = [&](const out_array& a, const char* arg) { return vec<T, S>(a, fn, arg, B::where); };
      auto lo = per(sample_loss, "sample_loss"), en = per(entropy, "entropy"), pg = per(p_gt, "p_gt"),
           hp = per(hard_posterior, "hard_posterior"), w = per(weights, "weights");
      topofr::objective_result<T> r;
      if constexpr (B::where == space::cpu) {
        auto& obj = select(T{});
        {
          nb::gil_scoped_release nogil;
          r = obj(topofr::cpu, xv, zv, c, y, gz, gc);
        }
        // The CPU objective keeps its per-sample values; copy them to the caller's arrays (N values each).
        copy(obj.sample_loss(), lo, "sample_loss");
        copy(obj.entropy(), en, "entropy");
        copy(obj.p_gt(), pg, "p_gt");
        copy(obj.hard_posterior(), hp, "hard_posterior");
        copy(obj.weights(), w, "weights");
      } else {
#if TOPOFR_PY_CUDA
        nb::gil_scoped_release nogil;
        r = cuda_api::objective(be.e, opt_, xv, zv, c, y, gz, gc, lo, en, pg, hp, w);
#endif
      }
      d["loss"] = static_cast<double>(r.loss);
      d["loss_cls"] = static_cast<double>(r.loss_cls);
      d["discrepancy"] = static_cast<double>(r.discrepancy);
      d["pi"] = r.pi;
      d["sigma"] = r.sigma;
      d["hard_fraction"] = r.hard_fraction;
      d["gum_iterations"] = r.gum_iterations;
    });
    return d;
  }

 private:
  topofr::objective<float>& select(float) { return f_; }
  topofr::objective<double>& select(double) { return d_; }
  template <class T> static void copy(const std::vector<T>& v, topofr::vector_view<T> o, const char* arg) {
    if (o.size() != static_cast<index_t>(v.size()))
      value_fail("Objective", arg, "expected ", v.size(), " entries, got ", o.size());
    std::copy(v.begin(), v.end(), o.data());
  }
  topofr::objective_options opt_;
  topofr::objective<float> f_;
  topofr::objective<double> d_;
};

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "topofr's blocks on DLPack arrays, writing into caller-provided outputs (see topofr/__init__.py).";
  nb::exception<topofr::error>(m, "Error", PyExc_ValueError);

  m.def("has_cuda", [] { return bool(TOPOFR_PY_CUDA); });
  m.attr("ignore_label") = static_cast<long long>(topofr::ignore_label);  // the C++ constant, not a copy
  m.def("image_scale", &topofr::image_scale, "c"_a, "h"_a, "w"_a);
  // Every block ends with where a CUDA call runs: the stream (a cudaStream_t as an integer) and the caller's
  // allocator (None: the library's pool); both are ignored on the CPU.
  const auto stream = "stream"_a = std::uintptr_t(0);
  const auto allocator = "allocator"_a = nb::none();
  m.def("pairwise_distances", &pairwise_distances, "points"_a, "dist"_a, "scale"_a, stream, allocator);
  m.def("persistence_pairs", &persistence_pairs, "dist"_a, "pairs"_a, "deaths"_a.none(), stream, allocator);
  m.def("persistence_pairs_from_points", &persistence_pairs_from_points, "points"_a, "scale"_a, "pairs"_a,
        "deaths"_a.none(), stream, allocator);
  m.def("gather_pairs", &gather_pairs, "dist"_a, "pairs"_a, "values"_a, stream, allocator);
  m.def("scatter_pairs_add", &scatter_pairs_add, "pairs"_a, "values"_a, "grad_dist"_a, stream, allocator);
  m.def("isa_loss", &isa_loss, "dist_x"_a, "dist_z"_a, "pairs_x"_a, "pairs_z"_a, "variant"_a, "reduction"_a,
        "grad_dist_z"_a.none(), "grad_dist_x"_a.none(), stream, allocator);
  m.def("isa_loss_from_points", &isa_loss_from_points, "x"_a, "z"_a, "variant"_a, "reduction"_a, "x_scale"_a,
        "z_scale"_a, "grad_z"_a.none(), "grad_x"_a.none(), stream, allocator);
  m.def("gum_fit", &gum_fit, "entropy"_a, "hard_posterior"_a, "mode"_a, "max_iter"_a, "tol"_a, "symmetrize"_a,
        stream, allocator);
  m.def("sds_weights", &sds_weights, "hard_posterior"_a, "p_gt"_a.none(), "lambda_"_a, "focal"_a, "omega"_a,
        stream, allocator);
  m.def("margin_logits", &margin_logits, "cos"_a, "labels"_a, "margin"_a, "logits"_a, stream, allocator);
  m.def("margin_logits_backward", &margin_logits_backward, "cos"_a, "labels"_a, "margin"_a, "grad_logits"_a,
        "grad_cos"_a, stream, allocator);
  m.def("margin_ce_forward", &margin_ce_forward, "cos"_a, "labels"_a, "margin"_a, "entropy_eps"_a, "loss"_a,
        "entropy"_a.none(), "p_gt"_a.none(), "lse"_a.none(), stream, allocator);
  m.def("margin_ce_backward", &margin_ce_backward, "cos"_a, "labels"_a, "margin"_a, "lse"_a, "weights"_a.none(),
        "grad_scale"_a, "grad_cos"_a, stream, allocator);
  // The class-sharded head's primitives (topofr/shard.hpp; CUDA arrays: topofr/cuda/shard.cuh). shard_range is
  // host arithmetic.
  m.def("shard_range", [](index_t classes, index_t world, index_t rank) {
    const topofr::class_range r = topofr::shard_range(classes, world, rank);
    return std::make_tuple(r.begin, r.end);
  }, "classes"_a, "world"_a, "rank"_a);
  m.def("localize_labels", &localize_labels, "labels"_a, "begin"_a, "end"_a, "classes"_a, "local"_a, stream,
        allocator);
  m.def("partial_fc_sample", &partial_fc_sample, "local_labels"_a, "begin"_a, "end"_a, "num_sample"_a, "seed"_a,
        "step"_a, "index"_a, "sampled_labels"_a, stream, allocator);
  m.def("shard_stats", &shard_stats, "cos"_a, "local_labels"_a, "margin"_a, "stats"_a, stream, allocator);
  m.def("combine_shard_stats", &combine_shard_stats, "per_rank"_a, "lse"_a.none(), "loss"_a.none(),
        "p_gt"_a.none(), "entropy"_a.none(), stream, allocator);
  m.def("shard_entropy_eps_partial", &shard_entropy_eps_partial, "cos"_a, "local_labels"_a, "margin"_a,
        "lse_global"_a, "eps"_a, "partial"_a, stream, allocator);
  m.def("rsp_perturb", &rsp_perturb, "images"_a, "probability"_a, "seed"_a, "step"_a, "kinds"_a.none(), stream,
        allocator);
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
           "sample_loss"_a, "entropy"_a, "p_gt"_a, "hard_posterior"_a, "weights"_a, stream, allocator);
}
