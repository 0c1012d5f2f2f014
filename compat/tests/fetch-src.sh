#!/bin/sh
# fetch-src.sh — Debian's source package of an installed binary package,
# unpacked once into a cache, for the tier-2 acceptance tests (bdwgc's own
# test programs, ECL's regression tests; docs/compat.md).
#
# The system's apt configuration is left alone: a private one (its own
# sources list with one deb-src line, its own lists and cache, under the
# cache directory) runs `apt-get source` for the version of the source
# package that the installed binary package was built from.
#
# Usage: fetch-src.sh BINARY_PACKAGE
# Prints the directory of the unpacked source on stdout. Exit 77 (ctest:
# skipped) with a message on stderr when the binary package is not
# installed, when dpkg-source is missing, or when deb.debian.org cannot be
# reached; 1 on any other failure.
# Environment: RUDO_SRC_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/rudo-src).
# Concurrent callers (ctest -j) serialize on a lock in the cache.
set -eu
bin=$1
skip() { echo "SKIP: $*" >&2; exit 77; }
ver=$(dpkg-query -W -f '${source:Version}' "$bin" 2>/dev/null) ||
    skip "$bin is not installed"
src=$(dpkg-query -W -f '${source:Package}' "$bin")
command -v dpkg-source >/dev/null 2>&1 || skip "dpkg-source is missing (apt-get install dpkg-dev)"
command -v flock >/dev/null 2>&1 || skip "flock is missing (apt-get install util-linux)"
cache=${RUDO_SRC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rudo-src}
mkdir -p "$cache"
uver=${ver#*:}                  # no epoch in file names
dir="$cache/$src-$uver"
exec 9> "$cache/.lock"
flock 9
if [ -f "$dir/.rudo-unpacked" ]; then echo "$dir"; exit 0; fi

apt="$cache/.apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/parts"
. /etc/os-release
suite=${VERSION_CODENAME:-bookworm}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || skip "no $keyring (apt-get install debian-archive-keyring)"
cat > "$apt/sources.list" <<EOS
deb-src [signed-by=$keyring] http://deb.debian.org/debian $suite main
deb-src [signed-by=$keyring] http://deb.debian.org/debian $suite-updates main
deb-src [signed-by=$keyring] http://deb.debian.org/debian-security $suite-security main
EOS
aptget() {
    apt-get -q -o Dir::Etc::SourceList="$apt/sources.list" \
        -o Dir::Etc::SourceParts="$apt/parts" -o Dir::State::Lists="$apt/lists" \
        -o Dir::Cache="$apt/cache" -o Debug::NoLocking=1 \
        -o APT::Sandbox::User=root -o Acquire::Retries=1 \
        -o Acquire::http::Timeout=20 "$@"
}
if ! aptget update > "$apt/update.log" 2>&1 || grep -q '^\(Err\|W: Failed\)' "$apt/update.log"; then
    if ! grep -q '^Get:\|^Hit:' "$apt/update.log"; then
        tail -3 "$apt/update.log" >&2
        skip "cannot reach deb.debian.org for the source of $src (no network?)"
    fi
fi
work="$cache/.work-$src"
rm -rf "$work" && mkdir -p "$work"
if ! (cd "$work" && aptget source "$src=$ver") > "$apt/source.log" 2>&1; then
    tail -5 "$apt/source.log" >&2
    echo "FAIL: apt-get source $src=$ver" >&2; exit 1
fi
unpacked=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)
[ -n "$unpacked" ] || { echo "FAIL: apt-get source $src=$ver unpacked nothing" >&2; exit 1; }
rm -rf "$dir"
mv "$unpacked" "$dir"
rm -rf "$work"
touch "$dir/.rudo-unpacked"
echo "$dir"
