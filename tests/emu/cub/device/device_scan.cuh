// tests/emu/cub/device/device_scan.cuh — cub::DeviceScan::ExclusiveSum / InclusiveSum / ExclusiveScan (with
// an operator and an initial value) for the SIMT emulator: CUB's two-phase interface (d_temp_storage ==
// nullptr only sets temp_storage_bytes), run at once on the host, left to right, accumulating in the input's
// value type (the initial value's for ExclusiveScan). In place (d_out == d_in) works, as in CUB.
#pragma once

#include <cstddef>
#include <iterator>
#include <type_traits>

#include "../../cuda_runtime.h"

namespace cub {

struct DeviceScan {
  template <class InputIteratorT, class OutputIteratorT, class NumItemsT>
  static cudaError_t ExclusiveSum(void* d_temp_storage, std::size_t& temp_storage_bytes, InputIteratorT d_in,
                                  OutputIteratorT d_out, NumItemsT num_items, cudaStream_t = 0) {
    return scan(d_temp_storage, temp_storage_bytes, d_in, d_out, num_items, false);
  }
  template <class InputIteratorT, class OutputIteratorT, class NumItemsT>
  static cudaError_t InclusiveSum(void* d_temp_storage, std::size_t& temp_storage_bytes, InputIteratorT d_in,
                                  OutputIteratorT d_out, NumItemsT num_items, cudaStream_t = 0) {
    return scan(d_temp_storage, temp_storage_bytes, d_in, d_out, num_items, true);
  }

  template <class InputIteratorT, class OutputIteratorT, class ScanOpT, class InitValueT, class NumItemsT>
  static cudaError_t ExclusiveScan(void* d_temp_storage, std::size_t& temp_storage_bytes, InputIteratorT d_in,
                                   OutputIteratorT d_out, ScanOpT scan_op, InitValueT init_value, NumItemsT num_items,
                                   cudaStream_t = 0) {
    if (!d_temp_storage) {
      temp_storage_bytes = temp_bytes;
      return cudaSuccess;
    }
    if (temp_storage_bytes < temp_bytes || num_items < 0) return cudaErrorInvalidValue;
    InitValueT acc = init_value;
    for (NumItemsT k = 0; k < num_items; ++k) {
      const auto v = d_in[k];
      d_out[k] = acc;
      acc = scan_op(acc, v);
    }
    return cudaSuccess;
  }

 private:
  static constexpr std::size_t temp_bytes = 256;  // not 0: callers' allocation is exercised
  template <class InputIteratorT, class OutputIteratorT, class NumItemsT>
  static cudaError_t scan(void* d_temp_storage, std::size_t& temp_storage_bytes, InputIteratorT d_in,
                          OutputIteratorT d_out, NumItemsT num_items, bool inclusive) {
    if (!d_temp_storage) {
      temp_storage_bytes = temp_bytes;
      return cudaSuccess;
    }
    if (temp_storage_bytes < temp_bytes || num_items < 0) return cudaErrorInvalidValue;
    using T = std::remove_cv_t<typename std::iterator_traits<InputIteratorT>::value_type>;
    T acc{};
    for (NumItemsT k = 0; k < num_items; ++k) {
      const T v = d_in[k];
      if (inclusive) acc = acc + v;
      d_out[k] = acc;
      if (!inclusive) acc = acc + v;
    }
    return cudaSuccess;
  }
};

}  // namespace cub
