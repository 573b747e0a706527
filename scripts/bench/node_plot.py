#!/usr/bin/env python3
"""Results of scripts/bench/node.sh as a markdown table and an SVG plot.

    node_plot.py RESULTS.jsonl TABLE.md PLOT.svg

One JSON object per run: {"system", "c", "requests", "duration_us", "cpu_us",
"rss_idle_kib", "rss_peak_kib", "lat_p50_us", "lat_p99_us", "err_*"...}. Two panels,
throughput and CPU per task against concurrency (log scales), one line per system; the
table adds the ratio to direct throughput at the same c and the latency added at c=1.
The SVG is written by hand (gateway_plot.py's panels): no plotting library needed.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway_plot import COLORS, cli, fmt_rps, fmt_us, legend, load, panel, svg_head, systems_in_order  # noqa: E402

LABELS = {
    "direct": "direct: nginx with a fixed answer, alone (CPU: the nginx worker)",
    "node-http": "node-http: iicp-node, POST /v1/task → that nginx",
    "node-native": "node-native: the same node over native frames",
    "other-http": "other-http: NODE_BIN_OTHER, POST /v1/task",
    "other-native": "other-native: NODE_BIN_OTHER over native frames",
    "floor-fixed": "floor-fixed: hyper's server answering by itself (examples/proxy_floor.rs)",
    "floor-pooled": "floor-pooled: hyper server → hyper-util pool → that nginx, bytes through",
    "floor-inline": "floor-inline: the same, backend connection driven in the inbound task",
}


def table(rows):
    direct = {r["c"]: r for r in rows if r["system"] == "direct"}
    out = [
        "| system | c | req/s | × direct | mean (c ÷ req/s) | added at c | p50 | p99 | CPU per task | RSS idle / peak | errors | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in systems_in_order(rows):
        for r in sorted((r for r in rows if r["system"] == s), key=lambda r: r["c"]):
            d = direct.get(r["c"])
            ratio = f"{r['rps'] / d['rps']:.2f}" if d and s != "direct" and d["rps"] else ""
            added = fmt_us(r["mean_us"] - d["mean_us"]) if d and s != "direct" else ""
            rss = (
                f"{r['rss_idle_kib'] / 1024:.1f} / {r['rss_peak_kib'] / 1024:.1f} MiB"
                if r.get("rss_idle_kib")
                else ""
            )
            out.append(
                f"| {s} | {r['c']} | {fmt_rps(r['rps'])} | {ratio} | {fmt_us(r['mean_us'])} | {added} | "
                f"{fmt_us(r['lat_p50_us'])} | {fmt_us(r['lat_p99_us'])} | {r['cpu_per_req_us']:.1f} µs | "
                f"{rss} | {r['errors']} | {r.get('loadavg', '')} |"
            )
    return "\n".join(out) + "\n"


def svg(rows, title):
    systems = systems_in_order(rows)
    cs = sorted({r["c"] for r in rows})
    pw, ph = 380, 280
    left, top, gap = 80, 60, 110
    width = left + 2 * pw + gap + 30
    height = top + ph + 50 + 22 * len(systems) + 10
    colors = {s: COLORS[i % len(COLORS)] for i, s in enumerate(systems)}
    thr = [(s, colors[s], [(r["c"], r["rps"]) for r in rows if r["system"] == s]) for s in systems]
    cpu = [(s, colors[s], [(r["c"], r["cpu_per_req_us"]) for r in rows if r["system"] == s]) for s in systems]

    def rps_fmt(v):
        return f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"

    def us_fmt(v):
        return f"{v:g} µs"

    parts = svg_head(width, height, title)
    parts += panel(left, top, pw, ph, "Throughput (higher is better)", "tasks/s", thr, cs, rps_fmt)
    parts += panel(left + pw + gap, top, pw, ph, "CPU per task (lower is better)", "µs of CPU per task", cpu, cs, us_fmt)
    parts += legend(left, top + ph + 60, [(colors[s], LABELS.get(s, s)) for s in systems])
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    cli(__doc__, table, svg, "iicp-node cost per task: chat task on loopback, fixed-answer backend (2-core machine)")


if __name__ == "__main__":
    main()
