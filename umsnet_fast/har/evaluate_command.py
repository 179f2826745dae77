"""`umsnet-fast evaluate`: accuracy and macro-F1 of a checkpoint, run by the fast model in eval mode."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..backends import resolve_backend
from ..cli import CommandError, int_at_least, torch_device
from .checkpoint import CheckpointError, load_checkpoint
from .train import normalize, predict, scores
from .train_command import add_data_arguments, data_settings, load_from_settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, metavar="FILE",
                   help="a .safetensors file written by `umsnet-fast train --output`")
    add_data_arguments(p, required=False)
    p.add_argument("--subjects", type=lambda s: s.split(","), default=None, metavar="S1,S2",
                   help="evaluate on these subjects (default: the checkpoint's test subjects; 'all' for every one)")
    p.add_argument("--backend", default="auto", help="fast-model backend (default auto)")
    p.add_argument("--device", default="cpu", type=torch_device, help="torch device (default cpu)")
    p.add_argument("--batch-size", type=int_at_least(1), default=256)
    p.add_argument("--output", type=Path, metavar="DIR", help="write metrics.json here")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    try:  # the checkpoint's weights are fp32
        resolve_backend(args.backend, torch.device(args.device), torch.float32)
    except (RuntimeError, ValueError) as e:
        raise CommandError(f"--backend {args.backend}: {e}") from None
    try:
        model, meta = load_checkpoint(args.checkpoint, fast=True, backend=args.backend, device=args.device)
    except ImportError as e:
        raise CommandError(str(e)) from None
    except CheckpointError as e:
        raise CommandError(str(e)) from None
    missing = [k for k in ("classes", "normalization") if k not in meta]
    if missing:
        raise CommandError(f"{args.checkpoint}: its metadata lacks {missing} (written by `umsnet-fast train`?)")
    # the data set and its windowing come from the checkpoint unless given here
    info = data_settings(args) if args.dataset is not None else dict(meta.get("data", {}))
    if "dataset" not in info:
        raise SystemExit(f"{args.checkpoint} does not say which data set it was trained on: give --dataset")
    try:
        data = load_from_settings(info)
    except (OSError, ValueError) as e:
        raise SystemExit(str(e)) from None
    if info["dataset"] == "basicmotions":
        if args.subjects:
            raise SystemExit("BasicMotions has no subject ids: it is evaluated on its test split")
        ds = data[1]
    else:
        ds = data
        subjects = args.subjects or meta.get("test_subjects")
        if subjects and subjects != ["all"]:
            keep = np.isin(np.asarray([str(s) for s in ds.subjects]), subjects)
            if not keep.any():
                raise SystemExit(f"no windows of subjects {subjects} in {info.get('root')}")
            ds = ds.subset(np.flatnonzero(keep))
    if list(ds.classes) != list(meta["classes"]):
        raise SystemExit(f"the checkpoint's classes {meta['classes']} differ from the data set's {list(ds.classes)}")
    if ds.num_slices != model.config.num_slices:
        raise SystemExit(f"the checkpoint takes K={model.config.num_slices} slices, the data set's windows have "
                         f"K={ds.num_slices}: use the --window-seconds it was trained with")
    try:
        x = normalize(ds.x, ds.sensors, meta["normalization"])
    except (KeyError, TypeError, ValueError) as e:
        raise CommandError(f"{args.checkpoint}: its normalization does not cover sensors "
                           f"{[s.name for s in ds.sensors]} ({type(e).__name__}: {e})") from None
    t0 = time.perf_counter()
    pred = predict(model, x, args.batch_size, args.device)
    seconds = time.perf_counter() - t0
    result = {"checkpoint": str(args.checkpoint), "backend": model.active_backend(args.device),
              "n": len(ds), "subjects": sorted({str(s) for s in ds.subjects}), "data": info,
              **scores(ds.y, pred, len(ds.classes)), "seconds": seconds}

    table = Table(title=f"{args.checkpoint.name} on {info['dataset']} ({len(ds)} windows, backend "
                        f"{result['backend']}, {seconds:.2f} s)")
    table.add_column("true \\ predicted")
    for c in ds.classes:
        table.add_column(c, justify="right")
    for c, row in zip(ds.classes, result["confusion_matrix"]):
        table.add_row(c, *map(str, row))
    console.print(table)
    console.print(f"[bold]accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}[/]")
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "metrics.json").write_text(json.dumps(result, indent=1))
        console.print(f"wrote {args.output / 'metrics.json'}")
    return 0
