// Catch2 main for the emulated CUDA tests (tests/emu.cmake): as tests/cuda/cuda_main.cpp, without the
// device check — the SIMT emulator (tests/emu) is the device. Names the schedule order when one is set.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (const char* s = std::getenv("SIMT_SCHEDULE")) std::printf("SIMT emulator: schedule %s\n", s);
  return Catch::Session().run(argc, argv);
}
