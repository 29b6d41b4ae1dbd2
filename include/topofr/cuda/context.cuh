// topofr/cuda/context.cuh — the CUDA execution argument. Every CUDA block is an overload of the CPU
// function whose first argument is a `const topofr::cuda::context&` instead of `topofr::cpu`.
// Contract (DESIGN §4): work is enqueued on ctx.stream and returns without synchronising; temporary memory
// comes only from ctx.alloc (the trainer's allocator, stream-ordered); argument shapes are checked on the
// host (topofr::error), values that only the device sees (NaN, labels out of range, ...) set bits in the
// optional device status word that the caller reads when it chooses to (read_status / check_status).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <tuple>
#include <utility>

#include "../core/error.hpp"
#include "../core/view.hpp"

namespace topofr {
namespace cuda {

/// A stream-ordered allocator supplied by the caller (e.g. a wrapper around PyTorch's caching allocator).
struct allocator {
  void* state = nullptr;
  void* (*allocate)(void* state, std::size_t bytes, cudaStream_t stream) = nullptr;
  void (*deallocate)(void* state, void* ptr, std::size_t bytes, cudaStream_t stream) = nullptr;
};

/// cudaMallocAsync / cudaFreeAsync on the stream: stream-ordered, no device-wide synchronisation.
inline allocator stream_ordered_allocator() {
  allocator a;
  a.allocate = [](void*, std::size_t bytes, cudaStream_t s) -> void* {
    void* p = nullptr;
    if (bytes && cudaMallocAsync(&p, bytes, s) != cudaSuccess)
      throw error("topofr::cuda: cudaMallocAsync of " + std::to_string(bytes) + " bytes failed");
    return p;
  };
  a.deallocate = [](void*, void* p, std::size_t, cudaStream_t s) {
    if (p) cudaFreeAsync(p, s);
  };
  return a;
}

/// Bits a kernel ORs into context::status when it finds an invalid value.
enum status_bit : int {
  status_ok = 0,
  status_non_finite = 1 << 0,        // NaN or Inf in an input
  status_negative_distance = 1 << 1, // a negative entry in a distance matrix
  status_label_out_of_range = 1 << 2,
  status_cos_out_of_range = 1 << 3,  // a cosine outside [-1, 1]
  status_diverged = 1 << 4,          // GUM EM diverged (reference mode)
  status_bad_pair = 1 << 5,          // an edge with u >= v or v >= n
};

inline std::string describe_status(int s) {
  if (s == status_ok) return "ok";
  std::string out;
  auto add = [&](int bit, const char* what) {
    if (s & bit) out += (out.empty() ? "" : ", ") + std::string(what);
  };
  add(status_non_finite, "non-finite input value");
  add(status_negative_distance, "negative distance");
  add(status_label_out_of_range, "label out of range");
  add(status_cos_out_of_range, "cosine outside [-1, 1]");
  add(status_diverged, "GUM EM diverged");
  add(status_bad_pair, "invalid persistence pair");
  return out;
}

struct context {
  cudaStream_t stream = nullptr;
  allocator alloc = stream_ordered_allocator();
  int* status = nullptr;  // optional device int, zeroed by the caller; kernels OR status_bit values into it
};

/// Throws topofr::error("topofr::cuda::<fn>: <CUDA error>") when a runtime call failed.
inline void check_cuda(cudaError_t e, const char* fn) {
  if (e != cudaSuccess) throw error(std::string("topofr::cuda::") + fn + ": " + cudaGetErrorString(e));
}

/// Reads the status word (synchronises ctx.stream). Returns status_ok when the context has none.
inline int read_status(const context& ctx) {
  if (!ctx.status) return status_ok;
  int s = 0;
  check_cuda(cudaMemcpyAsync(&s, ctx.status, sizeof(int), cudaMemcpyDeviceToHost, ctx.stream), "read_status");
  check_cuda(cudaStreamSynchronize(ctx.stream), "read_status");
  return s;
}

/// Throws topofr::error naming what the device found, if anything.
inline void check_status(const context& ctx, const char* fn = "check_status") {
  const int s = read_status(ctx);
  if (s != status_ok) throw error(std::string("topofr::cuda::") + fn + ": device reported " + describe_status(s));
}

/// Scratch memory from the context's allocator, released (stream-ordered) when it goes out of scope.
class workspace {
 public:
  workspace(const context& ctx, std::size_t bytes) : ctx_(&ctx), bytes_(bytes) {
    if (!ctx.alloc.allocate || !ctx.alloc.deallocate) throw error("topofr::cuda: context.alloc is incomplete");
    ptr_ = bytes ? ctx.alloc.allocate(ctx.alloc.state, bytes, ctx.stream) : nullptr;
  }
  workspace(const workspace&) = delete;
  workspace& operator=(const workspace&) = delete;
  ~workspace() {
    if (ptr_) ctx_->alloc.deallocate(ctx_->alloc.state, ptr_, bytes_, ctx_->stream);
  }
  template <class T>
  T* as() const { return static_cast<T*>(ptr_); }
  std::size_t bytes() const { return bytes_; }

 private:
  const context* ctx_;
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

namespace detail {
/// Device-side: OR a status bit into the context's word (no-op without one).
__device__ inline void report(int* status, int bit) {
  if (status) atomicOr(status, bit);
}

template <class... P, std::size_t... I>
cudaError_t launch_tuple(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
                         std::tuple<P...>& params, std::index_sequence<I...>) {
  void* args[] = {static_cast<void*>(&std::get<I>(params))..., nullptr};
  return cudaLaunchKernel(kernel, grid, block, args, smem, stream);
}

/// kernel<<<grid, block, smem, stream>>>(args...), written as a call: the arguments are converted to the
/// kernel's parameter types here (type-checked), and a launch error is returned by this launch itself
/// (cudaLaunchKernel) rather than read later from cudaGetLastError, which another thread's or an earlier
/// asynchronous failure could have set. Throws topofr::error("topofr::cuda::<fn>: ...").
/// (Being a plain C++ call, it also lets tests/emu run every kernel on the CPU.)
template <class... P, class... A>
void launch(const char* fn, void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t stream,
            A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "topofr::cuda::detail::launch: wrong number of kernel arguments");
  std::tuple<P...> params(std::forward<A>(args)...);
  check_cuda(launch_tuple(kernel, grid, block, smem, stream, params, std::index_sequence_for<P...>{}), fn);
}

/// The block's dynamic shared memory (the launch's smem bytes), 16-byte aligned.
#if defined(TOPOFR_SIMT_EMULATOR)
template <class T>
T* dynamic_shared() {
  return static_cast<T*>(::simt::dynamic_shared_memory());
}
#else
template <class T>
__device__ inline T* dynamic_shared() {
  extern __shared__ __align__(16) unsigned char topofr_dynamic_smem[];
  return reinterpret_cast<T*>(topofr_dynamic_smem);
}
#endif
}  // namespace detail

}  // namespace cuda
}  // namespace topofr
