// examples/train/torch_gpu_env.hpp — LibTorch's current CUDA stream and caching allocator as the
// gpu::device_env of the library's CUDA blocks (gpu_blocks.hpp). Needs a CUDA LibTorch: the c10/cuda headers
// and libc10_cuda (CMake defines TOPOFR_TRAIN_TORCH_CUDA when the LibTorch package has the torch_cuda target).
//
// With it the blocks' work is enqueued on the stream LibTorch uses for the tensors around the call (whatever
// c10::cuda::CUDAStreamGuard selected, the default stream otherwise), so no extra synchronisation is needed
// between the tensor operations and the blocks, and their scratch comes from the same caching allocator as the
// tensors (no cudaMalloc/cudaFree per step, and memory freed by the blocks is reusable by LibTorch).
#pragma once

#if !defined(TOPOFR_TRAIN_TORCH_CUDA)
#error "torch_gpu_env.hpp needs a CUDA LibTorch (TOPOFR_TRAIN_TORCH_CUDA)"
#endif

#include <torch/torch.h>

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <stdexcept>
#include <string>

#include "gpu_blocks.hpp"

namespace topofr::train {

/// For the lifetime of this object: the tensor's device is the current CUDA device (the blocks launch on the
/// current device), and env() describes LibTorch's current stream on it and its caching allocator.
class torch_gpu_env {
 public:
  explicit torch_gpu_env(const torch::Tensor& on) : guard_(check_device(on)) {
    env_.stream = c10::cuda::getCurrentCUDAStream(on.device().index()).stream();
    env_.state = nullptr;
    env_.allocate = [](void*, std::size_t bytes, CUstream_st* stream) -> void* {
      // Throws c10::OutOfMemoryError (a std::exception) when even the cache cannot serve it.
      return c10::cuda::CUDACachingAllocator::raw_alloc_with_stream(bytes, stream);
    };
    env_.deallocate = [](void*, void* ptr, std::size_t, CUstream_st*) {
      // The block remembers the stream it was allocated on: reuse is ordered after the work enqueued so far.
      c10::cuda::CUDACachingAllocator::raw_delete(ptr);
    };
  }
  torch_gpu_env(const torch_gpu_env&) = delete;
  torch_gpu_env& operator=(const torch_gpu_env&) = delete;

  const gpu::device_env& env() const { return env_; }

 private:
  static c10::Device check_device(const torch::Tensor& t) {
    if (!t.is_cuda()) throw std::invalid_argument("torch_gpu_env: tensor on " + t.device().str() + ", not CUDA");
    return t.device();
  }
  c10::cuda::CUDAGuard guard_;
  gpu::device_env env_;
};

}  // namespace topofr::train
