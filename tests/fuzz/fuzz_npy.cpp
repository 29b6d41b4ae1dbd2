// libFuzzer target: the .npy reader (topofr::npy::parse, the in-memory core of npy::read). Any input is
// either an array whose byte count matches its shape, or a topofr::error; never a crash, a leak or UB.
#include <topofr/npy.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  try {
    const topofr::npy::array a = topofr::npy::parse(data, size, "fuzz.npy");
    const topofr::index_t n = a.size();
    if (n < 0 || static_cast<std::uint64_t>(n) * topofr::npy::itemsize(a.type) != a.bytes.size()) std::abort();
    (void)a.shape_string();
    if (topofr::npy::is_float(a.type)) (void)a.as<double>("fuzz");
    else (void)a.as<std::int64_t>("fuzz");
  } catch (const topofr::error&) {
  }
  return 0;
}
