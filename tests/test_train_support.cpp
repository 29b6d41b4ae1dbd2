// Tests of the training driver's support code (examples/train/): image-folder loading, synthetic faces,
// split by identity, flip, verification protocol, plots (plot.py), checkpoint checks. Each check
// names its oracle.
#include "support.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "../examples/train/checkpoint.hpp"
#include "../examples/train/image_folder.hpp"
#include "../examples/train/stb_impl.hpp"
// PNG test fixtures only. The JPEG fixture is bytes written by an independent encoder (kSmoothJpeg):
// stb_image_write's JPEG writer left-shifts negative values (undefined behaviour under UBSan).
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>
#include "../examples/train/synthetic.hpp"
#include "../examples/train/verify.hpp"

using namespace topofr::train;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

/// A fresh empty folder under the scratch directory.
fs::path fresh(const std::string& name) {
  fs::path d = topofr::test::scratch(name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// The images written for the folder test (w x h = 8 x 6), as bytes.
constexpr int W = 8, H = 6;
std::vector<unsigned char> gray_pattern(int salt) {
  std::vector<unsigned char> v(W * H);
  for (int i = 0; i < W * H; ++i) v[i] = static_cast<unsigned char>((i * 37 + salt * 11) % 256);
  return v;
}
std::vector<unsigned char> rgb_pattern() {
  std::vector<unsigned char> v(W * H * 3);
  for (int i = 0; i < W * H * 3; ++i) v[i] = static_cast<unsigned char>((i * 53 + 7) % 256);
  return v;
}
std::vector<unsigned char> smooth_gray() {  // JPEG is lossy: a smooth image decodes within a few levels
  std::vector<unsigned char> v(W * H);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) v[y * W + x] = static_cast<unsigned char>(60 + 10 * x + 5 * y);
  return v;
}
// smooth_gray() encoded by PIL 9.4 (libjpeg; Image.frombytes('L', (8, 6), ...).save(f, 'JPEG', quality=100)).
const std::string kSmoothJpeg(
    "\xff\xd8\xff\xe0\x00\x10\x4a\x46\x49\x46\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00\x43\x00\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
    "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
    "\x01\x01\x01\x01\x01\xff\xc0\x00\x0b\x08\x00\x06\x00\x08\x01\x01\x11\x00\xff\xc4\x00\x1f\x00\x00\x01\x05\x01\x01"
    "\x01\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\xff\xc4\x00\xb5\x10"
    "\x00\x02\x01\x03\x03\x02\x04\x03\x05\x05\x04\x04\x00\x00\x01\x7d\x01\x02\x03\x00\x04\x11\x05\x12\x21\x31\x41\x06"
    "\x13\x51\x61\x07\x22\x71\x14\x32\x81\x91\xa1\x08\x23\x42\xb1\xc1\x15\x52\xd1\xf0\x24\x33\x62\x72\x82\x09\x0a\x16"
    "\x17\x18\x19\x1a\x25\x26\x27\x28\x29\x2a\x34\x35\x36\x37\x38\x39\x3a\x43\x44\x45\x46\x47\x48\x49\x4a\x53\x54\x55"
    "\x56\x57\x58\x59\x5a\x63\x64\x65\x66\x67\x68\x69\x6a\x73\x74\x75\x76\x77\x78\x79\x7a\x83\x84\x85\x86\x87\x88\x89"
    "\x8a\x92\x93\x94\x95\x96\x97\x98\x99\x9a\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba"
    "\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea"
    "\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\xf9\xd3\xf6\x49\xf8\x71\xa7\xff"
    "\x00\xc4\xb3\x98\xbf\xe5\x8f\xf0\x9f\xf6\x7f\xd9\xaf\xff\xd9",
    351);

std::vector<double> to_gray(const std::vector<unsigned char>& rgb) {  // BT.601, as documented
  std::vector<double> g(rgb.size() / 3);
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2];
  return g;
}

/// alice/{a.png (gray), b.PNG (RGB), c.jpg (gray), notes.txt}, bob/{x.pgm (8-bit, comment), y.pgm (16-bit)},
/// README.txt and .hidden/ at the top. Returns the folder.
fs::path make_folder(const std::string& name) {
  const fs::path d = fresh(name);
  fs::create_directories(d / "alice");
  fs::create_directories(d / "bob");
  fs::create_directories(d / ".hidden");
  write_bytes(d / "README.txt", "not an identity");
  write_bytes(d / "alice" / "notes.txt", "not an image");
  const auto a = gray_pattern(1), rgb = rgb_pattern();
  REQUIRE(stbi_write_png((d / "alice" / "a.png").c_str(), W, H, 1, a.data(), W));
  REQUIRE(stbi_write_png((d / "alice" / "b.PNG").c_str(), W, H, 3, rgb.data(), W * 3));
  write_bytes(d / "alice" / "c.jpg", kSmoothJpeg);
  const auto x = gray_pattern(2);
  write_bytes(d / "bob" / "x.pgm", "P5\n# a comment\n8 6\n255\n" + std::string(x.begin(), x.end()));
  std::string y16 = "P5 8 6 1000\n";
  for (int i = 0; i < W * H; ++i) {
    const int v = (i * 21) % 1001;
    y16 += static_cast<char>(v >> 8);
    y16 += static_cast<char>(v & 255);
  }
  write_bytes(d / "bob" / "y.pgm", y16);
  return d;
}

std::vector<double> expected_gray(int which) {  // per image of make_folder, in load order
  switch (which) {
    case 0: { auto a = gray_pattern(1); return {a.begin(), a.end()}; }
    case 1: return to_gray(rgb_pattern());
    case 2: { auto s = smooth_gray(); return {s.begin(), s.end()}; }
    case 3: { auto x = gray_pattern(2); return {x.begin(), x.end()}; }
    default: {
      std::vector<double> v(W * H);
      for (int i = 0; i < W * H; ++i) v[i] = ((i * 21) % 1001) * 255.0 / 1000.0;
      return v;
    }
  }
}

// Brute-force resamplers in double, written from their definitions.
std::vector<double> bilinear_up(const std::vector<double>& in, int ih, int iw, int oh, int ow) {
  // Classic bilinear interpolation, pixel centres at +0.5, coordinates clamped to the image.
  std::vector<double> out(oh * ow);
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      const double sy = std::clamp((y + 0.5) * ih / oh - 0.5, 0.0, ih - 1.0);
      const double sx = std::clamp((x + 0.5) * iw / ow - 0.5, 0.0, iw - 1.0);
      const int y0 = static_cast<int>(sy), x0 = static_cast<int>(sx);
      const int y1 = std::min(y0 + 1, ih - 1), x1 = std::min(x0 + 1, iw - 1);
      const double fy = sy - y0, fx = sx - x0;
      out[y * ow + x] = (1 - fy) * ((1 - fx) * in[y0 * iw + x0] + fx * in[y0 * iw + x1]) +
                        fy * ((1 - fx) * in[y1 * iw + x0] + fx * in[y1 * iw + x1]);
    }
  return out;
}
std::vector<double> triangle_down(const std::vector<double>& in, int ih, int iw, int oh, int ow) {
  // Antialiased bilinear: every input pixel weighted by the 2-d tent widened by the shrink factor.
  std::vector<double> out(oh * ow);
  const double ry = double(ih) / oh, rx = double(iw) / ow;
  for (int y = 0; y < oh; ++y)
    for (int x = 0; x < ow; ++x) {
      double num = 0, den = 0;
      for (int i = 0; i < ih; ++i)
        for (int j = 0; j < iw; ++j) {
          const double wy = std::max(0.0, 1 - std::abs(i + 0.5 - (y + 0.5) * ry) / ry);
          const double wx = std::max(0.0, 1 - std::abs(j + 0.5 - (x + 0.5) * rx) / rx);
          num += wy * wx * in[i * iw + j];
          den += wy * wx;
        }
      out[y * ow + x] = num / den;
    }
  return out;
}

void check_image(const image_set& s, std::int64_t i, const std::vector<double>& gray, double tol) {
  const std::int64_t hw = s.height * s.width;
  REQUIRE(static_cast<std::int64_t>(gray.size()) == hw);
  double worst = 0;
  for (int c = 0; c < 3; ++c)
    for (std::int64_t k = 0; k < hw; ++k) worst = std::max(worst, std::abs(s.image(i)[c * hw + k] - (gray[k] / 127.5 - 1)));
  INFO("image " << i << " (" << s.files[i] << ")");
  CHECK(worst <= tol);
}

std::string orl_dir() {
  const char* e = std::getenv("TOPOFR_ORL");
  return e ? e : "/work/shared/data/orl_faces";
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// load_image_folder

TEST_CASE("load_image_folder: PNG, JPEG, 8/16-bit PGM decode to the values written (oracle: the bytes written)") {
  const fs::path d = make_folder("folder_exact");
  std::vector<std::string> warnings;
  const image_set s = load_image_folder(d.string(), H, W, false, &warnings);
  CHECK(warnings.empty());
  REQUIRE(s.size() == 5);
  CHECK(s.identities() == 2);
  CHECK(s.names == std::vector<std::string>{"alice", "bob"});
  CHECK(s.labels == std::vector<std::int64_t>{0, 0, 0, 1, 1});
  CHECK(s.channels == 3);
  CHECK(fs::path(s.files[0]).filename() == "a.png");
  CHECK(fs::path(s.files[1]).filename() == "b.PNG");  // extension matched case-insensitively
  CHECK(fs::path(s.files[4]).filename() == "y.pgm");
  check_image(s, 0, expected_gray(0), 1e-6);
  check_image(s, 1, expected_gray(1), 1e-5);
  check_image(s, 2, expected_gray(2), 4 / 127.5);  // JPEG quality 100 on a smooth ramp
  check_image(s, 3, expected_gray(3), 1e-6);
  check_image(s, 4, expected_gray(4), 1e-5);
}

TEST_CASE("load_image_folder: resizing matches brute-force bilinear (up) and antialiased bilinear (down)") {
  const fs::path d = make_folder("folder_resize");
  // Oracle: bilinear_up (classic clamped bilinear) for enlargement, triangle_down (2-d tent over all
  // pixels) for shrinking; both written from the definitions in double.
  const image_set up = load_image_folder(d.string(), 13, 17, false);
  const image_set down = load_image_folder(d.string(), 4, 3, false);
  const image_set mixed = load_image_folder(d.string(), 3, 11, false);  // shrink rows, enlarge columns
  for (int i = 0; i < 5; ++i) {
    if (i == 2) continue;  // JPEG: lossy, its decoded values are not the written bytes
    const auto g = expected_gray(i);
    check_image(up, i, bilinear_up(g, H, W, 13, 17), 2e-6);
    check_image(down, i, triangle_down(g, H, W, 4, 3), 2e-6);
    // Separable: rows shrunk by the tent, then columns enlarged by classic bilinear.
    const auto rows = triangle_down(g, H, W, 3, W);
    check_image(mixed, i, bilinear_up(rows, 3, W, 3, 11), 2e-6);
  }
}

TEST_CASE("load_image_folder: corrupt files are errors naming them, or skipped with a warning") {
  const fs::path d = make_folder("folder_corrupt");
  const std::string bad = (d / "bob" / "z_bad.png").string();
  write_bytes(bad, "\x89PNG\r\n\x1a\n garbage, not a PNG");
  CHECK_THROWS_AS(load_image_folder(d.string(), H, W, false), topofr::error);
  CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains(bad));
  std::vector<std::string> warnings;
  const image_set s = load_image_folder(d.string(), H, W, true, &warnings);
  CHECK(s.size() == 5);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Contains(bad));
  fs::remove(bad);

  SECTION("truncated PGM (stb_image would accept it)") {
    write_bytes(d / "bob" / "t.pgm", "P5\n8 6\n255\n" + std::string(20, 'x'));
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("t.pgm") && Contains("truncated"));
  }
  SECTION("PGM sample above maxval") {
    write_bytes(d / "bob" / "m.pgm", "P5\n2 1\n100\n" + std::string("\x05\xc8", 2));
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("m.pgm") && Contains("maxval"));
  }
  SECTION("PGM bad header") {
    write_bytes(d / "bob" / "h.pgm", "P5\n8 x6\n255\n");
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("h.pgm") && Contains("height"));
  }
  SECTION("empty file") {
    write_bytes(d / "alice" / "e.jpg", "");
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("e.jpg"));
  }
  SECTION("an identity whose only image is bad is dropped with a warning") {
    fs::create_directories(d / "carol");
    write_bytes(d / "carol" / "only.jpeg", "not a jpeg");
    std::vector<std::string> w;
    const image_set t = load_image_folder(d.string(), H, W, true, &w);
    CHECK(t.identities() == 2);
    CHECK(w.size() == 2);
  }
}

TEST_CASE("load_image_folder: bad arguments and empty datasets name the argument") {
  const fs::path empty = fresh("folder_empty");
  CHECK_THROWS_WITH(load_image_folder(empty.string(), 8, 8, false), Contains("dir") && Contains("no identity"));
  fs::create_directories(empty / "someone");
  write_bytes(empty / "someone" / "x.txt", "text");
  CHECK_THROWS_WITH(load_image_folder(empty.string(), 8, 8, false), Contains("dir") && Contains("no images"));
  CHECK_THROWS_WITH(load_image_folder((empty / "missing").string(), 8, 8, false), Contains("dir"));
  const fs::path d = make_folder("folder_args");
  CHECK_THROWS_WITH(load_image_folder(d.string(), 0, 8, false), Contains("height"));
  CHECK_THROWS_WITH(load_image_folder(d.string(), 8, -1, false), Contains("width"));
  const image_set s = load_image_folder(d.string(), H, W, false);
  CHECK_THROWS_WITH(s.image(5), Contains("i"));
}

TEST_CASE("load_image_folder: ORL faces (40 people x 10 PGM images), when present") {
  const std::string dir = orl_dir();
  if (!fs::is_directory(dir)) {
    WARN("ORL faces not found at " << dir << " (set TOPOFR_ORL); skipped");
    return;
  }
  const image_set s = load_image_folder(dir, 56, 46, false);
  CHECK(s.size() == 400);
  CHECK(s.identities() == 40);
  CHECK(s.height == 56);
  CHECK(s.width == 46);
  std::vector<int> per(40, 0);
  for (auto l : s.labels) ++per[l];
  CHECK(std::all_of(per.begin(), per.end(), [](int c) { return c == 10; }));
  const auto mm = std::minmax_element(s.pixels.begin(), s.pixels.end());
  CHECK(*mm.first >= -1.0f);
  CHECK(*mm.second <= 1.0f);
  CHECK(*mm.second - *mm.first > 1.0f);  // real contrast, not a blank decode
}

// ---------------------------------------------------------------------------------------------------------
// synthetic_faces

TEST_CASE("synthetic_faces: deterministic, in [-1, 1], 8-bit levels, 3 equal channels") {
  const image_set a = synthetic_faces(4, 3, 40, 32, 11), b = synthetic_faces(4, 3, 40, 32, 11);
  const image_set c = synthetic_faces(4, 3, 40, 32, 12);
  CHECK(a.pixels == b.pixels);  // oracle: a second run
  CHECK(a.pixels != c.pixels);
  CHECK(a.size() == 12);
  CHECK(a.identities() == 4);
  CHECK(a.labels == std::vector<std::int64_t>{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3});
  const std::int64_t hw = 40 * 32;
  bool levels = true, channels = true, range = true;
  for (std::int64_t i = 0; i < a.size(); ++i)
    for (std::int64_t k = 0; k < hw; ++k) {
      const float v = a.image(i)[k];
      range = range && v >= -1.0f && v <= 1.0f;
      const double q = (v + 1.0) * 127.5;
      levels = levels && std::abs(q - std::round(q)) < 1e-3;
      channels = channels && a.image(i)[hw + k] == v && a.image(i)[2 * hw + k] == v;
    }
  CHECK(range);
  CHECK(levels);
  CHECK(channels);
  // Identity k does not depend on how many identities are generated (streams keyed by identity).
  const image_set more = synthetic_faces(6, 3, 40, 32, 11);
  CHECK(std::equal(a.pixels.begin(), a.pixels.end(), more.pixels.begin()));
}

TEST_CASE("synthetic_faces: identities are learnable but not trivial (oracle: nearest centroid on raw pixels)") {
  const int k = 20, per = 10, h = 56, w = 48;
  const image_set s = synthetic_faces(k, per, h, w, 5);
  const std::int64_t hw = h * w;
  auto dist2 = [&](const float* a, const double* c) {
    double d = 0;
    for (std::int64_t q = 0; q < hw; ++q) d += (a[q] - c[q]) * (a[q] - c[q]);
    return d;
  };
  // Centroids from the first half of each identity's images, tested on the second half.
  std::vector<double> centroid(k * hw, 0.0);
  for (int id = 0; id < k; ++id)
    for (int j = 0; j < per / 2; ++j)
      for (std::int64_t q = 0; q < hw; ++q) centroid[id * hw + q] += s.image(id * per + j)[q] / (per / 2);
  int right = 0, total = 0;
  double intra = 0, inter = 0;
  for (int id = 0; id < k; ++id)
    for (int j = per / 2; j < per; ++j) {
      std::vector<double> d(k);
      for (int c = 0; c < k; ++c) d[c] = dist2(s.image(id * per + j), &centroid[c * hw]);
      right += std::min_element(d.begin(), d.end()) - d.begin() == id;
      ++total;
      intra += d[id];
      for (int c = 0; c < k; ++c)
        if (c != id) inter += d[c] / (k - 1);
    }
  const double acc = double(right) / total;
  INFO("nearest-centroid accuracy " << acc << " (chance " << 1.0 / k << "), mean intra " << intra / total
                                    << ", mean inter " << inter / total);
  CHECK(intra < inter);
  CHECK(acc > 4.0 / k);  // well above chance
  CHECK(acc < 0.95);     // nuisances make raw pixels an imperfect classifier
  WARN("synthetic faces: nearest-centroid accuracy on raw pixels " << acc << " (chance " << 1.0 / k << ")");
}

TEST_CASE("synthetic_faces: bad arguments name the argument") {
  CHECK_THROWS_WITH(synthetic_faces(0, 2, 32, 32, 1), Contains("identities"));
  CHECK_THROWS_WITH(synthetic_faces(2, 0, 32, 32, 1), Contains("per_identity"));
  CHECK_THROWS_WITH(synthetic_faces(2, 2, 4, 32, 1), Contains("height"));
  CHECK_THROWS_WITH(synthetic_faces(2, 2, 32, 0, 1), Contains("width"));
  const image_set one = synthetic_faces(1, 1, 8, 8, 0);  // smallest case works
  CHECK(one.size() == 1);
}

// ---------------------------------------------------------------------------------------------------------
// split_by_identity, flip_horizontal

TEST_CASE("split_by_identity: disjoint identities, sizes, remapped labels, seeded (oracle: the original set)") {
  const image_set all = synthetic_faces(10, 3, 16, 16, 3);
  const split sp = split_by_identity(all, 0.25, 9);  // round(2.5) = 3 held out
  CHECK(sp.eval.identities() == 3);
  CHECK(sp.train.identities() == 7);
  CHECK(sp.eval.size() == 9);
  CHECK(sp.train.size() == 21);
  std::set<std::string> tn(sp.train.names.begin(), sp.train.names.end()), en(sp.eval.names.begin(), sp.eval.names.end());
  for (const auto& n : en) CHECK(tn.count(n) == 0);
  CHECK(tn.size() + en.size() == 10);
  // Every image is found, with its pixels, in the side of its identity under the remapped label.
  const std::int64_t sz = all.image_size();
  for (const image_set* side : {&sp.train, &sp.eval}) {
    for (std::int64_t i = 0; i < side->size(); ++i) {
      REQUIRE(side->labels[i] >= 0);
      REQUIRE(side->labels[i] < side->identities());
      const std::string& name = side->names[side->labels[i]];
      const auto orig = std::find(all.names.begin(), all.names.end(), name) - all.names.begin();
      bool found = false;
      for (std::int64_t j = 0; j < all.size() && !found; ++j)
        found = all.labels[j] == orig && std::equal(side->image(i), side->image(i) + sz, all.image(j));
      CHECK(found);
    }
  }
  const split again = split_by_identity(all, 0.25, 9);
  CHECK(again.eval.names == sp.eval.names);
  CHECK(again.train.pixels == sp.train.pixels);
  bool differs = false;
  for (std::uint64_t seed = 10; seed < 20 && !differs; ++seed) differs = split_by_identity(all, 0.25, seed).eval.names != sp.eval.names;
  CHECK(differs);
  CHECK(split_by_identity(all, 0.05, 1).eval.identities() == 2);  // round(0.5) = 1 -> at least 2
  CHECK(split_by_identity(all, 0.0, 1).eval.size() == 0);
  CHECK(split_by_identity(all, 0.0, 1).train.pixels == all.pixels);
}

TEST_CASE("split_by_identity: bad holdout or set is an error naming it") {
  const image_set all = synthetic_faces(3, 2, 8, 8, 3);
  CHECK_THROWS_WITH(split_by_identity(all, -0.1, 1), Contains("holdout"));
  CHECK_THROWS_WITH(split_by_identity(all, 1.0, 1), Contains("holdout"));
  CHECK_THROWS_WITH(split_by_identity(all, std::nan(""), 1), Contains("holdout"));
  CHECK_THROWS_WITH(split_by_identity(all, 0.9, 1), Contains("holdout"));  // 3 of 3
  const image_set two = synthetic_faces(2, 2, 8, 8, 3);
  CHECK_THROWS_WITH(split_by_identity(two, 0.1, 1), Contains("holdout"));  // 2 of 2
  image_set broken = all;
  broken.labels[0] = 7;
  CHECK_THROWS_WITH(split_by_identity(broken, 0.5, 1), Contains("all") && Contains("labels[0]"));
  broken = all;
  broken.pixels.pop_back();
  CHECK_THROWS_WITH(split_by_identity(broken, 0.5, 1), Contains("all"));
}

TEST_CASE("flip_horizontal: mirrors each row (oracle: index arithmetic), in place too") {
  const int c = 3, h = 2, w = 5;
  std::vector<float> in(c * h * w), out(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
  flip_horizontal(in.data(), out.data(), c, h, w);
  for (int r = 0; r < c * h; ++r)
    for (int x = 0; x < w; ++x) CHECK(out[r * w + x] == in[r * w + (w - 1 - x)]);
  std::vector<float> inplace = in;
  flip_horizontal(inplace.data(), inplace.data(), c, h, w);
  CHECK(inplace == out);
  std::vector<float> one = {4.f};
  flip_horizontal(one.data(), one.data(), 1, 1, 1);
  CHECK(one[0] == 4.f);
  CHECK_THROWS_WITH(flip_horizontal(nullptr, out.data(), c, h, w), Contains("in"));
  CHECK_THROWS_WITH(flip_horizontal(in.data(), nullptr, c, h, w), Contains("out"));
  CHECK_THROWS_WITH(flip_horizontal(in.data(), out.data(), 0, h, w), Contains("channels"));
}

// ---------------------------------------------------------------------------------------------------------
// verification

namespace {

/// Runs verify and the NumPy oracle on the same inputs; compares every reported number.
void verify_against_oracle(const std::string& name, const std::vector<float>& emb, std::int64_t n, std::int64_t dim,
                           const std::vector<std::int64_t>& labels, std::uint64_t seed) {
  const verification_result r = verify(emb.data(), n, dim, labels, seed);
  const verification_pairs pairs = sample_pairs(labels, seed);
  const std::vector<double> sim = pair_similarities(emb.data(), n, dim, pairs);
  std::vector<std::int64_t> pv;
  for (std::int64_t k = 0; k < pairs.size(); ++k) {
    pv.push_back(pairs.first[k]);
    pv.push_back(pairs.second[k]);
  }
  const fs::path d = fresh(name);
  using topofr::test::save;
  save((d / "emb.npy").string(), emb, {n, dim});
  save((d / "labels.npy").string(), labels, {n});
  save((d / "pairs.npy").string(), pv, {pairs.size(), 2});
  save((d / "genuine.npy").string(), std::vector<std::int64_t>{pairs.genuine}, {1});
  save((d / "sim.npy").string(), sim, {pairs.size()});
  if (!topofr::test::oracle("verify_oracle.py", {d.string()})) return;
  const auto e = topofr::test::load<double>((d / "expected.npy").string());
  REQUIRE(e.size() == 8);
  INFO(name << ": accuracy " << r.accuracy << " auc " << r.auc << " tar2 " << r.tar_at_far_1e2 << " tar3 "
            << r.tar_at_far_1e3 << " genuine " << r.genuine << " impostor " << r.impostor);
  CHECK(r.accuracy == Approx(e[0]).margin(1e-12));
  CHECK(r.accuracy_std == Approx(e[1]).margin(1e-12));
  CHECK(r.threshold == Approx(e[2]).margin(1e-12));
  CHECK(r.auc == Approx(e[3]).margin(1e-12));
  if (std::isnan(e[4])) CHECK(std::isnan(r.tar_at_far_1e2)); else CHECK(r.tar_at_far_1e2 == Approx(e[4]).margin(1e-12));
  if (std::isnan(e[5])) CHECK(std::isnan(r.tar_at_far_1e3)); else CHECK(r.tar_at_far_1e3 == Approx(e[5]).margin(1e-12));
  CHECK(r.genuine == static_cast<std::int64_t>(e[6]));
  CHECK(r.impostor == static_cast<std::int64_t>(e[7]));
}

/// ids x per noisy embeddings around random identity centres; noise sd grows with the identity.
std::vector<float> clustered(int ids, int per, int dim, double noise, std::uint64_t seed, std::vector<std::int64_t>& labels) {
  const auto centres = topofr::test::normal<double>(ids * dim, seed);
  const auto eps = topofr::test::normal<double>(ids * per * dim, seed + 1);
  std::vector<float> e(ids * per * dim);
  labels.clear();
  for (int i = 0; i < ids * per; ++i) {
    const int id = i % ids;  // interleaved labels: pairs are not contiguous blocks
    labels.push_back(id);
    for (int d = 0; d < dim; ++d)
      e[i * dim + d] = static_cast<float>(centres[id * dim + d] + noise * (1 + id % 3) * eps[i * dim + d]);
  }
  return e;
}

}  // namespace

TEST_CASE("verify: matches the NumPy oracle (tests/oracles/verify_oracle.py)") {
  std::vector<std::int64_t> labels;
  SECTION("40 identities x 6, rejection-sampled impostors, TAR@1e-3 undefined") {
    const auto e = clustered(40, 6, 16, 0.6, 21, labels);
    verify_against_oracle("verify_a", e, 240, 16, labels, 3);
  }
  SECTION("8 identities x 20, both TARs defined") {
    const auto e = clustered(8, 20, 8, 0.9, 22, labels);
    verify_against_oracle("verify_b", e, 160, 8, labels, 4);
  }
  SECTION("2 identities x 12, enumerated impostors, quantised embeddings with tied similarities") {
    auto e = clustered(2, 12, 3, 1.0, 23, labels);
    for (auto& v : e) v = std::round(v);
    for (int i = 0; i < 24; ++i)
      if (e[i * 3] == 0 && e[i * 3 + 1] == 0 && e[i * 3 + 2] == 0) e[i * 3] = 1;  // no zero rows
    verify_against_oracle("verify_c", e, 24, 3, labels, 5);
  }
}

TEST_CASE("verify: hand cases (separable -> accuracy 1, AUC 1; identical embeddings -> AUC 1/2)") {
  std::vector<std::int64_t> labels;
  std::vector<float> e;
  for (int i = 0; i < 20; ++i) {  // 5 identities x 4, one-hot embeddings scaled per image
    labels.push_back(i % 5);
    for (int d = 0; d < 5; ++d) e.push_back(d == i % 5 ? 1.0f + 0.1f * i : 0.0f);
  }
  const verification_result sep = verify(e.data(), 20, 5, labels, 1);
  CHECK(sep.genuine == 30);
  CHECK(sep.impostor == 30);
  CHECK(sep.accuracy == 1.0);
  CHECK(sep.accuracy_std == 0.0);
  CHECK(sep.auc == 1.0);
  CHECK(sep.threshold > 0.0);  // genuine similarity 1, impostor 0: every fold threshold in (0, 1)
  CHECK(sep.threshold < 1.0);
  CHECK(std::isnan(sep.tar_at_far_1e2));  // 30 impostor pairs < 100
  CHECK(std::isnan(sep.tar_at_far_1e3));

  std::vector<float> same(20 * 5, 0.5f);
  const verification_result tie = verify(same.data(), 20, 5, labels, 1);
  CHECK(tie.auc == 0.5);
  CHECK(tie.accuracy == 0.5);  // balanced pairs, every threshold is a coin

  // n = 2 (one genuine pair, no impostor) and too few pairs for folds.
  std::vector<float> two = {1, 0, 0, 1};
  CHECK_THROWS_WITH(verify(two.data(), 2, 2, {0, 0}, 1), Contains("labels") && Contains("impostor"));
  CHECK_THROWS_WITH(verify(two.data(), 2, 2, {0, 1}, 1), Contains("labels") && Contains("genuine"));
  std::vector<float> three = {1, 0, 1, 0.1f, 0, 1};
  CHECK_THROWS_WITH(verify(three.data(), 3, 2, {0, 0, 1}, 1), Contains("genuine"));  // 1 genuine pair: no folds
}

TEST_CASE("verify: impostor pairs are uniform without replacement (oracle: binomial counts over 4000 seeds)") {
  // Rejection path (12 impostor pairs > 2 x 3 wanted) and enumeration path (6 <= 2 x 4).
  for (const auto& labels : {std::vector<std::int64_t>{0, 0, 1, 1, 2, 2}, std::vector<std::int64_t>{0, 0, 0, 1, 1}}) {
    std::map<std::pair<std::int64_t, std::int64_t>, int> count;
    std::int64_t want = 0, total = 0;
    const int seeds = 4000;
    for (int seed = 0; seed < seeds; ++seed) {
      const verification_pairs p = sample_pairs(labels, seed);
      want = p.impostor();
      std::set<std::pair<std::int64_t, std::int64_t>> seen;
      for (std::int64_t k = p.genuine; k < p.size(); ++k) {
        REQUIRE(p.first[k] < p.second[k]);
        REQUIRE(labels[p.first[k]] != labels[p.second[k]]);
        REQUIRE(seen.insert({p.first[k], p.second[k]}).second);
        ++count[{p.first[k], p.second[k]}];
      }
    }
    const auto n = static_cast<std::int64_t>(labels.size());
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j) total += labels[i] != labels[j];
    REQUIRE(static_cast<std::int64_t>(count.size()) == total);  // every impostor pair occurs
    const double q = double(want) / total, mean = seeds * q, sd = std::sqrt(seeds * q * (1 - q));
    for (const auto& kv : count) CHECK(std::abs(kv.second - mean) < 5.5 * sd);
  }
}

TEST_CASE("verify: determinism and bad inputs name the argument") {
  std::vector<std::int64_t> labels;
  const auto e = clustered(10, 5, 4, 0.5, 30, labels);
  const auto a = sample_pairs(labels, 8), b = sample_pairs(labels, 8), c = sample_pairs(labels, 9);
  CHECK(a.first == b.first);
  CHECK(a.second == b.second);
  CHECK((a.first != c.first || a.second != c.second));
  const verification_result r1 = verify(e.data(), 50, 4, labels, 8), r2 = verify(e.data(), 50, 4, labels, 8);
  CHECK(r1.accuracy == r2.accuracy);
  CHECK(r1.auc == r2.auc);

  auto bad = e;
  bad[7] = std::nanf("");
  CHECK_THROWS_WITH(verify(bad.data(), 50, 4, labels, 1), Contains("embeddings") && Contains("row 1"));
  bad = e;
  std::fill(bad.begin() + 8, bad.begin() + 12, 0.0f);
  CHECK_THROWS_WITH(verify(bad.data(), 50, 4, labels, 1), Contains("embeddings") && Contains("row 2"));
  CHECK_THROWS_WITH(verify(nullptr, 50, 4, labels, 1), Contains("embeddings"));
  CHECK_THROWS_WITH(verify(e.data(), 49, 4, labels, 1), Contains("labels"));
  CHECK_THROWS_WITH(verify(e.data(), 50, 0, labels, 1), Contains("dim"));
  CHECK_THROWS_WITH(sample_pairs({3}, 1), Contains("labels"));
  CHECK_THROWS_WITH(verify_scores({0.1, 0.2, std::nan(""), 0.4}, 2), Contains("similarity"));
  CHECK_THROWS_WITH(verify_scores({0.1, 0.2, 0.3}, 2), Contains("genuine"));
  verification_pairs broken = a;
  broken.second[0] = 50;
  CHECK_THROWS_WITH(pair_similarities(e.data(), 50, 4, broken), Contains("pairs"));
}

// ---------------------------------------------------------------------------------------------------------
// load_image_folder: hostile inputs

namespace {

/// A PNG whose IHDR declares w x h (8-bit gray) followed by an empty IDAT and IEND: tiny on disk, huge
/// when decoded. Chunk CRCs are real (crc32_update of checkpoint.hpp; checked in the zip test below).
std::string png_header_only(std::uint32_t w, std::uint32_t h) {
  auto be32 = [](std::uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16 & 255), char(v >> 8 & 255), char(v & 255)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    const std::string td = type + data;
    return be32(static_cast<std::uint32_t>(data.size())) + td +
           be32(detail_ckpt::crc32_update(0, reinterpret_cast<const unsigned char*>(td.data()), td.size()));
  };
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", be32(w) + be32(h) + std::string("\x08\x00\x00\x00\x00", 5)) +
         chunk("IDAT", "") + chunk("IEND", "");
}

}  // namespace

TEST_CASE("load_image_folder: hostile files are errors naming them (pixel limit, magic bytes, trailing bytes, links)") {
  const fs::path d = make_folder("folder_hostile");
  std::vector<std::string> w;
  SECTION("an image above the pixel limit is refused from its header, before decoding") {
    write_bytes(d / "bob" / "huge.png", png_header_only(12000, 12000));
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("huge.png") && Contains("144000000 pixels") &&
                                                                      Contains("--max-image-pixels"));
    // The limit is a parameter: the 8 x 6 images pass at 48 pixels and fail at 47.
    fs::remove(d / "bob" / "huge.png");
    CHECK(load_image_folder(d.string(), H, W, false, nullptr, 48).size() == 5);
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false, nullptr, 47), Contains("a.png") && Contains("exceeds"));
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false, nullptr, 0), Contains("max_pixels"));
    write_bytes(d / "bob" / "big.pgm", "P5 5000 5000 255\n");  // checked before the data is looked at
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("big.pgm") && Contains("exceeds"));
  }
  SECTION("content that is not the format the extension names") {
    write_bytes(d / "bob" / "tga.png", std::string("\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01\x00\x18\x00", 18));
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("tga.png") && Contains("not a PNG"));
    fs::remove(d / "bob" / "tga.png");
    fs::copy_file(d / "alice" / "a.png", d / "bob" / "png.jpg");
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("png.jpg") && Contains("not a JPEG"));
    fs::remove(d / "bob" / "png.jpg");
    write_bytes(d / "bob" / "jpeg.pgm", kSmoothJpeg);
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("jpeg.pgm") && Contains("not a binary PGM"));
  }
  SECTION("bytes after the PGM data") {
    const auto x = gray_pattern(3);
    write_bytes(d / "bob" / "tail.pgm", "P5\n8 6\n255\n" + std::string(x.begin(), x.end()) + "junk");
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("tail.pgm") && Contains("4 trailing byte(s)"));
  }
  SECTION("a dangling symbolic link and a directory named like images are reported, not skipped silently") {
    fs::create_symlink(d / "bob" / "missing.pgm", d / "bob" / "dangling.pgm");
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("dangling.pgm") && Contains("dangling symbolic link"));
    fs::create_directories(d / "alice" / "dir.png");
    const image_set s = load_image_folder(d.string(), H, W, true, &w);
    CHECK(s.size() == 5);
    REQUIRE(w.size() == 2);
    CHECK_THAT(w[0], Contains("dir.png") && Contains("directory"));
    CHECK_THAT(w[1], Contains("dangling.pgm"));
    fs::remove(d / "bob" / "dangling.pgm");
    CHECK_THROWS_WITH(load_image_folder(d.string(), H, W, false), Contains("dir.png") && Contains("directory"));
    // A link to a good image is an image.
    fs::remove(d / "alice" / "dir.png");
    fs::create_symlink(fs::absolute(d / "alice" / "a.png"), d / "bob" / "link.png");
    CHECK(load_image_folder(d.string(), H, W, false).size() == 6);
  }
}

// ---------------------------------------------------------------------------------------------------------
// plot.py (the trainer's figures)

namespace {

const std::string kPlotScript = (fs::path(__FILE__).parent_path() / ".." / "examples" / "train" / "plot.py").string();

bool have_matplotlib() {
  return topofr::test::run(topofr::test::quote(TOPOFR_PYTHON) + " -c 'import matplotlib' 2>/dev/null") == 0;
}

/// Loads a PNG back with stb_image (oracle: an independent decoder reading what matplotlib wrote).
std::vector<unsigned char> load_png(const std::string& path, int& w, int& h) {
  int c = 0;
  unsigned char* p = stbi_load(path.c_str(), &w, &h, &c, 3);
  REQUIRE(p != nullptr);
  std::vector<unsigned char> v(p, p + static_cast<std::size_t>(w) * h * 3);
  stbi_image_free(p);
  return v;
}
bool has_colour(const std::vector<unsigned char>& px, int r, int g, int b) {
  for (std::size_t i = 0; i + 2 < px.size(); i += 3)
    if (px[i] == r && px[i + 1] == g && px[i + 2] == b) return true;
  return false;
}

}  // namespace

TEST_CASE("plot.py: the four figures, degenerate data included, finish and are valid PNGs (oracle: stb_image)") {
  if (!have_matplotlib()) {
    WARN(TOPOFR_PYTHON << " has no matplotlib (Debian: python3-matplotlib); plot.py not tested");
    return;
  }
  const fs::path d = fresh("plotpy");
  std::string log = "step,epoch,lr,loss,loss_cls,loss_isa,ce_unweighted,gum_pi,hard_fraction,step_ms,topology_ms,images_per_s\n";
  for (int i = 1; i <= 50; ++i)
    log += std::to_string(i) + ",0,0.1," + std::to_string(5 * std::exp(-i / 20.0) + 0.2) + "," +
           std::to_string(5 * std::exp(-i / 20.0)) + ",0.4,4.5,0.1,0.2,10,1,100\n";
  write_bytes(d / "log.csv", log);
  // The hostile tester's discrepancies (1.3253e13, +0.002, +0.004): steps far below the values' spacing hung
  // the C++ plotter's tick loop. The untrained side: all equal, plus a NaN (null); one space without deaths.
  write_bytes(d / "topology.json",
              "{\"loss\": \"topofr\", \"alpha\": 0.1, \"use_isa\": true,\n"
              " \"deaths\": {\"input X\": [0.1, 0.2, 0.3], \"latent, untrained\": [1e4, 2e4], \"latent, trained\": []},\n"
              " \"discrepancy_trained\": [13253000000000.0, 13253000000000.002, 13253000000000.004],\n"
              " \"discrepancy_untrained\": [2.0, 2.0, 2.0, null]}\n");
  const fs::path out = d / "out";
  fs::create_directories(out);
  using topofr::test::quote;
  const std::string args = quote(kPlotScript) + " " + quote((d / "log.csv").string()) + " " +
                           quote((d / "topology.json").string()) + " " + quote(out.string());
  CHECK(topofr::test::run("timeout 120 " + quote(TOPOFR_PYTHON) + " " + args) == 0);  // 124 = hung
  for (const char* f : {"loss.png", "persistence.png", "discrepancy.png", "discrepancy_untrained.png"}) {
    INFO(f);
    int w = 0, h = 0;
    const auto px = load_png((out / f).string(), w, h);
    CHECK(w == 800);
    CHECK(h == 560);
    CHECK(has_colour(px, 31, 119, 180));  // the first series / the bars: matplotlib's tab:blue
  }
  // Without matplotlib (python -S: no site packages): status 3, silent with --missing-ok.
  CHECK(topofr::test::run(quote(TOPOFR_PYTHON) + " -S " + quote(kPlotScript) + " --missing-ok " +
                          quote((d / "log.csv").string()) + " " + quote((d / "topology.json").string()) + " " +
                          quote(out.string())) == 3);
  // Bad input: status 2.
  write_bytes(d / "bad.json", "{");
  CHECK(topofr::test::run(quote(TOPOFR_PYTHON) + " " + quote(kPlotScript) + " " + quote((d / "log.csv").string()) +
                          " " + quote((d / "bad.json").string()) + " " + quote(out.string()) + " 2>/dev/null") == 2);
}

// ---------------------------------------------------------------------------------------------------------
// checkpoint checks (verify_zip, flag signatures)

TEST_CASE("verify_zip: every member's CRC-32 is checked (oracle: archives written by Python's zipfile)") {
  const fs::path d = fresh("zip");
  using topofr::test::quote;
  const std::string make =
      "import sys, zipfile\n"
      "with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_STORED) as z:\n"
      "    z.writestr('archive/data.pkl', b'pickle' * 50)\n"
      "    z.writestr('archive/data/0', bytes(range(256)) * 40)\n"
      "    z.writestr('archive/version', b'3\\n')\n"
      "with zipfile.ZipFile(sys.argv[2], 'w', zipfile.ZIP_DEFLATED) as z:\n"
      "    z.writestr('a', b'x' * 1000)\n";
  write_bytes(d / "make.py", make);
  const std::string good = (d / "good.zip").string(), deflated = (d / "deflated.zip").string();
  REQUIRE(topofr::test::run(quote(TOPOFR_PYTHON) + " " + quote((d / "make.py").string()) + " " + quote(good) + " " +
                            quote(deflated)) == 0);
  CHECK(verify_zip(good) == 3);
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  // 64 bytes flipped inside the second member's data.
  const std::size_t at = bytes.find(std::string("\x10\x11\x12\x13", 4));
  REQUIRE(at != std::string::npos);
  std::string flipped = bytes;
  for (std::size_t k = at; k < at + 64; ++k) flipped[k] = static_cast<char>(~flipped[k]);
  write_bytes(d / "flipped.zip", flipped);
  CHECK_THROWS_WITH(verify_zip((d / "flipped.zip").string()),
                    Contains("flipped.zip") && Contains("CRC-32") && Contains("member 'archive/data/0'"));
  write_bytes(d / "truncated.zip", bytes.substr(0, bytes.size() / 2));
  CHECK_THROWS_WITH(verify_zip((d / "truncated.zip").string()), Contains("truncated.zip") && Contains("truncated"));
  write_bytes(d / "cut_tail.zip", bytes.substr(0, bytes.size() - 10));
  CHECK_THROWS_WITH(verify_zip((d / "cut_tail.zip").string()), Contains("cut_tail.zip"));
  write_bytes(d / "text.zip", "not a zip archive at all, just text that is long enough");
  CHECK_THROWS_WITH(verify_zip((d / "text.zip").string()), Contains("text.zip") && Contains("not a zip"));
#if TOPOFR_TRAIN_HAVE_ZLIB
  // Deflated members (LibTorch deflates its code and pickles) are inflated and checked too.
  CHECK(verify_zip(deflated) == 1);
  std::string dz;
  {
    std::ifstream in(deflated, std::ios::binary);
    dz.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  dz[34] = static_cast<char>(dz[34] ^ 0x55);  // inside the compressed data (30-byte local header + name "a")
  write_bytes(d / "deflated_bad.zip", dz);
  CHECK_THROWS_WITH(verify_zip((d / "deflated_bad.zip").string()), Contains("deflated_bad.zip") && Contains("member 'a'"));
#endif
  CHECK_THROWS_WITH(verify_zip((d / "missing.zip").string()), Contains("missing.zip") && Contains("cannot open"));
  // crc32 itself: the standard check value of "123456789".
  CHECK(detail_ckpt::crc32_update(0, reinterpret_cast<const unsigned char*>("123456789"), 9) == 0xCBF43926u);
}

TEST_CASE("flags_difference: a mismatch names each flag, checkpoint vs this run") {
  const flag_list a = {{"--lr", "0.1"}, {"--steps", "4"}, {"--data", "x"}};
  CHECK(flags_difference(flags_signature(a), a).empty());
  const flag_list b = {{"--lr", "0.05"}, {"--steps", "4"}, {"--data", "y"}};
  const std::string d = flags_difference(flags_signature(a), b);
  CHECK_THAT(d, Contains("--lr 0.1 (checkpoint) vs 0.05 (this run)") && Contains("--data x (checkpoint) vs y (this run)"));
  CHECK(d.find("--steps") == std::string::npos);
  CHECK(d.find('\n') == std::string::npos);
  CHECK_THAT(flags_difference("a|b|c", a), Contains("older topofr-train"));
}
