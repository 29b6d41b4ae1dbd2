// The class-sharded head (examples/train/sharded_head.hpp) on real Gloo process groups over loopback, against
// the single-process oracle: MarginCE (autograd.hpp) on the concatenated batch and the full classifier (the same
// rows), with LibTorch autograd through normalize/mm for the gradients wrt the embeddings and the classifier.
// Each launch re-executes this binary (/proc/self/exe --worker ...) once per rank; every rank computes the
// oracle itself and compares. The parent waits with a deadline and kills the ranks past it (no hang possible),
// and every process group has a timeout of a few seconds. Built only with LibTorch (tests/train.cmake).
#define CATCH_CONFIG_RUNNER
#include "support.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <thread>

#include "../examples/train/autograd.hpp"
#include "../examples/train/sharded_head.hpp"

// LibTorch built with glog (Debian's) defines its own CHECK (abort on failure) over Catch's: restore Catch's.
#undef CHECK
#define CHECK(...) INTERNAL_CATCH_TEST("CHECK", Catch::ResultDisposition::ContinueOnFailure, __VA_ARGS__)

using namespace topofr;
using namespace topofr::train;

namespace {

// ---------------------------------------------------------------- the ranks (worker mode)

struct spec {
  std::string name;
  std::int64_t classes;
  bool dbl;
  bool sds = false;
  double eps = 1e-5;
  double sample_rate = 1.0;
  bool one_shard = false;  // every label on the last rank's shard (then every other shard has only -1 rows)
  std::uint64_t seed = 1;
  bool straight = false;  // combined_margin::straight_through
};

/// max |a - b| / max |b|: the error relative to the size of the reference (elementwise relative errors of
/// near-zero gradient entries mean nothing).
double rel_err(const torch::Tensor& a, const torch::Tensor& b, double floor = 1e-300) {
  const torch::Tensor x = a.detach().to(torch::kDouble), y = b.detach().to(torch::kDouble);
  if (x.sizes() != y.sizes()) return INFINITY;
  const double scale = y.numel() ? y.abs().max().item<double>() : 0.0;
  const double diff = x.numel() ? (x - y).abs().max().item<double>() : 0.0;
  return diff / std::max(scale, floor);
}

struct checker {
  std::string name;
  double tol;
  int failed = 0, passed = 0;
  double worst = 0;  // largest error / its tolerance (0-tolerance checks excluded)
  std::string worst_what;
  void operator()(const std::string& what, double err, double t = -1) {
    const double lim = t >= 0 ? t : tol;
    if (lim > 0 && err / lim > worst) worst = err / lim, worst_what = what + " " + c10::str(err);
    if (err <= lim) ++passed;
    else {
      ++failed;
      std::fprintf(stdout, "FAIL %s: %s: error %.3g > %.3g\n", name.c_str(), what.c_str(), err, lim);
    }
  }
};

/// One case on this rank: the sharded head and the oracle; true when every comparison passes.
bool run_case(c10d::ProcessGroup& pg, const spec& sp) {
  const int world = pg.getSize(), rank = pg.getRank();
  const auto dt = sp.dbl ? torch::kDouble : torch::kFloat;
  const std::int64_t b = 6, n = b * world, d = 8, c = sp.classes;
  const std::uint64_t step = 7;
  torch::manual_seed(sp.seed);  // the same global data on every rank
  const torch::Tensor wfull = torch::randn({c, d}, torch::kDouble).to(dt);
  torch::Tensor labels;
  if (sp.one_shard) {
    const class_range last = shard_range(c, world, world - 1);
    labels = torch::randint(last.begin, last.end, {n}, torch::kLong);
  } else {
    labels = torch::randint(0, c, {n}, torch::kLong);
  }
  for (std::int64_t i = 3; i < n; i += 5) labels[i] = ignore_label;
  // Half the rows near their class (confident, low entropy), half random: a spread of entropies for GUM.
  torch::Tensor z = torch::randn({n, d}, torch::kDouble);
  for (std::int64_t i = 0; i < n; i += 2)
    if (labels[i].item<std::int64_t>() >= 0) z[i] += 3.0 * wfull[labels[i].item<std::int64_t>()].to(torch::kDouble);
  z = z.to(dt);
  margin_ce_config cfg;
  cfg.sds = sp.sds;
  cfg.entropy_eps = sp.eps;
  cfg.margin.straight_through = sp.straight;
  checker ok{sp.name + " [rank " + std::to_string(rank) + "]", sp.dbl ? 1e-12 : 1e-5};

  // The sharded head, as the trainer uses it.
  const class_range range = shard_range(c, world, rank);
  ShardedClassifier head(wfull.narrow(0, range.begin, range.size()), range, c, sp.sample_rate, sp.seed);
  const torch::Tensor zl = z.narrow(0, rank * b, b).clone().requires_grad_(true);
  const torch::Tensor zg = all_gather_rows(pg, zl);
  const torch::Tensor yg = all_gather_rows(pg, labels.narrow(0, rank * b, b).clone());
  ok("gathered labels", yg.equal(labels) ? 0.0 : 1.0, 0.0);
  ok("gathered embeddings", zg.detach().equal(z) ? 0.0 : 1.0, 0.0);
  const auto [cos, local] = head->forward(zg, yg, step);
  margin_ce_stats st;
  const torch::Tensor loss = sharded_margin_ce(pg, cos, local, cfg, &st);
  loss.backward();
  const auto rows = detail_sh::combine_rows(pg, cos.detach().contiguous(), local, cfg.margin, true, cfg.entropy_eps);

  // The oracle: one process, all classes (or the union of every rank's sample, recomputed here).
  torch::Tensor used = torch::arange(c, torch::kLong);
  if (sp.sample_rate < 1.0) {
    std::vector<std::int64_t> u;
    for (int r = 0; r < world; ++r) {
      const class_range rr = shard_range(c, world, r);
      std::vector<std::int64_t> y(labels.data_ptr<std::int64_t>(), labels.data_ptr<std::int64_t>() + n), idx(rr.size());
      localize_labels(cpu, vector_view<const std::int64_t>(y.data(), n), rr, c, vector_view<std::int64_t>(y.data(), n));
      const index_t num = std::max<index_t>(1, static_cast<index_t>(sp.sample_rate * static_cast<double>(rr.size())));
      const index_t count = partial_fc_sample(cpu, vector_view<const std::int64_t>(y.data(), n), rr, num, sp.seed, step,
                                              vector_view<index_t>(idx.data(), rr.size()),
                                              vector_view<std::int64_t>(y.data(), n));
      for (index_t k = 0; k < count; ++k) u.push_back(rr.begin + idx[k]);
      if (r == rank) ok("sample size", cos.size(1) == count ? 0.0 : 1.0, 0.0);
    }
    used = torch::tensor(u, torch::kLong);
  }
  torch::Tensor ylab = labels.clone();  // global label -> column of the used classes
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t y = labels[i].item<std::int64_t>();
    if (y >= 0) {
      const auto pos = used.eq(y).nonzero();
      if (pos.numel() != 1) return std::fprintf(stdout, "FAIL %s: label %ld not in the sample\n", ok.name.c_str(), y), false;
      ylab[i] = pos[0][0];
    }
  }
  const torch::Tensor zo = z.clone().requires_grad_(true), wo = wfull.clone().requires_grad_(true);
  namespace F = torch::nn::functional;
  const auto nopt = F::NormalizeFuncOptions().dim(1).eps(1e-12);
  const torch::Tensor cos_o = F::normalize(zo, nopt).mm(F::normalize(wo.index_select(0, used), nopt).t()).clamp(-1.0, 1.0);
  margin_ce_stats so;
  const torch::Tensor loss_o = MarginCE::apply(cos_o, ylab, cfg, &so);
  const torch::Tensor co = cos_o.detach().contiguous();
  torch::Tensor l_o = torch::empty({n}, co.options()), h_o = torch::empty_like(l_o), p_o = torch::empty_like(l_o),
                lse_o = torch::empty_like(l_o);
  AT_DISPATCH_FLOATING_TYPES(co.scalar_type(), "oracle", [&] {
    using T = scalar_t;
    margin_ce_forward(cpu, detail_ag::cmat<T>(co), vector_view<const std::int64_t>(ylab.data_ptr<std::int64_t>(), n),
                      cfg.margin, cfg.entropy_eps, detail_ag::vec<T>(l_o), detail_ag::vec<T>(h_o),
                      detail_ag::vec<T>(p_o), detail_ag::vec<T>(lse_o));
  });

  if (!sp.straight) {
    loss_o.backward();
  } else {  // the cos gradient from the library's head with cfg.margin, independent of how MarginCE carries the flag
    torch::Tensor g = torch::empty_like(co);
    AT_DISPATCH_FLOATING_TYPES(co.scalar_type(), "oracle_backward", [&] {
      using T = scalar_t;
      margin_ce_backward(cpu, detail_ag::cmat<T>(co), vector_view<const std::int64_t>(ylab.data_ptr<std::int64_t>(), n),
                         cfg.margin, vector_view<const T>(lse_o.data_ptr<T>(), n),
                         vector_view<const T>(so.weights.data_ptr<T>(), n), 1.0 / static_cast<double>(n),
                         detail_ag::mat<T>(g));
    });
    cos_o.backward(g);
  }

  ok("loss", std::abs(loss.item<double>() - loss_o.item<double>()) / std::abs(loss_o.item<double>()));
  ok("stats.loss_unweighted", test::rel(st.loss_unweighted, so.loss_unweighted));
  ok("stats.weights", rel_err(st.weights, so.weights));
  // Float: the single-process head computes the entropies in float (p log(p + eps) per element), the sharded
  // one in double, so they agree to float's absolute resolution of terms of size ~1, not relative to entropies
  // that may all be ~1e-3 (confident rows); the GUM fit (in float) amplifies that into pi and sigma.
  const double fit_tol = sp.dbl ? 1e-12 : 1e-4;
  if (sp.sds) {
    ok("stats.pi", test::rel(st.pi, so.pi), fit_tol);
    ok("stats.sigma", test::rel(st.sigma, so.sigma), fit_tol);
    ok("stats.hard_fraction", st.hard_fraction == so.hard_fraction ? 0.0 : 1.0, 0.0);
  }
  ok("lse", rel_err(rows.lse, lse_o));
  ok("per-row loss", rel_err(rows.loss, l_o));
  ok("p_gt", rel_err(rows.p_gt, p_o));
  ok("entropy", rel_err(rows.entropy, h_o, sp.dbl ? 1e-300 : 1.0));
  ok("grad wrt this rank's embeddings", rel_err(zl.grad(), zo.grad().narrow(0, rank * b, b)));
  ok("grad wrt this rank's classifier rows", rel_err(head->weight.grad(), wo.grad().narrow(0, range.begin, range.size())));
  // Every rank holds bitwise the same loss and SDS weights.
  const torch::Tensor mine = torch::cat({loss.detach().to(torch::kDouble).reshape({1}), st.weights.to(torch::kDouble)});
  const torch::Tensor all = detail_sh::all_gather(pg, mine, "test", "loss and weights").reshape({world, -1});
  for (int r = 0; r < world; ++r) ok("loss and weights bitwise equal to rank " + std::to_string(r) + "'s", all[r].equal(mine) ? 0.0 : 1.0, 0.0);
  std::fprintf(stdout, "%s %s: %d checks (tolerance %g), worst: %s\n", ok.failed ? "FAILED" : "PASS",
               ok.name.c_str(), ok.passed + ok.failed, ok.tol, ok.worst_what.c_str());
  return ok.failed == 0;
}

std::vector<spec> cases(int world) {
  std::vector<spec> v;
  const std::int64_t uneven = world == 3 ? 10 : 37;  // C % W != 0
  for (bool dbl : {true, false}) {
    const std::string t = dbl ? "double" : "float";
    v.push_back({"C=16 " + t, 16, dbl});
    v.push_back({"uneven C=" + std::to_string(uneven) + " " + t, uneven, dbl});
    v.push_back({"C=37 SDS eps=1e-5 " + t, 37, dbl, true, 1e-5});
    v.push_back({"C=37 SDS eps=0 " + t, 37, dbl, true, 0.0});
    v.push_back({"labels on one shard SDS " + t, 37, dbl, true, 1e-5, 1.0, true, 2});
    v.push_back({"sample 0.3 C=37 SDS " + t, 37, dbl, true, 1e-5, 0.3, false, 3});
    v.push_back({"sample 0.3 C=37 " + t, 37, dbl, false, 1e-5, 0.3, false, 4});
    v.push_back({"straight-through margin SDS C=37 " + t, 37, dbl, true, 1e-5, 1.0, false, 5, true});
  }
  return v;
}

c10::intrusive_ptr<c10d::ProcessGroupGloo> make_group(int rank, int world, int port, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = world;
  so.waitWorkers = true;
  so.timeout = timeout;
  const auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
}

/// Worker: exit 0 when every check passed; 1 with "error: ..." on an exception; 2 when a check failed.
[[noreturn]] void worker(int rank, int world, int port, const std::string& scenario) {
  int rc = 0;
  try {
    torch::set_num_threads(1);
    // Short timeouts where a rank dies or stalls; long ones where a wait would mean a failure of the head.
    const auto timeout = std::chrono::milliseconds(scenario == "cases" || scenario == "bad_cos" ? 20000 : 3000);
    const auto pg = make_group(rank, world, port, timeout);
    if (scenario == "cases") {
      for (const spec& sp : cases(world)) rc |= run_case(*pg, sp) ? 0 : 2;
    } else if (scenario == "world_gt_classes") {
      const class_range r = shard_range(world - 1, world, rank);  // throws: W > C
      std::printf("no error for classes %d, world %d: [%ld, %ld)\n", world - 1, world, r.begin, r.end);
    } else if (scenario == "rows_mismatch") {
      all_gather_rows(*pg, torch::zeros({rank + 1, 3}));
      std::printf("no error for different row counts\n");
    } else if (scenario == "dead") {
      const int victim = world == 2 ? 0 : world - 1;  // W = 2: the store's host dies; W = 3: another rank
      if (rank == victim) std::fflush(stdout), std::_Exit(3);
      all_gather_rows(*pg, torch::zeros({2, 3}));
      std::printf("no error after rank %d died\n", victim);
    } else if (scenario == "bad_cos") {  // rank 1's cosines are invalid, rank 0's fine
      torch::Tensor cos = torch::zeros({4, 3});
      if (rank == 1) cos[2][1] = 2.0;
      sharded_margin_ce(*pg, cos, torch::full({4}, -1, torch::kLong), margin_ce_config{});
      std::printf("no error for a cosine of 2\n");
    } else if (scenario == "stalled") {  // alive but absent: the group's 3 s timeout must end the wait
      if (rank == world - 1) std::this_thread::sleep_for(std::chrono::seconds(5)), std::fflush(stdout), std::_Exit(4);
      all_gather_rows(*pg, torch::zeros({2, 3}));
      std::printf("no error while rank %d stalled\n", world - 1);
    }
    pg->barrier()->wait();
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    rc = 1;
  }
  std::fflush(stdout);
  std::_Exit(rc);  // no destructor may wait on a dead peer
}

// ---------------------------------------------------------------- the parent (Catch2 test cases)

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(s);
  return ntohs(a.sin_port);
}

struct launch_result {
  std::vector<int> rc;  // exit status per rank; -1: killed at the deadline
  std::vector<std::string> out;
  double seconds = 0;
};

/// Runs `world` ranks of `scenario`; kills them all at the deadline.
launch_result launch(int world, const std::string& scenario, double deadline_s) {
  const int port = free_port();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<pid_t> pids;
  std::vector<std::string> logs;
  for (int r = 0; r < world; ++r) {
    logs.push_back(test::scratch(scenario + "_w" + std::to_string(world) + "_r" + std::to_string(r) + ".log"));
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the parent dies: so do the ranks
      const int fd = ::open(logs.back().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1), ::dup2(fd, 2);
      ::setenv("OMP_NUM_THREADS", "1", 1);  // up to 3 ranks share 2 cores
      const std::string rs = std::to_string(r), ws = std::to_string(world), ps = std::to_string(port);
      ::execl("/proc/self/exe", "test_dist_head", "--worker", "--rank", rs.c_str(), "--world", ws.c_str(), "--port",
              ps.c_str(), "--scenario", scenario.c_str(), static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    pids.push_back(pid);
  }
  launch_result res;
  res.rc.assign(world, -2);
  int left = world;
  while (left > 0) {
    for (int r = 0; r < world; ++r) {
      int status = 0;
      if (res.rc[r] == -2 && ::waitpid(pids[r], &status, WNOHANG) == pids[r]) {
        res.rc[r] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        --left;
      }
    }
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (left > 0 && el > deadline_s) {
      for (int r = 0; r < world; ++r)
        if (res.rc[r] == -2) ::kill(pids[r], SIGKILL), ::waitpid(pids[r], nullptr, 0), res.rc[r] = -1;
      left = 0;
    }
    if (left > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& l : logs) {
    std::ifstream f(l);
    std::stringstream ss;
    ss << f.rdbuf();
    res.out.push_back(ss.str());
  }
  return res;
}

std::string report(const launch_result& r) {
  std::string s = "after " + std::to_string(r.seconds) + " s:\n";
  for (std::size_t k = 0; k < r.rc.size(); ++k)
    s += "--- rank " + std::to_string(k) + " (exit " + std::to_string(r.rc[k]) + ")\n" + r.out[k];
  return s;
}

int count(const std::string& s, const std::string& what) {
  int c = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++c;
  return c;
}

}  // namespace

TEST_CASE("sharded head == single-process MarginCE + NormClassifier (loss, stats, gradients), W = 1, 2, 3") {
  for (int world : {1, 2, 3}) {
    const launch_result r = launch(world, "cases", 40.0);
    INFO("W = " << world << ", " << report(r));
    const int expected = static_cast<int>(cases(world).size());
    for (int k = 0; k < world; ++k) {
      CHECK(r.rc[k] == 0);
      CHECK(count(r.out[k], "PASS ") == expected);
      CHECK(count(r.out[k], "FAIL") == 0);
    }
    std::printf("W = %d: %d cases x %d ranks passed in %.1f s\n", world, expected, world, r.seconds);
  }
}

TEST_CASE("sharded head: W > C refused on every rank with shard_range's message") {
  const launch_result r = launch(3, "world_gt_classes", 30.0);
  INFO(report(r));
  for (int k = 0; k < 3; ++k) {
    CHECK(r.rc[k] == 1);
    CHECK(r.out[k].find("world > number of classes: world = 3, classes = 2") != std::string::npos);
  }
}

TEST_CASE("sharded head: all_gather_rows refuses different row counts on every rank, no hang") {
  const launch_result r = launch(2, "rows_mismatch", 30.0);
  INFO(report(r));
  for (int k = 0; k < 2; ++k) {
    CHECK(r.rc[k] == 1);
    CHECK(r.out[k].find("all_gather_rows: local: every rank must pass the same shape and dtype, got rank 0: [1, 3] "
                        "Float, rank 1: [2, 3] Float") != std::string::npos);
  }
}

TEST_CASE("sharded head: a rank that dies before a collective -> the others fail with a clear error, no hang") {
  for (int world : {2, 3}) {
    const launch_result r = launch(world, "dead", 30.0);
    INFO("W = " << world << ", " << report(r));
    const int victim = world == 2 ? 0 : world - 1;
    for (int k = 0; k < world; ++k) {
      if (k == victim) {
        CHECK(r.rc[k] == 3);
        continue;
      }
      CHECK(r.rc[k] == 1);  // not -1 (killed at the deadline)
      CHECK(r.out[k].find("error: all_gather_rows: all-gather of the shape of local failed on rank " +
                          std::to_string(k) + " of " + std::to_string(world)) != std::string::npos);
    }
    CHECK(r.seconds < 20.0);
  }
}

TEST_CASE("sharded head: an error on one rank before the statistics all-gather stops every rank at once") {
  const launch_result r = launch(2, "bad_cos", 30.0);
  INFO(report(r));
  CHECK(r.rc[0] == 1);
  CHECK(r.rc[1] == 1);
  CHECK(r.out[0].find("error: sharded_margin_ce: rank 1 failed before the all-gather of the row statistics") !=
        std::string::npos);
  CHECK(r.out[1].find("error: topofr::shard_stats: cos: element (2, 1) is 2") != std::string::npos);
  CHECK(r.seconds < 10.0);  // not the group's 20 s timeout
}

TEST_CASE("sharded head: a rank that stalls -> the others fail at the group's timeout, no hang") {
  const launch_result r = launch(2, "stalled", 30.0);
  INFO(report(r));
  CHECK(r.rc[1] == 4);
  CHECK(r.rc[0] == 1);
  CHECK(r.out[0].find("error: all_gather_rows: all-gather of the shape of local failed on rank 0 of 2") !=
        std::string::npos);
  CHECK(r.seconds < 20.0);
}

TEST_CASE("ShardedClassifier: argument errors name the argument") {
  const class_range range = shard_range(10, 3, 1);  // [4, 7)
  ShardedClassifier head(torch::randn({range.size(), 4}), range, 10);
  const torch::Tensor z = torch::randn({3, 4});
  try {
    head->forward(z, torch::tensor({1, 10, 2}, torch::kLong), 0);
    FAIL("no error for label 10 of 10 classes");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("labels: element 1 is 10") != std::string::npos);
  }
  const auto [cos, local] = head->forward(z, torch::tensor({5, -100, 9}, torch::kLong), 0);
  CHECK(local.equal(torch::tensor({1, -100, -1}, torch::kLong)));
  CHECK(cos.sizes() == torch::IntArrayRef({3, 3}));
  CHECK_THROWS_WITH(ShardedClassifier(torch::randn({2, 4}), range, 10),
                    Catch::Contains("rows must be range.size() = 3 x d"));
  CHECK_THROWS_WITH(ShardedClassifier(torch::randn({3, 4}), range, 10, 0.0), Catch::Contains("sample_rate"));
  CHECK_THROWS_WITH(shard_range(2, 3, 0), Catch::Contains("world > number of classes"));
}

int main(int argc, char** argv) {
  // A rank: test_dist_head --worker --rank r --world W --port P --scenario name (see launch).
  if (argc == 10 && std::string(argv[1]) == "--worker")
    worker(std::atoi(argv[3]), std::atoi(argv[5]), std::atoi(argv[7]), argv[9]);
  return Catch::Session().run(argc, argv);
}
