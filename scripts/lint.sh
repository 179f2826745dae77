#!/usr/bin/env bash
# Style checks CI runs before the tests: ruff (configured in pyproject.toml) over the Python, clang-format
# (.clang-format) over the C++/CUDA sources. Sets up .venv first if needed; `--fix` applies both instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mapfile -t cxx < <(git ls-files 'csrc/*' 'tests/cuda_emulation/*' | grep -E '\.(h|hpp|cpp|cu|cuh)$')
if [ "${1:-}" = "--fix" ]; then
  .venv/bin/ruff check --fix .
  .venv/bin/clang-format -i "${cxx[@]}"
else
  .venv/bin/ruff check .
  .venv/bin/clang-format --dry-run -Werror "${cxx[@]}"
fi
echo "lint: ruff and clang-format clean"
