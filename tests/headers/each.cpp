// Every public CPU header on its own include line, in an order unlike the umbrella's, each block
// instantiated, plus the .npy reader/writer (tests/headers/check_warnings.sh).
#include <topofr/core/error.hpp>
#include <topofr/core/execution.hpp>
#include <topofr/core/fastmath.hpp>
#include <topofr/core/rng.hpp>
#include <topofr/core/view.hpp>
#include <topofr/rsp.hpp>
#include <topofr/objective.hpp>
#include <topofr/persistence.hpp>
#include <topofr/isa.hpp>
#include <topofr/gum.hpp>
#include <topofr/gather.hpp>
#include <topofr/distance.hpp>
#include <topofr/arcface.hpp>
#include <topofr/shard.hpp>
#include <topofr/npy.hpp>
#include <topofr/topofr.hpp>

#include "instantiate.hpp"

namespace topofr_header_check {
inline void use_npy() {
  const topofr::npy::array a = topofr::npy::read("x.npy");
  (void)a.as<float>("x");
  (void)a.as<std::int64_t>("y");
  const float f[2] = {0.f, 1.f};
  topofr::npy::write("y.npy", f, {2});
}
}  // namespace topofr_header_check
