// tests/emu/cub/thread/thread_operators.cuh — shadow of CUB's reduction functors (SIMT emulator).
#pragma once

namespace cub {
struct Sum {
  template <class A, class B>
  auto operator()(const A& a, const B& b) const -> decltype(a + b) {
    return a + b;
  }
};
struct Max {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return a < b ? b : a;
  }
};
struct Min {
  template <class T>
  T operator()(const T& a, const T& b) const {
    return b < a ? b : a;
  }
};
}  // namespace cub
