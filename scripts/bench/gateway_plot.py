#!/usr/bin/env python3
"""Results of scripts/bench/gateway.sh as a markdown table and an SVG plot.

    gateway_plot.py RESULTS.jsonl TABLE.md PLOT.svg

RESULTS.jsonl holds one JSON object per wrk run: {"system", "c", "requests",
"duration_us", "lat_mean_us", "lat_p50_us", "lat_p99_us", "err_*"...}. The plot has two
panels, throughput and mean latency against concurrency, both on log scales, one line
per system. Plain SVG written by hand: no plotting library needed.
"""
import json
import math
import sys
from xml.sax.saxutils import escape

LABELS = {
    "backend": "backend: nginx with a fixed answer, alone",
    "gateway": "gateway: iicp-node proxy → node over HTTP, sealed (IICP-CX)",
    "gateway-plaintext": "gateway-plaintext: the same, node without a CX key",
    "gateway-native": "gateway-native: proxy → node over native frames, sealed",
    "litellm": "litellm: LiteLLM proxy → the same nginx",
}
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    for r in rows:
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
        r["errors"] = sum(v for k, v in r.items() if k.startswith("err_"))
        # Mean latency by Little's law: c connections, each always waiting for one answer.
        # wrk's own latency.mean (kept as lat_mean_us) came out larger than c / throughput
        # allows on this machine (at c = 1, mean x requests > the run's duration), so the
        # table and plot use c / req/s; p50 and p99 are wrk's histogram.
        r["cpu_per_req_us"] = r.get("cpu_us", 0) / r["requests"] if r["requests"] else 0.0
        r["mean_us"] = r["c"] / r["rps"] * 1e6 if r["rps"] else 0.0
    return rows


def systems_in_order(rows):
    seen = []
    for r in rows:
        if r["system"] not in seen:
            seen.append(r["system"])
    return seen


def fmt_us(us):
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"


def fmt_rps(rps):
    if rps >= 1000:
        return f"{rps / 1000:.1f} k"
    return f"{rps:.0f}"


def table(rows):
    out = [
        "| system | c | req/s | mean (c ÷ req/s) | p50 | p99 | CPU per request | errors | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in systems_in_order(rows):
        for r in sorted((r for r in rows if r["system"] == s), key=lambda r: r["c"]):
            out.append(
                f"| {s} | {r['c']} | {fmt_rps(r['rps'])} | {fmt_us(r['mean_us'])} | "
                f"{fmt_us(r['lat_p50_us'])} | {fmt_us(r['lat_p99_us'])} | {fmt_us(r['cpu_per_req_us'])} | "
                f"{r['errors']} | "
                f"{r.get('loadavg', '')} |"
            )
    return "\n".join(out) + "\n"


def nice_log_ticks(lo, hi):
    """Powers of ten (and 2×, 5× when the span is short) between lo and hi."""
    lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    mults = (1, 2, 5) if hi_e - lo_e <= 3 else (1,)
    ticks = []
    for e in range(lo_e, hi_e + 1):
        for m in mults:
            v = m * 10**e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


def panel(x0, y0, w, h, title, ylabel, series, cs, yfmt):
    """One log-log panel; series: [(name, color, [(c, value)])]."""
    parts = []
    vals = [v for _, _, pts in series for _, v in pts if v > 0]
    ylo = 10 ** math.floor(math.log10(min(vals)))
    yhi = 10 ** math.ceil(math.log10(max(vals)))
    if yhi / ylo < 10:
        yhi = ylo * 10
    cmin, cmax = min(cs), max(cs)

    def px(c):
        if cmax == cmin:
            return x0 + w / 2
        return x0 + w * (math.log2(c) - math.log2(cmin)) / (math.log2(cmax) - math.log2(cmin))

    def py(v):
        return y0 + h - h * (math.log10(v) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo))

    parts.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>')
    parts.append(
        f'<text x="{x0 + w / 2}" y="{y0 - 12}" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>'
    )
    for t in nice_log_ticks(ylo, yhi):
        y = py(t)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(
            f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{escape(yfmt(t))}</text>'
        )
    for c in cs:
        x = px(c)
        parts.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + h}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{y0 + h + 16}" text-anchor="middle" font-size="11">{c}</text>')
    parts.append(
        f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" text-anchor="middle" font-size="12">'
        "concurrent connections (wrk -c)</text>"
    )
    parts.append(
        f'<text x="{x0 - 58}" y="{y0 + h / 2}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 {x0 - 58} {y0 + h / 2})">{escape(ylabel)}</text>'
    )
    for name, color, pts in series:
        pts = sorted(p for p in pts if p[1] > 0)
        if not pts:
            continue
        d = " ".join(f"{px(c):.1f},{py(v):.1f}" for c, v in pts)
        parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2.2"/>')
        for c, v in pts:
            parts.append(f'<circle cx="{px(c):.1f}" cy="{py(v):.1f}" r="3.5" fill="{color}"/>')
    return parts



def svg_head(width, height, title):
    """The opening of a plot: the svg element, a white page, the title."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="16">{escape(title)}</text>',
    ]


def legend(left, top, entries, step=22, width=3, dash=None):
    """One line sample and label per (colour, label), from `top` down."""
    out = []
    for i, (color, label) in enumerate(entries):
        y = top + step * i
        extra = f' stroke-dasharray="{dash[i]}"' if dash and dash[i] else ""
        out.append(f'<line x1="{left}" y1="{y}" x2="{left + 28}" y2="{y}" stroke="{color}" stroke-width="{width}"{extra}/>')
        out.append(f'<text x="{left + 36}" y="{y + 4}" font-size="12">{escape(label)}</text>')
    return out


def cli(doc, table, svg, title, read=None):
    """`script RESULTS.jsonl TABLE.md PLOT.svg`: the table and the plot of the results
    (read with `read`, by default this module's `load`)."""
    if len(sys.argv) != 4:
        sys.exit(doc)
    rows = (read or load)(sys.argv[1])
    if not rows:
        sys.exit("no results")
    with open(sys.argv[2], "w") as f:
        f.write(table(rows))
    with open(sys.argv[3], "w") as f:
        f.write(svg(rows, title))

def svg(rows, title):
    systems = systems_in_order(rows)
    cs = sorted({r["c"] for r in rows})
    pw, ph = 380, 280
    left, top, gap = 80, 60, 110
    width = left + 2 * pw + gap + 30
    legend_h = 22 * len(systems) + 10
    height = top + ph + 50 + legend_h
    colors = {s: COLORS[i % len(COLORS)] for i, s in enumerate(systems)}
    thr = [(s, colors[s], [(r["c"], r["rps"]) for r in rows if r["system"] == s]) for s in systems]
    lat = [(s, colors[s], [(r["c"], r["mean_us"]) for r in rows if r["system"] == s]) for s in systems]

    def rps_fmt(v):
        return f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"

    def us_fmt(v):
        return f"{v / 1000:g} ms" if v >= 1000 else f"{v:g} µs"

    parts = svg_head(width, height, title)
    parts += panel(left, top, pw, ph, "Throughput (higher is better)", "requests/s", thr, cs, rps_fmt)
    parts += panel(left + pw + gap, top, pw, ph, "Mean latency, c ÷ req/s (lower is better)", "mean latency", lat, cs, us_fmt)
    parts += legend(left, top + ph + 60, [(colors[s], LABELS.get(s, s)) for s in systems])
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main():
    cli(__doc__, table, svg, "OpenAI chat POST on loopback, fixed-answer backend (wrk, 2-core machine)")


if __name__ == "__main__":
    main()
