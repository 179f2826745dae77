// The fused CPU engine, written once and compiled once per instruction set.
//
// isa_<name>.cpp includes this file inside namespace umsnet_fast::cpu::<name>, after
// `#pragma GCC target(...)` and with UMSNET_MR (rows of the GEMM register tile) defined. The vector
// type is GCC's generic 16-float vector: one zmm register under AVX-512, two ymm under AVX2, four
// xmm on the portable path. To keep the instruction-set builds apart, nothing here instantiates a
// C++ library template or inline library function (the linker could otherwise pick an AVX-512 copy
// for the portable build): only builtins, C functions and code in this anonymous namespace.
//
// Tiling. An LSR module runs on a tile of G segments (slices of one sensor, or samples for the
// fusion module) with all their rows, (G * L, C) channels-last, in per-thread scratch that stays in
// L2; a block is dwconv+LayerNorm -> GEMM(+bias, GELU) into the tile's 4C hidden -> GEMM(+bias,
// +residual) written over its input, LayerScale folded into the second GEMM's weights. The
// Transformer runs on tiles of S samples the same way. With fewer samples than threads, the threads
// share one tile (`Par`: each GEMM splits its panels, each row-wise op its rows, with a barrier after).

//
// The engine by role, in dependency order: vec.h (vector type, math, thread teams), gemm.h (packed
// GEMM), rowwise.h (LayerNorm, dwconv), lsr.h (LSR block and module), transformer.h (attention,
// encoder layers), forward.h (the forward stages), ops.h (single ops for tests).

namespace {

#include "vec.h"
#include "gemm.h"
#include "rowwise.h"
#include "lsr.h"
#include "transformer.h"
#include "forward.h"
#include "ops.h"

}  // namespace

extern const KernelTable kTable = {UMSNET_ISA_NAME, UMSNET_BF16_PATH, forward_impl,    features_impl,
                                   head_impl,       linear_op,        layer_norm_op,   lsr_block_op,
                                   lsr_module_op,   attention_op,     encoder_layer_op};
