// Downstream smoke test: three collinear points 0, 1, 3 — the MST is (0,1) at 1 and (1,2) at 2.
#include <topofr/topofr.hpp>
#include <cstdio>

int main() {
  const float pts[3] = {0.f, 1.f, 3.f};
  float dist[9];
  topofr::edge pairs[2];
  float deaths[2];
  topofr::pairwise_distances(topofr::cpu, topofr::make_matrix_view(pts, 3, 1), topofr::make_matrix_view(dist, 3, 3));
  topofr::persistence_pairs(topofr::cpu, topofr::make_matrix_view(dist, 3, 3), topofr::make_vector_view(pairs, 2),
                            topofr::make_vector_view(deaths, 2));
  const bool ok = pairs[0] == topofr::edge{0, 1} && pairs[1] == topofr::edge{1, 2} && deaths[0] == 1.f &&
                  deaths[1] == 2.f;
  std::printf("consumer: pairs (%d,%d) (%d,%d) deaths %g %g -> %s\n", pairs[0].u, pairs[0].v, pairs[1].u,
              pairs[1].v, deaths[0], deaths[1], ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
