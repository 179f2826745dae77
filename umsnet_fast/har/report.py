"""What `umsnet-fast train` shows and writes beside metrics.json: the comparison table of UMSNet and a
baseline, and the confusion matrices (summed over the folds) as a PNG (matplotlib, the [data] extra)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._optional import require

__all__ = ["comparison_table", "confusion_png", "summed_confusion"]


def summed_confusion(result: dict) -> np.ndarray:
    """[classes, classes] confusion matrix (rows true, columns predicted) summed over result's folds."""
    return np.sum([np.asarray(f["confusion_matrix"]) for f in result["folds"]], axis=0)


def comparison_table(title: str, rows: list[tuple[str, dict]]):
    """A rich Table: accuracy and macro-F1 (mean +- std over folds) and seconds of each (name, result)."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("model", "accuracy", "macro-F1", "folds", "seconds"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, r in rows:
        multi = len(r["folds"]) > 1
        table.add_row(name, f"{r['accuracy']:.4f}" + (f" ± {r['accuracy_std']:.4f}" if multi else ""),
                      f"{r['macro_f1']:.4f}" + (f" ± {r['macro_f1_std']:.4f}" if multi else ""),
                      str(len(r["folds"])), f"{sum(f['seconds'] for f in r['folds']):.0f}")
    return table


def confusion_png(path, classes: list[str], panels: list[tuple[str, dict]]) -> Path:
    """One confusion-matrix panel (counts, colour by row share) per (name, result); writes and returns path."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt

    path = Path(path)
    n = len(classes)
    size = 1.6 + 0.55 * n
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    for ax, (name, result) in zip(axes[0], panels, strict=True):
        cm = summed_confusion(result)
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
        ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
