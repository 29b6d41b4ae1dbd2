// Self-test of the SIMT emulator (tests/emu): every primitive against an expectation computed here
// independently (CUDA's documented semantics written out as plain loops, known bit patterns), launch
// validation, and the error detection (deadlocks, divergent collectives, exited lanes, TempStorage reuse,
// escaping exceptions) in child processes that must abort with the right message.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math_constants.h>
#include <mma.h>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/warp/warp_reduce.cuh>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

template <class T>
struct dbuf {  // device memory (host memory under the emulator), zeroed
  T* p = nullptr;
  std::size_t n;
  explicit dbuf(std::size_t n_) : n(n_) {
    REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess);
    REQUIRE(cudaMemset(p, 0, n * sizeof(T)) == cudaSuccess);
  }
  explicit dbuf(const std::vector<T>& v) : dbuf(v.size()) {
    REQUIRE(cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~dbuf() { cudaFree(p); }
  dbuf(const dbuf&) = delete;
  dbuf& operator=(const dbuf&) = delete;
  std::vector<T> get() const {
    std::vector<T> h(n);
    REQUIRE(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return h;
  }
};

/// Runs f in a child process (stdout and stderr captured); returns (terminating signal or 0, output).
template <class F>
std::pair<int, std::string> in_child(F f) {
  int fd[2];
  REQUIRE(pipe(fd) == 0);
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    signal(SIGABRT, SIG_DFL);  // not Catch2's fatal-condition handler
    dup2(fd[1], 1);
    dup2(fd[1], 2);
    close(fd[0]);
    f();
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(0);
  }
  close(fd[1]);
  std::string out;
  char buf[4096];
  ssize_t k;
  while ((k = read(fd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(k));
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFSIGNALED(status) ? WTERMSIG(status) : 0, out};
}

#define CHECK_ABORTS(body, text)                              \
  do {                                                        \
    const auto r_ = in_child([&] { body; });                  \
    INFO("child output:\n" << r_.second);                     \
    CHECK(r_.first == SIGABRT);                               \
    CHECK(r_.second.find(text) != std::string::npos);         \
  } while (0)

struct schedule_guard {  // restores the order (SIMT_SCHEDULE's) after a test that changes it
  std::string saved = simt::schedule();
  ~schedule_guard() { simt::set_schedule(saved.c_str()); }
};

// ---------------------------------------------------------------------------------------------------
// Indices and grid-stride loops over a 3-d grid.
__global__ void index_kernel(int nx, int ny, int nz, int* visits, unsigned* who) {
  const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  for (int z = blockIdx.z * blockDim.z + threadIdx.z; z < nz; z += gridDim.z * blockDim.z)
    for (int y = blockIdx.y * blockDim.y + threadIdx.y; y < ny; y += gridDim.y * blockDim.y)
      for (int x = blockIdx.x * blockDim.x + threadIdx.x; x < nx; x += gridDim.x * blockDim.x) {
        const int i = (z * ny + y) * nx + x;
        visits[i] += 1;
        who[i] = bid * 1024 + tid;
      }
}

TEST_CASE("simt: threadIdx/blockIdx/blockDim/gridDim, grid-stride loops over a 3-d grid") {
  const int nx = 37, ny = 11, nz = 5;
  dbuf<int> visits(nx * ny * nz);
  dbuf<unsigned> who(nx * ny * nz);
  const dim3 grid(3, 2, 2), block(8, 4, 2);
  REQUIRE(simt::launch(index_kernel, grid, block, 0, nullptr, nx, ny, nz, visits.p, who.p) == cudaSuccess);
  const auto v = visits.get();
  const auto w = who.get();
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) {
        const int i = (z * ny + y) * nx + x;
        INFO("x " << x << " y " << y << " z " << z);
        REQUIRE(v[i] == 1);
        // The owner: block (x / 8 % 3, y / 4 % 2, z / 2 % 2), thread (x % 8, y % 4, z % 2).
        const unsigned bid = (x / 8 % 3) + 3 * ((y / 4 % 2) + 2 * (z / 2 % 2));
        const unsigned tid = (x % 8) + 8 * ((y % 4) + 4 * (z % 2));
        REQUIRE(w[i] == bid * 1024 + tid);
      }
}

// ---------------------------------------------------------------------------------------------------
// Shuffles: every variant, several widths, 4- and 8-byte types, a partial mask.
template <class T>
T lane_value(unsigned warp, unsigned lane) {
  if (sizeof(T) == 8) return static_cast<T>((static_cast<unsigned long long>(warp + 1) << 40) | (lane * 3 + 1));
  return static_cast<T>(warp * 1000 + lane * 3 + 1);
}

constexpr int n_shfl = 12;  // results per lane

template <class T>
__global__ void shfl_kernel(T* out) {
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const T v = lane_value<T>(warp, lane);
  T* o = out + threadIdx.x * n_shfl;
  o[0] = __shfl_sync(0xffffffffu, v, static_cast<int>((lane * 7 + 3) % 32));
  o[1] = __shfl_sync(0xffffffffu, v, 5, 8);
  o[2] = __shfl_sync(0xffffffffu, v, 37);  // srcLane modulo width
  o[3] = __shfl_up_sync(0xffffffffu, v, 3);
  o[4] = __shfl_up_sync(0xffffffffu, v, 3, 8);
  o[5] = __shfl_down_sync(0xffffffffu, v, 5);
  o[6] = __shfl_down_sync(0xffffffffu, v, 5, 16);
  o[7] = __shfl_xor_sync(0xffffffffu, v, 1);
  o[8] = __shfl_xor_sync(0xffffffffu, v, 16);
  o[9] = __shfl_xor_sync(0xffffffffu, v, 12, 8);  // 12 reaches beyond the 8-lane segment for some lanes
  o[10] = __shfl_down_sync(0xffffffffu, v, 0);
  if (lane < 16) o[11] = __shfl_down_sync(0x0000ffffu, v, 2, 16);  // lanes 16..31 do not take part
}

template <class T>
void check_shuffles() {
  const int threads = 64;
  dbuf<T> out(threads * n_shfl);
  REQUIRE(simt::launch(shfl_kernel<T>, 1, threads, 0, nullptr, out.p) == cudaSuccess);
  const auto o = out.get();
  for (unsigned t = 0; t < threads; ++t) {
    const unsigned lane = t % 32, warp = t / 32;
    auto val = [&](unsigned l) { return lane_value<T>(warp, l); };
    // CUDA's documented rules: idx reads (src % width) within the lane's segment; up keeps its own value
    // below the segment start, down above the segment end; xor reads lane ^ m unless that lies in a
    // later segment.
    auto seg = [&](unsigned w) { return lane / w * w; };
    const T want[n_shfl] = {
        val((lane * 7 + 3) % 32),
        val(seg(8) + 5),
        val(5),
        lane >= 3 ? val(lane - 3) : val(lane),
        lane % 8 >= 3 ? val(lane - 3) : val(lane),
        lane + 5 < 32 ? val(lane + 5) : val(lane),
        lane % 16 + 5 < 16 ? val(lane + 5) : val(lane),
        val(lane ^ 1),
        val(lane ^ 16),
        (lane ^ 12) < seg(8) + 8 ? val(lane ^ 12) : val(lane),
        val(lane),
        lane < 16 ? (lane + 2 < 16 ? val(lane + 2) : val(lane)) : T(0),
    };
    for (int k = 0; k < n_shfl; ++k) {
      INFO("thread " << t << ", result " << k);
      CHECK(o[t * n_shfl + k] == want[k]);
    }
  }
}

TEST_CASE("simt: __shfl_sync / _up / _down / _xor, widths, int unsigned long long ull float double") {
  check_shuffles<int>();
  check_shuffles<unsigned>();
  check_shuffles<long long>();
  check_shuffles<unsigned long long>();
  check_shuffles<float>();
  check_shuffles<double>();
}

__global__ void shfl_outside_mask_kernel(int* out) {
  // Lanes 0..15 shuffle among themselves; lane 12 reads lane 20 (not in the mask): undefined -> poison.
  const unsigned lane = threadIdx.x;
  if (lane < 16) out[lane] = __shfl_down_sync(0x0000ffffu, static_cast<int>(lane), 8);
}

TEST_CASE("simt: a shuffle reading a lane outside the mask returns poison (undefined on the device)") {
  dbuf<int> out(32);
  REQUIRE(simt::launch(shfl_outside_mask_kernel, 1, 32, 0, nullptr, out.p) == cudaSuccess);
  const auto o = out.get();
  for (int l = 0; l < 8; ++l) CHECK(o[l] == l + 8);
  int poison;
  std::memset(&poison, simt::poison(), sizeof poison);
  for (int l = 8; l < 16; ++l) CHECK(o[l] == poison);
}

// ---------------------------------------------------------------------------------------------------
// Votes, warp reductions, match.
__global__ void vote_kernel(unsigned* out) {
  const unsigned lane = threadIdx.x % 32;
  unsigned* o = out + threadIdx.x * 8;
  o[0] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  o[1] = __any_sync(0xffffffffu, lane == 17);
  o[2] = __any_sync(0xffffffffu, 0);
  o[3] = __all_sync(0xffffffffu, lane < 32);
  o[4] = __all_sync(0xffffffffu, lane != 5);
  o[5] = __activemask();
  if (lane % 2 == 0) o[6] = __ballot_sync(0x55555555u, lane % 4 == 0);
  else o[6] = __all_sync(0xaaaaaaaau, lane > 0);
  o[7] = __match_any_sync(0xffffffffu, static_cast<int>(lane % 4));
}

TEST_CASE("simt: __ballot_sync / __any_sync / __all_sync / __activemask / __match_any_sync") {
  dbuf<unsigned> out(64 * 8);
  REQUIRE(simt::launch(vote_kernel, 1, 64, 0, nullptr, out.p) == cudaSuccess);
  const auto o = out.get();
  unsigned every3 = 0, every4 = 0;
  for (unsigned l = 0; l < 32; ++l) {
    if (l % 3 == 0) every3 |= 1u << l;
    if (l % 4 == 0) every4 |= 1u << l;
  }
  for (unsigned t = 0; t < 64; ++t) {
    INFO("thread " << t);
    const unsigned* r = &o[t * 8];
    CHECK(r[0] == every3);
    CHECK(r[1] == 1u);
    CHECK(r[2] == 0u);
    CHECK(r[3] == 1u);
    CHECK(r[4] == 0u);
    CHECK(r[5] == 0xffffffffu);
    CHECK(r[6] == (t % 2 == 0 ? every4 : 1u));
    CHECK(r[7] == (0x11111111u << (t % 4)));
  }
}

__global__ void reduce_kernel(const int* in, int* out) {
  const unsigned lane = threadIdx.x % 32;
  const int v = in[threadIdx.x];
  int* o = out + threadIdx.x * 9;
  o[0] = __reduce_add_sync(0xffffffffu, v);
  o[1] = static_cast<int>(__reduce_add_sync(0xffffffffu, static_cast<unsigned>(v)));
  o[2] = __reduce_min_sync(0xffffffffu, v);
  o[3] = __reduce_max_sync(0xffffffffu, v);
  o[4] = static_cast<int>(__reduce_min_sync(0xffffffffu, static_cast<unsigned>(v)));
  o[5] = static_cast<int>(__reduce_max_sync(0xffffffffu, static_cast<unsigned>(v)));
  o[6] = static_cast<int>(__reduce_and_sync(0xffffffffu, static_cast<unsigned>(v)));
  o[7] = static_cast<int>(__reduce_or_sync(0xffffffffu, static_cast<unsigned>(v)));
  o[8] = lane < 8 ? static_cast<int>(__reduce_xor_sync(0x000000ffu, static_cast<unsigned>(v))) : 0;
}

TEST_CASE("simt: __reduce_{add,min,max,and,or,xor}_sync, signed and unsigned") {
  std::vector<int> in(64);
  std::mt19937 g(3);
  for (auto& x : in) x = static_cast<int>(g() % 2001) - 1000;
  in[7] = std::numeric_limits<int>::min();
  dbuf<int> din(in), out(64 * 9);
  REQUIRE(simt::launch(reduce_kernel, 1, 64, 0, nullptr, din.p, out.p) == cudaSuccess);
  const auto o = out.get();
  for (int w = 0; w < 2; ++w) {
    unsigned sum = 0, band = ~0u, bor = 0, bxor = 0, umin = ~0u, umax = 0;
    int smin = std::numeric_limits<int>::max(), smax = std::numeric_limits<int>::min();
    for (int l = 0; l < 32; ++l) {
      const int v = in[w * 32 + l];
      const unsigned u = static_cast<unsigned>(v);
      sum += u, band &= u, bor |= u;
      if (l < 8) bxor ^= u;
      smin = std::min(smin, v), smax = std::max(smax, v), umin = std::min(umin, u), umax = std::max(umax, u);
    }
    for (int l = 0; l < 32; ++l) {
      const int* r = &o[(w * 32 + l) * 9];
      INFO("warp " << w << " lane " << l);
      CHECK(r[0] == static_cast<int>(sum));
      CHECK(r[1] == static_cast<int>(sum));
      CHECK(r[2] == smin);
      CHECK(r[3] == smax);
      CHECK(static_cast<unsigned>(r[4]) == umin);
      CHECK(static_cast<unsigned>(r[5]) == umax);
      CHECK(static_cast<unsigned>(r[6]) == band);
      CHECK(static_cast<unsigned>(r[7]) == bor);
      CHECK(static_cast<unsigned>(r[8]) == (l < 8 ? bxor : 0u));
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Block barriers and shared memory.
__global__ void barrier_kernel(int* out, int rounds) {
  __shared__ int sh[256];
  const int tid = threadIdx.x, n = blockDim.x;
  int acc = 0;
  for (int r = 0; r < rounds; ++r) {
    sh[tid] = tid * 3 + r + static_cast<int>(blockIdx.x);
    __syncthreads();
    acc += sh[(tid + 1 + r) % n];  // a neighbour's value: needs the barrier
    __syncthreads();               // before the next round overwrites sh
  }
  out[blockIdx.x * n * 5 + tid * 5 + 0] = acc;
  out[blockIdx.x * n * 5 + tid * 5 + 1] = __syncthreads_count(tid % 5 == 0);
  out[blockIdx.x * n * 5 + tid * 5 + 2] = __syncthreads_and(tid >= 0);
  out[blockIdx.x * n * 5 + tid * 5 + 3] = __syncthreads_and(tid != 77);
  out[blockIdx.x * n * 5 + tid * 5 + 4] = __syncthreads_or(tid == 200);
}

std::vector<int> barrier_expect(int blocks, int n, int rounds) {
  std::vector<int> e(static_cast<std::size_t>(blocks * n * 5));
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < n; ++t) {
      int acc = 0;
      for (int r = 0; r < rounds; ++r) acc += ((t + 1 + r) % n) * 3 + r + b;
      int* o = &e[static_cast<std::size_t>(b * n * 5 + t * 5)];
      o[0] = acc, o[1] = (n + 4) / 5, o[2] = 1, o[3] = n > 77 ? 0 : 1, o[4] = n > 200 ? 1 : 0;
    }
  return e;
}

TEST_CASE("simt: __syncthreads with shared-memory exchange, _count/_and/_or, in every schedule order") {
  schedule_guard guard;
  for (const char* order : {"forward", "reverse", "random:7", "random:12345"}) {
    INFO("schedule " << order);
    REQUIRE(simt::set_schedule(order));
    dbuf<int> out(3 * 256 * 5);
    REQUIRE(simt::launch(barrier_kernel, 3, 256, 0, nullptr, out.p, 5) == cudaSuccess);
    CHECK(out.get() == barrier_expect(3, 256, 5));
  }
  CHECK_FALSE(simt::set_schedule("sideways"));
}

__global__ void race_kernel(int* out) {
  __shared__ int last;
  last = static_cast<int>(threadIdx.x);  // every thread writes, no barrier: the last writer wins
  __syncthreads();
  out[threadIdx.x] = last;
}

TEST_CASE("simt: the schedule order decides a race (forward: last thread wins, reverse: thread 0)") {
  schedule_guard guard;
  dbuf<int> out(64);
  REQUIRE(simt::set_schedule("forward"));
  REQUIRE(simt::launch(race_kernel, 1, 64, 0, nullptr, out.p) == cudaSuccess);
  CHECK(out.get() == std::vector<int>(64, 63));
  REQUIRE(simt::set_schedule("reverse"));
  REQUIRE(simt::launch(race_kernel, 1, 64, 0, nullptr, out.p) == cudaSuccess);
  CHECK(out.get() == std::vector<int>(64, 0));
}

/// Per-warp partials with ONE barrier per step: correct only double-buffered (a warp that runs ahead
/// writes step t + 1's partial while a lagging warp still reads step t's).
template <bool Double>
__global__ void buffer_race_kernel(int steps, int* out) {
  __shared__ int red[2 * 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  int acc = 0;
  for (int t = 0; t < steps; ++t) {
    const int v = __shfl_sync(0xffffffffu, warp * 1000 + t, 0);  // a warp-level sync point
    const int buf = Double ? (t & 1) * 32 : 0;
    if (lane == 0) red[buf + warp] = v;
    __syncthreads();
    for (int w = 0; w < nw; ++w) acc += red[buf + w];
  }
  out[threadIdx.x] = acc;
}

TEST_CASE("simt: random order runs warps one at a time to the barrier, exposing a single-buffer race") {
  schedule_guard guard;
  const int steps = 20, threads = 256, nw = threads / 32;
  int want = 0;
  for (int t = 0; t < steps; ++t)
    for (int w = 0; w < nw; ++w) want += w * 1000 + t;
  dbuf<int> out(threads);
  auto correct = [&](void (*k)(int, int*)) {
    REQUIRE(simt::launch(k, 1, threads, 0, nullptr, steps, out.p) == cudaSuccess);
    return out.get() == std::vector<int>(threads, want);
  };
  int caught = 0;
  for (const char* order : {"forward", "reverse", "random:1", "random:2", "random:3", "random:4"}) {
    INFO("schedule " << order);
    REQUIRE(simt::set_schedule(order));
    CHECK(correct(buffer_race_kernel<true>));
    const bool ok = correct(buffer_race_kernel<false>);
    if (order[0] != 'r' || order[1] != 'a') CHECK(ok);  // round by round, every warp reads before any writes
    else caught += !ok;
  }
  CHECK(caught > 0);
}

__global__ void dynamic_smem_kernel(unsigned char* first, int n) {
  unsigned char* s = static_cast<unsigned char*>(simt::dynamic_shared_memory());
  if (threadIdx.x == 0) {
    first[blockIdx.x * 2] = s[0];
    first[blockIdx.x * 2 + 1] = s[n - 1];
    first[64 + blockIdx.x] = reinterpret_cast<std::uintptr_t>(s) % 16 == 0;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = 0x11;  // the next block must see poison again
}

TEST_CASE("simt: dynamic shared memory is 16-byte aligned and poisoned at the start of every block") {
  dbuf<unsigned char> first(128);
  REQUIRE(simt::launch(dynamic_smem_kernel, 4, 64, 1000, nullptr, first.p, 1000) == cudaSuccess);
  const auto f = first.get();
  for (int b = 0; b < 4; ++b) {
    CHECK(f[b * 2] == simt::poison());
    CHECK(f[b * 2 + 1] == simt::poison());
    CHECK(f[64 + b] == 1);
  }
}

__global__ void spin_kernel(int* out) {
  __shared__ volatile int flag;
  if (threadIdx.x == 0) flag = 0;
  __syncthreads();
  if (threadIdx.x == 0) {
    flag = 1;
  } else {
    while (flag == 0) __nanosleep(10);  // thread 0 may run after this one: the wait must yield
  }
  out[threadIdx.x] = flag;
}

TEST_CASE("simt: __nanosleep yields, so a spin-wait on another thread of the block ends") {
  schedule_guard guard;
  REQUIRE(simt::set_schedule("reverse"));  // thread 0 runs last
  dbuf<int> out(32);
  REQUIRE(simt::launch(spin_kernel, 1, 32, 0, nullptr, out.p) == cudaSuccess);
  CHECK(out.get() == std::vector<int>(32, 1));
}

// ---------------------------------------------------------------------------------------------------
// CUB collectives.
struct pair_sum {
  double a, b;
};
struct pair_add {
  pair_sum operator()(const pair_sum& x, const pair_sum& y) const { return {x.a + y.a, x.b + y.b}; }
};
struct dmax {
  double operator()(double a, double b) const { return a > b ? a : b; }
};

__global__ void block_reduce_kernel(const double* in, double* out, int valid) {
  using R = cub::BlockReduce<double, 128>;
  using P = cub::BlockReduce<pair_sum, 128>;
  __shared__ union {
    typename R::TempStorage r;
    typename P::TempStorage p;
  } tmp;
  const int t = threadIdx.x;
  const double v = in[blockIdx.x * 128 + t];
  const double s = R(tmp.r).Sum(v);
  __syncthreads();
  const double m = R(tmp.r).Reduce(v, dmax());
  __syncthreads();
  const double sv = R(tmp.r).Sum(v, valid);
  __syncthreads();
  const pair_sum p = P(tmp.p).Reduce(pair_sum{v, 2 * v}, pair_add());
  double items[3] = {v, 1.0, -v};
  __syncthreads();
  const double si = R(tmp.r).Sum(items);
  if (t == 0) {
    double* o = out + blockIdx.x * 6;
    o[0] = s, o[1] = m, o[2] = sv, o[3] = p.a, o[4] = p.b, o[5] = si;
  } else if (s != v) {
    out[100] = 1;  // threads other than 0 get their own input back
  }
}

TEST_CASE("simt: cub::BlockReduce Sum / Reduce / num_valid / items / struct type == sequential sums") {
  std::vector<double> in(2 * 128);
  std::mt19937_64 g(5);
  std::normal_distribution<double> d;
  for (auto& x : in) x = d(g);
  dbuf<double> din(in), out(101);
  const int valid = 77;
  REQUIRE(simt::launch(block_reduce_kernel, 2, 128, 0, nullptr, din.p, out.p, valid) == cudaSuccess);
  const auto o = out.get();
  for (int b = 0; b < 2; ++b) {
    double s = in[b * 128], m = in[b * 128], sv = in[b * 128], s2 = 2 * in[b * 128];
    double si = in[b * 128] + 1.0 - in[b * 128];
    for (int t = 1; t < 128; ++t) {
      const double v = in[b * 128 + t];
      s += v, s2 += 2 * v, m = std::max(m, v), si += v + 1.0 - v;
      if (t < valid) sv += v;
    }
    CHECK(o[b * 6 + 0] == s);  // bit for bit: the same left-to-right order
    CHECK(o[b * 6 + 1] == m);
    CHECK(o[b * 6 + 2] == sv);
    CHECK(o[b * 6 + 3] == s);
    CHECK(o[b * 6 + 4] == s2);
    CHECK(o[b * 6 + 5] == si);
  }
  CHECK(o[100] == 0.0);
}

__global__ void warp_reduce_kernel(const int* in, int* out) {
  using W = cub::WarpReduce<int>;
  using W8 = cub::WarpReduce<int, 8>;
  __shared__ typename W::TempStorage tmp[4];
  __shared__ typename W8::TempStorage tmp8[16];
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  const int v = in[t];
  const int s = W(tmp[warp]).Sum(v);
  const int m = W(tmp[warp]).Reduce(v, cub::Max());
  const int sv = W(tmp[warp]).Sum(v, 10);
  const int s8 = W8(tmp8[t / 8]).Sum(v);
  out[t * 4 + 0] = lane == 0 ? s : -1;
  out[t * 4 + 1] = lane == 0 ? m : -1;
  out[t * 4 + 2] = lane == 0 ? sv : -1;
  out[t * 4 + 3] = t % 8 == 0 ? s8 : -1;
}

TEST_CASE("simt: cub::WarpReduce (32 and 8 logical lanes, valid_items) == sequential sums in lane 0") {
  std::vector<int> in(128);
  for (int i = 0; i < 128; ++i) in[i] = (i * 37) % 101 - 50;
  dbuf<int> din(in), out(128 * 4);
  REQUIRE(simt::launch(warp_reduce_kernel, 1, 128, 0, nullptr, din.p, out.p) == cudaSuccess);
  const auto o = out.get();
  for (int w = 0; w < 4; ++w) {
    int s = 0, m = std::numeric_limits<int>::min(), sv = 0;
    for (int l = 0; l < 32; ++l) {
      s += in[w * 32 + l], m = std::max(m, in[w * 32 + l]);
      if (l < 10) sv += in[w * 32 + l];
    }
    CHECK(o[w * 32 * 4 + 0] == s);
    CHECK(o[w * 32 * 4 + 1] == m);
    CHECK(o[w * 32 * 4 + 2] == sv);
  }
  for (int g8 = 0; g8 < 16; ++g8) {
    int s = 0;
    for (int l = 0; l < 8; ++l) s += in[g8 * 8 + l];
    CHECK(o[g8 * 8 * 4 + 3] == s);
  }
}

__global__ void block_scan_kernel(const int* in, int* out) {
  using S = cub::BlockScan<int, 64>;
  __shared__ typename S::TempStorage tmp;
  const int t = threadIdx.x;
  int ex, inc, agg, ex2, inc2;
  S(tmp).ExclusiveSum(in[t], ex);
  __syncthreads();
  S(tmp).InclusiveSum(in[t], inc, agg);
  __syncthreads();
  S(tmp).ExclusiveScan(in[t], ex2, 1000, cub::Max());
  __syncthreads();
  S(tmp).InclusiveScan(in[t], inc2, cub::Min());
  out[t * 5 + 0] = ex, out[t * 5 + 1] = inc, out[t * 5 + 2] = agg, out[t * 5 + 3] = ex2, out[t * 5 + 4] = inc2;
}

TEST_CASE("simt: cub::BlockScan exclusive/inclusive sums with aggregate, scans with an operator") {
  std::vector<int> in(64);
  for (int i = 0; i < 64; ++i) in[i] = (i * 53) % 41 - 7 + (i == 30 ? 2000 : 0);
  dbuf<int> din(in), out(64 * 5);
  REQUIRE(simt::launch(block_scan_kernel, 1, 64, 0, nullptr, din.p, out.p) == cudaSuccess);
  const auto o = out.get();
  int run = 0, total = 0, mx = 1000, mn = std::numeric_limits<int>::max();
  for (int x : in) total += x;
  for (int t = 0; t < 64; ++t) {
    INFO("thread " << t);
    CHECK(o[t * 5 + 0] == run);
    run += in[t];
    CHECK(o[t * 5 + 1] == run);
    CHECK(o[t * 5 + 2] == total);
    CHECK(o[t * 5 + 3] == mx);
    mx = std::max(mx, in[t]);
    mn = std::min(mn, in[t]);
    CHECK(o[t * 5 + 4] == mn);
  }
}

// ---------------------------------------------------------------------------------------------------
// wmma double m8n8k4.
template <class LA, class LB>
__global__ void wmma_kernel(const double* a, const double* b, const double* c, double* d, unsigned lda,
                            unsigned ldb, unsigned ldc, bool c_col, bool d_col) {
  using namespace nvcuda;
  wmma::fragment<wmma::matrix_a, 8, 8, 4, double, LA> fa;
  wmma::fragment<wmma::matrix_b, 8, 8, 4, double, LB> fb;
  wmma::fragment<wmma::accumulator, 8, 8, 4, double> fc;
  wmma::load_matrix_sync(fa, a, lda);
  wmma::load_matrix_sync(fb, b, ldb);
  wmma::load_matrix_sync(fc, c, ldc, c_col ? wmma::mem_col_major : wmma::mem_row_major);
  wmma::mma_sync(fc, fa, fb, fc);  // d aliasing c
  wmma::store_matrix_sync(d, fc, ldc, d_col ? wmma::mem_col_major : wmma::mem_row_major);
}

__global__ void fragment_layout_kernel(double* out) {
  using namespace nvcuda;
  wmma::fragment<wmma::accumulator, 8, 8, 4, double> f;
  wmma::fill_fragment(f, 0.0);
  f.x[0] = threadIdx.x * 2, f.x[1] = threadIdx.x * 2 + 1;
  wmma::store_matrix_sync(out, f, 8, wmma::mem_row_major);
}

TEST_CASE("simt: wmma double m8n8k4 (all layouts) == brute-force 8x8x4 product with fma in k order") {
  std::mt19937_64 g(11);
  std::normal_distribution<double> nd;
  const unsigned ld = 10;  // padded: multiple of 2 doubles
  std::vector<double> A(8 * ld), B(8 * ld), C(8 * ld);
  for (auto* v : {&A, &B, &C})
    for (auto& x : *v) x = nd(g);
  auto at = [&](const std::vector<double>& m, bool col, int r, int c) {
    return col ? m[static_cast<std::size_t>(c) * ld + r] : m[static_cast<std::size_t>(r) * ld + c];
  };
  dbuf<double> da(A), db(B), dc(C), dd(8 * ld);
  for (int combo = 0; combo < 16; ++combo) {
    const bool acol = combo & 1, bcol = combo & 2, ccol = combo & 4, dcol = combo & 8;
    INFO("A col " << acol << ", B col " << bcol << ", C col " << ccol << ", D col " << dcol);
    cudaError_t e;
    if (!acol && !bcol) e = simt::launch(wmma_kernel<nvcuda::wmma::row_major, nvcuda::wmma::row_major>, 1, 32, 0, nullptr, da.p, db.p, dc.p, dd.p, ld, ld, ld, ccol, dcol);
    else if (acol && !bcol) e = simt::launch(wmma_kernel<nvcuda::wmma::col_major, nvcuda::wmma::row_major>, 1, 32, 0, nullptr, da.p, db.p, dc.p, dd.p, ld, ld, ld, ccol, dcol);
    else if (!acol) e = simt::launch(wmma_kernel<nvcuda::wmma::row_major, nvcuda::wmma::col_major>, 1, 32, 0, nullptr, da.p, db.p, dc.p, dd.p, ld, ld, ld, ccol, dcol);
    else e = simt::launch(wmma_kernel<nvcuda::wmma::col_major, nvcuda::wmma::col_major>, 1, 32, 0, nullptr, da.p, db.p, dc.p, dd.p, ld, ld, ld, ccol, dcol);
    REQUIRE(e == cudaSuccess);
    const auto D = dd.get();
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 8; ++j) {
        double want = at(C, ccol, i, j);
        for (int k = 0; k < 4; ++k) want = std::fma(at(A, acol, i, k), at(B, bcol, k, j), want);
        CHECK(at(D, dcol, i, j) == want);
      }
  }
  // The documented per-lane layout: lane l holds C[l / 4][2 (l % 4) + {0, 1}].
  dbuf<double> lay(64);
  REQUIRE(simt::launch(fragment_layout_kernel, 1, 32, 0, nullptr, lay.p) == cudaSuccess);
  const auto L = lay.get();
  for (int l = 0; l < 32; ++l) {
    CHECK(L[(l / 4) * 8 + 2 * (l % 4)] == 2 * l);
    CHECK(L[(l / 4) * 8 + 2 * (l % 4) + 1] == 2 * l + 1);
  }
}

// ---------------------------------------------------------------------------------------------------
// Atomics.
struct atomic_cells {
  int add_i;
  unsigned add_u;
  unsigned long long add_ull;
  float add_f;
  double add_d;
  int min_i, max_i;
  unsigned min_u, max_u;
  long long min_ll, max_ll;
  unsigned long long min_ull, max_ull;
  int cas_sum;
  unsigned inc, dec;
  unsigned or_u, and_u, xor_u;
  unsigned long long or_ull;
  int exch_count;
  unsigned short cas16;
};

__global__ void atomic_kernel(atomic_cells* c) {
  const int g = blockIdx.x * blockDim.x + threadIdx.x;  // 0 .. 1023
  atomicAdd(&c->add_i, g - 500);
  atomicAdd(&c->add_u, 3u);
  atomicAdd(&c->add_ull, 1ull << 33);
  atomicAdd(&c->add_f, 0.5f);
  atomicAdd(&c->add_d, 0.25);
  atomicMin(&c->min_i, 700 - g);
  atomicMax(&c->max_i, g - 700);
  atomicMin(&c->min_u, static_cast<unsigned>(g + 5));
  atomicMax(&c->max_u, static_cast<unsigned>(g + 5));
  atomicMin(&c->min_ll, -static_cast<long long>(g) * 10000000000ll);
  atomicMax(&c->max_ll, static_cast<long long>(g) * 10000000000ll);
  atomicMin(&c->min_ull, 5000000000ull + static_cast<unsigned long long>(g));
  atomicMax(&c->max_ull, 5000000000ull + static_cast<unsigned long long>(g));
  int old = c->cas_sum, assumed;
  do {  // an add written as a CAS loop
    assumed = old;
    old = atomicCAS(&c->cas_sum, assumed, assumed + g);
  } while (old != assumed);
  atomicInc(&c->inc, 99u);   // counts 0..99 then wraps to 0
  atomicDec(&c->dec, 999u);  // from 0 wraps to 999, then counts down
  atomicOr(&c->or_u, 1u << (g % 32));
  atomicAnd(&c->and_u, ~(1u << (g % 31)));
  atomicXor(&c->xor_u, static_cast<unsigned>(g));
  atomicOr(&c->or_ull, 1ull << (g % 64));
  if (atomicExch(&c->exch_count, g) >= 0) atomicAdd(&c->add_i, 0);
  atomicCAS(&c->cas16, static_cast<unsigned short>(g), static_cast<unsigned short>(g + 1));
}

TEST_CASE("simt: atomics (add, min/max, CAS loops, inc/dec wrap, and/or/xor, exch) on 1024 threads") {
  schedule_guard guard;
  REQUIRE(simt::set_schedule("forward"));
  atomic_cells init{};
  init.min_i = std::numeric_limits<int>::max(), init.max_i = std::numeric_limits<int>::min();
  init.min_u = ~0u, init.max_u = 0, init.min_ll = std::numeric_limits<long long>::max();
  init.max_ll = std::numeric_limits<long long>::min(), init.min_ull = ~0ull, init.max_ull = 0;
  init.and_u = ~0u;
  dbuf<atomic_cells> c(std::vector<atomic_cells>{init});
  REQUIRE(simt::launch(atomic_kernel, 4, 256, 0, nullptr, c.p) == cudaSuccess);
  const atomic_cells r = c.get()[0];
  const int n = 1024;
  CHECK(r.add_i == n * (n - 1) / 2 - 500 * n);
  CHECK(r.add_u == 3u * n);
  CHECK(r.add_ull == (1ull << 33) * n);
  CHECK(r.add_f == 0.5f * n);
  CHECK(r.add_d == 0.25 * n);
  CHECK(r.min_i == 700 - (n - 1));
  CHECK(r.max_i == (n - 1) - 700);
  CHECK(r.min_u == 5u);
  CHECK(r.max_u == static_cast<unsigned>(n - 1 + 5));
  CHECK(r.min_ll == -static_cast<long long>(n - 1) * 10000000000ll);
  CHECK(r.max_ll == static_cast<long long>(n - 1) * 10000000000ll);
  CHECK(r.min_ull == 5000000000ull);
  CHECK(r.max_ull == 5000000000ull + n - 1);
  CHECK(r.cas_sum == n * (n - 1) / 2);
  CHECK(r.inc == static_cast<unsigned>(n % 100));
  // dec: 0 -> 999 (wrap), then 1023 more decrements: 999 - 1023 < 0 wraps once more at 0 -> 999.
  unsigned dec = 0;
  for (int i = 0; i < n; ++i) dec = (dec == 0 || dec > 999u) ? 999u : dec - 1;
  CHECK(r.dec == dec);
  CHECK(r.or_u == 0xffffffffu);
  CHECK(r.and_u == 0x80000000u);
  unsigned x = 0;
  for (int i = 0; i < n; ++i) x ^= static_cast<unsigned>(i);
  CHECK(r.xor_u == x);
  CHECK(r.or_ull == ~0ull);
  CHECK(r.cas16 == n);  // forward order: thread g finds g and stores g + 1
}

// ---------------------------------------------------------------------------------------------------
// Launch validation and the runtime API.
__global__ void smem_kernel(int* out) {
  int* s = static_cast<int*>(simt::dynamic_shared_memory());
  s[threadIdx.x] = static_cast<int>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}
__global__ void noop_kernel() {}

TEST_CASE("simt: launch limits as CUDA (smem > 48 KiB needs the attribute; block and grid bounds)") {
  dbuf<int> out(64);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(simt::launch(smem_kernel, 1, 64, 49152, nullptr, out.p) == cudaSuccess);
  CHECK(simt::launch(smem_kernel, 1, 64, 49153, nullptr, out.p) == cudaErrorInvalidValue);
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);
  cudaFuncAttributes fa{};
  REQUIRE(cudaFuncGetAttributes(&fa, smem_kernel) == cudaSuccess);
  CHECK(fa.maxDynamicSharedSizeBytes == 49152);
  CHECK(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 232449) == cudaErrorInvalidValue);
  REQUIRE(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100000) == cudaSuccess);
  REQUIRE(cudaFuncGetAttributes(&fa, smem_kernel) == cudaSuccess);
  CHECK(fa.maxDynamicSharedSizeBytes == 100000);
  CHECK(fa.sharedSizeBytes == 0);
  CHECK(simt::launch(smem_kernel, 1, 64, 100000, nullptr, out.p) == cudaSuccess);
  std::vector<int> want(64);
  for (int i = 0; i < 64; ++i) want[i] = (i + 1) % 64;
  CHECK(out.get() == want);
  CHECK(simt::launch(smem_kernel, 1, 64, 100001, nullptr, out.p) == cudaErrorInvalidValue);
  CHECK(simt::launch(noop_kernel, 1, 1025, 0, nullptr) == cudaErrorInvalidConfiguration);
  CHECK(simt::launch(noop_kernel, 1, dim3(32, 32, 2), 0, nullptr) == cudaErrorInvalidConfiguration);
  CHECK(simt::launch(noop_kernel, 1, dim3(1, 1, 65), 0, nullptr) == cudaErrorInvalidConfiguration);
  CHECK(simt::launch(noop_kernel, 1, dim3(0, 1, 1), 0, nullptr) == cudaErrorInvalidConfiguration);
  CHECK(simt::launch(noop_kernel, dim3(0), 32, 0, nullptr) == cudaErrorInvalidConfiguration);
  CHECK(simt::launch(noop_kernel, dim3(1, 65536), 32, 0, nullptr) == cudaErrorInvalidConfiguration);
  CHECK(simt::launch(noop_kernel, dim3(1, 1, 65536), 32, 0, nullptr) == cudaErrorInvalidConfiguration);
  CHECK(simt::launch(noop_kernel, dim3(1, 65535, 1), 1, 0, nullptr) == cudaSuccess);
  CHECK(simt::launch(noop_kernel, 1, 32, 0, reinterpret_cast<cudaStream_t>(0x1234)) == cudaErrorInvalidResourceHandle);
  CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle);
  CHECK(std::string(cudaGetErrorString(cudaErrorInvalidConfiguration)) == "invalid configuration argument");
  CHECK(std::string(cudaGetErrorName(cudaErrorInvalidValue)) == "cudaErrorInvalidValue");
}

TEST_CASE("simt: H100-like device, streams, events, pools, 2-d copies and sets") {
  int dev = -1, v = 0, count = 0;
  REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
  CHECK(count == 1);
  REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
  CHECK(dev == 0);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  cudaGetLastError();
  const std::pair<cudaDeviceAttr, int> attrs[] = {
      {cudaDevAttrMultiProcessorCount, 132},        {cudaDevAttrMaxThreadsPerBlock, 1024},
      {cudaDevAttrMaxSharedMemoryPerBlock, 49152},  {cudaDevAttrMaxSharedMemoryPerBlockOptin, 232448},
      {cudaDevAttrMaxSharedMemoryPerMultiprocessor, 233472}, {cudaDevAttrMaxRegistersPerBlock, 65536},
      {cudaDevAttrWarpSize, 32},                    {cudaDevAttrComputeCapabilityMajor, 9},
      {cudaDevAttrComputeCapabilityMinor, 0},       {cudaDevAttrL2CacheSize, 50 * 1024 * 1024},
      {cudaDevAttrMaxGridDimX, 2147483647},         {cudaDevAttrMaxGridDimY, 65535}};
  for (auto [a, want] : attrs) {
    REQUIRE(cudaDeviceGetAttribute(&v, a, 0) == cudaSuccess);
    CHECK(v == want);
  }
  cudaDeviceProp p;
  REQUIRE(cudaGetDeviceProperties(&p, 0) == cudaSuccess);
  CHECK(p.multiProcessorCount == 132);
  CHECK(p.sharedMemPerBlockOptin == 232448u);
  CHECK(p.warpSize == 32);
  CHECK(p.major == 9);

  cudaStream_t s;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  cudaEvent_t e0, e1, nt;
  REQUIRE(cudaEventCreate(&e0) == cudaSuccess);
  REQUIRE(cudaEventCreate(&e1) == cudaSuccess);
  REQUIRE(cudaEventCreateWithFlags(&nt, cudaEventDisableTiming) == cudaSuccess);
  REQUIRE(cudaEventRecord(e0, s) == cudaSuccess);
  // 2-d copy and set of a 3 x 5 window in 8-wide rows.
  std::vector<unsigned char> h(8 * 4, 7), back(8 * 4, 0);
  void* d = nullptr;
  REQUIRE(cudaMallocAsync(&d, 8 * 4, s) == cudaSuccess);
  REQUIRE(cudaMemcpyAsync(d, h.data(), h.size(), cudaMemcpyHostToDevice, s) == cudaSuccess);
  REQUIRE(cudaMemset2DAsync(d, 8, 0, 5, 3, s) == cudaSuccess);
  REQUIRE(cudaMemcpy2DAsync(back.data(), 8, d, 8, 8, 4, cudaMemcpyDeviceToHost, s) == cudaSuccess);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 8; ++c) CHECK(back[r * 8 + c] == (r < 3 && c < 5 ? 0 : 7));
  CHECK(cudaMemcpy2D(back.data(), 4, d, 8, 5, 2, cudaMemcpyDeviceToHost) == cudaErrorInvalidPitchValue);
  CHECK(cudaMemcpy(back.data(), d, 4, static_cast<cudaMemcpyKind>(9)) == cudaErrorInvalidMemcpyDirection);
  cudaGetLastError();
  REQUIRE(cudaEventRecord(e1, s) == cudaSuccess);
  REQUIRE(cudaStreamWaitEvent(s, e1, 0) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  CHECK(cudaStreamQuery(s) == cudaSuccess);
  float ms = -1;
  REQUIRE(cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess);
  CHECK(ms >= 0.0f);
  CHECK(cudaEventElapsedTime(&ms, e0, nt) == cudaErrorInvalidResourceHandle);
  cudaGetLastError();

  // Pools: usage is tracked, the release threshold remembered.
  cudaMemPool_t def, pool;
  REQUIRE(cudaDeviceGetDefaultMemPool(&def, 0) == cudaSuccess);
  unsigned long long used = 0, thr = 12345;
  REQUIRE(cudaMemPoolGetAttribute(def, cudaMemPoolAttrUsedMemCurrent, &used) == cudaSuccess);
  CHECK(used == 32u);  // d
  REQUIRE(cudaMemPoolSetAttribute(def, cudaMemPoolAttrReleaseThreshold, &thr) == cudaSuccess);
  thr = 0;
  REQUIRE(cudaMemPoolGetAttribute(def, cudaMemPoolAttrReleaseThreshold, &thr) == cudaSuccess);
  CHECK(thr == 12345u);
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = 0;
  REQUIRE(cudaMemPoolCreate(&pool, &props) == cudaSuccess);
  void* q = nullptr;
  REQUIRE(cudaMallocFromPoolAsync(&q, 1000, pool, s) == cudaSuccess);
  REQUIRE(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &used) == cudaSuccess);
  CHECK(used == 1000u);
  REQUIRE(cudaFreeAsync(q, s) == cudaSuccess);
  REQUIRE(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used) == cudaSuccess);
  CHECK(used == 0u);
  REQUIRE(cudaMemPoolDestroy(pool) == cudaSuccess);
  CHECK(cudaMemPoolDestroy(def) == cudaErrorInvalidValue);
  cudaGetLastError();
  REQUIRE(cudaFreeAsync(d, s) == cudaSuccess);
  CHECK(cudaFree(reinterpret_cast<void*>(0x1000)) == cudaErrorInvalidValue);
  cudaGetLastError();
  REQUIRE(cudaEventDestroy(e0) == cudaSuccess);
  REQUIRE(cudaEventDestroy(e1) == cudaSuccess);
  REQUIRE(cudaEventDestroy(nt) == cudaSuccess);
  REQUIRE(cudaStreamDestroy(s) == cudaSuccess);
  CHECK(cudaStreamSynchronize(s) == cudaErrorInvalidResourceHandle);
  cudaGetLastError();
}

TEST_CASE("simt: cudaMalloc memory is poisoned until written") {
  unsigned char* p = nullptr;
  REQUIRE(cudaMalloc(&p, 16) == cudaSuccess);
  std::vector<unsigned char> h(16);
  REQUIRE(cudaMemcpy(h.data(), p, 16, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(h == std::vector<unsigned char>(16, simt::poison()));
  REQUIRE(cudaFree(p) == cudaSuccess);
}

// ---------------------------------------------------------------------------------------------------
// Intrinsics, constants, half and bfloat16.
TEST_CASE("simt: bit and math intrinsics as on the device") {
  CHECK(__popc(0xf0f0f0f0u) == 16);
  CHECK(__popcll(~0ull) == 64);
  CHECK(__clz(0) == 32);
  CHECK(__clz(1) == 31);
  CHECK(__clz(-1) == 0);
  CHECK(__clzll(0) == 64);
  CHECK(__clzll(1ll << 40) == 23);
  CHECK(__ffs(0) == 0);
  CHECK(__ffs(8) == 4);
  CHECK(__ffsll(1ll << 40) == 41);
  CHECK(__brev(1u) == 0x80000000u);
  CHECK(__brev(0x12345678u) == 0x1e6a2c48u);
  CHECK(__brevll(1ull) == 0x8000000000000000ull);
  CHECK(__float_as_uint(1.0f) == 0x3f800000u);
  CHECK(__float_as_int(-2.0f) == static_cast<int>(0xc0000000u));
  CHECK(__uint_as_float(0x40490fdbu) == 3.14159274101257324f);
  CHECK(__int_as_float(0x3f000000) == 0.5f);
  CHECK(__double_as_longlong(1.0) == 0x3ff0000000000000ll);
  CHECK(__longlong_as_double(0x4000000000000000ll) == 2.0);
  CHECK(__double2hiint(1.0) == 0x3ff00000);
  CHECK(__double2loint(__longlong_as_double(0x00000000deadbeefll)) == static_cast<int>(0xdeadbeefu));
  CHECK(__hiloint2double(0x3ff00000, 0) == 1.0);
  CHECK(__saturatef(1.5f) == 1.0f);
  CHECK(__saturatef(-0.5f) == 0.0f);
  CHECK(__saturatef(std::nanf("")) == 0.0f);
  CHECK(__saturatef(0.25f) == 0.25f);
  CHECK(rsqrt(4.0) == 0.5);
  CHECK(rsqrtf(16.0f) == 0.25f);
  CHECK(__fmaf_rn(0.1f, 10.0f, -1.0f) == std::fma(0.1f, 10.0f, -1.0f));
  CHECK(__fma_rn(0.1, 10.0, -1.0) == std::fma(0.1, 10.0, -1.0));
  CHECK(__fdividef(1.0f, 4.0f) == 0.25f);
  CHECK(__expf(0.0f) == 1.0f);
  CHECK(__logf(1.0f) == 0.0f);
  CHECK(__float2int_rn(2.5f) == 2);  // ties to even
  CHECK(__float2int_rn(3.5f) == 4);
  CHECK(__float2int_rz(-2.7f) == -2);
  CHECK(__float2int_rn(1e20f) == std::numeric_limits<int>::max());  // saturates
  CHECK(__float2int_rn(std::nanf("")) == 0);
  CHECK(min(3, -4) == -4);
  CHECK(max(3u, 7u) == 7u);
  CHECK(min(-1ll, 5ll) == -1ll);
  CHECK(max(2.0f, 3.0f) == 3.0f);
  CHECK(min(2.0, 3.0) == 2.0);
  CHECK(__mulhi(0x40000000, 8) == 2);
  CHECK(__umul64hi(1ull << 63, 4ull) == 2ull);
}

TEST_CASE("simt: math_constants.h values and bit patterns") {
  CHECK(std::isinf(CUDART_INF));
  CHECK(CUDART_INF > 0);
  CHECK(std::isinf(CUDART_INF_F));
  CHECK(std::isnan(CUDART_NAN));
  CHECK(static_cast<unsigned long long>(__double_as_longlong(CUDART_NAN)) == 0xfff8000000000000ull);
  CHECK(std::isnan(CUDART_NAN_F));
  CHECK(__float_as_uint(CUDART_NAN_F) == 0x7fffffffu);
  CHECK(CUDART_PI == 3.14159265358979323846);
  CHECK(CUDART_PI_F == 3.14159265358979323846f);
  CHECK(CUDART_SQRT_2PI == 2.50662827463100050241576528481104525);  // correctly rounded sqrt(2 pi)
  CHECK(CUDART_LN2 == std::log(2.0));
  CHECK(CUDART_MAX_NORMAL_F == std::numeric_limits<float>::max());
  CHECK(CUDART_MIN_DENORM == std::numeric_limits<double>::denorm_min());
}

namespace {
float f_bits(std::uint32_t b) { return simt::detail::bit_cast<float>(b); }
double d_bits(std::uint64_t b) { return simt::detail::bit_cast<double>(b); }
}  // namespace

TEST_CASE("simt: __half conversions, round to nearest even, bit-exact (known patterns)") {
  const std::pair<float, unsigned short> cases[] = {
      {1.0f, 0x3c00},
      {1.0f / 3.0f, 0x3555},
      {-2.0f, 0xc000},
      {65504.0f, 0x7bff},                  // largest half
      {65519.99f, 0x7bff},                 // below the midpoint to 65536
      {65520.0f, 0x7c00},                  // the midpoint rounds to even = infinity
      {1e6f, 0x7c00},
      {-1e6f, 0xfc00},
      {f_bits(0x7f800000u), 0x7c00},
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {5.9604644775390625e-8f, 0x0001},    // 2^-24: smallest subnormal
      {2.98023223876953125e-8f, 0x0000},   // 2^-25: tie between 0 and 2^-24 -> even (0)
      {4.470348358154296875e-8f, 0x0001},  // 1.5 * 2^-25 -> 2^-24
      {8.94069671630859375e-8f, 0x0002},   // 1.5 * 2^-24: tie between 1 and 2 -> even (2)
      {6.103515625e-5f, 0x0400},           // 2^-14: smallest normal
      {6.0975551605224609375e-5f, 0x03ff}, // largest subnormal
      {f_bits(0x3f801000u), 0x3c00},       // 1 + 2^-11: tie -> even (0x3c00)
      {f_bits(0x3f803000u), 0x3c02},       // 1 + 3 * 2^-11: tie -> even (0x3c02)
      {f_bits(0x3f801001u), 0x3c01},       // just above the tie
      {0.1f, 0x2e66},
  };
  for (auto [f, bits] : cases) {
    INFO("float " << f);
    CHECK(__half_as_ushort(__float2half(f)) == bits);
    CHECK(__half_as_ushort(__float2half_rn(f)) == bits);
    CHECK(__half_as_ushort(static_cast<__half>(f)) == bits);
  }
  CHECK(__half_as_ushort(__float2half(std::nanf(""))) == 0x7fff);
  CHECK(__half_as_ushort(__double2half(1.0 / 3.0)) == 0x3555);
  // double -> half rounds once: 1 + 2^-11 + 2^-40 is above the tie (a float detour would round to even).
  CHECK(__half_as_ushort(__double2half(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40))) == 0x3c01);
  CHECK(__half_as_ushort(__float2half(static_cast<float>(1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40)))) == 0x3c00);
  CHECK(__half2float(__ushort_as_half(0x3555)) == 0.333251953125f);
  CHECK(__half2float(__ushort_as_half(0x0001)) == 5.9604644775390625e-8f);
  CHECK(__half2float(__ushort_as_half(0x7bff)) == 65504.0f);
  CHECK(__half2float(__ushort_as_half(0x8000)) == 0.0f);
  CHECK(std::signbit(__half2float(__ushort_as_half(0x8000))));
  CHECK(std::isinf(static_cast<float>(__ushort_as_half(0xfc00))));
  CHECK(std::isnan(static_cast<float>(__ushort_as_half(0x7e00))));
  // Every finite half converts to float and back unchanged.
  for (unsigned b = 0; b < 65536; ++b) {
    if ((b & 0x7c00u) == 0x7c00u && (b & 0x3ffu)) continue;  // NaN
    const __half h = __ushort_as_half(static_cast<unsigned short>(b));
    REQUIRE(__half_as_ushort(__float2half(__half2float(h))) == b);
  }
#if defined(__FLT16_MAX__)
  // A large sample of floats against the compiler's _Float16 conversion (round to nearest even).
  for (std::uint64_t b = 0; b < (1ull << 32); b += 997) {
    const float f = f_bits(static_cast<std::uint32_t>(b));
    if (std::isnan(f)) continue;
    const _Float16 ref = static_cast<_Float16>(f);
    unsigned short rb;
    std::memcpy(&rb, &ref, 2);
    REQUIRE(__half_as_ushort(__float2half(f)) == rb);
  }
#endif
}

TEST_CASE("simt: __nv_bfloat16 conversions, round to nearest even, bit-exact (known patterns)") {
  const std::pair<std::uint32_t, unsigned short> cases[] = {
      {0x3f800000u, 0x3f80},  // 1
      {0x3eaaaaabu, 0x3eab},  // 1/3: the low half 0xaaab > 0x8000 rounds up
      {0x3f808000u, 0x3f80},  // tie -> even
      {0x3f818000u, 0x3f82},  // tie -> even
      {0x3f808001u, 0x3f81},
      {0x7f7fffffu, 0x7f80},  // FLT_MAX rounds to infinity
      {0x7f7f7fffu, 0x7f7f},
      {0x7f800000u, 0x7f80},
      {0xff800000u, 0xff80},
      {0x00000001u, 0x0000},  // smallest float subnormal -> 0
      {0x00008000u, 0x0000},  // tie -> even (0)
      {0x00018000u, 0x0002},  // tie -> even (2)
      {0x80000000u, 0x8000},
  };
  for (auto [fb, bits] : cases) {
    INFO("float bits " << std::hex << fb);
    CHECK(__bfloat16_as_ushort(__float2bfloat16(f_bits(fb))) == bits);
    CHECK(__bfloat16_as_ushort(__float2bfloat16_rn(f_bits(fb))) == bits);
    CHECK(__bfloat16_as_ushort(static_cast<__nv_bfloat16>(f_bits(fb))) == bits);
  }
  CHECK(__bfloat16_as_ushort(__float2bfloat16(std::nanf(""))) == 0x7fff);
  CHECK(__bfloat162float(__ushort_as_bfloat16(0x3eab)) == f_bits(0x3eab0000u));
  CHECK(__bfloat16_as_ushort(__double2bfloat16(1.0 / 3.0)) == 0x3eab);
  // double -> bfloat16 rounds once: 1 + 2^-8 + 2^-40 is above the tie.
  CHECK(__bfloat16_as_ushort(__double2bfloat16(d_bits(0x3ff0100000000000ull) + std::ldexp(1.0, -40))) == 0x3f81);
  // A large sample against the bit-trick reference (round half to even on the upper 16 bits).
  for (std::uint64_t b = 0; b < (1ull << 32); b += 997) {
    const std::uint32_t u = static_cast<std::uint32_t>(b);
    if (std::isnan(f_bits(u))) continue;
    const std::uint32_t ref = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    REQUIRE(__bfloat16_as_ushort(__float2bfloat16(f_bits(u))) == ref);
  }
}

// ---------------------------------------------------------------------------------------------------
// Speed: a block Prim-like loop (1024 threads, thousands of barriers and shuffles).
__global__ void barrier_storm_kernel(int steps, int* out) {
  __shared__ int red[32];
  int acc = 0;
  for (int s = 0; s < steps; ++s) {
    int v = static_cast<int>(threadIdx.x) ^ s;
    for (int off = 16; off > 0; off >>= 1) v = max(v, __shfl_down_sync(0xffffffffu, v, off));
    if (threadIdx.x % 32 == 0) red[(threadIdx.x / 32 + s) % 32] = v;
    __syncthreads();
    acc += red[s % 32];
    __syncthreads();
  }
  out[threadIdx.x] = acc;
}

TEST_CASE("simt: 1024 threads x 2000 steps of 5 shuffles + 2 barriers run in seconds") {
  dbuf<int> out(1024);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(simt::launch(barrier_storm_kernel, 1, 1024, 0, nullptr, 2000, out.p) == cudaSuccess);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("1024 threads x 2000 steps (14M fiber switches): " << s << " s");
  const auto o = out.get();
  // Slot s % 32 is written at step s by the warp w with (w + s) % 32 == s % 32, i.e. warp 0, whose
  // maximum is max over lanes l of (l ^ s).
  int acc = 0;
  for (int st = 0; st < 2000; ++st) {
    int best = 0;
    for (int l = 0; l < 32; ++l) best = std::max(best, l ^ st);
    acc += best;
  }
  CHECK(o == std::vector<int>(1024, acc));
}

// ---------------------------------------------------------------------------------------------------
// Error detection: each must abort with a precise message (in a child process).
__global__ void split_barrier_kernel() {
  // Lanes 16..31 of warp 1 wait at __syncwarp for lanes 0..15, which wait at __syncthreads for them.
  if (threadIdx.x < 48) __syncthreads();
  else __syncwarp();
}
__global__ void mixed_barrier_kernel() {
  if (threadIdx.x == 0) __syncthreads();
  else __syncthreads_or(1);
}
__global__ void exited_lane_kernel(int* out) {
  if (threadIdx.x < 16) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
}
__global__ void late_exit_kernel(int* out) {
  if (threadIdx.x == 3) {
    out[0] = __shfl_sync(0xffffffffu, 1, 0);  // waits for lane 7, which exits
  } else if (threadIdx.x != 7) {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  }
}
__global__ void not_in_mask_kernel(int* out) { out[threadIdx.x] = __shfl_sync(0x1u, 5, 0); }
__global__ void partial_warp_kernel(int* out) { out[threadIdx.x] = __shfl_sync(0xffffffffu, 5, 0); }
__global__ void different_collectives_kernel(int* out) {
  if (threadIdx.x % 2) out[threadIdx.x] = __shfl_sync(0xffffffffu, 5, 0);
  else out[threadIdx.x] = static_cast<int>(__ballot_sync(0xffffffffu, 1));
}
__global__ void reuse_storage_kernel(double* out) {
  using R = cub::BlockReduce<double, 64>;
  __shared__ typename R::TempStorage tmp;
  const double a = R(tmp).Sum(1.0);
  const double b = R(tmp).Sum(2.0);  // no __syncthreads() in between
  out[threadIdx.x] = a + b;
}
__global__ void reduce_after_exit_kernel(double* out) {
  using R = cub::BlockReduce<double, 64>;
  __shared__ typename R::TempStorage tmp;
  if (threadIdx.x == 63) return;
  out[threadIdx.x] = R(tmp).Sum(1.0);
}
__global__ void throwing_kernel() {
  if (threadIdx.x == 5) throw std::runtime_error("boom");
}
__global__ void misaligned_wmma_kernel(const double* a) {
  nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 8, 8, 4, double, nvcuda::wmma::row_major> f;
  nvcuda::wmma::load_matrix_sync(f, a + 1, 4);
}

#if defined(__SANITIZE_ADDRESS__)
__global__ void overflow_kernel(int* p, int n) {
  if (threadIdx.x == 31) p[n] = 1;  // one past the allocation
}
__global__ void smem_overflow_kernel(int n) {
  int* s = static_cast<int*>(simt::dynamic_shared_memory());
  if (threadIdx.x == 0) s[n] = 1;  // one past the launch's dynamic shared memory
}

TEST_CASE("simt (AddressSanitizer): overruns of device memory and dynamic shared memory inside a kernel") {
  auto asan = [](auto launch) {
    const auto r = in_child([&] { launch(); });
    INFO("child output:\n" << r.second);
    CHECK(r.second.find("heap-buffer-overflow") != std::string::npos);
  };
  asan([] {
    int* p = nullptr;
    cudaMalloc(&p, 40 * sizeof(int));
    simt::launch(overflow_kernel, 1, 32, 0, nullptr, p, 40);
  });
  asan([] { simt::launch(smem_overflow_kernel, 1, 32, 100 * sizeof(int), nullptr, 100); });
}
#endif

#if !defined(__SANITIZE_ADDRESS__)
__global__ void deep_stack_kernel(int* out) {
  volatile char big[200 * 1024];  // far beyond the default 64 KiB fiber stack
  big[0] = 1;
  out[threadIdx.x] = big[0];
}

TEST_CASE("simt: a fiber stack overflow faults in the guard region and is named") {
  dbuf<int> out(32);
  const auto r = in_child([&] { simt::launch(deep_stack_kernel, 1, 32, 0, nullptr, out.p); });
  INFO("child output:\n" << r.second);
  CHECK(r.first == SIGSEGV);
  CHECK(r.second.find("fiber stack overflow") != std::string::npos);
}
#endif

TEST_CASE("simt: deadlocks and divergent collectives are reported with the kernel, block and threads") {
  schedule_guard guard;
  REQUIRE(simt::set_schedule("forward"));  // the expected messages name the first failure in thread order
  dbuf<int> out(64);
  dbuf<double> dout(64);
  CHECK_ABORTS(simt::launch(split_barrier_kernel, 2, 64, 0, nullptr), "deadlock");
  CHECK_ABORTS(simt::launch(split_barrier_kernel, 2, 64, 0, nullptr), "split_barrier_kernel");
  CHECK_ABORTS(simt::launch(split_barrier_kernel, 2, 64, 0, nullptr), "threads 48-63: waiting at __syncwarp");
  CHECK_ABORTS(simt::launch(mixed_barrier_kernel, 1, 64, 0, nullptr), "different block-wide barriers");
  CHECK_ABORTS(simt::launch(exited_lane_kernel, 1, 32, 0, nullptr, out.p), "names lanes that have exited");
  CHECK_ABORTS(simt::launch(late_exit_kernel, 1, 32, 0, nullptr, out.p), "lane 7 exits while");
  CHECK_ABORTS(simt::launch(not_in_mask_kernel, 1, 32, 0, nullptr, out.p), "does not name the calling lane 1");
  CHECK_ABORTS(simt::launch(partial_warp_kernel, 1, 48, 0, nullptr, out.p), "names lanes that do not exist");
  CHECK_ABORTS(simt::launch(different_collectives_kernel, 1, 32, 0, nullptr, out.p), "different warp collectives");
  CHECK_ABORTS(simt::launch(reuse_storage_kernel, 1, 64, 0, nullptr, dout.p), "TempStorage");
  CHECK_ABORTS(simt::launch(reduce_after_exit_kernel, 1, 64, 0, nullptr, dout.p), "have exited");
  CHECK_ABORTS(simt::launch(throwing_kernel, 1, 32, 0, nullptr), "exception escaped the kernel");
  CHECK_ABORTS(simt::launch(misaligned_wmma_kernel, 1, 32, 0, nullptr, static_cast<const double*>(dout.p)),
               "not 256-bit aligned");
  // A deadlock found in a random order names the block it happened in.
  CHECK_ABORTS((simt::set_schedule("random:3"), simt::launch(split_barrier_kernel, dim3(2, 3), 64, 0, nullptr)),
               "of grid (2,3,1)");
}

}  // namespace
