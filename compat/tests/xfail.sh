# xfail.sh — sourced by the tier-2 acceptance scripts: xfail_reason NAME
# prints the reason NAME is listed in xfail.txt (nothing when it is not);
# verdict NAME OK exits the test: 0 pass, 1 fail, 77 expected failure.
xfail_reason() {
    awk -v n="$1" '$1 == n { $1 = ""; sub(/^ /, ""); print; exit }' \
        "$(dirname "$0")/xfail.txt"
}
verdict() { # verdict NAME OK(0|1)
    why=$(xfail_reason "$1")
    if [ "$2" -eq 0 ]; then
        if [ -n "$why" ]; then
            echo "FAIL: $1 passes now: remove it from compat/tests/xfail.txt ($why)"; exit 1
        fi
        echo "PASS: $1"; exit 0
    fi
    if [ -n "$why" ]; then echo "SKIP: expected failure: $why"; exit 77; fi
    echo "FAIL: $1"; exit 1
}
