#!/bin/sh
# accept.sh — one acceptance run of a Debian program on rudo's libgc.so.1
# (issue 12, section 3): the program runs once on the system's libgc and
# once on rudo's (LD_LIBRARY_PATH), on the same generated input. The test
# passes when
#  - standard output (and standard error, less rudo's report lines) are
#    byte-identical, and so are the exit statuses;
#  - the rudo run really loaded rudo's library: RUDO_COMPAT_REPORT=1 makes
#    it print "rudo-compat: <file it was loaded from>: N collections" at
#    exit, which names LIBDIR/libgc.so.1 (the system's prints nothing);
#  - the rudo run collected at least MIN times (a small initial heap,
#    RUDO_HEAP_INITIAL, forces collections).
# Exit 77 (ctest: skipped) with a message when the program is missing.
# Prints the wall time and peak RSS of both runs (docs/performance.md).
#
# Usage: accept.sh PROGRAM LIBDIR RUSAGE [HOMFLY_PROGRAM]
# Environment: ACCEPT_PRELOAD (see the rudo run below).
set -eu
prog=$1
lib=$(cd "$2" && pwd)
rusage=$3
# A tmpfs when there is one: mmv's and chase's thousands of files are
# metadata-heavy, and a disk file system makes the setup dominate.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    tmp=$(mktemp -d -p /dev/shm)
else
    tmp=$(mktemp -d)
fi
trap 'rm -rf "$tmp"' EXIT
skip() { echo "SKIP: $*"; exit 77; }
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 is not installed (apt-get install $2)"; }
[ -e "$lib/libgc.so.1" ] || { echo "FAIL: no $lib/libgc.so.1"; exit 1; }

# Each case writes $tmp/setup.sh (run before each of the two runs, not
# timed), $tmp/run.sh (timed), and sets heap (RUDO_HEAP_INITIAL) and min.
: > "$tmp/setup.sh"
case $prog in
w3m)
    need w3m w3m
    # About 4 MB of HTML: headings, paragraphs, links, lists and tables.
    awk 'BEGIN {
        srand(1); print "<html><head><title>rudo</title></head><body>";
        for (i = 0; i < 20000; i++) {
            printf "<h2>Section %d</h2><p>", i;
            for (w = 0; w < 12; w++) printf "word%d ", int(rand() * 100000);
            printf "<a href=\"#s%d\">link %d</a></p>\n", i, i;
            if (i % 7 == 0) { printf "<ul>"; for (k = 0; k < 5; k++) printf "<li>item %d</li>", k; print "</ul>" }
            if (i % 50 == 0) {
                printf "<table border=1>";
                for (r = 0; r < 8; r++) { printf "<tr>"; for (c = 0; c < 6; c++) printf "<td>%d,%d</td>", r, c; printf "</tr>" }
                print "</table>";
            }
        }
        print "</body></html>" }' > "$tmp/page.html"
    echo "w3m -dump -cols 100 '$tmp/page.html'" > "$tmp/run.sh"
    heap=64K min=10 ;;
mmv)
    need mmv mmv
    # 20 000 empty files renamed *.txt -> *.dat, then the directory listed.
    cat > "$tmp/setup.sh" <<EOS
rm -rf '$tmp/d' && mkdir '$tmp/d' && cd '$tmp/d' &&
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "f%05d.txt\n", i }' | xargs touch
EOS
    echo "cd '$tmp/d' && mmv -v '*.txt' '#1.dat' && ls" > "$tmp/run.sh"
    heap=64K min=3 ;;
chase)
    need chase chase
    need python3 python3
    # 3000 targets, each behind three levels of symlinks (9000 links), and
    # a loop, resolved from a list of names.
    mkdir "$tmp/c" "$tmp/c/d"
    python3 - "$tmp/c" <<'EOP'
import os, sys
os.chdir(sys.argv[1])
with open("list", "w") as names:
    for i in range(3000):
        open(f"d/t{i}", "w").close()
        os.symlink(f"d/t{i}", f"a{i}")
        os.symlink(f"a{i}", f"b{i}")
        os.symlink(f"../c/b{i}", f"c{i}")
        names.write(f"c{i}\n")
    os.symlink("loop1", "loop2")
    os.symlink("loop2", "loop1")
    names.write("loop1\n")
EOP
    echo "cd '$tmp/c' && chase -f list" > "$tmp/run.sh"
    heap=64K min=8 ;;
debfoster)
    need debfoster debfoster
    [ -r /var/lib/dpkg/status ] || skip "no /var/lib/dpkg/status"
    # Read-only and deterministic: no keeper file read (-n) or written (it
    # is only written when asked), no default rules (-i); orphans, and the
    # dependency closures of the packages installed here.
    pkgs=$(awk '/^Package: /{p=$2} /^Status: .* installed$/{print p}' /var/lib/dpkg/status | sort | head -12)
    { echo "debfoster -n -i -k '$tmp/keep' -s"
      for p in $pkgs; do
          echo "debfoster -n -i -k '$tmp/keep' -d $p"
          echo "debfoster -n -i -k '$tmp/keep' -r $p"
          echo "debfoster -n -i -k '$tmp/keep' -e $p"
      done; } > "$tmp/run.sh"
    heap=256K min=50 ;;
homfly)
    [ $# -ge 4 ] && [ -x "$4" ] || skip "libhomfly-dev is not installed (apt-get install libhomfly0 libhomfly-dev)"
    echo "'$4'" > "$tmp/run.sh"
    heap=16K min=1 ;;
*)
    echo "FAIL: unknown program $prog"; exit 1 ;;
esac

# ACCEPT_HEAP overrides the initial heap of the rudo run (perf.py measures
# rudo's default too); the minimum of collections is then not checked.
if [ -n "${ACCEPT_HEAP:-}" ]; then heap=$ACCEPT_HEAP min=0; fi

run() { # run NAME ENV...: runs setup then the timed command with ENV
    name=$1; shift
    sh "$tmp/setup.sh"
    set +e
    env "$@" "$rusage" sh "$tmp/run.sh" > "$tmp/$name.out" 2> "$tmp/$name.err"
    echo "exit $?" >> "$tmp/$name.out"
    set -e
    grep '^rusage: ' "$tmp/$name.err" | sed "s/^rusage:/$name:/"
    grep -v '^rudo-compat: \|^rusage: ' "$tmp/$name.err" > "$tmp/$name.err2" || true
}
run system -u LD_LIBRARY_PATH -u RUDO_COMPAT_REPORT
# ACCEPT_PRELOAD: the sanitizer runtime, for a libgc.so.1 built with
# AddressSanitizer (the programs themselves are not instrumented).
run rudo LD_LIBRARY_PATH="$lib" RUDO_COMPAT_REPORT=1 RUDO_HEAP_INITIAL=$heap \
    ${ACCEPT_PRELOAD:+"LD_PRELOAD=$ACCEPT_PRELOAD"} ${ACCEPT_PRELOAD:+"ASAN_OPTIONS=detect_leaks=0"}

fail=0
if grep -q '^rudo-compat: ' "$tmp/system.err"; then
    echo "FAIL: the system run printed rudo's report: it did not use the system's libgc"; fail=1
fi
loaded=$(grep -c "^rudo-compat: $lib/libgc.so.1: " "$tmp/rudo.err" || true)
if [ "$loaded" -eq 0 ]; then
    echo "FAIL: the rudo run did not load $lib/libgc.so.1:"; grep '^rudo-compat' "$tmp/rudo.err" || true; fail=1
fi
gcs=$(sed -n "s|^rudo-compat: .*: \([0-9]*\) collections\$|\1|p" "$tmp/rudo.err" | awk '{s += $1} END {print s + 0}')
echo "rudo: $loaded process(es) on $lib/libgc.so.1, $gcs collections (at least $min wanted)"
[ "$gcs" -ge "$min" ] || { echo "FAIL: too few collections"; fail=1; }
if ! cmp -s "$tmp/system.out" "$tmp/rudo.out"; then
    echo "FAIL: standard output (or exit status) differs:"; diff "$tmp/system.out" "$tmp/rudo.out" | head -20; fail=1
fi
if ! cmp -s "$tmp/system.err2" "$tmp/rudo.err2"; then
    echo "FAIL: standard error differs:"; diff "$tmp/system.err2" "$tmp/rudo.err2" | head -20; fail=1
fi
echo "output: $(wc -c < "$tmp/system.out") bytes, $(tail -n 1 "$tmp/system.out")"
[ $fail -eq 0 ] && echo "PASS: $prog"
exit $fail
