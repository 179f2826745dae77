"""The remaining ops of the forward pass, channels-last, as plain PyTorch (*_ref)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_layernorm_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, ln_weight: torch.Tensor,
                         ln_bias: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The stem: pointwise conv (a Linear over channels) then LayerNorm.

    x: (batch, length, C_in); weight: (C, C_in); bias, ln_weight, ln_bias: (C,)
    out: (batch, length, C)
    """
    y = F.linear(x, weight, bias)
    return F.layer_norm(y, (weight.shape[0],), ln_weight, ln_bias, eps)


def fold_batchnorm(conv_weight: torch.Tensor, conv_bias: torch.Tensor, running_mean: torch.Tensor,
                   running_var: torch.Tensor, bn_weight: torch.Tensor, bn_bias: torch.Tensor,
                   eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm1d into the unpadded Conv1d after it (exact in exact arithmetic).

    conv_weight: (C_out, C_in, k) -> weight (C_out, k * C_in), taps outermost, for downsample_ref;
    conv_bias: (C_out,); BatchNorm tensors: (C_in,). Computed in float64, returned in conv_weight's dtype.
    """
    w64, b64 = conv_weight.double(), conv_bias.double()
    scale = bn_weight.double() / torch.sqrt(running_var.double() + eps)
    shift = bn_bias.double() - running_mean.double() * scale
    weight = w64 * scale[None, :, None]
    bias = b64 + (w64 * shift[None, :, None]).sum((1, 2))
    c_out, c_in, k = conv_weight.shape
    weight = weight.permute(0, 2, 1).reshape(c_out, k * c_in)
    return weight.to(conv_weight.dtype), bias.to(conv_weight.dtype)


def downsample_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> torch.Tensor:
    """Conv1d(kernel = stride = s) with a folded BatchNorm: s neighbours concatenated, then a Linear.

    x: (batch, length, C_in); weight: (C_out, s * C_in) taps outermost; bias: (C_out,)
    out: (batch, length // s, C_out); an odd tail is dropped, as Conv1d does.
    """
    n, length, c_in = x.shape
    l_out = length // stride
    x = x[:, : l_out * stride].reshape(n, l_out, stride * c_in)
    return F.linear(x, weight, bias)


def layer_norm_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last axis. x: (..., C); weight, bias: (C,)."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def linear_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x: (..., C_in); weight: (C_out, C_in); bias: (C_out,) -> (..., C_out)."""
    return F.linear(x, weight, bias)


def attention_ref(qkv: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Multi-head self-attention from a packed projection.

    qkv: (batch, tokens, 3 * d), q then k then v, heads contiguous inside each
    out: (batch, tokens, d), heads concatenated (before the output projection)
    """
    b, t, three_d = qkv.shape
    d = three_d // 3
    q, k, v = qkv.view(b, t, 3, num_heads, d // num_heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v)  # (batch, heads, tokens, head_dim)
    return out.transpose(1, 2).reshape(b, t, d)
