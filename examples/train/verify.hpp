// examples/train/verify.hpp — face verification on held-out identities, the LFW protocol: all genuine
// pairs, a seeded uniform sample of as many impostor pairs, cosine similarity, 10-fold accuracy with the
// threshold chosen on the other nine folds, ROC AUC, TAR at fixed FAR. The exact protocol (fold formation,
// threshold candidates, tie rules) is in docs/train.md and mirrored by
// tests/oracles/verify_oracle.py.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iterator>
#include <limits>
#include <unordered_set>
#include <vector>

#include <topofr/core/error.hpp>
#include <topofr/core/rng.hpp>

namespace topofr::train {

struct verification_result {
  double accuracy = 0, accuracy_std = 0;  // mean and population std of the fold accuracies
  double threshold = 0;                   // mean of the fold thresholds (cosine similarity)
  double auc = 0;                         // ROC AUC, ties counted 1/2
  double tar_at_far_1e2 = std::numeric_limits<double>::quiet_NaN();  // NaN when impostor < 100
  double tar_at_far_1e3 = std::numeric_limits<double>::quiet_NaN();  // NaN when impostor < 1000
  std::int64_t genuine = 0, impostor = 0;
};

/// Verification pairs: entries [0, genuine) are the genuine pairs, the rest the impostor pairs; first < second.
struct verification_pairs {
  std::vector<std::int64_t> first, second;
  std::int64_t genuine = 0;
  std::int64_t size() const { return static_cast<std::int64_t>(first.size()); }
  std::int64_t impostor() const { return size() - genuine; }
};

/// All genuine pairs (i < j, labels[i] == labels[j]) in lexicographic order, then min(genuine, all
/// impostor pairs) distinct impostor pairs drawn uniformly without replacement from counter_rng(seed, 0, 1):
/// by rejection (i, j uniform, rejected when equal, same label or already drawn) when the impostor pairs
/// outnumber the draw twice, else by a partial Fisher-Yates shuffle of their lexicographic list.
inline verification_pairs sample_pairs(const std::vector<std::int64_t>& labels, std::uint64_t seed) {
  using topofr::detail::require;
  const char* fn = "sample_pairs";
  const auto n = static_cast<std::int64_t>(labels.size());
  require(n >= 2, fn, "labels", "need at least 2 samples, got ", n);
  require(n < (std::int64_t(1) << 31), fn, "labels", "too many samples: ", n);
  verification_pairs p;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = i + 1; j < n; ++j)
      if (labels[i] == labels[j]) {
        p.first.push_back(i);
        p.second.push_back(j);
      }
  p.genuine = p.size();
  const std::int64_t total = n * (n - 1) / 2 - p.genuine;
  require(p.genuine > 0, fn, "labels", "no genuine pair: every identity has a single sample");
  require(total > 0, fn, "labels", "no impostor pair: all ", n, " samples have the same label");
  const std::int64_t want = std::min(p.genuine, total);
  counter_rng rng(seed, 0, 1);
  if (total > 2 * want) {
    std::unordered_set<std::int64_t> seen;
    while (static_cast<std::int64_t>(seen.size()) < want) {
      std::int64_t i = rng.below(n), j = rng.below(n);
      if (i == j || labels[i] == labels[j]) continue;
      if (i > j) std::swap(i, j);
      if (!seen.insert(i * n + j).second) continue;
      p.first.push_back(i);
      p.second.push_back(j);
    }
  } else {
    std::vector<std::int64_t> all;
    all.reserve(total);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = i + 1; j < n; ++j)
        if (labels[i] != labels[j]) all.push_back(i * n + j);
    for (std::int64_t k = 0; k < want; ++k) {
      std::swap(all[k], all[k + rng.below(total - k)]);
      p.first.push_back(all[k] / n);
      p.second.push_back(all[k] % n);
    }
  }
  return p;
}

/// Cosine similarity of the rows (n x dim, row-major, not necessarily normalised) of each pair, in double.
inline std::vector<double> pair_similarities(const float* embeddings, std::int64_t n, std::int64_t dim,
                                             const verification_pairs& pairs) {
  using topofr::detail::require;
  const char* fn = "pair_similarities";
  require(embeddings != nullptr, fn, "embeddings", "null pointer");
  require(n >= 2, fn, "n", "must be >= 2, got ", n);
  require(dim >= 1, fn, "dim", "must be >= 1, got ", dim);
  require(pairs.second.size() == pairs.first.size() && pairs.genuine >= 0 && pairs.genuine <= pairs.size(), fn,
          "pairs", "inconsistent pair lists");
  std::vector<double> norm(n);
  for (std::int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (std::int64_t d = 0; d < dim; ++d) {
      const double v = embeddings[i * dim + d];
      require(std::isfinite(v), fn, "embeddings", "non-finite value ", v, " at row ", i, ", column ", d);
      s += v * v;
    }
    require(s > 0, fn, "embeddings", "row ", i, " is zero: its cosine similarity is undefined");
    norm[i] = std::sqrt(s);
  }
  const std::int64_t m = pairs.size();
  std::vector<double> sim(m);
  for (std::int64_t k = 0; k < m; ++k) {
    const std::int64_t a = pairs.first[k], b = pairs.second[k];
    require(a >= 0 && a < n && b >= 0 && b < n, fn, "pairs", "pair ", k, " = (", a, ", ", b, ") outside [0, ", n, ")");
  }
#pragma omp parallel for schedule(static)
  for (std::int64_t k = 0; k < m; ++k) {
    const float* x = embeddings + pairs.first[k] * dim;
    const float* y = embeddings + pairs.second[k] * dim;
    double s = 0;
    for (std::int64_t d = 0; d < dim; ++d) s += static_cast<double>(x[d]) * y[d];
    sim[k] = s / (norm[pairs.first[k]] * norm[pairs.second[k]]);
  }
  return sim;
}

/// The protocol on given similarities: entries [0, genuine) are genuine pairs, the rest impostor pairs.
/// Folds: K = min(10, genuine, impostor) (>= 2); the g-th genuine pair and the k-th impostor pair go to
/// folds g mod K and k mod K. For each fold the threshold maximises the accuracy (prediction "same" iff
/// similarity > t) on the other folds among the candidates {u_1 - 1, (u_i + u_{i+1}) / 2, u_m + 1}
/// (u = sorted distinct training similarities), the smallest candidate on ties.
inline verification_result verify_scores(const std::vector<double>& similarity, std::int64_t genuine) {
  using topofr::detail::require;
  const char* fn = "verify_scores";
  const auto p = static_cast<std::int64_t>(similarity.size());
  require(genuine >= 2 && genuine <= p - 2, fn, "genuine", "need at least 2 genuine and 2 impostor pairs, got ",
          genuine, " genuine of ", p);
  for (std::int64_t k = 0; k < p; ++k)
    require(std::isfinite(similarity[k]), fn, "similarity", "non-finite value ", similarity[k], " at ", k);
  verification_result r;
  r.genuine = genuine;
  r.impostor = p - genuine;
  const std::int64_t folds = std::min<std::int64_t>({10, r.genuine, r.impostor});
  auto fold_of = [&](std::int64_t k) { return (k < genuine ? k : k - genuine) % folds; };

  std::vector<double> acc(folds), thr(folds);
  for (std::int64_t f = 0; f < folds; ++f) {
    std::vector<double> gen, imp, all;
    for (std::int64_t k = 0; k < p; ++k)
      if (fold_of(k) != f) (k < genuine ? gen : imp).push_back(similarity[k]);
    std::sort(gen.begin(), gen.end());
    std::sort(imp.begin(), imp.end());
    std::merge(gen.begin(), gen.end(), imp.begin(), imp.end(), std::back_inserter(all));
    all.erase(std::unique(all.begin(), all.end()), all.end());
    // Correct predictions at t, counted exactly (also when a midpoint rounds onto a neighbour).
    auto correct = [&](double t) {
      const auto imp_le = std::upper_bound(imp.begin(), imp.end(), t) - imp.begin();
      const auto gen_gt = gen.end() - std::upper_bound(gen.begin(), gen.end(), t);
      return imp_le + gen_gt;
    };
    double best_t = all.front() - 1.0;
    auto best = correct(best_t);
    for (std::size_t i = 0; i < all.size(); ++i) {
      const double t = i + 1 < all.size() ? (all[i] + all[i + 1]) / 2 : all.back() + 1.0;
      const auto c = correct(t);
      if (c > best) {
        best = c;
        best_t = t;
      }
    }
    std::int64_t right = 0, count = 0;
    for (std::int64_t k = 0; k < p; ++k)
      if (fold_of(k) == f) {
        ++count;
        right += (similarity[k] > best_t) == (k < genuine);
      }
    acc[f] = static_cast<double>(right) / count;
    thr[f] = best_t;
  }
  for (std::int64_t f = 0; f < folds; ++f) {
    r.accuracy += acc[f];
    r.threshold += thr[f];
  }
  r.accuracy /= folds;
  r.threshold /= folds;
  for (std::int64_t f = 0; f < folds; ++f) r.accuracy_std += (acc[f] - r.accuracy) * (acc[f] - r.accuracy) / folds;
  r.accuracy_std = std::sqrt(r.accuracy_std);

  // AUC = P(genuine > impostor) + P(tie) / 2, from the mid-ranks of all similarities (Mann-Whitney U).
  std::vector<std::int64_t> order(p);
  for (std::int64_t k = 0; k < p; ++k) order[k] = k;
  std::sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return similarity[a] < similarity[b]; });
  double rank_sum = 0;
  for (std::int64_t lo = 0; lo < p;) {
    std::int64_t hi = lo;
    while (hi + 1 < p && similarity[order[hi + 1]] == similarity[order[lo]]) ++hi;
    const double mid = 0.5 * (lo + hi) + 1.0;  // 1-based mid-rank of the tie group
    for (std::int64_t q = lo; q <= hi; ++q)
      if (order[q] < genuine) rank_sum += mid;
    lo = hi + 1;
  }
  const double g = static_cast<double>(r.genuine), i = static_cast<double>(r.impostor);
  r.auc = (rank_sum - g * (g + 1) / 2) / (g * i);

  // TAR at FAR = 1/D: threshold = the (floor(I / D) + 1)-th largest impostor similarity, accept iff > it.
  std::vector<double> imp(similarity.begin() + genuine, similarity.end());
  std::sort(imp.begin(), imp.end(), std::greater<double>());
  auto tar = [&](std::int64_t d) {
    if (r.impostor < d) return std::numeric_limits<double>::quiet_NaN();
    const double t = imp[r.impostor / d];
    const auto acc_gen = std::count_if(similarity.begin(), similarity.begin() + genuine, [t](double s) { return s > t; });
    return static_cast<double>(acc_gen) / g;
  };
  r.tar_at_far_1e2 = tar(100);
  r.tar_at_far_1e3 = tar(1000);
  return r;
}

/// verify_scores(pair_similarities(embeddings, sample_pairs(labels, seed))): the whole protocol.
inline verification_result verify(const float* embeddings, std::int64_t n, std::int64_t dim,
                                  const std::vector<std::int64_t>& labels, std::uint64_t seed) {
  topofr::detail::require(static_cast<std::int64_t>(labels.size()) == n, "verify", "labels", "has ", labels.size(),
                          " entries for n = ", n, " embeddings");
  const verification_pairs pairs = sample_pairs(labels, seed);
  return verify_scores(pair_similarities(embeddings, n, dim, pairs), pairs.genuine);
}

}  // namespace topofr::train
