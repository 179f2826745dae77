"""Model size and cost: parameters per stage and multiply-adds per sample, from the configuration.

Multiply-adds count the convolutions, linear layers and attention products (not norms, GELU or
additions), as the paper's Tables 3 and 5 appear to.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import UMSNetConfig


def lsr_module_macs(in_channels: int, dims, depths, kernel_size: int, length: int, downsample: int) -> int:
    """Multiply-adds of one LSR module on one sequence of `length` positions."""
    macs = in_channels * dims[0] * length  # stem
    for s, (c, depth) in enumerate(zip(dims, depths)):
        if s > 0:
            length //= downsample
            macs += downsample * dims[s - 1] * c * length
        macs += depth * (kernel_size * c + 8 * c * c) * length  # dwconv + the two Linear layers
    return macs


def attention_macs(cfg: UMSNetConfig) -> int:
    """The attention products alone (QK^T and AV) of all encoder layers."""
    t = cfg.num_slices + 1
    return cfg.num_layers * 2 * t * t * cfg.embed_dim


def transformer_macs(cfg: UMSNetConfig) -> int:
    """Token projection, encoder layers (attention products included) and the head."""
    d, t = cfg.embed_dim, cfg.num_slices + 1
    per_layer = 4 * d * d * t + 2 * d * cfg.mlp_dim * t  # q, k, v and output projections; MLP
    return (cfg.fusion_dims[-1] * d * cfg.num_slices + cfg.num_layers * per_layer + attention_macs(cfg)
            + d * cfg.num_classes)


@dataclass(frozen=True)
class StageCost:
    name: str
    params: int
    macs: int


def model_costs(model, slice_lengths: dict[str, int]) -> list[StageCost]:
    """Per-stage parameters (counted on the model) and multiply-adds per window (from the config).

    slice_lengths: samples per slice, L_i, for each sensor name.
    """
    cfg: UMSNetConfig = model.config
    k = cfg.num_slices
    rows = []
    for spec in cfg.sensors:
        enc = model.sensor_encoders[spec.name]
        macs = k * lsr_module_macs(spec.channels, cfg.dims, cfg.depths, cfg.kernel_size,
                                   slice_lengths[spec.name], 2)
        rows.append(StageCost(f"stage 1: {spec.name} ({spec.channels} ch)", _count(enc), macs))
    fusion_in = len(cfg.sensors) * cfg.dims[-1]
    rows.append(StageCost("stage 2: multi-sensor fusion", _count(model.fusion),
                          lsr_module_macs(fusion_in, cfg.fusion_dims, cfg.fusion_depths, cfg.kernel_size, k, 1)))
    lsr_params = sum(r.params for r in rows)
    rows.append(StageCost("stage 3: Transformer", _count(model) - lsr_params, transformer_macs(cfg)))
    return rows


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())
