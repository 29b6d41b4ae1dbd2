// tests/emu/cub/block/block_reduce.cuh — cub::BlockReduce for the SIMT emulator: not CUB's algorithm but
// an emulator collective with CUB's interface and contract. Every thread of the block must call it (none
// may have exited); when the last one arrives the inputs are combined in thread order, left to right
// (((x0 op x1) op x2) ...): deterministic, though not CUB's tree order, so float sums can differ from a
// GPU's in the last bits. The result is valid in thread 0 only; the other threads get their own input
// back ("undefined" in CUB). Reusing a TempStorage without a __syncthreads() in between is reported.
#pragma once

#include "../../cuda_runtime.h"
#include "../thread/thread_operators.cuh"

namespace cub {

enum BlockReduceAlgorithm {
  BLOCK_REDUCE_RAKING_COMMUTATIVE_ONLY,
  BLOCK_REDUCE_RAKING,
  BLOCK_REDUCE_WARP_REDUCTIONS
};

template <typename T, int BLOCK_DIM_X, BlockReduceAlgorithm ALGORITHM = BLOCK_REDUCE_WARP_REDUCTIONS,
          int BLOCK_DIM_Y = 1, int BLOCK_DIM_Z = 1, int LEGACY_PTX_ARCH = 0>
class BlockReduce {
  static constexpr int BLOCK_THREADS = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;

 public:
  struct TempStorage {
    ::simt::detail::storage_tag tag;
  };

  BlockReduce() : storage_(private_storage()) {}
  explicit BlockReduce(TempStorage& storage) : storage_(storage) {}

  template <class ReductionOp>
  T Reduce(T input, ReductionOp op) {
    return run(input, op, BLOCK_THREADS);
  }
  template <class ReductionOp>
  T Reduce(T input, ReductionOp op, int num_valid) {
    return run(input, op, num_valid);
  }
  template <int ITEMS, class ReductionOp>
  T Reduce(T (&inputs)[ITEMS], ReductionOp op) {
    T partial = inputs[0];
    for (int i = 1; i < ITEMS; ++i) partial = op(partial, inputs[i]);
    return run(partial, op, BLOCK_THREADS);
  }
  T Sum(T input) { return run(input, cub::Sum(), BLOCK_THREADS); }
  T Sum(T input, int num_valid) { return run(input, cub::Sum(), num_valid); }
  template <int ITEMS>
  T Sum(T (&inputs)[ITEMS]) {
    return Reduce(inputs, cub::Sum());
  }

 private:
  template <class Op>
  struct job {
    const Op* op;
    int num_valid;
  };

  template <class Op>
  static void combine(const ::simt::detail::group_view& g) {
    const auto* j0 = static_cast<const job<Op>*>(g.s[0].aux);
    for (unsigned i = 1; i < g.n; ++i)
      if (static_cast<const job<Op>*>(g.s[i].aux)->num_valid != j0->num_valid)
        ::simt::detail::fatal("cub::BlockReduce: threads 0 and %u pass different num_valid (%d, %d)", i,
                              j0->num_valid, static_cast<const job<Op>*>(g.s[i].aux)->num_valid);
    const unsigned valid = j0->num_valid < static_cast<int>(g.n) ? static_cast<unsigned>(j0->num_valid) : g.n;
    T r = *static_cast<const T*>(g.s[0].in);
    for (unsigned i = 1; i < valid; ++i) r = (*j0->op)(r, *static_cast<const T*>(g.s[i].in));
    *static_cast<T*>(g.s[0].out) = r;
  }

  template <class Op>
  T run(T input, const Op& op, int num_valid) {
    const dim3 b = blockDim;
    if (static_cast<int>(b.x * b.y * b.z) != BLOCK_THREADS || static_cast<int>(b.x) != BLOCK_DIM_X)
      ::simt::detail::fatal("cub::BlockReduce<T, %d, ..., %d, %d> used in a block of (%u,%u,%u) threads", BLOCK_DIM_X,
                            BLOCK_DIM_Y, BLOCK_DIM_Z, b.x, b.y, b.z);
    T out = input;  // threads other than 0 keep their input
    const job<Op> j{&op, num_valid};
    ::simt::detail::block_collective("cub::BlockReduce", &combine<Op>, &storage_.tag,
                                     ::simt::detail::slot{&input, &out, &j, 0, 0});
    return out;
  }

  static TempStorage& private_storage() {
    __shared__ TempStorage s;
    return s;
  }

  TempStorage& storage_;
};

}  // namespace cub
