"""Checkpoints: safetensors of the state_dict plus a JSON sidecar (constructor arguments, classes,
normalisation, data settings), also stored in the safetensors metadata, that either model loads."""
from __future__ import annotations

import json
from pathlib import Path

from .. import reference
from ..config import SensorSpec
from ..model import UMSNet
from ._optional import require

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "umsnet-fast-checkpoint/1"


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


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or whose metadata does not describe its weights; names the file."""


# What save_checkpoint writes into both the sidecar and the file's metadata, and what must agree between
# them (the data settings may differ: evaluate reads its data from the sidecar's by default).
_MODEL_KEYS = ("format", "model", "classes", "normalization")


def _parse_meta(text: str, source) -> dict:
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source}: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    model = meta.get("model")
    if not isinstance(model, dict) or not {"sensors", "num_classes"} <= set(model):
        raise CheckpointError(f"{source}: expected a 'model' object with the constructor arguments (at least "
                              f"'sensors' and 'num_classes'), got {model!r:.200}")
    return meta


def _build(meta: dict, source, fast: bool, backend: str):
    kwargs = dict(meta["model"])
    try:
        kwargs["sensors"] = [SensorSpec(n, c) for n, c in kwargs["sensors"]]
        model = UMSNet(**kwargs) if fast else reference.UMSNet(**kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: its 'model' arguments do not make a UMSNet: {e}") from None
    if fast:
        model.backend = backend  # an unknown or unavailable backend is the caller's error, not the file's
    return model


def load_checkpoint(path, fast: bool = True, backend: str = "auto", device="cpu"):
    """(model in eval mode, metadata) from a checkpoint of save_checkpoint.

    fast: umsnet_fast.UMSNet (with `backend`) if True, else umsnet_fast.reference.UMSNet. The
    state_dict is loaded strictly. The metadata comes from the JSON sidecar, else from inside the
    safetensors file; when both exist they must agree on the model, classes and normalisation.
    Raises FileNotFoundError, or CheckpointError (a ValueError) naming the file.
    """
    st = require("safetensors.torch", "safetensors")
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        with safe_open(str(path), "pt") as f:
            inside = (f.metadata() or {}).get("umsnet_fast")
        state = st.load_file(str(path))
    except (SafetensorError, OSError) as e:  # empty, truncated, or not a safetensors file
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        meta, source = _parse_meta(sidecar.read_text(), sidecar), sidecar
        if inside is not None:
            stored = _parse_meta(inside, f"{path} (metadata)")
            differ = [k for k in _MODEL_KEYS if stored.get(k) != meta.get(k)]
            if differ:
                raise CheckpointError(f"{sidecar} and the metadata inside {path.name} disagree on {differ}: the "
                                      "sidecar does not describe these weights")
    elif inside is not None:
        meta, source = _parse_meta(inside, f"{path} (metadata)"), path
    else:
        raise CheckpointError(f"{path}: no {sidecar.name} beside it and no umsnet_fast metadata inside")
    model = _build(meta, source, fast, backend)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # one problem per line after the first
        problems = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointError(f"{path}: the weights do not fit the model of {source.name}: "
                              f"{'; '.join(problems[:3])}{more}") from None
    return model.to(device).eval(), meta
