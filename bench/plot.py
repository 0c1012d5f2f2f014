#!/usr/bin/env python3
"""Draws PNG charts of the latest benchmark run with gnuplot.

Reads the files bench/run.py writes to the results directory (latest.csv,
pauses.csv, mark.csv) and writes there:
  wall.png    median wall time per benchmark and backend (log scale)
  rss.png     median peak RSS per benchmark and backend (log scale)
  pauses.png  pause-time distribution: for each benchmark, the fraction of
              collections (all repetitions) whose pause is at most x, per
              collector backend
  mark.png    mark time per forced full collection, by heap shape
and the gnuplot script with its data files to plot-data/ in that directory,
so a chart can be restyled by editing plot-data/plots.gp and running gnuplot
on it.
Needs gnuplot (Debian: gnuplot-nox). Standard library only.
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ["rudo", "bdwgc", "glibc", "mimalloc"]
COLORS = {"rudo": "#d62728", "bdwgc": "#1f77b4", "glibc": "#7f7f7f", "mimalloc": "#2ca02c"}


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def label(row):
    t = int(row["threads"])
    name = row["benchmark"]
    return name + (" T=%d" % t if name == "gcbench-mt" else "")


def write_bars(path, rows, value, scale):
    """One line per benchmark, one column per backend ('-' when missing).
    Returns the backends present."""
    groups = []
    data = {}
    for r in rows:
        g = label(r)
        if g not in data:
            groups.append(g)
            data[g] = {}
        if r[value]:
            data[g][r["backend"]] = float(r[value]) * scale
    present = [k for k in BACKENDS if any(k in data[g] for g in groups)]
    with open(path, "w") as f:
        f.write("# benchmark " + " ".join(present) + "\n")
        for g in groups:
            f.write('"%s" ' % g + " ".join(
                "%.4g" % data[g][k] if k in data[g] else "-" for k in present) + "\n")
    return present


def bar_plot(out, dat, present, ylabel, title):
    lines = [
        "set output '%s'" % out,
        "set title '%s'" % title,
        "set ylabel '%s'" % ylabel,
        "set logscale y",
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set xtics rotate by -30 nomirror",
        "set grid ytics",
        "set key top left",
        "set datafile missing '-'",
    ]
    parts = []
    for i, k in enumerate(present):
        parts.append("'%s' using %d:xtic(1) title '%s' lc rgb '%s'"
                     % (dat, i + 2, k, COLORS.get(k, "black")))
    lines.append("plot " + ", \\\n     ".join(parts))
    lines += ["unset logscale y", "unset title", "set xtics norotate"]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=os.path.join(HERE, "results"),
                    help="directory written by bench/run.py")
    opts = ap.parse_args()
    res = opts.results
    if shutil.which("gnuplot") is None:
        sys.exit("plot.py: gnuplot not found; install it (Debian: apt-get install gnuplot-nox)")
    table = read_csv(os.path.join(res, "latest.csv"))
    if not table:
        sys.exit("plot.py: no %s; run `make bench` first" % os.path.join(res, "latest.csv"))
    pauses = read_csv(os.path.join(res, "pauses.csv"))
    mark = read_csv(os.path.join(res, "mark.csv"))

    data_dir = os.path.join(res, "plot-data")
    os.makedirs(data_dir, exist_ok=True)
    gp = ["set terminal pngcairo size 1100,650 font ',10'",
          "set encoding utf8"]
    made = []

    present = write_bars(os.path.join(data_dir, "wall.dat"), table, "wall_ms", 1.0)
    gp += bar_plot(os.path.join(res, "wall.png"), os.path.join(data_dir, "wall.dat"), present,
                   "median wall time (ms, log scale)", "Wall time (median of repetitions)")
    made.append("wall.png")
    present = write_bars(os.path.join(data_dir, "rss.dat"), table, "peak_rss_kib", 1 / 1024.0)
    gp += bar_plot(os.path.join(res, "rss.png"), os.path.join(data_dir, "rss.dat"), present,
                   "peak RSS (MiB, log scale)", "Peak resident set size (median of repetitions)")
    made.append("rss.png")

    # Pause-time distributions: one panel per benchmark.
    by_bench = {}
    order = []
    for p in pauses:
        g = label(p)
        if g not in by_bench:
            by_bench[g] = {}
            order.append(g)
        by_bench[g].setdefault(p["backend"], []).append(float(p["pause_us"]) / 1000.0)
    if order:
        cols = 3
        rows = (len(order) + cols - 1) // cols
        gp += ["set output '%s'" % os.path.join(res, "pauses.png"),
               "set terminal pngcairo size 1200,%d font ',9'" % (330 * rows),
               "set multiplot layout %d,%d title 'Pause-time distribution: fraction of "
               "collections with pause <= x (all repetitions)'" % (rows, cols),
               "set logscale x", "set xlabel 'pause (ms, log scale)'",
               "set ylabel 'fraction of collections'", "set yrange [0:1.02]",
               "set grid", "set key top left"]
        for i, g in enumerate(order):
            parts = []
            for k in BACKENDS:
                vals = sorted(v for v in by_bench[g].get(k, []) if v > 0)
                if not vals:
                    continue
                dat = os.path.join(data_dir, "pauses-%d-%s.dat" % (i, k))
                with open(dat, "w") as f:
                    n = len(vals)
                    for j, v in enumerate(vals):
                        f.write("%.4f %.5f\n" % (v, (j + 1) / n))
                parts.append("'%s' using 1:2 with steps lw 2 lc rgb '%s' title '%s (%d)'"
                             % (dat, COLORS.get(k, "black"), k, len(vals)))
            gp.append("set title '%s'" % g)
            if parts:
                gp.append("plot " + ", ".join(parts))
            else:
                gp.append("plot NaN notitle")
        gp += ["unset multiplot", "unset logscale x", "unset xlabel", "unset yrange",
               "set autoscale y", "set terminal pngcairo size 1100,650 font ',10'"]
        made.append("pauses.png")

    if mark:
        shapes = []
        data = {}
        for m in mark:
            s = m["benchmark"]
            if s not in data:
                shapes.append(s)
                data[s] = {}
            data[s][m["backend"]] = float(m["mark_ms"])
        present = [k for k in BACKENDS if any(k in data[s] for s in shapes)]
        dat = os.path.join(data_dir, "mark.dat")
        with open(dat, "w") as f:
            f.write("# shape " + " ".join(present) + "\n")
            for s in shapes:
                f.write('"%s" ' % s + " ".join(
                    "%.4g" % data[s][k] if k in data[s] else "-" for k in present) + "\n")
        objs = mark[0].get("objects", "?")
        markers = ", ".join("%s %s" % (m["backend"], m["markers"]) for m in mark
                            if m["benchmark"] == shapes[0])
        gp += bar_plot(os.path.join(res, "mark.png"), dat, present,
                       "mark time per full collection (ms, log scale)",
                       "Marking a live heap of %s 32-byte objects (markers: %s)"
                       % (objs, markers))
        made.append("mark.png")

    script = os.path.join(data_dir, "plots.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit("plot.py: gnuplot failed on %s" % script)
    print("wrote " + ", ".join(os.path.join(res, m) for m in made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
