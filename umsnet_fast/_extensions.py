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
    try:
        return importlib.import_module(f"umsnet_fast.{name}"), None
    except ModuleNotFoundError as e:
        if e.name != f"umsnet_fast.{name}":
            return None, f"extension umsnet_fast.{name} failed to load: {e}"
        return None, (f"extension umsnet_fast.{name} is not built (install with torch present: "
                      "pip install --no-build-isolation .)")
    except ImportError as e:  # built, but cannot load: most often built against another torch
        info = build_info()
        if info is not None and info.get("torch") != torch.__version__:
            return None, (f"extension umsnet_fast.{name} was built for torch {info.get('torch')}, "
                          f"you have {torch.__version__}: reinstall with pip install --no-build-isolation .")
        return None, f"extension umsnet_fast.{name} failed to load: {e}"
