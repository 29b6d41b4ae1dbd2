// topofr/topofr.hpp — the CPU side of the library: every TopoFR building block.
// CUDA specialisations: include topofr/topofr.cuh (nvcc only).
#pragma once

#include "core/error.hpp"
#include "core/execution.hpp"
#include "core/rng.hpp"
#include "core/view.hpp"

#include "arcface.hpp"      // combined-margin logits and the fused margin-softmax cross-entropy head
#include "distance.hpp"     // pairwise distances
#include "gather.hpp"       // persistence-pair gathering and its adjoint
#include "gum.hpp"          // Gaussian-uniform mixture posterior and SDS weights
#include "isa.hpp"          // invariant structure alignment loss
#include "objective.hpp"    // L_cls + alpha * L_sa, wired as the paper does
#include "persistence.hpp"  // VR 0-dim persistence pairs
#include "rsp.hpp"          // random structure perturbation
#include "shard.hpp"        // class-sharded head primitives (Partial FC)
