#!/usr/bin/env bash
# Directory replicas on one PostgreSQL database under load (issue 19): a private cluster
# (scripts/postgres.sh, Debian's packages), DIRREP_REPLICAS release `iicp-node directory
# --db postgres://…` (default 3), DIRREP_NODES registered nodes (default 20 000) each
# heartbeating every DIRREP_HEARTBEAT_MS (default 30 000) through the replicas in turn, and
# meanwhile discover p50/p99 on each replica and the time a registration on one takes to
# be readable on the others. The load generator is benches/directory_replicas.rs.
#
#   scripts/bench/directory_replicas.sh
#
# Environment: those of benches/directory_replicas.rs (DIRREP_*), IICP_NODE_BIN (default:
# target/release/iicp-node, built here) and BENCH_OUT (default target/bench/dirrep).
# Needs root or a user that can run PostgreSQL's initdb (as scripts/postgres.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${BENCH_OUT:-$TARGET/bench/dirrep}"
mkdir -p "$OUT"
log() { echo "[dirrep-bench] $*" >&2; }

cd "$ROOT"
if [[ -z "${IICP_NODE_BIN:-}" ]]; then
  log "building iicp-node (release)"
  cargo build --release --quiet --bin iicp-node
  IICP_NODE_BIN="$TARGET/release/iicp-node"
fi
log "building the load generator (benches/directory_replicas.rs)"
# Optimised without LTO: the generator only sends HTTP (the directory is the release build).
export CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
cargo bench --no-run --quiet --bench directory_replicas 2>/dev/null \
  || cargo bench --no-run --bench directory_replicas
GEN="$(ls -t "$TARGET"/release/deps/directory_replicas-* | grep -v '\.d$' | head -1)"

bash scripts/postgres.sh install
cluster=$(mktemp -d)
trap 'bash scripts/postgres.sh stop "$cluster" || true' EXIT
url=$(bash scripts/postgres.sh start "$cluster")
: >"$OUT/results.jsonl"
DIRREP_DB="$url" IICP_NODE_BIN="$IICP_NODE_BIN" DIRREP_OUT="$OUT/results.jsonl" "$GEN" --bench
log "results: $OUT/results.jsonl"
