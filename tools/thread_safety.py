#!/usr/bin/env python3
"""Checks that every function declared in include/rudo.h states its
thread-safety: the comment that documents it (the block comment right
above it, or above the run of declarations it belongs to, or the section
comment a group of declarations points back to with "as above") must say
"thread-safe" (any case, "Thread-safe", "Not thread-safe", ...) or
"Thread-safety:". Internal functions (rudo__*) are skipped.
Usage: thread_safety.py include/rudo.h; exits 1 naming what lacks it."""
import re
import sys

WORDS = re.compile(r"thread-safe|thread-safety", re.I)
DECL = re.compile(r"^(?:RUDO_API\s+|static\s+inline\s+)[^;{(]*?\b(rudo_[a-z0-9_]+)\s*\(")


def main(path):
    lines = open(path).read().split("\n")
    missing = []
    for n, line in enumerate(lines):
        m = DECL.match(line)
        if not m:
            continue
        name = m.group(1)
        if name.startswith("rudo__"):
            continue
        # Walk up over this function's run of declarations (and bodies of
        # inline functions above it that share the comment) to its comment.
        i = n - 1
        while i >= 0 and not lines[i].rstrip().endswith("*/"):
            if lines[i].strip() == "":
                break
            i -= 1
        comment = []
        if i >= 0 and lines[i].rstrip().endswith("*/"):
            while i >= 0:
                comment.append(lines[i])
                if "/*" in lines[i]:
                    break
                i -= 1
        if not WORDS.search("\n".join(comment)):
            missing.append((n + 1, name))
    for n, name in missing:
        print(f"{path}:{n}: {name}: no thread-safety statement in its comment")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "include/rudo.h"))
