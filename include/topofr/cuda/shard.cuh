// topofr/cuda/shard.cuh — CUDA twins of topofr/shard.hpp, the class-sharded (Partial FC) head primitives:
// localize_labels, shard_stats, combine_shard_stats, shard_entropy_eps_partial, partial_fc_sample. Same
// signatures with `const cuda::context&` first and device views, same numbers (docs/api.md, "Class-sharded
// head"); shard_range needs no twin (host arithmetic). What the CPU and the device both evaluate per element
// or per row is the CPU header's own TOPOFR_HD code: the logit (detail::shard::logit, on
// detail::arc::margin_fn), the label map (localize), the sample key (sample_key, on counter_rng) and the
// whole per-row rank combine (combine_row). The host argument checks are the CPU's (check_*_args), so the
// messages are the same.
//
// Values only the device sees set ctx.status bits (the CPU throws instead); the outputs of such a row or
// element are then unspecified (NaN where possible, a bad label is left as it is):
//   status_label_out_of_range  a label outside [0, C) ∪ {-1, -100} (localize_labels: C = classes; the others:
//                              C = the shard's classes); combine_shard_stats: a row with a target on two ranks
//   status_cos_out_of_range    a cosine outside [-1, 1] or NaN (shard_stats, shard_entropy_eps_partial)
//   status_non_finite          a non-finite lse_global entry (shard_entropy_eps_partial); combine_shard_stats:
//                              a rank's max / sum_exp_z not finite, sum_exp < 1 or not finite, or a
//                              non-finite (non-NaN) target
//
// Numbers against the CPU:
//   localize_labels, partial_fc_sample  identical (integer work; the sample keys are the same counter_rng
//                              values, the order is CUB's stable radix sort of the same keys).
//   combine_shard_stats        the same per-row code in the same rank order, every multiply-add an explicit
//                              fma: bitwise identical up to the math library's exp and log (CUDA's double
//                              exp/log are within 1 ulp, as glibc's; where they round differently the result
//                              differs in the last bits). All ranks running it on the GPU agree bitwise.
//   shard_stats, shard_entropy_eps_partial  the same per-element double arithmetic (logit, exp, log); the
//                              row sums are reassociated (a block reduction instead of the CPU's left-to-right
//                              loop), so they agree with the CPU within a few ulp (tests: 1e-12 relative);
//                              max and target are the same values up to the device's contraction of s f(x)'s
//                              arithmetic into FMAs (ArcFace's f: x cos m - sin(theta) sin m - m3).
//
// Kernels. shard_stats and shard_entropy_eps_partial: one block of cuda::detail::head_threads per row
// (grid-stride over rows), the row read in 16-byte vectors by cuda::detail::sweep_row (arcface.cuh); shard_stats
// sweeps twice, as the CPU (max, then the sums about it: the second sweep reads the row from L2 at the
// head's sizes), and reduces in double with cub::BlockReduce (fixed order: deterministic run to run).
// combine_shard_stats: a thread per row. partial_fc_sample: cub::DeviceRadixSort (stable, descending) of the
// keys, cub::DeviceScan (ExclusiveScan) of the chosen flags, and three small kernels; temporary storage from ctx.alloc.
#pragma once

#include <cub/block/block_reduce.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "../shard.hpp"
#include "arcface.cuh"
#include "context.cuh"

namespace topofr {
namespace cuda {
namespace detail {

namespace sh = topofr::detail::shard;

constexpr int shard_threads = 256;  // the elementwise kernels (labels, sample, combine)

template <class L>
__global__ void __launch_bounds__(shard_threads)
    localize_labels_kernel(const L* labels, index_t n, index_t begin, index_t end, index_t classes, L* local,
                           int* status) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    const index_t y = static_cast<index_t>(labels[i]);
    if (!topofr::detail::arc::label_ok(y, classes)) {
      report(status, status_label_out_of_range);
      local[i] = static_cast<L>(y);  // left as it is
      continue;
    }
    local[i] = static_cast<L>(sh::localize(y, begin, end));
  }
}

/// shard_stats: one block per row. Sweep 1: the largest logit; sweep 2: sum exp(z - mx), sum exp(z - mx)(z - mx),
/// per thread in double, reduced by cub::BlockReduce.
template <class InC, class L>
__global__ void __launch_bounds__(head_threads)
    shard_stats_kernel(device_matrix_view<InC> cos, const L* labels, topofr::detail::arc::margin_fn mf,
                       shard_row_stats* stats, int* status) {
  using max_reduce = cub::BlockReduce<double, head_threads>;
  using sum_reduce = cub::BlockReduce<dsum2, head_threads>;
  __shared__ union {
    typename max_reduce::TempStorage max;
    typename sum_reduce::TempStorage sum;
  } tmp;
  __shared__ double sh_m;
  const index_t n = cos.rows(), c = cos.cols();
  const int t = static_cast<int>(threadIdx.x);
  const double inf = CUDART_INF, nan = CUDART_NAN;
  for (index_t i = blockIdx.x; i < n; i += gridDim.x) {
    const index_t y = label_at(labels, i, c, t == 0 ? status : nullptr);
    const InC* ci = cos.row(i);
    const row_split sp = split_row(ci, c);
    bool ok = true;
    double mx = -inf;
    sweep_row<head_unroll>(ci, sp, t, [&](const auto& v, index_t j0) {
      constexpr int K = static_cast<int>(std::extent<std::remove_reference_t<decltype(v)>>::value);
#pragma unroll
      for (int e = 0; e < K; ++e) {
        const double x = static_cast<double>(v[e]);
        ok &= ::fabs(x) <= 1.0;
        const double z = sh::logit(mf, x, j0 + e == y);
        mx = mx < z ? z : mx;
      }
    });
    const bool cos_bad = __syncthreads_or(!ok) != 0;
    const double m = max_reduce(tmp.max).Reduce(mx, dmax());
    if (t == 0) sh_m = m;
    __syncthreads();
    const double M = sh_m;
    double se = 0.0, sez = 0.0;
    if (!cos_bad)
      sweep_row<head_unroll>(ci, sp, t, [&](const auto& v, index_t j0) {
        constexpr int K = static_cast<int>(std::extent<std::remove_reference_t<decltype(v)>>::value);
#pragma unroll
        for (int e = 0; e < K; ++e) {
          const double d = sh::logit(mf, static_cast<double>(v[e]), j0 + e == y) - M, x = ::exp(d);
          se += x;
          sez += x * d;
        }
      });
    const dsum2 s = sum_reduce(tmp.sum).Reduce(dsum2{se, sez}, dsum2_add());
    if (t == 0) {
      const bool bad = cos_bad || y == invalid_label;
      if (cos_bad) report(status, status_cos_out_of_range);
      stats[i] = bad ? shard_row_stats{nan, nan, nan, nan}
                     : shard_row_stats{M, s.a, s.b, y >= 0 ? sh::logit(mf, static_cast<double>(load(ci + y)), true) : nan};
    }
    __syncthreads();  // shared state is rewritten for the next row
  }
}

/// shard_entropy_eps_partial: one block per row, sum p log(p + eps) with p = exp(z - lse) in double.
template <class InC, class L, class InS>
__global__ void __launch_bounds__(head_threads)
    shard_eps_partial_kernel(device_matrix_view<InC> cos, const L* labels, topofr::detail::arc::margin_fn mf,
                             const InS* lse_global, double eps, double* partial, int* status) {
  using sum_reduce = cub::BlockReduce<double, head_threads>;
  __shared__ typename sum_reduce::TempStorage tmp;
  const index_t n = cos.rows(), c = cos.cols();
  const int t = static_cast<int>(threadIdx.x);
  for (index_t i = blockIdx.x; i < n; i += gridDim.x) {
    const index_t y = label_at(labels, i, c, t == 0 ? status : nullptr);
    const double l = static_cast<double>(lse_global[i]);
    const InC* ci = cos.row(i);
    bool ok = true;
    double acc = 0.0;
    sweep_row<head_unroll>(ci, split_row(ci, c), t, [&](const auto& v, index_t j0) {
      constexpr int K = static_cast<int>(std::extent<std::remove_reference_t<decltype(v)>>::value);
#pragma unroll
      for (int e = 0; e < K; ++e) {
        const double x = static_cast<double>(v[e]);
        ok &= ::fabs(x) <= 1.0;
        const double p = ::exp(sh::logit(mf, x, j0 + e == y) - l);
        if (p > 0.0 || eps > 0.0) acc += p * ::log(p + eps);  // eps = 0: 0 log 0 = 0
      }
    });
    const bool cos_bad = __syncthreads_or(!ok) != 0;
    const double sum = sum_reduce(tmp).Sum(acc);
    if (t == 0) {
      const bool l_bad = !::isfinite(l);
      if (cos_bad) report(status, status_cos_out_of_range);
      if (l_bad) report(status, status_non_finite);
      partial[i] = (cos_bad || l_bad || y == invalid_label) ? static_cast<double>(CUDART_NAN) : sum;
    }
    __syncthreads();  // tmp is reused for the next row
  }
}

/// combine_shard_stats: a thread per row, the CPU's combine_row.
template <class T>
__global__ void __launch_bounds__(shard_threads)
    combine_shard_stats_kernel(const shard_row_stats* per_rank, index_t world, index_t n, T* lse, T* loss, T* p_gt,
                               T* entropy, int* status) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    sh::combined_row out;
    index_t r = -1, other = -1;
    const sh::combine_fault f = sh::combine_row(per_rank, world, n, i, out, r, other);
    if (f != sh::combine_ok) {
      report(status, f == sh::combine_two_targets ? status_label_out_of_range : status_non_finite);
      const double nan = CUDART_NAN;
      out = sh::combined_row{nan, nan, nan, nan};
    }
    if (lse) lse[i] = static_cast<T>(out.lse);
    if (loss) loss[i] = static_cast<T>(out.loss);
    if (p_gt) p_gt[i] = static_cast<T>(out.p_gt);
    if (entropy) entropy[i] = static_cast<T>(out.entropy);
  }
}

// ---- partial_fc_sample ----------------------------------------------------------------------------
// flag[j] = 1 for the positives (a grid-stride kernel over the labels, after a memset) -> key[j] = 2 for
// them, sample_key(seed, begin + j, step) otherwise, value j -> a STABLE descending radix sort (equal keys
// keep ascending j: ties to the lower class, as the CPU) -> flag[class at rank r] = (r < num_sample or its key
// is 2): the positives and the highest keys, count = max(num_sample, positives) of them -> an exclusive scan
// of the flags gives each chosen class its position in `index` (ascending classes) -> scatter, -1 fill, and
// the labels remapped to the positions.

template <class L>
__global__ void __launch_bounds__(shard_threads)
    sample_positives_kernel(const L* labels, index_t n, index_t c, index_t* flag, int* status) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    const index_t y = label_at(labels, i, c, status);
    if (y >= 0) flag[y] = 1;  // every writer writes 1
  }
}

template <class I>  // I = index_t; a template, as every kernel in the headers (distance.cuh says why)
__global__ void __launch_bounds__(shard_threads)
    sample_keys_kernel(const I* flag, I c, I begin, std::uint64_t seed, std::uint64_t step,
                       double* key, I* cls) {
  for (I j = blockIdx.x * I(blockDim.x) + threadIdx.x; j < c; j += I(gridDim.x) * blockDim.x) {
    key[j] = flag[j] ? sh::positive_key : sh::sample_key(seed, begin + j, step);
    cls[j] = j;
  }
}

template <class I>  // I = index_t; a template, as every kernel in the headers (distance.cuh says why)
__global__ void __launch_bounds__(shard_threads)
    sample_choose_kernel(const double* sorted_key, const I* sorted_cls, I c, I num_sample,
                         I* flag) {
  for (I r = blockIdx.x * I(blockDim.x) + threadIdx.x; r < c; r += I(gridDim.x) * blockDim.x)
    flag[sorted_cls[r]] = (r < num_sample || sorted_key[r] == sh::positive_key) ? 1 : 0;
}

template <class I>  // I = index_t; a template, as every kernel in the headers (distance.cuh says why)
__global__ void __launch_bounds__(shard_threads)
    sample_index_kernel(const I* flag, const I* pos, I c, I* index, I* count) {
  const I total = pos[c - 1] + flag[c - 1];
  for (I j = blockIdx.x * I(blockDim.x) + threadIdx.x; j < c; j += I(gridDim.x) * blockDim.x) {
    if (flag[j]) index[pos[j]] = j;  // positions < total
    if (j >= total) index[j] = -1;   // disjoint from the positions
    if (j == 0 && count) *count = total;
  }
}

template <class L>
__global__ void __launch_bounds__(shard_threads)
    sample_labels_kernel(const L* labels, index_t n, index_t c, const index_t* pos, L* sampled) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n; i += index_t(gridDim.x) * blockDim.x) {
    const index_t y = static_cast<index_t>(labels[i]);
    if (y >= 0 && y < c) sampled[i] = static_cast<L>(pos[y]);  // -1, -100 (and invalid labels) stay
    else sampled[i] = static_cast<L>(y);
  }
}

/// The scan's operator. Not cub::Sum / DeviceScan::ExclusiveSum: their kernels' template arguments name
/// ::cuda::std::plus, and nvcc's generated host stubs spell that `cuda::std::plus`, which a translation unit
/// with `using namespace topofr;` at global scope makes ambiguous (topofr::cuda): the stubs would not compile.
struct index_add {
  __host__ __device__ index_t operator()(index_t a, index_t b) const { return a + b; }
};

/// Bytes rounded up to 256 (the alignment of the workspace's parts).
inline std::size_t aligned_bytes(std::size_t b) { return (b + 255) / 256 * 256; }

}  // namespace detail
}  // namespace cuda

/// CUDA twin of localize_labels. Label values are checked on the device (status_label_out_of_range; a bad
/// label is copied unchanged). local may alias labels.
template <class L>
void localize_labels(const cuda::context& ctx, device_vector_view<const detail::identity_t<L>> labels, class_range shard,
                     index_t classes, device_vector_view<L> local) {
  constexpr const char* fn = "localize_labels";
  detail::shard::check_localize_args<L>(fn, labels, shard, classes, local);
  const index_t n = labels.size();
  if (n == 0) return;
  cuda::detail::launch(fn, cuda::detail::localize_labels_kernel<L>, cuda::detail::grid_for(n, cuda::detail::shard_threads),
                       cuda::detail::shard_threads, 0, ctx.stream, labels.data(), n, shard.begin, shard.end, classes,
                       local.data(), ctx.status);
}

/// CUDA twin of shard_stats: stats is a device vector of N shard_row_stats. Labels and cosines are checked
/// on the device (status bits; such a row's stats are NaN).
template <class InC, class L>
void shard_stats(const cuda::context& ctx, device_matrix_view<InC> cos, device_vector_view<L> local_labels,
                 const combined_margin& m, device_vector_view<shard_row_stats> stats) {
  using T = std::remove_const_t<InC>;
  static_assert(detail::is_real_v<T>, "shard_stats: cos must be float or double");
  constexpr const char* fn = "shard_stats";
  const auto mf = detail::shard::check_stats_args<T>(fn, m, cos, local_labels, stats);
  const index_t n = cos.rows();
  if (n == 0) return;
  cuda::detail::launch(fn, cuda::detail::shard_stats_kernel<InC, std::remove_const_t<L>>,
                       cuda::detail::grid_for(n, 1, index_t(1) << 20), cuda::detail::head_threads, 0, ctx.stream, cos,
                       local_labels.data(), mf, stats.data(), ctx.status);
}

/// CUDA twin of combine_shard_stats. per_rank: the W x N gathered stats (rank-major), a device vector of
/// size world * n; the outputs are device vectors (any may be empty). The argument checks and messages are
/// the CPU's (per_rank's size is checked too); bad stats are found on the device (status bits, NaN rows).
template <class T>
void combine_shard_stats(const cuda::context& ctx, device_vector_view<const shard_row_stats> per_rank, index_t world,
                         index_t n, device_vector_view<T> lse, device_vector_view<T> loss = {},
                         device_vector_view<T> p_gt = {}, device_vector_view<T> entropy = {}) {
  constexpr const char* fn = "combine_shard_stats";
  detail::shard::check_combine_args(fn, per_rank.data(), world, n, lse, loss, p_gt, entropy);
  detail::check_size(per_rank, world * n, fn, "per_rank");
  if (n == 0) return;
  auto ptr = [](device_vector_view<T> v) { return v.empty() ? nullptr : v.data(); };
  cuda::detail::launch(fn, cuda::detail::combine_shard_stats_kernel<T>, cuda::detail::grid_for(n, cuda::detail::shard_threads),
                       cuda::detail::shard_threads, 0, ctx.stream, per_rank.data(), world, n, ptr(lse), ptr(loss),
                       ptr(p_gt), ptr(entropy), ctx.status);
}

/// CUDA twin of shard_entropy_eps_partial: lse_global and partial are device vectors. Labels, cosines and
/// lse_global are checked on the device (status bits; such a row's partial is NaN).
template <class InC, class L, class InS>
void shard_entropy_eps_partial(const cuda::context& ctx, device_matrix_view<InC> cos, device_vector_view<L> local_labels,
                               const combined_margin& m, device_vector_view<InS> lse_global, double eps,
                               device_vector_view<double> partial) {
  using T = std::remove_const_t<InC>;
  static_assert(detail::is_real_v<T> && std::is_same<std::remove_const_t<InS>, T>::value,
                "shard_entropy_eps_partial: float or double, the same for cos and lse_global");
  constexpr const char* fn = "shard_entropy_eps_partial";
  const auto mf = detail::shard::check_eps_partial_args<T>(fn, m, cos, local_labels, lse_global, eps, partial);
  const index_t n = cos.rows();
  if (n == 0) return;
  cuda::detail::launch(fn, cuda::detail::shard_eps_partial_kernel<InC, std::remove_const_t<L>, std::remove_const_t<InS>>,
                       cuda::detail::grid_for(n, 1, index_t(1) << 20), cuda::detail::head_threads, 0, ctx.stream, cos,
                       local_labels.data(), mf, lse_global.data(), eps, partial.data(), ctx.status);
}

/// CUDA twin of partial_fc_sample. The count the CPU returns is written to `count` (a device vector of
/// size 1; may be empty), asynchronously like everything else. Label values are checked on the device
/// (status_label_out_of_range; a bad label is ignored as a positive and copied unchanged). sampled_labels
/// may alias local_labels. Temporary storage from ctx.alloc: 6 C_local 8-byte words plus CUB's.
template <class L>
void partial_fc_sample(const cuda::context& ctx, device_vector_view<const detail::identity_t<L>> local_labels,
                       class_range shard, index_t num_sample, std::uint64_t seed, std::uint64_t step,
                       device_vector_view<index_t> index, device_vector_view<L> sampled_labels,
                       device_vector_view<index_t> count = {}) {
  constexpr const char* fn = "partial_fc_sample";
  detail::shard::check_sample_args<L>(fn, local_labels, shard, num_sample, index, sampled_labels);
  if (!count.empty()) detail::check_size(count, 1, fn, "count");
  namespace cd = cuda::detail;
  const index_t c = shard.size(), n = local_labels.size();
  const auto cn = static_cast<std::size_t>(c);
  // CUB's temporary storage (first phase: sizes only).
  std::size_t sort_bytes = 0, scan_bytes = 0;
  cuda::check_cuda(cub::DeviceRadixSort::SortPairsDescending(nullptr, sort_bytes, static_cast<const double*>(nullptr),
                                                             static_cast<double*>(nullptr),
                                                             static_cast<const index_t*>(nullptr),
                                                             static_cast<index_t*>(nullptr), c, 0, 64, ctx.stream),
                   fn);
  cuda::check_cuda(cub::DeviceScan::ExclusiveScan(nullptr, scan_bytes, static_cast<const index_t*>(nullptr),
                                                  static_cast<index_t*>(nullptr), cd::index_add(), index_t(0), c,
                                                  ctx.stream),
                   fn);
  const std::size_t words = cd::aligned_bytes(cn * 8), cub_bytes = cd::aligned_bytes(std::max(sort_bytes, scan_bytes));
  cuda::workspace ws(ctx, 6 * words + cub_bytes);
  char* base = ws.as<char>();
  auto* key = reinterpret_cast<double*>(base);
  auto* key_sorted = reinterpret_cast<double*>(base + words);
  auto* cls = reinterpret_cast<index_t*>(base + 2 * words);
  auto* cls_sorted = reinterpret_cast<index_t*>(base + 3 * words);
  auto* flag = reinterpret_cast<index_t*>(base + 4 * words);
  auto* pos = reinterpret_cast<index_t*>(base + 5 * words);
  void* cub_tmp = base + 6 * words;
  const unsigned over_c = cd::grid_for(c, cd::shard_threads), over_n = cd::grid_for(n, cd::shard_threads);
  cuda::check_cuda(cudaMemsetAsync(flag, 0, cn * sizeof(index_t), ctx.stream), fn);
  if (n > 0)
    cd::launch(fn, cd::sample_positives_kernel<L>, over_n, cd::shard_threads, 0, ctx.stream, local_labels.data(), n, c,
               flag, ctx.status);
  cd::launch(fn, cd::sample_keys_kernel<index_t>, over_c, cd::shard_threads, 0, ctx.stream, flag, c, shard.begin, seed, step,
             key, cls);
  std::size_t bytes = sort_bytes;
  cuda::check_cuda(cub::DeviceRadixSort::SortPairsDescending(cub_tmp, bytes, static_cast<const double*>(key), key_sorted,
                                                             static_cast<const index_t*>(cls), cls_sorted, c, 0, 64,
                                                             ctx.stream),
                   fn);
  cd::launch(fn, cd::sample_choose_kernel<index_t>, over_c, cd::shard_threads, 0, ctx.stream, key_sorted, cls_sorted, c,
             num_sample, flag);
  bytes = scan_bytes;
  cuda::check_cuda(cub::DeviceScan::ExclusiveScan(cub_tmp, bytes, static_cast<const index_t*>(flag), pos, cd::index_add(),
                                                  index_t(0), c, ctx.stream),
                   fn);
  cd::launch(fn, cd::sample_index_kernel<index_t>, over_c, cd::shard_threads, 0, ctx.stream, flag, pos, c, index.data(),
             count.empty() ? nullptr : count.data());
  if (n > 0)
    cd::launch(fn, cd::sample_labels_kernel<L>, over_n, cd::shard_threads, 0, ctx.stream, local_labels.data(), n, c,
               pos, sampled_labels.data());
}

}  // namespace topofr
