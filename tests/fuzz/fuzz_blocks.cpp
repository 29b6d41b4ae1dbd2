// libFuzzer target: the blocks' CPU entry points and their argument checks. The input bytes choose a
// block, the scalar type, shapes (matching or not, negative, empty, padded or too-short leading
// dimensions), values (NaN, infinities, huge, denormal, negative zero, ...), labels, edges and options.
// Every buffer is allocated to the size its view claims, so a view never lies about its memory: the
// block must either succeed or throw topofr::error — never crash, read out of bounds, leak or hit UB.
#include <topofr/topofr.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

using topofr::index_t;

struct reader {
  const unsigned char* p;
  std::size_t n;
  unsigned byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  int pick(int lo, int hi) { return lo + static_cast<int>(byte() % static_cast<unsigned>(hi - lo + 1)); }
  bool flag() { return byte() & 1; }
  double real() {
    static const double palette[] = {0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 64.0, -0.0,
                                     std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                                     -std::numeric_limits<double>::infinity(), 1e30, -1e30, 1e-310, 1e300};
    const unsigned b = byte();
    if (b < 15) return palette[b];
    const int v = static_cast<int>(byte() | (byte() << 8)) - 32768;
    return v / 1000.0;
  }
  // A dimension: usually small and positive, sometimes 0 or -1.
  index_t dim(int hi) {
    const unsigned b = byte();
    if (b == 255) return -1;
    return static_cast<index_t>(b % static_cast<unsigned>(hi + 1));
  }
  // A matching dimension most of the time, else anything dim() gives.
  index_t like(index_t want, int hi) { return byte() < 200 ? want : dim(hi); }
};

// A matrix with its own storage (rows x max(cols, ld)), filled from the input.
template <class T>
struct mat {
  std::vector<T> buf;
  index_t rows = 0, cols = 0, ld = -1;
  mat() = default;
  mat(reader& r, index_t rows_, index_t cols_, bool fill = true) : rows(rows_), cols(cols_) {
    const unsigned b = r.byte();
    ld = b < 200 ? -1 : b < 230 ? cols + 3 : cols - 1;  // contiguous, padded, or a too-short stride
    const index_t stride = std::max<index_t>(std::max<index_t>(cols, ld), 0);
    buf.assign(static_cast<std::size_t>(std::max<index_t>(rows, 0) * stride), T(0));
    if (fill)
      for (auto& v : buf) v = static_cast<T>(r.real());
  }
  topofr::matrix_view<T> view() { return topofr::matrix_view<T>(buf.empty() ? nullptr : buf.data(), rows, cols, ld); }
  topofr::matrix_view<const T> cview() { return view(); }
};

template <class T>
struct vec {
  std::vector<T> buf;
  index_t size = 0;
  vec() = default;
  vec(reader& r, index_t n, bool fill = true) : size(n) {
    buf.assign(static_cast<std::size_t>(std::max<index_t>(n, 0)), T(0));
    if (fill)
      for (auto& v : buf) v = static_cast<T>(r.real());
  }
  topofr::vector_view<T> view() { return topofr::vector_view<T>(buf.empty() ? nullptr : buf.data(), size); }
  topofr::vector_view<const T> cview() { return view(); }
};

std::vector<topofr::edge> edges(reader& r, index_t k, index_t n) {
  std::vector<topofr::edge> e(static_cast<std::size_t>(std::max<index_t>(k, 0)));
  for (auto& x : e) {
    const unsigned b = r.byte();
    x.u = b == 255 ? -1 : static_cast<std::int32_t>(b % static_cast<unsigned>(std::max<index_t>(n, 0) + 2));
    x.v = static_cast<std::int32_t>(r.byte() % static_cast<unsigned>(std::max<index_t>(n, 0) + 2));
  }
  return e;
}

std::vector<std::int64_t> labels(reader& r, index_t n, index_t c) {
  std::vector<std::int64_t> y(static_cast<std::size_t>(std::max<index_t>(n, 0)));
  for (auto& v : y) {
    const unsigned b = r.byte();
    // -1 (target on another shard) and ignore_label (-100) are valid; C, INT64_MIN, -2 and -101 are not.
    v = b == 255   ? -1
        : b == 254 ? c
        : b == 253 ? std::numeric_limits<std::int64_t>::min()
        : b == 252 ? topofr::ignore_label
        : b == 251 ? -2
        : b == 250 ? -101
                   : static_cast<std::int64_t>(b % static_cast<unsigned>(std::max<index_t>(c, 0) + 1));
  }
  return y;
}

topofr::isa_options isa_opts(reader& r) {
  topofr::isa_options o;
  o.variant = r.flag() ? topofr::isa_variant::symmetric : topofr::isa_variant::sorted_deaths;
  o.reduce = r.flag() ? topofr::reduction::mean : topofr::reduction::sum;
  if (r.flag()) o.x_scale = r.real();
  if (r.flag()) o.z_scale = r.real();
  return o;
}

topofr::combined_margin margin(reader& r) {
  topofr::combined_margin m;
  if (r.flag()) m.s = r.real();
  if (r.flag()) m.m1 = r.real();
  if (r.flag()) m.m2 = r.real();
  if (r.flag()) m.m3 = r.real();
  return m;
}

topofr::gum_options gum_opts(reader& r) {
  topofr::gum_options o;
  o.mode = r.flag() ? topofr::gum_mode::reference : topofr::gum_mode::robust;
  static const int iters[] = {1000, 0, -1, 1, 5, 50};
  o.max_iter = iters[r.byte() % 6];
  if (r.flag()) o.tol = r.real();
  o.symmetrize = r.flag();
  return o;
}

template <class T>
void run(reader& r) {
  using namespace topofr;
  switch (r.byte() % 14) {
    case 0: {  // pairwise distances, one matrix
      const index_t n = r.dim(24), d = r.dim(8);
      mat<T> x(r, n, d), dist(r, r.like(n, 24), r.like(n, 24), false);
      pairwise_distances(cpu, x.cview(), dist.view(), r.flag() ? 1.0 : r.real());
      break;
    }
    case 1: {  // VR persistence pairs
      const index_t n = r.dim(40);
      mat<T> dist(r, n, r.like(n, 40));
      std::vector<edge> pairs(static_cast<std::size_t>(std::max<index_t>(r.like(n - 1, 40), 0)));
      vec<T> deaths(r, r.flag() ? 0 : r.like(n - 1, 40), false);
      persistence_pairs(cpu, dist.cview(), make_vector_view(pairs.data(), static_cast<index_t>(pairs.size())),
                        deaths.view());
      break;
    }
    case 2: {  // a batch: persistence pairs from points
      const index_t b = r.dim(3), n = r.dim(16), d = r.dim(6);
      std::vector<T> pts(static_cast<std::size_t>(std::max<index_t>(b, 0) * std::max<index_t>(n, 0) * std::max<index_t>(d, 0)));
      for (auto& v : pts) v = static_cast<T>(r.real());
      const index_t pr = r.like(b, 3), pc = r.like(n - 1, 16);
      std::vector<edge> pairs(static_cast<std::size_t>(std::max<index_t>(pr, 0) * std::max<index_t>(pc, 0)));
      mat<T> deaths(r, r.flag() ? 0 : pr, pc, false);
      persistence_pairs_from_points(cpu, batch_view<const T>(pts.empty() ? nullptr : pts.data(), b, n, d),
                                    r.flag() ? 1.0 : r.real(),
                                    matrix_view<edge>(pairs.empty() ? nullptr : pairs.data(), pr, pc),
                                    deaths.view());
      break;
    }
    case 3: {  // gather, and its adjoint
      const index_t n = r.dim(24), k = r.dim(30);
      mat<T> dist(r, n, r.like(n, 24));
      const std::vector<edge> e = edges(r, k, n);
      vec<T> values(r, r.like(k, 30));
      const vector_view<const edge> ev(e.empty() ? nullptr : e.data(), k);
      if (r.flag()) gather_pairs(cpu, dist.cview(), ev, values.view());
      else scatter_pairs_add(cpu, ev, values.cview(), dist.view());
      break;
    }
    case 4: {  // ISA from distance matrices and pairs
      const index_t n = r.dim(24);
      mat<T> dx(r, n, r.like(n, 24)), dz(r, r.like(n, 24), r.like(n, 24));
      const index_t kx = r.like(n - 1, 30), kz = r.like(n - 1, 30);
      const std::vector<edge> px = edges(r, kx, n), pz = edges(r, kz, n);
      mat<T> gz(r, r.flag() ? 0 : r.like(n, 24), r.like(n, 24), false), gx(r, r.flag() ? 0 : n, r.like(n, 24), false);
      const topofr::isa_options o = isa_opts(r);
      isa_loss(cpu, dx.cview(), dz.cview(), vector_view<const edge>(px.empty() ? nullptr : px.data(), kx),
               vector_view<const edge>(pz.empty() ? nullptr : pz.data(), kz), o.variant, o.reduce, gz.view(),
               gx.view());
      break;
    }
    case 5: {  // ISA from points
      const index_t n = r.dim(24), dx = r.dim(8), dz = r.dim(8);
      mat<T> x(r, n, dx), z(r, r.like(n, 24), dz);
      mat<T> gz(r, r.flag() ? 0 : r.like(n, 24), r.like(dz, 8), false), gx(r, r.flag() ? 0 : n, r.like(dx, 8), false);
      isa_loss_from_points(cpu, x.cview(), z.cview(), isa_opts(r), gz.view(), gx.view());
      break;
    }
    case 6: {  // GUM
      const index_t n = r.dim(64);
      vec<T> e(r, n), h(r, r.like(n, 64), false);
      gum_fit(cpu, e.cview(), h.view(), gum_opts(r));
      break;
    }
    case 7: {  // SDS weights
      const index_t n = r.dim(64);
      vec<T> h(r, n), p(r, r.like(n, 64)), w(r, r.like(n, 64), false);
      sds_weights(cpu, h.cview(), p.cview(), r.flag() ? 1.0 : r.real(), r.flag(), w.view());
      break;
    }
    case 8: {  // margin logits and their backward
      const index_t n = r.dim(16), c = r.dim(40);
      mat<T> cos(r, n, c), out(r, r.like(n, 16), r.like(c, 40), false);
      const std::vector<std::int64_t> y = labels(r, r.like(n, 16), c);
      const vector_view<const std::int64_t> yv(y.empty() ? nullptr : y.data(), static_cast<index_t>(y.size()));
      const combined_margin m = margin(r);
      if (r.flag()) {
        margin_logits(cpu, cos.cview(), yv, m, out.view());
      } else {
        mat<T> g(r, r.like(n, 16), r.like(c, 40));
        margin_logits_backward(cpu, cos.cview(), yv, m, g.cview(), out.view());
      }
      break;
    }
    case 9: {  // the fused margin cross-entropy, forward and backward
      const index_t n = r.dim(16), c = r.dim(40);
      mat<T> cos(r, n, c);
      const std::vector<std::int64_t> y = labels(r, r.like(n, 16), c);
      const vector_view<const std::int64_t> yv(y.empty() ? nullptr : y.data(), static_cast<index_t>(y.size()));
      const combined_margin m = margin(r);
      if (r.flag()) {
        vec<T> loss(r, r.like(n, 16), false), ent(r, r.flag() ? 0 : r.like(n, 16), false),
            pgt(r, r.flag() ? 0 : r.like(n, 16), false), lse(r, r.flag() ? 0 : r.like(n, 16), false);
        margin_ce_forward(cpu, cos.cview(), yv, m, r.flag() ? 1e-5 : r.real(), loss.view(), ent.view(), pgt.view(),
                          lse.view());
      } else {
        vec<T> lse(r, r.like(n, 16)), w(r, r.flag() ? 0 : r.like(n, 16));
        mat<T> g(r, r.like(n, 16), r.like(c, 40), false);
        margin_ce_backward(cpu, cos.cview(), yv, m, lse.cview(), w.cview(), r.flag() ? 1.0 : r.real(), g.view());
      }
      break;
    }
    case 10: {  // the whole objective
      const index_t n = r.dim(12), c = r.dim(20), dx = r.dim(6), dz = r.dim(6);
      mat<T> x(r, r.like(n, 12), dx), z(r, r.like(n, 12), dz), cos(r, n, c);
      const std::vector<std::int64_t> y = labels(r, r.like(n, 12), c);
      mat<T> gz(r, r.like(n, 12), r.like(dz, 6), false), gc(r, r.like(n, 12), r.like(c, 20), false);
      objective_options o;
      o.margin = margin(r);
      if (r.flag()) o.alpha = r.real();
      if (r.flag()) o.lambda = r.real();
      o.use_isa = r.flag();
      o.use_sds = r.flag();
      o.focal = r.flag();
      if (r.flag()) o.entropy_eps = r.real();
      o.gum = gum_opts(r);
      o.isa = isa_opts(r);
      objective<T> obj(o);
      obj(cpu, x.cview(), z.cview(), cos.cview(),
          vector_view<const std::int64_t>(y.empty() ? nullptr : y.data(), static_cast<index_t>(y.size())), gz.view(),
          gc.view());
      break;
    }
    case 11: {  // one RSP plan on one image
      const index_t c = r.dim(4), h = r.dim(20), w = r.dim(20);
      std::vector<T> img(static_cast<std::size_t>(std::max<index_t>(c, 0) * std::max<index_t>(h, 0) * std::max<index_t>(w, 0)));
      for (auto& v : img) v = static_cast<T>(r.real());
      rsp_plan p;
      p.kind = static_cast<rsp_kind>(r.pick(-2, 4));
      p.sigma = r.real();
      p.brightness = r.real();
      p.contrast = r.real();
      p.saturation = r.real();
      p.hue = r.real();
      for (int& o : p.order) o = r.pick(-1, 4);
      p.top = r.pick(-2, 24);
      p.left = r.pick(-2, 24);
      p.height = r.pick(-2, 24);
      p.width = r.pick(-2, 24);
      rsp_apply(cpu, p, img.empty() ? nullptr : img.data(), c, h, w);
      break;
    }
    case 12: {  // RSP over a batch
      const index_t n = r.dim(4), c = r.dim(4), h = r.dim(16), w = r.dim(16);
      std::vector<T> img(static_cast<std::size_t>(std::max<index_t>(n, 0) * std::max<index_t>(c, 0) *
                                                  std::max<index_t>(h, 0) * std::max<index_t>(w, 0)));
      for (auto& v : img) v = static_cast<T>(r.real());
      rsp_options o;
      o.probability = r.flag() ? 1.0 : r.real();
      o.seed = r.byte();
      o.step = r.byte();
      std::vector<std::int32_t> kinds(static_cast<std::size_t>(std::max<index_t>(r.like(n, 4), 0)));
      rsp_perturb(cpu, image_batch_view<T>(img.empty() ? nullptr : img.data(), n, c, h, w), o,
                  r.flag() ? vector_view<std::int32_t>() : make_vector_view(kinds.data(), static_cast<index_t>(kinds.size())));
      break;
    }
    default: {  // pairwise distances over a batch
      const index_t b = r.dim(3), n = r.dim(12), d = r.dim(6);
      std::vector<T> pts(static_cast<std::size_t>(std::max<index_t>(b, 0) * std::max<index_t>(n, 0) * std::max<index_t>(d, 0)));
      for (auto& v : pts) v = static_cast<T>(r.real());
      const index_t db = r.like(b, 3), dr = r.like(n, 12), dc = r.like(n, 12);
      std::vector<T> dist(static_cast<std::size_t>(std::max<index_t>(db, 0) * std::max<index_t>(dr, 0) * std::max<index_t>(dc, 0)));
      pairwise_distances(cpu, batch_view<const T>(pts.empty() ? nullptr : pts.data(), b, n, d),
                         batch_view<T>(dist.empty() ? nullptr : dist.data(), db, dr, dc), r.flag() ? 1.0 : r.real());
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  reader r{data, size};
  try {
    if (r.flag()) run<float>(r);
    else run<double>(r);
  } catch (const topofr::error&) {
  }
  return 0;
}
