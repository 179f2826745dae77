#!/usr/bin/env bash
# bench/device_check.sh: the GPU check of umsnet_fast on the lent GPU machine, in one call, within 8 min.
#
#   bash bench/device_check.sh            # on the GPU machine: $OUT must be set (it comes back)
#   bash bench/device_check.sh --dry-run  # here, on a CPU (or DRY_RUN=1): every step a CPU can run
#
# Steps, each under `timeout`, each continuing after a failure of the one before:
#   1. environment: nvidia-smi, python / torch / triton / nvcc versions           -> $OUT/setup.log
#   2. pip install --no-build-isolation --no-deps --no-index -e . with the CUDA build forced (sm_90
#      only, CPU extension skipped: the GPU steps do not use it)                  -> $OUT/setup.log
#   3. GPU tests: tests/test_capture.py, tests/test_triton*.py, tests/test_cuda*.py, then every
#      other @pytest.mark.cuda test                                 -> $OUT/tests.log, $OUT/tests.xml
#   4. GPU benchmark (umsnet-fast bench --device cuda, bounded)    -> $OUT/bench.log, $OUT/<run>.json/.png
#   5. summary: step status and times, the benchmark table and the targets -> $OUT/summary.txt, printed last
# At most 7 files land in $OUT (the device tool brings back 8, 2 folders deep).
#
# The machine has no package registry: nothing is installed from the network (pip --no-index).
# Environment knobs (defaults in brackets):
#   PYTHON [python3]  INSTALL_TIMEOUT [140]  TEST_TIMEOUT [90]  BENCH_TIMEOUT [180] (seconds);
#                     with 30 s each for the environment and `umsnet-fast info`: 470 s at the most
#   CUDA_ARCHS [90]   BUILD_CPU [0]: also build the CPU extension
#   BENCH_ARGS [--dtype bf16 --batch-sizes 1,4096 --time-per-cell 1 --profile]: what the GPU benchmark measures
#   SKIP_INSTALL [0]: skip step 2 (the dry run's test uses it: it must not reinstall the package it runs)
set -euo pipefail

DRY_RUN=${DRY_RUN:-0}
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "device_check.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ -z "${OUT:-}" ]]; then
  if [[ "$DRY_RUN" == 1 ]]; then
    OUT=$(mktemp -d -t umsnet-device-check-XXXXXX)
  else
    echo "device_check.sh: OUT is not set (the device machine sets it; use --dry-run here)" >&2
    exit 2
  fi
fi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
INSTALL_TIMEOUT=${INSTALL_TIMEOUT:-140}
TEST_TIMEOUT=${TEST_TIMEOUT:-90}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-180}
BENCH_ARGS=${BENCH_ARGS:---dtype bf16 --batch-sizes 1,4096 --time-per-cell 1 --profile}
SETUP_LOG=$OUT/setup.log
STEPS=$(mktemp)
trap 'rm -f "$STEPS"' EXIT
FAILED=0
T0=$(date +%s)

say() { printf '\n== %s ==\n' "$*"; }

# run_step NAME LIMIT LOG CMD...: run CMD under timeout, output appended to LOG; record the outcome.
run_step() {
  local name=$1 limit=$2 log=$3 rc=0 start
  shift 3
  start=$(date +%s)
  say "$name (limit ${limit}s, log $(basename "$log"))"
  echo "\$ $*" >>"$log"
  if declare -F "$1" >/dev/null; then  # a function of this script: timeout needs a program
    timeout --kill-after=10 "$limit" bash -c "$1" >>"$log" 2>&1 || rc=$?
  else
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1 || rc=$?
  fi
  local took status=ok
  took=$(( $(date +%s) - start ))
  if [[ $rc == 124 || $rc == 137 ]]; then status="TIMEOUT after ${limit}s"; FAILED=1
  elif [[ $rc != 0 ]]; then status="FAILED (exit $rc)"; FAILED=1; fi
  printf '%-28s %-22s %5ss\n' "$name" "$status" "$took" | tee -a "$STEPS"
  tail -n 5 "$log" | sed 's/^/    /'
}

# dry_step NAME WHAT: a GPU step that a CPU cannot run: say what it would run.
dry_step() {
  say "$1"
  echo "DRY RUN: would run: $2" | tee -a "$SETUP_LOG"
  printf '%-28s %-22s %5ss\n' "$1" "dry run: not run" 0 | tee -a "$STEPS"
}

[[ "$DRY_RUN" == 1 ]] && echo "DRY RUN: GPU-only steps print what they would run; OUT=$OUT"

# 1. environment ----------------------------------------------------------------------------------
env_report() {
  date -u
  echo "dry_run=$DRY_RUN python=$(command -v "$PY")"
  if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
  if command -v nvcc >/dev/null; then nvcc --version | tail -n 2; else echo "nvcc: not found"; fi
  "$PY" - <<'EOF'
import importlib.metadata as md, platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| torch CUDA", torch.version.cuda,
      "| GPU", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
for name in ("triton", "onnxruntime", "onnx", "onnxscript", "numpy", "rich", "matplotlib", "pytest", "ninja", "pybind11"):
    try:
        print(f"  {name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"  {name} not installed")
EOF
}
export DRY_RUN PY OUT
export -f env_report
run_step "environment" 30 "$SETUP_LOG" env_report

# 2. install --------------------------------------------------------------------------------------
install_cmd=("$PY" -m pip install --no-build-isolation --no-deps --no-index -e .)
if [[ "${SKIP_INSTALL:-0}" == 1 ]]; then
  dry_step "install" "${install_cmd[*]} (SKIP_INSTALL=1)"
elif [[ "$DRY_RUN" == 1 ]]; then
  # No CUDA torch here: install as the GPU machine would, without the CUDA build.
  run_step "install (CUDA build skipped)" "$INSTALL_TIMEOUT" "$SETUP_LOG" \
    env UMSNET_FAST_SKIP_CUDA_BUILD=1 "${install_cmd[@]}"
else
  cpu_skip=1
  [[ "${BUILD_CPU:-0}" == 1 ]] && cpu_skip=0
  run_step "install + CUDA build" "$INSTALL_TIMEOUT" "$SETUP_LOG" \
    env UMSNET_FAST_FORCE_CUDA_BUILD=1 UMSNET_FAST_CUDA_ARCHS="${CUDA_ARCHS:-90}" \
        UMSNET_FAST_SKIP_CPU_BUILD=$cpu_skip MAX_JOBS="${MAX_JOBS:-16}" "${install_cmd[@]}"
fi
run_step "backends (umsnet-fast info)" 30 "$SETUP_LOG" "$PY" -m umsnet_fast info

# 3. GPU tests ------------------------------------------------------------------------------------
TEST_LOG=$OUT/tests.log
GPU_FILES=""
for f in tests/test_capture.py tests/test_triton*.py tests/test_cuda*.py; do
  [[ -f "$f" ]] && GPU_FILES="$GPU_FILES $f"
done
export GPU_FILES
pytest_gpu() {
  # exit 5 = nothing collected: not a failure here
  local rc=0 marker=() gpu_files=() ignores=() f
  read -r -a gpu_files <<<"$GPU_FILES"
  for f in "${gpu_files[@]}"; do ignores+=("--ignore=$f"); done
  [[ "$DRY_RUN" == 1 ]] && marker=(-m cuda)  # on a CPU only the collection and skip reasons of the GPU tests
  "$PY" -m pytest -q -rs -p no:cacheprovider "${marker[@]}" --junitxml="$OUT/junit-1.xml" "${gpu_files[@]}" || rc=$?
  [[ $rc == 5 ]] && rc=0
  local rc2=0
  "$PY" -m pytest -q -rs -p no:cacheprovider -m cuda --junitxml="$OUT/junit-2.xml" tests "${ignores[@]}" || rc2=$?
  [[ $rc2 == 5 ]] && rc2=0
  "$PY" - "$OUT/tests.xml" "$OUT/junit-1.xml" "$OUT/junit-2.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.Element("testsuites")
for path in sys.argv[2:]:
    try:
        tree = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    root.extend(tree.findall("testsuite") if tree.tag == "testsuites" else [tree])
ET.ElementTree(root).write(sys.argv[1], encoding="utf-8", xml_declaration=True)
EOF
  rm -f "$OUT/junit-1.xml" "$OUT/junit-2.xml"
  return $(( rc || rc2 ))
}
export -f pytest_gpu
run_step "GPU tests" "$TEST_TIMEOUT" "$TEST_LOG" pytest_gpu

# 4. GPU benchmark --------------------------------------------------------------------------------
BENCH_LOG=$OUT/bench.log
read -r -a bench_args <<<"$BENCH_ARGS"
if [[ "$DRY_RUN" == 1 ]]; then
  dry_step "GPU benchmark" "$PY -m umsnet_fast bench --device cuda ${BENCH_ARGS} --output \$OUT"
  # The same code path end to end on the CPU: a tiny run writes the JSON, plot and table.
  run_step "CPU stand-in benchmark" "$BENCH_TIMEOUT" "$BENCH_LOG" \
    env COLUMNS=160 "$PY" -m umsnet_fast bench --device cpu --quick --threads 1 --engines 'eager,fast-*' --output "$OUT"
else
  run_step "GPU benchmark" "$BENCH_TIMEOUT" "$BENCH_LOG" \
    env COLUMNS=160 "$PY" -m umsnet_fast bench --device cuda "${bench_args[@]}" --output "$OUT"
fi

# 5. summary --------------------------------------------------------------------------------------
SUMMARY=$OUT/summary.txt
{
  echo "device_check $( [[ $DRY_RUN == 1 ]] && echo '(DRY RUN) ')- $(date -u +%FT%TZ) - $(( $(date +%s) - T0 ))s in all"
  cat "$STEPS"
  grep -E "passed|failed|error" "$TEST_LOG" 2>/dev/null | tail -n 2 || true
  json=$(ls -t "$OUT"/*.json 2>/dev/null | head -n 1 || true)
  if [[ -n "$json" ]]; then
    if [[ ! -f "${json%.json}.png" ]]; then  # a benchmark stopped by its time limit wrote no plot
      "$PY" -c 'import json, pathlib, sys; from umsnet_fast.bench import report
p = pathlib.Path(sys.argv[1]); report.plot(json.loads(p.read_text()), p.with_suffix(".png"))' "$json" \
        || echo "(no plot)"
    fi
    COLUMNS=160 "$PY" -m umsnet_fast bench --show "$json" || echo "(could not render $json)"
  else
    echo "no benchmark results"
  fi
} >"$SUMMARY" 2>&1
say "summary ($SUMMARY)"
cat "$SUMMARY"
exit $FAILED
