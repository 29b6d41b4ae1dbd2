// topofr-train — face-recognition training on LibTorch with the TopoFR blocks of the topofr library.
//
// IResNet backbone (iresnet.hpp) -> embedding z -> normalised classifier (cosines) -> the library's
// margin cross-entropy with SDS weights (MarginCE), plus the library's ISA between the clean batch and
// the embeddings of its RSP-perturbed copy (ISA): L = L_cls + alpha L_sa (docs/math.md). Held-out identities
// are verified (LFW protocol) before and after training, and the topological discrepancy is measured.
// Several processes (--nproc, --world-size/--rank/--master): data-parallel backbone, class-sharded head
// (process_group.hpp, sharded_head.hpp); a W-process run computes what --chunks W computes in one process.
// Usage: topofr-train --help. Docs: docs/train.md.
#include <torch/torch.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <topofr/core/file.hpp>
#include <topofr/distance.hpp>
#include <topofr/isa.hpp>
#include <topofr/persistence.hpp>
#include <topofr/rsp.hpp>

#include "autograd.hpp"
#include "checkpoint.hpp"
#include "image_folder.hpp"
#include "iresnet.hpp"
#include "process_group.hpp"
#include "sharded_head.hpp"
#include "stb_impl.hpp"
#include "synthetic.hpp"
#include "verify.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace topofr;
using namespace topofr::train;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::ordered_json;  // keys in insertion order; NaN and infinities dump as null

namespace {

struct config {
  std::string data;
  bool skip_bad = false;
  std::int64_t max_pixels = kDefaultMaxImagePixels;
  int identities = 32, per_identity = 16;
  double holdout = 0.25;
  int height = 48, width_px = 48;
  int depth = 18;
  double width = 0.25;
  int embedding = 512;
  double dropout = 0;
  std::string loss = "topofr";
  double alpha = 0.1, lambda = 1.0, xi = 0.2, s = 64, m = 0.5;
  std::string isa_variant = "symmetric";
  std::string isa_latent = "normalized";
  bool released_code = false;
  int steps = 300, batch = 32, warmup = -1;
  double lr = 0.1, momentum = 0.9, weight_decay = 5e-4;
  std::uint64_t seed = 1;
  int threads = 0;
  std::string device = "cpu";
  std::string out = "topofr-train-out";
  int checkpoint_every = 50;
  bool resume = false;
  std::string report;
  bool progress = true;
  bool plots = true;
  // Several processes (docs/train.md, "Several processes and machines").
  int nproc = 1;            // --nproc: start this many local ranks (the launcher)
  int world = 1, rank = 0;  // --world-size, --rank: this process's place in the run
  std::string master;       // --master HOST:PORT (rank 0 hosts the rendezvous)
  std::string master_host;
  int master_port = 0;
  double dist_timeout = 300;
  int chunks = 1;           // --chunks K: the backbone on K slices of this process's rows (K ranks in one)
  double sample_rate = 1.0; // --sample-rate: Partial FC's class sample
  std::string margin_grad = "exact";

  bool sharded() const { return world > 1 || sample_rate < 1.0; }

  bool use_isa() const { return loss == "arcface+isa" || loss == "topofr"; }
  bool use_sds() const { return loss == "arcface+sds" || loss == "topofr"; }
  // What a checkpoint must agree on to be resumed, flag by flag (values at full precision).
  flag_list flags() const {
    auto num = [](double v) {  // shortest text that reads back as v
      char b[64];
      return std::string(b, std::to_chars(b, b + sizeof b, v).ptr);
    };
    return {{"--data", data},
            {"--identities", std::to_string(identities)},
            {"--per-identity", std::to_string(per_identity)},
            {"--holdout", num(holdout)},
            {"--image-size", std::to_string(height) + "x" + std::to_string(width_px)},
            {"--depth", std::to_string(depth)},
            {"--width", num(width)},
            {"--embedding", std::to_string(embedding)},
            {"--dropout", num(dropout)},
            {"--loss", loss},
            {"--alpha", num(alpha)},
            {"--lambda", num(lambda)},
            {"--xi", num(xi)},
            {"--s", num(s)},
            {"--m", num(m)},
            {"--isa-variant", isa_variant},
            {"--isa-latent", isa_latent},
            {"--released-code", released_code ? "on" : "off"},
            {"--steps", std::to_string(steps)},
            {"--batch", std::to_string(batch)},
            {"--warmup", std::to_string(warmup)},
            {"--lr", num(lr)},
            {"--seed", std::to_string(seed)}};
  }
  // flags() plus the ones added with several processes, listed only when not at their default, so that a
  // single-process checkpoint of an earlier topofr-train still resumes.
  flag_list all_flags() const {
    auto num = [](double v) {
      char b[64];
      return std::string(b, std::to_chars(b, b + sizeof b, v).ptr);
    };
    flag_list f = flags();
    if (world > 1) f.push_back({"--world-size", std::to_string(world)});
    if (chunks > 1) f.push_back({"--chunks", std::to_string(chunks)});
    if (sample_rate < 1.0) f.push_back({"--sample-rate", num(sample_rate)});
    if (margin_grad != "exact") f.push_back({"--margin-grad", margin_grad});
    return f;
  }
};

const char* kAbout = R"(topofr-train: train a face-recognition IResNet with TopoFR (ArcFace + PTSA + SDE) on LibTorch,
then verify on held-out identities.

Without --data it trains on SYNTHETIC faces (procedural identities generated from --seed; no real
images); give --data DIR to train on a real image folder (DIR/<identity>/<image>.{pgm,png,jpg,jpeg}).
Docs: docs/train.md.)";

[[noreturn]] void usage_error(const std::string& msg) {
  throw std::invalid_argument(msg + " (see topofr-train --help)");
}

config parse(int argc, char** argv) {
  config c;
  CLI::App app(kAbout, "topofr-train");
  app.get_formatter()->column_width(34);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: the last wins
  // A number in [lo, hi] (an integer for integer flags, which may be written 1e3: rewritten to 1000 here).
  auto number = [](double lo, double hi, bool integer) {
    return CLI::Validator(
        [=](std::string& v) -> std::string {
          char* end = nullptr;
          const double x = std::strtod(v.c_str(), &end);
          char b[64];
          std::snprintf(b, sizeof b, " in [%g, %g], got '", lo, hi);
          if (v.empty() || *end != '\0' || !(x >= lo && x <= hi) || (integer && x != std::floor(x)))
            return std::string("expected ") + (integer ? "an integer" : "a number") + b + v + "'";
          if (integer) v = std::to_string(static_cast<long long>(x));
          return "";
        },
        "");
  };
  auto range = [&](double lo, double hi) { return number(lo, hi, false); };
  auto integer = [&](double lo, double hi) { return number(lo, hi, true); };
  std::string image_size;

  app.add_option("--data", c.data, "image folder, one subfolder per identity (gray, replicated to 3 channels)")
      ->group("Data");
  app.add_flag("--skip-bad-images", c.skip_bad, "skip unreadable/corrupt/hostile images with a warning (default: error)")
      ->group("Data");
  app.add_option("--max-image-pixels", c.max_pixels, "refuse larger images, checked from the header (default 16777216)")
      ->transform(integer(1, 1e12))->group("Data");
  app.add_option("--identities", c.identities, "synthetic data: identities (default 32)")->transform(integer(2, 1e6))->group("Data");
  app.add_option("--per-identity", c.per_identity, "synthetic data: images per identity (default 16)")
      ->transform(integer(2, 1e6))->group("Data");
  app.add_option("--holdout", c.holdout, "fraction of identities held out for verification (default 0.25)")
      ->check(range(0.01, 0.99))->group("Data");
  app.add_option("--image-size", image_size, "input size S or HxW, each in [16, 1024] (default 48; the paper uses 112)")
      ->group("Data");
  app.add_option("--depth", c.depth, "IResNet depth (default 18)")->check(CLI::IsMember({18, 34, 50, 100}))->group("Model");
  app.add_option("--width", c.width, "channel multiplier (default 0.25; 1 = insightface's IResNet)")
      ->check(range(0.01, 8))->group("Model");
  app.add_option("--embedding", c.embedding, "embedding size (default 512)")->transform(integer(2, 65536))->group("Model");
  app.add_option("--dropout", c.dropout, "dropout before the FC layer (default 0)")->check(range(0, 0.99))->group("Model");
  app.add_option("--loss", c.loss, "arcface | arcface+isa | arcface+sds | topofr (default topofr)")
      ->check(CLI::IsMember({"arcface", "arcface+isa", "arcface+sds", "topofr"}))->group("Loss (paper defaults)");
  app.add_option("--alpha", c.alpha, "ISA weight (0.1)")->check(range(0, 1e6))->group("Loss (paper defaults)");
  app.add_option("--lambda", c.lambda, "SDS exponent (1)")->check(range(-1e3, 1e3))->group("Loss (paper defaults)");
  app.add_option("--xi", c.xi, "RSP probability (0.2)")->check(range(0, 1))->group("Loss (paper defaults)");
  app.add_option("--s", c.s, "logit scale (64)")->check(range(1e-6, 1e6))->group("Loss (paper defaults)");
  app.add_option("--m", c.m, "ArcFace margin (0.5)")->check(range(0, 3.14159))->group("Loss (paper defaults)");
  app.add_option("--isa-variant", c.isa_variant, "symmetric (paper) | sorted_deaths (released code)")
      ->check(CLI::IsMember({"symmetric", "sorted_deaths"}))->group("Loss (paper defaults)");
  app.add_option("--isa-latent", c.isa_latent,
                 "normalized (default: unit embeddings, distances / 2) | raw (the paper's and the released code's)")
      ->check(CLI::IsMember({"normalized", "raw"}))->group("Loss (paper defaults)");
  app.add_flag("--released-code", c.released_code, "sorted_deaths ISA on the raw embedding, no focal term")
      ->group("Loss (paper defaults)");
  app.add_option("--steps", c.steps, "training steps (default 300)")->transform(integer(1, 1e9))->group("Optimisation");
  app.add_option("--batch", c.batch, "batch size (default 32)")->transform(integer(2, 1e6))->group("Optimisation");
  app.add_option("--lr", c.lr, "SGD learning rate (0.1; momentum 0.9, weight decay 5e-4, warm-up then poly decay)")
      ->check(range(0, 100))->group("Optimisation");
  app.add_option("--warmup", c.warmup, "warm-up steps (default: 5% of --steps)")->transform(integer(0, 1e9))->group("Optimisation");
  app.add_option("--seed", c.seed, "seed of everything (data, split, init, RSP); a CPU run is reproducible (default 1)")
      ->group("Optimisation");
  app.add_option("--threads", c.threads, "CPU threads (default: all cores; fixed per run for reproducibility)")
      ->transform(integer(1, 4096))->group("Optimisation");
  app.add_option("--device", c.device, "cpu | cuda (cuda needs a CUDA build of LibTorch and a GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))->group("Optimisation");
  app.add_option("--out", c.out, "log.csv, checkpoint.pt, topology.json, plots (default: topofr-train-out)")->group("Output");
  app.add_option("--checkpoint-every", c.checkpoint_every, "checkpoint (and log.csv) every N steps (default 50; atomic)")
      ->transform(integer(1, 1e9))->group("Output");
  app.add_flag("--resume", c.resume, "continue from DIR/checkpoint.pt (same flags; its CRCs are checked first)")->group("Output");
  app.add_option("--report", c.report, "JSON report (default: DIR/report.json)")->group("Output");
  app.add_flag("!--no-progress", c.progress, "no progress line")->group("Output");
  app.add_flag("!--no-plots", c.plots, "no PNG figures (they need /usr/bin/python3 with matplotlib: plot.py)")->group("Output");
  app.add_option("--margin-grad", c.margin_grad,
                 "exact (default: d/dcos of the margin) | straight-through (arcface_torch's no_grad margin)")
      ->check(CLI::IsMember({"exact", "straight-through"}))->group("Loss (paper defaults)");
  app.add_option("--nproc", c.nproc, "start W processes on this machine (ranks 0..W-1 over 127.0.0.1; default 1)")
      ->transform(integer(1, 1024))->group("Several processes");
  app.add_option("--world-size", c.world, "join a run of W processes (with --rank and --master; default 1)")
      ->transform(integer(1, 65536))->group("Several processes");
  app.add_option("--rank", c.rank, "this process's rank in [0, --world-size)")->transform(integer(0, 65535))
      ->group("Several processes");
  app.add_option("--master", c.master, "HOST:PORT of rank 0, which hosts the rendezvous (TCPStore)")
      ->group("Several processes");
  app.add_option("--dist-timeout", c.dist_timeout, "seconds for the rendezvous and each collective (default 300)")
      ->check(range(0.1, 1e6))->group("Several processes");
  app.add_option("--chunks", c.chunks, "run the backbone on K equal slices of the batch: what K ranks compute (default 1)")
      ->transform(integer(1, 65536))->group("Several processes");
  app.add_option("--sample-rate", c.sample_rate, "Partial FC: fraction of each rank's classes per step, (0, 1] (default 1)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            char* end = nullptr;
            const double x = std::strtod(v.c_str(), &end);
            if (v.empty() || *end != '\0' || !(x > 0 && x <= 1)) return "expected a number in (0, 1], got '" + v + "'";
            return "";
          },
          ""))
      ->group("Several processes");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::exit(app.exit(e));
  } catch (const CLI::ParseError& e) {
    usage_error(e.what());
  }
  if (!image_size.empty()) {
    const auto x = image_size.find('x');
    auto dim = [&](const std::string& v) {
      int n = 0;
      const auto r = std::from_chars(v.data(), v.data() + v.size(), n);
      if (v.empty() || r.ec != std::errc() || r.ptr != v.data() + v.size() || n < 16 || n > 1024)
        usage_error("--image-size: expected S or HxW with each in [16, 1024], got '" + image_size + "'");
      return n;
    };
    c.height = dim(image_size.substr(0, x));
    c.width_px = x == std::string::npos ? c.height : dim(image_size.substr(x + 1));
  }
  if (c.released_code) c.isa_variant = "sorted_deaths", c.isa_latent = "raw";
  // Several processes: one line per mistake, before anything starts.
  if (c.nproc > 1 && app.count("--world-size"))
    usage_error("--nproc " + std::to_string(c.nproc) + " starts its own ranks: drop --world-size/--rank/--master, or drop --nproc");
  if (c.rank >= c.world)
    usage_error("--rank " + std::to_string(c.rank) + ": must be in [0, --world-size " + std::to_string(c.world) + ")");
  if (c.world > 1 && c.master.empty())
    usage_error("--world-size " + std::to_string(c.world) + ": needs --master HOST:PORT (rank 0's address) and --rank");
  if (!c.master.empty()) {
    try {
      std::tie(c.master_host, c.master_port) = parse_master(c.master);
    } catch (const std::invalid_argument& e) {
      usage_error(e.what());
    }
  }
  {
    const int w = c.nproc > 1 ? c.nproc : c.world;
    const std::string who = c.nproc > 1 ? "--nproc " + std::to_string(w) : "--world-size " + std::to_string(w);
    const long long parts = static_cast<long long>(w) * c.chunks;
    if (c.batch % parts != 0)
      usage_error("--batch " + std::to_string(c.batch) + ": not divisible by " +
                  (w > 1 ? "the " + std::to_string(w) + " processes (" + who + ")" : std::string("")) +
                  (w > 1 && c.chunks > 1 ? " times " : "") +
                  (c.chunks > 1 ? "--chunks " + std::to_string(c.chunks) : std::string("")) +
                  ": each process runs --batch / " + std::to_string(parts) + " rows of the global batch");
    if (c.batch / parts < 2)
      usage_error("--batch " + std::to_string(c.batch) + ": " + std::to_string(c.batch / parts) +
                  " row(s) per slice over " + std::to_string(parts) +
                  " slices; BatchNorm and ISA need at least 2 (raise --batch)");
    if (w > 1 && c.data.empty()) {  // the synthetic split is known from the flags (split_by_identity)
      const long long k = c.identities, held = std::max<long long>(2, std::llround(c.holdout * static_cast<double>(k)));
      if (held <= k - 1 && w > k - held)
        usage_error(who + ": more processes than the " + std::to_string(k - held) +
                    " training identities (the classifier is split by identity over the processes)");
    }
  }
  if (c.warmup < 0) c.warmup = c.steps / 20;
  if (c.report.empty()) c.report = (fs::path(c.out) / "report.json").string();
  // Output paths that write_file would refuse at the end of the run: refused before any work.
  std::error_code ec;
  if (fs::is_directory(c.report, ec)) usage_error("--report: '" + c.report + "' is a directory");
  if (fs::is_symlink(fs::symlink_status(c.report, ec)) && !fs::exists(c.report, ec))
    usage_error("--report: '" + c.report + "' is a dangling symbolic link");
  if (fs::exists(c.out, ec) && !fs::is_directory(c.out, ec)) usage_error("--out: '" + c.out + "' is not a directory");
  return c;
}

std::string duration(double s) {
  char b[32];
  const long t = std::lround(std::max(0.0, s));
  if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  return b;
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t k = v.size() / 2;
  return v.size() % 2 ? v[k] : 0.5 * (v[k - 1] + v[k]);
}

/// Images [idx] of a set as an N x C x H x W float tensor; flip[i] mirrors sample i.
torch::Tensor gather(const image_set& s, const std::vector<std::int64_t>& idx, const std::vector<char>& flip = {}) {
  const std::int64_t n = static_cast<std::int64_t>(idx.size()), sz = s.image_size();
  torch::Tensor t = torch::empty({n, s.channels, s.height, s.width}, torch::kFloat);
  float* p = t.data_ptr<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    if (!flip.empty() && flip[static_cast<std::size_t>(i)])
      flip_horizontal(s.image(idx[static_cast<std::size_t>(i)]), p + i * sz, s.channels, s.height, s.width);
    else
      std::copy(s.image(idx[static_cast<std::size_t>(i)]), s.image(idx[static_cast<std::size_t>(i)]) + sz, p + i * sz);
  }
  return t;
}

/// The data order: a fresh seeded permutation of the training set per epoch, batches of B (the tail of
/// an epoch is dropped). A pure function of (seed, step): nothing to checkpoint.
struct sampler {
  std::int64_t n, batch, per_epoch;
  std::uint64_t seed;
  std::int64_t cached_epoch = -1;
  std::vector<std::int64_t> perm;

  std::vector<std::int64_t> indices(std::int64_t step) {
    const std::int64_t epoch = step / per_epoch, k = step % per_epoch;
    if (epoch != cached_epoch) {
      perm.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) perm[static_cast<std::size_t>(i)] = i;
      counter_rng r(seed ^ 0x5851F42D4C957F2DULL, static_cast<std::uint64_t>(epoch), 1);
      for (std::int64_t i = n - 1; i > 0; --i) std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(r.below(i + 1))]);
      cached_epoch = epoch;
    }
    return {perm.begin() + k * batch, perm.begin() + (k + 1) * batch};
  }
};

struct eval_result {
  verification_result ver;
  std::vector<double> discrepancy;  // ISA (paper variant) of each evaluation batch
  std::vector<double> deaths_x, deaths_z;  // persistence deaths of the first evaluation batch
  double seconds = 0;
};

/// Embeddings of the held-out images (+ their mirror images, as insightface evaluates), verification,
/// and the topological discrepancy between input and latent batches: the eval set is cut into batches of
/// `batch` in 8 seeded orders, the ISA value (symmetric, mean, inputs / sqrt(4CHW)) of each batch.
eval_result evaluate(IResNet& net, const image_set& ev, const config& c, torch::Device dev) {
  const auto t0 = clock_type::now();
  torch::NoGradGuard ng;
  net->eval();
  const std::int64_t n = ev.size(), e = c.embedding;
  torch::Tensor plain = torch::empty({n, e}), both = torch::empty({n, e});
  for (std::int64_t b = 0; b < n; b += c.batch) {
    std::vector<std::int64_t> idx;
    for (std::int64_t i = b; i < std::min(n, b + c.batch); ++i) idx.push_back(i);
    const torch::Tensor x = gather(ev, idx).to(dev);
    const torch::Tensor z = net->forward(x).to(torch::kCPU);
    const torch::Tensor zf = net->forward(torch::flip(x, {3})).to(torch::kCPU);
    plain.narrow(0, b, z.size(0)).copy_(z);
    both.narrow(0, b, z.size(0)).copy_(z + zf);
  }
  net->train();
  eval_result r;
  both = both.contiguous();
  r.ver = verify(both.data_ptr<float>(), n, e, ev.labels, c.seed);

  const isa_options paper = image_isa_options(ev.channels, ev.height, ev.width, isa_variant::symmetric);
  const std::int64_t nb = std::max<std::int64_t>(2, std::min<std::int64_t>(c.batch, n));
  for (std::uint64_t rep = 0; rep < 8; ++rep) {
    std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) perm[static_cast<std::size_t>(i)] = i;
    counter_rng g(c.seed ^ 0xD1B54A32D192ED03ULL, rep, 2);
    for (std::int64_t i = n - 1; i > 0; --i) std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(g.below(i + 1))]);
    for (std::int64_t b = 0; b + nb <= n; b += nb) {
      std::vector<std::int64_t> idx(perm.begin() + b, perm.begin() + b + nb);
      const torch::Tensor x = gather(ev, idx).reshape({nb, -1}).contiguous();
      const torch::Tensor z = plain.index_select(0, torch::tensor(idx)).contiguous();
      const matrix_view<const float> xv(x.data_ptr<float>(), nb, x.size(1)), zv(z.data_ptr<float>(), nb, e);
      r.discrepancy.push_back(static_cast<double>(isa_loss_from_points(cpu, xv, zv, paper)));
      if (rep == 0 && b == 0) {  // persistence diagram (0-dim: births 0, deaths) of the first batch
        for (int side = 0; side < 2; ++side) {
          std::vector<float> d(static_cast<std::size_t>(nb * nb)), deaths(static_cast<std::size_t>(nb - 1));
          std::vector<edge> pairs(static_cast<std::size_t>(nb - 1));
          const matrix_view<float> dv(d.data(), nb, nb);
          pairwise_distances(cpu, side == 0 ? xv : zv, dv, side == 0 ? paper.x_scale : paper.z_scale);
          persistence_pairs(cpu, matrix_view<const float>(dv), vector_view<edge>(pairs.data(), nb - 1),
                            vector_view<float>(deaths.data(), nb - 1));
          (side == 0 ? r.deaths_x : r.deaths_z).assign(deaths.begin(), deaths.end());
        }
      }
    }
  }
  r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  return r;
}

/// {k1: v1, k2: v2, ...}, keys in this order.
json obj(std::initializer_list<std::pair<const char*, json>> members) {
  json o = json::object();
  for (const auto& [k, v] : members) o[k] = v;
  return o;
}

json verification_json(const verification_result& v) {
  return obj({{"accuracy", v.accuracy},
              {"accuracy_std", v.accuracy_std},
              {"threshold", v.threshold},
              {"auc", v.auc},
              {"tar_at_far_1e-2", v.tar_at_far_1e2},
              {"tar_at_far_1e-3", v.tar_at_far_1e3},
              {"genuine_pairs", v.genuine},
              {"impostor_pairs", v.impostor}});
}

json topology_json(const eval_result& r) {
  double mean = 0, sq = 0;
  for (double d : r.discrepancy) mean += d;
  mean /= static_cast<double>(std::max<std::size_t>(1, r.discrepancy.size()));
  for (double d : r.discrepancy) sq += (d - mean) * (d - mean);
  return obj({{"discrepancy_mean", mean},
              {"discrepancy_std", std::sqrt(sq / static_cast<double>(std::max<std::size_t>(1, r.discrepancy.size())))},
              {"discrepancy_median", median(r.discrepancy)},
              {"batches", static_cast<std::int64_t>(r.discrepancy.size())},
              {"isa_variant", "symmetric"}});
}

// ---- checkpoints and the CSV log ----

const char* kLogHeader = "step,epoch,lr,loss,loss_cls,loss_isa,ce_unweighted,gum_pi,hard_fraction,step_ms,topology_ms,images_per_s";

struct log_row {
  std::int64_t step = 0;
  double loss = 0, cls = 0, isa = 0, ce = 0;
};

void save_checkpoint(const config& c, const std::string& path, IResNet& net, torch::nn::Module& head,
                     torch::optim::SGD& opt, std::int64_t step, double train_seconds) {
  torch::serialize::OutputArchive ar, mnet, mhead, mopt;
  net->save(mnet);
  head.save(mhead);
  opt.save(mopt);
  ar.write("model", mnet);
  ar.write("head", mhead);
  ar.write("optimizer", mopt);
  ar.write("step", c10::IValue(step));
  ar.write("train_seconds", c10::IValue(train_seconds));
  ar.write("config", c10::IValue(flags_signature(c.all_flags())));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    ar.write("cpu_rng", gen.get_state());
  }
  // A temporary file renamed over the old checkpoint: a kill leaves the old or the new one, never half.
  topofr::detail::write_file(path, "topofr-train", "--out", [&](const std::string& p) { ar.save_to(p); });
}

/// The first line of a LibTorch error, without the C++ backtrace.
std::string first_line(const char* what) {
  std::string s(what ? what : "");
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

/// Loads the checkpoint; returns the step it was written at. Every member's CRC-32 is checked first
/// (LibTorch's reader does not); damage, truncation and flag mismatches are one-line errors naming the file.
std::int64_t load_checkpoint(const config& c, const std::string& path, IResNet& net, torch::nn::Module& head,
                             torch::optim::SGD& opt, torch::Device dev, double& train_seconds) {
  try {
    verify_zip(path);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("--resume: " + std::string(e.what()));
  }
  torch::serialize::InputArchive ar, mnet, mhead, mopt;
  std::int64_t step = 0;
  torch::Tensor state;
  try {
    ar.load_from(path, dev);
    c10::IValue v;
    ar.read("config", v);
    const std::string diff = flags_difference(v.toStringRef(), c.all_flags());
    if (!diff.empty()) throw std::invalid_argument("--resume: " + path + " was written with other flags: " + diff);
    ar.read("model", mnet);
    ar.read("head", mhead);
    ar.read("optimizer", mopt);
    net->load(mnet);
    head.load(mhead);
    opt.load(mopt);
    ar.read("step", v);
    step = v.toInt();
    ar.read("train_seconds", v);
    train_seconds = v.toDouble();
    ar.read("cpu_rng", state);
  } catch (const c10::Error& e) {
    throw std::runtime_error("--resume: " + path + ": truncated or not a topofr checkpoint: " +
                             first_line(e.what_without_backtrace()));
  }
  if (step < 0 || step > c.steps)
    throw std::runtime_error("--resume: " + path + ": step " + std::to_string(step) + " outside [0, --steps]");
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state.to(torch::kCPU));
  return step;
}

/// The step a checkpoint was written at (its CRCs checked first), -1 when there is none.
std::int64_t checkpoint_step(const std::string& path) {
  if (!fs::exists(path)) return -1;
  try {
    verify_zip(path);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("--resume: " + std::string(e.what()));
  }
  try {
    torch::serialize::InputArchive ar;
    ar.load_from(path);
    c10::IValue v;
    ar.read("step", v);
    return v.toInt();
  } catch (const c10::Error& e) {
    throw std::runtime_error("--resume: " + path + ": truncated or not a topofr checkpoint: " +
                             first_line(e.what_without_backtrace()));
  }
}

/// The rows of the log up to `step` (those after the checkpoint are recomputed): parsed, and as text lines.
std::vector<log_row> read_log(const std::string& path, std::int64_t step, std::vector<std::string>& lines) {
  std::vector<log_row> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.rfind("step", 0) == 0) continue;
    std::istringstream ls(line);
    std::string f;
    std::vector<double> v;
    while (std::getline(ls, f, ',')) v.push_back(std::strtod(f.c_str(), nullptr));
    if (v.size() < 7 || v[0] > static_cast<double>(step)) continue;
    rows.push_back({static_cast<std::int64_t>(v[0]), v[3], v[4], v[5], v[6]});
    lines.push_back(line);
  }
  return rows;
}

/// Writes the whole log (header + lines) through write_file: a kill never leaves half a log.
void write_log(const std::string& path, const std::vector<std::string>& lines) {
  topofr::detail::write_file_stream(path, "topofr-train", "--out", [&](std::ostream& os) {
    os << kLogHeader << '\n';
    for (const auto& l : lines) os << l << '\n';
  });
}

/// Runs argv[0] with argv (no shell); returns its exit status, 127 when it cannot be started.
int run_program(const std::vector<std::string>& argv) {
  std::vector<char*> a;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawn(&pid, a[0], nullptr, nullptr, a.data(), environ) != 0) return 127;
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return 127;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/// The figures (examples/train/plot.py, matplotlib) drawn into a temporary folder, then each written
/// through write_file. Returns the paths written; a missing python3/matplotlib is one warning line.
std::vector<std::string> write_plots(const fs::path& out, const std::string& log_path, const std::string& topo_path) {
  const char* py_env = std::getenv("TOPOFR_TRAIN_PYTHON");
  const char* script_env = std::getenv("TOPOFR_TRAIN_PLOT_SCRIPT");
  const std::string py = py_env && *py_env ? py_env : TOPOFR_TRAIN_PYTHON;
  const std::string script = script_env && *script_env ? script_env : TOPOFR_TRAIN_PLOT_SCRIPT;
  const char* figures[] = {"loss.png", "persistence.png", "discrepancy.png", "discrepancy_untrained.png"};
  std::string tmpl = (out / ".plots-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) {
    std::cerr << "warning: plots not written: cannot create a temporary folder in " << out.string() << '\n';
    return {};
  }
  const fs::path tmp(tmpl);
  std::vector<std::string> written;
  const int rc = run_program({py, script, "--missing-ok", log_path, topo_path, tmp.string()});
  if (rc == 127)
    std::cerr << "warning: plots not written: cannot run " << py << " (set TOPOFR_TRAIN_PYTHON, or --no-plots)\n";
  else if (rc == 3)
    std::cerr << "warning: plots not written: " << py
              << " has no matplotlib (Debian: apt-get install python3-matplotlib; or --no-plots)\n";
  else if (rc != 0)
    std::cerr << "warning: plots not written: " << script << " exited with status " << rc << '\n';
  else {
    try {
      for (const char* f : figures) {
        const std::string dst = (out / f).string();
        topofr::detail::write_file_stream(dst, "topofr-train", "--out", [&](std::ostream& os) {
          std::ifstream src(tmp / f, std::ios::binary);
          if (!src) throw std::runtime_error(std::string("plot.py did not write ") + f);
          os << src.rdbuf();
        });
        written.push_back(dst);
      }
    } catch (const std::exception& e) {
      std::cerr << "warning: plots not written: " << e.what() << '\n';
    }
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return written;
}

/// The rank prefix of error messages ("" for a single process); set once the rank is known.
std::string g_rank_prefix;

/// A test-only hook: TOPOFR_TRAIN_DIE_RANK=r TOPOFR_TRAIN_DIE_STEP=s makes rank r _exit(1) at the start of
/// step s (1-based, as log.csv), to test how the other ranks and the launcher handle a dead rank; with
/// TOPOFR_TRAIN_DIE_HOW=hang it stops there instead (sleeps, its connections open: the others time out).
bool die_here(int rank, std::int64_t step) {
  static const char* r = std::getenv("TOPOFR_TRAIN_DIE_RANK");
  static const char* s = std::getenv("TOPOFR_TRAIN_DIE_STEP");
  return r && s && std::atoi(r) == rank && std::atoll(s) == step;
}

int run(int argc, char** argv) {
  const auto wall0 = clock_type::now();
  const config c = parse(argc, argv);

  // Threads fixed for the run (reproducibility), the library's OpenMP loops included.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (c.nproc > 1) {  // the launcher: W copies of this program, each with its share of the cores
    std::vector<std::string> args(argv + 1, argv + argc);
    if (c.threads == 0) args.insert(args.end(), {"--threads", std::to_string(std::max(1, cores / c.nproc))});
    return launch_local(c.nproc, argv[0], args);
  }
  const int W = c.world, R = c.rank;
  const bool lead = R == 0;  // rank 0 alone writes log.csv, the report, the figures and prints progress
  if (W > 1) g_rank_prefix = "rank " + std::to_string(R) + ": ";
  const int threads = c.threads > 0 ? c.threads : cores;
  at::set_num_threads(threads);
  torch::Device dev(torch::kCPU);
  if (c.device == "cuda") {
    if (!torch::cuda::is_available())
      throw std::runtime_error(
          "--device cuda: no CUDA device available to this LibTorch (it was built without CUDA, or no GPU is "
          "visible); rebuild topofr-train against a CUDA LibTorch or use --device cpu");
    dev = torch::Device(torch::kCUDA);
#if defined(TOPOFR_TRAIN_TORCH_CUDA)
    if (W > 1) dev = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(R % torch::cuda::device_count()));
#endif
  }
  fs::create_directories(c.out);

  // ---- data ----
  std::vector<std::string> warnings;
  const image_set all = [&] {
    if (c.data.empty()) return synthetic_faces(c.identities, c.per_identity, c.height, c.width_px, c.seed);
    try {
      return load_image_folder(c.data, c.height, c.width_px, c.skip_bad, &warnings, c.max_pixels);
    } catch (const topofr::error& e) {  // names the file and the reason; say which flag led there
      throw std::runtime_error("--data " + c.data + ": " + e.what() +
                               (c.skip_bad ? "" : " (--skip-bad-images skips bad images with a warning)"));
    }
  }();
  if (lead) {
    for (const auto& w : warnings) std::cerr << "warning: " << w << '\n';
    if (!warnings.empty()) std::cerr << "data: " << warnings.size() << " warning(s), listed in the report's data.warnings\n";
  }
  const split sp = split_by_identity(all, c.holdout, c.seed);
  const image_set &tr = sp.train, &ev = sp.eval;
  if (tr.size() < c.batch)
    throw std::invalid_argument("--batch " + std::to_string(c.batch) + " exceeds the " + std::to_string(tr.size()) +
                                " training images");
  if (W > tr.identities())
    throw std::invalid_argument("--world-size " + std::to_string(W) + ": more processes than the " +
                                std::to_string(tr.identities()) +
                                " training identities (the classifier is split by identity over the processes)");
  if (lead)
    std::cerr << "data: " << (c.data.empty() ? "SYNTHETIC faces (built-in generator, seed " + std::to_string(c.seed) + ")" : c.data)
              << ", " << all.size() << " images of " << all.identities() << " identities at " << c.height << "x"
              << c.width_px << "; training on " << tr.size() << " images / " << tr.identities()
              << " identities, verifying on " << ev.size() << " images / " << ev.identities() << " held-out identities\n";

  // ---- model, head, optimiser ----
  torch::manual_seed(static_cast<std::uint64_t>(c.seed));
  iresnet_options mo;
  mo.depth = c.depth;
  mo.width = c.width;
  mo.height = c.height;
  mo.width_px = c.width_px;
  mo.embedding = c.embedding;
  mo.dropout = c.dropout;
  IResNet net(mo);
  // The full classifier, initialised as in a single process (same seed, same draws) whatever the number of
  // processes; a sharded run keeps this rank's rows of it (every rank allocates the whole C x d once).
  NormClassifier head(c.embedding, tr.identities());
  ShardedClassifier shead{nullptr};
  const class_range range = shard_range(tr.identities(), W, R);
  if (c.sharded()) {
    shead = ShardedClassifier(head->weight.detach().narrow(0, range.begin, range.size()), range, tr.identities(),
                              c.sample_rate, c.seed);
    head = NormClassifier{nullptr};
  }
  torch::nn::Module& head_module = c.sharded() ? static_cast<torch::nn::Module&>(*shead) : *head;
  net->to(dev);
  head_module.to(dev);
  std::vector<torch::Tensor> params, net_params;
  for (auto& p : net->parameters())
    if (p.requires_grad()) params.push_back(p), net_params.push_back(p);
  for (auto& p : head_module.parameters()) params.push_back(p);
  torch::optim::SGD opt(params, torch::optim::SGDOptions(c.lr).momentum(c.momentum).weight_decay(c.weight_decay));
  std::int64_t nparams = 0;
  for (auto& p : net->parameters()) nparams += p.numel();
  if (lead)
    std::cerr << "model: IResNet-" << c.depth << " width " << c.width << " (" << nparams << " parameters), embedding "
              << c.embedding << ", loss " << c.loss << (c.released_code ? " (released-code mode)" : "") << ", device "
              << c.device << ", " << threads << " threads"
              << (W > 1 ? ", " + std::to_string(W) + " processes (classes " + std::to_string(range.begin) + ".." +
                              std::to_string(range.end - 1) + " on rank 0)"
                        : std::string())
              << '\n';

  // The untrained network (reproducible from the seed, also when resuming): evaluated first by a single
  // process; with several, rank 0 keeps a copy and evaluates it after training (the other ranks would wait
  // for it inside a collective).
  eval_result before;
  std::vector<torch::Tensor> init_state;
  if (W == 1) before = evaluate(net, ev, c, dev);
  else if (lead) {
    for (const auto& t : net->parameters()) init_state.push_back(t.detach().clone());
    for (const auto& t : net->buffers()) init_state.push_back(t.detach().clone());
  }

  margin_ce_config mc;
  mc.margin.s = c.s;
  mc.margin.m2 = c.m;
  mc.margin.straight_through = c.margin_grad == "straight-through";
  mc.sds = c.use_sds();
  mc.lambda = c.lambda;
  mc.focal = !c.released_code;
  isa_options isa_opt = image_isa_options(tr.channels, tr.height, tr.width,
                                          c.isa_variant == "symmetric" ? isa_variant::symmetric : isa_variant::sorted_deaths);
  const bool unit_latent = c.isa_latent == "normalized";
  if (unit_latent) isa_opt.z_scale = 2.0;  // unit vectors: distances in [0, 2]

  // The process group: the rendezvous at --master (several processes), or a one-rank group for Partial FC's
  // class sample in a single process.
  process_group pg;
  if (c.sharded()) {
    dist_options dop;
    dop.world = W;
    dop.rank = R;
    dop.host = c.master_host;
    dop.port = c.master_port;
    dop.timeout_s = c.dist_timeout;
    pg = connect(dop);
  }
  const std::vector<torch::Tensor> net_buffers = net->buffers();
  // Every rank starts from rank 0's backbone (the same seed gives the same one; this makes sure).
  broadcast_(pg, net_params, 0, "the initial backbone parameters");
  broadcast_(pg, net_buffers, 0, "the initial BatchNorm buffers");

  const std::string ckpt_name = W == 1 ? "checkpoint.pt" : "checkpoint.rank" + std::to_string(R) + "-of-" + std::to_string(W) + ".pt";
  const std::string ckpt = (fs::path(c.out) / ckpt_name).string(), log_path = (fs::path(c.out) / "log.csv").string();
  std::int64_t start = 0;
  double train_seconds = 0;
  std::vector<log_row> history;
  std::vector<std::string> log_lines;  // log.csv's rows as text
  // Several processes keep each rank's previous checkpoint too (DIR/checkpoint.rank<R>-of-<W>.pt.prev): a kill
  // between two ranks' writes leaves some ranks one checkpoint ahead, and those go back to their previous one.
  const std::string prev = ckpt + ".prev";
  if (c.resume && !fs::exists(ckpt) && !(W > 1 && fs::exists(prev))) {
    // Checkpoints of another number of processes: refused (the classifier is split by the world size).
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(c.out, ec)) {
      const std::string n = e.path().filename().string();
      const auto of = n.find("-of-");
      const bool single = n == "checkpoint.pt", multi = n.rfind("checkpoint.rank", 0) == 0 && of != std::string::npos &&
                                                        n.size() > 3 && n.compare(n.size() - 3, 3, ".pt") == 0;
      if ((single && W > 1) || (multi && n.compare(of, std::string::npos, "-of-" + std::to_string(W) + ".pt") != 0))
        throw std::invalid_argument("--resume: " + e.path().string() + " was written by a run of " +
                                    (single ? std::string("1 process") : n.substr(of + 4, n.size() - of - 7) + " processes") +
                                    ", this run has " + std::to_string(W) + ": resume with the same --nproc / --world-size");
    }
    if (lead) std::cerr << "--resume: no checkpoint in " << c.out << ", starting from step 0\n";
  }
  if (W == 1) {
    if (c.resume && fs::exists(ckpt)) start = load_checkpoint(c, ckpt, net, head_module, opt, dev, train_seconds);
  } else if (c.resume) {
    const std::int64_t cur = checkpoint_step(ckpt), old = checkpoint_step(prev);
    const auto [target, newest] = min_max(pg, cur >= 0 ? cur : old, "the checkpoint steps");
    if (target < 0 && newest >= 0)
      throw std::runtime_error("--resume: some ranks have no checkpoint in " + c.out + (cur < 0 && old < 0 ? " (rank " + std::to_string(R) + " has none)" : "") +
                               " while others have one of step " + std::to_string(newest) + ": start a new --out");
    if (target >= 0) {
      if (cur == target) start = load_checkpoint(c, ckpt, net, head_module, opt, dev, train_seconds);
      else if (old == target) start = load_checkpoint(c, prev, net, head_module, opt, dev, train_seconds);
      else
        throw std::runtime_error("--resume: rank " + std::to_string(R) + " has no checkpoint of step " +
                                 std::to_string(target) + " (the step every rank can return to) in " + c.out +
                                 ": start a new --out");
    }
    const auto [lo, hi] = min_max(pg, start, "the checkpoint steps");
    if (lo != hi)
      throw std::runtime_error("--resume: the ranks' checkpoints in " + c.out + " are of different steps (" +
                               std::to_string(lo) + " to " + std::to_string(hi) + "): start a new --out");
  }
  if (lead) {
    if (start > 0) {
      history = read_log(log_path, start, log_lines);
      std::cerr << "resumed from " << ckpt << (W > 1 ? " (and the other ranks' files)" : "") << " at step " << start
                << "/" << c.steps << '\n';
    }
    write_log(log_path, log_lines);  // written whole at each checkpoint and at the end
  }

  // ---- training ----
  // The global batch (B rows) is drawn identically by every rank; rank R takes rows [R L, (R+1) L), L = B/W,
  // and runs the backbone on K = --chunks slices of S = L/K rows (BatchNorm statistics per slice); the head
  // sees the whole batch (all-gathered embeddings, classes sharded over the ranks).
  sampler smp{tr.size(), c.batch, tr.size() / c.batch, c.seed};
  const std::int64_t L = c.batch / W, K = c.chunks, S = L / K;
  const double isa_weight = c.alpha / static_cast<double>(W * K);  // alpha * mean over the W K slices
  const bool tty = ::isatty(2);
  std::vector<double> step_ms, topo_ms;
  const auto train0 = clock_type::now();
  const double seconds_before = train_seconds;
  net->train();
  for (std::int64_t step = start; step < c.steps; ++step) {
    if (die_here(R, step + 1)) {
      const char* how = std::getenv("TOPOFR_TRAIN_DIE_HOW");
      const bool hang = how && std::string(how) == "hang";
      std::cerr << "rank " << R << ": TOPOFR_TRAIN_DIE_STEP: " << (hang ? "hanging" : "exiting") << " at the start of step "
                << step + 1 << std::endl;
      while (hang) ::pause();
      ::_exit(1);
    }
    const auto t0 = clock_type::now();
    // Learning rate: linear warm-up, then polynomial decay (power 2), as insightface's PolyScheduler.
    const double lr = step < c.warmup ? c.lr * static_cast<double>(step + 1) / (c.warmup + 1)
                                      : c.lr * std::pow(1.0 - static_cast<double>(step - c.warmup) / std::max(1, c.steps - c.warmup), 2.0);
    for (auto& g : opt.param_groups()) static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);

    const std::vector<std::int64_t> idx = smp.indices(step);
    std::vector<char> flip(idx.size());
    counter_rng fr(c.seed ^ 0x9E3779B97F4A7C15ULL, 0, static_cast<std::uint64_t>(step));
    for (auto& f : flip) f = fr.uniform() < 0.5;  // random horizontal flip, as insightface
    const torch::Tensor x = gather(tr, idx, flip);
    std::vector<std::int64_t> yv(idx.size());
    for (std::size_t i = 0; i < idx.size(); ++i) yv[i] = tr.labels[static_cast<std::size_t>(idx[i])];
    const torch::Tensor y = torch::tensor(yv);

    double topo = 0;
    torch::Tensor xp = x;
    if (c.use_isa()) {  // RSP on the global batch: the classifier and the latent side of ISA see the perturbed batch
      const auto r0 = clock_type::now();
      xp = x.clone();
      rsp_options ro;
      ro.probability = c.xi;
      ro.seed = c.seed;
      ro.step = static_cast<std::uint64_t>(step);
      rsp_perturb(cpu, image_batch_view<float>(xp.data_ptr<float>(), xp.size(0), xp.size(1), xp.size(2), xp.size(3)), ro);
      topo += std::chrono::duration<double, std::milli>(clock_type::now() - r0).count();
    }
    // This rank's rows, the backbone per slice. BatchNorm's running statistics follow the first slice only
    // (as DDP's broadcast of rank 0's buffers): saved after it, restored after the backward (the forward
    // saved them for it: an in-place restore before would fail autograd's version check).
    const torch::Tensor xl = W == 1 ? x : x.narrow(0, R * L, L), xpl = (W == 1 ? xp : xp.narrow(0, R * L, L)).to(dev);
    std::vector<torch::Tensor> zs, saved_buffers;
    for (std::int64_t k = 0; k < K; ++k) {
      zs.push_back(net->forward(K == 1 ? xpl : xpl.narrow(0, k * S, S)));
      if (K > 1 && k == 0)
        for (const auto& b : net_buffers) saved_buffers.push_back(b.detach().clone());
    }
    const torch::Tensor z = K == 1 ? zs[0] : torch::cat(zs);
    margin_ce_stats st;
    torch::Tensor lcls;
    if (c.sharded()) {
      const torch::Tensor zg = all_gather_rows(*pg.pg, z);  // the global batch's embeddings, in rank order
      const auto [cosv, local] = shead->forward(zg, y, static_cast<std::uint64_t>(step));
      lcls = sharded_margin_ce(*pg.pg, cosv, local, mc, &st);
    } else {
      lcls = MarginCE::apply(head->forward(z), y, mc, &st);
    }
    torch::Tensor loss = lcls;
    double isa_sum = 0;  // sum of this rank's slices' L_sa
    if (c.use_isa()) {
      const auto r0 = clock_type::now();
      for (std::int64_t k = 0; k < K; ++k) {
        const torch::Tensor zk = zs[static_cast<std::size_t>(k)];
        torch::Tensor lsa = ISA::apply(
            K == 1 ? xl : xl.narrow(0, k * S, S),
            unit_latent ? torch::nn::functional::normalize(zk, torch::nn::functional::NormalizeFuncOptions().dim(1)) : zk,
            isa_opt);
        isa_sum += lsa.item<double>();
        loss = W * K == 1 ? lcls + c.alpha * lsa : loss + isa_weight * lsa;
      }
      topo += std::chrono::duration<double, std::milli>(clock_type::now() - r0).count();
    }
    opt.zero_grad();
    loss.backward();
    if (K > 1) {
      torch::NoGradGuard ng;
      for (std::size_t i = 0; i < net_buffers.size(); ++i) net_buffers[i].copy_(saved_buffers[i]);
    }
    if (W > 1) {
      // Data-parallel backbone: the sum of the ranks' gradients (the head's loss is already the global mean;
      // each rank's ISA term carries alpha / (W K)). The classifier shard's gradient is complete locally.
      std::vector<torch::Tensor> grads;
      for (auto& p : net_params) {
        if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
        grads.push_back(p.grad());
      }
      all_reduce_sum_(pg, grads, "the backbone gradients at step " + std::to_string(step + 1));
      isa_sum = all_reduce_values(pg, {isa_sum}, "the ISA values at step " + std::to_string(step + 1))[0];
    }
    opt.step();
    const double lisa = isa_sum / static_cast<double>(W * K), cv = lcls.item<double>();
    const double lv = W * K == 1 ? loss.item<double>() : cv + (c.use_isa() ? c.alpha * lisa : 0.0);
    if (!std::isfinite(lv)) throw std::runtime_error("loss is not finite at step " + std::to_string(step + 1) + " (lower --lr?)");

    const double ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    step_ms.push_back(ms);
    topo_ms.push_back(topo);
    const std::int64_t done = step + 1;
    const double elapsed = std::chrono::duration<double>(clock_type::now() - train0).count();
    train_seconds = seconds_before + elapsed;
    if (lead) {
      history.push_back({done, lv, cv, lisa, st.loss_unweighted});
      std::ostringstream log;
      log << done << ',' << step / smp.per_epoch << ',' << lr << ',' << lv << ',' << cv << ',' << lisa << ','
          << st.loss_unweighted << ',' << st.pi << ',' << st.hard_fraction << ',' << ms << ',' << topo << ','
          << 1000.0 * c.batch / ms;
      log_lines.push_back(log.str());
    }
    if (lead && c.progress && (tty || done % std::max(1, c.steps / 20) == 0 || done == c.steps)) {
      const double per_step = elapsed / static_cast<double>(done - start);
      char b[256];
      std::snprintf(b, sizeof b, "step %lld/%d | loss %.4f (cls %.4f, isa %.4f) | %.1f img/s | ETA %s",
                    static_cast<long long>(done), c.steps, lv, cv, lisa, 1000.0 * c.batch / ms,
                    duration(per_step * static_cast<double>(c.steps - done)).c_str());
      std::cerr << (tty ? "\r" : "") << b << (tty ? "\033[K" : "\n") << std::flush;
    }
    if (done % c.checkpoint_every == 0 || done == c.steps) {  // every rank, at the same step
      if (lead) write_log(log_path, log_lines);
      // BatchNorm's running statistics are rank 0's (DDP's broadcast_buffers): only rank 0 ever reads them (the
      // evaluation), and its own never change by the broadcast, so it is enough that the checkpoints hold them.
      broadcast_(pg, net_buffers, 0, "the BatchNorm buffers at step " + std::to_string(done));
      if (W > 1 && fs::exists(ckpt)) fs::rename(ckpt, prev);  // atomic: the previous one stays whole
      save_checkpoint(c, ckpt, net, head_module, opt, done, train_seconds);
    }
  }
  if (!lead) return 0;  // the other ranks write nothing but their checkpoints
  if (c.progress && tty) std::cerr << '\n';
  write_log(log_path, log_lines);

  // ---- verification, topology, plots, report ----
  const eval_result after = evaluate(net, ev, c, dev);
  if (W > 1) {  // the untrained network: its copy, back into net
    torch::NoGradGuard ng;
    std::size_t i = 0;
    for (auto& t : net->parameters()) t.copy_(init_state[i++]);
    for (auto& t : net->buffers()) t.copy_(init_state[i++]);
    before = evaluate(net, ev, c, dev);
  }
  const auto& vb = before.ver;
  const auto& va = after.ver;
  auto pct = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f%%", 100 * v);
    return std::isfinite(v) ? std::string(b) : std::string("n/a");
  };
  std::printf("\nverification on %lld held-out images of %lld identities (%lld genuine / %lld impostor pairs, 10-fold):\n",
              static_cast<long long>(ev.size()), static_cast<long long>(ev.identities()), static_cast<long long>(va.genuine),
              static_cast<long long>(va.impostor));
  std::printf("  %-10s %9s %7s %7s %12s %12s %18s\n", "network", "accuracy", "+-", "AUC", "TAR@FAR=1e-2", "TAR@FAR=1e-3",
              "topo. discrepancy");
  for (int k = 0; k < 2; ++k) {
    const eval_result& r = k ? after : before;
    double mean = 0;
    for (double d : r.discrepancy) mean += d;
    mean /= static_cast<double>(std::max<std::size_t>(1, r.discrepancy.size()));
    std::printf("  %-10s %9s %7s %7.4f %12s %12s %18.5g\n", k ? "trained" : "untrained", pct(r.ver.accuracy).c_str(),
                pct(r.ver.accuracy_std).c_str(), r.ver.auc, pct(r.ver.tar_at_far_1e2).c_str(),
                pct(r.ver.tar_at_far_1e3).c_str(), mean);
  }

  const fs::path out(c.out);
  std::vector<std::string> outputs = {log_path, ckpt};
  for (int r = 1; r < W; ++r)  // the other ranks' (where each rank's --out is this one)
    outputs.push_back((fs::path(c.out) / ("checkpoint.rank" + std::to_string(r) + "-of-" + std::to_string(W) + ".pt")).string());
  // topology.json: what plot.py draws besides log.csv (per-batch discrepancies, persistence deaths).
  const std::string topo_path = (out / "topology.json").string();
  {
    auto arr = [](const std::vector<double>& v) { return json(v); };
    json topo = obj({{"loss", c.loss},
                     {"alpha", c.alpha},
                     {"use_isa", c.use_isa()},
                     {"deaths", obj({{"input X", arr(after.deaths_x)},
                                     {"latent, untrained", arr(before.deaths_z)},
                                     {"latent, trained", arr(after.deaths_z)}})},
                     {"discrepancy_trained", arr(after.discrepancy)},
                     {"discrepancy_untrained", arr(before.discrepancy)}});
    topofr::detail::write_file_stream(topo_path, "topofr-train", "--out", [&](std::ostream& os) { os << topo.dump(2) << '\n'; });
    outputs.push_back(topo_path);
  }
  if (c.plots)
    for (const auto& f : write_plots(out, log_path, topo_path)) outputs.push_back(f);

  const double wall = std::chrono::duration<double>(clock_type::now() - wall0).count();
  const std::vector<double> steady(step_ms.begin() + std::min<std::size_t>(step_ms.size(), 5), step_ms.end());
  const std::vector<double> steady_topo(topo_ms.begin() + std::min<std::size_t>(topo_ms.size(), 5), topo_ms.end());
  json cfg = obj({{"data", c.data.empty() ? json("synthetic") : json(c.data)},
                  {"synthetic", c.data.empty()},
                  {"identities", c.identities},
                  {"per_identity", c.per_identity},
                  {"holdout", c.holdout},
                  {"image_size", json::array({c.height, c.width_px})},
                  {"depth", c.depth},
                  {"width", c.width},
                  {"embedding", c.embedding},
                  {"dropout", c.dropout},
                  {"loss", c.loss},
                  {"alpha", c.alpha},
                  {"lambda", c.lambda},
                  {"xi", c.xi},
                  {"s", c.s},
                  {"m", c.m},
                  {"isa_variant", c.isa_variant},
                  {"isa_latent", c.isa_latent},
                  {"released_code", c.released_code},
                  {"steps", c.steps},
                  {"batch", c.batch},
                  {"lr", c.lr},
                  {"warmup", c.warmup},
                  {"seed", static_cast<std::int64_t>(c.seed)},
                  {"threads", threads},
                  {"device", c.device},
                  {"world_size", c.world},
                  {"chunks", c.chunks},
                  {"sample_rate", c.sample_rate},
                  {"margin_grad", c.margin_grad},
                  {"torch_version", TORCH_VERSION}});
  json report = obj({{"configuration", cfg},
                     {"data", obj({{"images", all.size()},
                                   {"identities", all.identities()},
                                   {"train_images", tr.size()},
                                   {"train_identities", tr.identities()},
                                   {"eval_images", ev.size()},
                                   {"eval_identities", ev.identities()},
                                   {"warnings", warnings}})},
                     {"verification", verification_json(va)},
                     {"verification_untrained", verification_json(vb)},
                     {"topology", topology_json(after)},
                     {"topology_untrained", topology_json(before)},
                     {"training", obj({{"steps", c.steps},
                                       {"resumed_from_step", start},
                                       {"final_loss", history.empty() ? json() : json(history.back().loss)},
                                       {"step_ms_median", median(steady)},
                                       {"topology_ms_median", median(steady_topo)},
                                       {"images_per_s", 1000.0 * c.batch / median(steady)},
                                       {"train_seconds", train_seconds}})},
                     {"wall_time_s", wall},
                     {"outputs", outputs}});
  if (const fs::path rp = fs::path(c.report).parent_path(); !rp.empty()) fs::create_directories(rp);
  topofr::detail::write_file_stream(c.report, "topofr-train", "--report", [&](std::ostream& os) { os << report.dump(2) << '\n'; });
  std::printf("report: %s (wall time %s; outputs in %s)\n", c.report.c_str(), duration(wall).c_str(), c.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    // LibTorch's errors: the first line, without the C++ backtrace. With several processes, the rank (unless
    // the message names it already), and _exit: a process group's threads are not waited for.
    std::string what = e.what();
    if (const auto* t = dynamic_cast<const c10::Error*>(&e)) what = first_line(t->what_without_backtrace());
    if (!g_rank_prefix.empty() && what.rfind("rank ", 0) != 0) what = g_rank_prefix + what;
    std::cerr << "\ntopofr-train: error: " << what << '\n';
    if (!g_rank_prefix.empty()) {
      std::cerr.flush();
      std::fflush(nullptr);
      ::_exit(1);
    }
    return 1;
  }
}
