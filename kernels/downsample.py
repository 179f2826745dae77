"""The downsample: BatchNorm1d folded into Conv1d(kernel = stride = s), i.e. s neighbouring rows
concatenated and a Linear, as one Triton kernel (the gathered-row GEMM of kernels/linear_layernorm.py
without the LayerNorm). Reference: umsnet_fast.ops.downsample_ref (weights from ops.fold_batchnorm).

x: (batch, length, C_in); weight: (C_out, s * C_in), taps outermost; bias: (C_out,);
out: (batch, length // s, C_out).
"""
from __future__ import annotations

from typing import Optional  # custom_op schemas: spelled Optional[...] for every supported torch

import torch

from umsnet_fast.ops import downsample_ref

from .linear_layernorm import tap_linear

__all__ = ["downsample", "downsample_op", "downsample_ref"]


def downsample(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, *,
               allow_tf32: bool | None = None) -> torch.Tensor:
    """Host launcher. x may have any strides; an odd tail (length % stride rows) is dropped."""
    return tap_linear(x, weight, bias, stride, None, allow_tf32=allow_tf32)


@torch.library.custom_op("umsnet_fast::triton_downsample", mutates_args=())
def downsample_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int,
                  allow_tf32: Optional[bool] = None) -> torch.Tensor:
    """The op (visible to torch.compile / CUDA graphs); same signature as downsample_ref."""
    return downsample(x, weight, bias, stride, allow_tf32=allow_tf32)


@downsample_op.register_fake
def _(x, weight, bias, stride, allow_tf32=None):
    return x.new_empty(x.shape[0], x.shape[1] // stride, weight.shape[0])
