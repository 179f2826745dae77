"""The paper's UMSNet in plain PyTorch: trainable, and the numerical oracle (DESIGN.md section 1).

Tensors are channels-first here, as nn.Conv1d wants them: (batch, channels, length).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import SensorSpec, UMSNetConfig
from .inputs import check_finite as _check_finite
from .inputs import validate_inputs

__all__ = ["UMSNet", "LSRBlock", "LSRModule", "Stem", "Downsample", "DropPath", "SensorSpec"]

LSR_NORM_EPS = 1e-6  # LayerNorm eps of the LSR blocks, the stems and the Transformer part


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch of a sample with probability p (training only)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LSRBlock(nn.Module):
    """x -> dwconv(k) -> LayerNorm -> Linear(C, 4C) -> GELU -> Linear(4C, C) -> *gamma -> drop path -> + x.

    x: (batch, C, length) -> (batch, C, length). Parameters: 8C^2 + 8C + kC.
    """

    def __init__(self, dim: int, kernel_size: int = 3, layer_scale_init: float = 1e-6, drop_path: float = 0.0):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=False)
        self.norm = nn.LayerNorm(dim, eps=LSR_NORM_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (batch, length, C)
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h)))) * self.gamma
        return x + self.drop_path(h.transpose(1, 2))


class Stem(nn.Module):
    """Conv1d(C_in, w0, kernel 1) + LayerNorm over channels. (batch, C_in, L) -> (batch, w0, L)."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, dim, 1)
        self.norm = nn.LayerNorm(dim, eps=LSR_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)


class Downsample(nn.Module):
    """BatchNorm1d then Conv1d(kernel k, stride k): k = 2 over time, k = 1 over slices."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim)
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, stride=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


class LSRModule(nn.Module):
    """Stem + one stage of LSR blocks per width, a downsample between stages.

    x: (batch, in_channels, L) -> (batch, dims[-1], L // downsample_kernel ** (len(dims) - 1)).
    """

    def __init__(self, in_channels: int, dims, depths, *, downsample_kernel: int, kernel_size: int = 3,
                 layer_scale_init: float = 1e-6, drop_path_rate: float = 0.0):
        super().__init__()
        self.stem = Stem(in_channels, dims[0])
        rates = torch.linspace(0, drop_path_rate, max(sum(depths), 1)).tolist()
        self.stages = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        i = 0
        for s, (dim, depth) in enumerate(zip(dims, depths)):
            if s > 0:
                self.downsamples.append(Downsample(dims[s - 1], dim, downsample_kernel))
            self.stages.append(nn.Sequential(*[
                LSRBlock(dim, kernel_size, layer_scale_init, rates[i + j]) for j in range(depth)
            ]))
            i += depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for s, stage in enumerate(self.stages):
            if s > 0:
                x = self.downsamples[s - 1](x)
            x = stage(x)
        return x


def _init_weights(m: nn.Module) -> None:
    # ConvNeXt's initialisation for the convolution and linear layers of the LSR modules.
    if isinstance(m, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class UMSNet(nn.Module):
    """UMSNet: per-sensor LSR modules over slices, a fusion LSR module over the slice axis, a Transformer.

    Input: a list of tensors in sensor order, or a dict {sensor name: tensor}; sensor i's tensor is
    (batch, C_i, K * L_i). Output: logits (batch, num_classes).
    """

    def __init__(self, sensors, num_classes: int, num_slices: int = 24, variant: str = "A", *,
                 dims=(16, 32, 64, 128), fusion_dims=(64, 64, 64, 128), depths=None, fusion_depths=None,
                 num_layers=None, embed_dim: int = 256, num_heads: int = 8, mlp_dim: int = 512,
                 kernel_size: int = 3, layer_scale_init: float = 1e-6, drop_path_rate: float = 0.0,
                 dropout: float = 0.0):
        super().__init__()
        cfg = UMSNetConfig.resolve(
            sensors, num_classes, num_slices, variant, dims=dims, fusion_dims=fusion_dims, depths=depths,
            fusion_depths=fusion_depths, num_layers=num_layers, embed_dim=embed_dim, num_heads=num_heads,
            mlp_dim=mlp_dim, kernel_size=kernel_size, layer_scale_init=layer_scale_init,
            drop_path_rate=drop_path_rate, dropout=dropout)
        self.config = cfg
        lsr = dict(kernel_size=cfg.kernel_size, layer_scale_init=cfg.layer_scale_init,
                   drop_path_rate=cfg.drop_path_rate)
        # Stage 1: one single-sensor module per sensor, own weights, over the samples of one slice.
        self.sensor_encoders = nn.ModuleDict({
            s.name: LSRModule(s.channels, cfg.dims, cfg.depths, downsample_kernel=2, **lsr) for s in cfg.sensors
        })
        # Stage 2: the multi-sensor module over the slice axis; kernel-1 downsamples keep all K slices.
        self.fusion = LSRModule(len(cfg.sensors) * cfg.dims[-1], cfg.fusion_dims, cfg.fusion_depths,
                                downsample_kernel=1, **lsr)
        self.apply(_init_weights)
        # Stage 3: the Transformer part.
        d = cfg.embed_dim
        self.token_proj = nn.Linear(cfg.fusion_dims[-1], d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_slices + 1, d))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(cfg.dropout)
        self.encoder_layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d, cfg.num_heads, cfg.mlp_dim, cfg.dropout, activation="gelu",
                                       layer_norm_eps=LSR_NORM_EPS, batch_first=True, norm_first=True)
            for _ in range(cfg.num_layers)
        ])
        self.norm = nn.LayerNorm(d, eps=LSR_NORM_EPS)
        self.head = nn.Linear(d, cfg.num_classes)

    @property
    def sensors(self) -> tuple[SensorSpec, ...]:
        return self.config.sensors

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, xs, check_finite: bool = False) -> torch.Tensor:
        tensors = validate_inputs(self.config, xs)
        names = [s.name for s in self.config.sensors]
        if check_finite:
            _check_finite(names, tensors)
        if tensors[0].shape[0] == 0:
            return tensors[0].new_zeros(0, self.config.num_classes)
        logits = self._forward_tensors(tensors)
        if check_finite:
            _check_finite(["logits"], [logits], what="output")
        return logits

    def _forward_tensors(self, xs: list[torch.Tensor]) -> torch.Tensor:
        k = self.config.num_slices
        batch = xs[0].shape[0]
        features = []
        for encoder, x in zip(self.sensor_encoders.values(), xs):
            c, t = x.shape[1], x.shape[2]
            slices = x.reshape(batch, c, k, t // k).transpose(1, 2).reshape(batch * k, c, t // k)
            features.append(encoder(slices).mean(-1).reshape(batch, k, -1))  # SF_i: (batch, K, dims[-1])
        h = self.fusion(torch.cat(features, -1).transpose(1, 2)).transpose(1, 2)  # SF': (batch, K, C)
        tokens = self.token_proj(h)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], 1) + self.pos_embed
        tokens = self.pos_drop(tokens)
        for layer in self.encoder_layers:
            tokens = layer(tokens)
        return self.head(self.norm(tokens[:, 0]))
