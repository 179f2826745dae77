"""MHEALTH: the raw `mHealth_subject<N>.log` files of the user's copy, resampled to 64 Hz (presets.MHEALTH)."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np

from ..presets import MHEALTH
from .dataset import (
    DataFormatError,
    HARDataset,
    Recording,
    assemble,
    cut_windows,
    first_non_finite,
    label_runs,
    read_columns,
    reading_text,
    resample,
    window_geometry,
)

__all__ = ["load_mhealth", "mhealth_recordings", "MHEALTH_LABELS"]

MHEALTH_RATE_HZ = 50.0
MHEALTH_COLUMNS = 24
# Raw label -> the paper's 7 classes (standing, sitting, lying, walking, climbing stairs, cycling,
# jogging). 0 is the null class; 6-8 and 11-12 (waist bends, arm elevation, crouching, running,
# jumping) are not among the paper's classes and are dropped too.
MHEALTH_LABELS = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 9: 5, 10: 6}
# Columns of each preset sensor in the 24-column log (chest acc, ECG, ankle acc/gyro/mag, arm acc/gyro/mag).
_MHEALTH_SENSOR_COLUMNS = ((0, 3), (3, 5), (5, 8), (8, 11), (11, 14), (14, 17), (17, 20), (20, 23))
_MHEALTH_FILE = re.compile(r"^mHealth_subject(\d+)\.log$")


def _line_of_row(path: Path, row: int) -> int:
    """The line number of data row `row` (0-based) of a log: np.loadtxt skips blank lines."""
    with open(path) as f:
        rows = (lineno for lineno, line in enumerate(f, 1) if line.strip())
        return next(itertools.islice(rows, row, None))


def _read_mhealth_log(path: Path) -> np.ndarray:
    """[n, 24] float64 rows of one mHealth_subject<N>.log; DataFormatError naming the file and line."""
    with reading_text(path):
        with open(path) as f:
            if not any(line.strip() for line in f):
                raise DataFormatError(f"{path}: no rows")
        try:
            rows = np.loadtxt(path, dtype=np.float64, ndmin=2, comments=None)
        except ValueError:
            rows = None  # find the offending line below, for a message that names it
    if rows is None or rows.shape[1] != MHEALTH_COLUMNS:
        read_columns(path, MHEALTH_COLUMNS, what="MHEALTH log")  # raises, naming the offending line and column
        raise DataFormatError(f"{path}: could not be read as {MHEALTH_COLUMNS} numeric columns")
    bad = first_non_finite(rows)  # float() reads 'nan' and 'inf': a reading that would train to NaN weights
    if bad is not None:
        raise DataFormatError(f"{path}, line {_line_of_row(path, bad[0])}, column {bad[1] + 1}: "
                              f"{rows[bad]:g} is not a finite number")
    labels = rows[:, -1]
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0) | (labels > 12))
    if len(bad):
        raise DataFormatError(f"{path}, line {_line_of_row(path, bad[0])}: label {labels[bad[0]]:g} is not an "
                              "integer in 0..12")
    return rows


def _mhealth_files(root: Path) -> list[tuple[int, Path]]:
    files = sorted(((int(m.group(1)), p) for p in root.glob("mHealth_subject*.log")
                    if (m := _MHEALTH_FILE.match(p.name))), key=lambda sp: sp[0])
    if not files:
        raise FileNotFoundError(f"no mHealth_subject<N>.log files in {root}")
    return files


def mhealth_recordings(root, subject) -> list[Recording]:
    """The whole log of one subject resampled to 64 Hz, unwindowed (one Recording); labels outside the
    paper's 7 classes are -1."""
    files = dict(_mhealth_files(Path(root)))
    try:
        path = files[int(subject)]
    except (KeyError, ValueError):
        raise ValueError(f"no MHEALTH subject {subject!r} in {root}; subjects: {sorted(files)}") from None
    rows = _read_mhealth_log(path)
    t = np.arange(len(rows)) / MHEALTH_RATE_HZ
    grid = np.arange(int(np.floor(t[-1] * MHEALTH.sample_rate_hz + 1e-9)) + 1) / MHEALTH.sample_rate_hz
    raw = rows[np.searchsorted(t, grid + 1e-9, side="right") - 1, -1].astype(np.int64)  # the label in force
    labels = np.array([MHEALTH_LABELS.get(int(v), -1) for v in raw], dtype=np.int64)
    signal = [resample(t, rows[:, c0:c1], grid) for c0, c1 in _MHEALTH_SENSOR_COLUMNS]
    return [Recording("mhealth", int(subject), None, signal, grid, labels, MHEALTH.classes, MHEALTH.sensors,
                      MHEALTH.sample_rate_hz)]


def load_mhealth(root, window_seconds: float = 6.0, step_seconds: float | None = None) -> HARDataset:
    """Windows of MHEALTH from the raw `mHealth_subject<N>.log` files in `root`.

    Each log has 24 whitespace-separated columns at 50 Hz (chest acc x/y/z, ECG leads 1 and 2, left-ankle
    acc, gyro, magnetometer, right-lower-arm acc, gyro, magnetometer, label). Every run of one label is
    resampled to 64 Hz (presets.MHEALTH) and cut into windows of `window_seconds` (6 s: K = 24 slices of
    16 samples) every `step_seconds` (default: the window length). The paper's 7 classes are kept.
    """
    root = Path(root)
    preset = MHEALTH
    k, length, step = window_geometry(preset, window_seconds, step_seconds)
    files = _mhealth_files(root)
    parts = []
    for subject, path in files:
        rows = _read_mhealth_log(path)
        labels = rows[:, -1].astype(np.int64)
        for a, b in label_runs(labels):
            cls = MHEALTH_LABELS.get(int(labels[a]))
            if cls is None or b - a < 2:
                continue
            t = np.arange(b - a) / MHEALTH_RATE_HZ
            grid = np.arange(int(np.floor(t[-1] * preset.sample_rate_hz + 1e-9)) + 1) / preset.sample_rate_hz
            signal = [resample(t, rows[a:b, c0:c1], grid) for c0, c1 in _MHEALTH_SENSOR_COLUMNS]
            windows = cut_windows(signal, length, step)
            if len(windows[0]):
                parts.append((windows, cls, subject, None))
    return assemble("mhealth", preset, k, parts, {"root": str(root), "window_seconds": window_seconds,
                                                   "step_seconds": step / preset.sample_rate_hz})
