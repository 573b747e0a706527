#!/usr/bin/env python3
"""Table and SVG plot of scripts/bench/directory_scale.sh results.

usage: directory_scale_plot.py results.jsonl results.md plot.svg
"""
import json
import math
import os
import sys
from html import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway_plot import cli, legend  # noqa: E402

COLORS = ["#c0392b", "#2471a3", "#229954", "#b9770e", "#7d3c98", "#555555"]
DASHES = ["", "6,4"]


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def in_order(rows, key):
    seen = []
    for r in rows:
        if r[key] not in seen:
            seen.append(r[key])
    return seen


def table(rows):
    labels = in_order(rows, "label")
    queries = in_order(rows, "query")
    sizes = sorted({r["nodes"] for r in rows})
    by = {(r["label"], r["nodes"], r["query"]): r for r in rows}
    head = "| build | nodes | register/s | RSS | RSS per node | " + " | ".join(
        f"{q} p50 / p99 ms" for q in queries) + " |"
    lines = [head, "|" + "---|" * (5 + len(queries))]
    for label in labels:
        for n in sizes:
            first = next((by[(label, n, q)] for q in queries if (label, n, q) in by), None)
            if first is None:
                continue
            cells = []
            for q in queries:
                r = by.get((label, n, q))
                cells.append(f"{r['p50_ms']:.3f} / {r['p99_ms']:.3f}" if r else "")
            lines.append(
                f"| {label} | {n:,} | {first['register_per_s']:,.0f} | "
                f"{first['rss_kib'] / 1024:.1f} MiB | {first['bytes_per_node'] / 1024:.2f} KiB | "
                + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def svg(rows, title):
    labels = in_order(rows, "label")
    queries = in_order(rows, "query")
    sizes = sorted({r["nodes"] for r in rows})
    w, h, left, top = 560, 320, 90, 50
    legend_h = 20 * (len(queries) + len(labels)) + 20
    width, height = left + w + 40, top + h + 60 + legend_h
    vals = [r["p50_ms"] for r in rows if r["p50_ms"] > 0]
    ylo = 10 ** math.floor(math.log10(min(vals)))
    yhi = 10 ** math.ceil(math.log10(max(vals)))
    nlo, nhi = min(sizes), max(sizes)

    def px(n):
        if nhi == nlo:
            return left + w / 2
        return left + w * (math.log10(n) - math.log10(nlo)) / (math.log10(nhi) - math.log10(nlo))

    def py(v):
        return top + h - h * (math.log10(v) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo))

    p = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#888"/>',
    ]
    e = math.floor(math.log10(ylo))
    while 10 ** e <= yhi:
        for m in (1, 2, 5):
            v = m * 10 ** e
            if ylo <= v <= yhi:
                y = py(v)
                p.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
                p.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{v:g} ms</text>')
        e += 1
    for n in sizes:
        x = px(n)
        p.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + h}" stroke="#eee"/>')
        p.append(f'<text x="{x:.1f}" y="{top + h + 16}" text-anchor="middle" font-size="11">{n:,}</text>')
    p.append(f'<text x="{left + w / 2}" y="{top + h + 36}" text-anchor="middle" font-size="12">'
             "registered nodes (log)</text>")
    p.append(f'<text x="{left - 62}" y="{top + h / 2}" text-anchor="middle" font-size="12" '
             f'transform="rotate(-90 {left - 62} {top + h / 2})">discover p50 (log)</text>')
    for li, label in enumerate(labels):
        for qi, q in enumerate(queries):
            pts = sorted((r["nodes"], r["p50_ms"]) for r in rows
                         if r["label"] == label and r["query"] == q and r["p50_ms"] > 0)
            if not pts:
                continue
            color, dash = COLORS[qi % len(COLORS)], DASHES[li % len(DASHES)]
            d = " ".join(f"{px(n):.1f},{py(v):.1f}" for n, v in pts)
            extra = f' stroke-dasharray="{dash}"' if dash else ""
            p.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"{extra}/>')
            for n, v in pts:
                p.append(f'<circle cx="{px(n):.1f}" cy="{py(v):.1f}" r="3" fill="{color}"/>')
    ly = top + h + 60
    p += legend(left, ly, [(COLORS[qi % len(COLORS)], q) for qi, q in enumerate(queries)], step=20)
    p += legend(
        left,
        ly + 20 * len(queries),
        [("#333", label) for label in labels],
        step=20,
        width=2,
        dash=[DASHES[li % len(DASHES)] for li in range(len(labels))],
    )
    p.append("</svg>")
    return "\n".join(p) + "\n"


def main():
    cli(__doc__, table, svg, "Directory discover p50 against registered nodes (2-core machine, loopback)", read=load)


if __name__ == "__main__":
    main()
