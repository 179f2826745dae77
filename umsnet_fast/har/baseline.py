"""The MiniRocket baseline of `umsnet-fast train --baseline minirocket`: sktime's MiniRocketMultivariate
(10,000 kernels) + StandardScaler(with_mean=False) + scikit-learn's RidgeClassifierCV, the pipeline of
the MiniRocket paper, trained and tested on the same folds and windows as UMSNet.

All sensors are stacked as channels of one series (they share the window length in HHAR, HAPT and
BasicMotions); MiniRocket needs no standardisation of its input (its biases come from the data).
"""
from __future__ import annotations

import time

import numpy as np

from ._optional import require
from .dataset import HARDataset
from .train import fold_summary, scores

__all__ = ["BASELINES", "minirocket_fold", "run_baseline"]

BASELINES = ("minirocket",)


def _stack(ds: HARDataset) -> np.ndarray:
    lengths = {a.shape[2] for a in ds.x}
    if len(lengths) != 1:
        raise ValueError(f"MiniRocket takes one series per window: the sensors of {ds.name} have lengths "
                         f"{sorted(lengths)}")
    return np.concatenate(ds.x, axis=1).astype(np.float32)


def _minirocket_class():
    require("numba")
    try:
        from sktime.transformations.rocket import MiniRocketMultivariate
    except ImportError:  # sktime before 0.30
        from sktime.transformations.panel.rocket import MiniRocketMultivariate
    return MiniRocketMultivariate


def minirocket_fold(train_ds: HARDataset, test_ds: HARDataset, seed: int = 0, num_kernels: int = 10_000,
                    on_step=None) -> np.ndarray:
    """Predicted classes of test_ds from MiniRocket + ridge fitted on train_ds; on_step(name) after each step."""
    require("sktime")
    linear_model = require("sklearn.linear_model", "scikit-learn")
    preprocessing = require("sklearn.preprocessing", "scikit-learn")
    transform = _minirocket_class()(num_kernels=num_kernels, random_state=seed, n_jobs=-1)
    features = transform.fit_transform(_stack(train_ds))
    on_step and on_step("transform train")
    scaler = preprocessing.StandardScaler(with_mean=False)
    ridge = linear_model.RidgeClassifierCV(alphas=np.logspace(-3, 3, 10))
    ridge.fit(scaler.fit_transform(np.asarray(features)), train_ds.y)
    on_step and on_step("fit ridge")
    pred = ridge.predict(scaler.transform(np.asarray(transform.transform(_stack(test_ds)))))
    on_step and on_step("transform test")
    return np.asarray(pred, dtype=np.int64)


def run_baseline(name: str, train_sets: list[tuple[str, HARDataset, HARDataset]], seed: int = 0,
                 console=None, quiet: bool = False, num_kernels: int = 10_000) -> dict:
    """Metrics of the baseline per fold and averaged, in the layout of run_experiment's result."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {list(BASELINES)}")
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console()
    folds = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[step]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, disable=quiet) as progress:
        for fold_name, train_ds, test_ds in train_sets:
            t0 = time.perf_counter()
            task = progress.add_task(f"minirocket fold {fold_name}", total=3, step="transform train")
            steps = iter(("fit ridge", "transform test", "done"))

            def on_step(done, task=task, steps=steps, fold_name=fold_name, t0=t0):
                progress.update(task, advance=1, step=next(steps))
                if not quiet and not console.is_interactive:  # a log file: one line per step instead of a bar
                    console.print(f"minirocket fold {fold_name}: {done} done, {time.perf_counter() - t0:.0f} s")

            pred = minirocket_fold(train_ds, test_ds, seed, num_kernels, on_step=on_step)
            fold = {"fold": fold_name, "n_train": len(train_ds), "n_test": len(test_ds),
                    **scores(test_ds.y, pred, len(train_ds.classes)), "seconds": time.perf_counter() - t0}
            folds.append(fold)
            if not quiet:
                console.print(f"minirocket fold {fold_name}: accuracy {fold['accuracy']:.4f}  "
                              f"macro-F1 {fold['macro_f1']:.4f} ({fold['seconds']:.0f} s)")
    return {"name": name, "num_kernels": num_kernels, **fold_summary(folds)}
