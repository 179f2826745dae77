"""The fused MLP: residual + gamma * (GELU(h @ w1.T + b1) @ w2.T + b2) as one Triton kernel.
Reference: umsnet_fast.ops.mlp_residual_ref.

h, residual: (..., C); w1: (H, C); b1: (H,); w2: (C, H); b2: (C,); gamma: (C,) or None; out: (..., C).

A program holds BLOCK_M rows of h and an fp32 accumulator [BLOCK_M, BLOCK_C] and streams the hidden
dimension in BLOCK_H chunks: GELU(h @ w1[chunk].T + b1[chunk]) lives only in registers and goes
straight into the second tl.dot, so the (..., H) activation never reaches global memory.
"""
from __future__ import annotations

from typing import Optional  # custom_op schemas: spelled Optional[...] for every supported torch

import torch
import triton
import triton.language as tl

from umsnet_fast.ops import mlp_residual_ref

from ._common import (
    MIN_DOT,
    autotune,
    autotune_configs,
    block_size,
    check_tensor,
    dot,
    dot_precision,
    gelu,
    prune_by_footprint,
    row_tile,
)

__all__ = ["mlp_residual", "mlp_residual_op", "mlp_residual_ref", "MAX_C"]

# The row tile keeps all C channels in registers; wider rows would spill (the backend then uses
# the reference op).
MAX_C = 512

MLP_CONFIGS = autotune_configs(
    [dict(BLOCK_M=16, BLOCK_H=32), dict(BLOCK_M=32, BLOCK_H=32), dict(BLOCK_M=64, BLOCK_H=32, num_warps=8),
     dict(BLOCK_M=32, BLOCK_H=64), dict(BLOCK_M=64, BLOCK_H=64, num_warps=8),
     dict(BLOCK_M=128, BLOCK_H=32, num_warps=8)],
    interpret=dict(BLOCK_M=64, BLOCK_H=64))


@triton.jit
def mlp_tile(
    h,            # [BLOCK_M, BLOCK_C] rows in the weights' dtype, 0 in lanes beyond C
    acc,          # [BLOCK_M, BLOCK_C] fp32 accumulator
    w1_ptr,       # w1 (H, C), any strides
    b1_ptr,       # b1 (H,), contiguous
    w2_ptr,       # w2 (C, H), any strides
    cols,         # [BLOCK_C] channel indices
    col_mask,     # [BLOCK_C] cols < C
    H,            # hidden width
    stride_w1h, stride_w1c,  # w1's strides, in elements
    stride_w2c, stride_w2h,  # w2's strides, in elements
    BLOCK_H: tl.constexpr,        # hidden chunk (>= 16 for tl.dot)
    DOT_PRECISION: tl.constexpr,  # "ieee" (true fp32) or "tf32"
):
    """acc + GELU(h @ w1.T + b1) @ w2.T, streamed over H in BLOCK_H chunks; returns the fp32 acc."""
    for h0 in range(0, H, BLOCK_H):
        hid = h0 + tl.arange(0, BLOCK_H)
        hid_mask = hid < H
        w1t = tl.load(w1_ptr + hid[None, :] * stride_w1h + cols[:, None] * stride_w1c,
                      mask=col_mask[:, None] & hid_mask[None, :], other=0.0)         # [BLOCK_C, BLOCK_H]
        a = dot(h, w1t, None, DOT_PRECISION)                              # fp32 [BLOCK_M, BLOCK_H]
        a = gelu(a + tl.load(b1_ptr + hid, mask=hid_mask, other=0.0).to(tl.float32)[None, :])
        w2t = tl.load(w2_ptr + cols[None, :] * stride_w2c + hid[:, None] * stride_w2h,
                      mask=hid_mask[:, None] & col_mask[None, :], other=0.0)         # [BLOCK_H, BLOCK_C]
        acc = dot(a.to(w2t.dtype), w2t, acc, DOT_PRECISION)
    return acc


@triton.jit
def mlp_epilogue(acc, b2_ptr, gamma_ptr, res, cols, col_mask, HAS_GAMMA: tl.constexpr):
    """res + gamma * (acc + b2) in fp32. acc, res: [BLOCK_M, BLOCK_C]; b2, gamma: (C,) contiguous."""
    y = acc + tl.load(b2_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    if HAS_GAMMA:
        y = y * tl.load(gamma_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    return res.to(tl.float32) + y


@autotune(configs=MLP_CONFIGS, key=["M", "C", "H"], prune_configs_by=prune_by_footprint())
@triton.jit
def _mlp_residual_kernel(
    h_ptr,        # h (M, C), any strides
    w1_ptr,       # w1 (H, C)
    b1_ptr,       # b1 (H,)
    w2_ptr,       # w2 (C, H)
    b2_ptr,       # b2 (C,)
    gamma_ptr,    # gamma (C,); unused without HAS_GAMMA
    res_ptr,      # residual (M, C), any strides
    out_ptr,      # out (M, C), contiguous
    M, C, H,      # rows, channels, hidden width
    stride_hm, stride_hc,
    stride_rm, stride_rc,
    stride_w1h, stride_w1c,
    stride_w2c, stride_w2h,
    HAS_GAMMA: tl.constexpr,      # multiply by the LayerScale gamma
    DOT_PRECISION: tl.constexpr,  # "ieee" (true fp32) or "tf32"
    BLOCK_C: tl.constexpr,        # power of 2 >= max(C, 16)
    BLOCK_M: tl.constexpr,        # rows per program (autotuned, >= 16)
    BLOCK_H: tl.constexpr,        # hidden chunk (autotuned, >= 16)
):
    rows, row_mask, cols, col_mask = row_tile(M, C, BLOCK_M, BLOCK_C)
    mask = row_mask[:, None] & col_mask[None, :]
    rows64 = rows.to(tl.int64)
    h = tl.load(h_ptr + rows64[:, None] * stride_hm + cols[None, :] * stride_hc, mask=mask, other=0.0)
    acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    acc = mlp_tile(h.to(w1_ptr.dtype.element_ty), acc, w1_ptr, b1_ptr, w2_ptr, cols, col_mask, H,
                   stride_w1h, stride_w1c, stride_w2c, stride_w2h, BLOCK_H, DOT_PRECISION)
    res = tl.load(res_ptr + rows64[:, None] * stride_rm + cols[None, :] * stride_rc, mask=mask, other=0.0)
    y = mlp_epilogue(acc, b2_ptr, gamma_ptr, res, cols, col_mask, HAS_GAMMA)
    tl.store(out_ptr + rows64[:, None] * C + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


def check_mlp_weights(c: int, like: torch.Tensor, w1, b1, w2, b2, gamma) -> int:
    """Shape/dtype/device checks shared with the LSR block; returns the hidden width H."""
    check_tensor("w1", w1, 2, like=like)
    hidden = w1.shape[0]
    check_tensor("w1", w1, shape=(hidden, c), like=like)
    check_tensor("b1", b1, shape=(hidden,), like=like)
    check_tensor("w2", w2, shape=(c, hidden), like=like)
    check_tensor("b2", b2, shape=(c,), like=like)
    if gamma is not None:
        check_tensor("gamma", gamma, shape=(c,), like=like)
    if c > MAX_C:
        raise ValueError(f"the fused MLP kernel holds a whole row in registers: C <= {MAX_C}, got C = {c}")
    return hidden


def mlp_residual(h: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                 gamma: torch.Tensor | None, residual: torch.Tensor, *,
                 allow_tf32: bool | None = None) -> torch.Tensor:
    """Host launcher. h, residual: (..., C) any strides (leading axes are flattened with reshape,
    which copies only if they cannot be viewed as one); w1: (H, C); w2: (C, H); b1: (H,);
    b2, gamma: (C,). out: (..., C) contiguous. allow_tf32: see umsnet_fast.kernels._common."""
    check_tensor("h", h)
    if h.dim() < 1:
        raise ValueError("h: expected shape (..., C), got a scalar")
    c = h.shape[-1]
    check_tensor("residual", residual, shape=tuple(h.shape), like=h)
    hidden = check_mlp_weights(c, h, w1, b1, w2, b2, gamma)
    out = torch.empty(h.shape, device=h.device, dtype=h.dtype)
    h2, r2 = h.reshape(-1, c), residual.reshape(-1, c)
    m = h2.shape[0]
    if m == 0:
        return out
    grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]),)  # noqa: E731
    _mlp_residual_kernel[grid](
        h2, w1, b1.contiguous(), w2, b2.contiguous(), gamma.contiguous() if gamma is not None else b2, r2, out,
        m, c, hidden, h2.stride(0), h2.stride(1), r2.stride(0), r2.stride(1),
        w1.stride(0), w1.stride(1), w2.stride(0), w2.stride(1),
        HAS_GAMMA=gamma is not None, DOT_PRECISION=dot_precision(h.dtype, allow_tf32),
        BLOCK_C=block_size(c, MIN_DOT))
    return out


@torch.library.custom_op("umsnet_fast::triton_mlp_residual", mutates_args=())
def mlp_residual_op(h: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                    gamma: Optional[torch.Tensor], residual: torch.Tensor,
                    allow_tf32: Optional[bool] = None) -> torch.Tensor:
    """The op (visible to torch.compile / CUDA graphs); same signature as mlp_residual_ref."""
    return mlp_residual(h, w1, b1, w2, b2, gamma, residual, allow_tf32=allow_tf32)


@mlp_residual_op.register_fake
def _(h, w1, b1, w2, b2, gamma, residual, allow_tf32=None):
    return h.new_empty(h.shape)
