"""LSR block ops, channels-last: the two fused halves and the whole block, as plain PyTorch (*_ref).

Kernel backends (kernels/, csrc/) implement the same signatures and are tested against these.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def dwconv_layernorm_ref(x: torch.Tensor, dw_weight: torch.Tensor, ln_weight: torch.Tensor,
                         ln_bias: torch.Tensor, eps: float = 1e-6, gelu: bool = False) -> torch.Tensor:
    """Depthwise conv (k taps, zero padding k // 2, no bias) then LayerNorm over channels, optional GELU.

    x: (batch, length, C)
    dw_weight: (C, k)
    ln_weight, ln_bias: (C,)
    out: (batch, length, C)
    """
    c, k = dw_weight.shape
    y = F.conv1d(x.transpose(1, 2), dw_weight.unsqueeze(1), padding=k // 2, groups=c).transpose(1, 2)
    y = F.layer_norm(y, (c,), ln_weight, ln_bias, eps)
    return F.gelu(y) if gelu else y


def mlp_residual_ref(h: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
                     gamma: torch.Tensor | None, residual: torch.Tensor) -> torch.Tensor:
    """residual + gamma * (GELU(h @ w1.T + b1) @ w2.T + b2); gamma None means 1.

    h, residual: (..., C)
    w1: (H, C), b1: (H,)
    w2: (C, H), b2: (C,)
    gamma: (C,) or None
    out: (..., C)
    """
    y = F.linear(F.gelu(F.linear(h, w1, b1)), w2, b2)
    if gamma is not None:
        y = y * gamma
    return residual + y


def lsr_block_ref(x: torch.Tensor, dw_weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor,
                  w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, gamma: torch.Tensor,
                  eps: float = 1e-6) -> torch.Tensor:
    """The whole LSR block in eval mode: x + gamma * MLP(LayerNorm(dwconv(x))).

    x: (batch, length, C); dw_weight: (C, k); w1: (4C, C); w2: (C, 4C); the rest (C,) or (4C,).
    out: (batch, length, C)
    """
    h = dwconv_layernorm_ref(x, dw_weight, ln_weight, ln_bias, eps)
    return mlp_residual_ref(h, w1, b1, w2, b2, gamma, x)
