// tests/headers/instantiate.hpp — one call of every public CPU entry point for a scalar type T, so that a
// translation unit that includes the headers also instantiates their templates: warnings inside a
// template body (-Wsign-conversion, -Wconversion, unused variables) only appear once it is instantiated.
// Nothing here runs; tests/headers/check_warnings.sh compiles it with -fsyntax-only -Werror.
#pragma once

#include <cstdint>
#include <string>

namespace topofr_header_check {

template <class T, class L>
void use_all(T* p, L* labels, topofr::edge* e) {
  using namespace topofr;
  const index_t n = 4, d = 3, c = 5;
  matrix_view<T> m(p, n, n), pts(p, n, d), cosm(p, n, c);
  matrix_view<const T> cm(p, n, n), cpts(p, n, d), ccos(p, n, c);
  vector_view<T> v(p, n);
  vector_view<const T> cv(p, n);
  vector_view<const L> lab(labels, n);
  vector_view<edge> pairs(e, n - 1);
  vector_view<const edge> cpairs(e, n - 1);
  batch_view<T> bm(p, 2, n, n), bp(p, 2, n, d);
  matrix_view<edge> bpairs(e, 2, n - 1);
  matrix_view<T> bdeaths(p, 2, n - 1);

  (void)image_scale(3, 112, 112);
  pairwise_distances(cpu, cpts, m, 2.0);
  pairwise_distances(cpu, batch_view<const T>(bp), bm, 2.0);
  persistence_pairs(cpu, cm, pairs, v);
  persistence_pairs(cpu, batch_view<const T>(bm), bpairs, bdeaths);
  persistence_pairs_from_points(cpu, batch_view<const T>(bp), 1.0, bpairs, bdeaths);
  gather_pairs(cpu, cm, cpairs, v);
  scatter_pairs_add(cpu, cpairs, cv, m);

  (void)isa_loss(cpu, cm, cm, cpairs, cpairs, isa_variant::symmetric, reduction::mean, m, m);
  (void)isa_loss_from_points(cpu, cpts, cpts, isa_options{}, pts, pts);

  (void)gum_fit(cpu, cv, v, gum_options{});
  sds_weights(cpu, cv, cv, 1.0, true, v);

  const combined_margin mg{};
  margin_logits(cpu, ccos, lab, mg, cosm);
  margin_logits_backward(cpu, ccos, lab, mg, matrix_view<const T>(cosm), cosm);
  margin_ce_forward(cpu, ccos, lab, mg, 1e-5, v, v, v, v);
  margin_ce_backward(cpu, ccos, lab, mg, cv, cv, 0.25, cosm);

  const class_range cr = shard_range(c, 2, 1);
  localize_labels(cpu, lab, cr, c, vector_view<L>(labels, n));
  shard_row_stats st[2 * 4];
  shard_stats(cpu, ccos, lab, mg, vector_view<shard_row_stats>(st, n));
  combine_shard_stats(st, 2, n, v, v, v, v);
  double part[4];
  shard_entropy_eps_partial(cpu, ccos, lab, mg, cv, 1e-5, vector_view<double>(part, n));
  index_t sample_index[2];
  (void)partial_fc_sample(cpu, lab, cr, 1, 0, 0, vector_view<index_t>(sample_index, cr.size()),
                          vector_view<L>(labels, n));

  const rsp_options ro{};
  rsp_apply(cpu, rsp_draw(ro, 0, 3, 8, 8), p, 3, 8, 8);
  std::int32_t kinds[2];
  rsp_perturb(cpu, image_batch_view<T>(p, 2, 3, 8, 8), ro, vector_view<std::int32_t>(kinds, 2));

  objective<T> obj(objective_options::paper());
  (void)obj(cpu, cpts, cpts, ccos, lab, pts, cosm);
}

template void use_all<float, std::int32_t>(float*, std::int32_t*, topofr::edge*);
template void use_all<double, std::int64_t>(double*, std::int64_t*, topofr::edge*);

}  // namespace topofr_header_check
