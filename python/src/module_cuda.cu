// module_cuda.cu — the CUDA half of topofr._core (built when nvcc is found): each entry of cuda_api.hpp runs the
// library's CUDA overload on the caller's stream with the caller's allocator, then synchronises once to read
// the device status word and any scalar result (cuda_api.hpp says why).
#include <cuda_runtime.h>

#include <string>

#include "cuda_api.hpp"
#include "topofr/topofr.cuh"

namespace topofr_py {
namespace cuda_api {
namespace {

namespace tc = topofr::cuda;

void* allocate(void* state, std::size_t bytes, cudaStream_t s) {
  const auto* e = static_cast<const exec*>(state);
  return e->allocate(e->alloc_state, bytes, static_cast<void*>(s));
}
void deallocate(void* state, void* p, std::size_t bytes, cudaStream_t s) {
  const auto* e = static_cast<const exec*>(state);
  e->deallocate(e->alloc_state, p, bytes, static_cast<void*>(s));
}

/// Makes e.device current for the call and restores the caller's device after it.
class device_guard {
 public:
  device_guard(int device, const char* fn) {
    tc::check_cuda(cudaGetDevice(&old_), fn);
    if (old_ != device) tc::check_cuda(cudaSetDevice(device), fn);
    changed_ = old_ != device;
  }
  ~device_guard() {
    if (changed_) cudaSetDevice(old_);
  }

 private:
  int old_ = 0;
  bool changed_ = false;
};

/// Runs body(ctx) and then `after()` (host copies of scalars, enqueued), synchronises, and throws on a status bit.
template <class Body>
void run(const exec& e, const char* fn, Body&& body) {
  device_guard g(e.device, fn);
  tc::context ctx;
  ctx.stream = static_cast<cudaStream_t>(e.stream);
  if (e.allocate && e.deallocate) {
    ctx.alloc.state = const_cast<exec*>(&e);
    ctx.alloc.allocate = &allocate;
    ctx.alloc.deallocate = &deallocate;
  }
  tc::workspace status(ctx, sizeof(int));
  ctx.status = status.as<int>();
  tc::check_cuda(cudaMemsetAsync(ctx.status, 0, sizeof(int), ctx.stream), fn);
  body(ctx);
  const int s = tc::read_status(ctx);  // the one synchronisation
  if (s != tc::status_ok)
    throw topofr::error(std::string("topofr.") + fn + ": the device found " + tc::describe_status(s));
}

/// A device scalar of type V from ctx's allocator; get() copies it to the host once the stream has run (it
/// synchronises here, inside run()'s body, because the scalar's memory goes back to the allocator with it).
template <class V>
struct device_scalar {
  explicit device_scalar(const tc::context& ctx) : ws(ctx, sizeof(V)) {}
  V* ptr() const { return ws.as<V>(); }
  V get(const tc::context& ctx, const char* fn) const {
    V host{};
    tc::check_cuda(cudaMemcpyAsync(&host, ptr(), sizeof(V), cudaMemcpyDeviceToHost, ctx.stream), fn);
    tc::check_cuda(cudaStreamSynchronize(ctx.stream), fn);
    return host;
  }
  tc::workspace ws;
};

}  // namespace

#define TOPOFR_PY_CUDA_HEAD_DEF(T, L)                                                                          \
  void margin_logits(const exec& e, dmat<const T> c, dvec<const L> y, const topofr::combined_margin& m,         \
                     dmat<T> out) {                                                                            \
    run(e, "margin_logits", [&](const tc::context& ctx) { topofr::margin_logits(ctx, c, y, m, out); });        \
  }                                                                                                            \
  void margin_logits_backward(const exec& e, dmat<const T> c, dvec<const L> y, const topofr::combined_margin& m,\
                              dmat<const T> gl, dmat<T> gc) {                                                  \
    run(e, "margin_logits_backward",                                                                           \
        [&](const tc::context& ctx) { topofr::margin_logits_backward(ctx, c, y, m, gl, gc); });                \
  }                                                                                                            \
  void margin_ce_forward(const exec& e, dmat<const T> c, dvec<const L> y, const topofr::combined_margin& m,     \
                         double eps, dvec<T> loss, dvec<T> ent, dvec<T> pgt, dvec<T> lse) {                    \
    run(e, "margin_ce_forward",                                                                                \
        [&](const tc::context& ctx) { topofr::margin_ce_forward(ctx, c, y, m, eps, loss, ent, pgt, lse); });   \
  }                                                                                                            \
  void margin_ce_backward(const exec& e, dmat<const T> c, dvec<const L> y, const topofr::combined_margin& m,    \
                          dvec<const T> lse, dvec<const T> w, double scale, dmat<T> gc) {                      \
    run(e, "margin_ce_backward",                                                                               \
        [&](const tc::context& ctx) { topofr::margin_ce_backward(ctx, c, y, m, lse, w, scale, gc); });         \
  }                                                                                                            \
  topofr::objective_result<T> objective(const exec& e, const topofr::objective_options& o, dmat<const T> x,     \
                                        dmat<const T> z, dmat<const T> c, dvec<const L> y, dmat<T> gz,         \
                                        dmat<T> gc, dvec<T> loss, dvec<T> ent, dvec<T> pgt, dvec<T> hard,      \
                                        dvec<T> w) {                                                           \
    topofr::objective_result<T> r{};                                                                           \
    run(e, "Objective", [&](const tc::context& ctx) {                                                          \
      device_scalar<topofr::objective_result<T>> res(ctx);                                                     \
      const tc::objective<T> obj(o);                                                                           \
      obj(ctx, x, z, c, y, gz, gc, res.ptr(), tc::objective_samples<T>{loss, ent, pgt, hard, w});              \
      r = res.get(ctx, "Objective");                                                                           \
    });                                                                                                        \
    return r;                                                                                                  \
  }                                                                                                            \
  void shard_stats(const exec& e, dmat<const T> c, dvec<const L> y, const topofr::combined_margin& m,           \
                   dvec<topofr::shard_row_stats> st) {                                                         \
    run(e, "shard_stats", [&](const tc::context& ctx) { topofr::shard_stats(ctx, c, y, m, st); });             \
  }                                                                                                            \
  void shard_entropy_eps_partial(const exec& e, dmat<const T> c, dvec<const L> y, const topofr::combined_margin& m,\
                                 dvec<const T> lse, double eps, dvec<double> partial) {                        \
    run(e, "shard_entropy_eps_partial", [&](const tc::context& ctx) {                                          \
      topofr::shard_entropy_eps_partial(ctx, c, y, m, lse, eps, partial);                                      \
    });                                                                                                        \
  }

#define TOPOFR_PY_CUDA_DEF(T)                                                                                  \
  void pairwise_distances(const exec& e, dmat<const T> p, dmat<T> d, double scale) {                           \
    run(e, "pairwise_distances", [&](const tc::context& ctx) { topofr::pairwise_distances(ctx, p, d, scale); });\
  }                                                                                                            \
  void pairwise_distances(const exec& e, dbatch<const T> p, dbatch<T> d, double scale) {                       \
    run(e, "pairwise_distances", [&](const tc::context& ctx) { topofr::pairwise_distances(ctx, p, d, scale); });\
  }                                                                                                            \
  void persistence_pairs(const exec& e, dmat<const T> d, dvec<edge> p, dvec<T> deaths) {                       \
    run(e, "persistence_pairs", [&](const tc::context& ctx) { topofr::persistence_pairs(ctx, d, p, deaths); });\
  }                                                                                                            \
  void persistence_pairs(const exec& e, dbatch<const T> d, dmat<edge> p, dmat<T> deaths) {                     \
    run(e, "persistence_pairs", [&](const tc::context& ctx) { topofr::persistence_pairs(ctx, d, p, deaths); });\
  }                                                                                                            \
  void persistence_pairs_from_points(const exec& e, dbatch<const T> x, double scale, dmat<edge> p,             \
                                     dmat<T> deaths) {                                                         \
    run(e, "persistence_pairs_from_points",                                                                    \
        [&](const tc::context& ctx) { topofr::persistence_pairs_from_points(ctx, x, scale, p, deaths); });     \
  }                                                                                                            \
  void gather_pairs(const exec& e, dmat<const T> d, dvec<const edge> p, dvec<T> v) {                           \
    run(e, "gather_pairs", [&](const tc::context& ctx) { topofr::gather_pairs(ctx, d, p, v); });               \
  }                                                                                                            \
  void scatter_pairs_add(const exec& e, dvec<const edge> p, dvec<const T> v, dmat<T> g) {                      \
    run(e, "scatter_pairs_add", [&](const tc::context& ctx) { topofr::scatter_pairs_add(ctx, p, v, g); });     \
  }                                                                                                            \
  double isa_loss(const exec& e, dmat<const T> dx, dmat<const T> dz, dvec<const edge> px, dvec<const edge> pz, \
                  topofr::isa_variant v, topofr::reduction r, dmat<T> gz, dmat<T> gx) {                        \
    double out = 0;                                                                                            \
    run(e, "isa_loss", [&](const tc::context& ctx) {                                                           \
      device_scalar<T> loss(ctx);                                                                              \
      topofr::isa_loss(ctx, dx, dz, px, pz, v, r, dvec<T>(loss.ptr(), 1), gz, gx);                             \
      out = static_cast<double>(loss.get(ctx, "isa_loss"));                                                    \
    });                                                                                                        \
    return out;                                                                                                \
  }                                                                                                            \
  double isa_loss_from_points(const exec& e, dmat<const T> x, dmat<const T> z, const topofr::isa_options& o,   \
                              dmat<T> gz, dmat<T> gx) {                                                        \
    double out = 0;                                                                                            \
    run(e, "isa_loss_from_points", [&](const tc::context& ctx) {                                               \
      device_scalar<T> loss(ctx);                                                                              \
      topofr::isa_loss_from_points(ctx, x, z, o, dvec<T>(loss.ptr(), 1), gz, gx);                              \
      out = static_cast<double>(loss.get(ctx, "isa_loss_from_points"));                                        \
    });                                                                                                        \
    return out;                                                                                                \
  }                                                                                                            \
  topofr::gum_result gum_fit(const exec& e, dvec<const T> ent, dvec<T> h, const topofr::gum_options& o) {      \
    topofr::gum_result out{};                                                                                  \
    run(e, "gum_fit", [&](const tc::context& ctx) {                                                            \
      device_scalar<topofr::gum_result> res(ctx);                                                              \
      topofr::gum_fit(ctx, ent, h, o, res.ptr());                                                              \
      out = res.get(ctx, "gum_fit");                                                                           \
    });                                                                                                        \
    return out;                                                                                                \
  }                                                                                                            \
  void sds_weights(const exec& e, dvec<const T> h, dvec<const T> p, double lambda, bool focal, dvec<T> w) {    \
    run(e, "sds_weights", [&](const tc::context& ctx) { topofr::sds_weights(ctx, h, p, lambda, focal, w); });  \
  }                                                                                                            \
  void rsp_perturb(const exec& e, topofr::device_image_batch_view<T> im, const topofr::rsp_options& o,         \
                   dvec<std::int32_t> k) {                                                                     \
    run(e, "rsp_perturb", [&](const tc::context& ctx) { topofr::rsp_perturb(ctx, im, o, k); });                \
  }                                                                                                            \
  void combine_shard_stats(const exec& e, dvec<const topofr::shard_row_stats> per_rank, index_t world,         \
                           index_t n, dvec<T> lse, dvec<T> loss, dvec<T> pgt, dvec<T> ent) {                   \
    run(e, "combine_shard_stats", [&](const tc::context& ctx) {                                                \
      topofr::combine_shard_stats<T>(ctx, per_rank, world, n, lse, loss, pgt, ent);                            \
    });                                                                                                        \
  }                                                                                                            \
  TOPOFR_PY_CUDA_HEAD_DEF(T, std::int32_t)                                                                     \
  TOPOFR_PY_CUDA_HEAD_DEF(T, std::int64_t)

#define TOPOFR_PY_CUDA_LABELS_DEF(L)                                                                           \
  void localize_labels(const exec& e, dvec<const L> y, topofr::class_range shard, index_t classes,             \
                       dvec<L> local) {                                                                        \
    run(e, "localize_labels",                                                                                  \
        [&](const tc::context& ctx) { topofr::localize_labels<L>(ctx, y, shard, classes, local); });           \
  }                                                                                                            \
  index_t partial_fc_sample(const exec& e, dvec<const L> y, topofr::class_range shard, index_t num_sample,     \
                            std::uint64_t seed, std::uint64_t step, dvec<index_t> index, dvec<L> sampled) {    \
    index_t count = 0;                                                                                         \
    run(e, "partial_fc_sample", [&](const tc::context& ctx) {                                                  \
      device_scalar<index_t> n(ctx);                                                                           \
      topofr::partial_fc_sample<L>(ctx, y, shard, num_sample, seed, step, index, sampled,                      \
                                   dvec<index_t>(n.ptr(), 1));                                                 \
      count = n.get(ctx, "partial_fc_sample");                                                                 \
    });                                                                                                        \
    return count;                                                                                              \
  }

TOPOFR_PY_CUDA_DEF(float)
TOPOFR_PY_CUDA_DEF(double)
TOPOFR_PY_CUDA_LABELS_DEF(std::int32_t)
TOPOFR_PY_CUDA_LABELS_DEF(std::int64_t)

}  // namespace cuda_api
}  // namespace topofr_py
