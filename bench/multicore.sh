#!/usr/bin/env bash
# multicore.sh — issue 14's multi-core figures in one prepared run, for a
# borrowed many-core machine whose time is short (docs/performance.md,
# "Measuring on a many-core machine").
#
#   bench/multicore.sh pack DIR [BUILD]   copy the Release benchmark
#       binaries of BUILD (default build-release), the shared libraries
#       they need (libgc.so.1, libmimalloc.so.2) and this script into DIR
#   DIR/multicore.sh run [OUT]            run the suite from DIR; results
#       go to OUT (default $OUT, else ./multicore-out)
#
# The run needs bash and coreutils only (no Python, no compiler). It runs
# the workloads in order of importance and stops starting new ones when
# the budget is spent, so a partial run still leaves a usable table:
#   1. gcbench-mt at THREADS (default 1 4 16): rudo, rudo with
#      RUDO_GENERATIONAL=1, bdwgc, mimalloc, glibc; ROUNDS rounds (default
#      3), backends alternating within a round, so that a slow phase of
#      the machine falls on all of them;
#   2. mark-live tree, graph and list, OBJECTS objects (default 8000000),
#      at MARKERS markers (default 1 2 4 8 16), rudo (RUDO_MARKERS) and
#      bdwgc (GC_MARKERS), COLLECTIONS forced collections (default 3).
# Environment: BUDGET_S (default 420: seconds after which no new run
# starts), RUN_TIMEOUT_S (default 120, per process), and the variables
# above; QUICK=1 shrinks everything for a check on a small machine.
# Output: results.txt (one line per run: the configuration, the
# benchmark's RESULT fields, maxrss_kib, status), summary.txt (medians),
# machine.txt (nproc, lscpu, kernel) and the stderr of failed runs.
set -u

cmd=${1:-}
here=$(cd "$(dirname "$0")" && pwd)

pack() {
    local dir=$1 build=${2:-build-release}
    local bindir=$build/bench
    [ -x "$bindir/bench-spawn" ] || { echo "multicore.sh: no $bindir/bench-spawn (make bench builds it)" >&2; exit 2; }
    mkdir -p "$dir" || exit 2
    local progs="bench-spawn gcbench-rudo gcbench-bdwgc gcbench-mimalloc gcbench-glibc mark-live-rudo mark-live-bdwgc"
    for p in $progs; do
        if [ -x "$bindir/$p" ]; then
            cp "$bindir/$p" "$dir/"
        else
            echo "multicore.sh: $bindir/$p missing (its backend is not installed): skipped" >&2
        fi
    done
    # The shared libraries the machine may lack, as resolved here.
    for p in "$dir"/*-bdwgc "$dir"/*-mimalloc; do
        [ -x "$p" ] || continue
        ldd "$p" | awk '/libgc\.so|libmimalloc\.so/ {print $3}'
    done | sort -u | while read -r lib; do
        [ -n "$lib" ] && cp -L "$lib" "$dir/"
    done
    cp "$here/multicore.sh" "$dir/"
    echo "packed into $dir: $(ls "$dir" | tr '\n' ' ')"
}

# one LABEL ENV PROGRAM ARGS...: runs one process, appends a line.
one() {
    local label=$1 envs=$2 prog=$3
    shift 3
    if [ ! -x "$here/$prog" ]; then
        echo "$label status=missing" >> "$out/results.txt"
        return
    fi
    local rep="$out/.report" log="$out/.stdout" err="$out/.stderr"
    rm -f "$rep"
    # shellcheck disable=SC2086 # envs is a list of KEY=VALUE words
    env LD_LIBRARY_PATH="$here" $envs timeout -s KILL "$RUN_TIMEOUT_S" \
        "$here/bench-spawn" "$rep" "$here/$prog" "$@" > "$log" 2> "$err"
    local rc=$?
    local result report
    result=$(grep '^RESULT ' "$log" | tail -1 | sed 's/^RESULT //')
    report=$(cat "$rep" 2>/dev/null)
    [ $rc -eq 137 ] && report="status=timeout"
    echo "$label $result ${report:-status=launch-failed}" >> "$out/results.txt"
    if [ -z "$result" ] || ! grep -q 'status=0' <<< "$report"; then
        cp "$err" "$out/failed-$(echo "$label" | tr -c 'A-Za-z0-9=\n' '_').stderr"
    fi
}

over_budget() {
    [ $(( $(date +%s) - start )) -ge "$BUDGET_S" ]
}

# summary: median wall_ms (gcbench) or mark_ms (mark-live) per label.
summarize() {
    awk '
    function med(s,   n, a, i, j, t) {
        n = split(s, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        key = $1; v = ""; rss = ""
        for (i = 2; i <= NF; i++) {
            split($i, kv, "=")
            if (kv[1] == "mark_ms" || (kv[1] == "wall_ms" && v == "")) v = kv[2]
            if (kv[1] == "maxrss_kib") rss = kv[2]
        }
        if ($0 ~ /status=missing/) { skipped[key]++; next }
        if (v == "") { bad[key]++; next }
        if (!(key in vals)) order[++n] = key
        vals[key] = vals[key] " " v; rsss[key] = rsss[key] " " rss; cnt[key]++
    }
    END {
        printf "%-44s %6s %12s %14s\n", "configuration", "runs", "median ms", "median RSS MiB"
        for (k = 1; k <= n; k++) {
            key = order[k]
            printf "%-44s %6d %12.1f %14.1f\n", key, cnt[key], med(vals[key]), med(rsss[key]) / 1024
        }
        for (key in bad) printf "%-44s %6d failed runs (see results.txt)\n", key, bad[key]
        for (key in skipped) printf "%-44s skipped: its program was not packed\n", key
    }' "$out/results.txt"
}

run() {
    out=${1:-${OUT:-./multicore-out}}
    mkdir -p "$out" || exit 2
    : "${BUDGET_S:=420}" "${RUN_TIMEOUT_S:=120}" "${ROUNDS:=3}" "${COLLECTIONS:=3}"
    : "${THREADS:=1 4 16}" "${MARKERS:=1 2 4 8 16}" "${OBJECTS:=8000000}"
    local gcb_args=()
    if [ "${QUICK:-0}" = 1 ]; then
        THREADS="1 2" MARKERS="1 2" OBJECTS=200000 ROUNDS=1 COLLECTIONS=2
        gcb_args=(--stretch 14 --long-lived 12 --max 12)
    fi
    start=$(date +%s)
    : > "$out/results.txt"
    { echo "nproc: $(nproc)"; uname -a; lscpu 2>/dev/null; } > "$out/machine.txt"
    local r t m shape stopped=""
    for ((r = 1; r <= ROUNDS; r++)); do
        for t in $THREADS; do
            over_budget && { stopped="gcbench-mt round $r, $t threads"; break 2; }
            one "gcbench-mt/t=$t/rudo" "" gcbench-rudo --threads "$t" "${gcb_args[@]}"
            one "gcbench-mt/t=$t/rudo-gen" "RUDO_GENERATIONAL=1" gcbench-rudo --threads "$t" "${gcb_args[@]}"
            one "gcbench-mt/t=$t/bdwgc" "" gcbench-bdwgc --threads "$t" "${gcb_args[@]}"
            one "gcbench-mt/t=$t/mimalloc" "" gcbench-mimalloc --threads "$t" "${gcb_args[@]}"
            one "gcbench-mt/t=$t/glibc" "" gcbench-glibc --threads "$t" "${gcb_args[@]}"
        done
    done
    if [ -z "$stopped" ]; then
        for shape in list tree graph; do
            for m in $MARKERS; do
                over_budget && { stopped="mark-live $shape, $m markers"; break 2; }
                one "mark-$shape/m=$m/rudo" "RUDO_MARKERS=$m" mark-live-rudo --shape "$shape" \
                    --objects "$OBJECTS" --collections "$COLLECTIONS"
                one "mark-$shape/m=$m/bdwgc" "GC_MARKERS=$m" mark-live-bdwgc --shape "$shape" \
                    --objects "$OBJECTS" --collections "$COLLECTIONS"
            done
        done
    fi
    rm -f "$out/.report" "$out/.stdout" "$out/.stderr"
    {
        echo "elapsed $(( $(date +%s) - start )) s of a $BUDGET_S s budget on $(nproc) CPUs"
        [ -n "$stopped" ] && echo "budget spent: stopped before $stopped"
        summarize
    } > "$out/summary.txt"
    cat "$out/summary.txt"
}

case "$cmd" in
pack) shift; [ $# -ge 1 ] || { echo "usage: $0 pack DIR [BUILD]" >&2; exit 64; }; pack "$@" ;;
run) shift; run "$@" ;;
*) echo "usage: $0 pack DIR [BUILD] | run [OUT]" >&2; exit 64 ;;
esac
