"""Model configuration shared by the reference and the fast model.

Both models take the same constructor arguments; `UMSNetConfig.resolve` checks them once and fills
in the variant's defaults, so the two models can never disagree on the architecture.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

# Paper Table 1: LSR blocks per stage in the single- and multi-sensor modules, encoder layers.
VARIANTS = {
    "A": {"depths": (2, 2, 2, 2), "fusion_depths": (2, 2, 2, 2), "num_layers": 3},
    "B": {"depths": (2, 2, 6, 2), "fusion_depths": (2, 2, 6, 2), "num_layers": 6},
    "C": {"depths": (2, 2, 18, 2), "fusion_depths": (2, 2, 18, 2), "num_layers": 6},
}

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SensorSpec:
    """One sensor of a window: its name and its number of channels (axes, leads)."""

    name: str
    channels: int

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(
                f"sensor name must be an identifier (letters, digits, '_'), got {self.name!r}"
            )
        if isinstance(self.channels, bool) or not isinstance(self.channels, int) or self.channels < 1:
            raise ValueError(f"sensor {self.name!r}: channels must be a positive int, got {self.channels!r}")


def _as_sensor(s) -> SensorSpec:
    if isinstance(s, SensorSpec):
        return s
    if isinstance(s, (tuple, list)) and len(s) == 2:
        return SensorSpec(*s)
    raise TypeError(f"expected a SensorSpec or a (name, channels) pair, got {s!r}")


def _int_tuple(name: str, value: Iterable[int], min_value: int) -> tuple[int, ...]:
    try:
        out = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}") from None
    if not out or any(isinstance(v, bool) or not isinstance(v, int) or v < min_value for v in out):
        raise ValueError(f"{name} must be a non-empty sequence of ints >= {min_value}, got {value!r}")
    return out


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _real(name: str, value, low: float = -math.inf, high: float = math.inf, high_open: bool = False) -> float:
    """A finite real number (int or float, not bool or str) in [low, high] (or [low, high)), as float."""
    bound = f" in [{low:g}, {high:g}{')' if high_open else ']'}" if high < math.inf else ""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not low <= value <= high or (high_open and value == high)):
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class UMSNetConfig:
    """The resolved architecture of one UMSNet (DESIGN.md section 1)."""

    sensors: tuple[SensorSpec, ...]
    num_classes: int
    num_slices: int = 24
    variant: str = "A"
    dims: tuple[int, ...] = (16, 32, 64, 128)
    fusion_dims: tuple[int, ...] = (64, 64, 64, 128)
    depths: tuple[int, ...] = field(default=VARIANTS["A"]["depths"])
    fusion_depths: tuple[int, ...] = field(default=VARIANTS["A"]["fusion_depths"])
    num_layers: int = VARIANTS["A"]["num_layers"]
    embed_dim: int = 256
    num_heads: int = 8
    mlp_dim: int = 512
    kernel_size: int = 3
    layer_scale_init: float = 1e-6
    drop_path_rate: float = 0.0
    dropout: float = 0.0

    @classmethod
    def resolve(
        cls,
        sensors: Sequence[SensorSpec],
        num_classes: int,
        num_slices: int = 24,
        variant: str = "A",
        *,
        dims: Sequence[int] = (16, 32, 64, 128),
        fusion_dims: Sequence[int] = (64, 64, 64, 128),
        depths: Sequence[int] | None = None,
        fusion_depths: Sequence[int] | None = None,
        num_layers: int | None = None,
        embed_dim: int = 256,
        num_heads: int = 8,
        mlp_dim: int = 512,
        kernel_size: int = 3,
        layer_scale_init: float = 1e-6,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
    ) -> UMSNetConfig:
        if isinstance(variant, str):
            variant = variant.upper()
        if not isinstance(variant, str) or variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        defaults = VARIANTS[variant]
        if isinstance(sensors, (str, bytes)) or not isinstance(sensors, Sequence):
            raise TypeError(f"sensors must be a sequence of SensorSpec, got {type(sensors).__name__}")
        sensors = tuple(_as_sensor(s) for s in sensors)
        if not sensors:
            raise ValueError("sensors must name at least one sensor")
        names = [s.name for s in sensors]
        if len(set(names)) != len(names):
            raise ValueError(f"sensor names must be unique, got {names}")
        dims = _int_tuple("dims", dims, 1)
        fusion_dims = _int_tuple("fusion_dims", fusion_dims, 1)
        depths = _int_tuple("depths", defaults["depths"] if depths is None else depths, 0)
        fusion_depths = _int_tuple(
            "fusion_depths", defaults["fusion_depths"] if fusion_depths is None else fusion_depths, 0
        )
        if len(depths) != len(dims):
            raise ValueError(f"depths {depths} must have one entry per stage of dims {dims}")
        if len(fusion_depths) != len(fusion_dims):
            raise ValueError(f"fusion_depths {fusion_depths} must have one entry per stage of fusion_dims "
                             f"{fusion_dims}")
        num_layers = defaults["num_layers"] if num_layers is None else num_layers
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers must be an int >= 0, got {num_layers!r}")
        for name, value in (("num_classes", num_classes), ("num_slices", num_slices),
                            ("embed_dim", embed_dim), ("num_heads", num_heads), ("mlp_dim", mlp_dim),
                            ("kernel_size", kernel_size)):
            _positive_int(name, value)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (padding k//2 keeps the length), got {kernel_size}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        layer_scale_init = _real("layer_scale_init", layer_scale_init)
        drop_path_rate = _real("drop_path_rate", drop_path_rate, 0.0, 1.0, high_open=True)
        dropout = _real("dropout", dropout, 0.0, 1.0, high_open=True)
        return cls(sensors, num_classes, num_slices, variant, dims, fusion_dims, depths, fusion_depths,
                   num_layers, embed_dim, num_heads, mlp_dim, kernel_size, layer_scale_init, drop_path_rate,
                   dropout)

    @property
    def min_slice_length(self) -> int:
        """Shortest slice the single-sensor module accepts: one sample left after every downsample."""
        return 2 ** (len(self.dims) - 1)

    def constructor_kwargs(self) -> dict:
        """The arguments that rebuild this configuration through either model's constructor."""
        kwargs = asdict(self)
        kwargs["sensors"] = list(self.sensors)
        return kwargs
