#!/usr/bin/env python3
"""Runs the rudo benchmark suite and prints one table.

Every benchmark is run for every backend, the backends alternating within
each repetition (the order rotates from one repetition to the next), so slow
drifts of a shared machine hit every backend alike. The table gives medians
over the repetitions and the ratios rudo/x from the same run.

Called by `make bench` as
    python3 bench/run.py --build build-release [options]
where the benchmark programs are in build-release/bench/ (built by CMake from
bench/CMakeLists.txt). Standard library only.

Each program prints one line
    RESULT bench=B backend=K threads=T markers=M wall_ms=W gc_count=N
           max_pause_us=X p99_pause_us=Y [extra key=value ...]
and the runner measures the child's peak resident set with wait4(), through
the small launcher bench-spawn (see spawn.c for why).
Besides the table, it writes to the results directory (default
bench/results/): latest.csv (the table), runs.csv (every run), pauses.csv
(every pause of every run), mark.csv (the marking benchmark) and
summary.txt (machine, options and the printed tables); bench/plot.py draws
charts from them.
"""

import argparse
import datetime
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BACKENDS = ["rudo", "rudo-gen", "bdwgc", "glibc", "mimalloc"]
GC_BACKENDS = {"rudo", "rudo-gen", "bdwgc"}
# rudo-gen: the rudo programs run in generational mode (RUDO_GENERATIONAL=1),
# for the benchmarks that write through the barrier (Bench.gen).
BACKEND_ENV = {"rudo-gen": {"RUDO_GENERATIONAL": "1"}}
BACKEND_BINARY = {"rudo-gen": "rudo"}
MALLOC_BACKENDS = ["glibc", "mimalloc"]

INSTALL_HINT = {
    "rudo": "the rudo library or its benchmark programs did not build; "
            "see the output of `cmake --build`",
    "bdwgc": "install the Boehm collector (Debian: apt-get install libgc-dev, "
             "found through pkg-config bdw-gc) and re-run `make bench`",
    "rudo-gen": "the rudo benchmark programs did not build",
    "glibc": "the glibc programs did not build; see the output of `cmake --build`",
    "mimalloc": "install mimalloc (Debian: apt-get install libmimalloc-dev) "
                "and re-run `make bench`",
}

CSV_FIELDS = ["benchmark", "backend", "threads", "wall_ms", "peak_rss_kib",
              "max_pause_us", "p99_pause_us", "gc_count"]


class Bench:
    """One row group of the table: a program with its arguments."""

    def __init__(self, name, program, full, quick, threads=1, gc_only=False, only=None,
                 gen=False, env=None):
        self.name = name
        self.program = program    # file name stem: <program>-<backend>
        self.full = full          # arguments of the full run
        self.quick = quick        # arguments of the --quick run
        self.threads = threads
        self.gc_only = gc_only    # skipped for the malloc backends
        self.only = only          # None, or the only backends that have it
        self.gen = gen            # written with bk_write: also run as rudo-gen
        self.env = env or {}      # extra environment of every run


def benchmarks(mt_threads):
    """The suite. Sizes: see docs/performance.md."""
    quick_gcbench = ["--stretch", "16", "--long-lived", "14", "--max", "14"]
    suite = [
        Bench("gcbench", "gcbench", [], quick_gcbench, gen=True),
    ]
    for t in mt_threads:
        suite.append(Bench("gcbench-mt", "gcbench", ["--threads", str(t)],
                           ["--threads", str(t)] + quick_gcbench, threads=t, gen=True))
    suite += [
        Bench("binary-trees", "binary-trees", ["--depth", "18"], ["--depth", "16"], gen=True),
        Bench("alloc-rate", "alloc-rate", ["--count", "30000000"], ["--count", "5000000"],
              gen=True),
        Bench("large-heap", "large-heap", ["--live-mib", "384", "--churn", "3"],
              ["--live-mib", "128", "--churn", "1"], gen=True),
        # After Whippet's quads: a 1.4 M-node live tree at a fixed heap size.
        Bench("quads-1.5x", "quads", ["--depth", "10", "--heap-mult", "1.5"],
              ["--depth", "9", "--heap-mult", "1.5", "--garbage-mib", "256"],
              gc_only=True, gen=True),
        Bench("quads-2.5x", "quads", ["--depth", "10", "--heap-mult", "2.5"],
              ["--depth", "9", "--heap-mult", "2.5", "--garbage-mib", "256"],
              gc_only=True, gen=True),
        # The minor-pause case of issue 10: 256 MiB of old data, steady
        # allocation where nearly everything survives, a 1 ms pause goal.
        Bench("large-heap-goal", "large-heap", ["--live-mib", "256", "--churn", "1"],
              ["--live-mib", "64", "--churn", "1"], gc_only=True, only={"rudo", "rudo-gen"},
              gen=True, env={"RUDO_MINOR_PAUSE_GOAL_US": "1000"}),
        Bench("barrier", "barrier", [], ["--stores", "50000000"], gen=True),
    ]
    for shape in ("tree", "graph", "list"):
        suite.append(Bench("mark-" + shape, "mark-live",
                           ["--shape", shape, "--objects", "4000000", "--collections", "5"],
                           ["--shape", shape, "--objects", "4000000", "--collections", "3"],
                           gc_only=True))
    # Weak references (weak_refs.c): the cost per collection of 1e6 weak
    # slots / ephemerons, and a weak interning table under churn.
    suite += [
        Bench("weak-slots", "weak-refs",
              ["--part", "slots", "--objects", "1000000", "--collections", "7"],
              ["--part", "slots", "--objects", "1000000", "--collections", "3"], gc_only=True),
        Bench("ephemerons", "weak-refs",
              ["--part", "ephemerons", "--objects", "1000000", "--collections", "7"],
              ["--part", "ephemerons", "--objects", "1000000", "--collections", "3"],
              gc_only=True, only={"rudo"}),
        Bench("weak-intern", "weak-refs",
              ["--part", "intern", "--variant", "registered", "--requests", "4000000"],
              ["--part", "intern", "--variant", "registered", "--requests", "1000000"],
              gc_only=True),
        Bench("weak-intern-visit", "weak-refs",
              ["--part", "intern", "--variant", "visit", "--requests", "4000000"],
              ["--part", "intern", "--variant", "visit", "--requests", "1000000"],
              gc_only=True, only={"rudo"}),
    ]
    return suite


# ---------------------------------------------------------------- running ---

class Run:
    """The outcome of one process."""

    def __init__(self):
        self.ok = False
        self.error = ""
        self.fields = {}
        self.rss_kib = 0
        self.pauses = []
        self.elapsed = 0.0


def run_once(spawn, path, args, env, timeout):
    """Runs one benchmark process through bench-spawn; returns a Run."""
    run = Run()
    with tempfile.TemporaryDirectory(prefix="rudo-bench-") as tmp:
        out_path = os.path.join(tmp, "stdout")
        err_path = os.path.join(tmp, "stderr")
        pause_path = os.path.join(tmp, "pauses")
        report_path = os.path.join(tmp, "report")
        argv = [spawn, report_path, path] + args + ["--pauses", pause_path]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
            (os.POSIX_SPAWN_OPEN, 2, err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        ]
        start = time.monotonic()
        # A process group of its own, so a timeout kills launcher and program.
        pid = os.posix_spawn(spawn, argv, env, file_actions=actions, setpgroup=0)
        timed_out = threading.Event()

        def kill():
            timed_out.set()
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status = os.waitpid(pid, 0)
        finally:
            timer.cancel()
        run.elapsed = time.monotonic() - start
        report = {}
        if os.path.exists(report_path):
            with open(report_path) as f:
                for item in f.read().split():
                    key, _, value = item.partition("=")
                    report[key] = value
        with open(out_path, errors="replace") as f:
            out = f.read()
        with open(err_path, errors="replace") as f:
            err = f.read()
        code = int(report.get("status", "0"))
        if timed_out.is_set():
            run.error = "timeout after %d s" % timeout
        elif os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0 or "status" not in report:
            run.error = "bench-spawn failed"
        elif code < 0:
            run.error = "killed by signal %d (%s)" % (-code, signal.Signals(-code).name)
        elif code != 0:
            run.error = "exit status %d" % code
        run.rss_kib = int(report.get("maxrss_kib", "0"))
        for line in out.splitlines():
            if line.startswith("RESULT "):
                for item in line.split()[1:]:
                    key, _, value = item.partition("=")
                    run.fields[key] = value
        if not run.error and "wall_ms" not in run.fields:
            run.error = "no RESULT line"
        if run.error:
            tail = err.strip().splitlines()[-3:]
            if tail:
                run.error += ": " + " | ".join(tail)
            return run
        run.ok = True
        if os.path.exists(pause_path):
            with open(pause_path) as f:
                run.pauses = [float(x) for x in f if x.strip()]
    return run


def find_bin_dir(build):
    for d in (os.path.join(build, "bench"), build):
        if os.path.isdir(d) and any(n.startswith("gcbench-") for n in os.listdir(d)):
            return d
    return None


class Progress:
    """A one-line progress report on stderr, with an estimate of the time
    left from the runs of each benchmark done so far."""

    def __init__(self, counts):
        self.left = dict(counts)  # benchmark key -> runs left
        self.total = sum(counts.values())
        self.done = 0
        self.spent = {}           # benchmark key -> [seconds, runs]
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.width = 0

    def record(self, key, seconds):
        self.done += 1
        self.left[key] -= 1
        s = self.spent.setdefault(key, [0.0, 0])
        s[0] += seconds
        s[1] += 1

    def eta(self):
        if not self.spent:
            return None
        all_s = sum(s for s, _ in self.spent.values())
        all_n = sum(n for _, n in self.spent.values())
        t = 0.0
        for key, n in self.left.items():
            s = self.spent.get(key)
            t += n * (s[0] / s[1] if s else all_s / all_n)
        return t

    def show(self, text):
        elapsed = time.monotonic() - self.start
        eta = self.eta()
        line = "[%3d/%d %4ds%s] %s" % (self.done + 1, self.total, elapsed,
                                        "" if eta is None else "  ~%ds left" % eta, text)
        if self.tty:
            pad = max(0, self.width - len(line))
            sys.stderr.write("\r" + line + " " * pad)
            self.width = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def note(self, text):
        """A line that stays (failures)."""
        if self.tty:
            sys.stderr.write("\r" + " " * self.width + "\r")
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def finish(self):
        if self.tty:
            sys.stderr.write("\r" + " " * self.width + "\r")
        sys.stderr.write("done: %d runs in %.0f s\n" % (self.total, time.monotonic() - self.start))
        sys.stderr.flush()


# ----------------------------------------------------------------- report ---

def median(values):
    return statistics.median(values) if values else None


class Row:
    """Medians of one (benchmark, backend)."""

    def __init__(self, bench, backend, runs):
        self.bench = bench
        self.backend = backend
        self.runs = runs
        good = [r for r in runs if r.ok]
        self.failures = [r.error for r in runs if not r.ok]
        self.ok = bool(good)

        def med(key):
            vals = [float(r.fields[key]) for r in good if key in r.fields]
            return median(vals)

        self.wall_ms = med("wall_ms")
        self.rss_kib = median([r.rss_kib for r in good])
        self.max_pause_us = med("max_pause_us")
        self.p99_pause_us = med("p99_pause_us")
        self.gc_count = med("gc_count")
        self.markers = med("markers")
        self.mark_ms = med("mark_ms")
        self.mark_min_ms = med("mark_min_ms")
        self.mark_mobj_s = med("mark_mobj_s")
        self.objects = med("objects")
        self.med = med
        self.pauses = [p for r in good for p in r.pauses]
        self.is_gc = backend in GC_BACKENDS


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, spec, empty="-"):
    return empty if v is None else format(v, spec)


def table_text(rows_by_bench, suite, backends):
    """The main table as a list of lines."""
    head = ("%-13s %3s  %-8s  %9s  %8s  %9s  %9s  %6s  %7s %7s %7s"
            % ("benchmark", "thr", "backend", "wall ms", "RSS MiB", "max pause", "p99 pause",
               "GCs", "wall", "RSS", "maxpause"))
    lines = [
        "%-13s %3s  %-8s  %9s  %8s  %9s  %9s  %6s  %s"
        % ("", "", "", "(median)", "(peak)", "ms", "ms", "", "---- rudo / this ----"),
        head,
        "-" * len(head),
    ]
    for b in suite:
        rows = rows_by_bench.get((b.name, b.threads))
        if not rows:
            continue
        rudo = rows.get("rudo")
        first = True
        for k in backends:
            row = rows.get(k)
            if row is None:
                continue
            label = b.name if first else ""
            thr = str(b.threads) if first else ""
            first = False
            if not row.ok:
                lines.append("%-13s %3s  %-8s  FAILED: %s" % (label, thr, k, row.failures[0][:80]))
                continue
            r_ok = rudo is not None and rudo.ok and k != "rudo"
            pause_ratio = None
            if r_ok and row.is_gc:
                pause_ratio = ratio(rudo.max_pause_us, row.max_pause_us)
            lines.append(
                "%-13s %3s  %-8s  %9.1f  %8.1f  %9s  %9s  %6s  %7s %7s %7s%s"
                % (label, thr, k, row.wall_ms, row.rss_kib / 1024.0,
                   fmt(row.max_pause_us / 1e3 if row.is_gc else None, ".2f"),
                   fmt(row.p99_pause_us / 1e3 if row.is_gc else None, ".2f"),
                   fmt(row.gc_count if row.is_gc else None, ".0f"),
                   fmt(ratio(rudo.wall_ms, row.wall_ms) if r_ok else None, ".2f"),
                   fmt(ratio(rudo.rss_kib, row.rss_kib) if r_ok else None, ".2f"),
                   fmt(pause_ratio, ".2f"),
                   "  (%d of %d runs failed)" % (len(row.failures), len(row.runs))
                   if row.failures else ""))
    return lines


def mark_text(rows_by_bench, suite, backends):
    lines = []
    for b in suite:
        if not b.name.startswith("mark-"):
            continue
        rows = rows_by_bench.get((b.name, b.threads))
        if not rows:
            continue
        rudo = rows.get("rudo")
        for k in backends:
            row = rows.get(k)
            if row is None or not row.ok:
                continue
            r = None
            if k != "rudo" and rudo is not None and rudo.ok:
                r = ratio(rudo.mark_ms, row.mark_ms)
            lines.append("%-11s  %-8s  %7s  %9s  %12s  %10s  %8s  %s"
                         % (b.name, k, fmt(row.markers, ".0f"), fmt(row.objects, ".0f"),
                            fmt(row.mark_ms, ".1f"), fmt(row.mark_min_ms, ".1f"),
                            fmt(row.mark_mobj_s, ".1f"), fmt(r, ".2f")))
    if not lines:
        return []
    head = ("%-11s  %-8s  %7s  %9s  %12s  %10s  %8s  %s"
            % ("benchmark", "backend", "markers", "objects", "mark ms/GC", "best ms",
               "Mobj/s", "rudo/this"))
    return [head, "-" * len(head)] + lines


def gen_text(rows_by_bench, suite, backends):
    """Generational mode: minor and major collections of rudo-gen next to
    rudo's full ones, and the barrier's cost per store."""
    lines = []
    for b in suite:
        if not b.gen or b.name == "barrier":
            continue
        rows = rows_by_bench.get((b.name, b.threads)) or {}
        for k in ("rudo", "rudo-gen"):
            row = rows.get(k)
            if row is None or not row.ok:
                continue
            m = row.med
            lines.append("%-15s %3d  %-8s  %9.1f  %6s  %6s  %6s  %10s  %10s  %10s  %10s"
                         % (b.name, b.threads, k, row.wall_ms, fmt(row.gc_count, ".0f"),
                            fmt(m("minor"), ".0f"), fmt(m("major"), ".0f"),
                            fmt(m("minor_pause_us"), ".1f"), fmt(m("minor_med_us"), ".1f"),
                            fmt(m("major_med_us"), ".1f"),
                            fmt(row.max_pause_us / 1e3 if row.max_pause_us else None, ".2f")))
    out = []
    if lines:
        head = ("%-15s %3s  %-8s  %9s  %6s  %6s  %6s  %10s  %10s  %10s  %10s"
                % ("benchmark", "thr", "backend", "wall ms", "GCs", "minor", "major",
                   "minor us", "minor med", "major med", "max pause"))
        out += [head, "-" * len(head)] + lines
    rows = rows_by_bench.get(("barrier", 1)) or {}
    blines = []
    for k in backends:
        row = rows.get(k)
        if row is None or not row.ok:
            continue
        m = row.med
        blines.append("%-8s  %9s  %9s  %9s  %9s"
                      % (k, fmt(m("plain_ns"), ".3f"), fmt(m("barrier_ns"), ".3f"),
                         fmt(m("filtered_ns") or None, ".3f"), fmt(m("value_ns") or None, ".3f")))
    if blines:
        head = "%-8s  %9s  %9s  %9s  %9s" % ("backend", "plain", "bk_write", "filtered",
                                             "value")
        out += ["", "Barrier: ns per store (best of 3 loops, median of runs)", head,
                "-" * len(head)] + blines
    return out


def weak_text(rows_by_bench, suite, backends):
    """The weak-reference benchmarks: cost per forced collection with and
    without the weak slots / ephemerons, and the interning workload."""
    lines = []
    for b in suite:
        if b.name not in ("weak-slots", "ephemerons"):
            continue
        rows = rows_by_bench.get((b.name, b.threads)) or {}
        for k in backends:
            if k not in GC_BACKENDS:
                continue
            row = rows.get(k)
            if row is None or not row.ok:
                if b.only is not None and k not in b.only:
                    lines.append("%-11s  %-8s  n/a (no ephemerons)" % (b.name, k))
                continue
            m = row.med
            lines.append("%-11s  %-8s  %9s  %9s  %9s  %9s  %9s  %8s"
                         % (b.name, k, fmt(m("gc_none_ms"), ".2f"), fmt(m("gc_weak_ms"), ".2f"),
                            fmt(m("mark_none_ms"), ".2f"), fmt(m("mark_weak_ms"), ".2f"),
                            fmt(m("weak_ns_per_slot"), ".1f"),
                            fmt(m("register_ns_per_slot"), ".1f")))
    out = []
    if lines:
        head = ("%-11s  %-8s  %9s  %9s  %9s  %9s  %9s  %8s"
                % ("benchmark", "backend", "GC ms", "GC ms", "mark ms", "mark ms", "ns/slot",
                   "reg ns"))
        out += ["%-11s  %-8s  %9s  %9s  %9s  %9s  %9s  %8s"
                % ("", "", "(without)", "(with)", "(without)", "(with)", "(GC diff)", "/slot"),
                head, "-" * len(head)] + lines
    lines = []
    for b in suite:
        if not b.name.startswith("weak-intern"):
            continue
        rows = rows_by_bench.get((b.name, b.threads)) or {}
        rudo = rows.get("rudo")
        for k in backends:
            row = rows.get(k)
            if row is None or not row.ok:
                continue
            m = row.med
            r = None
            if k != "rudo" and rudo is not None and rudo.ok:
                r = ratio(rudo.med("intern_ms"), m("intern_ms"))
            lines.append("%-17s  %-8s  %9s  %8s  %5s  %9s  %9s  %8s  %s"
                         % (b.name, k, fmt(m("intern_ms"), ".1f"), fmt(m("intern_ns"), ".1f"),
                            fmt(m("loop_gcs"), ".0f"), fmt(m("loop_gc_ms"), ".1f"),
                            fmt(m("capacity"), ".0f"), fmt(m("rebuilds"), ".0f"),
                            fmt(r, ".2f")))
    if lines:
        head = ("%-17s  %-8s  %9s  %8s  %5s  %9s  %9s  %8s  %s"
                % ("benchmark", "backend", "loop ms", "ns/req", "GCs", "GC ms", "capacity",
                   "rebuilds", "rudo/this"))
        if out:
            out.append("")
        out += [head, "-" * len(head)] + lines
    return out


def machine_text():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kib / 1048576.0)
    except (OSError, ValueError, IndexError):
        pass

    def version(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else "?"
        except (OSError, subprocess.SubprocessError):
            return "?"

    return [
        "machine: %s, %d CPUs online, %s RAM, Linux %s"
        % (cpu, os.cpu_count() or 0, mem, platform.release()),
        "compiler: %s; bdwgc %s; mimalloc %s"
        % (version(["cc", "--version"]), version(["pkg-config", "--modversion", "bdw-gc"]),
           version(["dpkg-query", "-W", "-f", "${Version}", "libmimalloc-dev"])),
    ]


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write(",".join(CSV_FIELDS) + "\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")


def csv_row(bench, backend, wall_ms, rss_kib, max_pause, p99_pause, gcs):
    def num(v, spec):
        return "" if v is None else format(v, spec)
    return [bench.name, backend, bench.threads, num(wall_ms, ".1f"), num(rss_kib, ".0f"),
            num(max_pause, ".1f"), num(p99_pause, ".1f"), num(gcs, ".0f")]


# ------------------------------------------------------------------- main ---

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build-release",
                    help="CMake build directory (or its bench/ subdirectory)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, 2 repetitions: under a minute")
    ap.add_argument("--repeat", type=int, help="repetitions (default 5, --quick 2)")
    ap.add_argument("--only", help="comma-separated benchmark names or prefixes (e.g. gcbench,mark)")
    ap.add_argument("--backends", help="comma-separated backends (default: %s)" % ",".join(BACKENDS))
    ap.add_argument("--threads", help="thread counts of gcbench-mt (default 2,4; --quick 2)")
    ap.add_argument("--markers", type=int, help="marker threads: sets RUDO_MARKERS and GC_MARKERS")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment for the benchmark processes (repeatable)")
    ap.add_argument("--csv", help="write the table (medians) as CSV to this file")
    ap.add_argument("--results", default=os.path.join(HERE, "results"),
                    help="directory for latest.csv, runs.csv, pauses.csv, mark.csv, summary.txt")
    ap.add_argument("--timeout", type=int, help="seconds per run before it is killed "
                    "(default 600, --quick 120)")
    opts = ap.parse_args()

    repeat = opts.repeat or (2 if opts.quick else 5)
    timeout = opts.timeout or (120 if opts.quick else 600)
    mt = [int(x) for x in (opts.threads or ("2" if opts.quick else "2,4")).split(",") if x]
    suite = benchmarks(mt)
    if opts.only:
        wanted = [w.strip() for w in opts.only.split(",") if w.strip()]
        suite = [b for b in suite if any(b.name == w or b.name.startswith(w) for w in wanted)]
        if not suite:
            sys.exit("run.py: --only %s matches no benchmark" % opts.only)
    backends = BACKENDS
    if opts.backends:
        backends = [b.strip() for b in opts.backends.split(",") if b.strip()]
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            sys.exit("run.py: unknown backend(s) %s; known: %s" % (",".join(unknown), ",".join(BACKENDS)))

    build = opts.build if os.path.isabs(opts.build) else os.path.join(os.getcwd(), opts.build)
    bin_dir = find_bin_dir(build)
    if bin_dir is None:
        sys.exit("run.py: no benchmark programs under %s (build with: cmake -S . -B build-release "
                 "-DCMAKE_BUILD_TYPE=Release && cmake --build build-release -j)" % build)

    spawn = os.path.join(bin_dir, "bench-spawn")
    if not os.access(spawn, os.X_OK):
        sys.exit("run.py: %s is missing: rebuild the benchmarks" % spawn)

    def binary(bench, backend):
        return os.path.join(bin_dir, "%s-%s" % (bench.program,
                                                BACKEND_BINARY.get(backend, backend)))

    available = []
    for k in backends:
        if any(os.access(binary(b, k), os.X_OK) for b in suite):
            available.append(k)
        else:
            print("skipping %s: not built in %s -- %s" % (k, bin_dir, INSTALL_HINT[k]))
    if not available:
        sys.exit("run.py: no backend to run")

    env = dict(os.environ)
    if opts.markers is not None:
        env["RUDO_MARKERS"] = str(opts.markers)
        env["GC_MARKERS"] = str(opts.markers)
    for kv in opts.env:
        key, sep, value = kv.partition("=")
        if not sep:
            sys.exit("run.py: --env wants KEY=VALUE, got %s" % kv)
        env[key] = value

    plan = []  # (bench, [backends]) with the backends that have a program
    for b in suite:
        ks = [k for k in available if not (b.gc_only and k not in GC_BACKENDS)]
        ks = [k for k in ks if b.only is None or k in b.only]
        ks = [k for k in ks if b.gen or k != "rudo-gen"]
        ks = [k for k in ks if os.access(binary(b, k), os.X_OK)]
        if ks:
            plan.append((b, ks))
    progress = Progress({(b.name, b.threads): len(ks) * repeat for b, ks in plan})
    started = datetime.datetime.now()

    runs = {}  # (bench name, threads, backend) -> [Run]
    for b, ks in plan:
        args = b.quick if opts.quick else b.full
        for rep in range(repeat):
            order = ks[rep % len(ks):] + ks[:rep % len(ks)]
            for k in order:
                progress.show("%-12s thr=%d  %-8s rep %d/%d" % (b.name, b.threads, k, rep + 1, repeat))
                r = run_once(spawn, binary(b, k), args,
                             dict(env, **b.env, **BACKEND_ENV.get(k, {})), timeout)
                runs.setdefault((b.name, b.threads, k), []).append(r)
                progress.record((b.name, b.threads), r.elapsed)
                if not r.ok:
                    progress.note("FAILED %s %s (threads %d, rep %d): %s"
                                  % (b.name, k, b.threads, rep + 1, r.error))
    progress.finish()

    rows_by_bench = {}
    for (name, threads, k), rs in runs.items():
        bench = next(b for b, _ in plan if b.name == name and b.threads == threads)
        rows_by_bench.setdefault((name, threads), {})[k] = Row(bench, k, rs)

    lines = ["rudo benchmarks, %s, %s run, %d repetition(s), backends alternating"
             % (started.strftime("%Y-%m-%d %H:%M"), "quick" if opts.quick else "full", repeat)]
    lines += machine_text()
    if opts.markers is not None:
        lines.append("markers: RUDO_MARKERS=GC_MARKERS=%d" % opts.markers)
    for kv in opts.env:
        lines.append("environment: %s" % kv)
    lines.append("")
    lines += table_text(rows_by_bench, suite, available)
    mark = mark_text(rows_by_bench, suite, available)
    if mark:
        lines += ["", "Marking a live heap: mark time per forced full collection (median of "
                  "repetitions of the median of collections)"] + mark
    gen = gen_text(rows_by_bench, suite, available)
    if gen:
        lines += ["", "Generations: rudo (every collection full) and rudo-gen "
                  "(RUDO_GENERATIONAL=1), medians"] + gen
    weak = weak_text(rows_by_bench, suite, available)
    if weak:
        lines += ["", "Weak references: time per forced full collection without and with "
                  "1e6 weak slots / ephemerons (medians), and the weak interning table"] + weak
    print("\n".join(lines))

    # Files.
    table_rows = []
    for b in suite:
        for k in available:
            row = rows_by_bench.get((b.name, b.threads), {}).get(k)
            if row is None or not row.ok:
                continue
            table_rows.append(csv_row(b, k, row.wall_ms, row.rss_kib,
                                      row.max_pause_us if row.is_gc else None,
                                      row.p99_pause_us if row.is_gc else None,
                                      row.gc_count if row.is_gc else None))
    if opts.csv:
        write_csv(opts.csv, table_rows)
    os.makedirs(opts.results, exist_ok=True)
    write_csv(os.path.join(opts.results, "latest.csv"), table_rows)
    with open(os.path.join(opts.results, "runs.csv"), "w") as f:
        f.write(",".join(CSV_FIELDS + ["rep", "error"]) + "\n")
        for b, ks in plan:
            for k in ks:
                for i, r in enumerate(runs.get((b.name, b.threads, k), [])):
                    def g(key):
                        return r.fields.get(key, "")
                    gc = k in GC_BACKENDS
                    f.write(",".join(str(x) for x in [
                        b.name, k, b.threads, g("wall_ms"), r.rss_kib if r.ok else "",
                        g("max_pause_us") if gc else "", g("p99_pause_us") if gc else "",
                        g("gc_count") if gc else "", i + 1,
                        '"%s"' % r.error.replace('"', "'") if r.error else ""]) + "\n")
    with open(os.path.join(opts.results, "pauses.csv"), "w") as f:
        f.write("benchmark,backend,threads,rep,pause_us\n")
        for b, ks in plan:
            for k in ks:
                if k not in GC_BACKENDS:
                    continue
                for i, r in enumerate(runs.get((b.name, b.threads, k), [])):
                    for p in r.pauses:
                        f.write("%s,%s,%d,%d,%.1f\n" % (b.name, k, b.threads, i + 1, p))
    with open(os.path.join(opts.results, "mark.csv"), "w") as f:
        f.write("benchmark,backend,markers,objects,mark_ms,mark_min_ms,mark_mobj_s\n")
        for b in suite:
            for k in available:
                row = rows_by_bench.get((b.name, b.threads), {}).get(k)
                if row is None or not row.ok or row.mark_ms is None:
                    continue
                f.write("%s,%s,%s,%s,%.2f,%.2f,%.1f\n"
                        % (b.name, k, fmt(row.markers, ".0f", ""), fmt(row.objects, ".0f", ""),
                           row.mark_ms, row.mark_min_ms, row.mark_mobj_s))
    with open(os.path.join(opts.results, "summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    shown = os.path.relpath(opts.results)
    if shown.startswith(".."):
        shown = os.path.abspath(opts.results)
    print("\nresults: %s/{latest,runs,pauses,mark}.csv, summary.txt%s"
          % (shown, "; table also in " + opts.csv if opts.csv else ""))
    failed = sum(1 for rs in runs.values() for r in rs if not r.ok)
    if failed:
        print("%d run(s) failed; see the FAILED lines above" % failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
