// tests/emu/cub/block/block_scan.cuh — cub::BlockScan for the SIMT emulator: an emulator collective with
// CUB's interface (one item per thread, optional block aggregate, returned to every thread). Every thread
// of the block must call it; the scan runs in thread order, left to right. ExclusiveSum gives thread 0
// T(0); ExclusiveScan without an initial value leaves thread 0's output poisoned (undefined in CUB).
#pragma once

#include "../../cuda_runtime.h"
#include "../thread/thread_operators.cuh"

namespace cub {

enum BlockScanAlgorithm { BLOCK_SCAN_RAKING, BLOCK_SCAN_RAKING_MEMOIZE, BLOCK_SCAN_WARP_SCANS };

template <typename T, int BLOCK_DIM_X, BlockScanAlgorithm ALGORITHM = BLOCK_SCAN_RAKING, int BLOCK_DIM_Y = 1,
          int BLOCK_DIM_Z = 1, int LEGACY_PTX_ARCH = 0>
class BlockScan {
  static constexpr int BLOCK_THREADS = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;

 public:
  struct TempStorage {
    ::simt::detail::storage_tag tag;
  };

  BlockScan() : storage_(private_storage()) {}
  explicit BlockScan(TempStorage& storage) : storage_(storage) {}

  void ExclusiveSum(T input, T& output) { run(input, output, cub::Sum(), exclusive_init, T(), nullptr); }
  void ExclusiveSum(T input, T& output, T& block_aggregate) {
    run(input, output, cub::Sum(), exclusive_init, T(), &block_aggregate);
  }
  void InclusiveSum(T input, T& output) { run(input, output, cub::Sum(), inclusive, T(), nullptr); }
  void InclusiveSum(T input, T& output, T& block_aggregate) {
    run(input, output, cub::Sum(), inclusive, T(), &block_aggregate);
  }
  template <class ScanOp>
  void ExclusiveScan(T input, T& output, T initial_value, ScanOp op) {
    run(input, output, op, exclusive_init, initial_value, nullptr);
  }
  template <class ScanOp>
  void ExclusiveScan(T input, T& output, T initial_value, ScanOp op, T& block_aggregate) {
    run(input, output, op, exclusive_init, initial_value, &block_aggregate);
  }
  template <class ScanOp>
  void ExclusiveScan(T input, T& output, ScanOp op) {
    run(input, output, op, exclusive_no_init, input, nullptr);
  }
  template <class ScanOp>
  void ExclusiveScan(T input, T& output, ScanOp op, T& block_aggregate) {
    run(input, output, op, exclusive_no_init, input, &block_aggregate);
  }
  template <class ScanOp>
  void InclusiveScan(T input, T& output, ScanOp op) {
    run(input, output, op, inclusive, input, nullptr);
  }
  template <class ScanOp>
  void InclusiveScan(T input, T& output, ScanOp op, T& block_aggregate) {
    run(input, output, op, inclusive, input, &block_aggregate);
  }

 private:
  enum mode { exclusive_init, exclusive_no_init, inclusive };
  template <class Op>
  struct job {
    const Op* op;
    mode m;
    const T* initial;
    T* aggregate;
  };

  template <class Op>
  static void combine(const ::simt::detail::group_view& g) {
    const auto* j0 = static_cast<const job<Op>*>(g.s[0].aux);
    for (unsigned i = 1; i < g.n; ++i)
      if (static_cast<const job<Op>*>(g.s[i].aux)->m != j0->m)
        ::simt::detail::fatal("cub::BlockScan: threads 0 and %u call different scans", i);
    const Op& op = *j0->op;
    T running = *static_cast<const T*>(g.s[0].in);
    if (j0->m == exclusive_init) {
      *static_cast<T*>(g.s[0].out) = *j0->initial;
      running = op(*j0->initial, running);
    } else if (j0->m == exclusive_no_init) {
      std::memset(static_cast<void*>(g.s[0].out), 0xff, sizeof(T));  // undefined in CUB
    } else {
      *static_cast<T*>(g.s[0].out) = running;
    }
    for (unsigned i = 1; i < g.n; ++i) {
      const T x = *static_cast<const T*>(g.s[i].in);
      if (j0->m == inclusive) {
        running = op(running, x);
        *static_cast<T*>(g.s[i].out) = running;
      } else {
        *static_cast<T*>(g.s[i].out) = running;
        running = op(running, x);
      }
    }
    // The aggregate excludes the initial value, as in CUB.
    T total = *static_cast<const T*>(g.s[0].in);
    for (unsigned i = 1; i < g.n; ++i) total = op(total, *static_cast<const T*>(g.s[i].in));
    for (unsigned i = 0; i < g.n; ++i)
      if (T* a = static_cast<const job<Op>*>(g.s[i].aux)->aggregate) *a = total;
  }

  template <class Op>
  void run(T input, T& output, const Op& op, mode m, T initial, T* aggregate) {
    const dim3 b = blockDim;
    if (static_cast<int>(b.x * b.y * b.z) != BLOCK_THREADS || static_cast<int>(b.x) != BLOCK_DIM_X)
      ::simt::detail::fatal("cub::BlockScan<T, %d, ..., %d, %d> used in a block of (%u,%u,%u) threads", BLOCK_DIM_X,
                            BLOCK_DIM_Y, BLOCK_DIM_Z, b.x, b.y, b.z);
    T out = input;
    const job<Op> j{&op, m, &initial, aggregate};
    ::simt::detail::block_collective("cub::BlockScan", &combine<Op>, &storage_.tag,
                                     ::simt::detail::slot{&input, &out, &j, 0, 0});
    output = out;
  }

  static TempStorage& private_storage() {
    __shared__ TempStorage s;
    return s;
  }

  TempStorage& storage_;
};

}  // namespace cub
