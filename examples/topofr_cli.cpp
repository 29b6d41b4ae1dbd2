// topofr — every TopoFR building block as a command on .npy files, so any language can use the library.
//
//   topofr <subcommand> [flags]        topofr --help        topofr <subcommand> --help
//
// Exit codes: 0 success, 2 usage error or invalid input (one line on stderr), 1 I/O failure.
// The program converts files to views, checks what only it knows (which flag a file came from, its rank,
// the agreement of shapes between files), and leaves the checks of values to the library, whose messages
// it passes through.
#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <topofr/topofr.hpp>
#include <topofr/npy.hpp>
#include <topofr/distance.hpp>
#include <topofr/persistence.hpp>
#include <topofr/isa.hpp>
#include <topofr/gum.hpp>
#include <topofr/arcface.hpp>

#if defined(TOPOFR_WITH_CUDA)
// --device cuda: the CUDA overloads behind the same calls. `cli_cuda::exec` takes the subcommands' HOST
// views; each overload below copies the inputs to the device, runs the cuda::context overload on the
// CLI's own stream, synchronises, checks the status word (device-detected bad values become errors) and
// copies the outputs back. --repeat timings on cuda therefore include the transfers.
#include <topofr/topofr.cuh>

namespace topofr {
namespace cli_cuda {

struct exec {
  cuda::context ctx;
};

/// Device copies of host views for one call; outputs are copied back by finish().
class stage {
 public:
  explicit stage(const cuda::context& ctx) : ctx_(ctx) {}
  stage(const stage&) = delete;
  ~stage() {
    for (void* p : bufs_) cudaFree(p);
  }
  template <class E>
  device_matrix_view<E> in(matrix_view<E> m) {
    if (m.empty()) return {};
    return {upload(m.data(), m.rows() * m.ld()), m.rows(), m.cols(), m.ld()};
  }
  template <class E>
  device_vector_view<E> in(vector_view<E> v) {
    if (v.empty()) return {};
    return {upload(v.data(), v.size()), v.size()};
  }
  template <class E>
  device_matrix_view<E> out(matrix_view<E> m) {
    if (m.empty()) return {};
    E* d = alloc<E>(m.rows() * m.ld());
    back_.push_back({m.data(), d, static_cast<std::size_t>(m.rows() * m.ld()) * sizeof(E)});
    return {d, m.rows(), m.cols(), m.ld()};
  }
  template <class E>
  device_vector_view<E> out(vector_view<E> v) {
    if (v.empty()) return {};
    E* d = alloc<E>(v.size());
    back_.push_back({v.data(), d, static_cast<std::size_t>(v.size()) * sizeof(E)});
    return {d, v.size()};
  }
  template <class E>
  E* alloc(index_t count) {
    void* p = nullptr;
    cuda::check_cuda(cudaMalloc(&p, static_cast<std::size_t>(count > 0 ? count : 1) * sizeof(E)), "cli");
    bufs_.push_back(p);
    return static_cast<E*>(p);
  }
  /// Copies the outputs back, synchronises and throws topofr::error if the device reported a bad value.
  void finish(const char* fn) {
    for (const copy& c : back_)
      cuda::check_cuda(cudaMemcpyAsync(c.host, c.dev, c.bytes, cudaMemcpyDeviceToHost, ctx_.stream), fn);
    cuda::check_cuda(cudaStreamSynchronize(ctx_.stream), fn);
    cuda::check_status(ctx_, fn);
  }

 private:
  template <class E>
  E* upload(E* host, index_t count) {
    using V = std::remove_const_t<E>;
    V* d = alloc<V>(count);
    cuda::check_cuda(cudaMemcpyAsync(d, host, static_cast<std::size_t>(count) * sizeof(V), cudaMemcpyHostToDevice,
                                     ctx_.stream),
                     "cli");
    return d;
  }
  struct copy {
    void* host;
    const void* dev;
    std::size_t bytes;
  };
  const cuda::context& ctx_;
  std::vector<void*> bufs_;
  std::vector<copy> back_;
};

}  // namespace cli_cuda

template <class In, class T>
void pairwise_distances(const cli_cuda::exec& e, matrix_view<In> points, matrix_view<T> dist, double scale) {
  cli_cuda::stage s(e.ctx);
  pairwise_distances(e.ctx, s.in(points), s.out(dist), scale);
  s.finish("pairwise_distances");
}
template <class In, class T>
void persistence_pairs(const cli_cuda::exec& e, matrix_view<In> dist, vector_view<edge> pairs, vector_view<T> deaths) {
  cli_cuda::stage s(e.ctx);
  persistence_pairs(e.ctx, s.in(dist), s.out(pairs), s.out(deaths));
  s.finish("persistence_pairs");
}
template <class InX, class InZ, class T>
T isa_loss_from_points(const cli_cuda::exec& e, matrix_view<InX> x, matrix_view<InZ> z, const isa_options& opt,
                       matrix_view<T> grad_z, matrix_view<T> grad_x) {
  T loss = 0;
  cli_cuda::stage s(e.ctx);
  isa_loss_from_points(e.ctx, s.in(x), s.in(z), opt, s.out(vector_view<T>(&loss, 1)), s.out(grad_z), s.out(grad_x));
  s.finish("isa_loss_from_points");
  return loss;
}
template <class In, class T>
gum_result gum_fit(const cli_cuda::exec& e, vector_view<In> entropy, vector_view<T> h, const gum_options& opt) {
  gum_result r{};
  cli_cuda::stage s(e.ctx);
  gum_fit(e.ctx, s.in(entropy), s.out(h), opt, s.out(vector_view<gum_result>(&r, 1)).data());
  s.finish("gum_fit");
  return r;
}
template <class InC, class L, class T>
void margin_logits(const cli_cuda::exec& e, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                   matrix_view<T> logits) {
  cli_cuda::stage s(e.ctx);
  margin_logits(e.ctx, s.in(cos), s.in(labels), m, s.out(logits));
  s.finish("margin_logits");
}
template <class InC, class L, class InG, class T>
void margin_logits_backward(const cli_cuda::exec& e, matrix_view<InC> cos, vector_view<L> labels,
                            const combined_margin& m, matrix_view<InG> grad_logits, matrix_view<T> grad_cos) {
  cli_cuda::stage s(e.ctx);
  margin_logits_backward(e.ctx, s.in(cos), s.in(labels), m, s.in(grad_logits), s.out(grad_cos));
  s.finish("margin_logits_backward");
}
template <class InC, class L, class T>
void margin_ce_forward(const cli_cuda::exec& e, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                       double eps, vector_view<T> loss, vector_view<T> entropy, vector_view<T> p_gt,
                       vector_view<T> lse) {
  cli_cuda::stage s(e.ctx);
  margin_ce_forward(e.ctx, s.in(cos), s.in(labels), m, eps, s.out(loss), s.out(entropy), s.out(p_gt), s.out(lse));
  s.finish("margin_ce_forward");
}
template <class InC, class L, class InS, class InW, class T>
void margin_ce_backward(const cli_cuda::exec& e, matrix_view<InC> cos, vector_view<L> labels, const combined_margin& m,
                        vector_view<InS> lse, vector_view<InW> weights, double grad_scale, matrix_view<T> grad_cos) {
  cli_cuda::stage s(e.ctx);
  margin_ce_backward(e.ctx, s.in(cos), s.in(labels), m, s.in(lse), s.in(weights), grad_scale, s.out(grad_cos));
  s.finish("margin_ce_backward");
}

}  // namespace topofr
#endif  // TOPOFR_WITH_CUDA

namespace {

using topofr::index_t;
namespace npy = topofr::npy;
namespace fs = std::filesystem;

/// Bad command line or bad input: exit 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The file system failed us (cannot open, cannot write): exit 1.
struct io_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... A>
std::string str(A&&... a) {
  return topofr::detail::concat(std::forward<A>(a)...);
}

// ---------------------------------------------------------------------------------------------------
// Command-line parsing

struct flag {
  const char* name;     // "--out"
  const char* metavar;  // "P.npy"; nullptr for a switch that takes no value
  const char* help;
};

struct command;
class args;
using runner = int (*)(const args&);

struct command {
  const char* name;
  const char* usage;    // one synopsis line (without "topofr <name>")
  const char* summary;  // what it computes
  std::vector<flag> flags;
  runner run;
  const char* notes = "";
};

const std::vector<flag>& common_flags() {
  static const std::vector<flag> f = {
      {"--device", "cpu|cuda", "where to compute (default cpu; cuda needs a CUDA build)"},
      {"--dtype", "float32|float64", "compute precision (default: the inputs' float dtype; float64 if any "
                                     "input is float64); inputs are converted"},
      {"--repeat", "N", "run the computation alone (no file I/O) N >= 1 times; print median_ms=<value>"},
      {"--help", nullptr, "print this help and exit"},
  };
  return f;
}

class args {
 public:
  args(const command& cmd, int argc, char** argv) : cmd_(cmd) {
    for (int i = 2; i < argc; ++i) {
      std::string tok = argv[i];
      std::optional<std::string> inline_value;
      if (tok.rfind("--", 0) == 0) {
        const auto eq = tok.find('=');
        if (eq != std::string::npos) {
          inline_value = tok.substr(eq + 1);
          tok = tok.substr(0, eq);
        }
      }
      const flag* f = find(tok);
      if (!f) {
        if (tok.rfind("-", 0) == 0) throw usage_error(str("unknown flag '", tok, "' (see topofr ", cmd.name, " --help)"));
        throw usage_error(str("unexpected argument '", tok, "' (every value follows its flag; see topofr ",
                              cmd.name, " --help)"));
      }
      if (values_.count(tok)) throw usage_error(str(tok, ": given more than once"));
      if (!f->metavar) {
        if (inline_value) throw usage_error(str(tok, ": takes no value, got '", *inline_value, "'"));
        values_[tok] = "";
        continue;
      }
      if (inline_value) {
        values_[tok] = *inline_value;
      } else {
        // A following "--flag" is a forgotten value, not a value (negative numbers have one dash).
        if (i + 1 >= argc || std::strncmp(argv[i + 1], "--", 2) == 0)
          throw usage_error(str(tok, ": missing value (", f->metavar, ")"));
        values_[tok] = argv[++i];
      }
      if (values_[tok].empty()) throw usage_error(str(tok, ": empty value"));
    }
  }

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::optional<std::string> get(const std::string& name) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }
  std::string required(const std::string& name) const {
    if (!has(name)) throw usage_error(str(name, ": required (see topofr ", cmd_.name, " --help)"));
    return values_.at(name);
  }
  double number(const std::string& name, double fallback) const {
    const auto v = get(name);
    if (!v) return fallback;
    const char* s = v->c_str();
    char* end = nullptr;
    errno = 0;
    const double x = std::strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !std::isfinite(x))
      throw usage_error(str(name, ": expected a finite number, got '", *v, "'"));
    return x;
  }
  double positive(const std::string& name, double fallback) const {
    const double x = number(name, fallback);
    if (!(x > 0)) throw usage_error(str(name, ": must be > 0, got ", *get(name)));
    return x;
  }
  long integer(const std::string& name, long fallback, long min, long max = std::numeric_limits<int>::max()) const {
    const auto v = get(name);
    if (!v) return fallback;
    const char* s = v->c_str();
    char* end = nullptr;
    errno = 0;
    const long x = std::strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE)
      throw usage_error(str(name, ": expected an integer, got '", *v, "'"));
    if (x < min || x > max) throw usage_error(str(name, ": must be in [", min, ", ", max, "], got ", *v));
    return x;
  }
  /// One of `choices`, or `fallback` when the flag is absent.
  std::string choice(const std::string& name, const std::vector<std::string>& choices,
                     const std::string& fallback) const {
    const auto v = get(name);
    if (!v) return fallback;
    if (std::find(choices.begin(), choices.end(), *v) == choices.end()) {
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : "|") + c;
      throw usage_error(str(name, ": expected ", list, ", got '", *v, "'"));
    }
    return *v;
  }

 private:
  const flag* find(const std::string& name) const {
    for (const auto& f : cmd_.flags)
      if (name == f.name) return &f;
    for (const auto& f : common_flags())
      if (name == f.name) return &f;
    return nullptr;
  }
  const command& cmd_;
  std::map<std::string, std::string> values_;
};

// ---------------------------------------------------------------------------------------------------
// Files

/// The input and output files of one invocation, by flag; refuses to let an output replace an input
/// (or another output) before anything is read or computed.
class files {
 public:
  explicit files(const args& a) : a_(a) {}

  std::optional<std::string> input(const std::string& flag, bool required) {
    auto p = required ? std::optional<std::string>(a_.required(flag)) : a_.get(flag);
    if (p) inputs_.emplace_back(flag, *p);
    return p;
  }
  std::optional<std::string> output(const std::string& flag, bool required) {
    auto p = required ? std::optional<std::string>(a_.required(flag)) : a_.get(flag);
    if (!p) return p;
    for (const auto& [f, q] : inputs_)
      if (same_file(*p, q))
        throw usage_error(str(flag, ": ", *p, " is the input file of ", f, " (", q, "); refusing to overwrite an input"));
    for (const auto& [f, q] : outputs_)
      if (same_file(*p, q)) throw usage_error(str(flag, ": ", *p, " is also the output file of ", f));
    outputs_.emplace_back(flag, *p);
    return p;
  }

 private:
  static bool same_file(const std::string& a, const std::string& b) {
    std::error_code e1, e2;
    if (fs::exists(a, e1) && fs::exists(b, e2)) return fs::equivalent(a, b, e1);  // links included
    return fs::weakly_canonical(a, e1) == fs::weakly_canonical(b, e2);
  }
  const args& a_;
  std::vector<std::pair<std::string, std::string>> inputs_, outputs_;
};

npy::array load(const std::string& flag, const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw io_error(str(flag, ": ", path, " is a directory"));
  if (!std::ifstream(path, std::ios::binary)) throw io_error(str(flag, ": cannot open ", path, " for reading"));
  try {
    return npy::read(path);
  } catch (const topofr::error& e) {
    throw usage_error(str(flag, ": ", e.what()));
  }
}

template <class T>
void save(const std::string& flag, const std::string& path, const std::vector<T>& v, std::vector<index_t> shape) {
  try {
    npy::write(path, v.data(), shape);
  } catch (const topofr::error& e) {
    throw io_error(str(flag, ": ", e.what()));
  }
}

std::string shape_of(const npy::array& a) { return a.shape_string(); }

/// Elements of a float input, converted to the compute type.
template <class T>
std::vector<T> floats(const std::string& flag, const npy::array& a) {
  try {
    return a.as<T>(flag);
  } catch (const topofr::error& e) {
    throw usage_error(e.what());
  }
}

/// Class labels: int32 or int64, shape (n,).
std::vector<std::int64_t> labels(const std::string& flag, const npy::array& a, index_t n) {
  if (a.ndim() != 1 || a.shape[0] != n)
    throw usage_error(str(flag, ": expected shape (", n, ",) to match --cos, got ", shape_of(a)));
  try {
    return a.as<std::int64_t>(flag);
  } catch (const topofr::error& e) {
    throw usage_error(e.what());
  }
}

/// Points: (n, d), or an image batch (N, C, H, W) seen as N points of dimension C*H*W.
struct points_shape {
  index_t n, d;
  bool image;
  index_t c, h, w;
};
points_shape points(const std::string& flag, const npy::array& a) {
  if (a.ndim() == 2) return {a.shape[0], a.shape[1], false, 0, 0, 0};
  if (a.ndim() == 4) return {a.shape[0], a.shape[1] * a.shape[2] * a.shape[3], true, a.shape[1], a.shape[2], a.shape[3]};
  throw usage_error(str(flag, ": expected points of shape (n, d) or an image batch (N, C, H, W), got ", shape_of(a)));
}

/// The compute dtype: --dtype, else float64 when any float input is float64, else float32.
npy::dtype compute_dtype(const args& a, std::initializer_list<const npy::array*> inputs) {
  const std::string d = a.choice("--dtype", {"float32", "float64"}, "");
  if (d == "float32") return npy::dtype::float32;
  if (d == "float64") return npy::dtype::float64;
  bool any32 = false;
  for (const npy::array* x : inputs) {
    if (x && x->type == npy::dtype::float64) return npy::dtype::float64;
    if (x && x->type == npy::dtype::float32) any32 = true;
  }
  return any32 ? npy::dtype::float32 : npy::dtype::float64;
}

template <class T> const char* type_name() { return std::is_same<T, float>::value ? "float32" : "float64"; }

// ---------------------------------------------------------------------------------------------------
// Device dispatch and timing

enum class device { cpu, cuda };

/// Reads --device; checked before any file is read, so that a wrong device fails fast.
device pick_device(const args& a) {
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
  // cuda: host views in, the cli_cuda overloads stage them through the device (own stream, status word).
  struct cuda_session {
    topofr::cli_cuda::exec e;
    int* status = nullptr;
    cuda_session() {
      topofr::cuda::check_cuda(cudaStreamCreate(&e.ctx.stream), "cli");
      topofr::cuda::check_cuda(cudaMalloc(&status, sizeof(int)), "cli");
      topofr::cuda::check_cuda(cudaMemset(status, 0, sizeof(int)), "cli");
      e.ctx.status = status;
    }
    ~cuda_session() {
      cudaFree(status);
      cudaStreamDestroy(e.ctx.stream);
    }
  };
  std::optional<cuda_session> session;
  if (dev == device::cuda) session.emplace();
  auto run_once = [&] {
    if (session) compute(session->e);
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

std::string g(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

// ---------------------------------------------------------------------------------------------------
// pairs

template <class T>
int pairs_run(const args& a, device dev, const std::optional<std::string>& dist_path, npy::array& in,
              double scale, const std::string& out, const std::optional<std::string>& deaths_out) {
  const bool from_points = !dist_path;
  index_t n, d = 0;
  if (from_points) {
    const points_shape p = points("--points", in);
    n = p.n;
    d = p.d;
    if (n < 2) throw usage_error(str("--points: need at least 2 points, got shape ", shape_of(in)));
  } else {
    if (in.ndim() != 2 || in.shape[0] != in.shape[1])
      throw usage_error(str("--dist: expected a square (n, n) matrix, got shape ", shape_of(in)));
    n = in.shape[0];
    if (n < 2) throw usage_error(str("--dist: need n >= 2, got shape ", shape_of(in)));
  }
  const std::vector<T> x = floats<T>(from_points ? "--points" : "--dist", in);
  in = {};  // the converted copy is all we need
  std::vector<T> dist(from_points ? static_cast<std::size_t>(n * n) : 0);
  std::vector<topofr::edge> pairs(static_cast<std::size_t>(n - 1));
  std::vector<T> deaths(static_cast<std::size_t>(n - 1));

  on_device(a, dev, [&](auto exec) {
    topofr::matrix_view<const T> dv(x.data(), n, n);
    if (from_points) {
      topofr::pairwise_distances(exec, topofr::matrix_view<const T>(x.data(), n, d), topofr::matrix_view<T>(dist.data(), n, n), scale);
      dv = topofr::matrix_view<const T>(dist.data(), n, n);
    }
    topofr::persistence_pairs(exec, dv, topofr::vector_view<topofr::edge>(pairs.data(), n - 1),
                              topofr::vector_view<T>(deaths.data(), n - 1));
  });

  std::vector<std::int32_t> flat(2 * pairs.size());
  for (std::size_t k = 0; k < pairs.size(); ++k) flat[2 * k] = pairs[k].u, flat[2 * k + 1] = pairs[k].v;
  const auto [lo, hi] = min_max(deaths);
  save("--out", out, flat, {n - 1, 2});
  std::printf("pairs: n=%lld, %lld pairs, max death=%s -> %s\n", static_cast<long long>(n),
              static_cast<long long>(n - 1), g(hi).c_str(), out.c_str());
  if (deaths_out) {
    save("--deaths", *deaths_out, deaths, {n - 1});
    std::printf("deaths: %lld values (%s) in [%s, %s] -> %s\n", static_cast<long long>(n - 1), type_name<T>(),
                g(lo).c_str(), g(hi).c_str(), deaths_out->c_str());
  }
  return 0;
}

int cmd_pairs(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const auto dist = io.input("--dist", false);
  const auto pts = io.input("--points", false);
  if (dist && pts) throw usage_error("--dist and --points are mutually exclusive (give one)");
  if (!dist && !pts) throw usage_error("--dist or --points: one is required");
  if (dist && a.has("--scale")) throw usage_error("--scale: applies to --points only (--dist is used as given)");
  const double scale = a.positive("--scale", 1.0);
  const std::string out = *io.output("--out", true);
  const auto deaths = io.output("--deaths", false);
  a.integer("--repeat", 0, 1);
  npy::array in = dist ? load("--dist", *dist) : load("--points", *pts);
  if (compute_dtype(a, {&in}) == npy::dtype::float32) return pairs_run<float>(a, dev, dist, in, scale, out, deaths);
  return pairs_run<double>(a, dev, dist, in, scale, out, deaths);
}

// ---------------------------------------------------------------------------------------------------
// isa

template <class T>
int isa_run(const args& a, device dev, const npy::array& xa, const npy::array& za, topofr::isa_options opt,
            const std::string& loss_out, const std::optional<std::string>& grad_out,
            const std::optional<std::string>& grad_x_out) {
  const points_shape xs = points("--x", xa), zs = points("--z", za);
  if (xs.n != zs.n)
    throw usage_error(str("--z: ", zs.n, " samples (shape ", shape_of(za), ") but --x has ", xs.n, " (shape ",
                          shape_of(xa), ")"));
  if (xs.n < 2) throw usage_error(str("--x: need at least 2 samples, got shape ", shape_of(xa)));
  const std::vector<T> x = floats<T>("--x", xa), z = floats<T>("--z", za);
  std::vector<T> gz(grad_out ? z.size() : 0), gx(grad_x_out ? x.size() : 0);
  T loss = 0;
  on_device(a, dev, [&](auto exec) {
    loss = topofr::isa_loss_from_points(exec, topofr::matrix_view<const T>(x.data(), xs.n, xs.d),
                                        topofr::matrix_view<const T>(z.data(), zs.n, zs.d), opt,
                                        grad_out ? topofr::matrix_view<T>(gz.data(), zs.n, zs.d) : topofr::matrix_view<T>(),
                                        grad_x_out ? topofr::matrix_view<T>(gx.data(), xs.n, xs.d) : topofr::matrix_view<T>());
  });
  save("--loss-out", loss_out, std::vector<T>{loss}, {1});
  std::printf("isa: n=%lld, loss=%s (%s, %s, x-scale=%s, z-scale=%s, %s) -> %s\n", static_cast<long long>(xs.n),
              g(loss).c_str(), opt.variant == topofr::isa_variant::symmetric ? "symmetric" : "sorted_deaths",
              opt.reduce == topofr::reduction::mean ? "mean" : "sum", g(opt.x_scale).c_str(), g(opt.z_scale).c_str(),
              type_name<T>(), loss_out.c_str());
  auto norm = [](const std::vector<T>& v) {
    double s = 0;
    for (T e : v) s += double(e) * double(e);
    return std::sqrt(s);
  };
  if (grad_out) {
    save("--grad-out", *grad_out, gz, za.shape);
    std::printf("grad: dL/dz, shape %s, norm=%s -> %s\n", shape_of(za).c_str(), g(norm(gz)).c_str(), grad_out->c_str());
  }
  if (grad_x_out) {
    save("--grad-x-out", *grad_x_out, gx, xa.shape);
    std::printf("grad: dL/dx, shape %s, norm=%s -> %s\n", shape_of(xa).c_str(), g(norm(gx)).c_str(), grad_x_out->c_str());
  }
  return 0;
}

int cmd_isa(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const std::string xp = *io.input("--x", true), zp = *io.input("--z", true);
  const std::string loss_out = *io.output("--loss-out", true);
  const auto grad_out = io.output("--grad-out", false);
  const auto grad_x_out = io.output("--grad-x-out", false);
  topofr::isa_options opt;
  opt.variant = a.choice("--variant", {"symmetric", "sorted_deaths"}, "symmetric") == "symmetric"
                    ? topofr::isa_variant::symmetric
                    : topofr::isa_variant::sorted_deaths;
  opt.reduce = a.choice("--reduction", {"sum", "mean"}, "mean") == "mean" ? topofr::reduction::mean : topofr::reduction::sum;
  const double xs = a.positive("--x-scale", 1.0), zs = a.positive("--z-scale", 1.0);
  a.integer("--repeat", 0, 1);
  const npy::array xa = load("--x", xp), za = load("--z", zp);
  const points_shape xshape = points("--x", xa);
  // The released code divides image-space distances by sqrt(4*C*H*W); points keep scale 1.
  opt.x_scale = a.has("--x-scale") ? xs : (xshape.image ? topofr::image_scale(xshape.c, xshape.h, xshape.w) : 1.0);
  opt.z_scale = zs;
  if (compute_dtype(a, {&xa, &za}) == npy::dtype::float32)
    return isa_run<float>(a, dev, xa, za, opt, loss_out, grad_out, grad_x_out);
  return isa_run<double>(a, dev, xa, za, opt, loss_out, grad_out, grad_x_out);
}

// ---------------------------------------------------------------------------------------------------
// gum

template <class T>
int gum_run(const args& a, device dev, const npy::array& ea, const topofr::gum_options& opt, const std::string& out,
            const std::optional<std::string>& pi_out, const std::optional<std::string>& gamma_out) {
  if (ea.ndim() != 1) throw usage_error(str("--entropy: expected shape (n,), got ", shape_of(ea)));
  const index_t n = ea.shape[0];
  const std::vector<T> e = floats<T>("--entropy", ea);
  std::vector<T> h(static_cast<std::size_t>(n));
  topofr::gum_result r{};
  on_device(a, dev, [&](auto exec) {
    r = topofr::gum_fit(exec, topofr::vector_view<const T>(e.data(), n), topofr::vector_view<T>(h.data(), n), opt);
  });
  save("--out", out, h, {n});
  index_t hard = 0;
  for (T v : h) hard += v > T(0.5);
  std::printf("gum: n=%lld, pi=%s, sigma=%s, c=%s, %d iterations, %s, %lld samples with h > 0.5 -> %s\n",
              static_cast<long long>(n), g(r.pi).c_str(), g(r.sigma).c_str(), g(r.c).c_str(), r.iterations,
              r.converged ? "converged" : "NOT converged", static_cast<long long>(hard), out.c_str());
  if (pi_out) {
    save("--pi-out", *pi_out, std::vector<T>{static_cast<T>(r.pi)}, {1});
    std::printf("pi: %s -> %s\n", g(r.pi).c_str(), pi_out->c_str());
  }
  if (gamma_out) {  // the Gaussian posterior, what the released gauss_unif returns
    std::vector<T> gamma(h.size());
    for (std::size_t i = 0; i < h.size(); ++i) gamma[i] = static_cast<T>(1.0 - static_cast<double>(h[i]));
    save("--gamma-out", *gamma_out, gamma, {n});
    std::printf("gamma = 1 - h -> %s\n", gamma_out->c_str());
  }
  return 0;
}

int cmd_gum(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const std::string ep = *io.input("--entropy", true);
  const std::string out = *io.output("--out", true);
  const auto pi_out = io.output("--pi-out", false);
  const auto gamma_out = io.output("--gamma-out", false);
  topofr::gum_options opt;
  opt.mode = a.choice("--mode", {"reference", "robust"}, "reference") == "reference" ? topofr::gum_mode::reference
                                                                                  : topofr::gum_mode::robust;
  opt.symmetrize = !a.has("--no-symmetrize");
  opt.max_iter = static_cast<int>(a.integer("--max-iter", opt.max_iter, 1));
  opt.tol = a.has("--tol") ? a.positive("--tol", opt.tol) : opt.tol;
  a.integer("--repeat", 0, 1);
  const npy::array ea = load("--entropy", ep);
  if (compute_dtype(a, {&ea}) == npy::dtype::float32) return gum_run<float>(a, dev, ea, opt, out, pi_out, gamma_out);
  return gum_run<double>(a, dev, ea, opt, out, pi_out, gamma_out);
}

// ---------------------------------------------------------------------------------------------------
// arcface and margin-ce

topofr::combined_margin margins(const args& a) {
  topofr::combined_margin m;
  m.s = a.number("--s", m.s);
  m.m1 = a.number("--m1", m.m1);
  m.m2 = a.number("--m2", m.m2);
  m.m3 = a.number("--m3", m.m3);
  return m;
}

std::pair<index_t, index_t> cos_shape(const npy::array& c) {
  if (c.ndim() != 2) throw usage_error(str("--cos: expected an (N, C) matrix, got shape ", shape_of(c)));
  return {c.shape[0], c.shape[1]};
}

template <class T>
int arcface_run(const args& a, device dev, const npy::array& ca, const npy::array& la, const npy::array* ga,
                const topofr::combined_margin& m, const std::string& logits_out,
                const std::optional<std::string>& grad_out) {
  const auto shape = cos_shape(ca);
  const topofr::index_t n = shape.first, c = shape.second;
  const std::vector<T> cs = floats<T>("--cos", ca);
  const std::vector<std::int64_t> y = labels("--labels", la, n);
  std::vector<T> gin;
  if (ga) {
    if (ga->shape != ca.shape)
      throw usage_error(str("--grad-in: expected the shape of --cos ", shape_of(ca), ", got ", shape_of(*ga)));
    gin = floats<T>("--grad-in", *ga);
  }
  std::vector<T> logits(cs.size()), gcos(ga ? cs.size() : 0);
  on_device(a, dev, [&](auto exec) {
    topofr::matrix_view<const T> cv(cs.data(), n, c);
    topofr::vector_view<const std::int64_t> yv(y.data(), n);
    topofr::margin_logits(exec, cv, yv, m, topofr::matrix_view<T>(logits.data(), n, c));
    if (ga)
      topofr::margin_logits_backward(exec, cv, yv, m, topofr::matrix_view<const T>(gin.data(), n, c),
                                     topofr::matrix_view<T>(gcos.data(), n, c));
  });
  save("--logits-out", logits_out, logits, {n, c});
  const auto [lo, hi] = min_max(logits);
  std::printf("arcface: N=%lld, C=%lld, s=%s m1=%s m2=%s m3=%s, logits in [%s, %s] -> %s\n", static_cast<long long>(n),
              static_cast<long long>(c), g(m.s).c_str(), g(m.m1).c_str(), g(m.m2).c_str(), g(m.m3).c_str(),
              g(lo).c_str(), g(hi).c_str(), logits_out.c_str());
  if (ga) {
    save("--grad-out", *grad_out, gcos, {n, c});
    const auto [glo, ghi] = min_max(gcos);
    std::printf("grad: dL/dcos, shape %s, in [%s, %s] -> %s\n", shape_of(ca).c_str(), g(glo).c_str(), g(ghi).c_str(),
                grad_out->c_str());
  }
  return 0;
}

int cmd_arcface(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const std::string cp = *io.input("--cos", true), lp = *io.input("--labels", true);
  const auto gp = io.input("--grad-in", false);
  const std::string logits_out = *io.output("--logits-out", true);
  const auto grad_out = io.output("--grad-out", false);
  if (gp.has_value() != grad_out.has_value())
    throw usage_error(gp ? "--grad-out: required with --grad-in" : "--grad-in: required with --grad-out");
  const topofr::combined_margin m = margins(a);
  a.integer("--repeat", 0, 1);
  const npy::array ca = load("--cos", cp), la = load("--labels", lp);
  std::optional<npy::array> ga;
  if (gp) ga = load("--grad-in", *gp);
  const npy::array* gptr = ga ? &*ga : nullptr;
  if (compute_dtype(a, {&ca, gptr}) == npy::dtype::float32)
    return arcface_run<float>(a, dev, ca, la, gptr, m, logits_out, grad_out);
  return arcface_run<double>(a, dev, ca, la, gptr, m, logits_out, grad_out);
}

struct ce_outputs {
  std::string loss, entropy, pgt;
  std::optional<std::string> lse, grad;
};

template <class T>
int margin_ce_run(const args& a, device dev, const npy::array& ca, const npy::array& la, const npy::array* wa,
                  const topofr::combined_margin& m, double eps, const ce_outputs& out) {
  const auto shape = cos_shape(ca);
  const topofr::index_t n = shape.first, c = shape.second;
  const std::vector<T> cs = floats<T>("--cos", ca);
  const std::vector<std::int64_t> y = labels("--labels", la, n);
  std::vector<T> w(static_cast<std::size_t>(n), T(1));
  if (wa) {
    if (wa->ndim() != 1 || wa->shape[0] != n)
      throw usage_error(str("--weights: expected shape (", n, ",) to match --cos, got ", shape_of(*wa)));
    w = floats<T>("--weights", *wa);
  }
  std::vector<T> loss(n), ent(n), pgt(n), lse(n), gcos(out.grad ? cs.size() : 0);
  on_device(a, dev, [&](auto exec) {
    topofr::matrix_view<const T> cv(cs.data(), n, c);
    topofr::vector_view<const std::int64_t> yv(y.data(), n);
    topofr::margin_ce_forward(exec, cv, yv, m, eps, topofr::vector_view<T>(loss.data(), n),
                              topofr::vector_view<T>(ent.data(), n), topofr::vector_view<T>(pgt.data(), n),
                              topofr::vector_view<T>(lse.data(), n));
    if (out.grad)
      topofr::margin_ce_backward(exec, cv, yv, m, topofr::vector_view<const T>(lse.data(), n),
                                 topofr::vector_view<const T>(w.data(), n), 1.0 / double(n),
                                 topofr::matrix_view<T>(gcos.data(), n, c));
  });
  auto mean = [](const std::vector<T>& v) {
    double s = 0;
    for (T e : v) s += e;
    return v.empty() ? 0.0 : s / double(v.size());
  };
  double wloss = 0;
  for (index_t i = 0; i < n; ++i) wloss += double(w[i]) * double(loss[i]);
  save("--loss-out", out.loss, loss, {n});
  std::printf("margin-ce: N=%lld, C=%lld, mean loss=%s, weighted mean loss=%s (%s) -> %s\n", static_cast<long long>(n),
              static_cast<long long>(c), g(mean(loss)).c_str(), g(n ? wloss / double(n) : 0.0).c_str(), type_name<T>(),
              out.loss.c_str());
  save("--entropy-out", out.entropy, ent, {n});
  std::printf("entropy: mean=%s -> %s\n", g(mean(ent)).c_str(), out.entropy.c_str());
  save("--pgt-out", out.pgt, pgt, {n});
  std::printf("p_gt: mean=%s -> %s\n", g(mean(pgt)).c_str(), out.pgt.c_str());
  if (out.lse) {
    save("--lse-out", *out.lse, lse, {n});
    std::printf("lse: mean=%s -> %s\n", g(mean(lse)).c_str(), out.lse->c_str());
  }
  if (out.grad) {
    save("--grad-out", *out.grad, gcos, {n, c});
    const auto [glo, ghi] = min_max(gcos);
    std::printf("grad: d(mean w*loss)/dcos, shape %s, in [%s, %s] -> %s\n", shape_of(ca).c_str(), g(glo).c_str(),
                g(ghi).c_str(), out.grad->c_str());
  }
  return 0;
}

int cmd_margin_ce(const args& a) {
  const device dev = pick_device(a);
  files io(a);
  const std::string cp = *io.input("--cos", true), lp = *io.input("--labels", true);
  const auto wp = io.input("--weights", false);
  ce_outputs out;
  out.loss = *io.output("--loss-out", true);
  out.entropy = *io.output("--entropy-out", true);
  out.pgt = *io.output("--pgt-out", true);
  out.lse = io.output("--lse-out", false);
  out.grad = io.output("--grad-out", false);
  const topofr::combined_margin m = margins(a);
  const double eps = a.number("--entropy-eps", 1e-5);
  a.integer("--repeat", 0, 1);
  const npy::array ca = load("--cos", cp), la = load("--labels", lp);
  std::optional<npy::array> wa;
  if (wp) wa = load("--weights", *wp);
  const npy::array* wptr = wa ? &*wa : nullptr;
  if (compute_dtype(a, {&ca}) == npy::dtype::float32) return margin_ce_run<float>(a, dev, ca, la, wptr, m, eps, out);
  return margin_ce_run<double>(a, dev, ca, la, wptr, m, eps, out);
}

// ---------------------------------------------------------------------------------------------------
// The command table and help

const std::vector<command>& commands() {
  static const std::vector<command> c = {
      {"pairs", "--dist D.npy | --points X.npy [--scale s]  --out P.npy [--deaths d.npy]",
       "0-dimensional Vietoris-Rips persistence pairs: the n-1 merge edges (u < v), sorted by (death, u*n+v).",
       {{"--dist", "D.npy", "an (n, n) distance matrix (symmetric, finite, >= 0)"},
        {"--points", "X.npy", "points (n, d) or an image batch (N, C, H, W); distances computed here"},
        {"--scale", "s", "with --points: divide the distances by s > 0 (default 1)"},
        {"--out", "P.npy", "the pairs: int32 (n-1, 2)"},
        {"--deaths", "d.npy", "the death times dist(u, v): (n-1,), compute dtype"}},
       cmd_pairs},
      {"isa", "--x X.npy --z Z.npy [--x-scale s] [--z-scale s] [--variant V] [--reduction R] --loss-out L.npy "
              "[--grad-out G.npy]",
       "ISA topological structure alignment loss between an input batch X and a latent batch Z.",
       {{"--x", "X.npy", "input points (n, d), or an image batch (N, C, H, W) flattened to (N, C*H*W)"},
        {"--z", "Z.npy", "latent points (n, d'), or (N, C, H, W)"},
        {"--x-scale", "s", "divide input distances by s > 0 (default 1; sqrt(4*C*H*W) when --x is 4-d, as the "
                           "released code does)"},
        {"--z-scale", "s", "divide latent distances by s > 0 (default 1)"},
        {"--variant", "symmetric|sorted_deaths", "symmetric: the paper's loss (with 1/2, default); sorted_deaths: "
                                                 "the released code's default"},
        {"--reduction", "sum|mean", "mean divides by n (default mean)"},
        {"--loss-out", "L.npy", "the loss, shape (1,)"},
        {"--grad-out", "G.npy", "dL/dz, the shape of --z"},
        {"--grad-x-out", "G.npy", "dL/dx, the shape of --x"}},
       cmd_isa},
      {"gum", "--entropy E.npy --out H.npy [--pi-out p.npy] [--gamma-out G.npy] [--mode M] [--no-symmetrize]",
       "Gaussian-uniform mixture EM on per-sample entropies (SDE); h = posterior of the uniform (hard) component.",
       {{"--entropy", "E.npy", "entropies, shape (n,)"},
        {"--out", "H.npy", "hard posterior h = 1 - gamma, shape (n,)"},
        {"--pi-out", "p.npy", "the fitted Gaussian weight [pi], shape (1,)"},
        {"--gamma-out", "G.npy", "Gaussian posterior gamma = 1 - h (what the released gauss_unif returns), shape (n,)"},
        {"--mode", "reference|robust", "reference: the released GUM.py EM (default); robust: the library's "
                                       "numerically principled variant"},
        {"--no-symmetrize", nullptr, "do not negate the entropies at even indices before the fit"},
        {"--max-iter", "N", "at most N EM iterations (default 1000)"},
        {"--tol", "t", "stop when the likelihood sum changes by less than t > 0 (default 1e-10)"}},
       cmd_gum},
      {"arcface", "--cos C.npy --labels Y.npy [--s 64] [--m1 1] [--m2 0.5] [--m3 0] --logits-out L.npy "
                  "[--grad-in G.npy --grad-out GC.npy]",
       "Combined-margin logits s*(cos(m1*theta + m2) - m3) at the label, s*cos elsewhere; and their backward.",
       {{"--cos", "C.npy", "cosines (N, C), in [-1, 1]"},
        {"--labels", "Y.npy", "int32 or int64 (N,), in [0, C) or -1 (class not in this shard)"},
        {"--s", "s", "logit scale (default 64)"},
        {"--m1", "m1", "multiplicative angular margin (default 1)"},
        {"--m2", "m2", "additive angular margin (default 0.5)"},
        {"--m3", "m3", "additive cosine margin (default 0)"},
        {"--logits-out", "L.npy", "the logits (N, C)"},
        {"--grad-in", "G.npy", "dL/dlogits (N, C); needs --grad-out"},
        {"--grad-out", "GC.npy", "dL/dcos (N, C); needs --grad-in"}},
       cmd_arcface},
      {"margin-ce", "--cos C.npy --labels Y.npy [--s --m1 --m2 --m3] [--weights W.npy] [--entropy-eps 1e-5] "
                    "--loss-out L.npy --entropy-out E.npy --pgt-out P.npy [--lse-out S.npy] [--grad-out GC.npy]",
       "Fused margin-softmax cross-entropy: per-sample loss, entropy and p_gt; gradient of mean_i w_i loss_i.",
       {{"--cos", "C.npy", "cosines (N, C), in [-1, 1]"},
        {"--labels", "Y.npy", "int32 or int64 (N,), in [0, C) or -1"},
        {"--s", "s", "logit scale (default 64)"},
        {"--m1", "m1", "multiplicative angular margin (default 1)"},
        {"--m2", "m2", "additive angular margin (default 0.5)"},
        {"--m3", "m3", "additive cosine margin (default 0)"},
        {"--weights", "W.npy", "per-sample weights w (N,) for --grad-out (default 1)"},
        {"--entropy-eps", "e", "entropy = -sum p log(p + e) (default 1e-5)"},
        {"--loss-out", "L.npy", "per-sample cross-entropy (N,)"},
        {"--entropy-out", "E.npy", "per-sample entropy of the margin softmax (N,)"},
        {"--pgt-out", "P.npy", "per-sample softmax probability of the label (N,)"},
        {"--lse-out", "S.npy", "per-sample log-sum-exp of the logits (N,)"},
        {"--grad-out", "GC.npy", "d(mean_i w_i loss_i)/dcos (N, C)"}},
       cmd_margin_ce},
  };
  return c;
}

void print_flags(const std::vector<flag>& flags) {
  for (const auto& f : flags) {
    std::string left = std::string("  ") + f.name + (f.metavar ? std::string(" ") + f.metavar : "");
    if (left.size() < 30) left.resize(30, ' ');
    else left += "\n" + std::string(30, ' ');
    std::printf("%s%s\n", left.c_str(), f.help);
  }
}

void command_help(const command& c) {
  std::printf("usage: topofr %s %s\n\n%s\n\nflags:\n", c.name, c.usage, c.summary);
  print_flags(c.flags);
  std::printf("\ncommon flags:\n");
  print_flags(common_flags());
  std::printf("\nexit codes: 0 success, 2 usage error or invalid input, 1 I/O failure.\n");
}

void main_help() {
  std::printf("usage: topofr <subcommand> [flags]   (topofr <subcommand> --help for its flags)\n\n"
              "TopoFR building blocks on .npy files (little-endian float32/float64/int32/int64, C order).\n\n"
              "subcommands:\n");
  for (const auto& c : commands()) std::printf("  %-10s %s\n", c.name, c.summary);
  std::printf("\nevery subcommand: [--device cpu|cuda] [--dtype float32|float64] [--repeat N] [--help]\n"
              "exit codes: 0 success, 2 usage error or invalid input, 1 I/O failure.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "topofr: missing subcommand (see topofr --help)\n");
    return 2;
  }
  if (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    main_help();
    return 0;
  }
  const std::string name = argv[1];
  const command* cmd = nullptr;
  for (const auto& c : commands())
    if (name == c.name) cmd = &c;
  if (!cmd) {
    std::fprintf(stderr, "topofr: unknown subcommand '%s' (see topofr --help)\n", name.c_str());
    return 2;
  }
  for (int i = 2; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      command_help(*cmd);
      return 0;
    }
  auto fail = [&](const std::string& msg, int code) {
    std::string line = msg;
    for (char& ch : line)  // always exactly one printable line (messages may quote a corrupt header)
      if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = ch == '\n' ? ' ' : '?';
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::fflush(stdout);
    std::fprintf(stderr, "topofr %s: %s\n", cmd->name, line.c_str());
    return code;
  };
  try {
    const args a(*cmd, argc, argv);
    return cmd->run(a);
  } catch (const usage_error& e) {
    return fail(e.what(), 2);
  } catch (const io_error& e) {
    return fail(e.what(), 1);
  } catch (const topofr::error& e) {  // invalid input found by the library
    return fail(e.what(), 2);
  } catch (const std::bad_alloc&) {
    return fail("out of memory (input too large)", 1);
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what(), 1);
  }
}
