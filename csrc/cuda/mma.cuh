// Warp-level tensor-core MMA, the one place with inline PTX. The CPU emulation of the kernels
// (tests/cuda_emulation) defines this guard and its own mma_16x8x16 with the same register layouts.
#ifndef UMSNET_FAST_MMA_CUH
#define UMSNET_FAST_MMA_CUH

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace umsnet_fast {
namespace detail {

// d += a (16x16, row) @ b (16x8, col), fp32 accumulators. Register layouts (PTX ISA, mma.m16n8k16),
// g = lane / 4, t = lane % 4:
//   a[0]: (row g, cols 2t, 2t+1)  a[1]: (row g+8, cols 2t..)  a[2]: (row g, cols 2t+8..)  a[3]: (row g+8, cols 2t+8..)
//   b0: (k 2t, 2t+1; col g)       b1: (k 2t+8, 2t+9; col g)
//   d[0], d[1]: (row g, cols 2t, 2t+1)   d[2], d[3]: (row g+8, cols 2t, 2t+1)
template <typename T>
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma_16x8x16<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  // sm_75 has m16n8k8 only: k 0..7 is {a[0], a[1]} x b0, k 8..15 is {a[2], a[3]} x b1.
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(b0));
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[2]), "r"(a[3]), "r"(b1));
#else
  __trap();  // never launched: the host picks the SIMT path below sm_75
#endif
}

template <>
__device__ __forceinline__ void mma_16x8x16<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                           uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap();  // never launched: the host runs bf16 on the SIMT path below sm_80
#endif
}

}  // namespace detail
}  // namespace umsnet_fast

#endif  // UMSNET_FAST_MMA_CUH
