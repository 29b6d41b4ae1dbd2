// The class-sharded head (topofr/shard.hpp) at TopoFR's shape, N = 128 rows against C = 85,742 classes
// (float), one rank's work for W = 1, 2, 4 ranks: shard_stats over its C/W columns, the combine of the W
// ranks' statistics, and margin_ce_backward on its columns with the combined lse. The anchors in the same
// binary: the unsharded fused head (margin_ce_forward + margin_ce_backward over all C columns) and one read +
// write of the rank's columns. Run with
//   --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <topofr/arcface.hpp>
#include <topofr/shard.hpp>

namespace {

using namespace topofr;

constexpr index_t n = 128, c = 85742;

struct data {
  std::vector<float> cos, grad, loss, entropy, pgt, lse, w;
  std::vector<std::int64_t> labels;
  combined_margin m;
  data() : cos(n * c), grad(n * c), loss(n), entropy(n), pgt(n), lse(n), w(n, 1.f), labels(n) {
    std::mt19937_64 g(1);
    std::normal_distribution<float> nd(0.f, 0.1f);
    std::uniform_real_distribution<float> u(0.2f, 0.8f);
    std::uniform_int_distribution<std::int64_t> cls(0, c - 1);
    for (auto& v : cos) v = std::clamp(nd(g), -1.f, 1.f);
    for (index_t i = 0; i < n; ++i) labels[i] = cls(g), cos[i * c + labels[i]] = u(g);
  }
};

data& shared() {
  static data d;
  return d;
}

/// The batch's labels as the shard r sees them (localize_labels).
std::vector<std::int64_t> localized(const data& d, class_range r) {
  std::vector<std::int64_t> local(n);
  localize_labels(cpu, vector_view<const std::int64_t>(d.labels.data(), n), r, c,
                  vector_view<std::int64_t>(local.data(), n));
  return local;
}

// Rank 0's part of a W-rank head, every rank's statistics computed here so that the combine sees real ones.
void BM_sharded_rank0(benchmark::State& st) {
  data& d = shared();
  const index_t world = st.range(0);
  const class_range r0 = shard_range(c, world, 0);
  const std::vector<std::int64_t> local = localized(d, r0);
  std::vector<shard_row_stats> stats(static_cast<std::size_t>(world * n));
  for (index_t r = 0; r < world; ++r) {  // the other ranks' statistics (not timed)
    const class_range cr = shard_range(c, world, r);
    const std::vector<std::int64_t> lr = localized(d, cr);
    shard_stats(cpu, matrix_view<const float>(d.cos.data() + cr.begin, n, cr.size(), c),
                vector_view<const std::int64_t>(lr.data(), n), d.m,
                vector_view<shard_row_stats>(stats.data() + r * n, n));
  }
  const matrix_view<const float> mine(d.cos.data() + r0.begin, n, r0.size(), c);
  for (auto _ : st) {
    shard_stats(cpu, mine, vector_view<const std::int64_t>(local.data(), n), d.m,
                vector_view<shard_row_stats>(stats.data(), n));
    combine_shard_stats(stats.data(), world, n, vector_view<float>(d.lse.data(), n),
                        vector_view<float>(d.loss.data(), n), vector_view<float>(d.pgt.data(), n),
                        vector_view<float>(d.entropy.data(), n));
    margin_ce_backward(cpu, mine, vector_view<const std::int64_t>(local.data(), n), d.m,
                       vector_view<const float>(d.lse.data(), n), vector_view<const float>(d.w.data(), n), 1.0 / n,
                       matrix_view<float>(d.grad.data() + r0.begin, n, r0.size(), c));
    benchmark::DoNotOptimize(d.grad.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n * r0.size());
}

// shard_stats alone, rank 0 of W.
void BM_shard_stats(benchmark::State& st) {
  data& d = shared();
  const index_t world = st.range(0);
  const class_range r0 = shard_range(c, world, 0);
  const std::vector<std::int64_t> local = localized(d, r0);
  std::vector<shard_row_stats> stats(n);
  for (auto _ : st) {
    shard_stats(cpu, matrix_view<const float>(d.cos.data() + r0.begin, n, r0.size(), c),
                vector_view<const std::int64_t>(local.data(), n), d.m, vector_view<shard_row_stats>(stats.data(), n));
    benchmark::DoNotOptimize(stats.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n * r0.size());
}

// The released code's eps = 1e-5 entropy on rank 0 of W: its partial sums, given the global lse.
void BM_entropy_eps_partial(benchmark::State& st) {
  data& d = shared();
  const index_t world = st.range(0);
  const class_range r0 = shard_range(c, world, 0);
  const std::vector<std::int64_t> local = localized(d, r0);
  margin_ce_forward(cpu, matrix_view<const float>(d.cos.data(), n, c), vector_view<const std::int64_t>(d.labels.data(), n),
                    d.m, 0.0, vector_view<float>(d.loss.data(), n), {}, {}, vector_view<float>(d.lse.data(), n));
  std::vector<double> partial(n);
  for (auto _ : st) {
    shard_entropy_eps_partial(cpu, matrix_view<const float>(d.cos.data() + r0.begin, n, r0.size(), c),
                              vector_view<const std::int64_t>(local.data(), n), d.m,
                              vector_view<const float>(d.lse.data(), n), 1e-5, vector_view<double>(partial.data(), n));
    benchmark::DoNotOptimize(partial.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n * r0.size());
}

// Anchor: the unsharded fused head, forward (eps = 0, the exact entropy the combine gives) + backward.
void BM_fused_head(benchmark::State& st) {
  data& d = shared();
  for (auto _ : st) {
    margin_ce_forward(cpu, matrix_view<const float>(d.cos.data(), n, c), vector_view<const std::int64_t>(d.labels.data(), n),
                      d.m, 0.0, vector_view<float>(d.loss.data(), n), vector_view<float>(d.entropy.data(), n),
                      vector_view<float>(d.pgt.data(), n), vector_view<float>(d.lse.data(), n));
    margin_ce_backward(cpu, matrix_view<const float>(d.cos.data(), n, c), vector_view<const std::int64_t>(d.labels.data(), n),
                       d.m, vector_view<const float>(d.lse.data(), n), vector_view<const float>(d.w.data(), n), 1.0 / n,
                       matrix_view<float>(d.grad.data(), n, c));
    benchmark::DoNotOptimize(d.grad.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n * c);
}

// Anchor: read + write rank 0's columns once, row-parallel.
void BM_read_write(benchmark::State& st) {
  data& d = shared();
  const class_range r0 = shard_range(c, st.range(0), 0);
  const float* src = d.cos.data();
  float* dst = d.grad.data();
  for (auto _ : st) {
#pragma omp parallel for schedule(static)
    for (index_t i = 0; i < n; ++i)
      for (index_t j = r0.begin; j < r0.end; ++j) dst[i * c + j] = 0.5f * src[i * c + j];
    benchmark::DoNotOptimize(dst);
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * n * r0.size());
}

}  // namespace

BENCHMARK(BM_sharded_rank0)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_shard_stats)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_entropy_eps_partial)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_fused_head)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_read_write)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
