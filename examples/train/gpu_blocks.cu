// examples/train/gpu_blocks.cu — see gpu_blocks.hpp. Compiled only when CUDA is enabled (TOPOFR_TRAIN_GPU).
#include "gpu_blocks.hpp"

#include <topofr/cuda/arcface.cuh>
#include <topofr/cuda/gum.cuh>
#include <topofr/cuda/isa.cuh>

namespace topofr::train::gpu {
namespace {

/// A context on the legacy default stream with its own status word; check() synchronises and throws
/// topofr::error naming what the device found.
struct call {
  cuda::context ctx;
  int* word = nullptr;
  explicit call(const char* fn) : fn_(fn) {
    cuda::check_cuda(cudaMalloc(&word, sizeof(int)), fn);
    cuda::check_cuda(cudaMemset(word, 0, sizeof(int)), fn);
    ctx.status = word;
  }
  call(const call&) = delete;
  call& operator=(const call&) = delete;
  ~call() { cudaFree(word); }
  void check() { cuda::check_status(ctx, fn_); }

 private:
  const char* fn_;
};

}  // namespace

bool compiled() { return true; }

template <class T>
void margin_ce_forward(const T* cos, const std::int64_t* labels, std::int64_t n, std::int64_t c,
                       const combined_margin& m, double entropy_eps, T* loss, T* entropy, T* p_gt, T* lse) {
  call k("margin_ce_forward");
  topofr::margin_ce_forward(k.ctx, matrix_view<const T>(cos, n, c), vector_view<const std::int64_t>(labels, n), m,
                            entropy_eps, vector_view<T>(loss, n), vector_view<T>(entropy, n), vector_view<T>(p_gt, n),
                            vector_view<T>(lse, n));
  k.check();
}

template <class T>
gum_result sds(const T* entropy, const T* p_gt, std::int64_t n, const gum_options& opt, double lambda, bool focal,
               T* hard_posterior, T* omega) {
  call k("sds");
  gum_result* dres = nullptr;
  cuda::check_cuda(cudaMalloc(&dres, sizeof(gum_result)), "sds");
  topofr::gum_fit(k.ctx, vector_view<const T>(entropy, n), vector_view<T>(hard_posterior, n), opt, dres);
  topofr::sds_weights(k.ctx, vector_view<const T>(hard_posterior, n), vector_view<const T>(p_gt, n), lambda, focal,
                      vector_view<T>(omega, n));
  gum_result r{};
  const cudaError_t e = cudaMemcpy(&r, dres, sizeof r, cudaMemcpyDeviceToHost);
  cudaFree(dres);
  cuda::check_cuda(e, "sds");
  k.check();
  return r;
}

template <class T>
void margin_ce_backward(const T* cos, const std::int64_t* labels, std::int64_t n, std::int64_t c,
                        const combined_margin& m, const T* lse, const T* weights, double grad_scale, T* grad_cos) {
  call k("margin_ce_backward");
  topofr::margin_ce_backward(k.ctx, matrix_view<const T>(cos, n, c), vector_view<const std::int64_t>(labels, n), m,
                             vector_view<const T>(lse, n), vector_view<const T>(weights, n), grad_scale,
                             matrix_view<T>(grad_cos, n, c));
  k.check();
}

template <class T>
double isa(const T* x, const T* z, std::int64_t n, std::int64_t dx, std::int64_t dz, const isa_options& opt,
           T* grad_z) {
  call k("isa");
  T* dloss = nullptr;
  cuda::check_cuda(cudaMalloc(&dloss, sizeof(T)), "isa");
  topofr::isa_loss_from_points(k.ctx, matrix_view<const T>(x, n, dx), matrix_view<const T>(z, n, dz), opt,
                               vector_view<T>(dloss, 1), matrix_view<T>(grad_z, n, dz));
  T loss{};
  const cudaError_t e = cudaMemcpy(&loss, dloss, sizeof loss, cudaMemcpyDeviceToHost);
  cudaFree(dloss);
  cuda::check_cuda(e, "isa");
  k.check();
  return static_cast<double>(loss);
}

#define TOPOFR_TRAIN_GPU_INSTANTIATE(T)                                                                          \
  template void margin_ce_forward<T>(const T*, const std::int64_t*, std::int64_t, std::int64_t,                  \
                                     const combined_margin&, double, T*, T*, T*, T*);                           \
  template gum_result sds<T>(const T*, const T*, std::int64_t, const gum_options&, double, bool, T*, T*);        \
  template void margin_ce_backward<T>(const T*, const std::int64_t*, std::int64_t, std::int64_t,                 \
                                      const combined_margin&, const T*, const T*, double, T*);                  \
  template double isa<T>(const T*, const T*, std::int64_t, std::int64_t, std::int64_t, const isa_options&, T*);
TOPOFR_TRAIN_GPU_INSTANTIATE(float)
TOPOFR_TRAIN_GPU_INSTANTIATE(double)

}  // namespace topofr::train::gpu
