// CUDA class-sharded head primitives (include/topofr/cuda/shard.cuh). Oracle: the CPU functions
// (include/topofr/shard.hpp, themselves tested against the single-process head in tests/test_shard.cpp) on
// the same inputs, shard by shard, W = 1, 2, 3 (C = 10 and 37: uneven shards), float and double, ArcFace and
// CosFace margins, labels -1 and -100:
//   localize_labels, partial_fc_sample   identical (index, sampled labels, count);
//   combine_shard_stats                  bitwise under the SIMT emulator (the same host exp/log); on a GPU within
//                                        4 ulp-ish (1e-15 relative): CUDA's double exp/log may round differently
//                                        from glibc's in the last bit (cuda/shard.cuh);
//   shard_stats, shard_entropy_eps_partial  within 1e-12 relative: the row sums are reassociated (block reduce).
// The shards are column slices of one device matrix (leading dimension C, rows starting at any element), so
// the kernels' scalar prefix / vector body / scalar tail paths all run. Bad arguments throw the CPU's very
// messages; device-found bad values set the documented status bits.
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <topofr/arcface.hpp>
#include <topofr/shard.hpp>
#include <topofr/cuda/shard.cuh>

using namespace topofr;
using namespace topofr::test;
namespace tc = topofr::cuda;

namespace {

template <class T>
using dvec = topofr::test::device_buffer<T>;
using test_ctx = topofr::test::test_context;

combined_margin arcface() { return combined_margin{}; }
combined_margin cosface() {
  combined_margin m;
  m.m2 = 0.0;
  m.m3 = 0.35;
  return m;
}

/// A cosine batch (n x c, contiguous) with the given global labels; targets spread over both branches of f.
template <class T>
std::vector<T> make_cos(index_t n, index_t c, const std::vector<std::int64_t>& labels, std::uint64_t seed) {
  auto g = normal<double>(static_cast<std::size_t>(n * c), seed, 0.3);
  auto t = uniform<double>(static_cast<std::size_t>(n), seed + 1, -0.99, 0.99);
  std::vector<T> cos(g.size());
  for (std::size_t k = 0; k < g.size(); ++k) cos[k] = static_cast<T>(std::clamp(g[k], -0.999, 0.999));
  for (index_t i = 0; i < n; ++i) {
    const auto yi = labels[static_cast<std::size_t>(i)];
    if (yi >= 0) cos[static_cast<std::size_t>(i * c + yi)] = static_cast<T>(t[static_cast<std::size_t>(i)]);
  }
  if (n > 1 && labels[1] >= 0) cos[static_cast<std::size_t>(c + labels[1])] = static_cast<T>(-0.95);
  return cos;
}

/// n global labels over c classes, with -1 and ignore_label among them.
std::vector<std::int64_t> make_labels(index_t n, index_t c) {
  std::vector<std::int64_t> y(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) y[static_cast<std::size_t>(i)] = (i * 7 + 3) % c;
  if (n > 2) y[2] = -1;
  if (n > 4) y[4] = ignore_label;
  return y;
}

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  static_assert(sizeof(A) == sizeof(B), "same size");
  return std::memcmp(&a, &b, sizeof(A)) == 0;
}

/// |g - w| <= rel max(|w|, floor), or both NaN.
bool near(double g, double w, double rel, double floor = 1e-300) {
  if (std::isnan(w)) return std::isnan(g);
  return std::abs(g - w) <= rel * std::max(std::abs(w), floor);
}

/// The tolerance of combine_shard_stats on this platform: bitwise under the emulator (host libm on both
/// sides), the exp/log rounding differences on a GPU.
constexpr double combine_rel() { return emulated() ? 0.0 : 1e-15; }

/// The message of what call() throws ("" if nothing).
std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const topofr::error& e) {
    return e.what();
  }
  return "";
}

/// The CPU and the CUDA call throw the same message (and do throw).
void same_error(const std::function<void()>& cpu_call, const std::function<void()>& gpu_call, const char* arg) {
  const std::string want = error_of(cpu_call), got = error_of(gpu_call);
  INFO("cpu: " << want << "\ncuda: " << got);
  CHECK(!want.empty());
  CHECK(want.find(arg) != std::string::npos);
  CHECK(got == want);
}

/// The whole pipeline on W ranks, CPU and CUDA side by side, every CUDA result against the CPU's.
template <class T, class L>
void pipeline_parity(index_t n, index_t c, index_t world, const combined_margin& m, std::uint64_t seed) {
  const std::vector<std::int64_t> y64 = make_labels(n, c);
  const std::vector<L> labels(y64.begin(), y64.end());
  const std::vector<T> cos = make_cos<T>(n, c, y64, seed);
  test_ctx t;
  dvec<T> dcos(cos);
  dvec<L> dlabels(labels);
  std::vector<shard_row_stats> stats(static_cast<std::size_t>(world * n));
  dvec<shard_row_stats> dstats(static_cast<std::size_t>(world * n));
  std::vector<std::vector<L>> locals;
  std::vector<class_range> ranges;
  for (index_t r = 0; r < world; ++r) {
    INFO("C = " << c << ", W = " << world << ", rank " << r);
    const class_range cr = shard_range(c, world, r);
    ranges.push_back(cr);
    // localize_labels: identical.
    std::vector<L> local(static_cast<std::size_t>(n));
    localize_labels(cpu, vector_view<const L>(labels.data(), n), cr, c, vector_view<L>(local.data(), n));
    dvec<L> dlocal(static_cast<std::size_t>(n));
    localize_labels(t.ctx, device_vector_view<const L>(dlabels.p, n), cr, c, device_vector_view<L>(dlocal.p, n));
    CHECK(dlocal.get() == local);
    dvec<L> inplace(labels);  // local aliasing labels
    localize_labels(t.ctx, device_vector_view<const L>(inplace.p, n), cr, c, device_vector_view<L>(inplace.p, n));
    CHECK(inplace.get() == local);
    locals.push_back(local);
    // shard_stats on the column slice.
    shard_stats(cpu, matrix_view<const T>(cos.data() + cr.begin, n, cr.size(), c), vector_view<const L>(local.data(), n),
                m, vector_view<shard_row_stats>(stats.data() + r * n, n));
    shard_stats(t.ctx, device_matrix_view<const T>(dcos.p + cr.begin, n, cr.size(), c),
                device_vector_view<const L>(dlocal.p, n), m, device_vector_view<shard_row_stats>(dstats.p + r * n, n));
  }
  CHECK(t.read() == tc::status_ok);
  const std::vector<shard_row_stats> got = dstats.get();
  for (std::size_t k = 0; k < stats.size(); ++k) {
    const shard_row_stats &g = got[k], &w = stats[k];
    INFO("stats " << k << " (rank " << k / static_cast<std::size_t>(n) << "): got " << g.max << " " << g.sum_exp << " "
                  << g.sum_exp_z << " " << g.target << ", want " << w.max << " " << w.sum_exp << " " << w.sum_exp_z
                  << " " << w.target);
    CHECK(near(g.max, w.max, 1e-12));
    CHECK(near(g.sum_exp, w.sum_exp, 1e-12));
    CHECK(near(g.sum_exp_z, w.sum_exp_z, 1e-12));
    CHECK(near(g.target, w.target, 1e-12));
  }
  // combine_shard_stats on the CPU's gathered stats: bitwise (emulator) / exp-log ulps (GPU).
  std::vector<T> lse(static_cast<std::size_t>(n)), loss(lse.size()), pgt(lse.size()), h0(lse.size());
  combine_shard_stats(stats.data(), world, n, vector_view<T>(lse.data(), n), vector_view<T>(loss.data(), n),
                      vector_view<T>(pgt.data(), n), vector_view<T>(h0.data(), n));
  dvec<shard_row_stats> dcpu_stats(stats);
  dvec<T> dlse(static_cast<std::size_t>(n)), dloss(lse.size()), dpgt(lse.size()), dh0(lse.size());
  combine_shard_stats(t.ctx, device_vector_view<const shard_row_stats>(dcpu_stats.p, world * n), world, n,
                      device_vector_view<T>(dlse.p, n), device_vector_view<T>(dloss.p, n),
                      device_vector_view<T>(dpgt.p, n), device_vector_view<T>(dh0.p, n));
  CHECK(t.read() == tc::status_ok);
  const auto glse = dlse.get(), gloss = dloss.get(), gpgt = dpgt.get(), gh0 = dh0.get();
  for (index_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    INFO("combine row " << i << ": lse " << glse[k] << " / " << lse[k] << ", loss " << gloss[k] << " / " << loss[k]
                        << ", p_gt " << gpgt[k] << " / " << pgt[k] << ", entropy " << gh0[k] << " / " << h0[k]);
    if (emulated()) {
      CHECK(same_bits(glse[k], lse[k]));
      CHECK(same_bits(gloss[k], loss[k]));
      CHECK(same_bits(gpgt[k], pgt[k]));
      CHECK(same_bits(gh0[k], h0[k]));
    } else {
      // The double results may differ in the last bits (exp/log); rounded to float, by one float ulp.
      const double fl = std::is_same<T, float>::value ? 2.5e-7 : 0.0;
      CHECK(near(glse[k], lse[k], std::max(fl, combine_rel())));
      CHECK(near(gloss[k], loss[k], std::max(fl, 1e-13), 1.0));  // log S + (M - target): absolute near 0
      CHECK(near(gpgt[k], pgt[k], std::max(fl, 1e-13)));
      CHECK(near(gh0[k], h0[k], std::max(fl, 1e-13), 1.0));
    }
  }
  // ... and on the device's own stats (the all-device pipeline) against the CPU pipeline: 1e-12.
  dvec<T> else_(static_cast<std::size_t>(n)), eh0(lse.size());
  combine_shard_stats(t.ctx, device_vector_view<const shard_row_stats>(dstats.p, world * n), world, n,
                      device_vector_view<T>(else_.p, n), device_vector_view<T>(), device_vector_view<T>(),
                      device_vector_view<T>(eh0.p, n));
  const double rel = std::is_same<T, float>::value ? 1e-6 : 1e-12;
  const auto e1 = else_.get(), e2 = eh0.get();
  for (index_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    CHECK(near(e1[k], lse[k], rel));
    CHECK(near(e2[k], h0[k], rel, 1e-2));
  }
  // shard_entropy_eps_partial with the combined lse, eps = 1e-5 and 0.
  dvec<T> dlse_in(lse);
  for (const double eps : {1e-5, 0.0}) {
    for (index_t r = 0; r < world; ++r) {
      INFO("eps partial: eps = " << eps << ", rank " << r);
      const class_range cr = ranges[static_cast<std::size_t>(r)];
      const auto& local = locals[static_cast<std::size_t>(r)];
      std::vector<double> part(static_cast<std::size_t>(n));
      shard_entropy_eps_partial(cpu, matrix_view<const T>(cos.data() + cr.begin, n, cr.size(), c),
                                vector_view<const L>(local.data(), n), m, vector_view<const T>(lse.data(), n), eps,
                                vector_view<double>(part.data(), n));
      dvec<L> dlocal(local);
      dvec<double> dpart(static_cast<std::size_t>(n));
      shard_entropy_eps_partial(t.ctx, device_matrix_view<const T>(dcos.p + cr.begin, n, cr.size(), c),
                                device_vector_view<const L>(dlocal.p, n), m, device_vector_view<const T>(dlse_in.p, n),
                                eps, device_vector_view<double>(dpart.p, n));
      const auto gp = dpart.get();
      for (index_t i = 0; i < n; ++i) {
        const auto k = static_cast<std::size_t>(i);
        INFO("row " << i << ": got " << gp[k] << ", want " << part[k]);
        CHECK(near(gp[k], part[k], 1e-12));
      }
    }
  }
  CHECK(t.read() == tc::status_ok);
}

/// partial_fc_sample on the CPU and on the device: identical index, sampled labels and count.
template <class L>
void sample_parity(const std::vector<L>& local, class_range sh, index_t num_sample, std::uint64_t seed,
                   std::uint64_t step) {
  const index_t n = static_cast<index_t>(local.size()), c = sh.size();
  INFO("shard [" << sh.begin << ", " << sh.end << "), n = " << n << ", num_sample " << num_sample << ", seed " << seed
                 << ", step " << step);
  std::vector<index_t> index(static_cast<std::size_t>(c));
  std::vector<L> sampled(local.size());
  const index_t count = partial_fc_sample(cpu, vector_view<const L>(local.data(), n), sh, num_sample, seed, step,
                                          vector_view<index_t>(index.data(), c), vector_view<L>(sampled.data(), n));
  test_ctx t;
  dvec<L> dlocal(local), dsampled(local.size());
  dvec<index_t> dindex(static_cast<std::size_t>(c)), dcount(1);
  partial_fc_sample(t.ctx, device_vector_view<const L>(dlocal.p, n), sh, num_sample, seed, step,
                    device_vector_view<index_t>(dindex.p, c), device_vector_view<L>(dsampled.p, n),
                    device_vector_view<index_t>(dcount.p, 1));
  CHECK(t.read() == tc::status_ok);
  CHECK(dcount.get() == std::vector<index_t>{count});
  CHECK(dindex.get() == index);
  CHECK(dsampled.get() == sampled);
  // In place (sampled_labels aliasing local_labels), without the count.
  dvec<L> inplace(local);
  dvec<index_t> dindex2(static_cast<std::size_t>(c));
  partial_fc_sample(t.ctx, device_vector_view<const L>(inplace.p, n), sh, num_sample, seed, step,
                    device_vector_view<index_t>(dindex2.p, c), device_vector_view<L>(inplace.p, n));
  CHECK(dindex2.get() == index);
  CHECK(inplace.get() == sampled);
}

}  // namespace

TEMPLATE_TEST_CASE("cuda sharded head: localize_labels, shard_stats, combine_shard_stats, shard_entropy_eps_partial "
                   "equal the CPU (oracle: CPU shard.hpp; W = 1, 2, 3, C = 10 and 37)",
                   "[cuda][shard]", float, double) {
  using T = TestType;
  for (const index_t c : {10, 37})
    for (const index_t world : {1, 2, 3}) {
      pipeline_parity<T, std::int64_t>(9, c, world, arcface(), 11 + static_cast<std::uint64_t>(c * world));
      pipeline_parity<T, std::int32_t>(7, c, world, cosface(), 5 + static_cast<std::uint64_t>(c + world));
    }
  // A longer row (the vector body of several threads' 16-byte vectors) and a one-class shard.
  pipeline_parity<T, std::int64_t>(5, 3001, 3, arcface(), 3);
  pipeline_parity<T, std::int64_t>(4, 3, 3, arcface(), 4);
}

TEST_CASE("cuda combine_shard_stats: a row on no rank, empty outputs, n = 0", "[cuda][shard]") {
  // Two ranks (rank-major), three rows: the target on rank 0, on rank 1, on none (NaN on both).
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<shard_row_stats> st = {{3.0, 1.5, -0.25, 2.0}, {1.0, 4.0, -1.0, nan}, {0.5, 2.0, -0.5, nan},
                                           {5.0, 1.2, -0.1, nan},  {0.0, 1.0, 0.0, -0.5}, {0.7, 3.0, -2.0, nan}};
  std::vector<double> lse(3), h(3);
  combine_shard_stats(st.data(), 2, 3, vector_view<double>(lse.data(), 3), vector_view<double>(),
                      vector_view<double>(), vector_view<double>(h.data(), 3));
  test_ctx t;
  dvec<shard_row_stats> d(st);
  dvec<double> dlse(3), dh(3);
  combine_shard_stats(t.ctx, device_vector_view<const shard_row_stats>(d.p, 6), 2, 3, device_vector_view<double>(dlse.p, 3),
                      device_vector_view<double>(), device_vector_view<double>(), device_vector_view<double>(dh.p, 3));
  combine_shard_stats(t.ctx, device_vector_view<const shard_row_stats>(nullptr, 0), 2, 0, device_vector_view<double>());
  CHECK(t.read() == tc::status_ok);
  const auto gl = dlse.get(), gh = dh.get();
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(near(gl[k], lse[k], combine_rel()));
    CHECK(near(gh[k], h[k], emulated() ? 0.0 : 1e-13, 1.0));
  }
}

TEST_CASE("cuda partial_fc_sample equals the CPU sample (oracle: CPU shard.hpp; rates 0.1, 0.3, 1)",
          "[cuda][shard]") {
  const index_t classes = 103;
  for (const index_t world : {1, 2, 3}) {
    for (index_t rank = 0; rank < world; ++rank) {
      const class_range sh = shard_range(classes, world, rank);
      for (const double rate : {0.1, 0.3, 1.0}) {
        const index_t num_sample = std::max<index_t>(1, static_cast<index_t>(rate * static_cast<double>(sh.size())));
        for (const std::uint64_t step : {0u, 7u}) {
          std::vector<std::int64_t> global(40), local(40);
          for (index_t i = 0; i < 40; ++i)
            global[static_cast<std::size_t>(i)] = i % 13 == 5 ? ignore_label : (i * 37 + 11) % classes;
          localize_labels(cpu, vector_view<const std::int64_t>(global.data(), 40), sh, classes,
                          vector_view<std::int64_t>(local.data(), 40));
          sample_parity(local, sh, num_sample, 42, step);
          sample_parity(std::vector<std::int32_t>(local.begin(), local.end()), sh, num_sample, 5, step);
        }
      }
    }
  }
  // A larger shard (several blocks of the key and flag kernels) and no labels at all.
  std::vector<std::int64_t> many(300);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = static_cast<std::int64_t>((i * 7919) % 5000);
  many[3] = -1;
  many[9] = ignore_label;
  sample_parity(many, class_range{12000, 17000}, 500, 1234, 99);
  sample_parity(std::vector<std::int64_t>(), class_range{0, 50}, 5, 1, 2);
}

TEST_CASE("cuda partial_fc_sample: more positives than num_sample (the sample is the positives)", "[cuda][shard]") {
  const class_range sh{10, 30};
  const std::vector<std::int32_t> y = {0, 3, 3, 7, 19, -1, -100, 12};
  sample_parity(y, sh, 2, 1, 0);
  test_ctx t;
  dvec<std::int32_t> dy(y), out(y.size());
  dvec<index_t> index(20), count(1);
  partial_fc_sample(t.ctx, device_vector_view<const std::int32_t>(dy.p, 8), sh, 2, 1, 0,
                    device_vector_view<index_t>(index.p, 20), device_vector_view<std::int32_t>(out.p, 8),
                    device_vector_view<index_t>(count.p, 1));
  CHECK(count.get() == std::vector<index_t>{5});
  const auto idx = index.get();
  CHECK(std::vector<index_t>(idx.begin(), idx.begin() + 5) == std::vector<index_t>{0, 3, 7, 12, 19});
  CHECK(out.get() == std::vector<std::int32_t>{0, 1, 1, 2, 4, -1, -100, 3});
}

TEST_CASE("cuda shard functions: bad arguments throw the CPU's messages", "[cuda][shard]") {
  test_ctx t;
  const index_t n = 3, c = 5;
  std::vector<float> cos(static_cast<std::size_t>(n * c), 0.5f);
  std::vector<std::int64_t> y = {0, -1, 4};
  std::vector<shard_row_stats> st(static_cast<std::size_t>(n));
  std::vector<float> lse(static_cast<std::size_t>(n), 1.0f);
  std::vector<double> part(static_cast<std::size_t>(n));
  dvec<float> dcos(cos), dlse(lse);
  dvec<std::int64_t> dy(y);
  dvec<shard_row_stats> dst(st);
  dvec<double> dpart(part);
  const auto hc = [&](index_t rows, index_t cols) { return matrix_view<const float>(cos.data(), rows, cols); };
  const auto dc = [&](index_t rows, index_t cols) { return device_matrix_view<const float>(dcos.p, rows, cols); };
  const auto hy = [&](index_t k) { return vector_view<const std::int64_t>(y.data(), k); };
  const auto dyv = [&](index_t k) { return device_vector_view<const std::int64_t>(dy.p, k); };
  combined_margin bad_s;
  bad_s.s = -1.0;
  // shard_stats
  same_error([&] { shard_stats(cpu, hc(n, c), hy(n), bad_s, vector_view<shard_row_stats>(st.data(), n)); },
             [&] { shard_stats(t.ctx, dc(n, c), dyv(n), bad_s, device_vector_view<shard_row_stats>(dst.p, n)); },
             "margin.s");
  same_error([&] { shard_stats(cpu, hc(n, c), hy(n), arcface(), vector_view<shard_row_stats>(st.data(), n - 1)); },
             [&] { shard_stats(t.ctx, dc(n, c), dyv(n), arcface(), device_vector_view<shard_row_stats>(dst.p, n - 1)); },
             "stats");
  same_error([&] { shard_stats(cpu, hc(n, c), hy(n - 1), arcface(), vector_view<shard_row_stats>(st.data(), n)); },
             [&] { shard_stats(t.ctx, dc(n, c), dyv(n - 1), arcface(), device_vector_view<shard_row_stats>(dst.p, n)); },
             "labels");
  same_error([&] { shard_stats(cpu, hc(n, 0), hy(n), arcface(), vector_view<shard_row_stats>(st.data(), n)); },
             [&] { shard_stats(t.ctx, dc(n, 0), dyv(n), arcface(), device_vector_view<shard_row_stats>(dst.p, n)); },
             "cos");
  // shard_entropy_eps_partial
  same_error(
      [&] {
        shard_entropy_eps_partial(cpu, hc(n, c), hy(n), arcface(), vector_view<const float>(lse.data(), n), -1.0,
                                  vector_view<double>(part.data(), n));
      },
      [&] {
        shard_entropy_eps_partial(t.ctx, dc(n, c), dyv(n), arcface(), device_vector_view<const float>(dlse.p, n), -1.0,
                                  device_vector_view<double>(dpart.p, n));
      },
      "entropy_eps");
  same_error(
      [&] {
        shard_entropy_eps_partial(cpu, hc(n, c), hy(n), arcface(), vector_view<const float>(lse.data(), n - 1), 0.0,
                                  vector_view<double>(part.data(), n));
      },
      [&] {
        shard_entropy_eps_partial(t.ctx, dc(n, c), dyv(n), arcface(), device_vector_view<const float>(dlse.p, n - 1),
                                  0.0, device_vector_view<double>(dpart.p, n));
      },
      "lse_global");
  same_error(
      [&] {
        shard_entropy_eps_partial(cpu, hc(n, c), hy(n), arcface(), vector_view<const float>(lse.data(), n), 0.0,
                                  vector_view<double>(part.data(), 1));
      },
      [&] {
        shard_entropy_eps_partial(t.ctx, dc(n, c), dyv(n), arcface(), device_vector_view<const float>(dlse.p, n), 0.0,
                                  device_vector_view<double>(dpart.p, 1));
      },
      "partial");
  // combine_shard_stats
  std::vector<double> out(static_cast<std::size_t>(n));
  dvec<double> dout(out);
  const auto hs = st.data();
  const device_vector_view<const shard_row_stats> ds(dst.p, n);
  same_error([&] { combine_shard_stats(hs, 0, n, vector_view<double>(out.data(), n)); },
             [&] { combine_shard_stats(t.ctx, ds, 0, n, device_vector_view<double>(dout.p, n)); }, "world");
  same_error([&] { combine_shard_stats(hs, 1, -1, vector_view<double>(out.data(), n)); },
             [&] { combine_shard_stats(t.ctx, ds, 1, -1, device_vector_view<double>(dout.p, n)); }, "n");
  same_error([&] { combine_shard_stats(static_cast<const shard_row_stats*>(nullptr), 1, n, vector_view<double>(out.data(), n)); },
             [&] {
               combine_shard_stats(t.ctx, device_vector_view<const shard_row_stats>(nullptr, n), 1, n,
                                   device_vector_view<double>(dout.p, n));
             },
             "per_rank");
  same_error([&] { combine_shard_stats(hs, 1, n, vector_view<double>(out.data(), n - 1)); },
             [&] { combine_shard_stats(t.ctx, ds, 1, n, device_vector_view<double>(dout.p, n - 1)); }, "lse");
  same_error([&] { combine_shard_stats(hs, 1, n, vector_view<double>(), vector_view<double>(out.data(), 1)); },
             [&] { combine_shard_stats(t.ctx, ds, 1, n, device_vector_view<double>(), device_vector_view<double>(dout.p, 1)); },
             "loss");
  // The device's per_rank size (not a CPU argument): W x n.
  CHECK_THROWS_WITH(combine_shard_stats(t.ctx, ds, 2, n, device_vector_view<double>(dout.p, n)),
                    Catch::Contains("per_rank") && Catch::Contains("expected size 6"));
  // localize_labels
  std::vector<std::int64_t> loc(static_cast<std::size_t>(n));
  dvec<std::int64_t> dloc(loc);
  same_error([&] { localize_labels(cpu, hy(n), class_range{0, 3}, 5, vector_view<std::int64_t>(loc.data(), n - 1)); },
             [&] { localize_labels(t.ctx, dyv(n), class_range{0, 3}, 5, device_vector_view<std::int64_t>(dloc.p, n - 1)); },
             "local");
  same_error([&] { localize_labels(cpu, hy(n), class_range{0, 0}, 0, vector_view<std::int64_t>(loc.data(), n)); },
             [&] { localize_labels(t.ctx, dyv(n), class_range{0, 0}, 0, device_vector_view<std::int64_t>(dloc.p, n)); },
             "classes");
  same_error([&] { localize_labels(cpu, hy(n), class_range{3, 7}, 5, vector_view<std::int64_t>(loc.data(), n)); },
             [&] { localize_labels(t.ctx, dyv(n), class_range{3, 7}, 5, device_vector_view<std::int64_t>(dloc.p, n)); },
             "shard");
  // partial_fc_sample
  std::vector<index_t> idx(20);
  dvec<index_t> didx(idx), dcount(2);
  const class_range sh{10, 30};
  auto cpu_sample = [&](index_t num, class_range s, index_t isize, index_t nsampled) {
    return [&, num, s, isize, nsampled] {
      partial_fc_sample(cpu, hy(n), s, num, 0, 0, vector_view<index_t>(idx.data(), isize),
                        vector_view<std::int64_t>(loc.data(), nsampled));
    };
  };
  auto gpu_sample = [&](index_t num, class_range s, index_t isize, index_t nsampled) {
    return [&, num, s, isize, nsampled] {
      partial_fc_sample(t.ctx, dyv(n), s, num, 0, 0, device_vector_view<index_t>(didx.p, isize),
                        device_vector_view<std::int64_t>(dloc.p, nsampled));
    };
  };
  same_error(cpu_sample(0, sh, 20, n), gpu_sample(0, sh, 20, n), "num_sample");
  same_error(cpu_sample(21, sh, 20, n), gpu_sample(21, sh, 20, n), "num_sample");
  same_error(cpu_sample(2, sh, 19, n), gpu_sample(2, sh, 19, n), "index");
  same_error(cpu_sample(2, sh, 20, n - 1), gpu_sample(2, sh, 20, n - 1), "sampled_labels");
  same_error(cpu_sample(2, class_range{5, 5}, 0, n), gpu_sample(2, class_range{5, 5}, 0, n), "shard");
  CHECK_THROWS_WITH(partial_fc_sample(t.ctx, dyv(n), sh, 2, 0, 0, device_vector_view<index_t>(didx.p, 20),
                                      device_vector_view<std::int64_t>(dloc.p, n), device_vector_view<index_t>(dcount.p, 2)),
                    Catch::Contains("count") && Catch::Contains("expected size 1"));
  CHECK(t.read() == tc::status_ok);  // nothing was enqueued
}

TEST_CASE("cuda shard functions: device-found bad values set the status bits", "[cuda][shard]") {
  const index_t n = 3, c = 6;
  const std::vector<std::int64_t> y = {1, -1, ignore_label};
  std::vector<double> cos = make_cos<double>(n, c, y, 8);
  // A cosine outside [-1, 1]: shard_stats and the eps partial flag status_cos_out_of_range, the row is NaN.
  cos[static_cast<std::size_t>(1 * c + 4)] = 1.5;
  {
    test_ctx t;
    dvec<double> dcos(cos);
    dvec<std::int64_t> dy(y);
    dvec<shard_row_stats> dst(static_cast<std::size_t>(n));
    shard_stats(t.ctx, device_matrix_view<const double>(dcos.p, n, c), device_vector_view<const std::int64_t>(dy.p, n),
                arcface(), device_vector_view<shard_row_stats>(dst.p, n));
    CHECK(t.read() == tc::status_cos_out_of_range);
    CHECK_THROWS_WITH(t.check("shard_stats"), Catch::Contains("cosine outside [-1, 1]"));
    const auto st = dst.get();
    CHECK(std::isnan(st[1].max));
    CHECK(std::isfinite(st[0].max));
    // The CPU throws on the same input.
    std::vector<shard_row_stats> hst(static_cast<std::size_t>(n));
    CHECK_THROWS_WITH(shard_stats(cpu, matrix_view<const double>(cos.data(), n, c), vector_view<const std::int64_t>(y.data(), n),
                                  arcface(), vector_view<shard_row_stats>(hst.data(), n)),
                      Catch::Contains("cos") && Catch::Contains("1.5"));
    t.clear_status();
    dvec<double> dlse(std::vector<double>(static_cast<std::size_t>(n), 70.0)), dpart(static_cast<std::size_t>(n));
    shard_entropy_eps_partial(t.ctx, device_matrix_view<const double>(dcos.p, n, c),
                              device_vector_view<const std::int64_t>(dy.p, n), arcface(),
                              device_vector_view<const double>(dlse.p, n), 1e-5, device_vector_view<double>(dpart.p, n));
    CHECK(t.read() == tc::status_cos_out_of_range);
    CHECK(std::isnan(dpart.get()[1]));
  }
  cos[static_cast<std::size_t>(1 * c + 4)] = 0.5;
  {
    // A non-finite lse_global: status_non_finite.
    test_ctx t;
    dvec<double> dcos(cos);
    dvec<std::int64_t> dy(y);
    dvec<double> dlse(std::vector<double>{70.0, std::numeric_limits<double>::infinity(), 70.0}), dpart(3);
    shard_entropy_eps_partial(t.ctx, device_matrix_view<const double>(dcos.p, n, c),
                              device_vector_view<const std::int64_t>(dy.p, n), arcface(),
                              device_vector_view<const double>(dlse.p, n), 1e-5, device_vector_view<double>(dpart.p, n));
    CHECK(t.read() == tc::status_non_finite);
    // A label outside the shard's classes: status_label_out_of_range (shard_stats, localize_labels, the sample).
    t.clear_status();
    dvec<std::int64_t> bad(std::vector<std::int64_t>{1, 6, -2});
    dvec<shard_row_stats> dst(3);
    shard_stats(t.ctx, device_matrix_view<const double>(dcos.p, n, c), device_vector_view<const std::int64_t>(bad.p, n),
                arcface(), device_vector_view<shard_row_stats>(dst.p, n));
    CHECK(t.read() == tc::status_label_out_of_range);
    CHECK(std::isnan(dst.get()[1].sum_exp));
    t.clear_status();
    dvec<std::int64_t> loc(3);
    localize_labels(t.ctx, device_vector_view<const std::int64_t>(bad.p, n), class_range{0, 3}, 6,
                    device_vector_view<std::int64_t>(loc.p, n));
    CHECK(t.read() == tc::status_label_out_of_range);
    t.clear_status();
    dvec<index_t> idx(6);
    partial_fc_sample(t.ctx, device_vector_view<const std::int64_t>(bad.p, n), class_range{0, 6}, 2, 0, 0,
                      device_vector_view<index_t>(idx.p, 6), device_vector_view<std::int64_t>(loc.p, n));
    CHECK(t.read() == tc::status_label_out_of_range);
  }
  {
    // combine_shard_stats: sum_exp < 1 -> status_non_finite; a target on two ranks -> status_label_out_of_range.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    test_ctx t;
    dvec<shard_row_stats> bad_sum(std::vector<shard_row_stats>{{1.0, 0.5, 0.0, nan}});
    dvec<double> lse(1);
    combine_shard_stats(t.ctx, device_vector_view<const shard_row_stats>(bad_sum.p, 1), 1, 1,
                        device_vector_view<double>(lse.p, 1));
    CHECK(t.read() == tc::status_non_finite);
    CHECK(std::isnan(lse.get()[0]));
    t.clear_status();
    dvec<shard_row_stats> two(std::vector<shard_row_stats>{{1.0, 1.5, -0.1, 1.0}, {2.0, 1.5, -0.1, 2.0}});
    combine_shard_stats(t.ctx, device_vector_view<const shard_row_stats>(two.p, 2), 2, 1,
                        device_vector_view<double>(lse.p, 1));
    CHECK(t.read() == tc::status_label_out_of_range);
  }
}
