"""Optional dependencies of the HAR application (the [data] extra), imported when first needed."""
from __future__ import annotations

import importlib


def require(module: str, package: str | None = None):
    """Import an optional dependency, or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{module} is needed for training and evaluation: pip install 'umsnet-fast[data]' "
                          f"(or pip install {package or module})") from e
