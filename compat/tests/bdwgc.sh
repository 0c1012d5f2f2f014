#!/bin/sh
# bdwgc.sh — one of bdwgc 8.2.2's own test programs (Debian's source package
# of libgc, tests/) on rudo's libgc.so.1 (issue 13, acceptance 1;
# docs/compat.md).
#
# The program is built as bdwgc's `make check` builds it, with Debian's
# configure options (for its config.h: the same feature macros as Debian's
# libgc1), but against Debian's installed headers (/usr/include/gc, ahead
# of the source's own include/, which only supplies private/) and linked
# with the system's -lgc (-lgccpp, -lcord): a client binary like any other.
# It then runs on the system's libgc and on rudo's (LD_LIBRARY_PATH). The
# test passes when both exit 0 and the rudo run loaded LIBDIR/libgc.so.1
# (RUDO_COMPAT_REPORT names the file it was loaded from). Exit 77 (ctest:
# skipped) with a message when a package, the source or the network is
# missing, when the program fails on the system's libgc too, or when it is
# listed in xfail.txt and fails.
#
# Usage: bdwgc.sh TEST LIBDIR RUSAGE WORKDIR
#   WORKDIR: where the configured tree and the programs go (shared by the
#   tests; concurrent runs serialize on a lock there)
# Environment: ACCEPT_PRELOAD (as in accept.sh), RUDO_SRC_CACHE (fetch-src.sh).
set -eu
name=$1
lib=$(cd "$2" && pwd)
rusage=$3
work=$4
here=$(cd "$(dirname "$0")" && pwd)
. "$here/xfail.sh"
skip() { echo "SKIP: $*"; exit 77; }
[ -e "$lib/libgc.so.1" ] || { echo "FAIL: no $lib/libgc.so.1"; exit 1; }
[ -r /usr/include/gc/gc.h ] || skip "Debian's gc.h is missing (apt-get install libgc-dev)"
command -v gcc >/dev/null 2>&1 || skip "gcc is missing"
command -v make >/dev/null 2>&1 || skip "make is missing"
rc=0; src=$(sh "$here/fetch-src.sh" libgc1) || rc=$?
[ $rc -eq 0 ] || { [ $rc -eq 77 ] && skip "no source of libgc (see above)"; echo "FAIL: fetching libgc's source"; exit 1; }

# bdwgc's test programs, as tests/tests.am builds them; run with no
# arguments, as `make check` runs them, but disclaim_bench (below).
cc=gcc extra= libs="-lgc" args=
case $name in
gctest)                   files=tests/test.c ;;
leaktest)                 files=tests/leak_test.c ;;
middletest)               files=tests/middle.c ;;
smashtest)                files=tests/smash_test.c ;;
hugetest)                 files=tests/huge_test.c ;;
realloc_test)             files=tests/realloc_test.c ;;
staticrootstest)          files=tests/staticrootstest.c extra=-DSTATICROOTSLIB2 ;;
threadleaktest)           files=tests/thread_leak_test.c ;;
threadkey_test)           files=tests/threadkey_test.c ;;
subthreadcreate_test)     files=tests/subthread_create.c ;;
initsecondarythread_test) files=tests/initsecondarythread.c ;;
disclaim_test)            files=tests/disclaim_test.c ;;
disclaim_bench)
    # All three models (0 finalizers, 1 finalize on reclaim: disclaim, 2
    # none) take a minute on the system's libgc here; the test runs model
    # 1, the one the program is for, and all three with TEST_LONG=1.
    files=tests/disclaim_bench.c
    [ "${TEST_LONG:-0}" = 1 ] || args=1 ;;
disclaim_weakmap_test)    files=tests/disclaim_weakmap_test.c ;;
test_cpp)
    cc=g++ files=tests/test_cpp.cc libs="-lgccpp -lgc"
    command -v g++ >/dev/null 2>&1 || skip "g++ is missing (apt-get install g++)" ;;
*) echo "FAIL: unknown test $name"; exit 1 ;;
esac

mkdir -p "$work"
exec 8> "$work/.lock"
flock 8
cfg="$work/cfg"
if [ ! -f "$cfg/include/config.h" ]; then
    rm -rf "$cfg" && mkdir -p "$cfg"
    # Debian's options (debian/rules: COMMON_CONFIG, build-dynamic); only
    # config.h is used.
    if ! (cd "$cfg" && "$src/configure" --enable-cplusplus --disable-dependency-tracking \
            --prefix=/usr --with-libatomic-ops=none --enable-shared --disable-static) \
            > "$work/configure.log" 2>&1; then
        tail -20 "$work/configure.log"; echo "FAIL: bdwgc's configure"; exit 1
    fi
fi
flock -u 8
bin="$work/bin"
mkdir -p "$bin"
flags="-DHAVE_CONFIG_H -I$cfg/include -I/usr/include/gc -I$src/include -g -O2 -fexceptions -pthread -w"
if [ "$name" = staticrootstest ]; then
    # Two libraries with static roots, as libstaticrootslib*_test.la.
    $cc $flags -fPIC -shared "$src/tests/staticrootslib.c" -o "$bin/libstaticrootslib_test.so" -lgc
    $cc $flags -fPIC -shared -DSTATICROOTSLIB2 "$src/tests/staticrootslib.c" -o "$bin/libstaticrootslib2_test.so" -lgc
    libs="-L$bin -Wl,-rpath,$bin -lstaticrootslib_test -lstaticrootslib2_test $libs"
fi
if ! $cc $flags $extra "$src/$files" -o "$bin/$name" $libs -ldl > "$work/$name.build.log" 2>&1; then
    cat "$work/$name.build.log"; echo "FAIL: building $name"; exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() { # run NAME ENV...
    who=$1; shift
    set +e
    # ACCEPT_TIMEOUT (default 240 s): a hung run is killed and fails with
    # its output (exit 124), rather than running into ctest's timeout.
    (cd "$tmp" && env "$@" "$rusage" timeout -k 10 "${ACCEPT_TIMEOUT:-240}" "$bin/$name" $args) \
        > "$tmp/$who.out" 2>&1
    echo $? > "$tmp/$who.rc"
    set -e
    grep '^rusage: ' "$tmp/$who.out" | sed "s/^rusage:/$who:/" || true
}
run system -u LD_LIBRARY_PATH -u RUDO_COMPAT_REPORT
if [ "$(cat "$tmp/system.rc")" -ne 0 ]; then
    tail -20 "$tmp/system.out"
    skip "$name fails on the system's libgc too (exit $(cat "$tmp/system.rc"))"
fi
run rudo LD_LIBRARY_PATH="$lib" RUDO_COMPAT_REPORT=1 \
    ${ACCEPT_PRELOAD:+"LD_PRELOAD=$ACCEPT_PRELOAD"} ${ACCEPT_PRELOAD:+"ASAN_OPTIONS=detect_leaks=0"}
ok=0
rrc=$(cat "$tmp/rudo.rc")
if [ "$rrc" -ne 0 ]; then
    echo "rudo run: exit $rrc; its output (the last 30 lines):"
    grep -v '^rusage: ' "$tmp/rudo.out" | tail -30
    ok=1
elif ! grep -q "^rudo-compat: $lib/libgc.so.1: " "$tmp/rudo.out"; then
    echo "FAIL: the rudo run did not load $lib/libgc.so.1:"; grep '^rudo-compat' "$tmp/rudo.out" || true
    ok=1
elif [ "$name" = disclaim_weakmap_test ] &&
     removed=$(sed -n 's/.*; \([0-9]*\) removed,.*/\1/p' "$tmp/rudo.out") &&
     [ "${removed:-0}" -eq 0 ]; then
    # It passes even when no disclaim procedure ever runs (the map only
    # grows): the weak map must have lost entries, as on the system's libgc.
    echo "FAIL: the weak map lost no entry (the disclaim procedure never ran):"
    grep 'removed' "$tmp/system.out" "$tmp/rudo.out" | sed "s|$tmp/||"
    ok=1
elif [ "$name" = disclaim_bench ] &&
     awk '/(regular finalization|finalize on reclaim): / { if ($(NF-2) + 0 == 0) z = 1 } END { exit !z }' "$tmp/rudo.out"; then
    # It does not check that anything was finalized: a model with
    # finalization must show a ratio above 0, as on the system's libgc.
    echo "FAIL: no object finalized:"; grep 'finaliz' "$tmp/system.out" "$tmp/rudo.out" | sed "s|$tmp/||"
    ok=1
else
    grep '^rudo-compat: ' "$tmp/rudo.out" | head -3
    grep '^GC Warning' "$tmp/rudo.out" | sort | uniq -c | head -10 || true
fi
verdict "compat_bdwgc_$name" $ok
