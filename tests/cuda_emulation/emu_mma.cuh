// mma_16x8x16 (csrc/cuda/mma.cuh) emulated on the CPU: the warp's fragments are exchanged through
// memory and each lane computes its four outputs from the PTX ISA's register layouts of
// mma.sync.m16n8k16.row.col (g = lane / 4, t = lane % 4):
//   A (16 x 16): a[0] (row g, k 2t..2t+1), a[1] (row g+8, k 2t..), a[2] (row g, k 2t+8..), a[3] (row g+8, k 2t+8..)
//   B (16 x 8):  b0 (k 2t..2t+1, col g), b1 (k 2t+8.., col g)
//   D (16 x 8):  d[0], d[1] (row g, cols 2t, 2t+1), d[2], d[3] (row g+8, cols 2t, 2t+1)
// The lower-indexed element of each pair sits in the low 16 bits.
#pragma once
#define UMSNET_FAST_MMA_CUH  // replaces csrc/cuda/mma.cuh

#include "emu_runtime.h"

namespace umsnet_fast {
namespace detail {

template <typename T>
inline float emu_half(uint32_t reg, int hi) {
  const uint16_t bits = static_cast<uint16_t>(hi ? reg >> 16 : reg & 0xffffu);
  T v;
  std::memcpy(static_cast<void*>(&v), &bits, sizeof(v));
  if constexpr (std::is_same_v<T, __half>)
    return __half2float(v);
  else
    return __bfloat162float(v);
}

inline uint32_t emu_mma_a[emu::kMaxThreads][4];
inline uint32_t emu_mma_b[emu::kMaxThreads][2];

template <typename T>
inline void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const unsigned tid = threadIdx.x, base = tid & ~31u, lane = tid & 31u;
  for (int i = 0; i < 4; ++i) emu_mma_a[tid][i] = a[i];
  emu_mma_b[tid][0] = b0;
  emu_mma_b[tid][1] = b1;
  emu::warp_sync();
  const int g = static_cast<int>(lane >> 2), t = static_cast<int>(lane & 3);
  for (int e = 0; e < 4; ++e) {
    const int row = g + 8 * (e >> 1), col = 2 * t + (e & 1);
    float s = 0.0f;
    for (int k = 0; k < 16; ++k) {
      const unsigned a_lane = base + (row % 8) * 4 + (k % 8) / 2;
      const int a_reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
      const unsigned b_lane = base + col * 4 + (k % 8) / 2;
      s += emu_half<T>(emu_mma_a[a_lane][a_reg], k & 1) * emu_half<T>(emu_mma_b[b_lane][k >= 8 ? 1 : 0], k & 1);
    }
    d[e] += s;
  }
  emu::warp_sync();
}

}  // namespace detail
}  // namespace umsnet_fast
