// The engine compiled for AVX-512 with AVX512-BF16 (e.g. AMD Zen 4, Intel Cooper Lake and later): the
// fp32 path is the avx512 build's; bf16 weights are multiplied with vdpbf16ps (32 bf16 products summed
// pairwise into 16 fp32 lanes per instruction), the activations rounded to bf16 per GEMM.
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,avx2,fma,bmi,bmi2,f16c")
#pragma GCC diagnostic ignored "-Wpsabi"
#define UMSNET_MR 12
#define UMSNET_ISA_NAME "avx512bf16"
#define UMSNET_BF16_PATH "AVX512-BF16 vdpbf16ps"
#define UMSNET_AVX512 1
#define UMSNET_BF16_DP 1
namespace umsnet_fast::cpu {
namespace avx512bf16 {
#include "kernels_impl.h"
}  // namespace avx512bf16
}  // namespace umsnet_fast::cpu
#pragma GCC pop_options
#else
namespace umsnet_fast::cpu {
namespace avx512bf16 {
extern const KernelTable kTable = {"avx512bf16", nullptr, nullptr, nullptr, nullptr,
                                   nullptr,      nullptr, nullptr, nullptr};
}  // namespace avx512bf16
}  // namespace umsnet_fast::cpu
#endif
