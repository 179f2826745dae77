"""The stem, a Linear over channels + LayerNorm, as one Triton kernel; the same kernel (without the
LayerNorm, with S taps) is the downsample (kernels/downsample.py).
Reference: umsnet_fast.ops.linear_layernorm_ref.

x: (batch, length, C_in); weight: (C_out, C_in); bias, ln_weight, ln_bias: (C_out,);
out: (batch, length, C_out).

The kernel is a GEMM whose A rows are gathered: output row (n, l) reads S neighbouring input rows
(n, l * S + t), t < S, each a C_in-wide slice of the concatenated (S * C_in) row, taps outermost.
"""
from __future__ import annotations

from typing import Optional  # custom_op schemas: spelled Optional[...] for every supported torch

import torch
import triton
import triton.language as tl

from umsnet_fast.ops import linear_layernorm_ref

from ._common import MIN_DOT, autotune, autotune_configs, block_size, check_tensor, dot, dot_precision, layernorm_rows

__all__ = ["linear_layernorm", "linear_layernorm_op", "linear_layernorm_ref", "tap_linear", "MAX_LN_C"]

MAX_LN_C = 1024  # with the LayerNorm, one program holds a whole output row

TAP_LINEAR_CONFIGS = autotune_configs(
    [dict(BLOCK_M=32, BLOCK_K=32), dict(BLOCK_M=64, BLOCK_K=32), dict(BLOCK_M=128, BLOCK_K=32, num_warps=8),
     dict(BLOCK_M=64, BLOCK_K=64), dict(BLOCK_M=16, BLOCK_K=64)],
    interpret=dict(BLOCK_M=64, BLOCK_K=32))


@autotune(configs=TAP_LINEAR_CONFIGS, key=["M", "C_in", "C_out", "S"])
@triton.jit
def _tap_linear_kernel(
    x_ptr,        # x (batch, L_in, C_in), any strides
    w_ptr,        # weight (C_out, S * C_in), taps outermost, any strides
    b_ptr,        # bias (C_out,), contiguous
    lnw_ptr,      # LayerNorm weight (C_out,), contiguous; unused without HAS_LN
    lnb_ptr,      # LayerNorm bias (C_out,), contiguous; unused without HAS_LN
    out_ptr,      # out (batch, L_out, C_out), contiguous
    M,            # batch * L_out
    L_out,        # output length (L_in // S)
    C_in, C_out,  # channels in and out
    S,            # taps = stride
    stride_xn, stride_xl, stride_xc,
    stride_wo, stride_wi,
    eps,          # LayerNorm epsilon
    HAS_LN: tl.constexpr,         # LayerNorm over the output row (needs BLOCK_N >= C_out, one column block)
    DOT_PRECISION: tl.constexpr,  # "ieee" (true fp32) or "tf32"
    BLOCK_N: tl.constexpr,        # output channels per program (power of 2, >= 16)
    BLOCK_M: tl.constexpr,        # rows per program (autotuned, >= 16)
    BLOCK_K: tl.constexpr,        # input-channel chunk (autotuned, >= 16)
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < M
    col_mask = cols < C_out
    n = (rows // L_out).to(tl.int64)
    lo = rows % L_out
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for t in range(S):
        x_row = x_ptr + n * stride_xn + (lo * S + t) * stride_xl  # [BLOCK_M] pointers
        for k0 in range(0, C_in, BLOCK_K):
            kk = k0 + tl.arange(0, BLOCK_K)
            k_mask = kk < C_in
            a = tl.load(x_row[:, None] + kk[None, :] * stride_xc, mask=row_mask[:, None] & k_mask[None, :],
                        other=0.0)                                                        # [BLOCK_M, BLOCK_K]
            b = tl.load(w_ptr + cols[None, :] * stride_wo + (t * C_in + kk[:, None]) * stride_wi,
                        mask=k_mask[:, None] & col_mask[None, :], other=0.0)             # [BLOCK_K, BLOCK_N]
            acc = dot(a, b, acc, DOT_PRECISION)
    acc += tl.load(b_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    if HAS_LN:
        acc = layernorm_rows(acc, col_mask, C_out, lnw_ptr, lnb_ptr, cols, eps)
    tl.store(out_ptr + rows.to(tl.int64)[:, None] * C_out + cols[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=row_mask[:, None] & col_mask[None, :])


def tap_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int,
               ln: tuple[torch.Tensor, torch.Tensor, float] | None = None, *,
               allow_tf32: bool | None = None) -> torch.Tensor:
    """Host launcher shared by the stem and the downsample.

    x: (batch, L_in, C_in) any strides; weight: (C_out, stride * C_in), taps outermost; bias: (C_out,);
    ln: (ln_weight (C_out,), ln_bias (C_out,), eps) or None. out: (batch, L_in // stride, C_out);
    the L_in % stride trailing rows are dropped, as Conv1d does.
    """
    check_tensor("x", x, 3)
    n, l_in, c_in = x.shape
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride: expected a positive int, got {stride!r}")
    check_tensor("weight", weight, 2, like=x)
    c_out = weight.shape[0]
    check_tensor("weight", weight, shape=(c_out, stride * c_in), like=x)
    check_tensor("bias", bias, shape=(c_out,), like=x)
    if ln is not None:
        check_tensor("ln_weight", ln[0], shape=(c_out,), like=x)
        check_tensor("ln_bias", ln[1], shape=(c_out,), like=x)
        if c_out > MAX_LN_C:
            raise ValueError(f"linear + LayerNorm holds a whole output row in one program: C_out <= "
                             f"{MAX_LN_C}, got {c_out}")
    l_out = l_in // stride
    out = torch.empty((n, l_out, c_out), device=x.device, dtype=x.dtype)
    m = n * l_out
    if m == 0:
        return out
    block_n = block_size(c_out, MIN_DOT) if ln is not None else min(block_size(c_out, MIN_DOT), 128)
    lnw, lnb, eps = (ln[0].contiguous(), ln[1].contiguous(), ln[2]) if ln is not None else (bias, bias, 0.0)
    grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(c_out, block_n))  # noqa: E731
    _tap_linear_kernel[grid](
        x, weight, bias.contiguous(), lnw, lnb, out, m, l_out, c_in, c_out, stride,
        x.stride(0), x.stride(1), x.stride(2), weight.stride(0), weight.stride(1), eps,
        HAS_LN=ln is not None, DOT_PRECISION=dot_precision(x.dtype, allow_tf32), BLOCK_N=block_n)
    return out


def linear_layernorm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, ln_weight: torch.Tensor,
                     ln_bias: torch.Tensor, eps: float = 1e-6, *, allow_tf32: bool | None = None) -> torch.Tensor:
    """Host launcher of the stem. Shapes in the module docstring; x may have any strides."""
    return tap_linear(x, weight, bias, 1, (ln_weight, ln_bias, eps), allow_tf32=allow_tf32)


@torch.library.custom_op("umsnet_fast::triton_linear_layernorm", mutates_args=())
def linear_layernorm_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, ln_weight: torch.Tensor,
                        ln_bias: torch.Tensor, eps: float = 1e-6,
                        allow_tf32: Optional[bool] = None) -> torch.Tensor:
    """The op (visible to torch.compile / CUDA graphs); same signature as linear_layernorm_ref."""
    return linear_layernorm(x, weight, bias, ln_weight, ln_bias, eps, allow_tf32=allow_tf32)


@linear_layernorm_op.register_fake
def _(x, weight, bias, ln_weight, ln_bias, eps=1e-6, allow_tf32=None):
    return x.new_empty(x.shape[0], x.shape[1], weight.shape[0])
