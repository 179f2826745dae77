"""Loading the compiled extensions, with the reason kept in words when one cannot load."""
from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch

_BUILD_INFO = Path(__file__).with_name("_build_info.json")


def build_info() -> dict | None:
    """What setup.py recorded: the torch the extensions were compiled against, and which were built."""
    try:
        return json.loads(_BUILD_INFO.read_text())
    except (OSError, ValueError):
        return None


def load_extension(name: str):
    """Import umsnet_fast.<name>; return (module, None) or (None, reason)."""
    info = build_info()
    try:
        return importlib.import_module(f"umsnet_fast.{name}"), None
    except ImportError as e:
        if info is None or name.lstrip("_") not in {x.lstrip("_") for x in info.get("extensions", [])}:
            return None, (f"extension umsnet_fast.{name} is not built (install with torch present: "
                          "pip install --no-build-isolation .)")
        if info.get("torch") != torch.__version__:
            return None, (f"extension umsnet_fast.{name} was built for torch {info.get('torch')}, "
                          f"you have {torch.__version__}: reinstall with pip install --no-build-isolation .")
        return None, f"extension umsnet_fast.{name} failed to load: {e}"
