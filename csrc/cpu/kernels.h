// Fused CPU kernels of umsnet_fast: plain-data views of the packed weights and the kernel table.
//
// Nothing here sees torch: the bindings (csrc/cpu_bindings.cpp) fill these structs with pointers
// into packed tensors they keep alive. All activations are fp32, channels-last, row-major.
//
// Packed Linear layout (packed once by make_linear in csrc/cpu_bindings.cpp, the layout's only
// producer; Python reads kPanel and the epilogue codes from the extension). An (n, k) weight becomes
// ceil(n / 32) panels of 32 output columns, zero-padded past n; the bias, fp32 in both layouts, is
// zero-padded to a multiple of 32.
//   fp32: each panel (k, 32) row-major. The microkernel streams one panel row (2 x 16 floats) per step
//         of k and broadcasts one input element per row of the register tile.
//   bf16: each panel (kp / 2, 32, 2), kp = k rounded up to kKAlign with zero rows: the pairs of
//         consecutive k of one column side by side ("VNNI" pairs), the operand layout of AVX512-BF16
//         vdpbf16ps (one 32-bit lane = one column's pair) and of an AMX B tile (a tile row = 16 columns'
//         pairs, 64 bytes, at a stride of 128 bytes). kp is a multiple of an AMX tile's 32 bf16 of k so
//         that tiles need no tail; the other kernels stop at ceil(k / 2) pairs.
#pragma once
#include <cstdint>

namespace umsnet_fast::cpu {

constexpr int kPanel = 32;   // output columns per packed panel
constexpr int kKAlign = 32;  // bf16 layout: k padded to a multiple of this
constexpr int kMaxStages = 8;

struct LinearParams {
  const float* w = nullptr;      // fp32 weights: (ceil(n/32), k, 32), or nullptr when wb is set
  const uint16_t* wb = nullptr;  // bf16 weights: (ceil(n/32), kp/2, 32, 2), or nullptr when w is set
  const float* b = nullptr;      // (ceil(n/32) * 32,)
  int n = 0, k = 0, kp = 0;      // kp: k padded to kKAlign (bf16 layout only)
};

// Epilogues of the fused GEMM: y = x W^T + b, then GELU, or + residual.
enum Epilogue { kBias = 0, kBiasGelu = 1, kBiasResidual = 2 };

struct BlockParams {            // one LSR block, LayerScale gamma folded into fc2
  const float* dw = nullptr;    // (ksize, C): depthwise taps, channels contiguous
  const float* ln_w = nullptr;  // (C,)
  const float* ln_b = nullptr;
  float eps = 1e-6f;
  int c = 0, ksize = 3;
  LinearParams fc1;  // (4C, C), GELU
  LinearParams fc2;  // (C, 4C), scaled by gamma
};

struct ModuleParams {  // stem + stages of blocks + downsamples (BatchNorm folded)
  int c_in = 0, nstages = 0;
  LinearParams stem;  // (dims[0], c_in)
  const float* stem_ln_w = nullptr;
  const float* stem_ln_b = nullptr;
  float stem_eps = 1e-6f;
  int dims[kMaxStages] = {};
  int nblocks[kMaxStages] = {};
  const BlockParams* blocks[kMaxStages] = {};  // nblocks[s] blocks of stage s
  LinearParams down[kMaxStages];               // down[s] goes from stage s to s+1: (dims[s+1], stride * dims[s])
  int down_stride[kMaxStages] = {};
};

struct LayerParams {  // pre-norm Transformer encoder layer
  const float* ln1_w = nullptr;
  const float* ln1_b = nullptr;
  const float* ln2_w = nullptr;
  const float* ln2_b = nullptr;
  float eps = 1e-6f;
  int heads = 1;
  float q_scale = 1.f;              // applied to q in attention (1 when folded into qkv at packing)
  LinearParams qkv, out, fc1, fc2;  // (3d, d), (d, d), (mlp, d), (d, mlp)
};

struct ModelParams {
  int nsensors = 0, num_slices = 0, d = 0, num_classes = 0, nlayers = 0;
  const ModuleParams* sensors = nullptr;  // nsensors modules
  ModuleParams fusion;
  LinearParams token;          // (d, fusion_dims[-1])
  const float* cls = nullptr;  // (d,)  class token, position 0 of pos_embed added
  const float* pos = nullptr;  // (K + 1, d)
  const LayerParams* layers = nullptr;
  const float* norm_w = nullptr;
  const float* norm_b = nullptr;
  float norm_eps = 1e-6f;
  LinearParams head;  // (num_classes, d)
};

// One sensor's window: element (b, c, t) at x[b*sb + c*sc + t*st] (strides in elements).
struct InputParams {
  const void* x = nullptr;  // float, or bf16 (uint16_t bits) when bf16 is set
  bool bf16 = false;
  int64_t sb = 0, sc = 0, st = 0;
  int length = 0;  // T = K * L
};

// The entry points of one instruction-set build (generic, avx2, avx512, avx512bf16, amx): same code,
// other target. The builds differ in the GEMM's inner kernel for bf16 weights (bf16_path).
struct KernelTable {
  const char* name;
  const char* bf16_path;  // how this build multiplies bf16 weights
  // logits (batch, num_classes) of the whole model; inputs: nsensors views; scratch for the features.
  void (*forward)(const ModelParams& m, const InputParams* xs, int batch, float* logits, int threads);
  // The forward's two steps (streaming): stage 1, F (batch * K, feature width) of K slices per input row;
  // then stages 2 and 3, F of whole windows (batch * num_slices rows) -> logits (batch, num_classes).
  void (*features)(const ModelParams& m, const InputParams* xs, int batch, int K, float* F, int threads);
  void (*head)(const ModelParams& m, const float* F, int batch, float* logits, int threads);
  // y (M, n) = epilogue(x (M, k) W^T + b); residual (M, n) for kBiasResidual (may alias y).
  void (*linear)(const float* x, int64_t M, const LinearParams& W, int epilogue, const float* residual, float* y,
                 int threads);
  // y (M, C) = LayerNorm(x (M, C)) over C.
  void (*layer_norm)(const float* x, int64_t M, int C, const float* w, const float* b, float eps, float* y,
                     int threads);
  // x (B, L, C) updated in place by one LSR block.
  void (*lsr_block)(float* x, int B, int L, const BlockParams& p, int threads);
  // x (B, L, c_in) -> y (B, L', dims[-1]); L' from the downsample strides.
  void (*lsr_module)(const float* x, int B, int L, const ModuleParams& m, float* y, int threads);
  // qkv (B, T, 3d) -> out (B, T, d): softmax(q k^T * scale) v per head.
  void (*attention)(const float* qkv, int B, int T, int d, int heads, float scale, float* out, int threads);
  // x (B, T, d) updated in place by one encoder layer.
  void (*encoder_layer)(float* x, int B, int T, int d, const LayerParams& p, int threads);
};

namespace generic {
extern const KernelTable kTable;
}
namespace avx2 {
extern const KernelTable kTable;
}
namespace avx512 {
extern const KernelTable kTable;
}
namespace avx512bf16 {
extern const KernelTable kTable;
}
namespace amx {
extern const KernelTable kTable;
}

// The builds, best first: what `auto` picks is the first this CPU runs.
constexpr const char* kIsaNames[] = {"amx", "avx512bf16", "avx512", "avx2", "generic"};

// The table for `name` ("auto" or one of kIsaNames); nullptr when this CPU cannot run it.
const KernelTable* select_kernels(const char* name);
// Whether this CPU can run the named build ("amx" also asks Linux for the AMX tile state first).
bool isa_supported(const char* name);

}  // namespace umsnet_fast::cpu
