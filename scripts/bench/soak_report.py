#!/usr/bin/env python3
"""The summary of scripts/bench/soak.sh: summary.json, summary.md and rss.svg in OUT.

    soak_report.py OUT TASKS WARMUP_FRACTION WARMUP_MIN_S START_MS END_MS

Reads OUT/driver.out (SOAK_PROGRESS and SOAK_SUMMARY lines of examples/soak_client.rs),
OUT/rss.csv (unix_ms,process,pid,rss_kib) and OUT/faults.log. The warm-up point is the
first progress line with WARMUP_FRACTION of the tasks done, and not before WARMUP_MIN_S
seconds after START_MS. Each process incarnation (a process name and pid: a restarted node
is a new one) gets its RSS at its warm-up point (the first sample at or after the later
of the run's warm-up point and its own start + WARMUP_MIN_S), at its end (its last
sample), and its highest sample after warm-up; an incarnation that did not live past its
own warm-up is counted, not compared. The SVG (drawn by hand, no plotting library) is RSS
against time, one line per incarnation, faults as ticks. Exit status 1 when the driver's
summary is missing.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway_plot import COLORS, legend, svg_head  # noqa: E402


def read_driver(path):
    progress, summary = [], None
    with open(path) as f:
        for line in f:
            if line.startswith("SOAK_PROGRESS "):
                progress.append(json.loads(line.split(" ", 1)[1]))
            elif line.startswith("SOAK_SUMMARY "):
                summary = json.loads(line.split(" ", 1)[1])
    return progress, summary


def read_rss(path):
    series = {}  # (process, pid) -> [(t_ms, kib)]
    with open(path) as f:
        next(f, None)
        for line in f:
            parts = line.strip().split(",")
            if len(parts) != 4:
                continue
            t, name, pid, kib = parts
            series.setdefault((name, int(pid)), []).append((int(t), int(kib)))
    return series


def read_faults(path):
    faults = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) == 3 and parts[2].startswith("fault:"):
                faults.append((int(parts[1]), parts[2][len("fault: "):]))
    return faults


def mib(kib):
    return kib / 1024.0


def rss_rows(series, warm_ms, warmup_min_ms):
    rows = []
    order = {"directory": 0, "node-1": 1, "node-2": 2, "node-3": 3, "driver": 9}
    for (name, pid), pts in sorted(series.items(), key=lambda kv: (order.get(kv[0][0], 5), kv[1][0][0])):
        start = pts[0][0]
        own_warm = max(warm_ms, start + warmup_min_ms) if name != "driver" else warm_ms
        after = [p for p in pts if p[0] >= own_warm]
        row = {
            "process": name,
            "pid": pid,
            "first_sample_unix_ms": start,
            "last_sample_unix_ms": pts[-1][0],
            "samples": len(pts),
            "rss_first_kib": pts[0][1],
        }
        if len(after) >= 2:
            row.update(
                rss_warm_kib=after[0][1],
                rss_end_kib=after[-1][1],
                rss_max_after_warm_kib=max(k for _, k in after),
                warm_to_end_s=round((after[-1][0] - after[0][0]) / 1000.0, 1),
            )
        rows.append(row)
    return rows


def svg(series, faults, warm_ms, start_ms, end_ms, title):
    w, h = 900, 430
    left, top, pw, ph = 70, 50, 560, 320
    pts_all = [p for pts in series.values() for p in pts]
    t1 = max(end_ms, max((t for t, _ in pts_all), default=end_ms))
    ymax = max((mib(k) for _, k in pts_all), default=1.0) * 1.1
    x = lambda t: left + (t - start_ms) / max(t1 - start_ms, 1) * pw  # noqa: E731
    y = lambda v: top + ph - v / ymax * ph  # noqa: E731
    out = svg_head(w, h, title)
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for i in range(6):
        v = ymax * i / 5
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:.0f}</text>')
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
    span_s = (t1 - start_ms) / 1000.0
    for i in range(6):
        s = span_s * i / 5
        out.append(f'<text x="{x(start_ms + s * 1000):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">{s:.0f}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{top + ph + 34}" font-size="12" text-anchor="middle">seconds since the driver started</text>')
    out.append(f'<text x="16" y="{top + ph / 2}" font-size="12" transform="rotate(-90 16 {top + ph / 2})" text-anchor="middle">RSS (MiB)</text>')
    for t, what in faults:
        color = "#c44e52" if what.startswith("node") else "#bbb"
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + ph - 8}" y2="{top + ph}" stroke="{color}"/>')
    out.append(f'<line x1="{x(warm_ms):.1f}" x2="{x(warm_ms):.1f}" y1="{top}" y2="{top + ph}" stroke="#555" stroke-dasharray="4 3"/>')
    names = sorted({n for n, _ in series})
    colors = {n: COLORS[i % len(COLORS)] for i, n in enumerate(names)}
    for (name, _pid), pts in series.items():
        d = " ".join(f"{x(t):.1f},{y(mib(k)):.1f}" for t, k in pts)
        out.append(f'<polyline points="{d}" fill="none" stroke="{colors[name]}" stroke-width="1.5"/>')
    entries = [(colors[n], n) for n in names]
    out += legend(left + pw + 20, top + 10, entries)
    out.append(f'<text x="{left + pw + 20}" y="{top + 22 * len(entries) + 30}" font-size="11">dashed: warm-up point</text>')
    out.append(f'<text x="{left + pw + 20}" y="{top + 22 * len(entries) + 46}" font-size="11">ticks: faults (red: node killed)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    out = sys.argv[1]
    tasks, fraction, warmup_min_s = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    start_ms, end_ms = int(sys.argv[5]), int(sys.argv[6])
    progress, summary = read_driver(os.path.join(out, "driver.out"))
    if summary is None:
        sys.exit("soak_report: no SOAK_SUMMARY line in driver.out")
    series = read_rss(os.path.join(out, "rss.csv"))
    faults = read_faults(os.path.join(out, "faults.log"))

    floor = start_ms + warmup_min_s * 1000
    warm = next((p for p in progress if p["done"] >= tasks * fraction and p["unix_ms"] >= floor), None)
    warm_ms = warm["unix_ms"] if warm else end_ms
    rows = rss_rows(series, warm_ms, warmup_min_s * 1000)
    kinds = {}
    for _, what in faults:
        k = "node killed and restarted" if what.startswith("node") else "backend killed and restarted"
        kinds[k] = kinds.get(k, 0) + 1

    result = {
        "driver": summary,
        "warmup": {
            "unix_ms": warm_ms,
            "s_after_start": round((warm_ms - start_ms) / 1000.0, 1),
            "tasks_done": warm["done"] if warm else None,
        },
        "faults": kinds,
        "rss": rows,
        "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(result, f, indent=1)

    s = summary
    lat = s["latency_ok_us"]
    md = [
        f"Soak: {s['issued']:,} tasks issued ({s['tasks']:,} asked), {s['concurrency']} workers, "
        f"{s['transport']}, client deadline {s['client_timeout_ms']} ms (outer timeout "
        f"{s['outer_timeout_ms']} ms), {s['wall_s']:,} s wall time, {s['tasks_per_s']:,.0f} tasks/s.",
        "",
        "| outcome | tasks |",
        "|---|---|",
        f"| succeeded (the fixed answer, a named node, a fresh task id) | {s['succeeded']:,} |",
    ]
    for code, n in s["errors_by_code"].items():
        md.append(f"| error `{code}` | {n:,} |")
    md += [
        f"| wrong answer | {s['wrong']:,} |",
        f"| **hung** (no return by the outer timeout) | **{s['hung']:,}** |",
        f"| accounted (issued = succeeded + errors + wrong + hung) | {'yes' if s['accounted'] else '**NO**'} |",
        "",
        f"Repeated task ids: {s['repeated_task_ids']}; worker panics: {s['worker_panics']}. "
        f"Latency of the successes: p50 {lat['p50'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms, "
        f"p99.9 {lat['p999'] / 1000:.2f} ms, max {lat['max'] / 1000:.1f} ms; slowest call of any "
        f"outcome {s['latency_max_any_us'] / 1000:.1f} ms.",
        "",
        "Faults: " + (", ".join(f"{n} × {k}" for k, n in kinds.items()) or "none") + " (faults.log).",
        "",
        f"Warm-up point: {result['warmup']['s_after_start']} s after the start"
        + (f" ({warm['done']:,} tasks done)." if warm else " (not reached: the run was shorter)."),
        "",
        "| process (pid) | lived (s) | RSS first | RSS at warm-up | RSS at end | max after warm-up | end − warm-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lived = (r["last_sample_unix_ms"] - r["first_sample_unix_ms"]) / 1000.0
        if "rss_warm_kib" in r:
            d = mib(r["rss_end_kib"] - r["rss_warm_kib"])
            md.append(
                f"| {r['process']} ({r['pid']}) | {lived:.0f} | {mib(r['rss_first_kib']):.1f} MiB | "
                f"{mib(r['rss_warm_kib']):.1f} MiB | {mib(r['rss_end_kib']):.1f} MiB | "
                f"{mib(r['rss_max_after_warm_kib']):.1f} MiB | {d:+.1f} MiB over {r['warm_to_end_s']:.0f} s |"
            )
        else:
            md.append(
                f"| {r['process']} ({r['pid']}) | {lived:.0f} | {mib(r['rss_first_kib']):.1f} MiB | "
                f"not warmed up | last {mib(series[(r['process'], r['pid'])][-1][1]):.1f} MiB | | |"
            )
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(out, "rss.svg"), "w") as f:
        f.write(svg(series, faults, warm_ms, start_ms, end_ms, "RSS of the soak's processes (VmRSS)"))


if __name__ == "__main__":
    main()
