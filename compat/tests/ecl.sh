#!/bin/sh
# ecl.sh — ECL's own regression tests (Debian's source package of ecl,
# src/tests: the make-check suite, 263 tests) with Debian's ecl on the
# system's libgc and on rudo's libgc.so.1 (issue 13, acceptance 3;
# docs/compat.md).
#
# The suite runs as ECL's `make check` runs it (src/tests/Makefile.in,
# config.lsp.in: run-tests), with the bytecodes compiler (BYTECMP): the C
# compiler makes the cmp suite spend a minute and a half in gcc, not in the
# collector; TEST_LONG=1 installs the C compiler as `make check` does. The
# processes the tests start (TEST_IMAGE, run-program) inherit the library.
# Each run prints the libgc.so.1 its ecl mapped (/proc/self/maps), so the
# test checks which library ran without changing the programs' output.
#
# The test passes when both runs report the same number of tests, and every
# test that fails on rudo also fails on the system's libgc, is known to be
# flaky (below: timing-dependent tests), or passes when run alone on rudo
# (two tries at most; named in the output). Exit 77 (skipped) with a message
# when ecl, its source or the network is missing, or when the suite is
# listed in xfail.txt and fails.
#
# Usage: ecl.sh LIBDIR RUSAGE WORKDIR
set -eu
lib=$(cd "$1" && pwd)
rusage=$2
work=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/xfail.sh"
skip() { echo "SKIP: $*"; exit 77; }
[ -e "$lib/libgc.so.1" ] || { echo "FAIL: no $lib/libgc.so.1"; exit 1; }
command -v ecl >/dev/null 2>&1 || skip "ecl is not installed (apt-get install ecl)"
rc=0; src=$(sh "$here/fetch-src.sh" ecl) || rc=$?
[ $rc -eq 0 ] || { [ $rc -eq 77 ] && skip "no source of ecl (see above)"; echo "FAIL: fetching ecl's source"; exit 1; }
tests="$src/src/tests"
[ -f "$tests/doit.lsp" ] || { echo "FAIL: no $tests/doit.lsp"; exit 1; }

# Timing-dependent in ECL's suite (they fail now and then on the system's
# libgc too, more often on a loaded machine): fairness of mutexes, mailbox
# hand-off between threads, barriers checked 10 ms after a thread starts,
# a FIFO read racing its writer (UNBLOCK-3 also counts the threads past
# the barrier 10 ms after the last one arrived: failed once on rudo in CI
# on a loaded 2-core machine, 3 of its 21 checks), semaphores under interrupts
# (SEM-SIGNAL-*: "Known fails" in ECL's own ecl-tests.lisp), a mailbox
# read by N threads without blocking, and a lock whose first taker must be
# the first thread started (MUTEX-004-INTERRUPTIBLE: it counts on thread 0
# winning the race; both failed on the system's libgc here, the mailbox
# test in one of two whole-suite runs, the lock test in one of six tries).
flaky="MUTEX-003-FAIRNESS MBOX-BLOCKS-1-TO-1 MBOX-1-TO-N-BLOCKING MP.BARRIER.BLOCKING
       MP.BARRIER.UNBLOCK-1 MP.BARRIER.UNBLOCK-2 MP.BARRIER.UNBLOCK-3 MIX.0016.FIFO-TESTS SEM-INTERRUPTED-RESIGNALS
       SEM-SIGNAL-N-PROCESSES SEM-SIGNAL-ONLY-N-PROCESSES MBOX-1-TO-N-NON-BLOCKING
       MUTEX-004-INTERRUPTIBLE"
flaky=$(echo $flaky) # one space between names: the match below needs it

compiler='(ignore-errors (ext:install-c-compiler))'
[ "${TEST_LONG:-0}" = 1 ] || compiler=t
mkdir -p "$work"
ecl=$(command -v ecl)
limit=600      # the system run's limit; the rudo run's is set from its time
suite="(2am-ecl:run 'make-check)"
run() { # run NAME ENV...: the suite in a sandbox of its own, killed after $limit s
    who=$1; shift
    rm -rf "$work/$who" && mkdir -p "$work/$who"
    set +e
    (cd "$work/$who" && env "$@" TEST_IMAGE="$ecl" BYTECMP=$([ "$compiler" = t ] && echo 1) \
        "$rusage" timeout -k 10 "$limit" "$ecl" -norc \
        -eval '(with-open-file (s "/proc/self/maps") (loop for l = (read-line s nil) while l when (search "libgc.so" l) do (format t "maps: ~a~%" (subseq l (position #\/ l))) (return)))' \
        -eval '(ext:install-bytecodes-compiler)' -eval "$compiler" \
        -load "$tests/doit.lsp" -eval '(in-package cl-test)' \
        -eval "$suite" -eval '(ext:exit)' < /dev/null) > "$work/$who.log" 2>&1
    echo $? > "$work/$who.rc"
    set -e
    grep '^rusage: ' "$work/$who.log" | sed "s/^rusage:/$who:/" || true
    awk '/^Failure details/ { f = 1; next } f && /^ [^ ].*:$/ { sub(/^ /, ""); sub(/:$/, ""); print }' \
        "$work/$who.log" | sort -u > "$work/$who.fails"
}
run system -u LD_LIBRARY_PATH
# A rudo run that hangs (a livelock on a freed lock word, say) is killed at
# three times the system run's time plus a minute, within ctest's 900 s
# for the two: a hang reads as a failure with its output, not as ctest's
# timeout.
limit=$(sed -n 's/^rusage: wall_s=\([0-9]*\).*/\1/p' "$work/system.log" |
        awk '{ l = 3 * $1 + 60; m = 870 - $1; print (l < m ? l : m) }')
run_rudo() { # run_rudo NAME: run NAME on rudo's libgc.so.1
    run "$1" LD_LIBRARY_PATH="$lib" \
        ${ACCEPT_PRELOAD:+"LD_PRELOAD=$ACCEPT_PRELOAD"} ${ACCEPT_PRELOAD:+"ASAN_OPTIONS=detect_leaks=0"}
}
run_rudo rudo

did() { sed -n 's/^Did \([0-9]*\) tests.*/\1/p' "$work/$1.log" | tail -1; }
sys_n=$(did system) rudo_n=$(did rudo)
[ -n "$sys_n" ] || { tail -20 "$work/system.log"; skip "ECL's suite does not complete on the system's libgc"; }
echo "system: $(grep '^maps: ' "$work/system.log" | head -1)"
echo "system: $(grep '^Did ' "$work/system.log" | tail -1); failing: $(tr '\n' ' ' < "$work/system.fails")"
ok=0
real=$(readlink -f "$lib/libgc.so.1")
if ! grep -q "^maps: $real\$" "$work/rudo.log"; then
    echo "FAIL: the rudo run did not map $real:"; grep '^maps: ' "$work/rudo.log" || true
    ok=1
fi
if [ -z "$rudo_n" ]; then
    rrc=$(cat "$work/rudo.rc")
    [ "$rrc" -eq 124 ] || [ "$rrc" -eq 137 ] && echo "rudo: killed after $limit s (hung?)"
    echo "rudo: the suite did not complete (exit $rrc); the last 30 lines:"
    tail -30 "$work/rudo.log"
    ok=1
else
    echo "rudo: $(grep '^Did ' "$work/rudo.log" | tail -1); failing: $(tr '\n' ' ' < "$work/rudo.fails")"
    [ "$sys_n" = "$rudo_n" ] || { echo "FAIL: $sys_n tests on the system's libgc, $rudo_n on rudo's"; ok=1; }
    for t in $(comm -13 "$work/system.fails" "$work/rudo.fails"); do
        case " $flaky " in
        *" $t "*) echo "known flaky, failed on rudo only: $t"; continue ;;
        esac
        # Not on the list: run it alone on rudo, twice at most. A test
        # that passes alone was disturbed by timing in the suite (ECL's
        # thread tests sleep and count); it is named, not hidden. One
        # that fails alone too fails the test.
        echo "failed on rudo only, not on the flaky list: $t; running it alone on rudo"
        again=1
        for try in 1 2; do
            suite="(2am-ecl:run '(cl-test::$t))"; limit=120
            run_rudo "rerun-$try"
            if grep -q '^Did 1 test' "$work/rerun-$try.log" && [ ! -s "$work/rerun-$try.fails" ]; then
                echo "  passed alone (try $try): counted as timing-dependent in the suite"
                again=0
                break
            fi
        done
        if [ $again -ne 0 ]; then
            echo "FAIL: $t fails on rudo only (and alone, twice):"
            awk -v t=" $t:" '$0 == t { f = 1; print; next } f && /^ [^ ]/ { exit } f' "$work/rudo.log" | head -12
            ok=1
        fi
    done
    for t in $(comm -23 "$work/system.fails" "$work/rudo.fails"); do
        echo "fails on the system's libgc only: $t"
    done
fi
verdict compat_ecl $ok
