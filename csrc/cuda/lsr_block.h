// The fused LSR block forward (eval mode), torch-free: raw pointers, sizes, strides, a stream.
//
//   out = x + gamma * (GELU(LayerNorm(dwconv(x)) @ w1^T + b1) @ w2^T + b2)
//
// Shapes (channels last), every stride in ELEMENTS, not bytes:
//   x, out:     (batch, length, C)      any strides
//   dw_weight:  (C, k)                  contiguous, k odd (zero padding k / 2 on each side)
//   ln_weight, ln_bias, b2, gamma: (C,) contiguous
//   w1: (H, C), b1: (H,), w2: (C, H)   contiguous
// All tensors share one dtype (fp32, fp16 or bf16); statistics and accumulation are fp32.
// This header is plain C++ (g++ can include it); the kernels live in lsr_block.cu.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace umsnet_fast {

enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// Largest width the fused kernels take; wider blocks run the reference op (umsnet_fast/backends/cuda.py).
constexpr int kLsrMaxWidth = 128;
constexpr int kLsrMaxKernelSize = 15;

struct LsrBlockParams {
  const void* x;          // (batch, length, C)
  void* out;              // (batch, length, C)
  const void* dw_weight;  // (C, k)
  const void* ln_weight;  // (C,)
  const void* ln_bias;    // (C,)
  const void* w1;         // (H, C)
  const void* b1;         // (H,)
  const void* w2;         // (C, H)
  const void* b2;         // (C,)
  const void* gamma;      // (C,)
  int64_t batch, length;
  int channels;     // C
  int hidden;       // H (4C in UMSNet)
  int kernel_size;  // k
  float eps;        // LayerNorm epsilon
  int64_t x_batch_stride, x_length_stride, x_channel_stride;
  int64_t out_batch_stride, out_length_stride, out_channel_stride;
};

// Launches on `stream` (the device current on the calling thread). Returns cudaErrorInvalidValue for
// sizes the kernels do not take (C outside [1, kLsrMaxWidth], even or too large k, H < 1), else the
// launch status. `use_tensor_cores` = false forces the fp32-compute SIMT path for fp16/bf16 too.
cudaError_t lsr_block_forward(const LsrBlockParams& params, DType dtype, cudaStream_t stream,
                              bool use_tensor_cores = true);

// Human-readable name of the path lsr_block_forward takes for these arguments on the current device
// ("mma.m16n8k16", "mma.m16n8k8", "simt-fp32"); for tests and `umsnet-fast info`.
const char* lsr_block_path(DType dtype, bool use_tensor_cores = true);

}  // namespace umsnet_fast
