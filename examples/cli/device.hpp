// examples/cli/device.hpp — where a subcommand computes (--device cpu|cuda) and how it is timed
// (--repeat N): on_device() is the one place where a computation meets its execution argument.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <utility>
#include <vector>

#include <topofr/topofr.hpp>

#if defined(TOPOFR_WITH_CUDA)
#include "cuda_backend.hpp"
#endif

#include "args.hpp"
#include "common.hpp"

namespace topofr_cli {


enum class device { cpu, cuda };

/// Reads --device; checked before any file is read, so that a wrong device fails fast.
inline device pick_device(const args& a) {
  const std::string d = a.choice("--device", {"cpu", "cuda"}, "cpu");
#if defined(TOPOFR_WITH_CUDA)
  if (d == "cuda") {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0)
      throw usage_error("--device cuda: no CUDA device is available");
    return device::cuda;
  }
#else
  if (d == "cuda") throw usage_error("--device cuda: topofr was built without CUDA");
#endif
  return device::cpu;
}

/// The one place where a subcommand's computation meets the execution argument: `compute(exec)` is
/// called with topofr::cpu today. --repeat N: run it N times and print the median wall time.
template <class F>
void on_device(const args& a, device dev, F&& compute) {
#if defined(TOPOFR_WITH_CUDA)
  // cuda: host views in, the cli_cuda overloads stage them through the device (cuda::stream_context).
  std::optional<topofr::cuda::stream_context> session;
  if (dev == device::cuda) session.emplace();
  auto run_once = [&] {
    if (session) compute(topofr::cli_cuda::exec{&*session});
    else compute(topofr::cpu);
  };
#else
  (void)dev;  // only cpu exists in this build (pick_device refused cuda)
  auto run_once = [&] { compute(topofr::cpu); };
#endif
  const long repeat = a.integer("--repeat", 0, 1);
  if (repeat == 0) {
    run_once();
    return;
  }
  std::vector<double> ms;
  for (long r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run_once();
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const std::size_t k = ms.size() / 2;
  const double median = ms.size() % 2 ? ms[k] : 0.5 * (ms[k - 1] + ms[k]);
  std::printf("median_ms=%.6g\n", median);
}

template <class T>
std::pair<T, T> min_max(const std::vector<T>& v) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return v.empty() ? std::pair<T, T>(0, 0) : std::pair<T, T>(*lo, *hi);
}

}  // namespace topofr_cli
