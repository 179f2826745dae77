// The engine compiled for AVX2 + FMA (a 16-float vector is two ymm registers; 4 x 32 register tile).
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,f16c")
#pragma GCC diagnostic ignored "-Wpsabi"
#define UMSNET_MR 4
#define UMSNET_BF16_PATH "bf16 weights widened to fp32 (AVX2 FMA)"
#define UMSNET_ISA_NAME "avx2"
namespace umsnet_fast::cpu {
namespace avx2 {
#include "kernels_impl.h"
}  // namespace avx2
}  // namespace umsnet_fast::cpu
#pragma GCC pop_options
#else
namespace umsnet_fast::cpu {
namespace avx2 {
extern const KernelTable kTable = {"avx2", nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
}  // namespace avx2
}  // namespace umsnet_fast::cpu
#endif
