// examples/train/gpu_blocks.hpp — the library's CUDA blocks behind a plain C++ interface for the trainer.
// gpu_blocks.cu (compiled by nvcc) implements it; train.cpp and autograd.hpp stay ordinary C++ compiled against
// LibTorch, and this header needs neither CUDA nor LibTorch headers. All data pointers are DEVICE pointers.
//
// Every call takes a device_env: the stream to enqueue on and a stream-ordered allocator for the scratch the
// blocks need. The trainer passes LibTorch's current CUDA stream and caching allocator (torch_gpu_env.hpp), so
// the blocks are ordered with the surrounding tensor operations and never call cudaMalloc/cudaFree (a
// device-wide synchronisation) nor touch the legacy default stream on their own.
//
// Each call synchronises ITS STREAM exactly once, at the end: the status word (device-detected invalid values)
// and the small results the trainer needs on the host (the GUM fit, the ISA loss) come back in one copy, so an
// invalid value is reported (topofr::error) by the call that met it. Nothing else synchronises.
#pragma once

#include <cstddef>
#include <cstdint>

#include <topofr/arcface.hpp>
#include <topofr/gum.hpp>
#include <topofr/isa.hpp>

struct CUstream_st;  // cudaStream_t is CUstream_st* (cuda_runtime_api.h), declared here without CUDA headers

namespace topofr::train::gpu {

/// Where the blocks run: a plain struct (no CUDA or LibTorch types) handed from the LibTorch side to the
/// nvcc-compiled side. allocate/deallocate have the signatures of topofr::cuda::allocator; memory from
/// allocate(state, bytes, stream) may be used on `stream` at once, and deallocate is stream-ordered (the
/// memory may be reused by work enqueued on `stream` after the call).
struct device_env {
  CUstream_st* stream = nullptr;  // nullptr: the legacy default stream
  void* state = nullptr;
  void* (*allocate)(void* state, std::size_t bytes, CUstream_st* stream) = nullptr;
  void (*deallocate)(void* state, void* ptr, std::size_t bytes, CUstream_st* stream) = nullptr;
};

/// SDS options of margin_ce_forward.
struct sds_options {
  gum_options gum{};
  double lambda = 1.0;
  bool focal = true;
};

/// Pass 1 of the head (loss, entropy, p_gt, lse per row: device vectors of n) and, when `sds` is given, the
/// GUM posterior of the entropies (hard_posterior) and the SDS weights (omega); returns the GUM fit ({} without
/// sds). One synchronisation.
template <class T>
gum_result margin_ce_forward(const device_env& env, const T* cos, const std::int64_t* labels, std::int64_t n,
                             std::int64_t c, const combined_margin& m, double entropy_eps, T* loss, T* entropy,
                             T* p_gt, T* lse, const sds_options* sds, T* hard_posterior, T* omega);
/// Pass 2: grad_cos = weights_i * grad_scale * d loss_i / d cos (device n x c). One synchronisation (the status
/// word: non-finite lse or weights, labels or cosines out of range).
template <class T>
void margin_ce_backward(const device_env& env, const T* cos, const std::int64_t* labels, std::int64_t n,
                        std::int64_t c, const combined_margin& m, const T* lse, const T* weights, double grad_scale,
                        T* grad_cos);
/// ISA loss between x (n x dx) and z (n x dz) with dL/dz (device n x dz); returns the loss. One synchronisation.
template <class T>
double isa(const device_env& env, const T* x, const T* z, std::int64_t n, std::int64_t dx, std::int64_t dz,
           const isa_options& opt, T* grad_z);

}  // namespace topofr::train::gpu
