#!/usr/bin/env bash
# The main job: sets up .venv if needed, then benchmarks on the default device (extra args go to
# `umsnet-fast bench`; see `umsnet-fast bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/umsnet-fast bench "$@"
