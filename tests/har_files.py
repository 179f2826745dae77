"""Small MHEALTH and HHAR files in the data sets' exact formats, for the reader and training tests."""
from __future__ import annotations

import numpy as np

from umsnet_fast.har.hhar import HHAR_FILES

# --------------------------------------------------------------------------------------------------
# MHEALTH fixture: 24 tab-separated columns at 50 Hz. Column 0 (chest acc x) is the time in seconds
# and column 3 (ECG lead 1) is 100 * subject + raw label, so every window shows where it came from.

# (raw label, seconds) per run; 0 = null, 6 = waist bends (not among the paper's 7 classes)
MHEALTH_RUNS = [(0, 1.0), (1, 7.0), (6, 6.5), (4, 13.0), (0, 1.0), (9, 5.0)]


def write_mhealth(root, subjects=(1, 2), runs=MHEALTH_RUNS):
    for subject in subjects:
        labels = np.concatenate([np.full(round(sec * 50), lab) for lab, sec in runs])
        t = np.arange(len(labels)) / 50.0
        rows = np.zeros((len(labels), 24))
        rows[:, 0] = t
        rows[:, 1] = np.sin(t)
        rows[:, 3] = 100 * subject + labels
        rows[:, 5:23] = np.arange(5, 23) * 0.5 + subject
        rows[:, 23] = labels
        with open(root / f"mHealth_subject{subject}.log", "w") as f:
            for r in rows:
                f.write("\t".join(f"{v:.6f}" for v in r[:23]) + f"\t{int(r[23])}\n")
    return root


# --------------------------------------------------------------------------------------------------
# HHAR fixture: uneven timestamps (ns, from a 2015 epoch value), each stream at its own rate. The
# accelerometer's x is the time in seconds and the gyroscope's x twice that, so a window whose
# gyroscope was paired at the wrong time shows it; y is a code of the activity, z of the user.

HHAR_BASE_NS = 1424696631913248572
# (activity, seconds) per (user, device); walk is interrupted by a 2 s gap in the recording
HHAR_RUNS = [("stand", 8.0), ("null", 2.0), ("sit", 12.5), ("bike", 3.0), ("walk", 5.0), ("GAP", 2.0), ("walk", 5.0)]
HHAR_DEVICES = {"phones": [("nexus4", "nexus4_1"), ("s3", "s3_1")], "watches": [("gear", "gear_1")]}
ACTIVITY_CODE = {"stand": 1, "sit": 2, "bike": 3, "walk": 4, "null": 0}


def _hhar_stream(rng, period_ms, jitter_ms, start_ns):
    t, rows = start_ns, []
    for act, sec in HHAR_RUNS:
        end = t + int(sec * 1e9)
        while t < end:
            if act != "GAP":
                rows.append((t, act))
            t += int((period_ms + rng.uniform(-jitter_ms, jitter_ms)) * 1e6)
    return rows


def write_hhar(root, users=("a", "b"), seed=0):
    rng = np.random.default_rng(seed)
    header = "Index,Arrival_Time,Creation_Time,x,y,z,User,Model,Device,gt\n"
    for kind, (acc_file, gyro_file) in HHAR_FILES.items():
        for fname, period, scale in ((acc_file, 5.0, 1.0), (gyro_file, 7.0, 2.0)):
            rows = []
            for u, user in enumerate(users):
                for d, (model, device) in enumerate(HHAR_DEVICES[kind]):
                    start = HHAR_BASE_NS + int(rng.uniform(0, 50e6)) + 10**12 * (u + 1) * (d + 1)
                    for t, act in _hhar_stream(rng, period, 1.5, start):
                        sec = (t - HHAR_BASE_NS) / 1e9
                        rows.append((t, f"{scale * sec:.9f}", ACTIVITY_CODE[act], u, user, model, device, act))
            rows.sort(key=lambda r: r[0])  # devices and users interleaved, as in the real files
            with open(root / fname, "w") as f:
                f.write(header)
                for i, (t, x, yv, zv, user, model, device, act) in enumerate(rows):
                    f.write(f"{i},{t // 10**6 + 3},{t},{x},{yv},{zv},{user},{model},{device},{act}\n")
    return root


# --------------------------------------------------------------------------------------------------
# HAPT fixture (the UCI layout): RawData/acc_expXX_userYY.txt and gyro_..., 3 space-separated columns
# at 50 Hz, and labels.txt (experiment, user, activity, first row, last row; rows 1-based, inclusive).
# acc x is the time in seconds, acc y the activity of the row (-1 unlabelled), acc z the user; gyro x is
# twice the time, gyro y the activity, gyro z the experiment.

# (activity or -1 for unlabelled, rows) per experiment: 1 walking, 4 sitting, 7 stand_to_sit
HAPT_RUNS = [(-1, 40), (1, 300), (-1, 30), (7, 150), (4, 200), (-1, 20), (4, 100)]
HAPT_EXPERIMENTS = [(1, 1), (2, 1), (3, 2)]  # (experiment, user)


def hapt_windows_expected(rows: int, length: int = 128, step: int = 64) -> int:
    return (rows - length) // step + 1 if rows >= length else 0


def write_hapt(root, experiments=HAPT_EXPERIMENTS, runs=HAPT_RUNS):
    raw = root / "RawData"
    raw.mkdir(parents=True, exist_ok=True)
    labels = []
    for exp, user in experiments:
        act = np.concatenate([np.full(n, a) for a, n in runs])
        t = np.arange(len(act)) / 50.0
        acc = np.stack([t, act, np.full(len(t), user)], axis=1)
        gyro = np.stack([2 * t, act, np.full(len(t), exp)], axis=1)
        for kind, values in (("acc", acc), ("gyro", gyro)):
            with open(raw / f"{kind}_exp{exp:02d}_user{user:02d}.txt", "w") as f:
                f.writelines(" ".join(f"{v:.8e}" for v in r) + "\n" for r in values)
        start = 1
        for a, n in runs:
            if a != -1:
                labels.append(f"{exp} {user} {a} {start} {start + n - 1}\n")
            start += n
    (raw / "labels.txt").write_text("".join(labels))
    return root
