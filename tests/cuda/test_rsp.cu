// CUDA RSP (include/topofr/cuda/rsp.cuh). Oracle: the CPU rsp_perturb (include/topofr/rsp.hpp, itself
// tested against torchvision/timm) on the same batch and options — the same kinds, images within 1e-5.
// Device-detected non-finite values set status_non_finite and leave the batch untouched; bad shapes
// and options throw on the host.
#include "support.hpp"
#include "cuda/cuda_support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <topofr/rsp.hpp>
#include <topofr/cuda/rsp.cuh>

using namespace topofr;
using namespace topofr::test;
namespace tc = topofr::cuda;

namespace {

template <class T>
using dvec = topofr::test::device_buffer<T>;
using test_ctx = topofr::test::test_context;

template <class T>
void rsp_parity(index_t n, index_t c, index_t h, index_t w, rsp_options opt) {
  const auto size = static_cast<std::size_t>(n * c * h * w);
  std::vector<T> img = uniform<T>(size, opt.seed + 7, -1.0, 1.0);
  std::vector<T> want = img;
  std::vector<std::int32_t> kinds(static_cast<std::size_t>(n), 99);
  rsp_perturb(cpu, image_batch_view<T>(want.data(), n, c, h, w), opt, vector_view<std::int32_t>(kinds.data(), n));
  test_ctx t;
  dvec<T> d(img);
  dvec<std::int32_t> dk(static_cast<std::size_t>(n));
  rsp_perturb(t.ctx, device_image_batch_view<T>(d.p, n, c, h, w), opt, device_vector_view<std::int32_t>(dk.p, n));
  CHECK(t.read() == tc::status_ok);
  CHECK(dk.get() == kinds);
  close(d.get(), want, 1e-5, 1.0);
}

}  // namespace

TEST_CASE("cuda rsp_perturb: same kinds and images as the CPU (oracle: CPU rsp.hpp), probability 1",
          "[cuda][rsp]") {
  rsp_options o;
  o.probability = 1.0;
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    o.seed = seed;
    o.step = seed * 10;
    rsp_parity<float>(24, 3, 20, 17, o);  // 24 samples: every kind occurs
    rsp_parity<double>(12, 3, 13, 9, o);
    rsp_parity<float>(12, 1, 11, 14, o);  // one channel: gray/saturation/hue are identities
  }
}

TEST_CASE("cuda rsp_perturb: TopoFR setting (xi = 0.2, 3 x 112 x 112; oracle: CPU rsp.hpp)", "[cuda][rsp]") {
  rsp_options o;
  o.seed = 1234;
  o.step = 5;
  rsp_parity<float>(16, 3, 112, 112, o);
}

TEST_CASE("cuda rsp_perturb: degenerate images (1 x 1, 2 x 1; probability 0; oracle: CPU rsp.hpp)",
          "[cuda][rsp]") {
  rsp_options o;
  o.probability = 1.0;
  rsp_parity<float>(16, 3, 1, 1, o);
  rsp_parity<double>(16, 3, 2, 1, o);
  o.probability = 0.0;
  rsp_parity<float>(4, 3, 5, 5, o);
}

TEST_CASE("cuda rsp_perturb: a non-finite value sets status_non_finite, nothing is written", "[cuda][rsp]") {
  std::vector<float> img = uniform<float>(4 * 3 * 8 * 8, 1, -1.0, 1.0);
  img[200] = std::nanf("");
  test_ctx t;
  dvec<float> d(img);
  dvec<std::int32_t> dk(std::vector<std::int32_t>(4, 42));
  rsp_options o;
  o.probability = 1.0;
  rsp_perturb(t.ctx, device_image_batch_view<float>(d.p, 4, 3, 8, 8), o, device_vector_view<std::int32_t>(dk.p, 4));
  CHECK(t.read() == tc::status_non_finite);
  const auto got = d.get();
  for (std::size_t k = 0; k < img.size(); ++k)
    if (k != 200) CHECK(got[k] == img[k]);
  CHECK(dk.get() == std::vector<std::int32_t>(4, 42));
}

TEST_CASE("cuda rsp_perturb: bad shapes and options throw on the host", "[cuda][rsp]") {
  test_ctx t;
  dvec<float> d(3 * 4 * 4 * 2);
  dvec<std::int32_t> k(2);
  rsp_options o;
  o.probability = 1.5;
  CHECK_THROWS_WITH(rsp_perturb(t.ctx, device_image_batch_view<float>(d.p, 2, 3, 4, 4), o), Catch::Contains("probability"));
  o = {};
  CHECK_THROWS_WITH(rsp_perturb(t.ctx, device_image_batch_view<float>(d.p, 2, 2, 4, 4), o), Catch::Contains("images"));
  CHECK_THROWS_WITH(rsp_perturb(t.ctx, device_image_batch_view<float>(nullptr, 2, 3, 4, 4), o), Catch::Contains("images"));
  CHECK_THROWS_WITH(rsp_perturb(t.ctx, device_image_batch_view<float>(d.p, 2, 3, 4, 4), o, device_vector_view<std::int32_t>(k.p, 1)),
                    Catch::Contains("kinds"));
  CHECK(t.read() == tc::status_ok);
}
