// examples/cli/cuda_backend.hpp — `topofr --device cuda`: the CUDA overloads behind the library calls
// (the CLI's staging of host arrays to the device). Included by device.hpp only when TOPOFR_WITH_CUDA is
// defined, i.e. when the sources are compiled by nvcc.
#pragma once
#include <cstddef>
#include <list>
#include <type_traits>
#include <vector>

#include <thrust/device_vector.h>

#include <topofr/topofr.hpp>

// --device cuda: the CUDA overloads behind the same calls. `cli_cuda::exec` takes the subcommands' HOST
// views; each overload below copies the inputs to the device (thrust::device_vector buffers), runs the
// cuda::context overload on the library's cuda::stream_context (own stream, status word), synchronises,
// checks the status word (device-detected bad values become errors) and copies the outputs back. --repeat
// timings on cuda therefore include the transfers.
#include <topofr/topofr.cuh>

namespace topofr {
namespace cli_cuda {

/// The execution argument the subcommands pass by value: the session's cuda::stream_context (owned by
/// on_device for the whole command).
struct exec {
  const cuda::stream_context* session;
  const cuda::context& ctx() const { return session->ctx; }
};

/// Device copies of host views for one call; outputs are copied back by finish().
class stage {
 public:
  explicit stage(const cuda::context& ctx) : ctx_(ctx) {}
  stage(const stage&) = delete;
  template <class E>
  device_matrix_view<E> in(matrix_view<E> m) {
    if (m.empty()) return {};
    return {upload(m.data(), m.rows() * m.ld()), m.rows(), m.cols(), m.ld()};
  }
  template <class E>
  device_vector_view<E> in(vector_view<E> v) {
    if (v.empty()) return {};
    return {upload(v.data(), v.size()), v.size()};
  }
  template <class E>
  device_matrix_view<E> out(matrix_view<E> m) {
    if (m.empty()) return {};
    E* d = alloc<E>(m.rows() * m.ld());
    back_.push_back({m.data(), d, static_cast<std::size_t>(m.rows() * m.ld()) * sizeof(E)});
    return {d, m.rows(), m.cols(), m.ld()};
  }
  template <class E>
  device_vector_view<E> out(vector_view<E> v) {
    if (v.empty()) return {};
    E* d = alloc<E>(v.size());
    back_.push_back({v.data(), d, static_cast<std::size_t>(v.size()) * sizeof(E)});
    return {d, v.size()};
  }
  template <class E>
  E* alloc(index_t count) {
    bufs_.emplace_back(static_cast<std::size_t>(count > 0 ? count : 1) * sizeof(E));
    return reinterpret_cast<E*>(thrust::raw_pointer_cast(bufs_.back().data()));
  }
  /// Copies the outputs back, synchronises and throws topofr::error if the device reported a bad value.
  void finish(const char* fn) {
    for (const copy& c : back_)
      cuda::check_cuda(cudaMemcpyAsync(c.host, c.dev, c.bytes, cudaMemcpyDeviceToHost, ctx_.stream), fn);
    cuda::check_cuda(cudaStreamSynchronize(ctx_.stream), fn);
    cuda::check_status(ctx_, fn);
  }

 private:
  template <class E>
  E* upload(E* host, index_t count) {
    using V = std::remove_const_t<E>;
    V* d = alloc<V>(count);
    cuda::check_cuda(cudaMemcpyAsync(d, host, static_cast<std::size_t>(count) * sizeof(V), cudaMemcpyHostToDevice,
                                     ctx_.stream),
                     "cli");
    return d;
  }
  struct copy {
    void* host;
    const void* dev;
    std::size_t bytes;
  };
  const cuda::context& ctx_;
  std::list<thrust::device_vector<std::byte>> bufs_;  // a list: buffers never move
  std::vector<copy> back_;
};

}  // namespace cli_cuda

template <class In, class T>
void pairwise_distances(const cli_cuda::exec& e, matrix_view<In> points, matrix_view<T> dist, double scale) {
  cli_cuda::stage s(e.ctx());
  pairwise_distances(e.ctx(), s.in(points), s.out(dist), scale);
  s.finish("pairwise_distances");
}
template <class In, class T>
void persistence_pairs(const cli_cuda::exec& e, matrix_view<In> dist, vector_view<edge> pairs, vector_view<T> deaths) {
  cli_cuda::stage s(e.ctx());
  persistence_pairs(e.ctx(), s.in(dist), s.out(pairs), s.out(deaths));
  s.finish("persistence_pairs");
}
template <class InX, class InZ, class T>
T isa_loss_from_points(const cli_cuda::exec& e, matrix_view<InX> x, matrix_view<InZ> z, const isa_options& opt,
                       matrix_view<T> grad_z, matrix_view<T> grad_x) {
  T loss = 0;
  cli_cuda::stage s(e.ctx());
  isa_loss_from_points(e.ctx(), s.in(x), s.in(z), opt, s.out(vector_view<T>(&loss, 1)), s.out(grad_z), s.out(grad_x));
  s.finish("isa_loss_from_points");
  return loss;
}
template <class In, class T>
gum_result gum_fit(const cli_cuda::exec& e, vector_view<In> entropy, vector_view<T> h, const gum_options& opt) {
  gum_result r{};
  cli_cuda::stage s(e.ctx());
  gum_fit(e.ctx(), s.in(entropy), s.out(h), opt, s.out(vector_view<gum_result>(&r, 1)).data());
  s.finish("gum_fit");
  return r;
}
template <class InC, class L, class T>
void margin_logits(const cli_cuda::exec& e, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                   matrix_view<T> logits) {
  cli_cuda::stage s(e.ctx());
  margin_logits(e.ctx(), s.in(cos), s.in(labels), m, s.out(logits));
  s.finish("margin_logits");
}
template <class InC, class L, class InG, class T>
void margin_logits_backward(const cli_cuda::exec& e, matrix_view<InC> cos, vector_view<L> labels,
                            const combined_margin& m, matrix_view<InG> grad_logits, matrix_view<T> grad_cos) {
  cli_cuda::stage s(e.ctx());
  margin_logits_backward(e.ctx(), s.in(cos), s.in(labels), m, s.in(grad_logits), s.out(grad_cos));
  s.finish("margin_logits_backward");
}
template <class InC, class L, class T>
void margin_ce_forward(const cli_cuda::exec& e, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                       double eps, vector_view<T> loss, vector_view<T> entropy, vector_view<T> p_gt,
                       vector_view<T> lse) {
  cli_cuda::stage s(e.ctx());
  margin_ce_forward(e.ctx(), s.in(cos), s.in(labels), m, eps, s.out(loss), s.out(entropy), s.out(p_gt), s.out(lse));
  s.finish("margin_ce_forward");
}
template <class InC, class L, class InS, class InW, class T>
void margin_ce_backward(const cli_cuda::exec& e, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                        vector_view<InS> lse, vector_view<InW> weights, double grad_scale, matrix_view<T> grad_cos) {
  cli_cuda::stage s(e.ctx());
  margin_ce_backward(e.ctx(), s.in(cos), s.in(labels), m, s.in(lse), s.in(weights), grad_scale, s.out(grad_cos));
  s.finish("margin_ce_backward");
}

}  // namespace topofr
