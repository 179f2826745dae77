// The portable engine: the same code at the compiler's baseline target (SSE2 on x86-64, NEON on
// arm64...), GCC vectors split into what the target has; and the run-time choice of build.
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kernels.h"

#pragma GCC diagnostic ignored "-Wpsabi"
#define UMSNET_MR 2
#define UMSNET_BF16_PATH "bf16 weights widened to fp32 (portable kernels)"
#define UMSNET_ISA_NAME "generic"
namespace umsnet_fast::cpu {
namespace generic {
#include "kernels_impl.h"
}  // namespace generic

#if defined(__x86_64__) && defined(__GNUC__)
namespace {

bool has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
}

// Linux keeps the AMX tile data (8 KiB of state) off until a process asks for it; a tile instruction
// before that faults. The permission is process-wide and covers threads started later too. Asked once.
bool amx_permitted() {
#if defined(__linux__)
  static const bool granted = [] {
    const long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // <asm/prctl.h>, the XTILEDATA feature bit
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return granted;
#else
  return false;  // other systems: not attempted
#endif
}

}  // namespace
#endif

bool isa_supported(const char* name) {
  if (strcmp(name, "generic") == 0) return true;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (strcmp(name, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (strcmp(name, "avx512") == 0) return has_avx512();
  if (strcmp(name, "avx512bf16") == 0) return has_avx512() && __builtin_cpu_supports("avx512bf16");
  if (strcmp(name, "amx") == 0)
    return has_avx512() && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("amx-tile") &&
           __builtin_cpu_supports("amx-bf16") && amx_permitted();
#endif
  return false;
}

const KernelTable* select_kernels(const char* name) {
  const KernelTable* tables[] = {&amx::kTable, &avx512bf16::kTable, &avx512::kTable, &avx2::kTable,
                                 &generic::kTable};  // in the order of kIsaNames
  for (int i = 0; i < 5; ++i)
    if ((strcmp(name, "auto") == 0 || strcmp(name, kIsaNames[i]) == 0) && isa_supported(kIsaNames[i])) return tables[i];
  return nullptr;
}

}  // namespace umsnet_fast::cpu
