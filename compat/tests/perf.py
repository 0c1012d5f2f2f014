#!/usr/bin/env python3
"""perf.py — wall time and peak RSS of the libgc.so.1 acceptance programs
and of GCBench and binary-trees through bdwgc's API, on the system's libgc
and on rudo's (docs/performance.md, "libgc.so.1").

Each program runs REPS times on each library, alternating (the acceptance
script runs the system's first, then rudo's); the table gives medians of
the wall time and of the peak RSS, and rudo's collections.

Usage: perf.py BUILD_DIR BENCH_BUILD_DIR [REPS]
       perf.py --tier2 BUILD_DIR [REPS]
  BUILD_DIR: a build with the tests (compat/tests/accept.sh's helpers)
  BENCH_BUILD_DIR: a build with the benchmarks (gcbench-bdwgc, ...); its
  compat/libgc.so.1 is the one measured
  --tier2: gctest (bdwgc.sh), Guile's compile of boot-9 (guile.sh) and
  ECL's suite (ecl.sh) through their acceptance scripts, on BUILD_DIR's
  compat/libgc.so.1; the last column says whether the rudo run passed
"""
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RU = re.compile(r"^(system|rudo): wall_s=([\d.]+) maxrss_kb=(\d+)", re.M)
GCS = re.compile(r"rudo: \d+ process\(es\) on .*?, (\d+) collections")


def accept(prog, lib, rusage, homfly, heap):
    env = dict(os.environ)
    if heap:
        env["ACCEPT_HEAP"] = heap
    args = ["sh", os.path.join(HERE, "accept.sh"), prog, lib, rusage]
    if homfly:
        args.append(homfly)
    out = subprocess.run(args, capture_output=True, text=True, env=env).stdout
    if "PASS" not in out:
        raise SystemExit(f"{prog}: the acceptance run failed:\n{out}")
    r = {m.group(1): (float(m.group(2)), int(m.group(3))) for m in RU.finditer(out)}
    return r["system"], r["rudo"], int(GCS.search(out).group(1))


def bench(binary, lib, rusage, args):
    res = {}
    for name, env in (("system", {}), ("rudo", {"LD_LIBRARY_PATH": lib, "RUDO_COMPAT_REPORT": "1"})):
        e = dict(os.environ)
        e.pop("LD_LIBRARY_PATH", None)
        e.update(env)
        p = subprocess.run([rusage, binary] + args, capture_output=True, text=True, env=e)
        m = RU.search(p.stderr.replace("rusage:", name + ":"))
        res[name] = (float(m.group(2)), int(m.group(3)))
        if name == "rudo":
            g = re.search(r"rudo-compat: (\S+): (\d+) collections", p.stderr)
            if not g or not g.group(1).startswith(lib):
                raise SystemExit(f"{binary}: did not run on {lib}")
            res["gcs"] = int(g.group(2))
    return res["system"], res["rudo"], res["gcs"]


def row(name, runs):
    sw = statistics.median(r[0][0] for r in runs)
    sr = statistics.median(r[0][1] for r in runs)
    rw = statistics.median(r[1][0] for r in runs)
    rr = statistics.median(r[1][1] for r in runs)
    g = statistics.median(r[2] for r in runs)
    return (f"| {name} | {sw:.3f} | {rw:.3f} | {rw / sw:.2f} | "
            f"{sr / 1024:.1f} | {rr / 1024:.1f} | {rr / sr:.2f} | {g:.0f} |")


def tier2(build, reps):
    lib = os.path.abspath(os.path.join(build, "compat"))
    rusage = os.path.join(lib, "compat_rusage")
    cases = (("gctest", ["bdwgc.sh", "gctest", lib, rusage, os.path.join(lib, "bdwgc")]),
             ("guile compile boot-9 -O2", ["guile.sh", "compile", lib, rusage]),
             ("ECL suite", ["ecl.sh", lib, rusage, os.path.join(lib, "ecl")]))
    print("| program | system s | rudo s | ratio | system MiB | rudo MiB | ratio | rudo passed |")
    print("|---|---|---|---|---|---|---|---|")
    for name, args in cases:
        runs, passed = [], []
        for _ in range(reps):
            args0 = ["sh", os.path.join(HERE, args[0])] + args[1:]
            out = subprocess.run(args0, capture_output=True, text=True).stdout
            r = {m.group(1): (float(m.group(2)), int(m.group(3))) for m in RU.finditer(out)}
            if "system" not in r or "rudo" not in r:
                raise SystemExit(f"{name}: no figures:\n{out}")
            runs.append((r["system"], r["rudo"], 0))
            passed.append("PASS" in out)
        line = row(name, runs).rsplit("|", 2)[0]
        print(f"{line}| {sum(passed)}/{reps} |", flush=True)


def main():
    if sys.argv[1] == "--tier2":
        tier2(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
        return
    build, bbuild = sys.argv[1], sys.argv[2]
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    lib = os.path.abspath(os.path.join(bbuild, "compat"))
    rusage = os.path.join(build, "compat", "compat_rusage")
    homfly = os.path.join(build, "compat", "compat_homfly_torus")
    print("| program | system s | rudo s | ratio | system MiB | rudo MiB | ratio | rudo GCs |")
    print("|---|---|---|---|---|---|---|---|")
    for heap, label in ((None, "test heap"), ("4M", "4 MiB")):
        for prog in ("w3m", "mmv", "chase", "debfoster", "homfly"):
            runs = [accept(prog, lib, rusage, homfly if prog == "homfly" else None, heap)
                    for _ in range(reps)]
            print(row(f"{prog} ({label})", runs), flush=True)
    for prog, args in (("gcbench-bdwgc", []), ("binary-trees-bdwgc", [])):
        runs = [bench(os.path.join(bbuild, "bench", prog), lib, rusage, args) for _ in range(reps)]
        print(row(prog, runs), flush=True)


if __name__ == "__main__":
    main()
