// examples/train/dataset.hpp — face images for the training driver: the image set, the held-out split by
// identity, and the horizontal flip used by flip-augmented embeddings. The image-folder loader is in
// image_folder.hpp (it needs stb_image); synthetic.hpp makes the built-in identities.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <topofr/core/error.hpp>
#include <topofr/core/rng.hpp>

namespace topofr::train {

/// N images of one size, 3 x H x W each, values in [-1, 1] (gray / 127.5 - 1, gray replicated to 3 channels).
struct image_set {
  std::int64_t channels = 3, height = 0, width = 0;
  std::vector<float> pixels;         // N x channels x height x width
  std::vector<std::int64_t> labels;  // N identity ids in 0 .. identities() - 1
  std::vector<std::string> names;    // identity names, index = id
  std::vector<std::string> files;    // N source paths ("" for synthetic images)

  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
  std::int64_t identities() const { return static_cast<std::int64_t>(names.size()); }
  std::int64_t image_size() const { return channels * height * width; }
  const float* image(std::int64_t i) const {
    detail::require(i >= 0 && i < size(), "image_set::image", "i", "index out of range [0, ", size(), "), got ", i);
    return pixels.data() + i * image_size();
  }
};

namespace detail_train {

using topofr::detail::fail;
using topofr::detail::require;

/// Checks that the members of an image_set agree (sizes, labels in range).
inline void check_set(const image_set& s, const char* fn, const char* arg) {
  require(s.channels > 0 && s.height > 0 && s.width > 0, fn, arg, "image shape must be positive, got ",
          s.channels, " x ", s.height, " x ", s.width);
  require(static_cast<std::int64_t>(s.pixels.size()) == s.size() * s.image_size(), fn, arg, "pixels has ",
          s.pixels.size(), " values, expected ", s.size(), " x ", s.image_size());
  require(s.files.empty() || static_cast<std::int64_t>(s.files.size()) == s.size(), fn, arg, "files has ",
          s.files.size(), " entries for ", s.size(), " images");
  for (std::int64_t i = 0; i < s.size(); ++i)
    require(s.labels[i] >= 0 && s.labels[i] < s.identities(), fn, arg, "labels[", i, "] = ", s.labels[i],
            " outside [0, ", s.identities(), ")");
}

}  // namespace detail_train

struct split {
  image_set train, eval;
};

/// Held-out split by identity: M = round(holdout * K) identities (at least 2 when holdout > 0, so that
/// the evaluation set has impostor pairs; at least one identity must remain for training), chosen by a
/// Fisher-Yates shuffle of the identity ids driven by counter_rng(seed, 0, 0), go to eval. Both sides keep
/// the original order of images and of identities; labels are remapped to 0..K-M-1 and 0..M-1.
inline split split_by_identity(const image_set& all, double holdout, std::uint64_t seed) {
  using namespace detail_train;
  const char* fn = "split_by_identity";
  check_set(all, fn, "all");
  require(std::isfinite(holdout) && holdout >= 0 && holdout < 1, fn, "holdout", "must be in [0, 1), got ", holdout);
  const std::int64_t k = all.identities();
  std::int64_t m = holdout > 0 ? std::max<std::int64_t>(2, std::llround(holdout * k)) : 0;
  require(m <= k - 1, fn, "holdout", holdout, " holds out ", m, " of ", k,
          " identities (at least 2 are held out when holdout > 0 and at least 1 must remain for training)");

  std::vector<std::int64_t> perm(k);
  for (std::int64_t i = 0; i < k; ++i) perm[i] = i;
  counter_rng rng(seed, 0, 0);
  for (std::int64_t i = k - 1; i > 0; --i) std::swap(perm[i], perm[rng.below(i + 1)]);
  std::vector<char> held(k, 0);
  for (std::int64_t i = 0; i < m; ++i) held[perm[i]] = 1;

  split out;
  std::vector<std::int64_t> remap(k);
  for (image_set* s : {&out.train, &out.eval}) {
    s->channels = all.channels;
    s->height = all.height;
    s->width = all.width;
  }
  for (std::int64_t id = 0; id < k; ++id) {
    image_set& s = held[id] ? out.eval : out.train;
    remap[id] = s.identities();
    s.names.push_back(all.names[id]);
  }
  const std::int64_t sz = all.image_size();
  for (std::int64_t i = 0; i < all.size(); ++i) {
    image_set& s = held[all.labels[i]] ? out.eval : out.train;
    s.pixels.insert(s.pixels.end(), all.pixels.begin() + i * sz, all.pixels.begin() + (i + 1) * sz);
    s.labels.push_back(remap[all.labels[i]]);
    s.files.push_back(all.files.empty() ? std::string() : all.files[i]);
  }
  return out;
}

/// out = the image in mirrored left-right (channels x height x width, row-major). out == in is allowed.
inline void flip_horizontal(const float* in, float* out, std::int64_t channels, std::int64_t height,
                            std::int64_t width) {
  using namespace detail_train;
  const char* fn = "flip_horizontal";
  require(in != nullptr, fn, "in", "null pointer");
  require(out != nullptr, fn, "out", "null pointer");
  require(channels > 0 && height > 0 && width > 0, fn, "channels/height/width", "must be > 0, got ", channels,
          " x ", height, " x ", width);
  for (std::int64_t r = 0; r < channels * height; ++r) {
    const float* a = in + r * width;
    float* b = out + r * width;
    if (a == b) {
      std::reverse(b, b + width);
    } else {
      for (std::int64_t x = 0; x < width; ++x) b[x] = a[width - 1 - x];
    }
  }
}

}  // namespace topofr::train
