"""Inference weights: the model's parameters gathered once into plain, kernel-friendly tensors.

Conv weights become matrices, BatchNorm is folded into the downsample convolutions, and the
Transformer's packed projections are kept as they are. Backends may re-pack these further.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from .ops import fold_batchnorm


def _map_tensors(obj, fn: Callable[[torch.Tensor], torch.Tensor]):
    """Apply fn to every tensor of a weights dataclass tree, keeping the rest."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(o, fn) for o in obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(obj, **{f.name: _map_tensors(getattr(obj, f.name), fn)
                                           for f in dataclasses.fields(obj)})
    return obj


class _Weights:
    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        return _map_tensors(self, fn)

    def to(self, device=None, dtype=None):
        return self.map(lambda t: t.to(device=device, dtype=dtype).contiguous())


@dataclass
class BlockWeights(_Weights):
    dw_weight: torch.Tensor   # (C, k)
    ln_weight: torch.Tensor   # (C,)
    ln_bias: torch.Tensor     # (C,)
    w1: torch.Tensor          # (4C, C)
    b1: torch.Tensor          # (4C,)
    w2: torch.Tensor          # (C, 4C)
    b2: torch.Tensor          # (C,)
    gamma: torch.Tensor       # (C,)
    eps: float

    @classmethod
    def from_module(cls, m) -> BlockWeights:
        return cls(m.dwconv.weight[:, 0], m.norm.weight, m.norm.bias, m.pwconv1.weight, m.pwconv1.bias,
                   m.pwconv2.weight, m.pwconv2.bias, m.gamma, m.norm.eps)


@dataclass
class DownsampleWeights(_Weights):
    weight: torch.Tensor      # (C_out, stride * C_in), BatchNorm folded in, taps outermost
    bias: torch.Tensor        # (C_out,)
    stride: int

    @classmethod
    def from_module(cls, m) -> DownsampleWeights:
        bn, conv = m.norm, m.conv
        weight, bias = fold_batchnorm(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                      bn.weight, bn.bias, bn.eps)
        return cls(weight, bias, conv.stride[0])


@dataclass
class LSRModuleWeights(_Weights):
    stem_weight: torch.Tensor     # (dims[0], C_in)
    stem_bias: torch.Tensor       # (dims[0],)
    stem_ln_weight: torch.Tensor  # (dims[0],)
    stem_ln_bias: torch.Tensor    # (dims[0],)
    stem_eps: float
    stages: list[list[BlockWeights]]
    downsamples: list[DownsampleWeights]  # one fewer than stages

    @classmethod
    def from_module(cls, m) -> LSRModuleWeights:
        return cls(m.stem.conv.weight[:, :, 0], m.stem.conv.bias, m.stem.norm.weight, m.stem.norm.bias,
                   m.stem.norm.eps, [[BlockWeights.from_module(b) for b in stage] for stage in m.stages],
                   [DownsampleWeights.from_module(d) for d in m.downsamples])


@dataclass
class EncoderLayerWeights(_Weights):
    norm1_weight: torch.Tensor    # (d,)
    norm1_bias: torch.Tensor
    in_proj_weight: torch.Tensor  # (3d, d): q, k, v
    in_proj_bias: torch.Tensor    # (3d,)
    out_proj_weight: torch.Tensor  # (d, d)
    out_proj_bias: torch.Tensor
    norm2_weight: torch.Tensor
    norm2_bias: torch.Tensor
    w1: torch.Tensor              # (mlp_dim, d)
    b1: torch.Tensor
    w2: torch.Tensor              # (d, mlp_dim)
    b2: torch.Tensor
    eps: float
    num_heads: int

    @classmethod
    def from_module(cls, m: nn.TransformerEncoderLayer) -> EncoderLayerWeights:
        a = m.self_attn
        return cls(m.norm1.weight, m.norm1.bias, a.in_proj_weight, a.in_proj_bias, a.out_proj.weight,
                   a.out_proj.bias, m.norm2.weight, m.norm2.bias, m.linear1.weight, m.linear1.bias,
                   m.linear2.weight, m.linear2.bias, m.norm1.eps, a.num_heads)


@dataclass
class ModelWeights(_Weights):
    sensors: list[LSRModuleWeights]  # in sensor order
    fusion: LSRModuleWeights
    token_weight: torch.Tensor       # (d, fusion_dims[-1])
    token_bias: torch.Tensor         # (d,)
    cls_token: torch.Tensor          # (d,)
    pos_embed: torch.Tensor          # (K + 1, d)
    layers: list[EncoderLayerWeights]
    norm_weight: torch.Tensor        # (d,)
    norm_bias: torch.Tensor
    norm_eps: float
    head_weight: torch.Tensor        # (num_classes, d)
    head_bias: torch.Tensor

    @classmethod
    @torch.no_grad()
    def from_model(cls, model) -> ModelWeights:
        """Gather (and fold) the weights of a reference or fast UMSNet; detached from autograd."""
        w = cls([LSRModuleWeights.from_module(m) for m in model.sensor_encoders.values()],
                LSRModuleWeights.from_module(model.fusion), model.token_proj.weight, model.token_proj.bias,
                model.cls_token[0, 0], model.pos_embed[0],
                [EncoderLayerWeights.from_module(layer) for layer in model.encoder_layers],
                model.norm.weight, model.norm.bias, model.norm.eps, model.head.weight, model.head.bias)
        return w.map(torch.Tensor.detach)
