"""Training and evaluation of UMSNet on HAR windows, and the `umsnet-fast train` command.

Leave-one-subject-out folds (scikit-learn's LeaveOneGroupOut) or a fixed split; AdamW with a linear
warm-up then a cosine schedule; stochastic depth; per-channel standardisation fitted on the training
split only; accuracy and macro-F1 per fold and averaged over folds (the paper's metrics). Checkpoints
are safetensors of the state_dict plus a JSON sidecar (constructor arguments, classes, normalisation,
data settings) that `load_checkpoint` turns back into either model.

Needs scikit-learn and safetensors (`pip install 'umsnet-fast[data]'`); they are imported lazily so that
the core package does not need them.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import reference
from .config import VARIANTS, SensorSpec
from .data import DATASETS, HARDataset, load_dataset
from .model import UMSNet

__all__ = ["TrainSettings", "DATASET_DEFAULTS", "fit_normalization", "normalize", "train_model", "predict",
           "scores", "save_checkpoint", "load_checkpoint", "make_folds", "run_experiment"]

CHECKPOINT_FORMAT = "umsnet-fast-checkpoint/1"


def require(module: str, package: str | None = None):
    """Import an optional dependency, or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is needed for training and evaluation: pip install 'umsnet-fast[data]' "
                          f"(or pip install {package or module})") from e


@dataclass
class TrainSettings:
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    drop_path_rate: float = 0.1
    label_smoothing: float = 0.1
    # per-window, per-channel amplitude scaling N(1, augment_scale) and additive noise N(0, augment_noise)
    # on the standardised signal; 0 turns them off
    augment_scale: float = 0.0
    augment_noise: float = 0.0
    seed: int = 0
    device: str = "cpu"


# Defaults per data set (the paper gives none). BasicMotions' were tuned here on CPU; the MHEALTH and
# HHAR ones are plain starting points.
DATASET_DEFAULTS = {
    "basicmotions": dict(epochs=40, batch_size=8, lr=1e-3, warmup_epochs=2.0, augment_scale=0.1, augment_noise=0.05),
    "mhealth": dict(epochs=30, batch_size=64, lr=1e-3),
    "hhar": dict(epochs=30, batch_size=64, lr=1e-3),
}


# --------------------------------------------------------------------------------------------------
# normalisation


def fit_normalization(ds: HARDataset) -> dict[str, dict[str, list[float]]]:
    """Per-sensor, per-channel mean and std over the windows of ds (the training split)."""
    out = {}
    for s, a in zip(ds.sensors, ds.x):
        a64 = a.astype(np.float64)
        mean = a64.mean(axis=(0, 2))
        std = a64.std(axis=(0, 2))
        out[s.name] = {"mean": mean.tolist(), "std": np.where(std > 1e-8, std, 1.0).tolist()}
    return out


def normalize(xs: list[np.ndarray], sensors, norm: dict) -> list[np.ndarray]:
    """Standardise each sensor's [N, C_i, T_i] array with the statistics of fit_normalization."""
    out = []
    for s, a in zip(sensors, xs):
        name = s.name if isinstance(s, SensorSpec) else s
        mean = np.asarray(norm[name]["mean"], np.float32)[None, :, None]
        std = np.asarray(norm[name]["std"], np.float32)[None, :, None]
        out.append(((a - mean) / std).astype(np.float32))
    return out


# --------------------------------------------------------------------------------------------------
# training and prediction


def _lr_schedule(optimizer, total_steps: int, warmup_steps: int):
    """Linear warm-up from lr/100 over warmup_steps, then a cosine decay to 0 over the rest."""
    sched = torch.optim.lr_scheduler
    cosine = sched.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1))
    if warmup_steps <= 0:
        return cosine
    warmup = sched.LinearLR(optimizer, start_factor=0.01, end_factor=1.0, total_iters=warmup_steps)
    return sched.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:  # BatchNorm cannot train on one window
        batches.pop()
    return batches


def train_model(model: reference.UMSNet, xs: list[np.ndarray], y: np.ndarray, settings: TrainSettings,
                on_epoch=None) -> reference.UMSNet:
    """Train model in place on standardised windows xs (per sensor [N, C_i, T_i]) with labels y [N].

    on_epoch(epoch, mean_loss) is called after every epoch (for a progress display).
    """
    device = torch.device(settings.device)
    model.to(device).train()
    data = [torch.from_numpy(a).to(device) for a in xs]
    target = torch.from_numpy(y).to(device)
    g = torch.Generator().manual_seed(settings.seed)
    aug = torch.Generator(device=device).manual_seed(settings.seed + 1)
    steps_per_epoch = len(_batches(len(y), settings.batch_size, torch.Generator().manual_seed(0)))
    # no weight decay on norms, biases, LayerScale, tokens (as ConvNeXt and ViT train)
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() > 1 and n not in ("cls_token", "pos_embed")]
    no_decay = [p for n, p in named if not (p.dim() > 1 and n not in ("cls_token", "pos_embed"))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)
    total = settings.epochs * steps_per_epoch
    scheduler = _lr_schedule(optimizer, total, min(round(settings.warmup_epochs * steps_per_epoch), total - 1))
    for epoch in range(settings.epochs):
        losses = []
        for idx in _batches(len(y), settings.batch_size, g):
            idx = idx.to(device)
            batch = [d[idx] for d in data]
            if settings.augment_scale or settings.augment_noise:
                batch = [b * (1 + settings.augment_scale * torch.randn(b.shape[0], b.shape[1], 1, generator=aug,
                                                                       device=device))
                         + settings.augment_noise * torch.randn(b.shape, generator=aug, device=device)
                         for b in batch]
            loss = F.cross_entropy(model(batch), target[idx], label_smoothing=settings.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        if on_epoch is not None:
            on_epoch(epoch, float(np.mean(losses)))
    return model.eval()


@torch.no_grad()
def predict(model: reference.UMSNet, xs: list[np.ndarray], batch_size: int = 256, device="cpu") -> np.ndarray:
    """Class index per window of standardised xs, from model in eval mode (the fast model's kernels)."""
    model.eval()
    n = len(xs[0])
    out = []
    for a in range(0, n, batch_size):
        out.append(model([torch.from_numpy(x[a:a + batch_size]).to(device) for x in xs]).argmax(-1).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, macro-F1 (over the classes present in y_true or y_pred) and the confusion matrix."""
    metrics = require("sklearn.metrics", "scikit-learn")
    return {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "macro_f1": float(metrics.f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, labels=list(range(num_classes))).tolist(),
    }


# --------------------------------------------------------------------------------------------------
# checkpoints


def _jsonable_kwargs(model: reference.UMSNet) -> dict:
    kwargs = model.config.constructor_kwargs()
    kwargs["sensors"] = [[s.name, s.channels] for s in model.config.sensors]
    return {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}


def save_checkpoint(path, model: reference.UMSNet, meta: dict) -> Path:
    """path.safetensors (the state_dict) + path.json (constructor kwargs and meta). Returns the .safetensors path."""
    st = require("safetensors.torch", "safetensors")
    path = Path(path).with_suffix(".safetensors")
    info = {"format": CHECKPOINT_FORMAT, "model": _jsonable_kwargs(model), **meta}
    text = json.dumps(info, indent=1)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    st.save_file(state, str(path), metadata={"umsnet_fast": text})  # the file alone is self-describing too
    path.with_suffix(".json").write_text(text)
    return path


def load_checkpoint(path, fast: bool = True, backend: str = "auto", device="cpu"):
    """(model in eval mode, metadata) from a checkpoint of save_checkpoint.

    fast: umsnet_fast.UMSNet (with `backend`) if True, else umsnet_fast.reference.UMSNet. The
    state_dict is loaded strictly.
    """
    st = require("safetensors.torch", "safetensors")
    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text())
    else:
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            text = (f.metadata() or {}).get("umsnet_fast")
        if text is None:
            raise ValueError(f"{path}: no {sidecar.name} beside it and no umsnet_fast metadata inside")
        meta = json.loads(text)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    kwargs = dict(meta["model"])
    kwargs["sensors"] = [SensorSpec(n, c) for n, c in kwargs["sensors"]]
    model = UMSNet(**kwargs, backend=backend) if fast else reference.UMSNet(**kwargs)
    model.load_state_dict(st.load_file(str(path)), strict=True)
    return model.to(device).eval(), meta


# --------------------------------------------------------------------------------------------------
# folds and the experiment


def make_folds(ds: HARDataset, split: str, test_subjects=None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, train index, test index) per fold.

    split "loso": one fold per subject (LeaveOneGroupOut), only those in test_subjects if given;
    split "fixed": one fold testing on test_subjects (all of them at once).
    """
    subjects = np.asarray([str(s) for s in ds.subjects])
    known = sorted(set(subjects.tolist()))
    wanted = None if test_subjects is None else [str(s) for s in test_subjects]
    if wanted is not None:
        unknown = [s for s in wanted if s not in known]
        if unknown:
            raise ValueError(f"test subjects {unknown} not in the data set (subjects: {known})")
    if split == "fixed":
        if not wanted:
            raise ValueError("a fixed split needs test subjects (--test-subjects)")
        test = np.isin(subjects, wanted)
        return [("+".join(wanted), np.flatnonzero(~test), np.flatnonzero(test))]
    if split != "loso":
        raise ValueError(f"split must be 'loso' or 'fixed', got {split!r}")
    if len(known) < 2:
        raise ValueError(f"leave-one-subject-out needs at least 2 subjects, the data set has {known}")
    model_selection = require("sklearn.model_selection", "scikit-learn")
    folds = []
    for train, test in model_selection.LeaveOneGroupOut().split(subjects, ds.y, groups=subjects):
        name = subjects[test[0]]
        if wanted is None or name in wanted:
            folds.append((name, train, test))
    return folds


def run_experiment(train_sets: list[tuple[str, HARDataset, HARDataset]], model_kwargs: dict,
                   settings: TrainSettings, output: Path | None = None, data_info: dict | None = None,
                   console=None, quiet: bool = False) -> dict:
    """Train and test one model per (name, train split, test split); metrics per fold and averaged."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console()
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    folds = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
               TimeElapsedColumn(), TextColumn("loss {task.fields[loss]}"))
    with Progress(*columns, console=console, disable=quiet) as progress:
        for name, train_ds, test_ds in train_sets:
            t0 = time.perf_counter()
            norm = fit_normalization(train_ds)
            task = progress.add_task(f"fold {name}", total=settings.epochs, loss="-")
            torch.manual_seed(settings.seed)
            model = UMSNet(**model_kwargs, num_slices=train_ds.num_slices)
            train_model(model, normalize(train_ds.x, train_ds.sensors, norm), train_ds.y, settings,
                        on_epoch=lambda e, loss: progress.update(task, completed=e + 1, loss=f"{loss:.4f}"))
            pred = predict(model, normalize(test_ds.x, test_ds.sensors, norm), device=settings.device)
            fold = {"fold": name, "test_subjects": sorted({str(s) for s in test_ds.subjects}),
                    "n_train": len(train_ds), "n_test": len(test_ds),
                    **scores(test_ds.y, pred, len(train_ds.classes)), "seconds": time.perf_counter() - t0}
            if output is not None:
                meta = {"classes": list(train_ds.classes), "normalization": norm, "data": data_info or {},
                        "test_subjects": fold["test_subjects"], "train": asdict(settings)}
                fold["checkpoint"] = save_checkpoint(output / f"fold-{name}", model, meta).name
            folds.append(fold)
            if not quiet:
                console.print(f"fold {name}: accuracy {fold['accuracy']:.4f}  macro-F1 {fold['macro_f1']:.4f}  "
                              f"({fold['n_test']} test windows, {fold['seconds']:.0f} s)")
    acc = [f["accuracy"] for f in folds]
    f1 = [f["macro_f1"] for f in folds]
    result = {"accuracy": float(np.mean(acc)), "macro_f1": float(np.mean(f1)),
              "accuracy_std": float(np.std(acc)), "macro_f1_std": float(np.std(f1)),
              "folds": folds, "classes": list(train_sets[0][1].classes), "data": data_info or {},
              "model": {k: v for k, v in model_kwargs.items() if k != "sensors"}, "train": asdict(settings)}
    if output is not None:
        (output / "metrics.json").write_text(json.dumps(result, indent=1))
    return result


# --------------------------------------------------------------------------------------------------
# CLI: umsnet-fast train


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None


def add_data_arguments(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", choices=DATASETS, required=required, help="data set")
    p.add_argument("--data-root", type=Path, metavar="DIR",
                   help="folder with your copy of the MHEALTH logs or the HHAR CSVs (BasicMotions ships with sktime)")
    p.add_argument("--window-seconds", type=float, default=None, help="window length (MHEALTH/HHAR; default 6 s: K=24)")
    p.add_argument("--step-seconds", type=float, default=None, help="step between windows (default: the window length)")
    p.add_argument("--devices", choices=("all", "phones", "watches"), default=None, help="HHAR devices (default all)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)
    p.add_argument("--split", choices=("loso", "fixed"), default=None,
                   help="leave-one-subject-out folds (default for MHEALTH/HHAR) or one fixed split "
                        "(BasicMotions: its train/test split)")
    p.add_argument("--test-subjects", type=lambda s: s.split(","), default=None, metavar="S1,S2",
                   help="fixed split: the test subjects; loso: run only these subjects' folds")
    p.add_argument("--variant", default="A", type=str.upper, choices=sorted(VARIANTS), help="UMSNet variant (default A)")
    p.add_argument("--output", type=Path, metavar="DIR", help="write metrics.json and the checkpoints here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    g = p.add_argument_group("optimisation (defaults depend on --dataset)")
    for name, typ in (("epochs", int), ("batch-size", int), ("lr", float), ("weight-decay", float),
                      ("warmup-epochs", float), ("drop-path", float), ("label-smoothing", float),
                      ("augment-scale", float), ("augment-noise", float)):
        g.add_argument(f"--{name}", type=typ, default=None)
    g.add_argument("--layer-scale-init", type=float, default=1e-6, help="LayerScale gamma at init (default 1e-6)")
    a = p.add_argument_group("architecture overrides (default: the variant's)")
    a.add_argument("--dims", type=_ints)
    a.add_argument("--fusion-dims", type=_ints)
    a.add_argument("--depths", type=_ints)
    a.add_argument("--fusion-depths", type=_ints)
    a.add_argument("--layers", type=int, dest="num_layers")
    a.add_argument("--embed-dim", type=int)
    a.add_argument("--heads", type=int, dest="num_heads")
    a.add_argument("--mlp-dim", type=int)


def data_settings(args: argparse.Namespace) -> dict:
    """What load_dataset needs, from the CLI arguments (stored in checkpoints for `evaluate`)."""
    info = {"dataset": args.dataset}
    if args.dataset != "basicmotions":
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


def load_from_settings(info: dict):
    kwargs = {k: info[k] for k in ("root", "window_seconds", "step_seconds", "devices") if k in info}
    return load_dataset(info["dataset"], **kwargs)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    try:
        require("sklearn.metrics", "scikit-learn")
        require("safetensors.torch", "safetensors")
    except ImportError as e:
        raise SystemExit(str(e)) from None
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
                            ("augment_scale", "augment_scale"), ("augment_noise", "augment_noise")):
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
        split = args.split or "loso"
        try:
            folds = make_folds(ds, split, args.test_subjects)
        except ValueError as e:
            raise SystemExit(str(e)) from None
        sets = [(name, ds.subset(tr), ds.subset(te)) for name, tr, te in folds]
    model_kwargs = {"sensors": list(ds.sensors), "num_classes": len(ds.classes), "variant": args.variant,
                    "layer_scale_init": args.layer_scale_init, "drop_path_rate": settings.drop_path_rate}
    for k in ("dims", "fusion_dims", "depths", "fusion_depths", "num_layers", "embed_dim", "num_heads", "mlp_dim"):
        if getattr(args, k) is not None:
            model_kwargs[k] = getattr(args, k)
    console.print(f"{args.dataset}: {len(sets)} fold(s), UMSNet-{args.variant}, K={ds.num_slices}, "
                  f"{settings.epochs} epochs, batch {settings.batch_size}, lr {settings.lr:g}, "
                  f"{torch.get_num_threads()} threads on {settings.device}")
    t0 = time.perf_counter()
    result = run_experiment(sets, model_kwargs, settings, args.output, info, console, args.quiet)
    console.print(f"[bold]{args.dataset}: accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}"
                  f"[/] (mean of {len(result['folds'])} fold(s), {time.perf_counter() - t0:.0f} s)")
    if args.output is not None:
        console.print(f"wrote {args.output / 'metrics.json'}")
    return 0
