// examples/train/process_group.hpp — topofr-train on several processes (torch.distributed's c10d).
//   parse_master:        "HOST:PORT" -> (host, port), one-line errors naming --master;
//   connect:             the rendezvous (c10d::TCPStore hosted by rank 0) and the process group (Gloo), both
//                        with --dist-timeout. Gloo also for --device cuda: it takes CUDA tensors (staged through
//                        the host) and the host tensors that sharded_head.hpp exchanges (its row statistics and
//                        shape checks), which NCCL would refuse; so no NCCL path (see docs/train.md);
//   all_reduce_sum_ / broadcast_ / all_reduce_values: the trainer's few collectives (gradients, BatchNorm
//                        buffers, logged scalars), flattened per dtype into one call each, errors naming the
//                        rank and what was being exchanged;
//   launch_local:        --nproc W: W copies of this program (/proc/self/exe) on this machine, a free loopback
//                        port, the first failing rank reported and the others stopped (no hang).
// The sharded classifier's collectives are in sharded_head.hpp. Docs: docs/train.md, "Several processes and
// machines".
#pragma once

#include <torch/torch.h>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(USE_C10D_GLOO)  // CMake defines it when Gloo's headers are found (pip wheels do not ship them)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace topofr::train {

/// Where this process sits in the run: world 1 is the plain single-process trainer.
struct dist_options {
  int world = 1, rank = 0;
  std::string host;  // rank 0's address (TCPStore), from --master
  int port = 0;
  double timeout_s = 300;  // --dist-timeout: rendezvous and every collective
};

/// "HOST:PORT" (HOST may be [v6]): throws std::invalid_argument naming --master.
inline std::pair<std::string, int> parse_master(const std::string& s) {
  const auto bad = [&](const std::string& why) {
    return std::invalid_argument("--master: expected HOST:PORT with PORT in [1, 65535], got '" + s + "'" +
                                 (why.empty() ? "" : " (" + why + ")"));
  };
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) throw bad(colon == 0 ? "no host" : "no port");
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string ps = s.substr(colon + 1);
  if (ps.empty() || ps.size() > 5 || ps.find_first_not_of("0123456789") != std::string::npos) throw bad("");
  const int port = std::stoi(ps);
  if (port < 1 || port > 65535) throw bad("");
  return {host, port};
}

/// The group of this run and its rank; world 1 without --master: a one-rank Gloo group over an in-process
/// store (sharded_margin_ce needs a group, and communicates nothing with one rank).
struct process_group {
  int rank = 0, world = 1;
  double timeout_s = 300;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;

  std::string who() const { return "rank " + std::to_string(rank) + " of " + std::to_string(world); }
};

namespace detail_pg {

inline std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

inline std::string what_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return first_line(c->what_without_backtrace());
  return first_line(e.what());
}

inline bool loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

/// Runs one collective and waits; a failure (a rank died: "Connection closed by peer"; or the timeout)
/// becomes one line naming this rank, what was exchanged and the timeout.
template <class Start>
void run(process_group& g, const std::string& what, Start start) {
  try {
    start()->wait();
  } catch (const std::exception& e) {
    char t[32];
    std::snprintf(t, sizeof t, "%g", g.timeout_s);
    throw std::runtime_error(g.who() + ": " + what + " failed (another rank died, or --dist-timeout " + t +
                             " s passed): " + what_of(e));
  }
}

/// The tensors grouped by dtype (the flattening below needs one dtype per buffer).
inline std::map<int, std::vector<torch::Tensor>> by_dtype(const std::vector<torch::Tensor>& ts) {
  std::map<int, std::vector<torch::Tensor>> m;
  for (const auto& t : ts) m[static_cast<int>(t.scalar_type())].push_back(t);
  return m;
}

/// flat = concatenation of ts; op(flat) in place; then each t gets its part back.
template <class Op>
void flat_apply(const std::vector<torch::Tensor>& ts, Op op) {
  for (auto& [dt, group] : by_dtype(ts)) {
    std::vector<torch::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.detach().reshape({-1}));
    torch::Tensor flat = torch::cat(flat_parts);
    op(flat);
    std::int64_t off = 0;
    torch::NoGradGuard ng;
    for (auto& t : group) {
      const std::int64_t n = t.numel();
      t.copy_(flat.narrow(0, off, n).view(t.sizes()));
      off += n;
    }
  }
}

}  // namespace detail_pg

/// Rendezvous and process group. Rank 0 hosts the TCPStore at host:port and waits (up to the timeout) for the
/// others; every error is one line naming the rank, the address and the timeout.
inline process_group connect(const dist_options& o) {
  process_group g;
  g.rank = o.rank;
  g.world = o.world;
  g.timeout_s = o.timeout_s;
  const auto timeout = std::chrono::milliseconds(static_cast<std::int64_t>(o.timeout_s * 1000.0));
  char t[32];
  std::snprintf(t, sizeof t, "%g", o.timeout_s);
  const std::string where = o.host + ":" + std::to_string(o.port);
  try {
    if (o.world == 1 && o.host.empty()) {
      g.store = c10::make_intrusive<c10d::HashStore>();
    } else {
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(o.port);
      so.isServer = o.rank == 0;
      so.numWorkers = o.world;
      so.waitWorkers = true;
      so.timeout = timeout;
      g.store = c10::make_intrusive<c10d::TCPStore>(o.host, so);
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(g.who() + ": rendezvous at " + where + " failed within --dist-timeout " + t + " s" +
                             (o.rank == 0 ? " (rank 0 hosts it: is the port free? did every rank start?)"
                                          : " (is rank 0 running, with the same --master?)") +
                             ": " + detail_pg::what_of(e));
  }
#if !defined(USE_C10D_GLOO)
  throw std::runtime_error(g.who() + ": this topofr-train was built without Gloo's headers (Debian libgloo-dev; "
                           "a pip wheel's LibTorch lacks them): one process only, and --sample-rate 1");
#else
  try {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    // Loopback (--nproc, or --master 127.x): Gloo's pairs on 127.0.0.1. Otherwise the interface named by
    // TOPOFR_TRAIN_IFNAME, else the one this machine's hostname resolves to (Gloo's default).
    const char* ifname = std::getenv("TOPOFR_TRAIN_IFNAME");
    if (o.host.empty() || detail_pg::loopback(o.host))
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else if (ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    g.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g.store, o.rank, o.world, opts);
  } catch (const std::exception& e) {
    throw std::runtime_error(g.who() + ": process group via " + where + " not formed within --dist-timeout " + t +
                             " s: " + detail_pg::what_of(e));
  }
  return g;
#endif
}

/// In place: each tensor becomes the sum over ranks (one all-reduce per dtype, on a flattened copy).
inline void all_reduce_sum_(process_group& g, const std::vector<torch::Tensor>& ts, const std::string& what) {
  if (g.world == 1 || ts.empty()) return;
  detail_pg::flat_apply(ts, [&](torch::Tensor& flat) {
    std::vector<torch::Tensor> v{flat};
    detail_pg::run(g, "all-reduce of " + what, [&] { return g.pg->allreduce(v); });
  });
}

/// In place: every rank's tensors become root's.
inline void broadcast_(process_group& g, const std::vector<torch::Tensor>& ts, int root, const std::string& what) {
  if (g.world == 1 || ts.empty()) return;
  detail_pg::flat_apply(ts, [&](torch::Tensor& flat) {
    std::vector<torch::Tensor> v{flat};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    detail_pg::run(g, "broadcast of " + what, [&] { return g.pg->broadcast(v, bo); });
  });
}

/// Sum over ranks of a few doubles (logged values).
inline std::vector<double> all_reduce_values(process_group& g, std::vector<double> v, const std::string& what) {
  if (g.world == 1 || v.empty()) return v;
  torch::Tensor t = torch::tensor(v, torch::kDouble);
  all_reduce_sum_(g, {t}, what);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = t[static_cast<std::int64_t>(i)].item<double>();
  return v;
}

/// Minimum and maximum over ranks of one integer (e.g. the step each rank's checkpoint was written at).
inline std::pair<std::int64_t, std::int64_t> min_max(process_group& g, std::int64_t x, const std::string& what) {
  if (g.world == 1) return {x, x};
  torch::Tensor t = torch::tensor({-x, x}, torch::kLong);
  std::vector<torch::Tensor> v{t};
  c10d::AllreduceOptions ao;
  ao.reduceOp = c10d::ReduceOp::MAX;
  detail_pg::run(g, "all-reduce of " + what, [&] { return g.pg->allreduce(v, ao); });
  return {-t[0].item<std::int64_t>(), t[1].item<std::int64_t>()};
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice for port 0).
inline int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) throw std::runtime_error(std::string("--nproc: cannot open a socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int e = errno;
    ::close(s);
    throw std::runtime_error(std::string("--nproc: no free port on 127.0.0.1: ") + std::strerror(e));
  }
  ::close(s);
  return ntohs(a.sin_port);
}

/// How a child ended, in words: "exited with status 1", "was killed by signal 9 (Killed)".
inline std::string exit_words(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
  return "ended with wait status " + std::to_string(status);
}

/// --nproc W: runs /proc/self/exe W times with args + {--world-size W --rank r --master 127.0.0.1:PORT}
/// (each child dies with this process: PR_SET_PDEATHSIG) and waits. The first rank that fails (non-zero
/// status or a signal) is reported on stderr by rank and status; the others get 1 s (to report their own
/// errors), then SIGTERM, then SIGKILL 5 s later; returns 0 when every rank exited 0, else 1. argv0: this program's name (for the children's argv[0]).
inline int launch_local(int world, const std::string& argv0, const std::vector<std::string>& args) {
  const int port = free_port();
  const pid_t parent = ::getpid();
  std::vector<pid_t> pids(static_cast<std::size_t>(world), -1);
  std::fflush(nullptr);
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> a{argv0};
    a.insert(a.end(), args.begin(), args.end());
    for (const std::string& s : {std::string("--nproc"), std::string("1"), std::string("--world-size"), std::to_string(world),
                                 std::string("--rank"), std::to_string(r), std::string("--master"),
                                 "127.0.0.1:" + std::to_string(port)})
      a.push_back(s);
    std::vector<char*> cargv;
    for (auto& s : a) cargv.push_back(s.data());
    cargv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int e = errno;
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL);
      throw std::runtime_error(std::string("--nproc: cannot start rank ") + std::to_string(r) + ": " + std::strerror(e));
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the launcher killed (kill -9, ctest timeout): the ranks go too
      if (::getppid() != parent) ::_exit(1);
      ::execv("/proc/self/exe", cargv.data());
      ::_exit(127);
    }
    pids[static_cast<std::size_t>(r)] = pid;
  }
  auto rank_of = [&](pid_t p) {
    for (int r = 0; r < world; ++r)
      if (pids[static_cast<std::size_t>(r)] == p) return r;
    return -1;
  };
  int running = world, failed_rank = -1, failed_status = 0;
  auto stop_others = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  };
  auto term_at = std::chrono::steady_clock::time_point::max(), kill_at = term_at;
  bool termed = false, killed = false;
  while (running > 0) {
    int st = 0;
    const pid_t p = ::waitpid(-1, &st, failed_rank >= 0 ? WNOHANG : 0);
    if (p < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: none left
    }
    if (p == 0) {  // stopping the others: 1 s to print their own errors, then SIGTERM, SIGKILL 5 s later
      const auto now = std::chrono::steady_clock::now();
      if (!termed && now > term_at) stop_others(SIGTERM), termed = true;
      if (!killed && now > kill_at) stop_others(SIGKILL), killed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    const int r = rank_of(p);
    if (r < 0) continue;
    pids[static_cast<std::size_t>(r)] = -1;
    --running;
    const bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok && failed_rank < 0) {
      failed_rank = r;
      failed_status = st;
      term_at = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      kill_at = term_at + std::chrono::seconds(5);
    }
  }
  if (failed_rank >= 0) {
    std::cerr << "topofr-train: error: --nproc " << world << ": rank " << failed_rank << " "
              << exit_words(failed_status) << (WIFEXITED(failed_status) && WEXITSTATUS(failed_status) == 127
                                                   ? " (could not run /proc/self/exe)"
                                                   : "")
              << "; the other ranks were stopped\n";
    return 1;
  }
  return 0;
}

}  // namespace topofr::train
