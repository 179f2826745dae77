"""What the benchmarks share: dtype names and the commit they measured."""
from __future__ import annotations

import subprocess
from pathlib import Path

import torch

__all__ = ["DTYPES", "git_commit"]

# the names the CLIs and result files use
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def git_commit() -> str:
    """Short commit of the checkout umsnet_fast runs from, '+dirty' if tracked files changed; 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
