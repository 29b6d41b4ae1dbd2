// tests/emu/cub/warp/warp_reduce.cuh — cub::WarpReduce for the SIMT emulator: a warp collective over the
// logical warp (LOGICAL_WARP_THREADS consecutive lanes, a power of 2 <= 32; lanes beyond the block's last
// thread do not take part). The inputs are combined in lane order, left to right; the result is valid in
// the logical warp's first lane, the other lanes get their own input back ("undefined" in CUB).
#pragma once

#include "../../cuda_runtime.h"
#include "../thread/thread_operators.cuh"

namespace cub {

template <typename T, int LOGICAL_WARP_THREADS = 32, int LEGACY_PTX_ARCH = 0>
class WarpReduce {
  static_assert(LOGICAL_WARP_THREADS >= 1 && LOGICAL_WARP_THREADS <= 32 &&
                    (LOGICAL_WARP_THREADS & (LOGICAL_WARP_THREADS - 1)) == 0,
                "cub::WarpReduce (emulated): LOGICAL_WARP_THREADS must be a power of 2 <= 32");

 public:
  struct TempStorage {
    ::simt::detail::storage_tag tag;
  };

  explicit WarpReduce(TempStorage&) {}

  template <class ReductionOp>
  T Reduce(T input, ReductionOp op) {
    return run(input, op, LOGICAL_WARP_THREADS);
  }
  template <class ReductionOp>
  T Reduce(T input, ReductionOp op, int valid_items) {
    return run(input, op, valid_items);
  }
  T Sum(T input) { return run(input, cub::Sum(), LOGICAL_WARP_THREADS); }
  T Sum(T input, int valid_items) { return run(input, cub::Sum(), valid_items); }

 private:
  template <class Op>
  struct job {
    const Op* op;
    int valid;
  };

  template <class Op>
  static void combine(const ::simt::detail::group_view& g) {
    const unsigned first = static_cast<unsigned>(__builtin_ctz(g.mask));
    const auto* j0 = static_cast<const job<Op>*>(g.s[first].aux);
    T r = *static_cast<const T*>(g.s[first].in);
    int taken = 1;
    for (unsigned m = g.mask & (g.mask - 1); m && taken < j0->valid; m &= m - 1, ++taken)
      r = (*j0->op)(r, *static_cast<const T*>(g.s[__builtin_ctz(m)].in));
    *static_cast<T*>(g.s[first].out) = r;
  }

  template <class Op>
  T run(T input, const Op& op, int valid) {
    const unsigned linear = ::simt::detail::g_thread->linear, lane = linear % 32;
    const unsigned base = linear - lane, n = ::simt::detail::g_block.threads;
    const unsigned exist = n - base >= 32 ? 0xffffffffu : (1u << (n - base)) - 1u;
    const unsigned seg = LOGICAL_WARP_THREADS == 32 ? 0xffffffffu : (1u << LOGICAL_WARP_THREADS) - 1u;
    const unsigned mask = (seg << (lane / LOGICAL_WARP_THREADS * LOGICAL_WARP_THREADS)) & exist;
    T out = input;
    const job<Op> j{&op, valid};
    ::simt::detail::warp_collective("cub::WarpReduce", &combine<Op>, mask, ::simt::detail::slot{&input, &out, &j, 0, 0});
    return out;
  }
};

}  // namespace cub
