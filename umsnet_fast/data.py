"""Readers for the paper's data sets and for UEA BasicMotions: raw files -> windows of one label.

Nothing is downloaded: `load_mhealth` and `load_hhar` read a copy of the data set that the user
already has; `load_basicmotions` reads the copy that ships inside sktime (`pip install
'umsnet-fast[data]'`).

Every sensor is resampled by linear interpolation onto the preset's rate, and windows are cut inside
runs of one label of one subject (of one device for HHAR), so no window crosses a subject, a device,
a label change or a gap in the recording. The default step is the window length (no overlap).
"""
from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import SensorSpec
from .presets import BASICMOTIONS, HHAR, MHEALTH, DatasetPreset

__all__ = ["HARDataset", "DataFormatError", "load_mhealth", "load_hhar", "load_basicmotions", "load_dataset",
           "DATASETS", "MHEALTH_LABELS", "HHAR_FILES"]


class DataFormatError(ValueError):
    """A data file that does not have the documented format; the message names the file and line."""


@dataclass
class HARDataset:
    """Windows of a HAR data set, every sensor at the preset's rate.

    x:        one float32 array per sensor, in `sensors` order, each [N, C_i, T_i] with T_i = K * L_i
    y:        [N] int64 class indices into `classes`
    subjects: [N] subject of each window (MHEALTH: int 1..10, HHAR: user 'a'..'i', BasicMotions: -1)
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

    def subset(self, index) -> "HARDataset":
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


# --------------------------------------------------------------------------------------------------
# shared pieces


def _window_geometry(preset: DatasetPreset, window_seconds: float, step_seconds: float | None) -> tuple[int, int, int]:
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


def _resample(t: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of values [n, C] sampled at increasing times t [n] onto grid [m] -> [C, m]."""
    return np.stack([np.interp(grid, t, values[:, c]) for c in range(values.shape[1])]).astype(np.float32)


def _cut(signal: list[np.ndarray], length: int, step: int) -> list[np.ndarray]:
    """Windows of `length` samples every `step` samples of each [C_i, m] array -> [n_windows, C_i, length]."""
    m = signal[0].shape[1]
    starts = np.arange(0, m - length + 1, step) if m >= length else np.zeros(0, dtype=np.int64)
    return [np.stack([s[:, a:a + length] for a in starts]) if len(starts) else
            np.zeros((0, s.shape[0], length), np.float32) for s in signal]


def _runs(labels: np.ndarray, breaks: np.ndarray | None = None) -> list[tuple[int, int]]:
    """[start, stop) of each run of equal labels; `breaks` [n-1] marks extra cuts between i and i+1."""
    if len(labels) == 0:
        return []
    cut = labels[1:] != labels[:-1]
    if breaks is not None:
        cut |= breaks
    edges = np.concatenate([[0], np.flatnonzero(cut) + 1, [len(labels)]])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _assemble(name: str, preset: DatasetPreset, k: int, parts: list[tuple[list[np.ndarray], int, object, object]],
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


# --------------------------------------------------------------------------------------------------
# MHEALTH

MHEALTH_RATE_HZ = 50.0
MHEALTH_COLUMNS = 24
# Raw label -> the paper's 7 classes (standing, sitting, lying, walking, climbing stairs, cycling,
# jogging). 0 is the null class; 6-8 and 11-12 (waist bends, arm elevation, crouching, running,
# jumping) are not among the paper's classes and are dropped too.
MHEALTH_LABELS = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 9: 5, 10: 6}
# Columns of each preset sensor in the 24-column log (chest acc, ECG, ankle acc/gyro/mag, arm acc/gyro/mag).
_MHEALTH_SENSOR_COLUMNS = ((0, 3), (3, 5), (5, 8), (8, 11), (11, 14), (14, 17), (17, 20), (20, 23))
_MHEALTH_FILE = re.compile(r"^mHealth_subject(\d+)\.log$")


def _read_mhealth_log(path: Path) -> np.ndarray:
    """[n, 24] float64 rows of one mHealth_subject<N>.log; DataFormatError naming the file and line."""
    with open(path) as f:
        if not any(line.strip() for line in f):
            raise DataFormatError(f"{path}: no rows")
    try:
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        rows = None  # find the offending line below, for a message that names it
    if rows is None or rows.shape[1] != MHEALTH_COLUMNS:
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != MHEALTH_COLUMNS:
                    raise DataFormatError(f"{path}, line {lineno}: expected {MHEALTH_COLUMNS} whitespace-separated "
                                          f"columns, got {len(fields)}")
                for col, v in enumerate(fields, 1):
                    try:
                        float(v)
                    except ValueError:
                        raise DataFormatError(f"{path}, line {lineno}, column {col}: {v!r} is not a number") from None
        raise DataFormatError(f"{path}: could not be read as {MHEALTH_COLUMNS} numeric columns")
    labels = rows[:, -1]
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0) | (labels > 12))
    if len(bad):
        raise DataFormatError(f"{path}, line {bad[0] + 1}: label {labels[bad[0]]:g} is not an integer in 0..12")
    return rows


def load_mhealth(root, window_seconds: float = 6.0, step_seconds: float | None = None) -> HARDataset:
    """Windows of MHEALTH from the raw `mHealth_subject<N>.log` files in `root`.

    Each log has 24 whitespace-separated columns at 50 Hz (chest acc x/y/z, ECG leads 1 and 2, left-ankle
    acc, gyro, magnetometer, right-lower-arm acc, gyro, magnetometer, label). Every run of one label is
    resampled to 64 Hz (presets.MHEALTH) and cut into windows of `window_seconds` (6 s: K = 24 slices of
    16 samples) every `step_seconds` (default: the window length). The paper's 7 classes are kept.
    """
    root = Path(root)
    preset = MHEALTH
    k, length, step = _window_geometry(preset, window_seconds, step_seconds)
    files = sorted(((int(m.group(1)), p) for p in root.glob("mHealth_subject*.log")
                    if (m := _MHEALTH_FILE.match(p.name))), key=lambda sp: sp[0])
    if not files:
        raise FileNotFoundError(f"no mHealth_subject<N>.log files in {root}")
    parts = []
    for subject, path in files:
        rows = _read_mhealth_log(path)
        labels = rows[:, -1].astype(np.int64)
        for a, b in _runs(labels):
            cls = MHEALTH_LABELS.get(int(labels[a]))
            if cls is None or b - a < 2:
                continue
            t = np.arange(b - a) / MHEALTH_RATE_HZ
            grid = np.arange(int(np.floor(t[-1] * preset.sample_rate_hz + 1e-9)) + 1) / preset.sample_rate_hz
            signal = [_resample(t, rows[a:b, c0:c1], grid) for c0, c1 in _MHEALTH_SENSOR_COLUMNS]
            windows = _cut(signal, length, step)
            if len(windows[0]):
                parts.append((windows, cls, subject, None))
    return _assemble("mhealth", preset, k, parts, {"root": str(root), "window_seconds": window_seconds,
                                                   "step_seconds": step / preset.sample_rate_hz})


# --------------------------------------------------------------------------------------------------
# HHAR

HHAR_HEADER = ["Index", "Arrival_Time", "Creation_Time", "x", "y", "z", "User", "Model", "Device", "gt"]
# (accelerometer file, gyroscope file) per kind of device
HHAR_FILES = {"phones": ("Phones_accelerometer.csv", "Phones_gyroscope.csv"),
              "watches": ("Watch_accelerometer.csv", "Watch_gyroscope.csv")}
_HHAR_NULL = "null"
_CHUNK_ROWS = 1 << 20


@dataclass
class _Stream:
    """One HHAR file: times (Creation_Time, ns), x/y/z, and codes into the user/device/label tables."""

    time: np.ndarray
    xyz: np.ndarray
    user: np.ndarray
    device: np.ndarray
    label: np.ndarray
    users: list[str]
    devices: list[str]


def _column(values: list[str], dtype, path: Path, first_line: int, name: str) -> np.ndarray:
    """A column of one chunk as dtype; DataFormatError naming the line of a value that is not a finite number."""
    try:
        out = np.array(values).astype(dtype)
        if np.isfinite(out).all():
            return out
    except ValueError:
        pass
    for i, v in enumerate(values):
        try:
            ok = np.isfinite(np.array([v]).astype(dtype)).all()
        except ValueError:
            ok = False
        if not ok:
            kind = "an integer" if dtype == np.int64 else "a finite number"
            raise DataFormatError(f"{path}, line {first_line + i}: column {name} {v!r} is not {kind}")
    raise AssertionError("unreachable: a value failed as a column but not alone")


def _check_header(path: Path, header: list[str] | None) -> None:
    if header != HHAR_HEADER:
        raise DataFormatError(f"{path}, line 1: expected the header {','.join(HHAR_HEADER)}, got "
                              f"{'an empty file' if header is None else ','.join(header)}")


def _read_hhar_csv(path: Path, classes: tuple[str, ...]) -> _Stream:
    """One HHAR CSV. pandas' parser reads a well-formed file (the phone files have about 13M rows) about
    ten times faster than the csv module; anything it cannot read cleanly is read again line by line,
    for an error that names the line."""
    if not path.is_file():
        raise FileNotFoundError(f"HHAR file {path} not found")
    with open(path, newline="") as f:
        _check_header(path, next(csv.reader(f), None))
    try:
        import pandas as pd
    except ImportError:
        return _read_hhar_csv_exact(path, classes)
    try:
        df = pd.read_csv(path, usecols=[2, 3, 4, 5, 6, 8, 9], engine="c", keep_default_na=False, na_values=[""],
                         dtype={"Creation_Time": np.int64, "x": np.float64, "y": np.float64, "z": np.float64,
                                "User": str, "Device": str, "gt": str})
    except Exception:  # malformed somewhere: the exact reader says where
        return _read_hhar_csv_exact(path, classes)
    label = pd.Index([*classes, _HHAR_NULL]).get_indexer(df["gt"]).astype(np.int32)  # -1: unknown
    if (list(df.columns) != [HHAR_HEADER[i] for i in (2, 3, 4, 5, 6, 8, 9)] or len(df) == 0
            or df.isna().to_numpy().any() or (label < 0).any()):
        return _read_hhar_csv_exact(path, classes)
    label[label == len(classes)] = -1  # null
    user, users = pd.factorize(df["User"])
    device, devices = pd.factorize(df["Device"])
    return _Stream(df["Creation_Time"].to_numpy(np.int64), df[["x", "y", "z"]].to_numpy(np.float64),
                   user.astype(np.int32), device.astype(np.int32), label, list(users), list(devices))


def _read_hhar_csv_exact(path: Path, classes: tuple[str, ...]) -> _Stream:
    """One HHAR CSV through the csv module, in chunks, with an error naming the line of any malformed row."""
    label_code = {c: i for i, c in enumerate(classes)}
    label_code[_HHAR_NULL] = -1
    users: dict[str, int] = {}
    devices: dict[str, int] = {}
    cols = {k: [] for k in ("time", "xyz", "user", "device", "label")}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        _check_header(path, next(reader, None))
        line = 2
        while rows := list(itertools.islice(reader, _CHUNK_ROWS)):
            widths = list(map(len, rows))
            for i in ([] if widths.count(len(HHAR_HEADER)) == len(widths) else range(len(rows))):
                if widths[i] != len(HHAR_HEADER):
                    raise DataFormatError(f"{path}, line {line + i}: expected {len(HHAR_HEADER)} comma-separated "
                                          f"columns, got {widths[i]}")
            c = list(zip(*rows))
            cols["time"].append(_column(c[2], np.int64, path, line, "Creation_Time"))
            cols["xyz"].append(np.stack([_column(c[j], np.float64, path, line, HHAR_HEADER[j]) for j in (3, 4, 5)], 1))
            for key, table, j in (("user", users, 6), ("device", devices, 8)):
                cols[key].append(np.array([table.setdefault(v, len(table)) for v in c[j]], dtype=np.int32))
            try:
                cols["label"].append(np.array([label_code[v] for v in c[9]], dtype=np.int32))
            except KeyError as e:
                i = c[9].index(e.args[0])
                raise DataFormatError(f"{path}, line {line + i}: unknown activity {e.args[0]!r} in column gt; "
                                      f"expected one of {list(classes) + [_HHAR_NULL]}") from None
            line += len(rows)
    if not cols["time"]:
        raise DataFormatError(f"{path}: no rows after the header")
    return _Stream(*(np.concatenate(cols[k]) for k in ("time", "xyz", "user", "device", "label")),
                   list(users), list(devices))


def _label_runs(t: np.ndarray, label: np.ndarray, max_gap_ns: float) -> list[tuple[int, int]]:
    """Runs of one label (null dropped) in time-sorted samples, also cut where the gap exceeds max_gap_ns."""
    return [(a, b) for a, b in _runs(label, np.diff(t) > max_gap_ns) if label[a] >= 0 and b - a >= 2]


def _dedup(t: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated timestamps (first one kept) so the times increase strictly, as np.interp needs."""
    t, first = np.unique(t, return_index=True)
    return t, values[first]


def load_hhar(root, window_seconds: float = 6.0, step_seconds: float | None = None, *,
              devices: str = "all", max_gap_seconds: float = 1.0) -> HARDataset:
    """Windows of HHAR from its activity-recognition CSVs in `root`.

    Files: Phones_accelerometer.csv, Phones_gyroscope.csv, Watch_accelerometer.csv, Watch_gyroscope.csv
    (`devices`: "all", "phones" or "watches" picks which pairs are read), columns Index, Arrival_Time,
    Creation_Time, x, y, z, User, Model, Device, gt. Each device samples at its own uneven rate, so the
    accelerometer and gyroscope of one device are paired by Creation_Time (ns): on every interval where
    both streams of one user's device carry the same activity, with no gap over `max_gap_seconds`, both
    are interpolated onto one 100 Hz grid (presets.HHAR) and cut into windows. 'null' rows are dropped.
    """
    root = Path(root)
    if devices not in ("all", *HHAR_FILES):
        raise ValueError(f"devices must be 'all', 'phones' or 'watches', got {devices!r}")
    preset = HHAR
    k, length, step = _window_geometry(preset, window_seconds, step_seconds)
    max_gap_ns = max_gap_seconds * 1e9
    period_ns = 1e9 / preset.sample_rate_hz
    parts = []
    for kind, (acc_name, gyro_name) in HHAR_FILES.items():
        if devices not in ("all", kind):
            continue
        acc, gyro = (_read_hhar_csv(root / name, preset.classes) for name in (acc_name, gyro_name))
        for dev_name in acc.devices:
            if dev_name not in gyro.devices:
                continue
            for user_name in acc.users:
                if user_name not in gyro.users:
                    continue
                streams = []
                for s in (acc, gyro):
                    sel = np.flatnonzero((s.device == s.devices.index(dev_name)) & (s.user == s.users.index(user_name)))
                    sel = sel[np.argsort(s.time[sel], kind="stable")]
                    streams.append((s.time[sel], s.xyz[sel], s.label[sel]))
                (ta, xa, la), (tg, xg, lg) = streams
                if len(ta) == 0 or len(tg) == 0:
                    continue
                t0 = min(ta[0], tg[0])  # subtract before going to float: ns since 1970 lose digits in float64
                ta, tg = (ta - t0).astype(np.float64), (tg - t0).astype(np.float64)
                runs_g = _label_runs(tg, lg, max_gap_ns)
                j = 0
                for a, b in _label_runs(ta, la, max_gap_ns):
                    # intersect with the gyroscope runs of the same label (both lists are in time order)
                    while j < len(runs_g) and tg[runs_g[j][1] - 1] < ta[a]:
                        j += 1
                    for c, d in itertools.takewhile(lambda r: tg[r[0]] <= ta[b - 1], itertools.islice(runs_g, j, None)):
                        if lg[c] != la[a]:
                            continue
                        start, stop = max(ta[a], tg[c]), min(ta[b - 1], tg[d - 1])
                        if stop - start < (length - 1) * period_ns:
                            continue
                        grid = start + np.arange(int((stop - start) // period_ns) + 1) * period_ns
                        signal = [_resample(*_dedup(ta[a:b], xa[a:b]), grid), _resample(*_dedup(tg[c:d], xg[c:d]), grid)]
                        windows = _cut(signal, length, step)
                        if len(windows[0]):
                            parts.append((windows, int(la[a]), user_name, dev_name))
    return _assemble("hhar", preset, k, parts, {"root": str(root), "window_seconds": window_seconds,
                                                "step_seconds": step / preset.sample_rate_hz, "devices": devices})


# --------------------------------------------------------------------------------------------------
# UEA BasicMotions (ships inside sktime)


def load_basicmotions(split: str = "train") -> HARDataset:
    """UEA BasicMotions from the copy inside sktime: 40 windows per split, acc(3) + gyro(3) x 100 steps.

    Smartwatch recordings at 10 Hz of 4 activities; one window of 10 s is K = 10 slices of L = 10
    (presets.BASICMOTIONS). No subject ids: `subjects` is -1; use the fixed train/test split.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        from sktime.datasets import load_basic_motions
    except ImportError as e:
        raise ImportError("BasicMotions is read from the copy inside sktime: "
                          "pip install 'umsnet-fast[data]' (or pip install sktime)") from e
    x, labels = load_basic_motions(split=split, return_X_y=True, return_type="numpy3D")
    preset = BASICMOTIONS
    index = {c: i for i, c in enumerate(preset.classes)}
    y = np.array([index[str(v).lower()] for v in labels], dtype=np.int64)
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = round(x.shape[2] / preset.slice_length)
    xs = [np.ascontiguousarray(x[:, 0:3]), np.ascontiguousarray(x[:, 3:6])]
    return HARDataset("basicmotions", xs, y, np.full(len(y), -1), preset.classes, preset.sensors,
                      preset.sample_rate_hz, k, None, {"split": split})


DATASETS = ("basicmotions", "mhealth", "hhar")


def load_dataset(name: str, root=None, window_seconds: float = 6.0, step_seconds: float | None = None,
                 **kwargs) -> HARDataset | tuple[HARDataset, HARDataset]:
    """load_mhealth / load_hhar by name; for "basicmotions" the (train, test) pair."""
    if name == "basicmotions":
        return load_basicmotions("train"), load_basicmotions("test")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {list(DATASETS)}")
    if root is None:
        raise ValueError(f"{name} is read from your copy of its files: give its folder (--data-root)")
    loader = load_mhealth if name == "mhealth" else load_hhar
    return loader(root, window_seconds, step_seconds, **kwargs)
