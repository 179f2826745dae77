// The engine compiled for AVX-512 (16 floats per zmm register; 12 x 32 register tile).
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2,f16c")
#pragma GCC diagnostic ignored "-Wpsabi"
#define UMSNET_MR 12
#define UMSNET_BF16_PATH "bf16 weights widened to fp32 (AVX-512 FMA)"
#define UMSNET_ISA_NAME "avx512"
#define UMSNET_AVX512 1
namespace umsnet_fast::cpu {
namespace avx512 {
#include "kernels_impl.h"
}  // namespace avx512
}  // namespace umsnet_fast::cpu
#pragma GCC pop_options
#else
namespace umsnet_fast::cpu {
namespace avx512 {
extern const KernelTable kTable = {"avx512", nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
}  // namespace avx512
}  // namespace umsnet_fast::cpu
#endif
