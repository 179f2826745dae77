"""Inputs of lsr_block shared by tests/ops/test_lsr_block.py and tests/test_cuda_backend.py."""
from __future__ import annotations

import torch

from umsnet_fast.reference import LSRBlock
from umsnet_fast.testing import randomize_
from umsnet_fast.weights import BlockWeights


def block_args(batch: int, length: int, c: int, k: int = 3, seed: int = 0) -> list:
    """Master (float64, CPU) arguments of lsr_block: x (batch, length, C) and a randomized block's
    weights (gamma and LayerNorm weights around 1, so the MLP branch matters)."""
    w = BlockWeights.from_module(randomize_(LSRBlock(c, k).double(), seed))
    x = torch.randn(batch, length, c, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return [x, w.dw_weight, w.ln_weight, w.ln_bias, w.w1, w.b1, w.w2, w.b2, w.gamma, w.eps]
