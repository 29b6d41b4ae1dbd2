// topofr/core/execution.hpp — execution arguments. Every block is a set of overloads on the first
// argument: `topofr::cpu` here, a `topofr::cuda::context` (stream + the caller's workspace allocator) in
// topofr/cuda/. CPU code uses OpenMP when the including translation unit is compiled with it.
#pragma once

namespace topofr {

/// Run on the host, in the calling thread (plus OpenMP threads where the caller enabled OpenMP).
struct cpu_t {
  explicit constexpr cpu_t() = default;
};
inline constexpr cpu_t cpu{};

}  // namespace topofr
