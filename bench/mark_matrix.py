#!/usr/bin/env python3
"""Parallel-marking experiments on mark-live: runs a set of configurations
(backend, shape, environment, options) round-robin, --repeat rounds, so that
a slow phase of a shared machine falls on every configuration alike, and
prints per configuration the median over rounds of the per-run median mark
time (each run: 1 settling + --collections forced full collections), the
throughput, and for rudo the marker statistics of the last collection of
the median run (MARKER/MARKERS lines printed by mark-live-rudo).

  python3 bench/mark_matrix.py --build build-perf --set scaling  --repeat 5
  python3 bench/mark_matrix.py --build build-perf --set switches --repeat 5
  python3 bench/mark_matrix.py --build build-perf --set wide     --repeat 3

Sets:
  scaling   rudo RUDO_MARKERS=1,2 and bdwgc GC_MARKERS=1,2 on tree, graph, list
  switches  rudo with 2 markers: steal / steal+inbox / steal+inbox+route /
            route without steal, single-threaded build and --build-threads 2
  wide      rudo RUDO_MARKERS=16 and 64 on tree and graph
"""
import argparse
import os
import statistics
import subprocess
import sys

SHAPES = ["tree", "graph", "list"]
SWITCHES = [
    ("steal", {"RUDO_STEAL": "1", "RUDO_INBOX": "0", "RUDO_ROUTE": "0"}),
    ("steal+inbox", {"RUDO_STEAL": "1", "RUDO_INBOX": "1", "RUDO_ROUTE": "0"}),
    ("steal+inbox+route", {"RUDO_STEAL": "1", "RUDO_INBOX": "1", "RUDO_ROUTE": "1"}),
    ("route,nosteal", {"RUDO_STEAL": "0", "RUDO_INBOX": "1", "RUDO_ROUTE": "1"}),
]


def configs(name, shapes):
    out = []
    if name == "scaling":
        for shape in shapes:
            for m in ("1", "2"):
                out.append(("rudo m=" + m, "rudo", shape, {"RUDO_MARKERS": m}, []))
                out.append(("bdwgc m=" + m, "bdwgc", shape, {"GC_MARKERS": m}, []))
    elif name == "switches":
        for shape in shapes:
            for bt in ("1", "2"):
                for label, env in SWITCHES:
                    e = dict(env, RUDO_MARKERS="2")
                    out.append(("%s bt=%s" % (label, bt), "rudo", shape, e,
                                ["--build-threads", bt]))
    elif name == "wide":
        for shape in shapes:
            for m in ("16", "64"):
                out.append(("rudo m=" + m, "rudo", shape, {"RUDO_MARKERS": m}, []))
    return out


def run(bindir, cfg, collections, objects):
    label, backend, shape, env, args = cfg
    cmd = [os.path.join(bindir, "mark-live-" + backend), "--shape", shape,
           "--collections", str(collections), "--objects", str(objects)] + args
    e = dict(os.environ)
    for k in ("RUDO_MARKERS", "RUDO_STEAL", "RUDO_INBOX", "RUDO_ROUTE", "GC_MARKERS"):
        e.pop(k, None)
    e.update(env)
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit("FAILED %s: %s" % (" ".join(cmd), p.stderr.strip()))
    res, summary, markers = {}, {}, []
    for line in p.stdout.splitlines():
        f = line.split()
        kv = dict(x.partition("=")[::2] for x in f[1:] if "=" in x)
        if f and f[0] == "RESULT":
            res = kv
        elif f and f[0] == "MARKERS":
            summary = kv
        elif f and f[0] == "MARKER":
            markers.append(line)
    return float(res["mark_ms"]), summary, markers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-release")
    ap.add_argument("--set", required=True, choices=["scaling", "switches", "wide"])
    ap.add_argument("--shapes", default=None, help="comma list (default: all of the set)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--collections", type=int, default=5)
    ap.add_argument("--objects", type=int, default=4000000)
    ap.add_argument("--markers-lines", action="store_true",
                    help="print the MARKER lines of each configuration's median run")
    o = ap.parse_args()
    shapes = o.shapes.split(",") if o.shapes else (
        ["tree", "graph"] if o.set == "wide" else SHAPES)
    bindir = os.path.join(o.build, "bench")
    cfgs = configs(o.set, shapes)
    runs = {i: [] for i in range(len(cfgs))}
    for r in range(o.repeat):
        order = list(range(len(cfgs)))
        k = r % len(order)
        order = order[k:] + order[:k]  # rotate the order from round to round
        for i in order:
            runs[i].append(run(bindir, cfgs[i], o.collections, o.objects))
            print("round %d %-22s %-6s %8.2f ms" % (r, cfgs[i][0], cfgs[i][2], runs[i][-1][0]),
                  file=sys.stderr, flush=True)
    print("%-6s %-24s %9s %9s %8s  %s" % ("shape", "config", "mark_ms", "runs_ms", "Mobj/s",
                                         "rudo marker summary (median run)"))
    for i, cfg in enumerate(cfgs):
        rs = sorted(runs[i], key=lambda x: x[0])
        med = rs[len(rs) // 2]
        ms = med[0]
        s = med[1]
        summ = ""
        if s:
            summ = ("traced min/med/max=%s/%s/%s bal=%s steals=%s/%s sent=%s idle_us=%s" %
                    (s["traced_min"], s["traced_med"], s["traced_max"], s["balance"],
                     s["steals_won"], s["steals_attempted"], s["batches_sent"],
                     s["idle_us_total"]))
        print("%-6s %-24s %9.2f %9s %8.1f  %s" % (
            cfg[2], cfg[0], ms, "/".join("%.0f" % x[0] for x in runs[i]),
            o.objects / (ms / 1e3) / 1e6, summ))
        if o.markers_lines:
            for line in med[2]:
                print("    " + line)


if __name__ == "__main__":
    main()
