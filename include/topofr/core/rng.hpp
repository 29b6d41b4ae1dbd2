// topofr/core/rng.hpp — Philox4x32-10 (Salmon, Moraes, Dror, Shaw, SC'11; the Random123 library) and a
// tiny counter-based stream on top of it. A counter-based generator is a pure function of (key, counter):
// every (seed, a, b) stream can be evaluated independently on any thread, host or device, in any order,
// which is what lets the CPU and CUDA code make identical random choices.
// Header-only, no host-only calls, constexpr-evaluable (the known-answer tests run at compile time).
#pragma once

#include <cstdint>

#include "view.hpp"  // TOPOFR_HD

namespace topofr {

/// One Philox4x32-10 block: out = philox(ctr, key), ten rounds, Random123's constants and word order
/// (round: (hi0, lo0) = M0 * x0, (hi1, lo1) = M1 * x2, x = {hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0};
/// the key is bumped by the Weyl constants between rounds).
TOPOFR_HD constexpr void philox4x32_10(const std::uint32_t ctr[4], const std::uint32_t key[2],
                                       std::uint32_t out[4]) {
  constexpr std::uint64_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  std::uint32_t x0 = ctr[0], x1 = ctr[1], x2 = ctr[2], x3 = ctr[3];
  std::uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; ++r) {
    if (r > 0) { k0 += W0; k1 += W1; }
    const std::uint64_t p0 = M0 * x0, p1 = M1 * x2;
    const std::uint32_t y0 = static_cast<std::uint32_t>(p1 >> 32) ^ x1 ^ k0;
    const std::uint32_t y2 = static_cast<std::uint32_t>(p0 >> 32) ^ x3 ^ k1;
    x1 = static_cast<std::uint32_t>(p1);
    x3 = static_cast<std::uint32_t>(p0);
    x0 = y0;
    x2 = y2;
  }
  out[0] = x0; out[1] = x1; out[2] = x2; out[3] = x3;
}

/// A stream of 32-bit words for the triple (seed, a, b):
///   key     = { lo32(seed), hi32(seed) }
///   counter = { block, lo32(a), lo32(b), hi32(a) ^ hi32(b) },  block = 0, 1, 2, ...
/// and the words are out[0], out[1], out[2], out[3] of block 0, then of block 1, ... Streams are
/// distinct (hence independent, Philox being a keyed bijection of the counter) for all seeds and all
/// (a, b) with hi32(a) = 0, i.e. every a < 2^32 and every b; 2^32 blocks (2^34 words) per stream.
/// topofr uses a = sample index, b = training step.
struct counter_rng {
  TOPOFR_HD constexpr counter_rng(std::uint64_t seed, std::uint64_t a, std::uint64_t b)
      : key_{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)},
        ctr_{0u, static_cast<std::uint32_t>(a), static_cast<std::uint32_t>(b),
             static_cast<std::uint32_t>(a >> 32) ^ static_cast<std::uint32_t>(b >> 32)} {}

  TOPOFR_HD constexpr std::uint32_t next_u32() {
    if (pos_ == 4) {
      philox4x32_10(ctr_, key_, buf_);
      ++ctr_[0];
      pos_ = 0;
    }
    return buf_[pos_++];
  }

  /// Uniform on [0, 1) with 53 random bits: the next two words w1, w2 give
  /// ((w1 >> 5) * 2^26 + (w2 >> 6)) / 2^53 (MT19937's genrand_res53, as Python's random.random()).
  TOPOFR_HD constexpr double uniform() {
    const std::uint64_t hi = next_u32() >> 5, lo = next_u32() >> 6;
    return static_cast<double>((hi << 26) | lo) * (1.0 / 9007199254740992.0);
  }

  /// Uniform on [lo, hi) (lo + (hi - lo) * u, as Python's random.uniform).
  TOPOFR_HD constexpr double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  /// Uniform integer in [0, n), n >= 1: floor(n * u) (bias below 2^-53 * n, irrelevant at image sizes).
  TOPOFR_HD constexpr std::int64_t below(std::int64_t n) {
    const auto k = static_cast<std::int64_t>(static_cast<double>(n) * uniform());
    return k < n ? k : n - 1;  // n * u may round up to n for u just below 1
  }

 private:
  std::uint32_t key_[2];
  std::uint32_t ctr_[4];
  std::uint32_t buf_[4] = {0u, 0u, 0u, 0u};
  int pos_ = 4;
};

}  // namespace topofr
