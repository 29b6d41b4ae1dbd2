// topofr/cuda/isa.cuh — CUDA twins of topofr/isa.hpp: the ISA loss from distance matrices and pairs, and
// from the points (pairwise_distances + persistence_pairs of cuda/distance.cuh, cuda/persistence.cuh).
//
// Asynchronous result: the loss cannot be returned by value without a synchronisation, so the CUDA
// overloads return void and write the loss to `loss`, a device vector of size 1 (in T, as the CPU's
// return value). Everything is stream-ordered on ctx.stream; scratch comes from ctx.alloc.
// Determinism: the loss is a cub::BlockReduce in double; the dense gradient is scattered by one thread in
// the CPU's term order; the chain rule to the points is a per-point GATHER over the term list in term
// order (no float atomics), so results are bitwise reproducible run to run.
// Device-detected values: a non-finite / negative distance -> status_non_finite / status_negative_distance,
// a pair outside 0 <= u < v < n -> status_bad_pair (the term is skipped); the outputs are then unspecified.
#pragma once

#include <cub/block/block_reduce.cuh>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../isa.hpp"
#include "context.cuh"
#include "distance.cuh"
#include "persistence.cuh"

namespace topofr {
namespace cuda {
namespace detail {

constexpr int isa_threads = 256;

template <class In>
__global__ void isa_check_dist_kernel(device_matrix_view<In> d, int* status) {
  const index_t n = d.rows(), total = n * d.cols();
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < total; t += index_t(gridDim.x) * blockDim.x) {
    const double v = static_cast<double>(d(t / d.cols(), t % d.cols()));
    if (!::isfinite(v)) report(status, status_non_finite);
    else if (v < 0.0) report(status, status_negative_distance);
  }
}

template <class In>
void isa_check_dist(const context& ctx, device_matrix_view<In> d, const char* fn) {
  launch(fn, isa_check_dist_kernel<In>, grid_for(d.rows() * d.cols(), 256, 1024), 256, 0, ctx.stream, d, ctx.status);
}

/// The sparse gradient terms, as topofr::detail::isa_terms orders them: tz (w.r.t. MZ) and tx (w.r.t.
/// MX) are m entries each; an invalid pair gives the edge (-1, -1) (skipped downstream).
struct isa_terms_out {
  edge* ez;
  double* gz;
  edge* ex;
  double* gx;
};

/// One block: loss and terms. m = n - 1 pairs per set.
template <class DX, class DZ, class T>
__global__ void __launch_bounds__(isa_threads)
    isa_terms_kernel(device_matrix_view<DX> mx, device_matrix_view<DZ> mz, const edge* px, const edge* pz, index_t m,
                     bool symmetric, double c, T* loss, isa_terms_out out, int* status) {
  using reduce = cub::BlockReduce<double, isa_threads>;
  __shared__ typename reduce::TempStorage tmp;
  const index_t n = mx.rows();
  auto valid = [n](edge e) { return e.u >= 0 && e.u < e.v && e.v < n; };
  const edge none{-1, -1};
  double sum = 0.0;
  bool bad = false;
  if (symmetric) {
    for (index_t t = threadIdx.x; t < 2 * m; t += isa_threads) {  // px terms, then pz terms
      const edge e = t < m ? px[t] : pz[t - m];
      const bool ok = valid(e);
      bad |= !ok;
      const double d = ok ? static_cast<double>(mx(e.u, e.v)) - static_cast<double>(mz(e.u, e.v)) : 0.0;
      sum += d * d;
      if (out.ez) out.ez[t] = ok ? e : none, out.gz[t] = -c * d;
      if (out.ex) out.ex[t] = ok ? e : none, out.gx[t] = c * d;
    }
    sum *= 0.5;
  } else {
    for (index_t t = threadIdx.x; t < m; t += isa_threads) {
      const edge a = px[t], b = pz[t];
      const bool ok = valid(a) && valid(b);
      bad |= !ok;
      const double d = ok ? static_cast<double>(mx(a.u, a.v)) - static_cast<double>(mz(b.u, b.v)) : 0.0;
      sum += d * d;
      if (out.ez) out.ez[t] = ok ? b : none, out.gz[t] = -2.0 * c * d;
      if (out.ex) out.ex[t] = ok ? a : none, out.gx[t] = 2.0 * c * d;
    }
  }
  if (bad) report(status, status_bad_pair);
  const double total = reduce(tmp).Sum(sum);
  if (threadIdx.x == 0) *loss = static_cast<T>(c * total);
}

/// Dense gradient (grad was zeroed): one thread per term. An edge can carry several terms (the symmetric
/// variant, an edge in both pair sets); the thread of its FIRST term adds all of them in term order, in T,
/// as the CPU's sequential scatter does, and the others skip: parallel, deterministic, no atomics.
template <class T>
__global__ void isa_scatter_kernel(const edge* e, const double* g, index_t count, device_matrix_view<T> grad) {
  for (index_t t = blockIdx.x * index_t(blockDim.x) + threadIdx.x; t < count; t += index_t(gridDim.x) * blockDim.x) {
    const edge et = e[t];
    if (et.u < 0) continue;
    bool first = true;
    for (index_t q = 0; q < t && first; ++q) first = e[q] != et;
    if (!first) continue;
    T acc = grad(et.u, et.v);
    for (index_t q = t; q < count; ++q)
      if (e[q] == et) acc += static_cast<T>(g[q]);
    grad(et.u, et.v) = acc;
  }
}

/// coef[t] = g[t] / (scale ||p_u - p_v||) (0 for coincident points or a skipped term): one block per term,
/// the norm in double.
template <class In>
__global__ void __launch_bounds__(isa_threads)
    isa_coef_kernel(device_matrix_view<In> p, double scale, const edge* e, const double* g, double* coef) {
  using reduce = cub::BlockReduce<double, isa_threads>;
  __shared__ typename reduce::TempStorage tmp;
  const index_t t = blockIdx.x;
  const edge ed = e[t];
  if (ed.u < 0) {
    if (threadIdx.x == 0) coef[t] = 0.0;
    return;
  }
  const In* a = p.row(ed.u);
  const In* b = p.row(ed.v);
  double r2 = 0.0;
  for (index_t k = threadIdx.x; k < p.cols(); k += isa_threads) {
    const double diff = static_cast<double>(a[k]) - static_cast<double>(b[k]);
    r2 += diff * diff;
  }
  const double s = reduce(tmp).Sum(r2);
  if (threadIdx.x == 0) {
    const double r = ::sqrt(s);
    coef[t] = r > 0.0 ? g[t] / (scale * r) : 0.0;
  }
}

/// out_i = factor * sum over the terms on an edge {i, j}, in term order, of coef (p_i - p_j), the sum in
/// double (the CPU's CSR walk visits the same terms in the same order), rounded to T, then times factor in T
/// as the CPU objective scales its gradient by alpha (factor 1: nothing). A gather per (point, column),
/// rows on blockIdx.y, columns on x: no atomics, reproducible.
template <class In, class T>
__global__ void isa_gather_kernel(device_matrix_view<In> p, const edge* e, const double* coef, index_t count,
                                  device_matrix_view<T> out, T factor) {
  const index_t n = p.rows(), d = p.cols();
  for (index_t i = blockIdx.y; i < n; i += gridDim.y) {
    const In* pi = p.row(i);
    for (index_t k = blockIdx.x * index_t(blockDim.x) + threadIdx.x; k < d; k += index_t(gridDim.x) * blockDim.x) {
      const double x = static_cast<double>(pi[k]);
      double acc = 0.0;
      for (index_t t = 0; t < count; ++t) {
        const edge ed = e[t];
        const index_t j = ed.u == i ? ed.v : (ed.v == i ? ed.u : -1);
        if (j < 0 || ed.u < 0) continue;
        const double w = coef[t];
        if (w == 0.0) continue;
        acc += w * (x - static_cast<double>(p(j, k)));
      }
      const T v = static_cast<T>(acc);
      out(i, k) = v * factor;  // factor 1: exact
    }
  }
}

template <class In, class T>
void isa_chain(const context& ctx, device_matrix_view<In> p, double scale, const edge* e, const double* g, index_t count,
               double* coef, device_matrix_view<T> out, const char* fn, double factor = 1.0) {
  launch(fn, isa_coef_kernel<In>, static_cast<unsigned>(count), isa_threads, 0, ctx.stream, p, scale, e, g, coef);
  const dim3 grid(grid_for(p.cols(), 256, 1024), grid_for(p.rows(), 1));
  launch(fn, isa_gather_kernel<In, T>, grid, 256, 0, ctx.stream, p, e, static_cast<const double*>(coef), count, out,
         static_cast<T>(factor));
}

/// Scratch for the terms of both sides: [ez | ex] edges, then [gz | gx | coef] doubles.
struct isa_scratch {
  workspace ws;
  isa_terms_out t;
  double* coef;
  isa_scratch(const context& ctx, index_t count, bool want_z, bool want_x)
      : ws(ctx, static_cast<std::size_t>(count) * (2 * sizeof(edge) + 3 * sizeof(double))) {
    edge* eb = ws.as<edge>();
    double* db = reinterpret_cast<double*>(eb + 2 * count);  // 8-byte aligned: sizeof(edge) = 8
    t = isa_terms_out{want_z ? eb : nullptr, want_z ? db : nullptr, want_x ? eb + count : nullptr,
                      want_x ? db + count : nullptr};
    coef = db + 2 * count;
  }
};

inline unsigned isa_blocks(index_t count) { return grid_for(count, 256, 1024); }

template <class T>
void zero_matrix(const context& ctx, device_matrix_view<T> m, const char* fn) {
  check_cuda(cudaMemset2DAsync(m.data(), static_cast<std::size_t>(m.ld()) * sizeof(T), 0,
                               static_cast<std::size_t>(m.cols()) * sizeof(T), static_cast<std::size_t>(m.rows()),
                               ctx.stream),
             fn);
}

}  // namespace detail
}  // namespace cuda

/// CUDA twin of isa_loss: the loss (in T) goes to loss[0] (a device vector of size 1); the dense gradients
/// (optional) as the CPU. Host checks: shapes, sizes, enums, aliasing; device checks: distance values and
/// pairs (status bits, see the file comment).
template <class InX, class InZ, class T = std::remove_const_t<InX>>
void isa_loss(const cuda::context& ctx, device_matrix_view<InX> dist_x, device_matrix_view<InZ> dist_z,
              device_vector_view<const edge> pairs_x, device_vector_view<const edge> pairs_z, isa_variant variant, reduction reduce,
              device_vector_view<T> loss, device_matrix_view<T> grad_dist_z = {}, device_matrix_view<T> grad_dist_x = {}) {
  detail::isa_static_checks<T, InX, InZ>();
  constexpr const char* fn = "isa_loss";
  const index_t n = detail::check_isa_args(dist_x, dist_z, pairs_x, pairs_z, variant, reduce, grad_dist_z,
                                           grad_dist_x, fn);
  detail::check_size(loss, 1, fn, "loss");

  cuda::detail::isa_check_dist(ctx, dist_x, fn);
  cuda::detail::isa_check_dist(ctx, dist_z, fn);
  const bool sym = variant == isa_variant::symmetric;
  const index_t m = n - 1, count = sym ? 2 * m : m;
  cuda::detail::isa_scratch s(ctx, count, !grad_dist_z.empty(), !grad_dist_x.empty());
  const double c = reduce == reduction::mean ? 1.0 / static_cast<double>(n) : 1.0;
  cuda::detail::launch(fn, cuda::detail::isa_terms_kernel<InX, InZ, T>, 1, cuda::detail::isa_threads, 0, ctx.stream,
                       dist_x, dist_z, pairs_x.data(), pairs_z.data(), m, sym, c, loss.data(), s.t, ctx.status);
  // All reads of the distances are enqueued before these writes (a gradient may overwrite its matrix).
  if (!grad_dist_z.empty()) {
    cuda::detail::zero_matrix(ctx, grad_dist_z, fn);
    cuda::detail::launch(fn, cuda::detail::isa_scatter_kernel<T>, cuda::detail::isa_blocks(count), 256, 0, ctx.stream,
                         s.t.ez, s.t.gz, count,
                         grad_dist_z);
  }
  if (!grad_dist_x.empty()) {
    cuda::detail::zero_matrix(ctx, grad_dist_x, fn);
    cuda::detail::launch(fn, cuda::detail::isa_scatter_kernel<T>, cuda::detail::isa_blocks(count), 256, 0, ctx.stream,
                         s.t.ex, s.t.gx, count,
                         grad_dist_x);
  }
}

/// CUDA twin of isa_loss_from_points: the scaled distance matrices and their pairs, the loss to loss[0]
/// (device, size 1), gradients w.r.t. z and/or x by the sparse chain rule (gather), grad_z times
/// T(grad_z_factor) (the objective's alpha, applied as the CPU objective does; 1: unchanged). For n <= 256 and x, z
/// of one element type: the Gram tiles of x (split over tiles and 512-dimension slices: an image batch's
/// 37,632 dimensions fill the GPU) and of z, then ONE launch builds both matrices and runs both Prims
/// (B = 2), then the terms, the per-term coefficients and the chain rule: 5-6 launches, no host
/// synchronisation. Scratch from ctx.alloc: 2 n^2 T + the Gram tiles + O(n).
template <class InX, class InZ, class T = std::remove_const_t<InX>>
void isa_loss_from_points(const cuda::context& ctx, device_matrix_view<InX> x, device_matrix_view<InZ> z, const isa_options& opt,
                          device_vector_view<T> loss, device_matrix_view<T> grad_z = {}, device_matrix_view<T> grad_x = {},
                          double grad_z_factor = 1.0) {
  detail::isa_static_checks<T, InX, InZ>();
  constexpr const char* fn = "isa_loss_from_points";
  const index_t n = detail::isa_check_points_args(x, z, opt, grad_z, grad_x, fn);
  detail::check_size(loss, 1, fn, "loss");
  detail::require(std::isfinite(grad_z_factor), fn, "grad_z_factor", "must be finite, got ", grad_z_factor);

  const index_t m = n - 1;
  const bool sym = opt.variant == isa_variant::symmetric;
  const index_t count = sym ? 2 * m : m;
  cuda::workspace ws(ctx, static_cast<std::size_t>(2 * n * n) * sizeof(T) + static_cast<std::size_t>(2 * m) * sizeof(edge));
  T* mx = ws.as<T>();
  T* mz = mx + n * n;
  edge* px = reinterpret_cast<edge*>(mz + n * n);  // aligned: 2 n^2 sizeof(T) is a multiple of 8
  edge* pz = px + m;
  const device_matrix_view<T> dx(mx, n, n), dz(mz, n, n);
  using VX = std::remove_const_t<InX>;
  using VZ = std::remove_const_t<InZ>;
  using Src = detail::cu::gram_source<VX, T>;
  namespace cu = detail::cu;
  bool fused = false;
  if constexpr (std::is_same<VX, VZ>::value && std::is_same<VX, T>::value) {
   if (cu::small_fits<T, T, Src>(n, fn)) {
    // x and z: Gram tiles, then one B = 2 launch: both distance matrices (validated, written out) and both
    // Prims.
    const std::size_t per = cu::gram_bytes(n);
    cuda::workspace g(ctx, 2 * per);
    double* gx = g.as<double>();
    double* gz = gx + per / sizeof(double);
    const VX* zp = reinterpret_cast<const VX*>(z.data());
    cu::launch_gram(ctx, cu::clouds<VX>{x.data(), 0, x.ld(), static_cast<int>(n), static_cast<int>(x.cols()), opt.x_scale},
                    1, gx, fn);
    cu::launch_gram(ctx, cu::clouds<VX>{zp, 0, z.ld(), static_cast<int>(n), static_cast<int>(z.cols()), opt.z_scale}, 1,
                    gz, fn);
    Src src;
    src.P.p0 = x.data();
    src.P.p1 = zp;
    src.pld = x.ld();
    src.d0 = static_cast<int>(x.cols());
    src.d1 = static_cast<int>(z.cols());
    src.scale0 = opt.x_scale;
    src.scale1 = opt.z_scale;
    src.gram.p0 = gx;
    src.gram.p1 = gz;
    src.out.p0 = mx;
    src.out.p1 = mz;
    src.out_ld = n;
    if (x.ld() != z.ld()) {  // one leading dimension per source: x and z differ only in the points' ld
      src.pld2 = z.ld();
    }
    cu::vr0_out<T> out;
    out.pairs.p0 = px;
    out.pairs.p1 = pz;
    cu::launch_small<T, T>(ctx, src, 2, n, out, fn);
    fused = true;
   }
  }
  if (!fused) {
    pairwise_distances(ctx, x, dx, opt.x_scale);
    pairwise_distances(ctx, z, dz, opt.z_scale);
    cuda::detail::isa_check_dist(ctx, device_matrix_view<const T>(dx), fn);  // overflow to inf
    cuda::detail::isa_check_dist(ctx, device_matrix_view<const T>(dz), fn);
    persistence_pairs(ctx, device_matrix_view<const T>(dx), device_vector_view<edge>(px, m));
    persistence_pairs(ctx, device_matrix_view<const T>(dz), device_vector_view<edge>(pz, m));
  }

  cuda::detail::isa_scratch s(ctx, count, !grad_z.empty(), !grad_x.empty());
  const double c = opt.reduce == reduction::mean ? 1.0 / static_cast<double>(n) : 1.0;
  cuda::detail::launch(fn, cuda::detail::isa_terms_kernel<const T, const T, T>, 1, cuda::detail::isa_threads, 0,
                       ctx.stream, device_matrix_view<const T>(dx), device_matrix_view<const T>(dz), static_cast<const edge*>(px),
                       static_cast<const edge*>(pz), m, sym, c, loss.data(), s.t, ctx.status);
  if (!grad_z.empty())
    cuda::detail::isa_chain(ctx, z, opt.z_scale, s.t.ez, s.t.gz, count, s.coef, grad_z, fn, grad_z_factor);
  if (!grad_x.empty()) cuda::detail::isa_chain(ctx, x, opt.x_scale, s.t.ex, s.t.gx, count, s.coef, grad_x, fn);
}

}  // namespace topofr
