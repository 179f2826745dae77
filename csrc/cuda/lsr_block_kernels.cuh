// The LSR block kernels (device code); lsr_block.cu holds the host launcher. See lsr_block.cu for the
// design. Kept in a header so that a CPU emulation of the CUDA execution model can run the same code
// (tests/cuda_emulation).
#pragma once

#include <cstdint>
#include <cstring>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lsr_block.h"
#include "mma.cuh"

namespace umsnet_fast {
namespace detail {

constexpr int kThreads = 128;  // 4 warps per CTA on both paths
constexpr int kWarps = kThreads / 32;

// ---------------------------------------------------------------------------------------------
// Element helpers
template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float to_float<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Two floats as one 32-bit register of two T, the lower column in the low half (MMA operand order).
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &h, sizeof(r));
  return r;
}
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &h, sizeof(r));
  return r;
}

__device__ __forceinline__ uint32_t ld32(const void* p) { return *static_cast<const uint32_t*>(p); }

// Exact GELU, as F.gelu's default (not the tanh approximation).
__device__ __forceinline__ float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Phase 1: sA[r][c] = LayerNorm(dwconv(x))[row0 + r][c] for r < TM, c < CPAD (lda = row stride);
// zeros in the padded channels c >= C and in rows past the end. One warp per position, lane owns
// channels lane + 32 i; mean and variance in fp32, two passes over registers.
template <typename T, typename S, int CPAD, int TM>
__device__ __forceinline__ void dwconv_layernorm_tile(const LsrBlockParams& p, int64_t row0, S* sA, int lda) {
  constexpr int NV = (CPAD + 31) / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const T* x = static_cast<const T*>(p.x);
  const T* dw = static_cast<const T*>(p.dw_weight);
  const T* lnw = static_cast<const T*>(p.ln_weight);
  const T* lnb = static_cast<const T*>(p.ln_bias);
  const int C = p.channels, k = p.kernel_size, half_k = p.kernel_size / 2;
  const int64_t rows = p.batch * p.length;
  for (int r = warp; r < TM; r += kWarps) {
    const int64_t row = row0 + r;
    S* dst = sA + r * lda;
    if (row >= rows) {  // warp-uniform
#pragma unroll
      for (int i = 0; i < NV; ++i) {
        const int c = lane + 32 * i;
        if (c < CPAD) dst[c] = from_float<S>(0.0f);
      }
      continue;
    }
    const int64_t b = row / p.length, l = row - b * p.length;
    const T* xb = x + b * p.x_batch_stride;
    float v[NV];
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; ++i) {
      const int c = lane + 32 * i;
      float acc = 0.0f;
      if (c < C) {
        for (int j = 0; j < k; ++j) {
          const int64_t ll = l + j - half_k;
          if (ll >= 0 && ll < p.length)
            acc += to_float(dw[c * k + j]) * to_float(xb[ll * p.x_length_stride + c * p.x_channel_stride]);
        }
      }
      v[i] = acc;
      sum += acc;
    }
    const float mean = warp_sum(sum) / C;
    float sq = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; ++i) {
      const float d = v[i] - mean;
      if (lane + 32 * i < C) sq += d * d;
    }
    const float rstd = rsqrtf(warp_sum(sq) / C + p.eps);
#pragma unroll
    for (int i = 0; i < NV; ++i) {
      const int c = lane + 32 * i;
      if (c < CPAD) dst[c] = from_float<S>(c < C ? (v[i] - mean) * rstd * to_float(lnw[c]) + to_float(lnb[c]) : 0.0f);
    }
  }
}

// Phase 3 for one output element: out = x + gamma * (y + b2).
template <typename T>
__device__ __forceinline__ void store_output(const LsrBlockParams& p, int64_t row, int c, float y) {
  const int64_t b = row / p.length, l = row - b * p.length;
  const T* x = static_cast<const T*>(p.x);
  const float res = to_float(x[b * p.x_batch_stride + l * p.x_length_stride + c * p.x_channel_stride]);
  const float g = to_float(static_cast<const T*>(p.gamma)[c]);
  const float b2 = to_float(static_cast<const T*>(p.b2)[c]);
  static_cast<T*>(p.out)[b * p.out_batch_stride + l * p.out_length_stride + c * p.out_channel_stride] =
      from_float<T>(res + g * (y + b2));
}

// ---------------------------------------------------------------------------------------------
// Tensor-core path (fp16, bf16): mma_16x8x16 is in mma.cuh

template <int CPAD>
struct MmaTile {
  static constexpr int TM = 16 * kWarps;            // positions per CTA: 16 rows per warp
  static constexpr int HC = CPAD >= 128 ? 32 : 64;  // hidden units per chunk
  // Row strides in elements, = 8 (mod 16): the 8 rows x 4 words of a fragment load hit 32 banks.
  static constexpr int LDA = CPAD + 8;
  static constexpr int LDW2 = HC + 8;
  template <typename T>
  static constexpr size_t smem_bytes() {
    return (TM * LDA + HC * LDA + CPAD * LDW2) * sizeof(T) + HC * sizeof(float);
  }
};

template <typename T, int CPAD>
__global__ void __launch_bounds__(kThreads, 1) lsr_block_mma_kernel(const LsrBlockParams p, const bool vec_loads) {
  using Tile = MmaTile<CPAD>;
  constexpr int TM = Tile::TM, HC = Tile::HC, LDA = Tile::LDA, LDW2 = Tile::LDW2;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sA = reinterpret_cast<T*>(smem);                        // (TM, LDA): LN output, the A operand of GEMM1
  T* sW1 = sA + TM * LDA;                                    // (HC, LDA): sW1[n][k] = w1[h0 + n][k]
  T* sW2 = sW1 + HC * LDA;                                   // (CPAD, LDW2): sW2[c][j] = w2[c][h0 + j]
  float* sB1 = reinterpret_cast<float*>(sW2 + CPAD * LDW2);  // (HC,)

  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * TM;
  dwconv_layernorm_tile<T, T, CPAD, TM>(p, row0, sA, LDA);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const int C = p.channels, H = p.hidden;
  const T* w1 = static_cast<const T*>(p.w1);
  const T* w2 = static_cast<const T*>(p.w2);
  const T* b1 = static_cast<const T*>(p.b1);
  const T* a_frag = sA + (warp * 16 + g) * LDA + 2 * t;  // this lane's A-fragment origin

  float acc2[CPAD / 8][4];
#pragma unroll
  for (int nt = 0; nt < CPAD / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc2[nt][e] = 0.0f;

  for (int h0 = 0; h0 < H; h0 += HC) {
    __syncthreads();  // sA complete (first chunk); the previous chunk's weights consumed
    // Stage this chunk of w1, w2 and b1; zeros outside (H, C) make padded lanes contribute 0.
    if (vec_loads) {  // C % 8 == 0, H % 8 == 0, 16-byte aligned: 8 elements per load
      for (int i = tid; i < HC * (CPAD / 8); i += kThreads) {
        const int n = i / (CPAD / 8), kc = (i % (CPAD / 8)) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (h0 + n < H && kc < C) v = *reinterpret_cast<const uint4*>(w1 + static_cast<int64_t>(h0 + n) * C + kc);
        *reinterpret_cast<uint4*>(sW1 + n * LDA + kc) = v;
      }
      for (int i = tid; i < CPAD * (HC / 8); i += kThreads) {
        const int c = i / (HC / 8), j = (i % (HC / 8)) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (c < C && h0 + j < H) v = *reinterpret_cast<const uint4*>(w2 + static_cast<int64_t>(c) * H + h0 + j);
        *reinterpret_cast<uint4*>(sW2 + c * LDW2 + j) = v;
      }
    } else {
      for (int i = tid; i < HC * CPAD; i += kThreads) {
        const int n = i / CPAD, kc = i % CPAD;
        sW1[n * LDA + kc] = (h0 + n < H && kc < C) ? w1[static_cast<int64_t>(h0 + n) * C + kc] : from_float<T>(0.0f);
      }
      for (int i = tid; i < CPAD * HC; i += kThreads) {
        const int c = i / HC, j = i % HC;
        sW2[c * LDW2 + j] = (c < C && h0 + j < H) ? w2[static_cast<int64_t>(c) * H + h0 + j] : from_float<T>(0.0f);
      }
    }
    for (int i = tid; i < HC; i += kThreads) sB1[i] = h0 + i < H ? to_float(b1[h0 + i]) : 0.0f;
    __syncthreads();

    // GEMM1 for this warp's 16 rows: acc1 = b1 + A (16 x CPAD) @ W1chunk^T (CPAD x HC).
    float acc1[HC / 8][4];
#pragma unroll
    for (int nt = 0; nt < HC / 8; ++nt) {
      const float bias_lo = sB1[nt * 8 + 2 * t], bias_hi = sB1[nt * 8 + 2 * t + 1];
      acc1[nt][0] = bias_lo;
      acc1[nt][1] = bias_hi;
      acc1[nt][2] = bias_lo;
      acc1[nt][3] = bias_hi;
    }
#pragma unroll
    for (int kk = 0; kk < CPAD / 16; ++kk) {
      const uint32_t a[4] = {ld32(a_frag + kk * 16), ld32(a_frag + 8 * LDA + kk * 16), ld32(a_frag + kk * 16 + 8),
                             ld32(a_frag + 8 * LDA + kk * 16 + 8)};
#pragma unroll
      for (int nt = 0; nt < HC / 8; ++nt) {
        const T* bp = sW1 + (nt * 8 + g) * LDA + kk * 16 + 2 * t;
        mma_16x8x16<T>(acc1[nt], a, ld32(bp), ld32(bp + 8));
      }
    }
    // GELU in registers, rounded to T as the A operand of GEMM2: hidden tiles 2kk and 2kk+1 of
    // GEMM1's accumulator are exactly the A fragment of GEMM2's k16 step kk.
#pragma unroll
    for (int kk = 0; kk < HC / 16; ++kk) {
      const uint32_t a[4] = {pack2<T>(gelu_erf(acc1[2 * kk][0]), gelu_erf(acc1[2 * kk][1])),
                             pack2<T>(gelu_erf(acc1[2 * kk][2]), gelu_erf(acc1[2 * kk][3])),
                             pack2<T>(gelu_erf(acc1[2 * kk + 1][0]), gelu_erf(acc1[2 * kk + 1][1])),
                             pack2<T>(gelu_erf(acc1[2 * kk + 1][2]), gelu_erf(acc1[2 * kk + 1][3]))};
#pragma unroll
      for (int nt = 0; nt < CPAD / 8; ++nt) {
        const T* bp = sW2 + (nt * 8 + g) * LDW2 + kk * 16 + 2 * t;
        mma_16x8x16<T>(acc2[nt], a, ld32(bp), ld32(bp + 8));
      }
    }
  }

  const int64_t rows = p.batch * p.length;
#pragma unroll
  for (int nt = 0; nt < CPAD / 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t row = row0 + warp * 16 + g + 8 * (e >> 1);
      const int c = nt * 8 + 2 * t + (e & 1);
      if (row < rows && c < C) store_output<T>(p, row, c, acc2[nt][e]);
    }
}

// ---------------------------------------------------------------------------------------------
// SIMT path: true fp32 FMAs (fp32, and bf16 below sm_80). Same tiling with fp32 shared memory.

template <int CPAD>
struct SimtTile {
  static constexpr int TM = 32;
  static constexpr int HC = CPAD >= 128 ? 16 : 32;  // keeps shared memory under 48 KiB
  static constexpr int LDA = CPAD + 1;              // odd strides: column walks spread over banks
  static constexpr int LDH = HC + 1;
  static constexpr int NJ = CPAD >= 32 ? CPAD / 32 : 1;  // output columns per thread (lane + 32 j)
  static constexpr size_t smem_bytes() { return (TM * LDA + HC * LDA + HC * CPAD + TM * LDH + HC) * sizeof(float); }
};

template <typename T, int CPAD>
__global__ void __launch_bounds__(kThreads) lsr_block_simt_kernel(const LsrBlockParams p) {
  using Tile = SimtTile<CPAD>;
  constexpr int TM = Tile::TM, HC = Tile::HC, LDA = Tile::LDA, LDH = Tile::LDH, NJ = Tile::NJ;
  constexpr int R1 = kThreads / HC;  // GEMM1: thread (n = tid % HC) computes rows tid / HC + R1 i
  constexpr int R2 = kWarps;         // GEMM2: warp w computes rows w + R2 i, lanes the columns
  extern __shared__ __align__(16) unsigned char smem[];
  float* sA = reinterpret_cast<float*>(smem);  // (TM, LDA)
  float* sW1 = sA + TM * LDA;                  // (HC, LDA): sW1[n][k] = w1[h0 + n][k]
  float* sW2 = sW1 + HC * LDA;                 // (HC, CPAD): sW2[j][c] = w2[c][h0 + j]
  float* sH = sW2 + HC * CPAD;                 // (TM, LDH): GELU(hidden) of this chunk
  float* sB1 = sH + TM * LDH;                  // (HC,)

  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * TM;
  dwconv_layernorm_tile<T, float, CPAD, TM>(p, row0, sA, LDA);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int C = p.channels, H = p.hidden;
  const T* w1 = static_cast<const T*>(p.w1);
  const T* w2 = static_cast<const T*>(p.w2);
  const T* b1 = static_cast<const T*>(p.b1);

  float acc[TM / R2][NJ];
#pragma unroll
  for (int i = 0; i < TM / R2; ++i)
#pragma unroll
    for (int j = 0; j < NJ; ++j) acc[i][j] = 0.0f;

  for (int h0 = 0; h0 < H; h0 += HC) {
    __syncthreads();
    for (int i = tid; i < HC * CPAD; i += kThreads) {
      const int n = i / CPAD, kc = i % CPAD;
      sW1[n * LDA + kc] = (h0 + n < H && kc < C) ? to_float(w1[static_cast<int64_t>(h0 + n) * C + kc]) : 0.0f;
    }
    for (int i = tid; i < CPAD * HC; i += kThreads) {
      const int c = i / HC, j = i % HC;  // consecutive threads read consecutive w2 elements
      sW2[j * CPAD + c] = (c < C && h0 + j < H) ? to_float(w2[static_cast<int64_t>(c) * H + h0 + j]) : 0.0f;
    }
    for (int i = tid; i < HC; i += kThreads) sB1[i] = h0 + i < H ? to_float(b1[h0 + i]) : 0.0f;
    __syncthreads();

    {  // GEMM1 + bias + GELU -> sH
      const int n = tid % HC, r = tid / HC;
      float s[TM / R1];
#pragma unroll
      for (int i = 0; i < TM / R1; ++i) s[i] = sB1[n];
#pragma unroll 4
      for (int kc = 0; kc < CPAD; ++kc) {
        const float w = sW1[n * LDA + kc];
#pragma unroll
        for (int i = 0; i < TM / R1; ++i) s[i] = fmaf(sA[(r + R1 * i) * LDA + kc], w, s[i]);
      }
#pragma unroll
      for (int i = 0; i < TM / R1; ++i) sH[(r + R1 * i) * LDH + n] = gelu_erf(s[i]);
    }
    __syncthreads();

    // GEMM2: acc[i][j] += sH[row i] . sW2[:, col j]
#pragma unroll 4
    for (int n = 0; n < HC; ++n) {
      float w[NJ];
#pragma unroll
      for (int j = 0; j < NJ; ++j) {
        const int c = lane + 32 * j;
        w[j] = c < CPAD ? sW2[n * CPAD + c] : 0.0f;
      }
#pragma unroll
      for (int i = 0; i < TM / R2; ++i) {
        const float h = sH[(warp + R2 * i) * LDH + n];
#pragma unroll
        for (int j = 0; j < NJ; ++j) acc[i][j] = fmaf(h, w[j], acc[i][j]);
      }
    }
  }

  const int64_t rows = p.batch * p.length;
#pragma unroll
  for (int i = 0; i < TM / R2; ++i)
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const int64_t row = row0 + warp + R2 * i;
      const int c = lane + 32 * j;
      if (row < rows && c < C) store_output<T>(p, row, c, acc[i][j]);
    }
}

}  // namespace detail
}  // namespace umsnet_fast
