// topofr/core/view.hpp — non-owning views (pointer + extents + strides), in the spirit of Eigen::Map and
// std::mdspan. Views never allocate and never own; constness is in the element type (view<const float>).
// Extents are checked by the functions that take views, so that the error can name the argument.
// Every view also carries the memory space its pointer lives in (host_memory, the default, or
// device_memory), as RAFT's host/device mdspan do: the CPU overloads take host views, the CUDA overloads
// device views, and no conversion crosses spaces, so a host pointer handed to a CUDA overload (or a device
// pointer to a CPU one) does not compile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "error.hpp"

#if defined(__CUDACC__)
#define TOPOFR_HD __host__ __device__
#else
#define TOPOFR_HD
#endif

namespace topofr {

using index_t = std::int64_t;

/// Memory spaces: the second template parameter of every view.
struct host_memory {};
struct device_memory {};

/// One persistence pair of 0-dimensional VR persistence: the edge (u, v), u < v, whose appearance merges
/// two components. Layout-compatible with two int32 (an (n-1) x 2 int32 array is a span of edges).
struct edge {
  std::int32_t u, v;
  friend TOPOFR_HD constexpr bool operator==(edge a, edge b) { return a.u == b.u && a.v == b.v; }
  friend TOPOFR_HD constexpr bool operator!=(edge a, edge b) { return !(a == b); }
};
static_assert(sizeof(edge) == 8 && std::is_standard_layout<edge>::value, "edge must be int32[2]");

/// A contiguous 1-d view: pointer and size.
template <class T, class Space = host_memory>
class vector_view {
 public:
  using value_type = std::remove_cv_t<T>;
  using memory_space = Space;
  constexpr vector_view() = default;
  TOPOFR_HD constexpr vector_view(T* data, index_t size) : data_(data), size_(size) {}
  template <class U, class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  TOPOFR_HD constexpr vector_view(vector_view<U, Space> o) : data_(o.data()), size_(o.size()) {}

  TOPOFR_HD constexpr T* data() const { return data_; }
  TOPOFR_HD constexpr index_t size() const { return size_; }
  TOPOFR_HD constexpr bool empty() const { return size_ == 0; }
  TOPOFR_HD constexpr T& operator[](index_t i) const { return data_[i]; }
  TOPOFR_HD constexpr T* begin() const { return data_; }
  TOPOFR_HD constexpr T* end() const { return data_ + size_; }

 private:
  T* data_ = nullptr;
  index_t size_ = 0;
};

/// A row-major 2-d view with a leading dimension (elements between the starts of consecutive rows).
template <class T, class Space = host_memory>
class matrix_view {
 public:
  using value_type = std::remove_cv_t<T>;
  using memory_space = Space;
  constexpr matrix_view() = default;
  /// ld < 0 means "contiguous rows" (ld = cols).
  TOPOFR_HD constexpr matrix_view(T* data, index_t rows, index_t cols, index_t ld = -1)
      : data_(data), rows_(rows), cols_(cols), ld_(ld < 0 ? cols : ld) {}
  template <class U, class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  TOPOFR_HD constexpr matrix_view(matrix_view<U, Space> o)
      : data_(o.data()), rows_(o.rows()), cols_(o.cols()), ld_(o.ld()) {}

  TOPOFR_HD constexpr T* data() const { return data_; }
  TOPOFR_HD constexpr index_t rows() const { return rows_; }
  TOPOFR_HD constexpr index_t cols() const { return cols_; }
  TOPOFR_HD constexpr index_t ld() const { return ld_; }
  TOPOFR_HD constexpr bool empty() const { return rows_ == 0 || cols_ == 0; }
  TOPOFR_HD constexpr T* row(index_t i) const { return data_ + i * ld_; }
  TOPOFR_HD constexpr T& operator()(index_t i, index_t j) const { return data_[i * ld_ + j]; }

 private:
  T* data_ = nullptr;
  index_t rows_ = 0, cols_ = 0, ld_ = 0;
};

/// A batch of equally shaped matrices: matrix b starts at data + b * batch_stride.
template <class T, class Space = host_memory>
class batch_view {
 public:
  using value_type = std::remove_cv_t<T>;
  using memory_space = Space;
  constexpr batch_view() = default;
  /// ld < 0: contiguous rows; batch_stride < 0: matrices packed back to back (rows * ld).
  TOPOFR_HD constexpr batch_view(T* data, index_t batch, index_t rows, index_t cols, index_t ld = -1,
                                 index_t batch_stride = -1)
      : data_(data), batch_(batch), rows_(rows), cols_(cols), ld_(ld < 0 ? cols : ld),
        stride_(batch_stride < 0 ? rows * (ld < 0 ? cols : ld) : batch_stride) {}
  template <class U, class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  TOPOFR_HD constexpr batch_view(batch_view<U, Space> o)
      : data_(o.data()), batch_(o.batch()), rows_(o.rows()), cols_(o.cols()), ld_(o.ld()),
        stride_(o.batch_stride()) {}

  TOPOFR_HD constexpr T* data() const { return data_; }
  TOPOFR_HD constexpr index_t batch() const { return batch_; }
  TOPOFR_HD constexpr index_t rows() const { return rows_; }
  TOPOFR_HD constexpr index_t cols() const { return cols_; }
  TOPOFR_HD constexpr index_t ld() const { return ld_; }
  TOPOFR_HD constexpr index_t batch_stride() const { return stride_; }
  TOPOFR_HD constexpr matrix_view<T, Space> operator[](index_t b) const {
    return matrix_view<T, Space>(data_ + b * stride_, rows_, cols_, ld_);
  }

 private:
  T* data_ = nullptr;
  index_t batch_ = 0, rows_ = 0, cols_ = 0, ld_ = 0, stride_ = 0;
};

/// A dense N x C x H x W image batch (NCHW, contiguous), as a trainer holds it.
template <class T, class Space = host_memory>
class image_batch_view {
 public:
  using value_type = std::remove_cv_t<T>;
  using memory_space = Space;
  constexpr image_batch_view() = default;
  TOPOFR_HD constexpr image_batch_view(T* data, index_t n, index_t c, index_t h, index_t w)
      : data_(data), n_(n), c_(c), h_(h), w_(w) {}
  template <class U, class = std::enable_if_t<std::is_convertible<U (*)[], T (*)[]>::value>>
  TOPOFR_HD constexpr image_batch_view(image_batch_view<U, Space> o)
      : data_(o.data()), n_(o.n()), c_(o.c()), h_(o.h()), w_(o.w()) {}
  TOPOFR_HD constexpr T* data() const { return data_; }
  TOPOFR_HD constexpr index_t n() const { return n_; }
  TOPOFR_HD constexpr index_t c() const { return c_; }
  TOPOFR_HD constexpr index_t h() const { return h_; }
  TOPOFR_HD constexpr index_t w() const { return w_; }
  TOPOFR_HD constexpr index_t sample_size() const { return c_ * h_ * w_; }
  TOPOFR_HD constexpr T* sample(index_t i) const { return data_ + i * sample_size(); }
  /// The batch as n points of dimension c*h*w (what the VR filtration of an image batch sees).
  TOPOFR_HD constexpr matrix_view<T, Space> as_points() const {
    return matrix_view<T, Space>(data_, n_, sample_size());
  }

 private:
  T* data_ = nullptr;
  index_t n_ = 0, c_ = 0, h_ = 0, w_ = 0;
};

/// Views of device memory: what the CUDA overloads take (a pointer from cudaMalloc, a
/// thrust::device_vector, a CUDA torch::Tensor, ...).
template <class T> using device_vector_view = vector_view<T, device_memory>;
template <class T> using device_matrix_view = matrix_view<T, device_memory>;
template <class T> using device_batch_view = batch_view<T, device_memory>;
template <class T> using device_image_batch_view = image_batch_view<T, device_memory>;
/// Spelled-out host views (the same types as vector_view<T> etc.).
template <class T> using host_vector_view = vector_view<T, host_memory>;
template <class T> using host_matrix_view = matrix_view<T, host_memory>;
template <class T> using host_batch_view = batch_view<T, host_memory>;
template <class T> using host_image_batch_view = image_batch_view<T, host_memory>;

// Convenience constructors (deduce T).
template <class T> TOPOFR_HD constexpr vector_view<T> make_vector_view(T* p, index_t n) { return {p, n}; }
template <class T>
TOPOFR_HD constexpr matrix_view<T> make_matrix_view(T* p, index_t rows, index_t cols, index_t ld = -1) {
  return {p, rows, cols, ld};
}
template <class T>
TOPOFR_HD constexpr device_vector_view<T> make_device_vector_view(T* p, index_t n) { return {p, n}; }
template <class T>
TOPOFR_HD constexpr device_matrix_view<T> make_device_matrix_view(T* p, index_t rows, index_t cols,
                                                                  index_t ld = -1) {
  return {p, rows, cols, ld};
}

namespace detail {

/// Puts a parameter in a non-deduced context (C++20's std::type_identity_t).
template <class T> struct identity { using type = T; };
template <class T> using identity_t = typename identity<T>::type;

/// The scalar types every block supports.
template <class T>
constexpr bool is_real_v = std::is_same<T, float>::value || std::is_same<T, double>::value;

/// The same pointer and extents as a host-space view, for a host-side shape check written for host views
/// (it reads extents and compares the pointer with null, never dereferences). Never pass the result on.
template <class T, class S> constexpr matrix_view<T> shape_view(const matrix_view<T, S>& m) {
  return matrix_view<T>(m.data(), m.rows(), m.cols(), m.ld());
}
template <class T, class S> constexpr vector_view<T> shape_view(const vector_view<T, S>& v) {
  return vector_view<T>(v.data(), v.size());
}
template <class T, class S> constexpr batch_view<T> shape_view(const batch_view<T, S>& b) {
  return batch_view<T>(b.data(), b.batch(), b.rows(), b.cols(), b.ld(), b.batch_stride());
}

/// Shape checks shared by all blocks; `fn`/`arg` name the caller and the argument in the message.
template <class T, class S>
void check_view(const matrix_view<T, S>& m, const char* fn, const char* arg) {
  require(m.rows() >= 0 && m.cols() >= 0, fn, arg, "negative extent ", m.rows(), " x ", m.cols());
  require(m.ld() >= m.cols(), fn, arg, "leading dimension ", m.ld(), " < cols ", m.cols());
  require(m.data() != nullptr || m.empty(), fn, arg, "null data pointer for a ", m.rows(), " x ",
          m.cols(), " view");
}
template <class T, class S>
void check_view(const vector_view<T, S>& v, const char* fn, const char* arg) {
  require(v.size() >= 0, fn, arg, "negative size ", v.size());
  require(v.data() != nullptr || v.size() == 0, fn, arg, "null data pointer for size ", v.size());
}
template <class T, class S>
void check_shape(const matrix_view<T, S>& m, index_t rows, index_t cols, const char* fn, const char* arg) {
  check_view(m, fn, arg);
  require(m.rows() == rows && m.cols() == cols, fn, arg, "expected shape ", rows, " x ", cols, ", got ",
          m.rows(), " x ", m.cols());
}
template <class T, class S>
void check_size(const vector_view<T, S>& v, index_t n, const char* fn, const char* arg) {
  check_view(v, fn, arg);
  require(v.size() == n, fn, arg, "expected size ", n, ", got ", v.size());
}

}  // namespace detail
}  // namespace topofr
