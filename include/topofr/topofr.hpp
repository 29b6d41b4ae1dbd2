// topofr/topofr.hpp — the CPU side of the library: every TopoFR building block.
// CUDA specialisations: include topofr/topofr.cuh (nvcc only).
#pragma once

#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/view.hpp"
