// examples/train/gpu_blocks.hpp — the library's CUDA blocks behind a plain C++ interface for the trainer.
// gpu_blocks.cu (compiled by nvcc, only when CUDA is enabled) implements it; train.cpp and autograd.hpp stay
// ordinary C++ compiled against LibTorch. All pointers are DEVICE pointers; the work runs on the legacy
// default stream (LibTorch's current stream unless the program changes it) with cudaMallocAsync scratch, and
// every call synchronises and checks the device status word before returning, so errors surface at the call.
#pragma once

#include <cstdint>

#include <topofr/arcface.hpp>
#include <topofr/gum.hpp>
#include <topofr/isa.hpp>

namespace topofr::train::gpu {

/// True when the trainer was built with the CUDA blocks (TOPOFR_TRAIN_GPU).
bool compiled();

/// Pass 1 of the head (loss, entropy, p_gt, lse per row: device vectors of n).
template <class T>
void margin_ce_forward(const T* cos, const std::int64_t* labels, std::int64_t n, std::int64_t c,
                       const combined_margin& m, double entropy_eps, T* loss, T* entropy, T* p_gt, T* lse);
/// GUM posterior of the entropies, then the SDS weights (device vectors of n); returns the fit.
template <class T>
gum_result sds(const T* entropy, const T* p_gt, std::int64_t n, const gum_options& opt, double lambda, bool focal,
               T* hard_posterior, T* omega);
/// Pass 2: grad_cos = weights_i * grad_scale * d loss_i / d cos (device n x c).
template <class T>
void margin_ce_backward(const T* cos, const std::int64_t* labels, std::int64_t n, std::int64_t c,
                        const combined_margin& m, const T* lse, const T* weights, double grad_scale, T* grad_cos);
/// ISA loss between x (n x dx) and z (n x dz) with dL/dz (device n x dz); returns the loss.
template <class T>
double isa(const T* x, const T* z, std::int64_t n, std::int64_t dx, std::int64_t dz, const isa_options& opt,
           T* grad_z);

}  // namespace topofr::train::gpu
