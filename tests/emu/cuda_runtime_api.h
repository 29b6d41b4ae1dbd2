// tests/emu/cuda_runtime_api.h — shadow: the emulator's runtime API lives in cuda_runtime.h.
#pragma once
#include "cuda_runtime.h"
