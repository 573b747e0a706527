#!/usr/bin/env bash
# The node's user-space instructions per task (issue 17), counted by valgrind's callgrind:
# unlike CPU time, the count hardly moves when other work shares the machine, so two
# builds can be compared on a busy machine and a change of a few percent is visible.
# Kernel time (syscalls, wake-ups) is not counted: scripts/bench/node.sh measures that.
#
# For each node binary: the fixed-answer nginx backend, the node under callgrind with
# instrumentation off, a warm-up of tasks, then instrumentation on for a wrk run of
# BENCH_DURATION s at each concurrency, off again; instructions ÷ tasks answered. The
# per-function profile of the last run (transport and concurrency) goes to
# callgrind-NAME.txt.
#
#   scripts/bench/node_instructions.sh                       # this tree's release node
#   NODE_BIN_OTHER=/tmp/iicp-node-before scripts/bench/node_instructions.sh
#
# Environment (all optional):
#   BENCH_CONCURRENCY  default "1 16"
#   BENCH_TRANSPORTS   "http", "native" or both (default "http"); native is driven by
#                      examples/native_load.rs (NATIVE_LOAD_BIN, or built here)
#   BENCH_DURATION     seconds of load per concurrency under callgrind (default 8)
#   BENCH_OUT          results folder (default target/bench/node-instr)
#   IICP_NODE_BIN      the node under test; default: cargo build --release --bin iicp-node
#   NODE_BIN_OTHER     a second node binary, measured the same way after the first
#   NODE_RUST_LOG      the node's RUST_LOG (default info, as an operator runs it)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/bench"
CONCURRENCY="${BENCH_CONCURRENCY:-1 16}"
DURATION="${BENCH_DURATION:-8}"
OUT="${BENCH_OUT:-$ROOT/target/bench/node-instr}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
MODEL="bench-model"
export BENCH_MODEL="$MODEL"

BENCH_NAME=node-instr
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

bench_tools
command -v valgrind >/dev/null || die "valgrind is needed: apt-get install -y valgrind"
TRANSPORTS="${BENCH_TRANSPORTS:-http}"
examples=()
[[ -n "${NATIVE_LOAD_BIN:-}" || $TRANSPORTS != *native* ]] || examples+=(native_load)
build_release "${examples[@]}"
NATIVE_LOAD="${NATIVE_LOAD_BIN:-$ROOT/target/release/examples/native_load}"
NODE_BIN="${IICP_NODE_BIN:-$ROOT/target/release/iicp-node}"
OTHER="${NODE_BIN_OTHER:-}"
[[ -z $OTHER || -x $OTHER ]] || die "NODE_BIN_OTHER=$OTHER is not an executable"

bench_workdir
start_nginx
TASK_BODY="{\"intent\":\"urn:iicp:intent:llm:chat:v1\",\"payload\":{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}"
post_ok() {
  curl -sf -m 20 -H 'Content-Type: application/json' -d "$2" "$1" | grep -q '"hello"'
}

RESULTS="$OUT/results.md"
{
  echo "| node | transport | c | tasks | instructions per task |"
  echo "|---|---|---|---|---|"
} >"$RESULTS"

# measure NAME BIN
measure() {
  local name="$1" bin="$2" port pid out c line requests ir
  port="$(free_port)"
  out="$OUT/callgrind-$name.out"
  rm -f "$out"*
  export IICP_HOME="$WORK/home-$name"
  mkdir -p "$IICP_HOME"
  RUST_LOG="${NODE_RUST_LOG:-info}" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$out" "$bin" serve --host 127.0.0.1 --port "$port" \
    --auto-detect-nat false --skip-registration --no-cx \
    --backend-type openai_compat --backend-url "$BACKEND" --model "$MODEL" \
    --max-concurrent 256 --replay-window-entries 5000000 \
    >"$OUT/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  unset IICP_HOME
  wait_for "$name" "$pid" post_ok "http://127.0.0.1:$port/v1/task" "$TASK_BODY"
  wrk -t1 -c4 -d3s -s "$HERE/task.lua" "http://127.0.0.1:$port/v1/task" >/dev/null
  [[ $TRANSPORTS != *native* ]] || "$NATIVE_LOAD" "127.0.0.1:$port" 4 3 0 "$MODEL" >/dev/null
  for transport in $TRANSPORTS; do
    for c in $CONCURRENCY; do
      callgrind_control -z "$pid" >/dev/null 2>&1
      callgrind_control -i on "$pid" >/dev/null 2>&1
      case "$transport" in
      http) line="$(wrk -t1 -c"$c" -d"${DURATION}s" --timeout 30s -s "$HERE/task.lua" \
        "http://127.0.0.1:$port/v1/task" | sed -n 's/^BENCH_JSON //p')" ;;
      native) line="$("$NATIVE_LOAD" "127.0.0.1:$port" "$c" "$DURATION" 0 "$MODEL" \
        | sed -n 's/^BENCH_JSON //p')" ;;
      *) die "BENCH_TRANSPORTS: unknown transport $transport" ;;
      esac
      callgrind_control -i off "$pid" >/dev/null 2>&1
      callgrind_control -d "$transport-c$c" "$pid" >/dev/null 2>&1
      requests="$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["err_status"]==0, r; print(r["requests"])' "$line")"
      # The dump just written is the newest file of this process.
      ir="$(callgrind_annotate "$(ls -t "$out"* | head -n1)" 2>/dev/null \
        | awk '/PROGRAM TOTALS/ && !n {gsub(",", "", $1); print $1; n = 1}')"
      [[ -n $ir && $requests -gt 0 ]] || die "no count for $name $transport c=$c"
      echo "| $name | $transport | $c | $requests | $((ir / requests)) |" >>"$RESULTS"
      log "$name $transport c=$c: $requests tasks, $((ir / requests)) instructions per task"
    done
  done
  callgrind_annotate --inclusive=no "$(ls -t "$out"* | head -n1)" 2>/dev/null \
    >"$OUT/callgrind-$name.txt" || true
  callgrind_annotate --inclusive=yes "$(ls -t "$out"* | head -n1)" 2>/dev/null \
    >"$OUT/callgrind-$name-inclusive.txt" || true
  stop "$pid"
}

measure node "$NODE_BIN"
[[ -z $OTHER ]] || measure other "$OTHER"
echo
cat "$RESULTS"
log "results in $OUT (results.md, callgrind-*.txt)"
