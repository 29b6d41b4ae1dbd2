// tests/emu/mma.h — nvcuda::wmma for the SIMT emulator: the double-precision m8n8k4 shape only (DMMA,
// sm_80+). Each lane holds the elements of the PTX mma.m8n8k4.f64 fragment layout (group = lane / 4,
// t = lane % 4): A: A[group][t]; B: B[t][group]; C/D: C[group][2 t], C[group][2 t + 1]. The fragment
// element order is unspecified in CUDA, so code must not depend on it; the emulator uses the PTX one.
// load/store/mma are warp collectives of all 32 lanes (which must pass the same pointer, ldm and layout);
// pointers must be 256-bit aligned and ldm a multiple of 2 doubles (16 bytes), as CUDA requires.
// mma_sync: D[i][j] = c, then for k = 0..3 in order D[i][j] = fma(A[i][k], B[k][j], D[i][j]) — the
// device's DMMA rounds differently (it may fuse more), so results can differ from a GPU in the last bit.
#pragma once

#include "cuda_runtime.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static_assert(M == 8 && N == 8 && K == 4 && std::is_same<T, double>::value,
                "nvcuda::wmma (emulated): only the double m8n8k4 shape is implemented");
};

namespace detail {
template <class T, int E>
struct fragment_base {
  static constexpr int num_elements = E;
  using element_type = T;
  T x[E];
};
}  // namespace detail

template <class Layout>
class fragment<matrix_a, 8, 8, 4, double, Layout> : public detail::fragment_base<double, 1> {};
template <class Layout>
class fragment<matrix_b, 8, 8, 4, double, Layout> : public detail::fragment_base<double, 1> {};
template <>
class fragment<accumulator, 8, 8, 4, double, void> : public detail::fragment_base<double, 2> {};

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const T& v) {
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = v;
}

namespace detail {
using ::simt::detail::group_view;
using ::simt::detail::slot;

// Logical matrix index (row, col) of lane l's element e, per fragment kind: 0 = A (8x4), 1 = B (4x8),
// 2 = accumulator (8x8).
inline void element_of(int kind, unsigned l, int e, int& row, int& col) {
  const int g = static_cast<int>(l / 4), t = static_cast<int>(l % 4);
  if (kind == 0) row = g, col = t;
  else if (kind == 1) row = t, col = g;
  else row = g, col = 2 * t + e;
}

struct mem_job {
  int kind;      // 0 A, 1 B, 2 accumulator
  bool col;      // memory layout column-major
  bool store;
  const double* ptr;
  unsigned ldm;
};

inline void check_same(const group_view& g, const char* what) {
  const auto* j0 = static_cast<const mem_job*>(g.s[0].aux);
  for (unsigned l = 1; l < 32; ++l) {
    const auto* j = static_cast<const mem_job*>(g.s[l].aux);
    if (j->ptr != j0->ptr || j->ldm != j0->ldm || j->col != j0->col || j->kind != j0->kind)
      ::simt::detail::fatal("%s: lanes 0 and %u pass different pointers, ldm or layouts (%p/%u vs %p/%u)", what, l,
                            static_cast<const void*>(j0->ptr), j0->ldm, static_cast<const void*>(j->ptr), j->ldm);
  }
  if (reinterpret_cast<std::uintptr_t>(j0->ptr) % 32 != 0)
    ::simt::detail::fatal("%s: pointer %p is not 256-bit aligned", what, static_cast<const void*>(j0->ptr));
  if (j0->ldm % 2 != 0) ::simt::detail::fatal("%s: ldm %u is not a multiple of 16 bytes (2 doubles)", what, j0->ldm);
}

inline void mem_combine(const group_view& g) {
  const auto* j0 = static_cast<const mem_job*>(g.s[0].aux);
  check_same(g, j0->store ? "wmma::store_matrix_sync" : "wmma::load_matrix_sync");
  const int elems = j0->kind == 2 ? 2 : 1;
  for (unsigned l = 0; l < 32; ++l) {
    for (int e = 0; e < elems; ++e) {
      int r, c;
      element_of(j0->kind, l, e, r, c);
      const std::size_t off = j0->col ? static_cast<std::size_t>(c) * j0->ldm + r : static_cast<std::size_t>(r) * j0->ldm + c;
      if (j0->store) const_cast<double*>(j0->ptr)[off] = static_cast<const double*>(g.s[l].in)[e];
      else static_cast<double*>(g.s[l].out)[e] = j0->ptr[off];
    }
  }
}

inline void mem_op(const char* name, const mem_job& j, const double* in, double* out) {
  ::simt::detail::warp_collective(name, &mem_combine, 0xffffffffu, slot{in, out, &j, 0, 0});
}

struct mma_job {
  const double* a;
  const double* b;
  const double* c;
};

inline void mma_combine(const group_view& g) {
  double A[8][4], B[4][8], D[8][8];
  for (unsigned l = 0; l < 32; ++l) {
    const auto* j = static_cast<const mma_job*>(g.s[l].aux);
    int r, c;
    element_of(0, l, 0, r, c);
    A[r][c] = j->a[0];
    element_of(1, l, 0, r, c);
    B[r][c] = j->b[0];
    for (int e = 0; e < 2; ++e) {
      element_of(2, l, e, r, c);
      D[r][c] = j->c[e];
    }
  }
  for (int i = 0; i < 8; ++i)
    for (int n = 0; n < 8; ++n)
      for (int k = 0; k < 4; ++k) D[i][n] = std::fma(A[i][k], B[k][n], D[i][n]);
  for (unsigned l = 0; l < 32; ++l)  // d may alias c: written only now
    for (int e = 0; e < 2; ++e) {
      int r, c;
      element_of(2, l, e, r, c);
      static_cast<double*>(g.s[l].out)[e] = D[r][c];
    }
}
}  // namespace detail

template <class Layout>
inline void load_matrix_sync(fragment<matrix_a, 8, 8, 4, double, Layout>& a, const double* p, unsigned ldm) {
  static_assert(std::is_same<Layout, row_major>::value || std::is_same<Layout, col_major>::value,
                "wmma: matrix_a fragments need a row_major or col_major layout");
  const detail::mem_job j{0, std::is_same<Layout, col_major>::value, false, p, ldm};
  detail::mem_op("wmma::load_matrix_sync(matrix_a)", j, nullptr, a.x);
}
template <class Layout>
inline void load_matrix_sync(fragment<matrix_b, 8, 8, 4, double, Layout>& b, const double* p, unsigned ldm) {
  static_assert(std::is_same<Layout, row_major>::value || std::is_same<Layout, col_major>::value,
                "wmma: matrix_b fragments need a row_major or col_major layout");
  const detail::mem_job j{1, std::is_same<Layout, col_major>::value, false, p, ldm};
  detail::mem_op("wmma::load_matrix_sync(matrix_b)", j, nullptr, b.x);
}
inline void load_matrix_sync(fragment<accumulator, 8, 8, 4, double>& c, const double* p, unsigned ldm, layout_t l) {
  const detail::mem_job j{2, l == mem_col_major, false, p, ldm};
  detail::mem_op("wmma::load_matrix_sync(accumulator)", j, nullptr, c.x);
}
inline void store_matrix_sync(double* p, const fragment<accumulator, 8, 8, 4, double>& d, unsigned ldm, layout_t l) {
  const detail::mem_job j{2, l == mem_col_major, true, p, ldm};
  detail::mem_op("wmma::store_matrix_sync", j, d.x, nullptr);
}
template <class LA, class LB>
inline void mma_sync(fragment<accumulator, 8, 8, 4, double>& d, const fragment<matrix_a, 8, 8, 4, double, LA>& a,
                     const fragment<matrix_b, 8, 8, 4, double, LB>& b, const fragment<accumulator, 8, 8, 4, double>& c) {
  const detail::mma_job j{a.x, b.x, c.x};
  ::simt::detail::warp_collective("wmma::mma_sync", &detail::mma_combine, 0xffffffffu,
                                  ::simt::detail::slot{nullptr, d.x, &j, 0, 0});
}

}  // namespace wmma
}  // namespace nvcuda
