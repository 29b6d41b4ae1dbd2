// data.cpp — topofr._data: the training driver's data and evaluation code (examples/train: synthetic.hpp,
// dataset.hpp's split_by_identity, verify.hpp), bound as they are, so that a Python training script
// (examples/python/train.py) trains on the same synthetic identities, holds out the same identities and
// reports the same verification metrics as topofr-train. None of it needs LibTorch or stb (the image-folder
// loader, which does, is image_folder.hpp: not bound).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "synthetic.hpp"
#include "verify.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

/// A NumPy array owning a moved-in std::vector.
template <class T>
nb::ndarray<nb::numpy, T> owned(std::vector<T>&& v, std::initializer_list<std::size_t> shape) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nb::ndarray<nb::numpy, T>(heap->data(), shape, owner);
}

using labels_in = nb::ndarray<const std::int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

std::vector<std::int64_t> to_vector(const labels_in& a) {
  return std::vector<std::int64_t>(a.data(), a.data() + a.shape(0));
}

/// (images float32 (N, 3, H, W) in [-1, 1], labels int64 (N,)), identity-major, as topofr-train's built-in data.
std::tuple<nb::ndarray<nb::numpy, float>, nb::ndarray<nb::numpy, std::int64_t>> synthetic_identities(
    int identities, int per_identity, int size, std::uint64_t seed, int width) {
  topofr::train::image_set s;
  {
    nb::gil_scoped_release nogil;
    s = topofr::train::synthetic_faces(identities, per_identity, size, width > 0 ? width : size, seed);
  }
  const auto n = static_cast<std::size_t>(s.size());
  const auto c = static_cast<std::size_t>(s.channels), h = static_cast<std::size_t>(s.height),
             w = static_cast<std::size_t>(s.width);
  return {owned(std::move(s.pixels), {n, c, h, w}), owned(std::move(s.labels), {n})};
}

/// split_by_identity on the labels alone: (train indices, eval indices, train labels, eval labels), labels
/// remapped to 0..K-M-1 and 0..M-1 in identity order, exactly as topofr-train splits its image set.
std::tuple<nb::ndarray<nb::numpy, std::int64_t>, nb::ndarray<nb::numpy, std::int64_t>,
           nb::ndarray<nb::numpy, std::int64_t>, nb::ndarray<nb::numpy, std::int64_t>>
split_by_identity(const labels_in& labels, double holdout, std::uint64_t seed) {
  // A set of 1-pixel images carrying each sample's index in `files`: split_by_identity itself decides.
  topofr::train::image_set all;
  all.channels = all.height = all.width = 1;
  all.labels = to_vector(labels);
  std::int64_t k = 0;
  for (const std::int64_t y : all.labels) {
    if (y < 0) throw nb::value_error("topofr._data.split_by_identity: labels: must be >= 0");
    k = std::max(k, y + 1);
  }
  for (std::int64_t i = 0; i < k; ++i) all.names.push_back(std::to_string(i));
  all.pixels.assign(all.labels.size(), 0.f);
  for (std::size_t i = 0; i < all.labels.size(); ++i) all.files.push_back(std::to_string(i));
  const topofr::train::split sp = topofr::train::split_by_identity(all, holdout, seed);
  auto indices = [](const topofr::train::image_set& s) {
    std::vector<std::int64_t> v;
    for (const auto& f : s.files) v.push_back(std::stoll(f));
    return v;
  };
  std::vector<std::int64_t> ti = indices(sp.train), ei = indices(sp.eval), tl = sp.train.labels, el = sp.eval.labels;
  const std::size_t nt = ti.size(), ne = ei.size();
  return {owned(std::move(ti), {nt}), owned(std::move(ei), {ne}), owned(std::move(tl), {nt}), owned(std::move(el), {ne})};
}

/// verify.hpp's protocol on (n, dim) embeddings: all genuine pairs, as many seeded impostor pairs, cosine
/// similarity, 10-fold accuracy, AUC, TAR at FAR 1e-2 / 1e-3 (NaN when too few impostor pairs).
nb::dict verify(const nb::ndarray<const float, nb::ndim<2>, nb::c_contig, nb::device::cpu>& embeddings,
                const labels_in& labels, std::uint64_t seed) {
  const std::vector<std::int64_t> y = to_vector(labels);
  topofr::train::verification_result r;
  {
    nb::gil_scoped_release nogil;
    r = topofr::train::verify(embeddings.data(), static_cast<std::int64_t>(embeddings.shape(0)),
                              static_cast<std::int64_t>(embeddings.shape(1)), y, seed);
  }
  nb::dict d;
  d["accuracy"] = r.accuracy;
  d["accuracy_std"] = r.accuracy_std;
  d["threshold"] = r.threshold;
  d["auc"] = r.auc;
  d["tar_at_far_1e-2"] = r.tar_at_far_1e2;
  d["tar_at_far_1e-3"] = r.tar_at_far_1e3;
  d["genuine_pairs"] = r.genuine;
  d["impostor_pairs"] = r.impostor;
  return d;
}

}  // namespace

NB_MODULE(_data, m) {
  m.doc() = "topofr-train's synthetic identities, identity split and verification protocol (examples/train)";
  m.def("synthetic_identities", &synthetic_identities, "identities"_a, "per_identity"_a, "size"_a, "seed"_a = 1,
        "width"_a = 0,
        "identities x per_identity procedural faces (identity-major), size x size (x width when width > 0), 3 "
        "replicated gray channels quantised to 8 bits and mapped to [-1, 1]: (images float32 (N, 3, H, W), "
        "labels int64 (N,)). The same images as topofr-train's built-in data for the same seed.");
  m.def("split_by_identity", &split_by_identity, "labels"_a, "holdout"_a = 0.25, "seed"_a = 1,
        "topofr-train's held-out split by identity: (train_idx, eval_idx, train_labels, eval_labels).");
  m.def("verify", &verify, "embeddings"_a, "labels"_a, "seed"_a = 1,
        "topofr-train's verification protocol (docs/train.md) on (n, dim) float32 embeddings: a dict with "
        "accuracy, accuracy_std, threshold, auc, tar_at_far_1e-2, tar_at_far_1e-3, genuine_pairs, impostor_pairs.");
}
