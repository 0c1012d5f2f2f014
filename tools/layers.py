#!/usr/bin/env python3
"""layers.py — checks that src/ is built in one-way layers.

Each folder of src/ has a rank; a file may include a header of its own
folder or of a folder of lower rank, never of a higher one or of another
folder of the same rank. Calls follow includes (a function is declared in
its folder's header), so this is also the direction of calls; callbacks
upward go through function pointers that the higher layer installs.
It also checks that nothing below the collector layer calls
rudo__collect. docs/design.md draws the same layers.

Usage: tools/layers.py [SRC_DIR]   (exit 1 and one line per violation)
"""
import os
import re
import sys

RANK = {
    "platform": 0,  # the operating system
    "base": 1,      # fatal errors, assertions, ranked locks
    "heap": 2,      # pages, size classes, kinds, the heap struct
    "sweep": 3,     # preparing pages for marking, eager and lazy sweeping
    "alloc": 4,     # pages and spans for allocation (sweeps lazily)
    "threads": 5,   # mutators, handles, stacks, the stop-the-world handshake
    "roots": 6,     # the root registry and root enumeration
    "final": 6,     # the finalization queue
    "mark": 6,      # markers, the pool, the mark phase
    "debug": 7,     # the verifier and test hooks
    "gc": 8,        # creation, options, the collection driver, statistics
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)
COLLECT = re.compile(r'\brudo__collect\s*\(')


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "src")
    bad = []
    for folder in sorted(os.listdir(src)):
        path = os.path.join(src, folder)
        if not os.path.isdir(path):
            continue
        if folder not in RANK:
            bad.append(f"src/{folder}/: a folder with no rank in tools/layers.py")
            continue
        for name in sorted(os.listdir(path)):
            if not name.endswith((".c", ".h")):
                continue
            text = open(os.path.join(path, name), encoding="utf-8").read()
            for target in INCLUDE.findall(text):
                if target == folder:
                    continue
                if target not in RANK:
                    bad.append(f"src/{folder}/{name}: includes unknown folder {target}/")
                elif RANK[target] >= RANK[folder]:
                    bad.append(f"src/{folder}/{name} (rank {RANK[folder]}) includes "
                               f"{target}/ (rank {RANK[target]}): upward or sideways")
            if folder != "gc" and COLLECT.search(text):
                bad.append(f"src/{folder}/{name}: calls rudo__collect, which only "
                           "src/gc/ may call")
    for b in bad:
        print("layers:", b)
    print(f"layers: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
