// topofr/topofr.cuh — the whole library, CPU and CUDA (nvcc only): topofr.hpp plus every CUDA overload
// (first argument `const topofr::cuda::context&`; see docs/cuda.md).
#pragma once

#include "topofr.hpp"

#include "cuda/context.cuh"      // stream, the caller's allocator, the device status word
#include "cuda/arcface.cuh"      // margin logits, fused margin-softmax cross-entropy head
#include "cuda/distance.cuh"     // pairwise distances
#include "cuda/gather.cuh"       // persistence-pair gathering and its adjoint
#include "cuda/gum.cuh"          // GUM EM (result via a device pointer), SDS weights
#include "cuda/isa.cuh"          // ISA loss (loss via a device scalar)
#include "cuda/objective.cuh"    // cuda::objective<T>: L_cls + alpha L_sa on the device
#include "cuda/persistence.cuh"  // VR 0-dim persistence pairs
#include "cuda/rsp.cuh"          // random structure perturbation
#include "cuda/shard.cuh"        // class-sharded head primitives (Partial FC)
