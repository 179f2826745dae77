"""What every reader returns (`HARDataset`) and the steps they share: window geometry, resampling,
runs of one label, cutting windows, assembling the data set.

Every sensor is resampled by linear interpolation onto the preset's rate, and windows are cut inside
runs of one label of one subject (of one device for HHAR), so no window crosses a subject, a device,
a label change or a gap in the recording. The default step is the window length (no overlap).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import SensorSpec
from ..presets import DatasetPreset

__all__ = ["HARDataset", "Recording", "DataFormatError", "reading_text", "read_columns", "first_non_finite",
           "window_geometry", "resample", "cut_windows", "label_runs", "assemble"]


class DataFormatError(ValueError):
    """A data file that does not have the documented format; the message names the file and line."""


@contextmanager
def reading_text(path):
    """Around the reading of a text file: a binary (or otherwise undecodable) file becomes a
    DataFormatError naming the file, not a bare codec error."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not a text file (byte {e.start} cannot be decoded as {e.encoding}); "
                              "expected the data set's text format") from None


def read_columns(path: Path, ncols: int, *, integer: bool = False, finite: bool = False,
                 what: str = "file") -> np.ndarray:
    """[n, ncols] (int64 or float64) of a whitespace-separated text file, blank lines skipped; a
    DataFormatError naming the file, line and column of the first row that is not ncols numbers (with
    finite=True, also of a NaN or infinite reading)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    typ, kind = (int, "an integer") if integer else (float, "a number")
    rows = []
    with reading_text(path), open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != ncols:
                raise DataFormatError(f"{path}, line {lineno}: expected {ncols} whitespace-separated columns, "
                                      f"got {len(fields)}")
            values = []
            for col, v in enumerate(fields, 1):
                try:
                    values.append(typ(v))
                except ValueError:
                    raise DataFormatError(f"{path}, line {lineno}, column {col}: {v!r} is not {kind}") from None
            if finite and not all(np.isfinite(values)):
                raise DataFormatError(f"{path}, line {lineno}: a reading that is not finite ({line.strip()})")
            rows.append(values)
    if not rows:
        raise DataFormatError(f"{path}: no rows")
    return np.array(rows, dtype=np.int64 if integer else np.float64)


def first_non_finite(rows: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first NaN or infinite value of a 2-D array, or None."""
    bad = np.argwhere(~np.isfinite(rows))
    return (int(bad[0][0]), int(bad[0][1])) if len(bad) else None


@dataclass
class HARDataset:
    """Windows of a HAR data set, every sensor at the preset's rate.

    x:        one float32 array per sensor, in `sensors` order, each [N, C_i, T_i] with T_i = K * L_i
    y:        [N] int64 class indices into `classes`
    subjects: [N] subject of each window (MHEALTH: int 1..10, HAPT: int 1..30, HHAR: user 'a'..'i', BasicMotions: -1)
    devices:  [N] HHAR device of each window ('nexus4_1', ...); None for the other data sets
    """

    name: str
    x: list[np.ndarray]
    y: np.ndarray
    subjects: np.ndarray
    classes: tuple[str, ...]
    sensors: tuple[SensorSpec, ...]
    sample_rate_hz: float
    num_slices: int
    devices: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.y)
        for s, a in zip(self.sensors, self.x):
            if a.ndim != 3 or a.shape[0] != n or a.shape[1] != s.channels:
                raise ValueError(f"sensor {s.name!r}: expected [{n}, {s.channels}, T], got {list(a.shape)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index) -> HARDataset:
        """The windows at `index` (an index array or a boolean mask)."""
        index = np.asarray(index)
        return HARDataset(self.name, [a[index] for a in self.x], self.y[index], self.subjects[index],
                          self.classes, self.sensors, self.sample_rate_hz, self.num_slices,
                          None if self.devices is None else self.devices[index], dict(self.meta))

    def tensors(self, index=None) -> list[torch.Tensor]:
        """The windows (all, or those at `index`) as one float32 tensor per sensor, [n, C_i, T_i]."""
        return [torch.from_numpy(a if index is None else a[index]) for a in self.x]

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts)}


@dataclass
class Recording:
    """One continuous stretch of a recording before windowing, every sensor at the preset's rate.

    signal: one float32 array per sensor, in `sensors` order, each [C_i, m]
    time:   [m] seconds from the start of the subject's recording (or device's, for HHAR)
    labels: [m] int64 class index into `classes` per sample, -1 where the sample has none of them
    """

    name: str
    subject: object
    device: str | None
    signal: list[np.ndarray]
    time: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    sensors: tuple[SensorSpec, ...]
    sample_rate_hz: float


def window_geometry(preset: DatasetPreset, window_seconds: float, step_seconds: float | None) -> tuple[int, int, int]:
    """(K, window samples, step samples) at the preset's rate."""
    k = preset.num_slices_for(window_seconds)
    length = preset.window_length(k)
    if step_seconds is None:
        return k, length, length
    if not step_seconds > 0:
        raise ValueError(f"step_seconds must be > 0, got {step_seconds!r}")
    step = round(step_seconds * preset.sample_rate_hz)
    if step < 1 or abs(step - step_seconds * preset.sample_rate_hz) > 1e-6:
        raise ValueError(f"step_seconds={step_seconds} is not a whole number of samples at "
                         f"{preset.sample_rate_hz:g} Hz")
    return k, length, step


def resample(t: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of values [n, C] sampled at increasing times t [n] onto grid [m] -> [C, m]."""
    return np.stack([np.interp(grid, t, values[:, c]) for c in range(values.shape[1])]).astype(np.float32)


def cut_windows(signal: list[np.ndarray], length: int, step: int) -> list[np.ndarray]:
    """Windows of `length` samples every `step` samples of each [C_i, m] array -> [n_windows, C_i, length]."""
    m = signal[0].shape[1]
    starts = np.arange(0, m - length + 1, step) if m >= length else np.zeros(0, dtype=np.int64)
    return [np.stack([s[:, a:a + length] for a in starts]) if len(starts) else
            np.zeros((0, s.shape[0], length), np.float32) for s in signal]


def label_runs(labels: np.ndarray, breaks: np.ndarray | None = None) -> list[tuple[int, int]]:
    """[start, stop) of each run of equal labels; `breaks` [n-1] marks extra cuts between i and i+1."""
    if len(labels) == 0:
        return []
    cut = labels[1:] != labels[:-1]
    if breaks is not None:
        cut |= breaks
    edges = np.concatenate([[0], np.flatnonzero(cut) + 1, [len(labels)]])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def assemble(name: str, preset: DatasetPreset, k: int, parts: list[tuple[list[np.ndarray], int, object, object]],
              meta: dict) -> HARDataset:
    """parts: (per-sensor windows [n, C_i, T], class, subject, device) -> one HARDataset."""
    length = preset.window_length(k)
    xs = [np.concatenate([p[0][i] for p in parts]) if parts else np.zeros((0, s.channels, length), np.float32)
          for i, s in enumerate(preset.sensors)]
    counts = [len(p[0][0]) for p in parts]
    y = np.repeat(np.array([p[1] for p in parts], dtype=np.int64), counts)
    subjects = np.repeat(np.array([p[2] for p in parts]), counts) if parts else np.zeros(0, np.int64)
    devices = np.repeat(np.array([p[3] for p in parts]), counts) if parts and parts[0][3] is not None else None
    return HARDataset(name, xs, y, subjects, preset.classes, preset.sensors, preset.sample_rate_hz, k,
                      devices, meta)
