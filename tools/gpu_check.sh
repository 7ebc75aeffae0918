#!/usr/bin/env bash
# make gpu-check: everything that needs a CUDA GPU, in one command, within a 10-minute budget.
#
#   1. the GPU benchmark        bench/gpu.py              (P2cuda, P3; figures as JSON)
#   2. the CUDA tests           pytest -m cuda tests/
#   3. every lesson, FULL=False pytest course/            (nbval; pyproject adds --nbval-lax)
#   4. every lesson, FULL=True  pytest tests/test_full.py (against the offline stand-ins)
#
# The benchmark runs first, alone, so nothing else competes for the GPU or the CPUs it measures;
# steps 3 and 4 then run side by side (each output kept apart, printed when both are done).
# Without a CUDA GPU it says so and stops (exit 2) before running anything. Otherwise every
# step runs, each under its own time limit inside the overall budget, even after a failure;
# the log (stdout and stderr of every step) goes to $GPU_CHECK_LOG, the benchmark's figures to
# $GPU_CHECK_JSON, and the exit status is 0 only when every step passed.
#
# Run from anywhere:  bash tools/gpu_check.sh      (or  make gpu-check)
# Settings (environment): GPU_CHECK_LOG (bench/gpu-check.log), GPU_CHECK_JSON
# (bench/gpu-results.json), GPU_CHECK_BUDGET (600 s in all), GPU_CHECK_SERIAL=1 (steps 3 and
# 4 one after the other), GPU_CHECK_BENCH_ARGS (extra bench/gpu.py arguments, e.g. --compile),
# per-step limits in seconds: GPU_CHECK_T_BENCH (300), GPU_CHECK_T_CUDA (90),
# GPU_CHECK_T_COURSE (330), GPU_CHECK_T_FULL (330); GPU_CHECK_DRY_RUN=1 prints the steps
# without running them (a check of this script on a machine without a GPU); GPU_CHECK_PYTHON
# (default .venv/bin/python) the Python to run everything with.
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
VENV="$ROOT/.venv"
# The project's venv; on a GPU machine without it (a venv does not travel), the Python given in
# GPU_CHECK_PYTHON, whose environment has torch with CUDA and tlkit importable (PYTHONPATH=.).
PY="${GPU_CHECK_PYTHON:-$VENV/bin/python}"
export PATH="$(dirname "$PY"):$PATH"   # like `make test`: the kernels run tools from there
MAKE="${MAKE:-make}"
DRY="${GPU_CHECK_DRY_RUN:-}"

if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null; then
    echo "gpu-check: $PY is missing: run  make install  (or make test) first, or set" \
         "GPU_CHECK_PYTHON to a Python with torch (CUDA) and tlkit's requirements; nothing was run" >&2
    exit 2
fi
if [ -z "$DRY" ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu-check needs a CUDA GPU: torch.cuda.is_available() is False on this machine" \
         "($("$PY" -c 'import torch; print("torch", torch.__version__)' 2>&1 | tail -1))." \
         "Nothing was run." >&2
    exit 2
fi

LOG="${GPU_CHECK_LOG:-bench/gpu-check.log}"
JSON="${GPU_CHECK_JSON:-bench/gpu-results.json}"
BUDGET="${GPU_CHECK_BUDGET:-600}"
mkdir -p "$(dirname "$LOG")" "$(dirname "$JSON")"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS
declare -a NAMES=() RESULTS=() TIMES=()

# limited LIMIT COMMAND...: COMMAND under `timeout` (its whole process group is killed).
limited() {
    local limit="$1"; shift
    if [ -n "$DRY" ]; then echo "(dry run) $*"; return 0; fi
    timeout --kill-after=15 "$limit" "$@"
}

# limit_for WANTED: WANTED seconds, or what is left of the budget if that is less.
limit_for() {
    local left=$(( BUDGET - (SECONDS - START) ))
    if [ "$1" -lt "$left" ]; then echo "$1"; else echo "$left"; fi
}

# record NAME RC SECONDS LIMIT
record() {
    local verdict
    case $2 in
        0) verdict="PASS" ;;
        124|137) verdict="TIMEOUT after ${4}s" ;;
        skip) verdict="SKIPPED (the ${BUDGET}s budget is spent)" ;;
        *) verdict="FAIL (exit $2)" ;;
    esac
    NAMES+=("$1"); RESULTS+=("$verdict"); TIMES+=("$3")
    echo "=== $1: $verdict in ${3}s"
}

# step NAME WANTED COMMAND...: run it now, in the foreground.
step() {
    local name="$1" limit; limit=$(limit_for "$2"); shift 2
    echo
    if [ "$limit" -lt 20 ]; then record "$name" skip 0 0; return; fi
    echo "=== $name (limit ${limit}s, $(( SECONDS - START ))s into the check): $*"
    local t0=$SECONDS rc
    limited "$limit" "$@"; rc=$?
    record "$name" "$rc" $(( SECONDS - t0 )) "$limit"
}

# background ID WANTED COMMAND...: start it; its output, status and time go to $WORK/ID.*
background() {
    local id="$1" limit; limit=$(limit_for "$2"); shift 2
    echo "$limit" > "$WORK/$id.limit"
    if [ "$limit" -lt 20 ]; then echo skip > "$WORK/$id.rc"; echo 0 > "$WORK/$id.s"; return; fi
    echo "=== started in the background (limit ${limit}s): $*" > "$WORK/$id.log"
    ( t0=$SECONDS; limited "$limit" "$@" >> "$WORK/$id.log" 2>&1; echo $? > "$WORK/$id.rc"
      echo $(( SECONDS - t0 )) > "$WORK/$id.s" ) &
}

# collect ID NAME: print a background step's output and record it.
collect() {
    echo; echo "=== $2 (output follows)"
    [ -f "$WORK/$1.log" ] && cat "$WORK/$1.log"
    record "$2" "$(cat "$WORK/$1.rc")" "$(cat "$WORK/$1.s")" "$(cat "$WORK/$1.limit")"
}

run_all() {
    echo "gpu-check $(date -u '+%Y-%m-%d %H:%M:%S') UTC on $(hostname) in $ROOT" \
         "($(git rev-parse --short HEAD 2>/dev/null || echo 'no git')$(git diff --quiet 2>/dev/null || echo ', uncommitted changes'))${DRY:+ — DRY RUN, nothing is executed}"
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>/dev/null \
        || echo "(nvidia-smi not available)"
    "$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU",
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")'
    echo "$(nproc) CPUs; budget ${BUDGET}s; log $LOG; figures $JSON"

    # The benchmark first, while nothing else runs: its figures are the point of the check, and
    # a late step would get only what the others left of the budget.
    # shellcheck disable=SC2086  # GPU_CHECK_BENCH_ARGS is a list of arguments
    step "1 bench/gpu.py" "${GPU_CHECK_T_BENCH:-300}" "$PY" bench/gpu.py --out "$JSON" ${GPU_CHECK_BENCH_ARGS:-}

    step "2 CUDA tests" "${GPU_CHECK_T_CUDA:-90}" "$PY" -m pytest -m cuda tests/

    local course=(env -u TLKIT_FULL "$PY" -m pytest course/)   # the lessons' default, FULL=False
    # pytest itself, not make test-full: make would first check the install stamp (pip, offline).
    local full=("$PY" -m pytest tests/test_full.py --durations=0)
    local has_full=1
    [ -f tests/test_full.py ] || has_full=0
    if [ -n "${GPU_CHECK_SERIAL:-}" ]; then
        step "3 lessons FULL=False" "${GPU_CHECK_T_COURSE:-330}" "${course[@]}"
        [ "$has_full" = 1 ] && step "4 lessons FULL=True (test_full.py)" "${GPU_CHECK_T_FULL:-330}" "${full[@]}"
    else
        echo; echo "=== 3 lessons FULL=False and 4 lessons FULL=True (test_full.py), side by side," \
                    "$(( SECONDS - START ))s into the check"
        background course "${GPU_CHECK_T_COURSE:-330}" "${course[@]}"
        [ "$has_full" = 1 ] && background full "${GPU_CHECK_T_FULL:-330}" "${full[@]}"
        wait
        collect course "3 lessons FULL=False"
        [ "$has_full" = 1 ] && collect full "4 lessons FULL=True (test_full.py)"
    fi
    if [ "$has_full" = 0 ]; then
        echo; echo "=== 4 lessons FULL=True: tests/test_full.py is missing"
        NAMES+=("4 lessons FULL=True (test_full.py)"); RESULTS+=("FAIL (no tests/test_full.py)"); TIMES+=(0)
    fi

    echo
    echo "=== gpu-check summary ($(( SECONDS - START ))s; log $LOG, figures $JSON)"
    local failed=0 i
    for i in "${!NAMES[@]}"; do
        printf '  %-40s %-40s %4ss\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${TIMES[$i]}"
        [ "${RESULTS[$i]}" = "PASS" ] || failed=1
    done
    if [ -z "$DRY" ] && [ -f "$JSON" ] && [ "$JSON" -nt "$WORK" ]; then
        "$PY" -c 'import json, sys; s = json.load(open(sys.argv[1]))["summary"]
print("  P2cuda ratio=%.2f  P3 img_s=%.0f pipeline_fraction=%.2f" % (
    s["P2cuda_ratio"], s["P3_img_s"], s["P3_pipeline_fraction"]))' "$JSON"
    fi
    if [ -n "$DRY" ]; then echo "gpu-check: dry run, nothing was executed"; return 1; fi
    if [ "$failed" = 0 ]; then echo "gpu-check: all passed"; else echo "gpu-check: FAILED"; fi
    return "$failed"
}

# Everything goes to the terminal and to the log; the exit status is run_all's.
run_all 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
