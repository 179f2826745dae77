"""Backend registry: which backends exist, whether each can run here and why not, and `auto`.

Availability is decided once per backend (importing its module and extension lazily), and the
reason is kept, so `available_backends()` and `umsnet-fast info` can say it in words.
"""
from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass

import torch

from .base import Backend, BackendUnavailable

__all__ = ["Backend", "BackendInfo", "BackendUnavailable", "BACKEND_NAMES", "available_backends", "backend_instance",
           "get_backend", "resolve_backend"]

# name -> module defining BACKEND. The order is `auto`'s preference (fastest first); reference stays last.
_BACKEND_MODULES = {
    "cuda": "umsnet_fast.backends.cuda",
    "triton": "umsnet_fast.backends.triton",
    "cpu": "umsnet_fast.backends.cpu",
    "reference": "umsnet_fast.backends.reference",
}
BACKEND_NAMES = tuple(_BACKEND_MODULES)

_loaded: dict[str, Backend | BackendUnavailable] = {}
_warned: set[str] = set()


@dataclass(frozen=True)
class BackendInfo:
    name: str
    available: bool
    reason: str | None          # why it cannot run here; None when available
    device_types: tuple[str, ...]
    dtypes: tuple[torch.dtype, ...]
    summary: str
    auto_device_types: tuple[str, ...] = ()  # where `auto` may pick it (triton on CPU is for tests only)


def _load(name: str) -> Backend | BackendUnavailable:
    if name not in _loaded:
        try:
            backend = importlib.import_module(_BACKEND_MODULES[name]).BACKEND
            reason = backend.unavailable_reason()
            _loaded[name] = backend if reason is None else BackendUnavailable(name, reason, backend)
        except ImportError as e:  # a missing optional dependency or extension
            _loaded[name] = BackendUnavailable(name, f"cannot import: {e}", None)
    return _loaded[name]


def get_backend(name: str) -> Backend:
    """The backend called `name`; ValueError for an unknown name, RuntimeError if it cannot run here."""
    if name not in _BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; expected 'auto' or one of {list(BACKEND_NAMES)}")
    b = _load(name)
    if isinstance(b, BackendUnavailable):
        raise RuntimeError(f"backend {name!r} is unavailable: {b.reason}")
    return b


def backend_instance(name: str) -> Backend | None:
    """The Backend object called `name` whether or not it can run here (its metadata and OpSet), or None
    when its module does not import. For tests and tools; to run, use get_backend."""
    if name not in _BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(BACKEND_NAMES)}")
    b = _load(name)
    return b.backend if isinstance(b, BackendUnavailable) else b


def available_backends() -> dict[str, BackendInfo]:
    """Every known backend, whether it can run in this process, and if not, why."""
    out = {}
    for name in BACKEND_NAMES:
        b = _load(name)
        if isinstance(b, BackendUnavailable):
            meta = b.backend
            out[name] = BackendInfo(name, False, b.reason, meta.device_types if meta else (),
                                    meta.dtypes if meta else (), meta.summary if meta else "",
                                    meta.auto_device_types if meta else ())
        else:
            out[name] = BackendInfo(name, True, None, b.device_types, b.dtypes, b.summary, b.auto_device_types)
    return out


def resolve_backend(requested: str, device: torch.device, dtype: torch.dtype) -> Backend:
    """The backend that runs tensors of this device and dtype: the named one, or the best for `auto`."""
    if requested != "auto":
        backend = get_backend(requested)
        reason = backend.input_unsupported_reason(device, dtype)
        if reason:
            raise ValueError(f"backend {requested!r} cannot run this input: {reason}")
        return backend
    for name in BACKEND_NAMES:
        b = _load(name)
        if isinstance(b, BackendUnavailable):
            meta = b.backend
            if meta is not None and meta.preferred_for(device) and name not in _warned:
                _warned.add(name)
                warnings.warn(f"umsnet_fast: backend {name!r} is unavailable ({b.reason}); "
                              "falling back to a slower backend", RuntimeWarning, stacklevel=3)
            continue
        if b.preferred_for(device) and b.input_unsupported_reason(device, dtype) is None:
            return b
    return get_backend("reference")
