"""Checkpoints: safetensors of the state_dict plus a JSON sidecar (constructor arguments, classes,
normalisation, data settings), also stored in the safetensors metadata, that either model loads."""
from __future__ import annotations

import json
from pathlib import Path

from .. import reference
from ..config import SensorSpec
from ..model import UMSNet
from ._optional import require

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint"]

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
