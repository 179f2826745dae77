// The portable engine: the same code at the compiler's baseline target (SSE2 on x86-64, NEON on
// arm64...), GCC vectors split into what the target has; and the run-time choice of build.
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#pragma GCC diagnostic ignored "-Wpsabi"
#define UMS_MR 2
#define UMS_ISA_NAME "generic"
namespace umsnet_cpu {
namespace generic {
#include "kernels_impl.h"
}  // namespace generic

bool isa_supported(const char* name) {
  if (strcmp(name, "generic") == 0) return true;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (strcmp(name, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (strcmp(name, "avx512") == 0)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("fma");
#endif
  return false;
}

const KernelTable* select_kernels(const char* name) {
  if (strcmp(name, "auto") == 0) {
    if (isa_supported("avx512")) return &avx512::kTable;
    if (isa_supported("avx2")) return &avx2::kTable;
    return &generic::kTable;
  }
  if (!isa_supported(name)) return nullptr;
  if (strcmp(name, "avx512") == 0) return &avx512::kTable;
  if (strcmp(name, "avx2") == 0) return &avx2::kTable;
  return &generic::kTable;
}

}  // namespace umsnet_cpu
