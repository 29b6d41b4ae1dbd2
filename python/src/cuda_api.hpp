// cuda_api.hpp — the seam between the extension (module.cpp, compiled by the host compiler with nanobind) and
// its CUDA half (module_cuda.cu, compiled by nvcc without nanobind). Both sides see only device views, the
// options structs and an execution record; module_cuda.cu turns that into a topofr::cuda::context.
#pragma once

#include <cstddef>
#include <cstdint>

#include "topofr/arcface.hpp"
#include "topofr/core/view.hpp"
#include "topofr/gum.hpp"
#include "topofr/isa.hpp"
#include "topofr/objective.hpp"
#include "topofr/rsp.hpp"
#include "topofr/shard.hpp"

namespace topofr_py {
namespace cuda_api {

using topofr::edge;
using topofr::index_t;
template <class T> using dvec = topofr::device_vector_view<T>;
template <class T> using dmat = topofr::device_matrix_view<T>;
template <class T> using dbatch = topofr::device_batch_view<T>;

/// Where and with what a call runs: the caller's stream on `device`, and its allocator (null: the library's
/// stream-ordered pool). `allocate`/`deallocate` take the stream as a void* (a cudaStream_t).
struct exec {
  int device = 0;
  void* stream = nullptr;
  void* alloc_state = nullptr;
  void* (*allocate)(void* state, std::size_t bytes, void* stream) = nullptr;
  void (*deallocate)(void* state, void* ptr, std::size_t bytes, void* stream) = nullptr;
};

/// Every call synchronises its stream once at the end, to read the library's device status word (a NaN, a
/// label out of range, ... become topofr::error naming the function) and, where there is one, the scalar
/// result; the arrays' contents are then final.
#define TOPOFR_PY_CUDA_HEAD(T, L)                                                                              \
  void margin_logits(const exec&, dmat<const T>, dvec<const L>, const topofr::combined_margin&, dmat<T>);      \
  void margin_logits_backward(const exec&, dmat<const T>, dvec<const L>, const topofr::combined_margin&,       \
                              dmat<const T>, dmat<T>);                                                         \
  void margin_ce_forward(const exec&, dmat<const T>, dvec<const L>, const topofr::combined_margin&, double,     \
                         dvec<T>, dvec<T>, dvec<T>, dvec<T>);                                                  \
  void margin_ce_backward(const exec&, dmat<const T>, dvec<const L>, const topofr::combined_margin&,           \
                          dvec<const T>, dvec<const T>, double, dmat<T>);                                      \
  topofr::objective_result<T> objective(const exec&, const topofr::objective_options&, dmat<const T>,          \
                                        dmat<const T>, dmat<const T>, dvec<const L>, dmat<T>, dmat<T>,         \
                                        dvec<T>, dvec<T>, dvec<T>, dvec<T>, dvec<T>);                        \
  void shard_stats(const exec&, dmat<const T>, dvec<const L>, const topofr::combined_margin&,                  \
                   dvec<topofr::shard_row_stats>);                                                             \
  void shard_entropy_eps_partial(const exec&, dmat<const T>, dvec<const L>, const topofr::combined_margin&,    \
                                 dvec<const T>, double, dvec<double>);

/// The class-sharded head's label work (topofr/cuda/shard.cuh). partial_fc_sample returns the count, which the
/// device writes into a device scalar: it is read after the call's synchronisation, as the other scalars are.
#define TOPOFR_PY_CUDA_LABELS(L)                                                                               \
  void localize_labels(const exec&, dvec<const L>, topofr::class_range, index_t, dvec<L>);                     \
  index_t partial_fc_sample(const exec&, dvec<const L>, topofr::class_range, index_t, std::uint64_t,           \
                            std::uint64_t, dvec<index_t>, dvec<L>);

#define TOPOFR_PY_CUDA_DECL(T)                                                                                 \
  void pairwise_distances(const exec&, dmat<const T>, dmat<T>, double);                                        \
  void pairwise_distances(const exec&, dbatch<const T>, dbatch<T>, double);                                    \
  void persistence_pairs(const exec&, dmat<const T>, dvec<edge>, dvec<T>);                                     \
  void persistence_pairs(const exec&, dbatch<const T>, dmat<edge>, dmat<T>);                                   \
  void persistence_pairs_from_points(const exec&, dbatch<const T>, double, dmat<edge>, dmat<T>);               \
  void gather_pairs(const exec&, dmat<const T>, dvec<const edge>, dvec<T>);                                    \
  void scatter_pairs_add(const exec&, dvec<const edge>, dvec<const T>, dmat<T>);                               \
  double isa_loss(const exec&, dmat<const T>, dmat<const T>, dvec<const edge>, dvec<const edge>,               \
                  topofr::isa_variant, topofr::reduction, dmat<T>, dmat<T>);                                   \
  double isa_loss_from_points(const exec&, dmat<const T>, dmat<const T>, const topofr::isa_options&, dmat<T>,  \
                              dmat<T>);                                                                        \
  topofr::gum_result gum_fit(const exec&, dvec<const T>, dvec<T>, const topofr::gum_options&);                 \
  void sds_weights(const exec&, dvec<const T>, dvec<const T>, double, bool, dvec<T>);                          \
  void rsp_perturb(const exec&, topofr::device_image_batch_view<T>, const topofr::rsp_options&,                \
                   dvec<std::int32_t>);                                                                        \
  /* per_rank: the W x N gathered stats (rank-major); lse, loss, p_gt, entropy: any may be empty */             \
  void combine_shard_stats(const exec&, dvec<const topofr::shard_row_stats>, index_t, index_t, dvec<T>,        \
                           dvec<T>, dvec<T>, dvec<T>);                                                         \
  TOPOFR_PY_CUDA_HEAD(T, std::int32_t)                                                                         \
  TOPOFR_PY_CUDA_HEAD(T, std::int64_t)

TOPOFR_PY_CUDA_DECL(float)
TOPOFR_PY_CUDA_DECL(double)
TOPOFR_PY_CUDA_LABELS(std::int32_t)
TOPOFR_PY_CUDA_LABELS(std::int64_t)

}  // namespace cuda_api
}  // namespace topofr_py
