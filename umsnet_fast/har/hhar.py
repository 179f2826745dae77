"""HHAR: the activity-recognition CSVs of the user's copy, acc and gyro paired per device, at 100 Hz."""
from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..presets import HHAR
from .dataset import (
    DataFormatError,
    HARDataset,
    Recording,
    assemble,
    cut_windows,
    label_runs,
    reading_text,
    resample,
    window_geometry,
)

__all__ = ["load_hhar", "hhar_recordings", "HHAR_FILES", "HHAR_HEADER"]

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
    with reading_text(path), open(path, newline="") as f:
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
    xyz = df[["x", "y", "z"]].to_numpy(np.float64)
    if (list(df.columns) != [HHAR_HEADER[i] for i in (2, 3, 4, 5, 6, 8, 9)] or len(df) == 0
            or df.isna().to_numpy().any() or not np.isfinite(xyz).all() or (label < 0).any()):
        return _read_hhar_csv_exact(path, classes)
    label[label == len(classes)] = -1  # null
    user, users = pd.factorize(df["User"])
    device, devices = pd.factorize(df["Device"])
    return _Stream(df["Creation_Time"].to_numpy(np.int64), xyz,
                   user.astype(np.int32), device.astype(np.int32), label, list(users), list(devices))


def _read_hhar_csv_exact(path: Path, classes: tuple[str, ...]) -> _Stream:
    """One HHAR CSV through the csv module, in chunks, with an error naming the line of any malformed row."""
    label_code = {c: i for i, c in enumerate(classes)}
    label_code[_HHAR_NULL] = -1
    users: dict[str, int] = {}
    devices: dict[str, int] = {}
    cols = {k: [] for k in ("time", "xyz", "user", "device", "label")}
    with reading_text(path), open(path, newline="") as f:
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


def _activity_runs(t: np.ndarray, label: np.ndarray, max_gap_ns: float) -> list[tuple[int, int]]:
    """Runs of one label (null dropped) in time-sorted samples, also cut where the gap exceeds max_gap_ns."""
    return [(a, b) for a, b in label_runs(label, np.diff(t) > max_gap_ns) if label[a] >= 0 and b - a >= 2]


def _dedup(t: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated timestamps (first one kept) so the times increase strictly, as np.interp needs."""
    t, first = np.unique(t, return_index=True)
    return t, values[first]


@dataclass
class _Recording:
    """One sensor of one user's device, sorted by time: times in ns from a common origin (float64), x/y/z, labels."""

    time: np.ndarray
    xyz: np.ndarray
    label: np.ndarray


def _recordings(acc: _Stream, gyro: _Stream, dev_name: str, user_name: str) -> tuple[_Recording, _Recording] | None:
    """Step 1: the accelerometer and gyroscope samples of one user's device, time-sorted, on one time origin."""
    picked = []
    for s in (acc, gyro):
        sel = np.flatnonzero((s.device == s.devices.index(dev_name)) & (s.user == s.users.index(user_name)))
        sel = sel[np.argsort(s.time[sel], kind="stable")]
        picked.append((s.time[sel], s.xyz[sel], s.label[sel]))
    if len(picked[0][0]) == 0 or len(picked[1][0]) == 0:
        return None
    t0 = min(picked[0][0][0], picked[1][0][0])  # subtract before going to float: ns since 1970 lose digits
    return tuple(_Recording((t - t0).astype(np.float64), xyz, label) for t, xyz, label in picked)


def _paired_runs(a: _Recording, g: _Recording, max_gap_ns: float):
    """Step 2: (accelerometer run, gyroscope run) pairs of the same activity that overlap in time."""
    runs_g = _activity_runs(g.time, g.label, max_gap_ns)
    j = 0
    for ra in _activity_runs(a.time, a.label, max_gap_ns):
        # both lists are in time order: skip the gyroscope runs that end before this one starts
        while j < len(runs_g) and g.time[runs_g[j][1] - 1] < a.time[ra[0]]:
            j += 1
        for rg in itertools.takewhile(lambda r: g.time[r[0]] <= a.time[ra[1] - 1], itertools.islice(runs_g, j, None)):
            if g.label[rg[0]] == a.label[ra[0]]:
                yield ra, rg


def _windows_of_overlap(a: _Recording, ra, g: _Recording, rg, length: int, step: int,
                        period_ns: float) -> list[np.ndarray] | None:
    """Step 3: both runs interpolated onto one grid over their overlap, cut into windows (None if too short)."""
    (i, j), (p, q) = ra, rg
    start, stop = max(a.time[i], g.time[p]), min(a.time[j - 1], g.time[q - 1])
    if stop - start < (length - 1) * period_ns:
        return None
    grid = start + np.arange(int((stop - start) // period_ns) + 1) * period_ns
    signal = [resample(*_dedup(a.time[i:j], a.xyz[i:j]), grid), resample(*_dedup(g.time[p:q], g.xyz[p:q]), grid)]
    windows = cut_windows(signal, length, step)
    return windows if len(windows[0]) else None


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
    k, length, step = window_geometry(preset, window_seconds, step_seconds)
    max_gap_ns = max_gap_seconds * 1e9
    period_ns = 1e9 / preset.sample_rate_hz
    parts = []
    for kind, (acc_name, gyro_name) in HHAR_FILES.items():
        if devices not in ("all", kind):
            continue
        acc, gyro = (_read_hhar_csv(root / name, preset.classes) for name in (acc_name, gyro_name))
        for dev_name in (d for d in acc.devices if d in gyro.devices):
            for user_name in (u for u in acc.users if u in gyro.users):
                recordings = _recordings(acc, gyro, dev_name, user_name)
                if recordings is None:
                    continue
                a, g = recordings
                for ra, rg in _paired_runs(a, g, max_gap_ns):
                    windows = _windows_of_overlap(a, ra, g, rg, length, step, period_ns)
                    if windows is not None:
                        parts.append((windows, int(a.label[ra[0]]), user_name, dev_name))
    return assemble("hhar", preset, k, parts, {"root": str(root), "window_seconds": window_seconds,
                                               "step_seconds": step / preset.sample_rate_hz, "devices": devices})


def _covered(t: np.ndarray, max_gap_ns: float) -> list[tuple[float, float]]:
    """[start, stop] time intervals of time-sorted samples t with no gap over max_gap_ns."""
    return [(t[a], t[b - 1]) for a, b in label_runs(np.zeros(len(t)), np.diff(t) > max_gap_ns) if b - a >= 2]


def hhar_recordings(root, subject: str, devices: str = "all", max_gap_seconds: float = 1.0) -> list[Recording]:
    """The unwindowed recordings of one user at 100 Hz: per device, one Recording per stretch where both
    its accelerometer and gyroscope record with no gap over max_gap_seconds. Labels (the accelerometer's
    'gt', 'null' -> -1) are those in force at each grid time; times are seconds from the device's start."""
    root = Path(root)
    if devices not in ("all", *HHAR_FILES):
        raise ValueError(f"devices must be 'all', 'phones' or 'watches', got {devices!r}")
    preset, max_gap_ns = HHAR, max_gap_seconds * 1e9
    period_ns = 1e9 / preset.sample_rate_hz
    out, users = [], set()
    for kind, (acc_name, gyro_name) in HHAR_FILES.items():
        if devices not in ("all", kind):
            continue
        acc, gyro = (_read_hhar_csv(root / name, preset.classes) for name in (acc_name, gyro_name))
        users.update(u for u in acc.users if u in gyro.users)
        if subject not in acc.users or subject not in gyro.users:
            continue
        for dev_name in (d for d in acc.devices if d in gyro.devices):
            recordings = _recordings(acc, gyro, dev_name, subject)
            if recordings is None:
                continue
            a, g = recordings
            for sa, ea in _covered(a.time, max_gap_ns):
                for sg, eg in _covered(g.time, max_gap_ns):
                    start, stop = max(sa, sg), min(ea, eg)
                    if stop - start < period_ns:
                        continue
                    grid = start + np.arange(int((stop - start) // period_ns) + 1) * period_ns
                    signal = [resample(*_dedup(r.time, r.xyz), grid) for r in (a, g)]
                    labels = a.label[np.searchsorted(a.time, grid, side="right") - 1].astype(np.int64)
                    out.append(Recording("hhar", subject, dev_name, signal, grid / 1e9, labels, preset.classes,
                                         preset.sensors, preset.sample_rate_hz))
    if not out:
        raise ValueError(f"no HHAR recordings of user {subject!r} in {root}; users: {sorted(users)}")
    return sorted(out, key=lambda r: (r.device, r.time[0]))
