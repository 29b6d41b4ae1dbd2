// Memory spaces are part of the view types (topofr/core/view.hpp): a view of host memory passed to a CUDA
// overload, or a device view to a CPU overload, must not compile. tests/headers/check_spaces.sh compiles
// this file once per SPACE_CASE: case 0 (device views to the CUDA overloads, host views to the CPU ones,
// const-adding conversions within a space) must compile; every other case must be rejected by the compiler.
// Compiled by the host compiler against the SIMT emulator's CUDA headers (tests/emu), so no nvcc is needed.
#include <topofr/topofr.cuh>

#include <cstdint>

using namespace topofr;

void spaces(const cuda::context& ctx, float* p, edge* e, std::int32_t* k) {
  device_matrix_view<float> dm(p, 4, 4);
  device_vector_view<edge> dpairs(e, 3);
  matrix_view<float> hm(p, 4, 4);
  vector_view<edge> hpairs(e, 3);
  (void)dm; (void)dpairs; (void)hm; (void)hpairs; (void)ctx; (void)k;
#if SPACE_CASE == 0
  device_matrix_view<const float> dcm = dm;  // const-adding conversion within a space
  matrix_view<const float> hcm = hm;
  persistence_pairs(ctx, dcm, dpairs);
  persistence_pairs(cpu, hcm, hpairs);
  rsp_perturb(ctx, device_image_batch_view<float>(p, 1, 3, 4, 4), rsp_options{},
              device_vector_view<std::int32_t>(k, 1));
  margin_logits(ctx, dcm, device_vector_view<const std::int32_t>(k, 4), combined_margin{}, dm);
#elif SPACE_CASE == 1
  persistence_pairs(ctx, hm, dpairs);  // host matrix to the CUDA overload
#elif SPACE_CASE == 2
  persistence_pairs(ctx, dm, hpairs);  // host output vector to the CUDA overload
#elif SPACE_CASE == 3
  persistence_pairs(cpu, dm, hpairs);  // device matrix to the CPU overload
#elif SPACE_CASE == 4
  rsp_perturb(ctx, image_batch_view<float>(p, 1, 3, 4, 4), rsp_options{});  // host images, CUDA overload
#elif SPACE_CASE == 5
  margin_logits(ctx, device_matrix_view<const float>(dm), vector_view<const std::int32_t>(k, 4),
                combined_margin{}, dm);  // host labels, CUDA overload
#elif SPACE_CASE == 6
  matrix_view<float> m = dm;  // no implicit conversion between spaces
  (void)m;
#elif SPACE_CASE == 7
  device_vector_view<float> v = vector_view<float>(p, 4);
  (void)v;
#else
#error "unknown SPACE_CASE"
#endif
}
