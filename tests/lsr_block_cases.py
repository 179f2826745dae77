"""Inputs shared by the tests of the CUDA LSR block kernels (test_cuda_backend, test_cuda_emulation)."""
from __future__ import annotations

import torch

from umsnet_fast.reference import LSRBlock
from umsnet_fast.testing import randomize_
from umsnet_fast.weights import BlockWeights

FILL = 1e4  # what the gaps of a strided input hold: a kernel reading them shows
LAYOUTS = ("contiguous", "transposed", "strided")


def block_args(batch: int, length: int, c: int, k: int = 3, seed: int = 0) -> list:
    """Master (float64, CPU) arguments of lsr_block: x (batch, length, C) and a randomized block's
    weights (gamma and LayerNorm weights around 1, so the MLP branch matters)."""
    w = BlockWeights.from_module(randomize_(LSRBlock(c, k).double(), seed))
    x = torch.randn(batch, length, c, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return [x, w.dw_weight, w.ln_weight, w.ln_bias, w.w1, w.b1, w.w2, w.b2, w.gamma, w.eps]


def relayout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """x (batch, length, C)'s values in another memory layout: 'contiguous'; 'transposed' (channel
    stride != 1, as the transpose of a channels-first tensor); 'strided' (every other channel of a
    bigger buffer whose gaps hold FILL)."""
    if layout == "contiguous":
        return x.contiguous()
    if layout == "transposed":
        return x.transpose(1, 2).contiguous().transpose(1, 2)
    if layout != "strided":
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    out = torch.full((*x.shape[:-1], 2 * x.shape[-1] + 1), FILL, dtype=x.dtype, device=x.device)[..., 1::2]
    return out.copy_(x)
