// The LSR block kernels of csrc/cuda/lsr_block_kernels.cuh run by the CPU emulation, behind a C
// entry point for ctypes (tests/test_cuda_emulation.py). Mirrors lsr_block_forward's dispatch;
// `path` 0 runs the tensor-core kernel (fp16 / bf16), 1 the SIMT kernel.
#include "emu_mma.cuh"  // first: emulated runtime, and mma_16x8x16 in place of the PTX one

#include "dispatch.cuh"
#include "lsr_block_kernels.cuh"

namespace umsnet_fast {
namespace detail {
alignas(16) unsigned char smem[emu::kSharedBytes];  // the `extern __shared__` buffer of the kernels
}  // namespace detail

namespace {

template <typename T, int CPAD>
cudaError_t run(const LsrBlockParams& p, int path) {
  using namespace detail;
  const int64_t rows = p.batch * p.length;
  if (path == 0) {
    if constexpr (std::is_same_v<T, float>) {
      return cudaErrorInvalidValue;
    } else {
      using Tile = MmaTile<CPAD>;
      static_assert(Tile::template smem_bytes<T>() <= emu::kSharedBytes);
      const bool vec = p.channels % 8 == 0 && p.hidden % 8 == 0 && reinterpret_cast<uintptr_t>(p.w1) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(p.w2) % 16 == 0;
      emu::launch(static_cast<unsigned>((rows + Tile::TM - 1) / Tile::TM), kThreads,
                  [&] { lsr_block_mma_kernel<T, CPAD>(p, vec); });
      return cudaSuccess;
    }
  }
  using Tile = SimtTile<CPAD>;
  static_assert(Tile::smem_bytes() <= emu::kSharedBytes);
  emu::launch(static_cast<unsigned>((rows + Tile::TM - 1) / Tile::TM), kThreads,
              [&] { lsr_block_simt_kernel<T, CPAD>(p); });
  return cudaSuccess;
}

}  // namespace
}  // namespace umsnet_fast

extern "C" int umsnet_emulate_lsr_block(const umsnet_fast::LsrBlockParams* p, int dtype, int path) {
  if (p->channels < 1 || p->channels > umsnet_fast::kLsrMaxWidth || p->kernel_size % 2 == 0) return -1;
  if (p->batch * p->length == 0) return 0;
  const auto dt = static_cast<umsnet_fast::DType>(dtype);
  return static_cast<int>(UMSNET_DISPATCH_DTYPE(dt, T, [&] {
    return UMSNET_DISPATCH_WIDTH(p->channels, CPAD, [&] { return umsnet_fast::run<T, CPAD>(*p, path); });
  }));
}
