#!/usr/bin/env bash
# Directory at scale: for each mesh size, a fresh release `iicp-node directory`
# (--skip-liveness-check, --register-rate-limit 0, --max-nodes raised, --enforce-probation),
# N varied nodes registered and heartbeated once over HTTP, then discover timed for five
# typical queries (intent; intent+model; intent+region; qos=interactive; limit=50).
# Reports register and heartbeat rates, discover p50/p99 (client side, keep-alive, one
# request at a time), RSS idle and loaded (/proc/PID/status VmRSS) and RSS per node.
# The load generator is benches/directory_scale.rs (harness = false).
#
#   scripts/bench/directory_scale.sh
#   IICP_NODE_BINS="before=/tmp/iicp-node-old after=target/release/iicp-node" scripts/bench/directory_scale.sh
#
# Environment (all optional):
#   IICP_NODE_BINS     label=binary pairs, measured one after the other in this run
#                      (default "current=target/release/iicp-node", built here)
#   DIRSCALE_SIZES     mesh sizes (default "1000 10000 20000 100000")
#   DIRSCALE_ITERS     discover requests per query and size (default 200)
#   DIRSCALE_BUDGET_S  most seconds per query and size (default 6; at least 20 requests)
#   DIRSCALE_WORKERS   concurrent registrations (default 16)
#   DIRSCALE_PERF_N    also `perf record -g` each directory during the discover queries at
#                      this size; a perf report per label lands in the results folder
#   BENCH_OUT          results folder (default target/bench/dirscale): results.jsonl,
#                      results.md, directory_scale.svg
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${BENCH_OUT:-$ROOT/target/bench/dirscale}"
mkdir -p "$OUT"
log() { echo "[dirscale-bench] $*" >&2; }

cd "$ROOT"
if [[ -z "${IICP_NODE_BINS:-}" ]]; then
  log "building iicp-node (release)"
  cargo build --release --quiet --bin iicp-node
  IICP_NODE_BINS="current=$ROOT/target/release/iicp-node"
fi
log "building the load generator (benches/directory_scale.rs)"
cargo bench --no-run --quiet --bench directory_scale 2>/dev/null \
  || cargo bench --no-run --bench directory_scale
GEN="$(ls -t "$ROOT"/target/release/deps/directory_scale-* | grep -v '\.d$' | head -1)"

: >"$OUT/results.jsonl"
for pair in $IICP_NODE_BINS; do
  label="${pair%%=*}"; bin="${pair#*=}"
  log "$label: $bin"
  perf_env=()
  if [[ -n "${DIRSCALE_PERF_N:-}" ]]; then
    perf_env=(DIRSCALE_PERF="$OUT/perf-$label.data" DIRSCALE_PERF_N="$DIRSCALE_PERF_N")
  fi
  env "${perf_env[@]}" IICP_NODE_BIN="$bin" DIRSCALE_LABEL="$label" \
    DIRSCALE_OUT="$OUT/results.jsonl" "$GEN" --bench >/dev/null
  if [[ -f "$OUT/perf-$label.data" ]]; then
    perf report -i "$OUT/perf-$label.data" --no-children --percent-limit 1.5 --stdio \
      --sort symbol 2>/dev/null | grep -E "^ +[0-9.]+%" | sed -E "s/[ -]+$//" >"$OUT/perf-$label.txt" || true
    log "profile: $OUT/perf-$label.txt"
  fi
done
python3 "$ROOT/scripts/bench/directory_scale_plot.py" "$OUT/results.jsonl" \
  "$OUT/results.md" "$OUT/directory_scale.svg"
cat "$OUT/results.md"
log "plot: $OUT/directory_scale.svg"
