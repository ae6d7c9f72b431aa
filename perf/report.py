#!/usr/bin/env python3
"""perf/report.py: turn the benchmarks' JSON lines into perf/results.md (the
machine, the targets, one table per benchmark) and the plots, drawn with
gnuplot from scripts it writes. Entry point: main(); perf/run calls it.

It reads only what the benchmarks printed (and the machine it runs on); it
never measures anything itself. A line without the required keys is an
error: the report would otherwise hide a broken benchmark."""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys

REQUIRED = ("bench", "impl", "workers", "n", "unit", "median", "min", "max")
ORDER = ["switch", "spawn", "sum", "sleepers"]

# Readable column names for the extra fields the benchmarks print.
EXTRA_NAMES = {
    "round_trip_ns": "ns/round trip",
    "gbps": "GB/s",
    "gbps_best": "GB/s (best run)",
    "ratio_to_openmp": "vs OpenMP",
    "ratio_to_bandwidth": "vs bandwidth",
    "cold": "cold",
    "rss_kib_per_task": "RSS KiB/task",
    "peak_rss_mib": "peak RSS MiB",
    "page_touch_s": "page touch s",
    "target_wall_s": "target wall s",
    # http, echo, fetch
    "conns": "conns",
    "pipeline": "pipelined",
    "p99_ms": "p99 ms",
    "cpu_us_per_req": "server us CPU/req",
    "req_per_cpu_s": "req per CPU-s",
    "cpu_ratio_to_nginx": "req/CPU-s vs nginx",
    "rps_ratio_to_nginx": "req/s vs nginx",
    "p99_ratio_to_nginx": "p99 vs nginx",
    "size": "bytes",
    "cpu_us_per_msg": "server us CPU/msg",
    "msg_per_cpu_s": "msg per CPU-s",
    "cpu_ratio_to_epoll": "CPU/msg vs epoll",
    "concurrency": "at once",
    "cpu_s": "client CPU s",
    "rss_mib": "client RSS MiB",
    "server_cpu_s": "server CPU s",
}

ABOUT = {
    "switch": "ns per switch between two fibers on one thread (half a "
              "round trip A->B->A; the round trip beside it).",
    "spawn": "ns per spawn+join of an empty task, n tasks spawned then all "
             "joined, per worker count. One untimed warm-up run first.",
    "sum": "Seconds to sum n int64 (a[i] = i), per worker count; GB/s is "
           "10^9 bytes read per second; \"vs\" columns are GB/s ratios at "
           "the same worker count (above 1: faster).",
    "sleepers": "Wall seconds from the first spawn to the last join of n "
                "tasks each sleeping 1 s, and the peak RSS they cost. The "
                "cold row is the first run alone; the other row is the "
                "median of the warm runs after it.",
    "http": "Requests/s of weft-http and nginx (one worker each, pinned to "
            "CPU 0) under wrk -t1 (pinned to CPU 1); n is the connections. "
            "wrk on one core saturates near the servers' rate, so compare "
            "requests per server CPU-second (from /proc/PID/stat); the weft "
            "rows give the ratios to nginx (above 1: weft better, but p99: "
            "below 1). With pipelining wrk's percentiles are not usable: "
            "no p99.",
    "echo": "Messages/s of weft-echo and a plain epoll server (pinned to "
            "CPU 0) under perf/echo_load (100 connections, one 64-byte "
            "message in flight on each, pinned to CPU 1), and the server "
            "CPU per message; the weft row's ratio below 1 is less CPU.",
    "fetch": "Wall seconds for a client (pinned to CPU 1) to fetch n "
             "/delay?ms=100 URLs from weft-http (a separate process on CPU "
             "0), at most \"at once\" in flight: weft-fetch against Python "
             "asyncio + aiohttp. Client CPU (user + system, start-up "
             "included) and peak RSS from wait4.",
}


def fmt(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "-"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return "%.3g" % v
        return "%.4g" % v
    if v is None:
        return "-"
    return str(v)


def load(path):
    rows, errors = [], []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append("line %d: not JSON (%s): %s" % (i, e, line[:80]))
                continue
            missing = [k for k in REQUIRED if k not in row]
            if missing:
                errors.append("line %d: missing %s" % (i, ", ".join(missing)))
                continue
            if not all(isinstance(row[k], (int, float)) or row[k] is None
                       for k in ("median", "min", "max")):
                errors.append("line %d: median/min/max are not numbers" % i)
                continue
            rows.append(row)
    return rows, errors


def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def cmake_cache(build, key):
    m = re.search(r"^%s:[A-Z]+=(.*)$" % re.escape(key),
                  read(os.path.join(build, "CMakeCache.txt")), re.M)
    return m.group(1) if m else ""


def machine(build):
    """What the numbers depend on, gathered where they were measured."""
    cpuinfo = read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    lscpu = run(["lscpu"])

    def lsc(key):
        m = re.search(r"^%s:\s*(.*)$" % re.escape(key), lscpu, re.M)
        return m.group(1).strip() if m else "?"

    mem = re.search(r"^MemTotal:\s*(\d+)", read("/proc/meminfo"), re.M)
    osname = re.search(r'^PRETTY_NAME="?([^"\n]*)', read("/etc/os-release"),
                       re.M)
    cc = cmake_cache(build, "CMAKE_C_COMPILER") or "cc"
    cxx = cmake_cache(build, "CMAKE_CXX_COMPILER") or "c++"
    thp = re.search(r"\[(\w+)\]",
                    read("/sys/kernel/mm/transparent_hugepage/enabled"))
    boost = re.search(r"#define BOOST_LIB_VERSION \"([^\"]+)\"",
                      read("/usr/include/boost/version.hpp"))
    tbb = re.search(r"#define TBB_VERSION_STRING\s+\"([^\"]+)\"",
                    read("/usr/include/oneapi/tbb/version.h"))
    tbb_mm = re.findall(r"#define TBB_VERSION_(MAJOR|MINOR)\s+(\d+)",
                        read("/usr/include/oneapi/tbb/version.h"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = run(["git", "-C", root, "rev-parse", "--short", "HEAD"]).strip()
    dirty = run(["git", "-C", root, "status", "--porcelain", "--", "."])
    facts = [
        ("CPU", (model.group(1).strip() if model else "?")
         + (" (%s guest)" % lsc("Hypervisor vendor")
            if lsc("Hypervisor vendor") != "?" else "")),
        ("cores", "%s CPUs online: %s socket(s) x %s core(s) x %s thread(s)"
         % (os.cpu_count(), lsc("Socket(s)"), lsc("Core(s) per socket"),
            lsc("Thread(s) per core"))),
        ("caches", "L1d %s, L2 %s, L3 %s" % (lsc("L1d cache"),
                                             lsc("L2 cache"),
                                             lsc("L3 cache"))),
        ("memory", "%.1f GiB" % (int(mem.group(1)) / 1048576) if mem
         else "?"),
        ("transparent huge pages", thp.group(1) if thp else "?"),
        ("vm.max_map_count", read("/proc/sys/vm/max_map_count").strip()),
        ("kernel", "%s %s" % (platform.system(), platform.release())),
        ("OS", osname.group(1) if osname else "?"),
        ("C compiler", run([cc, "--version"]).split("\n")[0]),
        ("C++ compiler", run([cxx, "--version"]).split("\n")[0]),
        ("build", "%s, perf flags -O3 (no -march=native)"
         % (cmake_cache(build, "CMAKE_BUILD_TYPE") or "?")),
        ("Boost", boost.group(1).replace("_", ".") if boost else "?"),
        ("oneTBB", tbb.group(1) if tbb else
         ".".join(v for _, v in tbb_mm) or "?"),
        ("Go", run(["go", "version"]).strip() or "not installed"),
        ("weft commit", (commit or "none yet")
         + (" (with local changes)" if dirty.strip() else "")),
        ("date", datetime.datetime.now(datetime.timezone.utc)
         .strftime("%Y-%m-%d %H:%M UTC")),
    ]
    return facts


def meta(meta_dir):
    """The runner's notes per benchmark program: when, load, how long."""
    out = {}
    for path in sorted(glob.glob(os.path.join(meta_dir, "*.jsonl.meta"))):
        name = os.path.basename(path)[:-len(".jsonl.meta")]
        kv = dict(line.split("=", 1) for line in read(path).splitlines()
                  if "=" in line)
        out[name] = kv
    return out


def find(rows, bench, impl, workers=None, **extra):
    for r in rows:
        if r["bench"] != bench or r["impl"] != impl:
            continue
        if workers is not None and r["workers"] != workers:
            continue
        if any(r.get(k) != v for k, v in extra.items()):
            continue
        return r
    return None


def targets(rows):
    """The issue's targets against this run: (what, target, measured, ok)."""
    out = []

    def add(what, target, measured, ok):
        verdict = "n/a" if ok is None else ("met" if ok else "missed")
        out.append((what, target, measured, verdict))

    raw, braw = find(rows, "switch", "weft_raw"), \
        find(rows, "switch", "boost_context_raw")
    if raw and braw:
        ratio = raw["median"] / braw["median"]
        add("switch: raw weft__switch", "<= 1.2x Boost.Context",
            "%s ns vs %s ns (%.2fx)" % (fmt(raw["median"]),
                                        fmt(braw["median"]), ratio),
            ratio <= 1.2)
    else:
        add("switch: raw weft__switch", "<= 1.2x Boost.Context",
            "not measured", None)
    y, by = find(rows, "switch", "weft_yield"), \
        find(rows, "switch", "boost_fiber_yield")
    if y:
        rt = y.get("round_trip_ns", 2 * y["median"])
        add("switch: weft_yield round trip", "<= 20 ns",
            "%s ns (%s ns/switch)%s" % (
                fmt(rt), fmt(y["median"]),
                "; Boost.Fiber %s ns" % fmt(by.get("round_trip_ns",
                                                   2 * by["median"]))
                if by else ""), rt <= 20)
    else:
        add("switch: weft_yield round trip", "<= 20 ns", "not measured",
            None)
    for w, limit in ((1, 60), (2, 100)):
        s, t = find(rows, "spawn", "weft", w), \
            find(rows, "spawn", "tbb_task_group", w)
        what = "spawn: %d worker%s" % (w, "s" if w > 1 else "")
        if s:
            add(what, "<= %d ns/task" % limit,
                "%s ns%s" % (fmt(s["median"]),
                             "; oneTBB %s ns" % fmt(t["median"]) if t
                             else ""), s["median"] <= limit)
        else:
            add(what, "<= %d ns/task" % limit, "not measured", None)
    ws = sorted({r["workers"] for r in rows
                 if r["bench"] == "sum" and r["impl"] == "weft"})
    w = 2 if 2 in ws else (ws[-1] if ws else None)
    s = find(rows, "sum", "weft", w) if w else None
    if s:
        peers = [p for p in (find(rows, "sum", "openmp", w),
                             find(rows, "sum", "tbb", w)) if p]
        best = min(peers, key=lambda p: p["median"]) if peers else None
        add("sum: weft on %d workers" % w, "no slower than the best of "
            "OpenMP and oneTBB",
            "%s s vs %s %s s (%+.2f%%)" % (
                fmt(s["median"]), best["impl"], fmt(best["median"]),
                100 * (s["median"] / best["median"] - 1)) if best else
            "%s s, no peer" % fmt(s["median"]),
            s["median"] <= best["median"] if best else None)
        bw = s.get("ratio_to_bandwidth")
        add("sum: weft on %d workers" % w, ">= 90% of the read bandwidth",
            "%s GB/s, %.0f%% of %s GB/s" % (
                fmt(s.get("gbps")), 100 * bw,
                fmt(find(rows, "sum", "bandwidth", w).get("gbps")))
            if bw is not None and find(rows, "sum", "bandwidth", w)
            else "not measured", bw >= 0.9 if bw is not None else None)
    else:
        add("sum: weft on 2 workers", "no slower than OpenMP and oneTBB; "
            ">= 90% of the read bandwidth", "not measured", None)
    for cold in (True, False):
        s = find(rows, "sleepers", "weft", cold=cold)
        label = "sleepers (%s)" % ("cold run" if cold else "warm runs")
        if s:
            kib = s.get("rss_kib_per_task")
            add(label, "<= 4.5 KiB RSS per task", "%s KiB" % fmt(kib),
                kib <= 4.5 if kib is not None else None)
            tw = s.get("target_wall_s")
            add(label, "wall <= 1 s + 1.1 x fresh-page cost (%s s)"
                % fmt(tw), "%s s" % fmt(s["median"]),
                s["median"] <= tw if tw is not None else None)
        else:
            add(label, "<= 4.5 KiB/task; wall <= 1 s + 1.1 x page cost",
                "not measured", None)
    io_targets(rows, add)
    return out


def io_targets(rows, add):
    """The I/O issue's targets: http, echo, fetch."""
    for conns in (100, 1000):
        w = find(rows, "http", "weft", conns=conns, pipeline=1)
        n = find(rows, "http", "nginx", conns=conns, pipeline=1)
        what = "http: %d connections" % conns
        if w and n and w.get("cpu_ratio_to_nginx") is not None:
            r = w["cpu_ratio_to_nginx"]
            add(what, ">= 1.2x nginx's requests per server CPU-second",
                "%.2fx (%s vs %s us CPU/req)" % (
                    r, fmt(w.get("cpu_us_per_req")),
                    fmt(n.get("cpu_us_per_req"))), r >= 1.2)
            p = w.get("p99_ratio_to_nginx")
            add(what, "p99 no worse than nginx",
                "%s ms vs %s ms" % (fmt(w.get("p99_ms")), fmt(n.get("p99_ms"))),
                p <= 1.0 if p is not None else None)
        else:
            add(what, ">= 1.2x nginx per CPU-second; p99 <= nginx's",
                "not measured", None)
    w = find(rows, "http", "weft", conns=100, pipeline=16)
    n = find(rows, "http", "nginx", conns=100, pipeline=16)
    if w and n and w.get("rps_ratio_to_nginx") is not None:
        r = w["rps_ratio_to_nginx"]
        add("http: 16 pipelined per connection", ">= 1.2x nginx's req/s",
            "%.2fx (%s vs %s req/s)" % (r, fmt(w["median"]),
                                        fmt(n["median"])), r >= 1.2)
    else:
        add("http: 16 pipelined per connection", ">= 1.2x nginx's req/s",
            "not measured", None)
    w, e = find(rows, "echo", "weft"), find(rows, "echo", "epoll")
    if w and e and w.get("cpu_ratio_to_epoll") is not None:
        r = w["cpu_ratio_to_epoll"]
        add("echo: 64 B x 100 connections",
            "server CPU/msg <= the epoll server's",
            "%s vs %s us (%.2fx)" % (fmt(w.get("cpu_us_per_msg")),
                                     fmt(e.get("cpu_us_per_msg")), r),
            r <= 1.0)
    else:
        add("echo: 64 B x 100 connections",
            "server CPU/msg <= the epoll server's", "not measured", None)
    big = [r for r in rows if r["bench"] == "fetch"
           and r["impl"] == "weft_fetch" and r.get("concurrency") == r["n"]
           and r["n"] > 100]
    if big:
        f = max(big, key=lambda r: r["n"])
        full = f["n"] == 10000
        what = "fetch: %d URLs at once" % f["n"]
        cpu, rss = f.get("cpu_s"), f.get("rss_mib")
        add(what, "client CPU <= 0.45 s", "%s s" % fmt(cpu),
            cpu <= 0.45 if full and cpu is not None else None)
        add(what, "wall <= 0.5 s", "%s s" % fmt(f["median"]),
            f["median"] <= 0.5 if full else None)
        add(what, "client RSS <= 100 MB", "%s MiB" % fmt(rss),
            rss * 1.048576 <= 100 if full and rss is not None else None)
    else:
        add("fetch: 10000 URLs at once", "CPU <= 0.45 s, wall <= 0.5 s, "
            "RSS <= 100 MB", "not measured", None)
    f = find(rows, "fetch", "weft_fetch", concurrency=100)
    s = find(rows, "fetch", "weft_fetch", concurrency=1)
    if f and f["n"] == 100:
        add("fetch: 100 URLs", "at once <= 0.12 s",
            "%s s at once; %s s one after another" % (
                fmt(f["median"]), fmt(s["median"]) if s else "-"),
            f["median"] <= 0.12)
    else:
        add("fetch: 100 URLs", "at once <= 0.12 s", "not measured", None)


def table(rows):
    extras = []
    for r in rows:
        for k in r:
            if k not in REQUIRED and k != "runs" and k not in extras:
                extras.append(k)
    head = ["impl", "workers", "n", "median", "min", "max", "unit",
            "runs"] + [EXTRA_NAMES.get(k, k) for k in extras]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i < 1 else "---:"
                            for i in range(len(head))) + "|"]
    for r in rows:
        cells = [r["impl"], fmt(r["workers"]), fmt(r["n"]),
                 "**%s**" % fmt(r["median"]), fmt(r["min"]), fmt(r["max"]),
                 r["unit"], fmt(r.get("runs"))]
        cells += [fmt(r.get(k)) for k in extras]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# ---- plots -----------------------------------------------------------------

GP_HEAD = """set terminal pngcairo noenhanced size 800,480 font "sans,10"
set output "{png}"
set title "{title}"
set key outside right top
set grid ytics
"""


def plot_by_workers(rows, bench, impls, field, ylabel, title, png, work):
    """Lines by worker count, one per impl; field is "median" or an extra."""
    series = []
    for impl in impls:
        pts = sorted((r["workers"], r.get(field)) for r in rows
                     if r["bench"] == bench and r["impl"] == impl
                     and isinstance(r.get(field), (int, float)))
        if pts:
            series.append((impl, pts))
    if not series:
        return None
    ws = sorted({w for _, pts in series for w, _ in pts})
    name = os.path.splitext(os.path.basename(png))[0]
    plots = []
    for impl, pts in series:
        dat = os.path.join(work, "%s_%s.dat" % (name, impl))
        with open(dat, "w") as f:
            f.write("# workers %s\n" % field)
            for w, v in pts:
                f.write("%d %.9g\n" % (w, v))
        dash = " dt 2" if impl in ("bandwidth", "single_thread") else ""
        plots.append('"%s" using 1:2 with linespoints lw 2 pt 7%s '
                     'title "%s"' % (dat, dash, impl))
    gp = GP_HEAD.format(png=png, title=title)
    gp += 'set xlabel "workers"\nset ylabel "%s"\n' % ylabel
    gp += "set xtics (%s)\n" % ", ".join(str(w) for w in ws)
    gp += "set xrange [%g:%g]\nset yrange [0:*]\n" % (ws[0] - 0.5,
                                                     ws[-1] + 0.5)
    gp += "plot " + ", \\\n     ".join(plots) + "\n"
    return gp


def plot_bars(rows, bench, ylabel, title, png, work):
    """One bar per impl (log scale: switch costs span two decades)."""
    sel = [r for r in rows if r["bench"] == bench
           and isinstance(r["median"], (int, float)) and r["median"] > 0]
    if not sel:
        return None
    name = os.path.splitext(os.path.basename(png))[0]
    dat = os.path.join(work, name + ".dat")
    with open(dat, "w") as f:
        f.write("# index impl median min max\n")
        for i, r in enumerate(sel):
            f.write('%d "%s" %.9g %.9g %.9g\n' % (i, r["impl"], r["median"],
                                                   r["min"], r["max"]))
    gp = GP_HEAD.format(png=png, title=title)
    gp += ('set ylabel "%s (log scale)"\nset logscale y\nset key off\n'
           'set style fill solid 0.6\nset boxwidth 0.6\n'
           'set xtics rotate by -25\nset xrange [-0.6:%g]\n'
           'set yrange [%g:%g]\n' % (ylabel, len(sel) - 0.4,
                                     min(r["min"] for r in sel) / 2,
                                     max(r["max"] for r in sel) * 3))
    gp += ('plot "%s" using 1:3:xtic(2) with boxes, \\\n'
           '     "" using 1:3:4:5 with yerrorbars lc "black" pt 0, \\\n'
           '     "" using 1:3:(sprintf("%%.3g", $3)) with labels offset 0,1\n'
           % dat)
    return gp


def draw(rows, plots_dir, work):
    """Write the gnuplot scripts and draw them; returns [(png, caption)]."""
    os.makedirs(plots_dir, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    gnuplot = shutil.which("gnuplot")
    specs = [
        ("sum_time.png", "The sum: seconds by worker count",
         lambda png: plot_by_workers(
             rows, "sum", ["weft", "openmp", "tbb", "bandwidth"], "median",
             "seconds (lower is better)", "sum of n int64: time", png,
             work)),
        ("sum_gbps.png", "The sum: GB/s by worker count",
         lambda png: plot_by_workers(
             rows, "sum", ["weft", "openmp", "tbb", "bandwidth"], "gbps",
             "GB/s (higher is better)", "sum of n int64: read rate", png,
             work)),
        ("spawn.png", "spawn+join of an empty task, by worker count",
         lambda png: plot_by_workers(
             rows, "spawn", ["weft", "tbb_task_group", "go_goroutine"],
             "median", "ns per task (lower is better)",
             "spawn + join of an empty task", png, work)),
        ("switch.png", "fiber switch cost",
         lambda png: plot_bars(rows, "switch", "ns per switch",
                               "switch between two fibers on one thread",
                               png, work)),
    ]
    drawn, problems = [], []
    for fname, caption, make in specs:
        png = os.path.join(os.path.abspath(plots_dir), fname)
        gp = make(png)
        if gp is None:
            continue
        script = os.path.join(work, os.path.splitext(fname)[0] + ".gp")
        with open(script, "w") as f:
            f.write(gp)
        if gnuplot is None:
            problems.append("gnuplot is not installed: %s not drawn" % fname)
            continue
        p = subprocess.run([gnuplot, script], capture_output=True, text=True)
        if p.returncode != 0 or not os.path.exists(png):
            problems.append("gnuplot failed on %s: %s" % (script,
                                                          p.stderr.strip()))
            continue
        drawn.append((png, caption))
    return drawn, problems


# ---- the report ------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jsonl", required=True, help="results, JSON lines")
    ap.add_argument("--meta", help="directory of the runner's *.meta files")
    ap.add_argument("--build", default=".", help="the CMake build directory")
    ap.add_argument("--md", required=True, help="the Markdown file to write")
    ap.add_argument("--plots", required=True, help="where the PNGs go")
    ap.add_argument("--work", required=True,
                    help="where the gnuplot scripts and data go")
    ap.add_argument("--title", default="results")
    a = ap.parse_args()

    rows, errors = load(a.jsonl)
    for e in errors:
        print("report.py: %s: %s" % (a.jsonl, e), file=sys.stderr)
    benches = [b for b in ORDER if any(r["bench"] == b for r in rows)]
    benches += sorted({r["bench"] for r in rows} - set(ORDER))
    notes = meta(a.meta) if a.meta else {}

    md = ["# weft benchmarks: %s" % a.title, "",
          "Written by `perf/run` (perf/report.py) from the JSON lines the "
          "benchmarks print; what each one measures and how to read it is "
          "in [README.md](README.md). Medians over the runs, min and max "
          "beside them.", "", "## Machine", "", "| | |", "|---|---|"]
    md += ["| %s | %s |" % (k, v) for k, v in machine(a.build)]
    md += ["", "## Against the targets", "",
           "| what | target | measured | verdict |", "|---|---|---|---|"]
    md += ["| %s |" % " | ".join(t) for t in targets(rows)]
    md += ["", "Reported, not measured here (from the issue): a million "
           "sleepers take Tokio 2.5 s wall and 1.1 GB RSS, Go 3.0 s and "
           "1.5 GB. Go is measured here too when it is installed (the "
           "`go` rows of the sleepers table)."]

    for b in benches:
        sel = [r for r in rows if r["bench"] == b]
        md += ["", "## %s" % b, ""]
        if b in ABOUT:
            md += [ABOUT[b], ""]
        md += table(sel)
        runs = [(k, v) for k, v in notes.items()
                if k == b or k.startswith(b + ".")]
        if runs:
            md += [""] + ["`%s`: %s, load average %s at the start, %s s." % (
                v.get("command", k).replace(os.path.dirname(a.build), "")
                .lstrip("/"), v.get("date", "?"), v.get("loadavg", "?"),
                v.get("seconds", "?")) for k, v in runs]

    drawn, problems = draw(rows, a.plots, a.work)
    md += ["", "## Plots", ""]
    rel = os.path.relpath(os.path.abspath(a.plots),
                          os.path.dirname(os.path.abspath(a.md)))
    for png, caption in drawn:
        md += ["![%s](%s/%s)" % (caption, rel, os.path.basename(png)), ""]
    for p in problems:
        md += ["- %s" % p]
        print("report.py: %s" % p, file=sys.stderr)
    md += ["", "<details><summary>The JSON lines</summary>", "", "```"]
    md += [json.dumps(r) for r in rows]
    md += ["```", "", "</details>", ""]

    with open(a.md, "w") as f:
        f.write("\n".join(md))
    if errors or problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
