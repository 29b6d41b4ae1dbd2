// examples/train/gpu_blocks.cu — see gpu_blocks.hpp. Compiled by nvcc when CUDA is enabled; linked into the
// trainer only with a CUDA LibTorch (TOPOFR_TRAIN_GPU).
#include "gpu_blocks.hpp"

#include <topofr/cuda/arcface.cuh>
#include <topofr/cuda/gum.cuh>
#include <topofr/cuda/isa.cuh>

#include <string>
#include <type_traits>

namespace topofr::train::gpu {
namespace {

static_assert(std::is_same_v<cudaStream_t, CUstream_st*>, "device_env::stream must be a cudaStream_t");

/// What one call reads back: the status word, then the call's result (gum_result, the ISA loss, or nothing).
/// One block of device scratch, zeroed, copied back whole in one cudaMemcpyAsync.
template <class R>
struct readback {
  int status;
  R value;
};
struct nothing {
  char unused;
};

/// One call: a context on env.stream with env's allocator, and a readback<R> block of scratch from that
/// allocator, released when the call ends, also when a block throws (stream-ordered: the caching allocator
/// hands it out again only to work enqueued after what used it).
template <class R>
class call {
 public:
  call(const device_env& env, const char* fn) : fn_(fn) {
    if (!env.allocate || !env.deallocate) throw error(std::string("topofr-train gpu::") + fn + ": no allocator");
    ctx.stream = env.stream;
    ctx.alloc = cuda::allocator{env.state, env.allocate, env.deallocate};
    dev_ = static_cast<readback<R>*>(ctx.alloc.allocate(ctx.alloc.state, sizeof(readback<R>), ctx.stream));
    if (!dev_) throw error(std::string("topofr-train gpu::") + fn + ": the allocator returned no memory");
    try {
      cuda::check_cuda(cudaMemsetAsync(dev_, 0, sizeof(readback<R>), ctx.stream), fn);
    } catch (...) {
      release();
      throw;
    }
    ctx.status = &dev_->status;
  }
  call(const call&) = delete;
  call& operator=(const call&) = delete;
  ~call() { release(); }

  /// The device address of the result slot.
  R* result() const { return &dev_->value; }

  /// Copies the status word and the result back and waits for the stream: the one synchronisation of the
  /// call. It is needed because the trainer uses the result on the host (the GUM fit for the statistics, the
  /// ISA loss for the autograd output) and because an invalid value found on the device must be reported by
  /// the call that met it, not by a later, unrelated one. Throws topofr::error naming what the device found.
  R finish() {
    readback<R> host{};
    cuda::check_cuda(cudaMemcpyAsync(&host, dev_, sizeof host, cudaMemcpyDeviceToHost, ctx.stream), fn_);
    cuda::check_cuda(cudaStreamSynchronize(ctx.stream), fn_);
    if (host.status != cuda::status_ok)
      throw error(std::string("topofr::cuda::") + fn_ + ": device reported " + cuda::describe_status(host.status));
    return host.value;
  }

  cuda::context ctx;

 private:
  void release() noexcept {
    if (dev_) ctx.alloc.deallocate(ctx.alloc.state, dev_, sizeof(readback<R>), ctx.stream);
    dev_ = nullptr;
  }
  const char* fn_;
  readback<R>* dev_ = nullptr;
};

}  // namespace

template <class T>
gum_result margin_ce_forward(const device_env& env, const T* cos, const std::int64_t* labels, std::int64_t n,
                             std::int64_t c, const combined_margin& m, double entropy_eps, T* loss, T* entropy,
                             T* p_gt, T* lse, const sds_options* sds, T* hard_posterior, T* omega) {
  call<gum_result> k(env, "margin_ce_forward");
  topofr::margin_ce_forward(k.ctx, device_matrix_view<const T>(cos, n, c), device_vector_view<const std::int64_t>(labels, n), m,
                            entropy_eps, device_vector_view<T>(loss, n), device_vector_view<T>(entropy, n), device_vector_view<T>(p_gt, n),
                            device_vector_view<T>(lse, n));
  if (sds) {
    topofr::gum_fit(k.ctx, device_vector_view<const T>(entropy, n), device_vector_view<T>(hard_posterior, n), sds->gum, k.result());
    topofr::sds_weights(k.ctx, device_vector_view<const T>(hard_posterior, n), device_vector_view<const T>(p_gt, n), sds->lambda,
                        sds->focal, device_vector_view<T>(omega, n));
  }
  return k.finish();
}

template <class T>
void margin_ce_backward(const device_env& env, const T* cos, const std::int64_t* labels, std::int64_t n,
                        std::int64_t c, const combined_margin& m, const T* lse, const T* weights, double grad_scale,
                        T* grad_cos) {
  call<nothing> k(env, "margin_ce_backward");
  topofr::margin_ce_backward(k.ctx, device_matrix_view<const T>(cos, n, c), device_vector_view<const std::int64_t>(labels, n), m,
                             device_vector_view<const T>(lse, n), device_vector_view<const T>(weights, n), grad_scale,
                             device_matrix_view<T>(grad_cos, n, c));
  k.finish();
}

template <class T>
double isa(const device_env& env, const T* x, const T* z, std::int64_t n, std::int64_t dx, std::int64_t dz,
           const isa_options& opt, T* grad_z) {
  call<T> k(env, "isa");
  topofr::isa_loss_from_points(k.ctx, device_matrix_view<const T>(x, n, dx), device_matrix_view<const T>(z, n, dz), opt,
                               device_vector_view<T>(k.result(), 1), device_matrix_view<T>(grad_z, n, dz));
  return static_cast<double>(k.finish());
}

#define TOPOFR_TRAIN_GPU_INSTANTIATE(T)                                                                          \
  template gum_result margin_ce_forward<T>(const device_env&, const T*, const std::int64_t*, std::int64_t,       \
                                           std::int64_t, const combined_margin&, double, T*, T*, T*, T*,         \
                                           const sds_options*, T*, T*);                                          \
  template void margin_ce_backward<T>(const device_env&, const T*, const std::int64_t*, std::int64_t,            \
                                      std::int64_t, const combined_margin&, const T*, const T*, double, T*);     \
  template double isa<T>(const device_env&, const T*, const T*, std::int64_t, std::int64_t, std::int64_t,        \
                         const isa_options&, T*);
TOPOFR_TRAIN_GPU_INSTANTIATE(float)
TOPOFR_TRAIN_GPU_INSTANTIATE(double)

}  // namespace topofr::train::gpu
