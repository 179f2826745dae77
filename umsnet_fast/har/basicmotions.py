"""UEA BasicMotions, from the copy that ships inside sktime (`pip install 'umsnet-fast[data]'`)."""
from __future__ import annotations

import numpy as np

from ..presets import BASICMOTIONS
from .dataset import HARDataset

__all__ = ["load_basicmotions"]

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
