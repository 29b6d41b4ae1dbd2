// tests/emu/cub/device/device_radix_sort.cuh — cub::DeviceRadixSort::SortPairs / SortPairsDescending for the
// SIMT emulator: CUB's two-phase interface (a call with d_temp_storage == nullptr only sets
// temp_storage_bytes; the second call sorts) run at once on the host (device memory is host memory, streams
// are synchronous). The order is CUB's: a stable sort of the keys' radix bits [begin_bit, end_bit) after
// CUB's bit transformation (signed integers: sign bit flipped; floating point: negative values all bits
// flipped, others the sign bit; -0.0 sorted as +0.0), so equal keys keep their input order in both
// directions, as CUB documents. Keys: integral or floating-point types of 1, 2, 4 or 8 bytes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "../../cuda_runtime.h"

namespace cub {
namespace emu_detail {

template <std::size_t N> struct uint_of;
template <> struct uint_of<1> { using type = std::uint8_t; };
template <> struct uint_of<2> { using type = std::uint16_t; };
template <> struct uint_of<4> { using type = std::uint32_t; };
template <> struct uint_of<8> { using type = std::uint64_t; };

/// The key's radix bits as CUB orders them (ascending unsigned order = ascending key order).
template <class KeyT>
std::uint64_t radix_bits(KeyT k, int begin_bit, int end_bit) {
  using U = typename uint_of<sizeof(KeyT)>::type;
  constexpr U sign = U(U(1) << (8 * sizeof(KeyT) - 1));
  if constexpr (std::is_floating_point<KeyT>::value) {
    if (k == KeyT(0)) k = KeyT(0);  // -0.0 as +0.0
  }
  U u;
  std::memcpy(&u, &k, sizeof u);
  if constexpr (std::is_floating_point<KeyT>::value) u = (u & sign) ? U(~u) : U(u ^ sign);
  else if constexpr (std::is_signed<KeyT>::value) u = U(u ^ sign);
  std::uint64_t v = static_cast<std::uint64_t>(u) >> begin_bit;
  const int width = end_bit - begin_bit;
  if (width < 64) v &= (std::uint64_t(1) << width) - 1;
  return v;
}

// What the first phase asks for: not 0, so that callers' allocation of the temporary storage is exercised.
constexpr std::size_t temp_bytes = 256;

template <bool Descending, class KeyT, class ValueT, class NumItemsT>
cudaError_t sort_pairs(void* d_temp_storage, std::size_t& temp_storage_bytes, const KeyT* d_keys_in, KeyT* d_keys_out,
                       const ValueT* d_values_in, ValueT* d_values_out, NumItemsT num_items, int begin_bit,
                       int end_bit) {
  if (!d_temp_storage) {
    temp_storage_bytes = temp_bytes;
    return cudaSuccess;
  }
  if (temp_storage_bytes < temp_bytes || num_items < 0 || begin_bit < 0 || end_bit <= begin_bit ||
      end_bit > static_cast<int>(8 * sizeof(KeyT)))
    return cudaErrorInvalidValue;
  const auto n = static_cast<std::size_t>(num_items);
  std::vector<std::uint64_t> bits(n);
  for (std::size_t k = 0; k < n; ++k) bits[k] = radix_bits(d_keys_in[k], begin_bit, end_bit);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return Descending ? bits[a] > bits[b] : bits[a] < bits[b];
  });
  std::vector<KeyT> keys(n);
  std::vector<ValueT> values(n);
  for (std::size_t k = 0; k < n; ++k) keys[k] = d_keys_in[order[k]], values[k] = d_values_in[order[k]];
  std::copy(keys.begin(), keys.end(), d_keys_out);
  std::copy(values.begin(), values.end(), d_values_out);
  return cudaSuccess;
}

}  // namespace emu_detail

struct DeviceRadixSort {
  template <class KeyT, class ValueT, class NumItemsT>
  static cudaError_t SortPairs(void* d_temp_storage, std::size_t& temp_storage_bytes, const KeyT* d_keys_in,
                               KeyT* d_keys_out, const ValueT* d_values_in, ValueT* d_values_out, NumItemsT num_items,
                               int begin_bit = 0, int end_bit = sizeof(KeyT) * 8, cudaStream_t = 0) {
    return emu_detail::sort_pairs<false>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, d_values_in,
                                         d_values_out, num_items, begin_bit, end_bit);
  }
  template <class KeyT, class ValueT, class NumItemsT>
  static cudaError_t SortPairsDescending(void* d_temp_storage, std::size_t& temp_storage_bytes, const KeyT* d_keys_in,
                                         KeyT* d_keys_out, const ValueT* d_values_in, ValueT* d_values_out,
                                         NumItemsT num_items, int begin_bit = 0, int end_bit = sizeof(KeyT) * 8,
                                         cudaStream_t = 0) {
    return emu_detail::sort_pairs<true>(d_temp_storage, temp_storage_bytes, d_keys_in, d_keys_out, d_values_in,
                                        d_values_out, num_items, begin_bit, end_bit);
  }
};

}  // namespace cub
