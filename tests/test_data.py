"""MHEALTH / HHAR readers on small fixture files written here in the data sets' exact formats."""
from __future__ import annotations

import numpy as np
import pytest

from umsnet_fast import presets
from umsnet_fast.har import DataFormatError, load_hhar, load_mhealth

from har_files import ACTIVITY_CODE, MHEALTH_RUNS, write_hhar, write_mhealth


def mhealth_windows_expected(window_s: float, step_s: float | None) -> dict[int, int]:
    """Windows per raw label in one subject: each run of n rows spans (n-1)/50 s, resampled to 64 Hz."""
    out = {}
    for lab, sec in MHEALTH_RUNS:
        m = int(np.floor((round(sec * 50) - 1) / 50 * 64 + 1e-9)) + 1
        length, step = round(window_s * 64), round((step_s or window_s) * 64)
        out[lab] = out.get(lab, 0) + (max(0, (m - length) // step + 1) if m >= length else 0)
    return out


@pytest.mark.parametrize("window_s,step_s", [(6.0, None), (1.5, None), (1.5, 0.5)])
def test_mhealth_windows(tmp_path, window_s, step_s):
    ds = load_mhealth(write_mhealth(tmp_path), window_seconds=window_s, step_seconds=step_s)
    k = round(window_s / 0.25)
    assert ds.num_slices == k and ds.sensors == presets.MHEALTH.sensors and ds.classes == presets.MHEALTH.classes
    assert [a.shape[1:] for a in ds.x] == [(s.channels, 16 * k) for s in presets.MHEALTH.sensors]
    assert all(a.dtype == np.float32 for a in ds.x)
    expected = mhealth_windows_expected(window_s, step_s)
    # null (0) and waist bends (6) dropped; raw 1, 4, 9 are classes 0, 3, 5
    assert ds.class_counts() == {c: 0 for c in ds.classes} | {
        "standing": 2 * expected[1], "walking": 2 * expected[4], "cycling": 2 * expected[9]}
    assert sorted(set(ds.subjects.tolist())) == [1, 2]
    raw = {0: 1, 3: 4, 5: 9}
    for i in range(len(ds)):
        ecg = ds.x[1][i, 0]
        # no window crosses a subject or a label change
        assert np.all(ecg == 100 * ds.subjects[i] + raw[int(ds.y[i])])
        # resampled to 64 Hz: the time channel steps by 1/64 s
        np.testing.assert_allclose(np.diff(ds.x[0][i, 0]), 1 / 64, atol=1e-5)
    # the step between consecutive windows of one run
    t0 = ds.x[0][:, 0, 0]
    same_run = (np.diff(ds.y) == 0) & (np.diff(ds.subjects) == 0)
    step = np.diff(t0)[same_run]
    np.testing.assert_allclose(step, step_s or window_s, atol=1e-4)


def test_mhealth_resampling_values(tmp_path):
    ds = load_mhealth(write_mhealth(tmp_path, subjects=(3,)), window_seconds=1.5)
    # chest_acc y = sin(t) at 50 Hz, linearly interpolated at 64 Hz: close to sin on the new grid
    t = ds.x[0][:, 0]
    np.testing.assert_allclose(ds.x[0][:, 1], np.sin(t), atol=2e-4)


@pytest.mark.parametrize("line,bad,message", [
    (5, lambda f: f[:-1], "expected 24 whitespace-separated columns, got 23"),
    (3, lambda f: f[:4] + ["abc"] + f[5:], "column 5: 'abc' is not a number"),
    (7, lambda f: f[:23] + ["13"], "label 13 is not an integer in 0..12"),
    (4, lambda f: f[:1] + ["nan"] + f[2:], "column 2: nan is not a finite number"),
    (6, lambda f: f[:7] + ["-inf"] + f[8:], "column 8: -inf is not a finite number"),
    (9, lambda f: f[:22] + ["Infinity", f[23]], "column 23: inf is not a finite number"),
])
def test_mhealth_malformed(tmp_path, line, bad, message):
    write_mhealth(tmp_path, subjects=(1,))
    assert_malformed(tmp_path / "mHealth_subject1.log", "\t", line, bad, message, load_mhealth)


def test_mhealth_line_numbers_count_blank_lines(tmp_path):
    path = write_mhealth(tmp_path, subjects=(1,)) / "mHealth_subject1.log"
    lines = path.read_text().splitlines()
    lines[5] = "\t".join(["nan"] + lines[5].split("\t")[1:])
    path.write_text("\n".join(lines[:2] + ["", "  "] + lines[2:]) + "\n")  # two blank lines before it
    with pytest.raises(DataFormatError, match=r"mHealth_subject1[.]log, line 8, column 1: nan is not a finite"):
        load_mhealth(tmp_path)


@pytest.mark.parametrize("dataset", ["mhealth", "hhar"])
def test_binary_file_names_the_file(tmp_path, dataset):
    if dataset == "mhealth":
        path, loader = write_mhealth(tmp_path, subjects=(1,)) / "mHealth_subject1.log", load_mhealth
    else:
        path, loader = write_hhar(tmp_path, users=("a",)) / "Phones_accelerometer.csv", load_hhar
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataFormatError, match=rf"{path.name.replace('.', '[.]')}: not a text file \(byte 128"):
        loader(tmp_path)


def assert_malformed(path, sep, line, edit, message, loader):
    """Rewrite one line of path with edit(fields), then loading its folder must name the file and line."""
    lines = path.read_text().splitlines()
    lines[line - 1] = sep.join(edit(lines[line - 1].split(sep)))
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=rf"{path.name.replace('.', '[.]')}, line {line}\b.*{message}"):
        loader(path.parent)


def test_mhealth_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mHealth_subject"):
        load_mhealth(tmp_path)
    (tmp_path / "mHealth_subject4.log").write_text("\n")
    with pytest.raises(DataFormatError, match=r"mHealth_subject4\.log: no rows"):
        load_mhealth(tmp_path)
    write_mhealth(tmp_path, subjects=(4,))
    with pytest.raises(ValueError, match="whole number of 0.25 s slices"):
        load_mhealth(tmp_path, window_seconds=1.1)
    with pytest.raises(ValueError, match="step_seconds must be > 0"):
        load_mhealth(tmp_path, step_seconds=0)


def test_hhar_windows_and_pairing(tmp_path):
    ds = load_hhar(write_hhar(tmp_path))
    assert ds.num_slices == 24 and ds.sensors == presets.HHAR.sensors and ds.classes == presets.HHAR.classes
    assert [a.shape[1:] for a in ds.x] == [(3, 600), (3, 600)]
    # per user and device: stand 8 s -> 1 window, sit 12.5 s -> 2; bike 3 s -> 0; walk split by the gap -> 0
    assert ds.class_counts() == {c: 0 for c in ds.classes} | {"stand": 6, "sit": 12}
    assert sorted(set(ds.devices.tolist())) == ["gear_1", "nexus4_1", "s3_1"]
    assert sorted(set(ds.subjects.tolist())) == ["a", "b"]
    for i in range(len(ds)):
        acc, gyro = ds.x[0][i], ds.x[1][i]
        # 100 Hz grid
        np.testing.assert_allclose(np.diff(acc[0].astype(np.float64)), 0.01, atol=2e-3)
        # accelerometer and gyroscope paired in time: gyro x = 2 * acc x at every grid point
        np.testing.assert_allclose(gyro[0], 2 * acc[0], rtol=1e-5, atol=2e-3)
        # one activity, one user
        code = ACTIVITY_CODE[ds.classes[ds.y[i]]]
        assert np.all(acc[1] == code) and np.all(gyro[1] == code)
        assert np.all(acc[2] == "ab".index(ds.subjects[i]))


def test_hhar_devices_and_step(tmp_path):
    write_hhar(tmp_path)
    watches = load_hhar(tmp_path, devices="watches")
    assert set(watches.devices.tolist()) == {"gear_1"} and len(watches) == 6
    overlapping = load_hhar(tmp_path, window_seconds=3.0, step_seconds=1.0, devices="phones")
    # 3 s windows every 1 s: stand (~8 s) -> 5 or 6, sit (~12.5 s) -> 9 or 10, bike (~3 s) -> 0 or 1,
    # walk pieces (~5 s) -> 2 or 3 each, per user and phone; the edges depend on the jittered timestamps
    counts = overlapping.class_counts()
    assert 4 * 5 <= counts["stand"] <= 4 * 6 and 4 * 9 <= counts["sit"] <= 4 * 10
    assert 4 * 4 <= counts["walk"] <= 4 * 6
    assert counts["bike"] <= 4
    assert overlapping.x[0].shape[1:] == (3, 300)


@pytest.mark.parametrize("line,edit,message", [
    (1, lambda cols: ["Index", "Time"] + cols[2:], "expected the header"),
    (4, lambda cols: cols[:-1], "expected 10 comma-separated columns, got 9"),
    (6, lambda cols: cols[:3] + ["x1"] + cols[4:], "column x 'x1' is not a finite number"),
    (5, lambda cols: cols[:5] + ["nan"] + cols[6:], "column z 'nan' is not a finite number"),
    (3, lambda cols: cols[:4] + ["-inf"] + cols[5:], "column y '-inf' is not a finite number"),
    (8, lambda cols: cols[:4] + [""] + cols[5:], "column y '' is not a finite number"),
    (9, lambda cols: cols[:2] + ["12.5"] + cols[3:], "column Creation_Time '12.5' is not an integer"),
    (7, lambda cols: cols[:9] + ["jump"], "unknown activity 'jump'"),
])
def test_hhar_malformed(tmp_path, line, edit, message):
    write_hhar(tmp_path, users=("a",))
    assert_malformed(tmp_path / "Watch_gyroscope.csv", ",", line, edit, message, load_hhar)


def test_hhar_missing_file(tmp_path):
    write_hhar(tmp_path, users=("a",))
    (tmp_path / "Phones_gyroscope.csv").unlink()
    with pytest.raises(FileNotFoundError, match="Phones_gyroscope.csv"):
        load_hhar(tmp_path)
    assert len(load_hhar(tmp_path, devices="watches")) == 3


def test_hhar_fast_and_exact_readers_agree(tmp_path):
    pytest.importorskip("pandas", reason="the fast HHAR reader uses pandas")
    from umsnet_fast.har.hhar import _read_hhar_csv, _read_hhar_csv_exact
    write_hhar(tmp_path)
    for name in ("Phones_accelerometer.csv", "Watch_gyroscope.csv"):
        fast, exact = (read(tmp_path / name, presets.HHAR.classes) for read in (_read_hhar_csv, _read_hhar_csv_exact))
        for key in ("time", "xyz", "user", "device", "label", "users", "devices"):
            np.testing.assert_array_equal(np.asarray(getattr(fast, key)), np.asarray(getattr(exact, key)), err_msg=key)
        assert (fast.label == -1).any()  # 'null' kept as its own code, not read as a missing value
