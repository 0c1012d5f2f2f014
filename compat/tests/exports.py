#!/usr/bin/env python3
"""exports.py — checks rudo's libgc.so.1 against Debian's libgc1 8.2.2.

 1. The dynamic symbols it defines are exactly the libgc.so.1 section of
    Debian's symbols file (no name missing: BIND_NOW clients would not
    start; none extra: only bdwgc's names are exported).
 2. Each exported variable has the size of the system library's (clients
    read them through copy relocations), when the system library exists.
 3. Every stub in compat/stubs.c is listed as a stub in docs/compat.md, and
    nothing listed there as a stub is implemented.

Usage: exports.py LIBGC SOURCE_DIR [SYMBOLS_FILE [SYSTEM_LIBGC]]
Exit 77 (skipped) when the symbols file is absent.
"""
import os
import re
import subprocess
import sys


def defined(lib):
    """name -> (type, size) of the dynamic symbols lib defines."""
    out = subprocess.run(["nm", "-D", "-S", "--defined-only", lib],
                         capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4:
            syms[f[3]] = (f[2], int(f[1], 16))
        elif len(f) == 3:
            syms[f[2]] = (f[1], 0)
    return syms


def main():
    lib, src = sys.argv[1], sys.argv[2]
    symfile = sys.argv[3] if len(sys.argv) > 3 else "/var/lib/dpkg/info/libgc1:amd64.symbols"
    syslib = sys.argv[4] if len(sys.argv) > 4 else "/usr/lib/x86_64-linux-gnu/libgc.so.1"
    bad = []
    if not os.path.exists(symfile):
        print(f"SKIP: {symfile} is absent (install libgc1 to check the export list)")
        return 77
    want, section = set(), None
    for line in open(symfile):
        if not line.startswith(" "):
            section = line.split()[0] if line.strip() else None
            continue
        if section == "libgc.so.1":
            want.add(line.split("@")[0].strip())
    have = defined(lib)
    names = {n for n in have if not n.startswith(("_", "__")) and n not in ("_end", "_edata")}
    for n in sorted(want - names):
        bad.append(f"missing: {n}")
    for n in sorted(names - want):
        bad.append(f"exported but not in libgc1's symbols: {n}")
    if os.path.exists(syslib):
        ref = defined(syslib)
        for n in sorted(want):
            if n in ref and ref[n][0] not in "Tt" and n in have:
                if have[n][0] in "Tt":
                    bad.append(f"{n}: a variable in bdwgc, a function here")
                elif have[n][1] != ref[n][1]:
                    bad.append(f"{n}: size {have[n][1]}, bdwgc's is {ref[n][1]}")
    stubs = set(re.findall(r"^STUB_[A-Z]+\((GC_\w+)", open(os.path.join(src, "compat", "stubs.c")).read(), re.M))
    doc = open(os.path.join(src, "docs", "compat.md")).read()
    m = re.search(r"<!-- stubs -->(.*?)<!-- /stubs -->", doc, re.S)
    listed = set(re.findall(r"`(GC_\w+)`", m.group(1))) if m else set()
    if not m:
        bad.append("docs/compat.md has no <!-- stubs --> ... <!-- /stubs --> list")
    for n in sorted(stubs - listed):
        bad.append(f"docs/compat.md: stub {n} is not listed as a stub")
    for n in sorted(listed - stubs):
        bad.append(f"docs/compat.md: {n} is listed as a stub but is implemented")
    for b in bad:
        print("exports:", b)
    print(f"exports: {len(want)} symbols wanted, {len(names)} exported, "
          f"{len(stubs)} stubs, {len(bad)} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
