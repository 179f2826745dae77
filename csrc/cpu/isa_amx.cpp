// The engine compiled for AMX (Intel Sapphire Rapids and later): the fp32 path is the avx512 build's;
// bf16 weights are multiplied on the tile unit (tdpbf16ps: a 16 x 32 bf16 tile of activations times a
// 32 x 16 tile of packed weights into a 16 x 16 fp32 tile), the epilogue in AVX-512 registers.
// select_kernels picks it only where the CPU reports amx-tile and amx-bf16 and Linux granted the
// tile state (isa_generic.cpp); without that, a tile instruction would fault.
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16,avx2,fma,bmi,bmi2,f16c")
#pragma GCC diagnostic ignored "-Wpsabi"
#define UMSNET_MR 12
#define UMSNET_ISA_NAME "amx"
#define UMSNET_BF16_PATH "AMX tiles (tdpbf16ps)"
#define UMSNET_AVX512 1
#define UMSNET_BF16_DP 1
#define UMSNET_AMX 1
namespace umsnet_fast::cpu {
namespace amx {
#include "kernels_impl.h"
}  // namespace amx
}  // namespace umsnet_fast::cpu
#pragma GCC pop_options
#else
namespace umsnet_fast::cpu {
namespace amx {
extern const KernelTable kTable = {"amx", nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
}  // namespace amx
}  // namespace umsnet_fast::cpu
#endif
