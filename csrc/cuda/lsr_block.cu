// The fused LSR block forward: out = x + gamma * (GELU(LN(dwconv(x)) @ w1^T + b1) @ w2^T + b2).
//
// One CTA per tile of TM consecutive positions of the flattened (batch * length) axis. The depthwise
// conv reads its k - 1 halo neighbours straight from x, masked to the position's own sample (zero
// padding at both sequence ends), so a tile may hold several short samples without mixing them
// (UMSNet's blocks run at lengths 3 to 25, far below any useful tile). Phases:
//   1. dwconv + LayerNorm (fp32 statistics), one warp per position, into shared memory (sA);
//   2. for each chunk of HC hidden units: stage that chunk of w1 / w2 / b1 in shared memory,
//      GEMM1 (TM x C) @ (C x HC) -> + b1 -> GELU(erf), then GEMM2 (TM x HC) @ (HC x C) accumulated
//      over the chunks in registers; the 4C hidden never leaves the SM;
//   3. epilogue: + b2, * gamma, + x, store.
// Paths: fp16 / bf16 on tensor cores (mma.sync m16n8k16, fp32 accumulation; fp16 on sm_75 as two
// m16n8k8), the hidden kept in registers between the GEMMs (the accumulator layout of two n8 tiles is
// the A-operand layout of one k16 step); fp32 in true fp32 SIMT FMAs (DESIGN.md: no TF32), also the
// fallback for bf16 on sm_75 (no bf16 MMA there). Nothing here needs Hopper-only instructions.
#include <cstdint>
#include <type_traits>

#include <cuda_runtime.h>

#include "dispatch.cuh"
#include "lsr_block.h"
#include "lsr_block_kernels.cuh"

namespace umsnet_fast {
namespace {

using namespace detail;

// ---------------------------------------------------------------------------------------------
// Host side

enum class Path { kMmaK16, kMmaK8, kSimt };

Path choose_path(DType dtype, bool use_tensor_cores, int cc) {
  if (dtype == DType::kFloat32 || !use_tensor_cores) return Path::kSimt;
  if (dtype == DType::kFloat16) return cc >= 80 ? Path::kMmaK16 : cc >= 75 ? Path::kMmaK8 : Path::kSimt;
  return cc >= 80 ? Path::kMmaK16 : Path::kSimt;  // bf16 MMA needs sm_80
}

cudaError_t current_compute_capability(int* cc) {
  int dev = 0, major = 0, minor = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  *cc = major * 10 + minor;
  return err;
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

template <typename T, int CPAD>
cudaError_t launch(const LsrBlockParams& p, Path path, cudaStream_t stream) {
  const int64_t rows = p.batch * p.length;
  if (path != Path::kSimt) {
    if constexpr (std::is_same<T, float>::value) {
      return cudaErrorInvalidValue;  // unreachable: choose_path never sends fp32 to the MMA kernel
    } else {
      using Tile = MmaTile<CPAD>;
      constexpr size_t smem = Tile::template smem_bytes<T>();
      static_assert(smem <= 48 * 1024, "MMA tile exceeds the default shared-memory limit");
      const bool vec = p.channels % 8 == 0 && p.hidden % 8 == 0 && aligned16(p.w1) && aligned16(p.w2);
      const dim3 grid(static_cast<unsigned>((rows + Tile::TM - 1) / Tile::TM));
      lsr_block_mma_kernel<T, CPAD><<<grid, kThreads, smem, stream>>>(p, vec);
      return cudaGetLastError();
    }
  }
  using Tile = SimtTile<CPAD>;
  constexpr size_t smem = Tile::smem_bytes();
  static_assert(smem <= 48 * 1024, "SIMT tile exceeds the default shared-memory limit");
  const dim3 grid(static_cast<unsigned>((rows + Tile::TM - 1) / Tile::TM));
  lsr_block_simt_kernel<T, CPAD><<<grid, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t lsr_block_forward(const LsrBlockParams& p, DType dtype, cudaStream_t stream, bool use_tensor_cores) {
  if (p.channels < 1 || p.channels > kLsrMaxWidth || p.hidden < 1 || p.kernel_size < 1 || p.kernel_size % 2 == 0 ||
      p.kernel_size > kLsrMaxKernelSize || p.batch < 0 || p.length < 0)
    return cudaErrorInvalidValue;
  const int64_t rows = p.batch * p.length;
  if (rows == 0) return cudaSuccess;
  if ((rows + 31) / 32 > 0x7fffffff) return cudaErrorInvalidValue;  // grid.x limit
  int cc = 0;
  const cudaError_t err = current_compute_capability(&cc);
  if (err != cudaSuccess) return err;
  const Path path = choose_path(dtype, use_tensor_cores, cc);
  return UMSNET_DISPATCH_DTYPE(dtype, T, [&] {
    return UMSNET_DISPATCH_WIDTH(p.channels, CPAD, [&] { return launch<T, CPAD>(p, path, stream); });
  });
}

const char* lsr_block_path(DType dtype, bool use_tensor_cores) {
  int cc = 0;
  if (current_compute_capability(&cc) != cudaSuccess) return "unknown (no CUDA device)";
  switch (choose_path(dtype, use_tensor_cores, cc)) {
    case Path::kMmaK16:
      return "mma.m16n8k16";
    case Path::kMmaK8:
      return "mma.m16n8k8";
    case Path::kSimt:
      return "simt-fp32";
  }
  return "unknown";
}

}  // namespace umsnet_fast
