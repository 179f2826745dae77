"""The whole LSR block, x + gamma * MLP(LayerNorm(dwconv(x))), as one Triton kernel, and the launcher
that picks per shape between it and the two-kernel form (dwconv_layernorm, then mlp_residual).
Reference: umsnet_fast.ops.lsr_block_ref.

x: (batch, length, C); dw_weight: (C, k), k odd; ln_weight, ln_bias, b2, gamma: (C,); w1: (H, C);
b1: (H,); w2: (C, H). out: (batch, length, C).

The fused kernel computes a tile's normalised rows in registers (dwconv_ln_tile) and feeds them to
the streamed MLP (mlp_tile): neither the (.., C) LayerNorm output nor the (.., H) hidden activation
touches global memory. The two-kernel form writes the LayerNorm output once but runs each half with
its own tile shape; which is faster depends on the shape, so on CUDA the launcher times both once per
shape (after each kernel's own autotuning) and remembers the winner.
"""
from __future__ import annotations

from typing import Optional  # custom_op schemas: spelled Optional[...] for every supported torch

import torch
import triton
import triton.language as tl
import triton.testing  # do_bench, for the fused/split choice

from umsnet_fast.ops import lsr_block_ref

from ._common import (
    INTERPRET,
    MIN_DOT,
    autotune,
    autotune_configs,
    block_size,
    capturing,
    dot_precision,
    prune_by_footprint,
    row_bucket,
    row_tile,
)
from .dwconv_layernorm import check_dwconv_args, dwconv_layernorm, dwconv_ln_tile
from .mlp_residual import check_mlp_weights, mlp_epilogue, mlp_residual, mlp_tile

__all__ = ["lsr_block", "lsr_block_op", "lsr_block_ref", "MODES"]

MODES = ("auto", "fused", "split")

LSR_CONFIGS = autotune_configs(
    [dict(BLOCK_M=16, BLOCK_H=32), dict(BLOCK_M=32, BLOCK_H=32), dict(BLOCK_M=64, BLOCK_H=32, num_warps=8),
     dict(BLOCK_M=32, BLOCK_H=64), dict(BLOCK_M=64, BLOCK_H=64, num_warps=8)],
    interpret=dict(BLOCK_M=64, BLOCK_H=64))


@autotune(configs=LSR_CONFIGS, key=["M", "L", "C", "H"], prune_configs_by=prune_by_footprint())
@triton.jit
def _lsr_block_kernel(
    x_ptr,        # x (batch, length, C), any strides; also the residual
    dw_ptr,       # depthwise taps (C, k), any strides
    lnw_ptr,      # LayerNorm weight (C,), contiguous
    lnb_ptr,      # LayerNorm bias (C,), contiguous
    w1_ptr,       # w1 (H, C), any strides
    b1_ptr,       # b1 (H,), contiguous
    w2_ptr,       # w2 (C, H), any strides
    b2_ptr,       # b2 (C,), contiguous
    gamma_ptr,    # LayerScale gamma (C,), contiguous
    out_ptr,      # out (batch, length, C), contiguous
    M, L, C, H,   # batch * length, length, channels, hidden width
    stride_xn, stride_xl, stride_xc,
    stride_dwc, stride_dwk,
    stride_w1h, stride_w1c,
    stride_w2c, stride_w2h,
    eps,          # LayerNorm epsilon
    KSIZE: tl.constexpr,          # taps k (odd)
    DOT_PRECISION: tl.constexpr,  # "ieee" (true fp32) or "tf32"
    BLOCK_C: tl.constexpr,        # power of 2 >= max(C, 16)
    BLOCK_M: tl.constexpr,        # rows per program (autotuned, >= 16)
    BLOCK_H: tl.constexpr,        # hidden chunk (autotuned, >= 16)
):
    rows, row_mask, cols, col_mask = row_tile(M, C, BLOCK_M, BLOCK_C)
    h = dwconv_ln_tile(x_ptr, dw_ptr, lnw_ptr, lnb_ptr, rows, row_mask, cols, col_mask, L, C,
                       stride_xn, stride_xl, stride_xc, stride_dwc, stride_dwk, eps, KSIZE, BLOCK_M, BLOCK_C)
    # Round the normalised rows to the weights' dtype, as the two-kernel form does when it stores them.
    acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    acc = mlp_tile(h.to(w1_ptr.dtype.element_ty), acc, w1_ptr, b1_ptr, w2_ptr, cols, col_mask, H,
                   stride_w1h, stride_w1c, stride_w2c, stride_w2h, BLOCK_H, DOT_PRECISION)
    mask = row_mask[:, None] & col_mask[None, :]
    n = (rows // L).to(tl.int64)
    l = rows % L
    res = tl.load(x_ptr + n[:, None] * stride_xn + l[:, None] * stride_xl + cols[None, :] * stride_xc,
                  mask=mask, other=0.0)
    y = mlp_epilogue(acc, b2_ptr, gamma_ptr, res, cols, col_mask, True)
    tl.store(out_ptr + rows.to(tl.int64)[:, None] * C + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


def _fused(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps, allow_tf32):
    n, length, c = x.shape
    out = torch.empty((n, length, c), device=x.device, dtype=x.dtype)
    m = n * length
    if m == 0:
        return out
    grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]),)  # noqa: E731
    _lsr_block_kernel[grid](
        x, dw_weight, ln_weight.contiguous(), ln_bias.contiguous(), w1, b1.contiguous(), w2, b2.contiguous(),
        gamma.contiguous(), out, m, length, c, w1.shape[0],
        x.stride(0), x.stride(1), x.stride(2), dw_weight.stride(0), dw_weight.stride(1),
        w1.stride(0), w1.stride(1), w2.stride(0), w2.stride(1), eps,
        KSIZE=dw_weight.shape[1], DOT_PRECISION=dot_precision(x.dtype, allow_tf32),
        BLOCK_C=block_size(c, MIN_DOT))
    return out


def _split(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps, allow_tf32):
    h = dwconv_layernorm(x, dw_weight, ln_weight, ln_bias, eps)
    return mlp_residual(h, w1, b1, w2, b2, gamma, x, allow_tf32=allow_tf32)


_IMPLS = {"fused": _fused, "split": _split}
# (row bucket, length, C, H, k, dtype, device, dot precision) -> "fused" | "split", filled on CUDA by timing.
_choice: dict[tuple, str] = {}


def chosen_mode(x: torch.Tensor, args: tuple, allow_tf32: bool | None) -> str:
    """The faster form for x's shape: timed once per shape on CUDA (triton.testing.do_bench, each
    kernel autotuned first), the row count bucketed as for the kernels' autotuning (row_bucket);
    "fused" under the interpreter or while a CUDA graph is being captured (timing is impossible there;
    nothing is remembered, so the first call outside a capture times both)."""
    if x.device.type != "cuda" or INTERPRET:
        return "fused"
    w1, dw_weight = args[3], args[0]
    n, length, c = x.shape
    key = (row_bucket(n * length), length, c, w1.shape[0], dw_weight.shape[1], x.dtype, x.device,
           dot_precision(x.dtype, allow_tf32))
    if key not in _choice:
        if capturing():
            return "fused"
        times = {mode: triton.testing.do_bench(lambda f=f: f(x, *args, allow_tf32), warmup=5, rep=20)
                 for mode, f in _IMPLS.items()}
        _choice[key] = min(times, key=times.get)
    return _choice[key]


def lsr_block(x: torch.Tensor, dw_weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor,
              w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, gamma: torch.Tensor,
              eps: float = 1e-6, *, mode: str = "auto", allow_tf32: bool | None = None) -> torch.Tensor:
    """Host launcher. Shapes in the module docstring; x may have any strides.

    mode: "fused" (one kernel), "split" (dwconv_layernorm + mlp_residual) or "auto" (the faster per
    shape, see chosen_mode). allow_tf32: see umsnet_fast.kernels._common.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    _, _, c, _ = check_dwconv_args(x, dw_weight, ln_weight, ln_bias)
    check_mlp_weights(c, x, w1, b1, w2, b2, gamma)
    if gamma is None:
        raise ValueError("gamma: the LSR block needs its LayerScale gamma (C,), got None")
    args = (dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps)
    if mode == "auto":
        mode = chosen_mode(x, args, allow_tf32)
    return _IMPLS[mode](x, *args, allow_tf32)


@torch.library.custom_op("umsnet_fast::triton_lsr_block", mutates_args=())
def lsr_block_op(x: torch.Tensor, dw_weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor,
                 w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, gamma: torch.Tensor,
                 eps: float = 1e-6, mode: str = "auto", allow_tf32: Optional[bool] = None) -> torch.Tensor:
    """The op (visible to torch.compile / CUDA graphs); same leading signature as lsr_block_ref."""
    return lsr_block(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps, mode=mode,
                     allow_tf32=allow_tf32)


@lsr_block_op.register_fake
def _(x, dw_weight, ln_weight, ln_bias, w1, b1, w2, b2, gamma, eps=1e-6, mode="auto", allow_tf32=None):
    return x.new_empty(x.shape)
