"""The data sets by name: what `umsnet-fast train --dataset NAME` and `evaluate` load."""
from __future__ import annotations

from .basicmotions import load_basicmotions
from .dataset import HARDataset
from .hhar import load_hhar
from .mhealth import load_mhealth

__all__ = ["DATASETS", "load_dataset"]

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
