// tests/cuda/cuda_support.hpp — what the CUDA tests share: a device buffer and a context with a zeroed
// status word on its own stream. Test code only: copies are synchronous.
#pragma once

#include <cuda_runtime.h>
#include <thrust/device_vector.h>  // CUDA's Thrust; tests/emu/thrust under the emulator

#include <algorithm>
#include <cmath>
#include <vector>

#include <topofr/cuda/context.cuh>

#include "../support.hpp"

namespace topofr::test {

/// True when the tests run on the CPU under tests/emu (the SIMT emulator), where the largest cases are slow.
constexpr bool emulated() {
#if defined(TOPOFR_SIMT_EMULATOR)
  return true;
#else
  return false;
#endif
}

/// Device memory holding n values of T (zeroed), optionally filled from a host vector: a
/// thrust::device_vector (which owns it) and its raw pointer p (never null: at least one element).
template <class T>
struct device_buffer {
  thrust::device_vector<T> v;
  T* p = nullptr;
  std::size_t n = 0;
  explicit device_buffer(std::size_t n_) : v(std::max<std::size_t>(1, n_)), p(thrust::raw_pointer_cast(v.data())), n(n_) {}
  explicit device_buffer(const std::vector<T>& h) : device_buffer(h.size()) { put(h); }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  void put(const std::vector<T>& h) {
    cuda::check_cuda(cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice), "test");
  }
  /// Waits for all work, then copies back.
  std::vector<T> get() const {
    std::vector<T> h(n);
    cuda::check_cuda(cudaDeviceSynchronize(), "test");
    cuda::check_cuda(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), "test");
    return h;
  }
};

/// A context on a fresh stream with a zeroed device status word (the library's cuda::stream_context).
struct test_context : cuda::stream_context {
  int read() const { return status(); }
};

/// Element-wise |got - want| <= tol * max(|want|, abs_floor), reporting the first differing index.
template <class T>
void close(const std::vector<T>& got, const std::vector<T>& want, double tol, double abs_floor) {
  REQUIRE(got.size() == want.size());
  for (std::size_t k = 0; k < got.size(); ++k) {
    const double g = static_cast<double>(got[k]), w = static_cast<double>(want[k]);
    INFO("index " << k << ": got " << g << ", want " << w);
    CHECK(std::abs(g - w) <= tol * std::max(std::abs(w), abs_floor));
  }
}

}  // namespace topofr::test
