// A CPU emulation of the parts of the CUDA execution model the kernels in csrc/cuda use, so that
// their device code runs, unchanged, on machines without a GPU (tests/test_cuda_emulation.py).
// One CTA at a time, its threads as std::threads: __syncthreads is a barrier over the block,
// __shfl_xor_sync a barrier-separated exchange inside the warp, shared memory one static buffer.
// It checks indexing, masking, synchronisation and the data flow between the two GEMMs; it says
// nothing about speed, and the tensor-core register layouts are the PTX ISA's as emulated in
// emu_mma.cuh (the real ones are only exercised on a GPU).
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace emu {

constexpr int kMaxThreads = 1024;
constexpr size_t kSharedBytes = 96 * 1024;

inline thread_local uint3 thread_idx;
inline thread_local uint3 block_idx;
inline dim3 block_dim;
inline std::unique_ptr<std::barrier<>> block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline float shfl_exchange[kMaxThreads];

inline void warp_sync() { warp_barriers[thread_idx.x / 32]->arrive_and_wait(); }

// Runs body() as `grid` CTAs of `threads` threads, one CTA after the other.
inline void launch(unsigned grid, unsigned threads, const std::function<void()>& body) {
  if (threads % 32 != 0 || threads > kMaxThreads) std::abort();
  block_dim = dim3(threads, 1, 1);
  block_barrier = std::make_unique<std::barrier<>>(threads);
  warp_barriers.clear();
  for (unsigned w = 0; w < threads / 32; ++w) warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([t, grid, &body] {
      thread_idx = make_uint3(t, 0, 0);
      for (unsigned b = 0; b < grid; ++b) {
        block_idx = make_uint3(b, 0, 0);
        body();
        block_barrier->arrive_and_wait();  // the next CTA reuses the shared-memory buffer
      }
    });
  }
  for (auto& th : pool) th.join();
}

}  // namespace emu

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define __launch_bounds__(...)
#undef __shared__
#define __shared__

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
inline void __trap() { std::abort(); }
inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
  const unsigned t = threadIdx.x, base = t & ~31u;
  emu::shfl_exchange[t] = v;
  emu::warp_sync();
  const float r = emu::shfl_exchange[base + ((t & 31u) ^ static_cast<unsigned>(lane_mask))];
  emu::warp_sync();
  return r;
}
