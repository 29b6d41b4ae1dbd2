// topofr/cuda/context.cuh — the CUDA execution argument. Every CUDA block is an overload of the CPU
// function whose first argument is a `const topofr::cuda::context&` instead of `topofr::cpu`.
// Contract (docs/cuda.md): work is enqueued on ctx.stream and returns without synchronising; temporary memory
// comes only from ctx.alloc (the trainer's allocator, stream-ordered); argument shapes are checked on the
// host (topofr::error), values that only the device sees (NaN, labels out of range, ...) set bits in the
// optional device status word that the caller reads when it chooses to (read_status / check_status).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
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

namespace detail {
/// The library's own memory pool on `device`, created once per process. Its release threshold is the
/// maximum: memory freed back to it is kept for the next call instead of going back to the driver at every
/// synchronisation (the default pool's threshold 0 would make every step pay cudaMalloc-like costs again).
inline cudaMemPool_t library_pool(int device) {
  static std::mutex mu;
  static std::map<int, cudaMemPool_t> pools;
  std::lock_guard<std::mutex> lock(mu);
  auto it = pools.find(device);
  if (it != pools.end()) return it->second;
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  cudaMemPool_t pool = nullptr;
  if (cudaMemPoolCreate(&pool, &props) != cudaSuccess)
    throw error("topofr::cuda: cudaMemPoolCreate failed on device " + std::to_string(device));
  std::uint64_t keep = ~std::uint64_t(0);
  cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
  pools.emplace(device, pool);
  return pool;
}
}  // namespace detail

/// The default allocator: stream-ordered cudaMallocFromPoolAsync / cudaFreeAsync from a pool the library
/// keeps per device (no device-wide synchronisation, memory reused across calls). A trainer should pass
/// its own allocator instead (e.g. PyTorch's caching allocator: raw_alloc_with_stream / raw_delete), so
/// that one cache holds the GPU's memory rather than two.
inline allocator stream_ordered_allocator() {
  allocator a;
  a.allocate = [](void*, std::size_t bytes, cudaStream_t s) -> void* {
    if (!bytes) return nullptr;
    int dev = 0;
    void* p = nullptr;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaMallocFromPoolAsync(&p, bytes, detail::library_pool(dev), s) != cudaSuccess)
      throw error("topofr::cuda: stream-ordered allocation of " + std::to_string(bytes) + " bytes failed");
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

/// A context that owns its stream (created here) and a zeroed device status word: the setup of a program
/// that is not handed a stream by a framework (tests, benchmarks, command-line tools). `ctx` is what the
/// blocks take; its allocator may be replaced. The destructor synchronises the stream, then releases both.
class stream_context {
 public:
  explicit stream_context(allocator alloc = stream_ordered_allocator()) {
    ctx.alloc = alloc;
    check_cuda(cudaStreamCreate(&ctx.stream), "stream_context");
    if (cudaMalloc(&ctx.status, sizeof(int)) != cudaSuccess) {
      cudaStreamDestroy(ctx.stream);
      throw error("topofr::cuda::stream_context: cudaMalloc of the status word failed");
    }
    check_cuda(cudaMemsetAsync(ctx.status, 0, sizeof(int), ctx.stream), "stream_context");
  }
  stream_context(const stream_context&) = delete;
  stream_context& operator=(const stream_context&) = delete;
  ~stream_context() {
    cudaStreamSynchronize(ctx.stream);
    cudaFree(ctx.status);
    cudaStreamDestroy(ctx.stream);
  }
  /// The status bits reported so far (synchronises the stream).
  int status() const { return read_status(ctx); }
  /// Throws topofr::error naming what the device found, if anything (synchronises the stream).
  void check(const char* fn = "check_status") const { check_status(ctx, fn); }
  /// Zeroes the status word (stream-ordered).
  void clear_status() { check_cuda(cudaMemsetAsync(ctx.status, 0, sizeof(int), ctx.stream), "clear_status"); }
  /// Waits for all work on the stream.
  void synchronize(const char* fn = "synchronize") const { check_cuda(cudaStreamSynchronize(ctx.stream), fn); }

  context ctx;
};

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

/// Grid sizes, derived in one place: enough blocks of `per_block` items to cover `total` items, at least 1
/// (a launch of 0 blocks is an error; callers return before launching on empty input), at most `cap`
/// (grid-stride loops cover the rest). max_grid_yz is the hardware limit of gridDim.y and gridDim.z.
constexpr index_t max_grid_yz = 65535;
constexpr unsigned grid_for(index_t total, index_t per_block = 256, index_t cap = max_grid_yz) {
  const index_t b = (total + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

/// Per (kernel, device): the dynamic shared-memory limit and whether the opt-in attribute was raised. Both
/// are computed once (cudaFuncGetAttributes is not free; launch paths ask every call), under one lock.
struct shared_limit {
  std::size_t bytes = 0;
  bool raised = false;
};
inline std::mutex& shared_limit_mutex() {
  static std::mutex mu;
  return mu;
}
template <class... P>
shared_limit& shared_limit_of(void (*kernel)(P...), int dev, const char* fn) {  // caller holds the lock
  static std::map<std::pair<const void*, int>, shared_limit> limits;
  const std::pair<const void*, int> key(reinterpret_cast<const void*>(kernel), dev);
  auto it = limits.find(key);
  if (it != limits.end()) return it->second;
  int optin = 0;
  check_cuda(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), fn);
  cudaFuncAttributes a{};
  check_cuda(cudaFuncGetAttributes(&a, kernel), fn);
  shared_limit l;
  l.bytes = optin > static_cast<int>(a.sharedSizeBytes) ? static_cast<std::size_t>(optin) - a.sharedSizeBytes : 0;
  return limits.emplace(key, l).first->second;
}

/// The most dynamic shared memory one block of `kernel` may use on the current device: the opt-in maximum
/// less the kernel's static shared memory (cudaFuncGetAttributes), not a constant.
template <class... P>
std::size_t max_dynamic_shared(void (*kernel)(P...), const char* fn) {
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), fn);
  std::lock_guard<std::mutex> lock(shared_limit_mutex());
  return shared_limit_of(kernel, dev, fn).bytes;
}

/// Lets `kernel` use up to max_dynamic_shared() bytes of dynamic shared memory on the current device. The
/// attribute is process-wide: setting it to each call's own size (as before) lets a thread launching a
/// smaller n lower it between another thread's set and launch. So it is raised once per (kernel, device), to
/// the maximum, under a lock that later callers also take (they launch only after it is set).
template <class... P>
void allow_dynamic_shared(void (*kernel)(P...), const char* fn) {
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), fn);
  std::lock_guard<std::mutex> lock(shared_limit_mutex());
  shared_limit& l = shared_limit_of(kernel, dev, fn);
  if (l.raised) return;
  check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(l.bytes)), fn);
  l.raised = true;
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
