#!/usr/bin/env bash
# bench/device_check.sh: the GPU check of umsnet_fast on the lent GPU machine, in one call of at most
# 6 minutes of run time (the device tool: run(command="bash bench/device_check.sh", timeout_s=420)).
#
#   bash bench/device_check.sh            # on the GPU machine: $OUT must be set (it comes back)
#   bash bench/device_check.sh --dry-run  # here, on a CPU (or DRY_RUN=1): every step, tiny workloads
#
# The steps, their order (by value) and their time limits are the table bench/device_check_steps.txt:
#   env              machine, driver, versions                                         -> setup.log
#   install          pip install --no-build-isolation --no-deps --no-index -e . (no extension yet)
#   build            (background, beside smoke-triton) the CUDA extension for this GPU's own arch only
#                    (UMSNET_FAST_CUDA_ARCHS from torch.cuda.get_device_capability)    -> setup.log
#   smoke-triton     the whole model on the triton backend, fp32 and bf16, against the float64
#                    reference (UMSNet-A HHAR K=24 at batch 1 and 2, one process per autotuning config,
#                    UMSNET_FAST_AUTOTUNE=config:<i>: every config checked and Triton's compile cache
#                    filled in parallel; a config of odd widths and lengths; a captured forward)
#   build-wait       the end of the build; umsnet-fast info
#   smoke-cuda       the same checks on the cuda backend                               -> gpu.log
#   bench-latency    batch 1, bf16 then fp32: eager, fast-<backend>-graph, inductor reduce-overhead, fast-<backend>
#   bench-throughput batch 4096 bf16: eager, fast-cuda, fast-triton, inductor (default)
#   tests            the GPU tests (pytest --gpu-suite), pytest-xdist over the 16 cores, a limit per
#                    test, with the time left                                          -> tests.log
#   bench-autotune   batch 4096 bf16: inductor max-autotune, only if the tests left time for it
#   summary          steps, smoke errors, test counts, the targets, the table last     -> summary.txt
# Every step is killed at its limit and the next one runs. What is done is written as it is done:
# $OUT/check.json (steps, smoke results, test counts) after every step, the benchmark JSON
# ($OUT/bench-<plan>/<device>-<date>-<commit>.json) after every cell. At most 8 files land in $OUT,
# at most 1 folder down (the device tool brings back 8, 2 folders deep).
# To add a step: a line in the table and a step_<name> function below (dashes become underscores).
#
# The machine has no package registry: nothing is installed from the network (pip --no-index).
# Environment knobs: PYTHON [python3], CUDA_ARCHS [this GPU's, e.g. 90], TRITON_CONFIGS [6: smoke
# processes per dtype], WORKERS [16: pytest-xdist], TEST_TIMEOUT [120 s per test], TIME_PER_CELL [1 s],
# SKIP_INSTALL [0: 1 skips install (the dry run's test: it must not reinstall the package it runs)],
# LIMIT_SCALE [dry run only, 3: every time limit multiplied by it].
set -uo pipefail

DRY_RUN=${DRY_RUN:-0}
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "device_check.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.." || exit 2
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
WORK=$(mktemp -d -t umsnet-device-check-work-XXXXXX)  # scratch: job logs, JSON lines, step records
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/smoke"
SETUP_LOG=$OUT/setup.log GPU_LOG=$OUT/gpu.log TEST_LOG=$OUT/tests.log SUMMARY=$OUT/summary.txt
TABLE=bench/device_check_steps.txt
# The dry run stretches every limit (LIMIT_SCALE): a shared 2-core machine imports torch far slower.
if [[ "$DRY_RUN" == 1 ]]; then LIMIT_SCALE=${LIMIT_SCALE:-3}; else LIMIT_SCALE=1; fi
if [[ "$DRY_RUN" == 1 ]]; then
  QUICK=--quick TRITON_CONFIGS=${TRITON_CONFIGS:-1} WORKERS=${WORKERS:-2} TIME_PER_CELL=${TIME_PER_CELL:-0.05}
  export TRITON_INTERPRET=1  # the Triton kernels on CPU tensors, through Triton's interpreter
else
  # 6 = the most autotuning configs of any kernel (kernels/*.py; tests/test_bench.py checks it): an
  # index wraps modulo a kernel's own count.
  QUICK="" TRITON_CONFIGS=${TRITON_CONFIGS:-6} WORKERS=${WORKERS:-16} TIME_PER_CELL=${TIME_PER_CELL:-1}
fi
TEST_TIMEOUT=${TEST_TIMEOUT:-120}
export DRY_RUN PY OUT WORK QUICK TRITON_CONFIGS WORKERS TIME_PER_CELL TEST_TIMEOUT SETUP_LOG GPU_LOG TEST_LOG
export PYTHONUNBUFFERED=1

# -- the step table ----------------------------------------------------------------------------------
TOTAL=$(awk -v k="$LIMIT_SCALE" '$1 == "total" { print $2 * k }' "$TABLE")
KILL_AFTER=$(awk '$1 == "kill_after" { print $2 }' "$TABLE")
mapfile -t STEP_LINES < <(awk -v k="$LIMIT_SCALE" '$1 == "step" { sub(/#.*/, ""); print $2, $3 * k, $4, $5 }' "$TABLE")
T0=$(date +%s)
T_END=$((T0 + TOTAL))
FAILED=0

say() { printf '\n== %s ==\n' "$*"; }

write_check() {  # $OUT/check.json from the scratch records (python, stdlib only: run by path)
  local meta
  meta=$(printf '{"dry_run": %s, "gpu": "%s", "commit": "%s", "started": "%s", "elapsed_s": %d, "total_s": %d}' \
    "$([[ $DRY_RUN == 1 ]] && echo true || echo false)" "$(cat "$WORK/gpu.txt" 2>/dev/null || echo unknown)" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo "unknown (no .git)")" \
    "$(date -u -d "@$T0" +%FT%TZ)" $(( $(date +%s) - T0 )) "$TOTAL")
  "$PY" bench/device_check.py write-check "$OUT" "$WORK" --meta "$meta" || echo "(check.json not written)"
}

record_step() {  # NAME STATUS SECONDS LIMIT
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WORK/steps.tsv"
  printf '%-17s %-24s %4ss of %ss\n' "$1" "$2" "$3" "$4"
  [[ $2 == ok* || $2 == skipped* || $2 == "dry run"* ]] || FAILED=1
  write_check
}

log_for() {  # the log file a step writes to
  case "$1" in
    env|install|build|build-wait) echo "$SETUP_LOG" ;;
    tests) echo "$TEST_LOG" ;;
    summary) echo "$WORK/summary.log" ;;
    *) echo "$GPU_LOG" ;;
  esac
}

status_of() {  # RC LIMIT -> status words
  if [[ $1 == 0 ]]; then echo ok
  elif [[ $1 == 124 || $1 == 137 ]]; then echo "TIMEOUT after ${2}s"
  else echo "FAILED (exit $1)"; fi
}

run_step() {  # NAME LIMIT: step_<name> under timeout, its output appended to the step's log
  local name=$1 limit=$2 log fn rc=0 start size
  log=$(log_for "$name")
  fn=step_${name//-/_}
  start=$(date +%s)
  size=$(stat -c %s "$log" 2>/dev/null || echo 0)
  say "$name (limit ${limit}s, log $(basename "$log"))"
  export JOBS="$WORK/jobs/$name"
  mkdir -p "$JOBS"
  echo "== $name: $(date -u +%TZ), limit ${limit}s" >>"$log"
  timeout --kill-after="$KILL_AFTER" "$limit" bash -c "$fn" >>"$log" 2>&1 || rc=$?
  flush_jobs "$log"
  tail -c +$((size + 1)) "$log" | tail -n 12 | sed 's/^/    /'
  record_step "$name" "$(status_of $rc "$limit")" $(( $(date +%s) - start )) "$limit"
}

flush_jobs() {  # LOG: the per-job logs of parallel jobs, appended one after another (also after a kill)
  local f
  for f in "$JOBS"/*.log; do
    [[ -f "$f" ]] || continue
    echo "-- $(basename "$f" .log)" >>"$1"
    cat "$f" >>"$1"
    rm -f "$f"
  done
}

start_bg() {  # NAME LIMIT: step_<name> in the background; join_bg collects it
  local name=$1 limit=$2 log fn
  log=$(log_for "$name")
  fn=step_${name//-/_}
  say "$name (background, limit ${limit}s, log $(basename "$log"))"
  echo "== $name: $(date -u +%TZ), background, limit ${limit}s" >>"$log"
  (
    start=$(date +%s)
    timeout --kill-after="$KILL_AFTER" "$limit" bash -c "$fn" >>"$log" 2>&1 &
    echo $! >"$WORK/bg-$name.pid"
    rc=0
    wait $! || rc=$?
    echo "$rc $(( $(date +%s) - start ))" >"$WORK/bg-$name.rc"
  ) &
}

join_bg() {  # NAME LIMIT: record a background step (stopping it if it still runs)
  local name=$1 limit=$2 rc took
  if [[ ! -f "$WORK/bg-$name.rc" ]]; then
    kill -TERM "$(cat "$WORK/bg-$name.pid")" 2>/dev/null
    sleep 1
  fi
  read -r rc took <"$WORK/bg-$name.rc" 2>/dev/null || { rc=124; took=$limit; }
  record_step "$name" "$(status_of "$rc" "$limit")" "$took" "$limit"
}

# -- the steps -----------------------------------------------------------------------------------------
step_env() {
  date -u
  echo "dry_run=$DRY_RUN python=$(command -v "$PY") cores=$(nproc)"
  if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
  if command -v nvcc >/dev/null; then nvcc --version | tail -n 2; else echo "nvcc: not found"; fi
  "$PY" - "$WORK/gpu.txt" <<'EOF'
import importlib.metadata as md, platform, sys, torch
gpu = (f"{torch.cuda.get_device_name()} (sm_{''.join(map(str, torch.cuda.get_device_capability()))})"
       if torch.cuda.is_available() else "no GPU")
open(sys.argv[1], "w").write(gpu)
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda, "|", gpu)
for name in ("triton", "numpy", "rich", "pytest", "pytest-xdist", "pytest-timeout", "ninja", "pybind11"):
    try:
        print(f"  {name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"  {name} not installed")
EOF
}

step_install() {
  local cmd=("$PY" -m pip install --no-build-isolation --no-deps --no-index -e .)
  if [[ "${SKIP_INSTALL:-0}" == 1 ]]; then
    echo "SKIP_INSTALL=1: not running ${cmd[*]}"
  elif [[ "$DRY_RUN" == 1 ]]; then  # no CUDA torch here: as the GPU machine would, with the CPU extension
    env UMSNET_FAST_SKIP_CUDA_BUILD=1 "${cmd[@]}"
  else  # the package first, the CUDA extension in the next (background) step; the GPU steps need no CPU one
    env UMSNET_FAST_SKIP_CUDA_BUILD=1 UMSNET_FAST_SKIP_CPU_BUILD=1 "${cmd[@]}"
  fi
}

step_build() {
  local archs
  archs=${CUDA_ARCHS:-$("$PY" -c 'import torch; print("%d%d" % torch.cuda.get_device_capability())' 2>/dev/null)}
  # In place, into the editable install's source tree: the smoke's processes keep importing the package.
  local cmd=(env UMSNET_FAST_FORCE_CUDA_BUILD=1 UMSNET_FAST_SKIP_CPU_BUILD=1 "UMSNET_FAST_CUDA_ARCHS=${archs:-90}"
             MAX_JOBS=16 "$PY" setup.py build_ext --inplace)
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "DRY RUN: would run: ${cmd[*]}"
    command -v nvcc >/dev/null && nvcc --version | tail -n 1
    return 0
  fi
  "${cmd[@]}" && "$PY" -c 'import umsnet_fast._cuda as m; print("built", m.__file__)'
}

step_build_wait() {
  while [[ ! -f "$WORK/bg-build.rc" ]]; do sleep 1; done
  "$PY" -m umsnet_fast info
}

smoke_job() {  # NAME ARGS...: one smoke process in the background, its log a job log
  local name=$1
  shift
  "$PY" -m umsnet_fast.bench.device_check smoke "$@" $QUICK --jsonl "$WORK/smoke/$name.jsonl" >"$JOBS/$name.log" 2>&1 &
}

wait_all() {  # PID...: wait for each; 1 if any failed
  local pid rc=0
  for pid in "$@"; do wait "$pid" || rc=1; done
  return $rc
}

step_smoke_triton() {
  local dtype i cases pids=()
  if [[ "$DRY_RUN" == 1 ]]; then  # the interpreter takes ~1 s a kernel launch: one case per process
    smoke_job triton-fp32 --backend triton --dtype fp32 --cases hhar --capture
    pids+=($!)
    smoke_job triton-bf16-odd --backend triton --dtype bf16 --cases odd
    pids+=($!)
    wait_all "${pids[@]}"
    return
  fi
  for dtype in fp32 bf16; do
    # the module kernels (the default forward: nothing autotuned), both configs and a captured forward
    smoke_job "triton-$dtype-modules" --backend triton --dtype "$dtype" --cases hhar,odd --capture
    pids+=($!)
    # the per-block kernels (UMSNET_FAST_TRITON_MODULES=0): HHAR with each autotuning config index (0 also
    # a captured forward), and the odd config in a process of its own
    for ((i = 0; i < TRITON_CONFIGS; i++)); do
      cases=(--cases hhar)
      [[ $i == 0 ]] && cases+=(--capture)
      UMSNET_FAST_TRITON_MODULES=0 UMSNET_FAST_AUTOTUNE=config:$i \
        smoke_job "triton-$dtype-block-config$i" --backend triton --dtype "$dtype" "${cases[@]}"
      pids+=($!)
    done
    UMSNET_FAST_TRITON_MODULES=0 UMSNET_FAST_AUTOTUNE=0 \
      smoke_job "triton-$dtype-block-odd" --backend triton --dtype "$dtype" --cases odd
    pids+=($!)
  done
  wait_all "${pids[@]}"
}

step_smoke_cuda() {
  local dtype ok=() pids=()
  [[ "$DRY_RUN" == 1 ]] && ok=(--unavailable-ok)  # no GPU here: the check says why, and goes on
  for dtype in fp32 bf16; do
    smoke_job "cuda-$dtype" --backend cuda --dtype "$dtype" --cases hhar,odd --capture "${ok[@]}"
    pids+=($!)
  done
  wait_all "${pids[@]}"
}

step_smoke_stream() {  # a StreamPool per GPU backend and dtype (on the CPU in the dry run: triton, interpreted)
  local backend dtype ok=() pids=()
  [[ "$DRY_RUN" == 1 ]] && ok=(--unavailable-ok)
  for backend in triton cuda; do
    for dtype in fp32 bf16; do
      [[ "$DRY_RUN" == 1 && "$dtype" == bf16 ]] && continue  # the interpreter is slow: one dtype rehearses it
      "$PY" -m umsnet_fast.bench.device_check smoke-stream --backend "$backend" --dtype "$dtype" $QUICK \
        --jsonl "$WORK/smoke/stream-$backend-$dtype.jsonl" "${ok[@]}" &
      pids+=($!)
    done
  done
  wait_all "${pids[@]}"
}

bench_plan() {  # PLAN
  COLUMNS=160 "$PY" -m umsnet_fast.bench.device_check bench "$1" --output "$OUT/bench-$1" $QUICK \
    --time-per-cell "$TIME_PER_CELL"
}
step_bench_latency() { bench_plan latency; }
step_bench_throughput() { bench_plan throughput; }
step_bench_autotune() { bench_plan autotune; }

step_tests() {
  local args=(-p no:cacheprovider -v -rfE --tb=short --durations=15 --gpu-suite) rc=0
  if "$PY" -c 'import xdist' 2>/dev/null; then args+=(-n "$WORKERS"); else echo "(pytest-xdist missing: one process)"; fi
  if "$PY" -c 'import pytest_timeout' 2>/dev/null; then args+=(--timeout="$TEST_TIMEOUT")
  else echo "(pytest-timeout missing: no per-test limit)"; fi
  [[ "$DRY_RUN" == 1 ]] && args+=(-m cuda)  # on a CPU only their collection and skip reasons
  # the files first, in order of value (xdist hands tests out in collection order)
  "$PY" -m pytest "${args[@]}" tests/test_cuda_backend.py tests/test_capture.py tests/test_triton_backend.py \
    tests/test_triton_kernels.py tests || rc=$?
  [[ $rc == 5 ]] && rc=0  # nothing collected
  return $rc
}

step_summary() {
  write_check
  "$PY" -m umsnet_fast.bench.device_check summary "$OUT" >"$SUMMARY" 2>&1
}

export T0 TOTAL SUMMARY
export -f say write_check smoke_job wait_all bench_plan $(compgen -A function step_)

[[ "$DRY_RUN" == 1 ]] && echo "DRY RUN: tiny workloads on the CPU; OUT=$OUT"
echo "device_check: ${#STEP_LINES[@]} steps in at most ${TOTAL}s (table $TABLE)"

# -- run them ------------------------------------------------------------------------------------------
later_always() {  # INDEX: seconds the fg/rest steps after INDEX may take, kill margins included
  local j sum=0 n l k
  for ((j = $1 + 1; j < ${#STEP_LINES[@]}; j++)); do
    read -r n l k _ <<<"${STEP_LINES[$j]}"
    [[ $k == fg || $k == rest ]] && sum=$((sum + l + KILL_AFTER))
  done
  echo $sum
}

declare -A BG_LIMIT=() BG_JOINED_BY=()
for ((i = 0; i < ${#STEP_LINES[@]}; i++)); do
  read -r name limit kind joins <<<"${STEP_LINES[$i]}"
  left=$(( T_END - $(date +%s) - $(later_always "$i") ))
  case "$kind" in
    bg) start_bg "$name" "$limit"; BG_LIMIT[$name]=$limit; BG_JOINED_BY[$joins]=$name; continue ;;
    rest) limit=$(( left - KILL_AFTER )) ;;
    optional)
      if (( left < limit + KILL_AFTER )); then
        say "$name"
        record_step "$name" "skipped (${left}s left)" 0 "$limit"
        continue
      fi ;;
  esac
  (( limit < 1 )) && limit=1
  run_step "$name" "$limit"
  if [[ -n "${BG_JOINED_BY[$name]:-}" ]]; then
    bg=${BG_JOINED_BY[$name]}
    join_bg "$bg" "${BG_LIMIT[$bg]}"
  fi
  if [[ $name == tests ]]; then
    "$PY" bench/device_check.py count-tests "$TEST_LOG" >"$WORK/tests.json" 2>/dev/null
  fi
done
write_check
say "summary ($(basename "$SUMMARY"); $(( $(date +%s) - T0 ))s in all)"
cat "$SUMMARY" 2>/dev/null || echo "no summary"
exit $FAILED
