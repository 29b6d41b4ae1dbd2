// GPU benchmarks of the TopoFR head blocks (include/topofr/cuda/{arcface,gum,isa,rsp,objective}.cuh) at
// the paper's sizes: N = 128, C = 85,742 classes, 512-d embeddings, 3 x 112 x 112 images.
// Timing: cudaEvents around each iteration (UseManualTime). Roofline baselines in the same binary:
// device-to-device cudaMemcpyAsync moving the same bytes (read + write) as the kernel it stands beside.
// Head bytes (SetBytesProcessed) are the HBM floor of the call, so that bytes/s reads against the copy's:
// forward = the cosines read once (= BM_copy_read_once), backward and forward + backward = the cosines read
// once + the gradient written once (= BM_copy_read_write; 87.8 MB at N = 128, C = 85,742, float). The head
// may move more (the backward re-reads the cosines, the eps > 0 forward sweeps each row twice): those
// re-reads are meant to hit L2 (docs/cuda.md), and the ratio to the copy shows how far they do. The /cold
// variant evicts L2 before each timed call (a 128 MiB memset, outside the timed region).
// Run: cuda_bench_head --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <thrust/device_vector.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include <topofr/topofr.cuh>

using namespace topofr;
namespace tc = topofr::cuda;

namespace {

constexpr index_t kN = 128, kC = 85742, kD = 512, kImg = 3 * 112 * 112;
constexpr std::size_t kFlushBytes = std::size_t(128) << 20;

void ck(cudaError_t e) { tc::check_cuda(e, "bench"); }

template <class T>
thrust::device_vector<T> device_random(std::size_t n, double lo, double hi, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<T> h(n);
  for (auto& v : h) v = static_cast<T>(u(g));
  return thrust::device_vector<T>(h.begin(), h.end());
}

template <class T>
T* raw(thrust::device_vector<T>& v) { return thrust::raw_pointer_cast(v.data()); }

/// Shared device state (allocated once; thrust::device_vector owns every buffer).
struct state_t {
  tc::stream_context sc;
  tc::context& ctx = sc.ctx;
  thrust::device_vector<float> cos_b = device_random<float>(static_cast<std::size_t>(kN * kC), -0.3, 0.3, 1),
                               grad_b = thrust::device_vector<float>(static_cast<std::size_t>(kN * kC)),
                               loss_b = thrust::device_vector<float>(kN), ent_b = thrust::device_vector<float>(kN),
                               pgt_b = thrust::device_vector<float>(kN), lse_b = thrust::device_vector<float>(kN),
                               w_b = device_random<float>(kN, 1.0, 2.0, 2),
                               x_b = device_random<float>(static_cast<std::size_t>(kN * kImg), -1.0, 1.0, 3),
                               z_b = device_random<float>(static_cast<std::size_t>(kN * kD), -1.0, 1.0, 4),
                               gz_b = thrust::device_vector<float>(static_cast<std::size_t>(kN * kD)),
                               img_b = device_random<float>(static_cast<std::size_t>(kN * kImg), -1.0, 1.0, 5),
                               scalar_b = thrust::device_vector<float>(16);
  thrust::device_vector<unsigned char> flush_b = thrust::device_vector<unsigned char>(kFlushBytes);
  thrust::device_vector<std::int32_t> labels_b = make_labels();
  float *cos = raw(cos_b), *grad = raw(grad_b), *loss = raw(loss_b), *ent = raw(ent_b), *pgt = raw(pgt_b),
        *lse = raw(lse_b), *w = raw(w_b), *x = raw(x_b), *z = raw(z_b), *gz = raw(gz_b), *img = raw(img_b),
        *scalar = raw(scalar_b);
  void* flush = raw(flush_b);  // 128 MiB, more than any current L2
  std::int32_t* labels = raw(labels_b);

  static thrust::device_vector<std::int32_t> make_labels() {
    std::vector<std::int32_t> y(kN);
    for (index_t i = 0; i < kN; ++i) y[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 977) % kC);
    return thrust::device_vector<std::int32_t>(y.begin(), y.end());
  }
};
state_t& S() {
  static state_t s;
  return s;
}

/// Times f() per iteration with events; before() runs first, outside the timed region.
template <class F, class P = void (*)()>
void timed(benchmark::State& st, F&& f, P before = [] {}) {
  state_t& s = S();
  cudaEvent_t a, b;
  ck(cudaEventCreate(&a));
  ck(cudaEventCreate(&b));
  f();  // warm-up (also first-touch of the allocator's pool)
  ck(cudaStreamSynchronize(s.ctx.stream));
  for (auto _ : st) {
    before();
    ck(cudaEventRecord(a, s.ctx.stream));
    f();
    ck(cudaEventRecord(b, s.ctx.stream));
    ck(cudaEventSynchronize(b));
    float ms = 0;
    ck(cudaEventElapsedTime(&ms, a, b));
    st.SetIterationTime(ms * 1e-3);
  }
  ck(cudaEventDestroy(a));
  ck(cudaEventDestroy(b));
  if (tc::read_status(s.ctx) != tc::status_ok) st.SkipWithError("device status set");
}

const std::size_t kCosBytes = static_cast<std::size_t>(kN * kC) * sizeof(float);
device_matrix_view<const float> cosv() { return {S().cos, kN, kC}; }
device_vector_view<const std::int32_t> labv() { return {S().labels, kN}; }

// Baselines: a copy of B bytes moves 2B (read + write).
void BM_copy_read_once(benchmark::State& st) {  // = forward's floor: the cosines read once
  timed(st, [] { ck(cudaMemcpyAsync(S().grad, S().cos, kCosBytes / 2, cudaMemcpyDeviceToDevice, S().ctx.stream)); });
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kCosBytes));
}
void BM_copy_read_write(benchmark::State& st) {  // = backward's and forward + backward's floor
  timed(st, [] { ck(cudaMemcpyAsync(S().grad, S().cos, kCosBytes, cudaMemcpyDeviceToDevice, S().ctx.stream)); });
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 2 * kCosBytes));
}

void forward(double eps) {
  state_t& s = S();
  margin_ce_forward(s.ctx, cosv(), labv(), combined_margin{}, eps, device_vector_view<float>(s.loss, kN),
                    device_vector_view<float>(s.ent, kN), device_vector_view<float>(s.pgt, kN), device_vector_view<float>(s.lse, kN));
}
void backward() {
  state_t& s = S();
  margin_ce_backward(s.ctx, cosv(), labv(), combined_margin{}, device_vector_view<const float>(s.lse, kN),
                     device_vector_view<const float>(s.w, kN), 1.0 / kN, device_matrix_view<float>(s.grad, kN, kC));
}

void evict_l2() { ck(cudaMemsetAsync(S().flush, 0, kFlushBytes, S().ctx.stream)); }

void BM_head_forward(benchmark::State& st) {  // arg: 0 -> eps = 0 (one read), 1 -> eps = 1e-5 (+ L2 sweep)
  const double eps = st.range(0) ? 1e-5 : 0.0;
  timed(st, [eps] { forward(eps); });
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kCosBytes));  // floor: read once
}
// Alone, after the previous iteration's backward: the cosines are as warm in L2 as after a forward.
void BM_head_backward(benchmark::State& st) {
  forward(1e-5);
  timed(st, [] { backward(); });
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 2 * kCosBytes));  // read + write
}
// The target: eps = 1e-5 (TopoFR's) forward then backward, <= 1.5x the HBM floor of 2 x kCosBytes.
// args: eps (0: 0, 1: 1e-5), cold (1: L2 evicted before each call).
void BM_head_forward_backward(benchmark::State& st) {
  const double eps = st.range(0) ? 1e-5 : 0.0;
  const auto fb = [eps] {
    forward(eps);
    backward();
  };
  if (st.range(1))
    timed(st, fb, evict_l2);
  else
    timed(st, fb);
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 2 * kCosBytes));  // floor: read + write
}

void BM_gum(benchmark::State& st) {
  state_t& s = S();
  forward(1e-5);
  gum_result* r = reinterpret_cast<gum_result*>(s.scalar);
  timed(st, [&] { gum_fit(s.ctx, device_vector_view<const float>(s.ent, kN), device_vector_view<float>(s.pgt, kN), gum_options{}, r); });
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * kN));
}

void BM_isa_step(benchmark::State& st) {  // distances, pairs, loss, grad_z: n = 128, 512-d, 3x112x112
  state_t& s = S();
  isa_options o;
  o.x_scale = image_scale(3, 112, 112);
  timed(st, [&] {
    isa_loss_from_points(s.ctx, device_matrix_view<const float>(s.x, kN, kImg), device_matrix_view<const float>(s.z, kN, kD), o,
                         device_vector_view<float>(s.scalar, 1), device_matrix_view<float>(s.gz, kN, kD));
  });
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kN * (kImg + kD) * sizeof(float)));
}

void BM_objective(benchmark::State& st) {  // the whole 128-image step
  state_t& s = S();
  objective_options opt;
  opt.isa.x_scale = image_scale(3, 112, 112);
  tc::objective<float> f(opt);
  auto* r = reinterpret_cast<objective_result<float>*>(s.scalar);
  timed(st, [&] {
    f(s.ctx, device_matrix_view<const float>(s.x, kN, kImg), device_matrix_view<const float>(s.z, kN, kD), cosv(), labv(),
      device_matrix_view<float>(s.gz, kN, kD), device_matrix_view<float>(s.grad, kN, kC), r);
  });
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * kN));
}

void BM_rsp(benchmark::State& st) {
  state_t& s = S();
  rsp_options o;
  std::uint64_t step = 0;
  timed(st, [&] {
    o.step = step++;
    rsp_perturb(s.ctx, device_image_batch_view<float>(s.img, kN, 3, 112, 112), o);
  });
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * kN * kImg * sizeof(float)));
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * kN));
}

}  // namespace

BENCHMARK(BM_copy_read_once)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_copy_read_write)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_head_forward)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_head_backward)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_head_forward_backward)
    ->ArgNames({"eps", "cold"})
    ->Args({1, 0})
    ->Args({0, 0})
    ->Args({1, 1})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_gum)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_isa_step)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_objective)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_rsp)->UseManualTime()->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: nothing to benchmark\n");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
