"""Input checks shared by both models (DESIGN.md section 6).

Everything here looks at shapes, dtypes and devices only, so it never synchronises with a GPU.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .config import UMSNetConfig

# The floating dtypes both models compute in (the reference backend runs all four; float8 and the like
# have no LayerNorm, GELU or matmul in PyTorch).
COMPUTE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _describe(x) -> str:
    return f"{type(x).__name__}" if not isinstance(x, torch.Tensor) else f"tensor{tuple(x.shape)}"


def validate_inputs(config: UMSNetConfig, xs) -> list[torch.Tensor]:
    """Check a window against the configuration; return the tensors in sensor order.

    xs: a list/tuple of tensors in sensor order, or a mapping {sensor name: tensor};
        sensor i's tensor has shape (batch, C_i, K * L_i) with L_i >= config.min_slice_length.
    """
    sensors = config.sensors
    names = [s.name for s in sensors]
    if isinstance(xs, torch.Tensor):
        raise TypeError(
            f"expected a list of {len(sensors)} tensors (sensors {names}) or a dict keyed by sensor name, "
            f"got a single tensor of shape {tuple(xs.shape)}"
        )
    if isinstance(xs, Mapping):
        missing = [n for n in names if n not in xs]
        extra = [k for k in xs if k not in names]
        if missing or extra:
            raise ValueError(f"expected inputs for sensors {names}; missing {missing}, unexpected {extra}")
        tensors = [xs[n] for n in names]
    elif isinstance(xs, Sequence) and not isinstance(xs, (str, bytes)):
        if len(xs) != len(sensors):
            raise ValueError(f"expected {len(sensors)} input tensors (sensors {names}), got {len(xs)}")
        tensors = list(xs)
    else:
        raise TypeError(f"expected a list or dict of tensors (sensors {names}), got {type(xs).__name__}")

    k = config.num_slices
    batch = device = dtype = None
    for spec, x in zip(sensors, tensors):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"sensor {spec.name!r}: expected a torch.Tensor, got {_describe(x)}")
        if not x.dtype.is_floating_point:
            raise TypeError(f"sensor {spec.name!r}: expected a floating-point tensor, got dtype {x.dtype}")
        if x.dtype not in COMPUTE_DTYPES:
            raise TypeError(f"sensor {spec.name!r}: expected one of the dtypes the models compute in "
                            f"({', '.join(map(str, COMPUTE_DTYPES))}), got dtype {x.dtype}")
        if x.dim() != 3 or x.shape[1] != spec.channels:
            raise ValueError(
                f"sensor {spec.name!r}: expected shape (batch, {spec.channels}, K*L) with K={k}, "
                f"got {tuple(x.shape)}"
            )
        t = x.shape[2]
        if t % k:
            raise ValueError(
                f"sensor {spec.name!r}: length {t} is not a multiple of num_slices={k} "
                f"(expected shape (batch, {spec.channels}, {k}*L)), got {tuple(x.shape)}"
            )
        if t // k < config.min_slice_length:
            raise ValueError(
                f"sensor {spec.name!r}: slices of {t // k} samples are too short; expected "
                f"(batch, {spec.channels}, {k}*L) with L >= {config.min_slice_length}, got {tuple(x.shape)}"
            )
        if batch is None:
            batch, device, dtype = x.shape[0], x.device, x.dtype
            first = spec.name
        elif x.shape[0] != batch:
            raise ValueError(f"sensor {spec.name!r}: batch size {x.shape[0]} differs from sensor {first!r}'s {batch}")
        elif x.device != device:
            raise ValueError(f"sensor {spec.name!r}: tensor is on {x.device}, sensor {first!r}'s on {device}")
        elif x.dtype != dtype:
            raise TypeError(f"sensor {spec.name!r}: dtype {x.dtype} differs from sensor {first!r}'s {dtype}")
    return tensors


def check_finite(names: Sequence[str], tensors: Sequence[torch.Tensor], what: str = "input") -> None:
    """Raise ValueError naming the first tensor holding NaN or Inf (this synchronises)."""
    for name, x in zip(names, tensors):
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{what} {name!r} contains NaN or Inf")
