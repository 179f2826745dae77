#!/usr/bin/env bash
# Prepare .venv for this checkout on a fresh machine; idempotent and quick when nothing changed.
#   - creates .venv (python3 -m venv) if missing
#   - installs torch==2.13.0 if no torch is importable (the CPU build; a plain `torch` requirement
#     would pull a multi-GB CUDA build). Set UMSNET_FAST_TORCH to pin another spec.
#   - installs the project editable with its extras, compiling the C++ extension against that torch;
#     re-installs only when setup.py, pyproject.toml or csrc/ changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${UMSNET_FAST_VENV:-.venv}
EXTRAS=${UMSNET_FAST_EXTRAS:-test,bench,data}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
pip_() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "setup: installing ${UMSNET_FAST_TORCH:-torch==2.13.0}"
  pip_ install "${UMSNET_FAST_TORCH:-torch==2.13.0}"
fi

stamp="$VENV/.umsnet_fast_install"
want=$( (cat setup.py pyproject.toml; find csrc -type f 2>/dev/null | sort | xargs -r cat; echo "$EXTRAS") | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$VENV/bin/python" -c "import umsnet_fast" 2>/dev/null; then
  echo "setup: installing umsnet_fast[$EXTRAS] (editable; compiles the C++ extension, about a minute)"
  pip_ install setuptools wheel ninja pybind11
  pip_ install --no-build-isolation -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi
