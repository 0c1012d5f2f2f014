#!/bin/sh
# Installs the build into a temporary prefix and builds a tiny program
# against the installed copy, twice: through pkg-config (rudo.pc) and
# through CMake's find_package(rudo). Usage: install_test.sh BUILD_DIR
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cat > "$tmp/use.c" <<'C'
#include <rudo.h>
#include <stdio.h>
int main(void) {
    if (rudo_heap_create(NULL) != RUDO_OK) return 1;
    void **cell = rudo_malloc(2 * sizeof(void *));
    cell[0] = rudo_malloc_atomic(100);
    rudo_collect();
    int ok = rudo_is_heap_ptr(cell[0]) && rudo_size(cell[0]) >= 100;
    rudo_heap_destroy();
    printf("installed rudo works: %s\n", ok ? "yes" : "no");
    return ok ? 0 : 1;
}
C
pcdir=$(dirname "$(find "$tmp/prefix" -name rudo.pc | head -n 1)")
libdir=$(dirname "$pcdir")
# bdwgc's drop-in goes beside librudo, in a directory of its own (not on
# the default library path), when the build has it.
if [ -e "$build/compat/libgc.so.1" ]; then
    [ -e "$libdir/rudo-compat/libgc.so.1" ] || { echo "no $libdir/rudo-compat/libgc.so.1"; exit 1; }
    [ ! -e "$libdir/libgc.so.1" ] || { echo "libgc.so.1 installed on the library path"; exit 1; }
    echo "installed libgc.so.1 in $libdir/rudo-compat"
fi
PKG_CONFIG_PATH=$pcdir cc -std=c11 "$tmp/use.c" $(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs rudo) -pthread -o "$tmp/use_pc"
LD_LIBRARY_PATH=$libdir "$tmp/use_pc"
mkdir "$tmp/cm"
cp "$tmp/use.c" "$tmp/cm/use.c"
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(use_rudo C)
find_package(rudo REQUIRED)
add_executable(use use.c)
target_link_libraries(use PRIVATE rudo::rudo)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null
"$tmp/cm/b/use"
