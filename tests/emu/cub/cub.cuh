// tests/emu/cub/cub.cuh — the emulated subset of CUB.
#pragma once
#include "block/block_reduce.cuh"
#include "block/block_scan.cuh"
#include "device/device_radix_sort.cuh"
#include "device/device_scan.cuh"
#include "thread/thread_operators.cuh"
#include "warp/warp_reduce.cuh"
