"""A whole LSR module (stem, every LSR block, the folded downsamples, optionally the mean over length)
as ONE Triton kernel. Reference: umsnet_fast.ops.lsr_module_ref.

x: (batch, length, C_in); w: an LSRModuleWeights (or a PackedLSRModule from pack_lsr_module);
out: (batch, length', dims[-1]), or (batch, dims[-1]) with pool=True (the mean over length').

A program takes SEQ whole sequences (slices of a sensor module, or windows of the fusion module) and
keeps them on chip from the input rows to the output: rows are laid out as seq * LP + position, with
LP the power of 2 >= the stage's length, so every stage is a [SEQ * LP, C] register tile.
- the depthwise conv shifts rows with tl.gather (masked at each sequence's ends, so the padding rows
  and the neighbouring sequences never leak in);
- a stride-2 downsample pairs rows 2l and 2l + 1 with reshape + split (LP halves, SEQ stays), a
  stride-1 one is a plain GEMM;
- the residual stream stays in fp32 across the blocks (the per-block kernels round it to the compute
  dtype at every block: this is at least as accurate); GEMM operands are rounded to the weights' dtype.

Weights travel as one flat buffer in the compute dtype (pack_lsr_module: stem, then per stage the
downsample and the blocks, each tensor row-major), with the per-stage offsets and widths, depths,
hidden widths and lengths as constexprs: one compiled kernel per module configuration, no autotuning
(nothing to time inside a CUDA-graph capture). At most MAX_STAGES stages; stages whose tile
[SEQ * LP, C] exceeds MAX_TILE elements, downsample strides other than 1 and 2, or mixed strides,
kernel sizes, hidden widths or epsilons are refused by unsupported_reason (the triton backend then
runs the per-block kernels).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional  # custom_op schemas: spelled Optional[...] for every supported torch

import torch
import triton
import triton.language as tl

from umsnet_fast.ops import lsr_module_ref
from umsnet_fast.weights import LSRModuleWeights

from ._common import MIN_DOT, block_size, check_tensor, dot, dot_precision, layernorm_rows
from .mlp_residual import mlp_epilogue, mlp_tile

__all__ = ["lsr_module", "lsr_module_out_op", "lsr_module_ref", "pack_lsr_module", "unsupported_reason",
           "PackedLSRModule", "MAX_STAGES", "MAX_TILE"]

MAX_STAGES = 4      # stages the kernel's signature holds (UMSNet has 4)
MAX_TILE = 16384    # elements of one stage's [SEQ * LP, C] activation tile (64 KB in fp32)
MAX_C = 512         # widest stage (the MLP row tile, as kernels/mlp_residual.MAX_C)
BLOCK_H = 32        # hidden chunk of the streamed MLP
# Warps per program: 4 hold the 16-bit sensor module without spills (sm_90: 254 registers); fp32 spills
# ~470 bytes at 4 warps, ~220 at 8 (cuobjdump --dump-resource-usage of aot_check's cubins).
LAUNCH_WARPS = {torch.float32: 8, torch.float16: 4, torch.bfloat16: 4}
LAUNCH_STAGES = 1   # what aot_check compiles; no software pipelining of the (short) weight loops
_UNUSED = dict(C=16, BC=16, H=16, D=0, L=1, LP=1, OFF=0)  # a stage slot beyond NUM_STAGES


@triton.jit
def _rows(SEQ: tl.constexpr, LP: tl.constexpr, L: tl.constexpr, N):
    """Row r of a [SEQ * LP, C] tile: (sequence index, position, position < L and sequence < N)."""
    r = tl.arange(0, SEQ * LP)
    seq = tl.program_id(0) * SEQ + r // LP
    pos = r % LP
    return seq, pos, (pos < L) & (seq < N)


@triton.jit
def _shift_rows(x, D: tl.constexpr, pos, L: tl.constexpr, M: tl.constexpr):
    """Row r of the result is x[r + D] where position + D lies in [0, L) (same sequence), else 0."""
    src = tl.minimum(tl.maximum(tl.arange(0, M) + D, 0), M - 1)
    g = tl.gather(x, tl.broadcast_to(src[:, None], x.shape), 0)
    ok = (pos + D >= 0) & (pos + D < L)
    return tl.where(ok[:, None], g, 0.0)


@triton.jit
def _blocks(x, w_ptr, OFF: tl.constexpr, pos, eps, C: tl.constexpr, BC: tl.constexpr, H: tl.constexpr,
            DEPTH: tl.constexpr, L: tl.constexpr, M: tl.constexpr, KSIZE: tl.constexpr,
            BLOCK_H: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """DEPTH LSR blocks on the fp32 tile x [M, BC]; their weights start at w_ptr + OFF (see pack_lsr_module)."""
    cols = tl.arange(0, BC)
    col_mask = cols < C
    for b in tl.static_range(DEPTH):
        p = w_ptr + OFF + b * (C * KSIZE + 4 * C + 2 * H * C + H)
        acc = tl.zeros([M, BC], dtype=tl.float32)
        for j in tl.static_range(KSIZE):
            wv = tl.load(p + cols * KSIZE + j, mask=col_mask, other=0.0).to(tl.float32)
            if j == KSIZE // 2:
                acc += x * wv[None, :]
            else:
                acc += _shift_rows(x, j - KSIZE // 2, pos, L, M) * wv[None, :]
        p = p + C * KSIZE
        h = layernorm_rows(acc, col_mask, C, p, p + C, cols, eps)
        w1 = p + 2 * C
        b1 = w1 + H * C
        w2 = b1 + H
        b2 = w2 + C * H
        y = mlp_tile(h.to(w_ptr.dtype.element_ty), tl.zeros([M, BC], dtype=tl.float32), w1, b1, w2, cols, col_mask,
                     H, C, 1, H, 1, BLOCK_H, DOT_PRECISION)
        x = mlp_epilogue(y, b2, b2 + C, x, cols, col_mask, True)
    return x


@triton.jit
def _downsample(x, w_ptr, OFF: tl.constexpr, C_IN: tl.constexpr, BC_IN: tl.constexpr, C: tl.constexpr,
                BC: tl.constexpr, STRIDE: tl.constexpr, M_IN: tl.constexpr, DOT_PRECISION: tl.constexpr):
    """The folded downsample of the fp32 tile x [M_IN, BC_IN] -> fp32 [M_IN // STRIDE, BC]."""
    ci = tl.arange(0, BC_IN)
    co = tl.arange(0, BC)
    wmask = (ci < C_IN)[:, None] & (co < C)[None, :]
    wt = w_ptr + OFF + co[None, :] * (STRIDE * C_IN) + ci[:, None]  # weight (C, STRIDE * C_IN), transposed
    if STRIDE == 2:
        # rows 2l and 2l + 1 of each sequence are neighbours (LP is even): pair them up.
        even, odd = tl.split(tl.permute(tl.reshape(x, [M_IN // 2, 2, BC_IN]), (0, 2, 1)))
        y = dot(even.to(w_ptr.dtype.element_ty), tl.load(wt, mask=wmask, other=0.0), None, DOT_PRECISION)
        y = dot(odd.to(w_ptr.dtype.element_ty), tl.load(wt + C_IN, mask=wmask, other=0.0), y, DOT_PRECISION)
    else:
        y = dot(x.to(w_ptr.dtype.element_ty), tl.load(wt, mask=wmask, other=0.0), None, DOT_PRECISION)
    bias = tl.load(w_ptr + OFF + C * STRIDE * C_IN + co, mask=co < C, other=0.0).to(tl.float32)
    return y + bias[None, :]


@triton.jit
def _lsr_module_kernel(
    x_ptr,        # x (N1, N2, L0, C_IN), any strides: sequence n is (n // N2, n % N2)
    w_ptr,        # the packed weights (pack_lsr_module), contiguous, x's dtype
    out_ptr,      # out: (N, C_LAST) rows with POOL, else (N, L_LAST, C_LAST) rows; unit channel stride
    N, N2,        # sequences (N1 * N2), inner sequence count
    stride_x1, stride_x2, stride_xl, stride_xc,
    stride_on, stride_ol,  # out's sequence and position strides, in elements
    eps,          # every LayerNorm's epsilon
    C_IN: tl.constexpr, BK: tl.constexpr,  # input channels, their chunk (power of 2 >= 16)
    NUM_STAGES: tl.constexpr, KSIZE: tl.constexpr, STRIDE: tl.constexpr,
    SEQ: tl.constexpr,   # sequences per program
    POOL: tl.constexpr,  # write the mean over the last stage's positions
    BLOCK_H: tl.constexpr, DOT_PRECISION: tl.constexpr,
    # per stage: width, its power of 2 (>= 16), hidden width, depth, length, padded length, weight offset
    C0: tl.constexpr, BC0: tl.constexpr, H0: tl.constexpr, D0: tl.constexpr, L0: tl.constexpr,
    LP0: tl.constexpr, OFF0: tl.constexpr,
    C1: tl.constexpr, BC1: tl.constexpr, H1: tl.constexpr, D1: tl.constexpr, L1: tl.constexpr,
    LP1: tl.constexpr, OFF1: tl.constexpr,
    C2: tl.constexpr, BC2: tl.constexpr, H2: tl.constexpr, D2: tl.constexpr, L2: tl.constexpr,
    LP2: tl.constexpr, OFF2: tl.constexpr,
    C3: tl.constexpr, BC3: tl.constexpr, H3: tl.constexpr, D3: tl.constexpr, L3: tl.constexpr,
    LP3: tl.constexpr, OFF3: tl.constexpr,
    C_LAST: tl.constexpr, BC_LAST: tl.constexpr, L_LAST: tl.constexpr, LP_LAST: tl.constexpr,
):
    # Stem: Linear(C_IN -> C0) + LayerNorm, input rows gathered straight from x's layout.
    seq, pos, valid = _rows(SEQ, LP0, L0, N)
    cols = tl.arange(0, BC0)
    col_mask = cols < C0
    row_ptr = x_ptr + (seq // N2).to(tl.int64) * stride_x1 + (seq % N2).to(tl.int64) * stride_x2 + pos * stride_xl
    acc = tl.zeros([SEQ * LP0, BC0], dtype=tl.float32)
    for k0 in range(0, C_IN, BK):
        kk = k0 + tl.arange(0, BK)
        k_mask = kk < C_IN
        a = tl.load(row_ptr[:, None] + kk[None, :] * stride_xc, mask=valid[:, None] & k_mask[None, :], other=0.0)
        b = tl.load(w_ptr + cols[None, :] * C_IN + kk[:, None], mask=k_mask[:, None] & col_mask[None, :], other=0.0)
        acc = dot(a.to(w_ptr.dtype.element_ty), b, acc, DOT_PRECISION)
    acc += tl.load(w_ptr + C0 * C_IN + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    x = layernorm_rows(acc, col_mask, C0, w_ptr + C0 * C_IN + C0, w_ptr + C0 * C_IN + 2 * C0, cols, eps)
    x = _blocks(x, w_ptr, OFF0, pos, eps, C0, BC0, H0, D0, L0, SEQ * LP0, KSIZE, BLOCK_H, DOT_PRECISION)
    if NUM_STAGES > 1:
        x = _downsample(x, w_ptr, OFF1, C0, BC0, C1, BC1, STRIDE, SEQ * LP0, DOT_PRECISION)
        seq, pos, valid = _rows(SEQ, LP1, L1, N)
        x = _blocks(x, w_ptr, OFF1 + C1 * STRIDE * C0 + C1, pos, eps, C1, BC1, H1, D1, L1, SEQ * LP1, KSIZE,
                    BLOCK_H, DOT_PRECISION)
    if NUM_STAGES > 2:
        x = _downsample(x, w_ptr, OFF2, C1, BC1, C2, BC2, STRIDE, SEQ * LP1, DOT_PRECISION)
        seq, pos, valid = _rows(SEQ, LP2, L2, N)
        x = _blocks(x, w_ptr, OFF2 + C2 * STRIDE * C1 + C2, pos, eps, C2, BC2, H2, D2, L2, SEQ * LP2, KSIZE,
                    BLOCK_H, DOT_PRECISION)
    if NUM_STAGES > 3:
        x = _downsample(x, w_ptr, OFF3, C2, BC2, C3, BC3, STRIDE, SEQ * LP2, DOT_PRECISION)
        seq, pos, valid = _rows(SEQ, LP3, L3, N)
        x = _blocks(x, w_ptr, OFF3 + C3 * STRIDE * C2 + C3, pos, eps, C3, BC3, H3, D3, L3, SEQ * LP3, KSIZE,
                    BLOCK_H, DOT_PRECISION)
    cols = tl.arange(0, BC_LAST)
    col_mask = cols < C_LAST
    if POOL:
        x = tl.where(valid[:, None], x, 0.0)
        feat = tl.sum(tl.reshape(x, [SEQ, LP_LAST, BC_LAST]), axis=1) / L_LAST
        seqs = tl.program_id(0) * SEQ + tl.arange(0, SEQ)
        tl.store(out_ptr + seqs.to(tl.int64)[:, None] * stride_on + cols[None, :],
                 feat.to(out_ptr.dtype.element_ty), mask=(seqs < N)[:, None] & col_mask[None, :])
    else:
        tl.store(out_ptr + seq.to(tl.int64)[:, None] * stride_on + pos[:, None] * stride_ol + cols[None, :],
                 x.to(out_ptr.dtype.element_ty), mask=valid[:, None] & col_mask[None, :])


# -- host side ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModuleLayout:
    """What the kernel's constexprs say about one module: see pack_lsr_module."""
    c_in: int
    dims: tuple[int, ...]
    hidden: tuple[int, ...]   # w1 rows per stage (4 * dims in UMSNet); dims where a stage has no block
    depths: tuple[int, ...]
    ksize: int
    stride: int               # every downsample's (1 if there is none)
    offsets: tuple[int, ...]  # where each stage's weights start (stage 0: its first block)
    eps: float
    numel: int                # the packed buffer's length

    def as_list(self) -> list[int]:
        """The ints of the layout, for the custom op's schema (eps travels separately)."""
        s = len(self.dims)
        return [self.c_in, s, self.ksize, self.stride, self.numel, *self.dims, *self.hidden, *self.depths,
                *self.offsets]

    @classmethod
    def from_list(cls, v: list[int], eps: float) -> ModuleLayout:
        c_in, s, ksize, stride, numel = v[:5]
        rest = v[5:]
        return cls(c_in, tuple(rest[:s]), tuple(rest[s:2 * s]), tuple(rest[2 * s:3 * s]), ksize, stride,
                   tuple(rest[3 * s:4 * s]), eps, numel)

    def lengths(self, length: int) -> list[int]:
        """Each stage's sequence length."""
        out = [length]
        for _ in self.dims[1:]:
            out.append(out[-1] // self.stride)
        return out

    def padded(self, length: int) -> list[int]:
        """Each stage's rows per sequence in the kernel's tile (LP): a stride-2 downsample halves them."""
        return [max(block_size(length) // self.stride ** s, 1) for s in range(len(self.dims))]


@dataclass
class PackedLSRModule(LSRModuleWeights):
    """LSRModuleWeights plus their packed form for the module kernel (packed None: it cannot run them)."""
    packed: Optional[torch.Tensor] = None
    layout: Optional[ModuleLayout] = None
    reason: Optional[str] = None  # why packed is None


def _structure_reason(w: LSRModuleWeights) -> str | None:
    """Why the module kernel cannot hold this module at any length (None: it can)."""
    dims = [w.stem_weight.shape[0]] + [d.weight.shape[0] for d in w.downsamples]
    if len(w.stages) > MAX_STAGES:
        return f"{len(w.stages)} stages (the module kernel holds at most {MAX_STAGES})"
    if max(dims) > MAX_C:
        return f"a stage of width {max(dims)} (the module kernel's rows hold at most {MAX_C})"
    strides = {d.stride for d in w.downsamples}
    if len(strides) > 1 or not strides <= {1, 2}:
        return f"downsample strides {sorted(strides)} (the module kernel needs one stride, 1 or 2)"
    blocks = [b for stage in w.stages for b in stage]
    if len({b.dw_weight.shape[1] for b in blocks}) > 1:
        return "blocks with different kernel sizes"
    for s, stage in enumerate(w.stages):
        if len({b.w1.shape[0] for b in stage}) > 1:
            return f"stage {s} mixes hidden widths"
    if len({w.stem_eps, *(b.eps for b in blocks)}) > 1:
        return "LayerNorms with different epsilons"
    return None


def pack_lsr_module(w: LSRModuleWeights) -> PackedLSRModule:
    """w with its packed buffer: stem (weight (C0, C_in), bias, ln weight, ln bias), then per stage s:
    for s > 0 the downsample (weight (C_s, stride * C_{s-1}), bias), then each block (dw (C, k), ln
    weight, ln bias, w1 (H, C), b1, w2 (C, H), b2, gamma), every tensor row-major. When the kernel
    cannot hold the module, packed is None and reason says why."""
    fields = {f.name: getattr(w, f.name) for f in dataclasses.fields(LSRModuleWeights)}
    reason = _structure_reason(w)
    if reason is not None:
        return PackedLSRModule(**fields, reason=reason)
    parts = [w.stem_weight, w.stem_bias, w.stem_ln_weight, w.stem_ln_bias]
    offsets, hidden = [], []
    numel = sum(t.numel() for t in parts)
    for s, stage in enumerate(w.stages):
        offsets.append(numel)
        dim = w.stem_weight.shape[0] if s == 0 else w.downsamples[s - 1].weight.shape[0]
        hidden.append(stage[0].w1.shape[0] if stage else dim)
        if s > 0:
            parts += [w.downsamples[s - 1].weight, w.downsamples[s - 1].bias]
        for b in stage:
            parts += [b.dw_weight, b.ln_weight, b.ln_bias, b.w1, b.b1, b.w2, b.b2, b.gamma]
        numel = sum(t.numel() for t in parts)
    packed = torch.cat([t.reshape(-1) for t in parts])
    blocks = [b for stage in w.stages for b in stage]
    layout = ModuleLayout(
        c_in=w.stem_weight.shape[1], dims=(w.stem_weight.shape[0], *(d.weight.shape[0] for d in w.downsamples)),
        hidden=tuple(hidden), depths=tuple(len(stage) for stage in w.stages),
        ksize=blocks[0].dw_weight.shape[1] if blocks else 1,
        stride=w.downsamples[0].stride if w.downsamples else 1, offsets=tuple(offsets), eps=float(w.stem_eps),
        numel=packed.numel())
    return PackedLSRModule(**fields, packed=packed, layout=layout)


def umsnet_layout(c_in: int, dims: tuple[int, ...], stride: int, depth: int = 2, ksize: int = 3) -> ModuleLayout:
    """The layout pack_lsr_module gives an UMSNet module (hidden 4C, `depth` blocks per stage), without
    weights: for aot_check and the benchmarks."""
    offsets, numel = [], dims[0] * (c_in + 3)
    for s, c in enumerate(dims):
        offsets.append(numel)
        numel += (c * (stride * dims[s - 1] + 1) if s else 0) + depth * (c * ksize + 4 * c + 8 * c * c + 4 * c)
    return ModuleLayout(c_in, tuple(dims), tuple(4 * c for c in dims), (depth,) * len(dims), ksize, stride,
                        tuple(offsets), 1e-6, numel)


def _seq_per_program(layout: ModuleLayout, length: int) -> int:
    """Sequences per program: the fewest that give every stage's tile >= 16 rows (tl.dot's minimum)."""
    lp_last = layout.padded(length)[-1]
    return block_size(max(1, MIN_DOT // lp_last))


def unsupported_reason(w: LSRModuleWeights, length: int) -> str | None:
    """Why the module kernel cannot run w on sequences of `length` (None: it can)."""
    reason = w.reason if isinstance(w, PackedLSRModule) and w.packed is None else _structure_reason(w)
    if reason is not None:
        return reason
    layout = w.layout if isinstance(w, PackedLSRModule) else pack_lsr_module(w).layout
    lengths = layout.lengths(length)
    if lengths[-1] < 1:
        return f"length {length} leaves no position after the downsamples"
    seq = _seq_per_program(layout, length)
    for c, lp in zip(layout.dims, layout.padded(length)):
        tile = seq * lp * block_size(c, MIN_DOT)
        if tile > MAX_TILE:
            return (f"a stage tile of {seq} x {lp} positions x {block_size(c, MIN_DOT)} channels "
                    f"(the module kernel holds at most {MAX_TILE} elements)")
    return None


def kernel_constexprs(layout: ModuleLayout, length: int, pool: bool, precision: str) -> dict:
    """The kernel's constexprs for sequences of `length` (also used by aot_check)."""
    lengths, padded = layout.lengths(length), layout.padded(length)
    consts = dict(C_IN=layout.c_in, BK=min(block_size(layout.c_in, MIN_DOT), 64), NUM_STAGES=len(layout.dims),
                  KSIZE=layout.ksize, STRIDE=layout.stride, SEQ=_seq_per_program(layout, length), POOL=pool,
                  BLOCK_H=BLOCK_H, DOT_PRECISION=precision)
    for s in range(MAX_STAGES):
        if s < len(layout.dims):
            c = layout.dims[s]
            v = dict(C=c, BC=block_size(c, MIN_DOT), H=layout.hidden[s], D=layout.depths[s], L=lengths[s],
                     LP=padded[s], OFF=layout.offsets[s])
        else:
            v = _UNUSED
        consts.update({f"{k}{s}": val for k, val in v.items()})
    consts.update(C_LAST=layout.dims[-1], BC_LAST=block_size(layout.dims[-1], MIN_DOT), L_LAST=lengths[-1],
                  LP_LAST=padded[-1])
    return consts


def launch_lsr_module(x4: torch.Tensor, packed: torch.Tensor, layout: ModuleLayout, out: torch.Tensor, pool: bool,
                      allow_tf32: bool | None = None) -> None:
    """Run the kernel. x4: (N1, N2, L, C_in) any strides, sequence n = (n // N2, n % N2); out: a view
    (N1 * N2, C_LAST) with pool, else (N1 * N2, L_LAST, C_LAST), unit channel stride (a column slice
    of a wider buffer is fine)."""
    n1, n2, length, _ = x4.shape
    n = n1 * n2
    if n == 0:
        return
    consts = kernel_constexprs(layout, length, pool, dot_precision(x4.dtype, allow_tf32))
    _lsr_module_kernel[(triton.cdiv(n, consts["SEQ"]),)](
        x4, packed, out, n, n2, *x4.stride(), out.stride(0), out.stride(1) if not pool else 0, layout.eps,
        **consts, num_warps=LAUNCH_WARPS[x4.dtype], num_stages=LAUNCH_STAGES)


@torch.library.custom_op("umsnet_fast::triton_lsr_module_out", mutates_args=("out",))
def lsr_module_out_op(x4: torch.Tensor, packed: torch.Tensor, layout: list[int], eps: float, pool: bool,
                      out: torch.Tensor, allow_tf32: Optional[bool] = None) -> None:
    """launch_lsr_module as an op (visible to torch.compile / CUDA graphs); layout: ModuleLayout.as_list()."""
    launch_lsr_module(x4, packed, ModuleLayout.from_list(layout, eps), out, pool, allow_tf32)


@lsr_module_out_op.register_fake
def _(x4, packed, layout, eps, pool, out, allow_tf32=None):
    return None


def check_module_input(x: torch.Tensor, w: LSRModuleWeights) -> None:
    check_tensor("x", x, 3)
    check_tensor("stem_weight", w.stem_weight, shape=(None, x.shape[2]), like=x)


def lsr_module(x: torch.Tensor, w: LSRModuleWeights, pool: bool = False, *,
               allow_tf32: bool | None = None) -> torch.Tensor:
    """Host launcher; same signature as lsr_module_ref. x: (batch, length, C_in) any strides; w packed
    or not (unpacked weights are packed on each call: pack once with pack_lsr_module for speed).
    Raises ValueError naming the limit when the kernel cannot hold the module (unsupported_reason)."""
    check_module_input(x, w)
    if not isinstance(w, PackedLSRModule):
        w = pack_lsr_module(w)
    reason = unsupported_reason(w, x.shape[1])
    if reason is not None:
        raise ValueError(f"the LSR module kernel cannot run this module: {reason}")
    if w.packed.dtype != x.dtype or w.packed.device != x.device:
        raise TypeError(f"weights: {w.packed.dtype} on {w.packed.device}, expected {x.dtype} on {x.device} "
                        "(the input's)")
    layout = w.layout
    length = layout.lengths(x.shape[1])[-1]
    shape = (x.shape[0], layout.dims[-1]) if pool else (x.shape[0], length, layout.dims[-1])
    out = torch.empty(shape, device=x.device, dtype=x.dtype)
    lsr_module_out_op(x.unsqueeze(1), w.packed, layout.as_list(), layout.eps, pool, out, allow_tf32)
    return out
