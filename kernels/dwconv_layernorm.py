"""Depthwise conv (k taps, zero padding k // 2, no bias) + LayerNorm over channels (+ optional GELU),
channels-last, as one Triton kernel. Reference: umsnet_fast.ops.dwconv_layernorm_ref.

x: (batch, length, C); dw_weight: (C, k), k odd; ln_weight, ln_bias: (C,); out: (batch, length, C).

A program handles BLOCK_M rows of the flattened (batch * length) axis and all C channels (BLOCK_C,
the next power of 2; lanes beyond C are masked and kept out of the statistics). Rows of different
sequences share a tile: the taps are masked at each sequence's ends, so short sequences waste nothing.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from umsnet_fast.ops import dwconv_layernorm_ref

from ._common import INTERPRET, block_size, check_tensor, gelu, layernorm_rows, row_tile

__all__ = ["dwconv_layernorm", "dwconv_layernorm_op", "dwconv_layernorm_ref"]


@triton.jit
def dwconv_ln_tile(
    x_ptr,        # x (batch, length, C), any strides
    dw_ptr,       # depthwise taps (C, k), any strides
    lnw_ptr,      # LayerNorm weight (C,), contiguous
    lnb_ptr,      # LayerNorm bias (C,), contiguous
    rows,         # [BLOCK_M] flat row indices n * length + l
    row_mask,     # [BLOCK_M] rows < batch * length
    cols,         # [BLOCK_C] channel indices
    col_mask,     # [BLOCK_C] cols < C
    L,            # length
    C,            # channels
    stride_xn, stride_xl, stride_xc,  # x's strides, in elements
    stride_dwc, stride_dwk,           # dw's strides, in elements
    eps,          # LayerNorm epsilon
    KSIZE: tl.constexpr,              # taps k (odd)
    BLOCK_M: tl.constexpr,            # rows per tile
    BLOCK_C: tl.constexpr,            # power of 2 >= C
):
    """LayerNorm(dwconv(x)) of a tile of rows: fp32 [BLOCK_M, BLOCK_C], 0 in lanes beyond C."""
    n = (rows // L).to(tl.int64)
    l = rows % L
    acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    for j in tl.static_range(KSIZE):
        pos = l + (j - KSIZE // 2)
        m = row_mask & (pos >= 0) & (pos < L)  # zero padding at each sequence's ends
        xv = tl.load(x_ptr + n[:, None] * stride_xn + pos[:, None] * stride_xl + cols[None, :] * stride_xc,
                     mask=m[:, None] & col_mask[None, :], other=0.0).to(tl.float32)
        wv = tl.load(dw_ptr + cols * stride_dwc + j * stride_dwk, mask=col_mask, other=0.0).to(tl.float32)
        acc += xv * wv[None, :]
    return layernorm_rows(acc, col_mask, C, lnw_ptr, lnb_ptr, cols, eps)


@triton.jit
def _dwconv_layernorm_kernel(
    x_ptr,        # x (batch, length, C), any strides
    dw_ptr,       # depthwise taps (C, k)
    lnw_ptr,      # LayerNorm weight (C,)
    lnb_ptr,      # LayerNorm bias (C,)
    out_ptr,      # out (batch, length, C), contiguous
    M,            # batch * length
    L,            # length
    C,            # channels
    stride_xn, stride_xl, stride_xc,
    stride_dwc, stride_dwk,
    eps,
    KSIZE: tl.constexpr,     # taps k (odd)
    APPLY_GELU: tl.constexpr,  # GELU after the LayerNorm
    BLOCK_M: tl.constexpr,   # rows per program
    BLOCK_C: tl.constexpr,   # power of 2 >= C
):
    rows, row_mask, cols, col_mask = row_tile(M, C, BLOCK_M, BLOCK_C)
    y = dwconv_ln_tile(x_ptr, dw_ptr, lnw_ptr, lnb_ptr, rows, row_mask, cols, col_mask, L, C,
                       stride_xn, stride_xl, stride_xc, stride_dwc, stride_dwk, eps, KSIZE, BLOCK_M, BLOCK_C)
    if APPLY_GELU:
        y = gelu(y)
    offs = rows.to(tl.int64)[:, None] * C + cols[None, :]
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=row_mask[:, None] & col_mask[None, :])


def check_dwconv_args(x, dw_weight, ln_weight, ln_bias) -> tuple[int, int, int, int]:
    """Shape/dtype/device checks shared with the LSR block; returns (batch, length, C, k)."""
    check_tensor("x", x, 3)
    n, length, c = x.shape
    check_tensor("dw_weight", dw_weight, 2, like=x)
    if dw_weight.shape[0] != c or dw_weight.shape[1] % 2 == 0:
        raise ValueError(f"dw_weight: expected shape ({c}, k) with k odd (same-length conv), "
                         f"got {tuple(dw_weight.shape)}")
    check_tensor("ln_weight", ln_weight, shape=(c,), like=x)
    check_tensor("ln_bias", ln_bias, shape=(c,), like=x)
    return n, length, c, dw_weight.shape[1]


def dwconv_layernorm(x: torch.Tensor, dw_weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor,
                     eps: float = 1e-6, gelu: bool = False) -> torch.Tensor:
    """Host launcher. x: (batch, length, C) any strides; dw_weight: (C, k); ln_*: (C,) -> (batch, length, C)."""
    n, length, c, k = check_dwconv_args(x, dw_weight, ln_weight, ln_bias)
    out = torch.empty((n, length, c), device=x.device, dtype=x.dtype)
    m = n * length
    if m == 0:
        return out
    block_c = block_size(c)
    # ~4K elements per program on a GPU (registers); fewer, larger programs under the interpreter.
    block_m = max(1, min(128, (16384 if INTERPRET else 4096) // block_c))
    grid = (triton.cdiv(m, block_m),)
    _dwconv_layernorm_kernel[grid](
        x, dw_weight, ln_weight.contiguous(), ln_bias.contiguous(), out, m, length, c,
        x.stride(0), x.stride(1), x.stride(2), dw_weight.stride(0), dw_weight.stride(1), eps,
        KSIZE=k, APPLY_GELU=gelu, BLOCK_M=block_m, BLOCK_C=block_c, num_warps=4 if block_c <= 256 else 8)
    return out


@torch.library.custom_op("umsnet_fast::triton_dwconv_layernorm", mutates_args=())
def dwconv_layernorm_op(x: torch.Tensor, dw_weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor,
                        eps: float = 1e-6, gelu: bool = False) -> torch.Tensor:
    """The op (visible to torch.compile / CUDA graphs); same signature as dwconv_layernorm_ref."""
    return dwconv_layernorm(x, dw_weight, ln_weight, ln_bias, eps, gelu)


@dwconv_layernorm_op.register_fake
def _(x, dw_weight, ln_weight, ln_bias, eps=1e-6, gelu=False):
    return x.new_empty(x.shape)
