#!/usr/bin/env bash
# Regenerates link/hot-text.ld, the layout of the release binary's hot code (issue 17: idle
# RSS). Runs the release iicp-node as an operator would, each process under callgrind:
# a directory (heartbeats and sweeps every 2 s so both run), a node with the echo backend
# and a node with an OpenAI-compatible backend (nginx with a fixed answer), both registered,
# both sent chat tasks over HTTP and over native frames, discover queries, then SIGTERM.
# scripts/hot_text.py turns the functions they ran into the linker script; build.rs links
# the release binary with it. Rerun after a change that moves start-up, idle or
# request-path code, then rebuild and compare: bash benches/idle_rss.sh.
#
#   scripts/hot_text.sh            # builds the release node and native_load first
#
# The traced binary is kept as target/hot-text/iicp-node (its symbols resolve aliases).
#
# Needs valgrind and nginx (installed with apt-get when missing, as root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/hot-text"
mkdir -p "$OUT"
MODEL="bench-model"
BENCH_NAME=hot-text
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

bench_tools
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null \
  || die "valgrind is needed: apt-get install -y valgrind"
# This tree's node (not IICP_NODE_BIN), built on its own as build_release builds it.
IICP_NODE_BIN="" build_release native_load
BIN="$OUT/iicp-node"
cp "$ROOT/target/release/iicp-node" "$BIN"
NATIVE_LOAD="$ROOT/target/release/examples/native_load"

bench_workdir
start_nginx
rm -f "$OUT"/*.callgrind

# traced NAME ARGS...: the release binary under callgrind, in the background (PID in $TRACED)
traced() {
  local name="$1"; shift
  IICP_HOME="$WORK/home-$name" valgrind --tool=callgrind --demangle=no --dump-instr=no \
    --callgrind-out-file="$OUT/$name.callgrind" "$BIN" "$@" >"$OUT/$name.log" 2>&1 &
  TRACED=$!
  PIDS+=("$TRACED")
}

http_ok() { curl -sf -m 20 "$1" >/dev/null; }
task_ok() {
  curl -sf -m 20 -H 'Content-Type: application/json' "$1" -d \
    "{\"intent\":\"urn:iicp:intent:llm:chat:v1\",\"payload\":{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}" \
    | grep -q '"status"'
}
discovered() {
  curl -sf -m 20 "$1/api/v1/discover?intent=urn:iicp:intent:llm:chat:v1" \
    | python3 -c 'import json,sys; sys.exit(len(json.load(sys.stdin)["nodes"]) != int(sys.argv[1]))' "$2"
}

dport="$(free_port)"
traced directory directory --listen "127.0.0.1:$dport" --heartbeat-ms 2000 --eviction-sweep-secs 2
dpid=$TRACED
DIR="http://127.0.0.1:$dport"
wait_for directory "$dpid" http_ok "$DIR/health"

nodes=()
for backend in echo openai_compat; do
  port="$(free_port)"
  args=(serve --host 127.0.0.1 --port "$port" --directory-url "$DIR/api" --backend-type "$backend")
  [[ $backend == echo ]] || args+=(--backend-url "$BACKEND" --model "$MODEL")
  traced "node-$backend" "${args[@]}"
  wait_for "node-$backend" "$TRACED" task_ok "http://127.0.0.1:$port/v1/task"
  nodes+=("$TRACED:$port")
done
wait_for directory "$dpid" discovered "$DIR" 2

for entry in "${nodes[@]}"; do
  port="${entry#*:}"
  for _ in $(seq 1 20); do task_ok "http://127.0.0.1:$port/v1/task"; done
  "$NATIVE_LOAD" "127.0.0.1:$port" 2 2 0 "$MODEL" | grep -q '"err_status":0' \
    || die "native tasks to port $port failed"
  http_ok "http://127.0.0.1:$port/iicp/health"
done
for _ in $(seq 1 10); do discovered "$DIR" 2; done
log "idle through heartbeats and sweeps"
sleep 6

for entry in "${nodes[@]}"; do stop "${entry%%:*}"; done
stop "$dpid"

python3 "$ROOT/scripts/hot_text.py" "$ROOT/link/hot-text.ld" --binary "$BIN" \
  --directory "$OUT/directory.callgrind" \
  --node "$OUT/node-echo.callgrind" --node "$OUT/node-openai_compat.callgrind"
log "rebuild (cargo build --release) and compare: bash benches/idle_rss.sh"
