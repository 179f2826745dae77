"""LayerNorm over the last axis (the Transformer part's norms) as a Triton kernel, statistics in fp32.
Reference: umsnet_fast.ops.layer_norm_ref.

x: (..., C); weight, bias: (C,); out: (..., C).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from umsnet_fast.ops import layer_norm_ref

from ._common import INTERPRET, block_size, check_tensor, layernorm_rows, row_tile

__all__ = ["layer_norm", "layer_norm_op", "layer_norm_ref", "MAX_C"]

MAX_C = 16384  # one program holds whole rows


@triton.jit
def _layer_norm_kernel(
    x_ptr,        # x (M, C), any row stride, unit channel stride
    w_ptr,        # weight (C,), contiguous
    b_ptr,        # bias (C,), contiguous
    out_ptr,      # out (M, C), contiguous
    M, C,         # rows, channels
    stride_xm,    # x's row stride, in elements
    eps,          # epsilon
    BLOCK_M: tl.constexpr,  # rows per program
    BLOCK_C: tl.constexpr,  # power of 2 >= C
):
    rows, row_mask, cols, col_mask = row_tile(M, C, BLOCK_M, BLOCK_C)
    rows64 = rows.to(tl.int64)
    mask = row_mask[:, None] & col_mask[None, :]
    x = tl.load(x_ptr + rows64[:, None] * stride_xm + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    y = layernorm_rows(x, col_mask, C, w_ptr, b_ptr, cols, eps)
    tl.store(out_ptr + rows64[:, None] * C + cols[None, :], y.to(out_ptr.dtype.element_ty), mask=mask)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Host launcher. x: (..., C); leading axes are flattened with reshape (a view when possible,
    else a copy), and a non-unit channel stride is made contiguous. out: (..., C) contiguous."""
    check_tensor("x", x)
    if x.dim() < 1:
        raise ValueError("x: expected shape (..., C), got a scalar")
    c = x.shape[-1]
    check_tensor("weight", weight, shape=(c,), like=x)
    check_tensor("bias", bias, shape=(c,), like=x)
    if c > MAX_C:
        raise ValueError(f"layer_norm holds whole rows in one program: C <= {MAX_C}, got {c}")
    out = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    x2 = x.reshape(-1, c)
    if x2.shape[0] == 0:
        return out
    if x2.stride(1) != 1:
        x2 = x2.contiguous()
    m = x2.shape[0]
    block_c = block_size(c)
    block_m = max(1, min(64, (16384 if INTERPRET else 4096) // block_c))
    _layer_norm_kernel[(triton.cdiv(m, block_m),)](
        x2, weight.contiguous(), bias.contiguous(), out, m, c, x2.stride(0), eps,
        BLOCK_M=block_m, BLOCK_C=block_c, num_warps=4 if block_c <= 1024 else 8)
    return out


@torch.library.custom_op("umsnet_fast::triton_layer_norm", mutates_args=())
def layer_norm_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """The op (visible to torch.compile / CUDA graphs); same signature as layer_norm_ref."""
    return layer_norm(x, weight, bias, eps)


@layer_norm_op.register_fake
def _(x, weight, bias, eps):
    return x.new_empty(x.shape)
