#!/bin/sh
# guile.sh — Debian's guile-3.0, unchanged, on the system's libgc and on
# rudo's libgc.so.1 (issue 13, acceptance 2; docs/compat.md).
#
#   guile.sh compile LIBDIR RUSAGE
#     guild compile -O2 of ice-9/boot-9.scm (Guile's largest module, as
#     shipped in guile-3.0-libs): the two .go files must be byte-identical.
#   guile.sh SCRIPT.scm LIBDIR RUSAGE
#     one of compat/tests/guile/*.scm: standard output and exit status must
#     be identical (standard error is shown, not compared: it carries rudo's
#     report and warnings). A script with a SCRIPT.expected file beside it
#     has an exact answer: rudo's output must equal that file, and the
#     system's run is compared with it only for information (bdwgc's
#     conservative scan may keep a dead weak entry: once, in CI, it kept
#     one of weak-tables.scm's 2000 dead keys).
#
# Both check that the rudo run loaded LIBDIR/libgc.so.1 (RUDO_COMPAT_REPORT
# names the file) and print wall time and peak RSS of both runs. Exit 77
# (skipped) with a message when guile-3.0 is missing, or when the test is
# listed in xfail.txt and fails.
set -eu
what=$1
lib=$(cd "$2" && pwd)
rusage=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/xfail.sh"
skip() { echo "SKIP: $*"; exit 77; }
[ -e "$lib/libgc.so.1" ] || { echo "FAIL: no $lib/libgc.so.1"; exit 1; }
guile=$(command -v guile-3.0 || true)
[ -n "$guile" ] || skip "guile-3.0 is not installed (apt-get install guile-3.0)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case $what in
compile)
    name=compat_guile_compile
    command -v guild-3.0 >/dev/null 2>&1 || skip "guild-3.0 is missing (apt-get install guile-3.0-dev)"
    boot9=$("$guile" --no-auto-compile -c '(display (%search-load-path "ice-9/boot-9.scm"))' 2>/dev/null || true)
    [ -r "$boot9" ] || skip "ice-9/boot-9.scm is not installed (guile-3.0-libs)"
    # Each run writes boot-9.go in a directory of its own (guild prints the
    # name it wrote, which must not differ).
    cmd() { echo "mkdir -p '$tmp/$1' && cd '$tmp/$1' && guild-3.0 compile -O2 -o boot-9.go '$boot9'"; } ;;
*.scm)
    name=compat_guile_$(basename "$what" .scm | tr - _)
    script="$here/guile/$what"
    [ -r "$script" ] || { echo "FAIL: no $script"; exit 1; }
    cmd() { echo "'$guile' --no-auto-compile -s '$script'"; } ;;
*) echo "FAIL: unknown case $what"; exit 1 ;;
esac

run() { # run NAME ENV...: the command with ENV; Guile writes no cache of its own;
    # ACCEPT_TIMEOUT (default 240 s): a hung run is killed (exit 124) and
    # fails with its output, rather than running into ctest's timeout
    who=$1; shift
    set +e
    (cd "$tmp" && env "$@" HOME="$tmp" XDG_CACHE_HOME="$tmp/cache" GUILE_AUTO_COMPILE=0 \
        "$rusage" timeout -k 10 "${ACCEPT_TIMEOUT:-240}" sh -c "$(cmd "$who")") \
        > "$tmp/$who.out" 2> "$tmp/$who.err"
    echo "exit $?" >> "$tmp/$who.out"
    set -e
    grep '^rusage: ' "$tmp/$who.err" | sed "s/^rusage:/$who:/" || true
}
run system -u LD_LIBRARY_PATH -u RUDO_COMPAT_REPORT
if [ "$(tail -n 1 "$tmp/system.out")" != "exit 0" ]; then
    tail -20 "$tmp/system.err"
    skip "$what fails on the system's libgc too"
fi
run rudo LD_LIBRARY_PATH="$lib" RUDO_COMPAT_REPORT=1 \
    ${ACCEPT_PRELOAD:+"LD_PRELOAD=$ACCEPT_PRELOAD"} ${ACCEPT_PRELOAD:+"ASAN_OPTIONS=detect_leaks=0"}
ok=0
if ! grep -q "^rudo-compat: $lib/libgc.so.1: " "$tmp/rudo.err"; then
    echo "FAIL: the rudo run did not load $lib/libgc.so.1 (or did not exit normally)"; ok=1
else
    grep "^rudo-compat: " "$tmp/rudo.err"
fi
ref="$tmp/system.out"
expected="$here/guile/$(basename "$what" .scm).expected"
if [ "$what" != compile ] && [ -r "$expected" ]; then
    ref=$expected
    if ! cmp -s "$expected" "$tmp/system.out"; then
        echo "note: the system's libgc does not give the exact answer (not a failure):"
        diff "$expected" "$tmp/system.out" | head -10
    fi
fi
if ! cmp -s "$ref" "$tmp/rudo.out"; then
    echo "FAIL: standard output (or exit status) differs from $ref:"; diff "$ref" "$tmp/rudo.out" | head -20; ok=1
fi
if [ "$what" = compile ] && [ $ok -eq 0 ]; then
    if cmp "$tmp/system/boot-9.go" "$tmp/rudo/boot-9.go"; then
        echo "boot-9.go: $(wc -c < "$tmp/rudo/boot-9.go") bytes, identical"
    else
        ok=1
    fi
fi
if [ $ok -ne 0 ]; then
    echo "rudo's standard error (the last 30 lines):"; tail -30 "$tmp/rudo.err"
fi
verdict "$name" $ok
