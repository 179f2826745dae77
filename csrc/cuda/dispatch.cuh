// Small switch macros that turn runtime dtype / width values into template arguments
// (the pattern of Dao-AILab/causal-conv1d's static_switch.h). Each evaluates to a cudaError_t.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "lsr_block.h"

// UMSNET_DISPATCH_DTYPE(dtype, T, [&] { return f<T>(...); }): T = float, __half or __nv_bfloat16.
#define UMSNET_DISPATCH_DTYPE(DTYPE, T, ...)  \
  [&]() -> cudaError_t {                      \
    switch (DTYPE) {                          \
      case ::umsnet_fast::DType::kFloat32: {  \
        using T = float;                      \
        return __VA_ARGS__();                 \
      }                                       \
      case ::umsnet_fast::DType::kFloat16: {  \
        using T = __half;                     \
        return __VA_ARGS__();                 \
      }                                       \
      case ::umsnet_fast::DType::kBFloat16: { \
        using T = __nv_bfloat16;              \
        return __VA_ARGS__();                 \
      }                                       \
    }                                         \
    return cudaErrorInvalidValue;             \
  }()

// UMSNET_DISPATCH_WIDTH(C, CPAD, [&] { return f<CPAD>(...); }): C padded up to 16, 32, 64 or 128
// (the MMA tile needs multiples of 16; padded channels are zeros and never stored).
#define UMSNET_DISPATCH_WIDTH(C, CPAD, ...) \
  [&]() -> cudaError_t {                    \
    if ((C) <= 16) {                        \
      constexpr int CPAD = 16;              \
      return __VA_ARGS__();                 \
    }                                       \
    if ((C) <= 32) {                        \
      constexpr int CPAD = 32;              \
      return __VA_ARGS__();                 \
    }                                       \
    if ((C) <= 64) {                        \
      constexpr int CPAD = 64;              \
      return __VA_ARGS__();                 \
    }                                       \
    if ((C) <= 128) {                       \
      constexpr int CPAD = 128;             \
      return __VA_ARGS__();                 \
    }                                       \
    return cudaErrorInvalidValue;           \
  }()
