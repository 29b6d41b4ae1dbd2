// tests/support.hpp — what the tests share: a scratch folder, .npy exchange with the Python oracles, and
// seeded random inputs. An oracle is a script in tests/oracles/ that computes the expected values
// independently (NumPy, PyTorch autograd, GUDHI); it exits 77 when a module it needs is missing, which
// fails the test when TOPOFR_REQUIRE_ORACLES is set (CI) and is reported as a warning otherwise.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include <topofr/npy.hpp>

namespace topofr::test {

inline std::string scratch(const std::string& name) {
  namespace fs = std::filesystem;
  static const fs::path dir = [] {
    fs::path d = fs::path(TOPOFR_TEST_TMP) / ("p" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
  }();
  return (dir / name).string();
}

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline int run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return (rc != -1 && WIFEXITED(rc)) ? WEXITSTATUS(rc) : -1;
}

/// Runs tests/oracles/<script> with args. True when it ran; false (with a warning) when its modules are
/// missing and oracles are not required.
inline bool oracle(const std::string& script, const std::vector<std::string>& args) {
  std::string cmd = quote(TOPOFR_PYTHON) + " " + quote(std::string(TOPOFR_ORACLES) + "/" + script);
  for (const auto& a : args) cmd += " " + quote(a);
  const int rc = run(cmd);
  if (rc == 77) {
    if (std::getenv("TOPOFR_REQUIRE_ORACLES")) FAIL("oracle " << script << " cannot run: missing Python module");
    WARN("oracle " << script << " skipped: missing Python module (set TOPOFR_REQUIRE_ORACLES to make this fatal)");
    return false;
  }
  INFO("oracle command: " << cmd);
  REQUIRE(rc == 0);
  return true;
}

template <class T>
void save(const std::string& path, const std::vector<T>& v, std::vector<index_t> shape) {
  npy::write(path, v.data(), shape);
}
template <class T>
std::vector<T> load(const std::string& path, std::vector<index_t>* shape = nullptr) {
  npy::array a = npy::read(path);
  if (shape) *shape = a.shape;
  return a.as<T>(path);
}

template <class T>
std::vector<T> normal(std::size_t n, std::uint64_t seed, double sd = 1.0) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> d(0.0, sd);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(g));
  return v;
}
template <class T>
std::vector<T> uniform(std::size_t n, std::uint64_t seed, double lo = 0.0, double hi = 1.0) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(g));
  return v;
}

/// Relative error |a - b| / max(|b|, floor).
inline double rel(double a, double b, double floor = 1e-30) {
  return std::abs(a - b) / std::max(std::abs(b), floor);
}

/// The released code's 0-dim persistence (PersistentHomologyCalculation), transcribed once for the C++ tests
/// (the Python oracles' copy is tests/oracles/reference.py): weights = the upper triangle (diagonal
/// included) in row-major order, a stable sort, union-find with "merge the younger into the older".
template <class V>
void reference_pairs(const V* d, index_t n, index_t ld, std::vector<edge>& pairs, std::vector<double>& deaths) {
  std::vector<std::pair<index_t, index_t>> tri;
  for (index_t i = 0; i < n; ++i)
    for (index_t j = i; j < n; ++j) tri.push_back({i, j});
  std::vector<double> w(tri.size());
  for (std::size_t k = 0; k < tri.size(); ++k) w[k] = static_cast<double>(d[tri[k].first * ld + tri[k].second]);
  std::vector<std::size_t> order(tri.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return w[a] < w[b]; });
  std::vector<index_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  std::function<index_t(index_t)> find = [&](index_t u) { return parent[u] == u ? u : parent[u] = find(parent[u]); };
  auto merge = [&](index_t u, index_t v) { if (u != v) parent[find(u)] = find(v); };
  pairs.clear();
  deaths.clear();
  for (std::size_t k : order) {
    const index_t u = tri[k].first, v = tri[k].second;
    const index_t younger = find(u), older = find(v);
    if (younger == older) continue;
    if (younger > older) merge(v, u); else merge(u, v);
    pairs.push_back(edge{std::int32_t(std::min(u, v)), std::int32_t(std::max(u, v))});
    deaths.push_back(w[k]);
  }
}

}  // namespace topofr::test
