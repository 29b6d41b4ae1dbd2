// tests/emu/thrust/device_vector.h — the part of Thrust's device_vector the emulated tests use
// (tests/cuda/cuda_support.hpp), on the emulator's device memory (cudaMalloc / cudaMemcpy of
// tests/emu/cuda_runtime.h, so that the emulator's poisoning and checks apply). Under nvcc the real
// <thrust/device_vector.h> (CUDA's CCCL) is used instead.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <vector>

namespace thrust {

template <class T>
class device_ptr {
 public:
  explicit device_ptr(T* p = nullptr) : p_(p) {}
  T* get() const { return p_; }

 private:
  T* p_;
};

template <class T>
T* raw_pointer_cast(device_ptr<T> p) {
  return p.get();
}

/// n elements of T in device memory, value-initialised (zero for arithmetic T); not resizable here.
template <class T>
class device_vector {
 public:
  explicit device_vector(std::size_t n = 0) : n_(n) {
    if (n_ == 0) return;
    if (cudaMalloc(reinterpret_cast<void**>(&p_), n_ * sizeof(T)) != cudaSuccess) throw std::bad_alloc();
    const std::vector<T> zero(n_, T());
    cudaMemcpy(p_, zero.data(), n_ * sizeof(T), cudaMemcpyHostToDevice);
  }
  explicit device_vector(const std::vector<T>& h) : device_vector(h.size()) {
    if (n_) cudaMemcpy(p_, h.data(), n_ * sizeof(T), cudaMemcpyHostToDevice);
  }
  device_vector(const device_vector&) = delete;
  device_vector& operator=(const device_vector&) = delete;
  ~device_vector() {
    if (p_) cudaFree(p_);
  }
  std::size_t size() const { return n_; }
  device_ptr<T> data() { return device_ptr<T>(p_); }
  device_ptr<const T> data() const { return device_ptr<const T>(p_); }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace thrust
