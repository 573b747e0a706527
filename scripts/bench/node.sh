#!/usr/bin/env bash
# Node cost per task (issue 17): the same chat task, side by side, against
#   direct        nginx answering a fixed chat completion (the model stand-in), alone (wrk
#                 with post.lua);
#   node-http     one iicp-node serve (--no-cx, --skip-registration, openai_compat backend =
#                 that nginx), POST /v1/task with a plaintext task (wrk with task.lua);
#   node-native   the same node over native frames (examples/native_load.rs: NativeClient
#                 connections, one per 16 workers, 2 runtime threads like wrk -t2);
#   other-http, other-native   the same two against NODE_BIN_OTHER, when it is set (another
#                 iicp-node build: an older commit, a build with other features).
#   floor-fixed, floor-pooled, floor-inline   (only when named in BENCH_SYSTEMS) the floor
#                 under a node: examples/proxy_floor.rs, hyper's server answering by itself
#                 (fixed), or passing the body to that nginx and its answer back through
#                 hyper-util's pool (pooled) or a backend connection driven in the inbound
#                 connection's task (inline); wrk with post.lua, as for direct.
# For each concurrency (c = 1 4 16 64 by default) a warm-up, then the measured run: req/s,
# latency, CPU per task of the node process alone (utime + stime from /proc/PID/stat over
# the run ÷ tasks; for `direct`, nginx's), and the node's RSS: idle (after start-up and 20
# tasks) and its peak under load (VmHWM). Everything on loopback, every process stopped on
# exit.
#
#   scripts/bench/node.sh
#   NODE_BIN_OTHER=/tmp/iicp-node-before scripts/bench/node.sh
#   BENCH_PERF=1 scripts/bench/node.sh    # also perf record -g of the node at c=64 (HTTP)
#
# Environment (all optional):
#   BENCH_SYSTEMS      rows, in order (default "direct node-http node-native", plus
#                      "other-http other-native" when NODE_BIN_OTHER is set)
#   BENCH_CONCURRENCY  default "1 4 16 64"
#   BENCH_DURATION     seconds per measurement (default 10)
#   BENCH_WARMUP       seconds of warm-up before each (default 2)
#   BENCH_OUT          results folder (default target/bench/node): results.jsonl,
#                      results.md, node.svg, perf-*.txt, logs
#   IICP_NODE_BIN      the node under test; default: cargo build --release --bin iicp-node
#   NATIVE_LOAD_BIN    a prebuilt native load generator; default: cargo build --release
#                      --example native_load
#   NODE_BIN_OTHER     a second node binary for the other-* rows
#   BENCH_PERF         1: after the runs, `perf record -g` each node for BENCH_DURATION s
#                      under wrk c=64 and write the top entries to perf-SYSTEM.txt
#                      (needs perf: apt-get install -y linux-perf)
#   BENCH_FLAMEGRAPH   1: with BENCH_PERF, also record DWARF call stacks and draw
#                      flame-SYSTEM.svg (needs inferno: cargo install inferno)
#
# Needs nginx and wrk (apt-get installs them when missing and this runs as root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/bench"
OTHER="${NODE_BIN_OTHER:-}"
DEFAULT_SYSTEMS="direct node-http node-native"
[[ -n $OTHER ]] && DEFAULT_SYSTEMS+=" other-http other-native"
SYSTEMS="${BENCH_SYSTEMS:-$DEFAULT_SYSTEMS}"
CONCURRENCY="${BENCH_CONCURRENCY:-1 4 16 64}"
DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
OUT="${BENCH_OUT:-$ROOT/target/bench/node}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
MODEL="bench-model"
export BENCH_MODEL="$MODEL"

BENCH_NAME=node-bench
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

# --- tools ---------------------------------------------------------------------------------
bench_tools
if [[ ${BENCH_PERF:-0} == 1 ]] && ! command -v perf >/dev/null; then
  die "BENCH_PERF=1 needs perf: apt-get install -y linux-perf"
fi

examples=()
[[ -n "${NATIVE_LOAD_BIN:-}" ]] || examples+=(native_load)
[[ $SYSTEMS != *floor-* ]] || examples+=(proxy_floor)
build_release "${examples[@]}"
NODE_BIN="${IICP_NODE_BIN:-$ROOT/target/release/iicp-node}"
NATIVE_LOAD="${NATIVE_LOAD_BIN:-$ROOT/target/release/examples/native_load}"
PROXY_FLOOR="$ROOT/target/release/examples/proxy_floor"
[[ -z $OTHER || -x $OTHER ]] || die "NODE_BIN_OTHER=$OTHER is not an executable"

# --- processes -----------------------------------------------------------------------------
bench_workdir

TASK_BODY="{\"intent\":\"urn:iicp:intent:llm:chat:v1\",\"payload\":{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}"
# POST BODY to URL, answered 2xx with the backend's text.
post_ok() {
  curl -sf -m 5 -H 'Content-Type: application/json' -d "$2" "$1" | grep -q '"hello"'
}

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

mkdir -p "$OUT"
log "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (other work on the machine skews every figure)"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"

# record SYSTEM C PID RSS_IDLE LINE CPU_US: one result line (RSS only for a node).
record() {
  local system="$1" c="$2" pid="$3" rss_idle="$4" line="$5" cpu="$6"
  [[ -n "$line" ]] || die "no result for $system c=$c"
  local hwm=0
  [[ -n $rss_idle ]] && hwm="$(kib "$pid" VmHWM)"
  echo "{\"system\":\"$system\",\"c\":$c,\"loadavg\":$(cut -d' ' -f1 /proc/loadavg),\"cpu_us\":$cpu,\"rss_idle_kib\":${rss_idle:-0},\"rss_peak_kib\":$hwm,$line" >>"$RESULTS"
  log "$system c=$c: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); x=r["requests"]/r["duration_us"]*1e6; print("%.0f req/s, mean %.0f us, p50 %d us, CPU %.1f us/task, errors %d" % (x, r["c"]/x*1e6, r["lat_p50_us"], r["cpu_us"]/max(r["requests"],1), r["err_status"]))' "$(tail -n1 "$RESULTS")")"
}

# load_wrk SCRIPT URL C SECONDS: one wrk run; prints the BENCH_JSON object's inside.
load_wrk() {
  local t=$(($3 < 2 ? $3 : 2))
  wrk -t"$t" -c"$3" -d"${4}s" --timeout 10s -s "$HERE/$1" "$2" | sed -n 's/^BENCH_JSON {//p'
}
# load_native HOSTPORT C SECONDS
load_native() {
  "$NATIVE_LOAD" "$1" "$2" "$3" 0 "$MODEL" | sed -n 's/^BENCH_JSON {//p'
}

# run_system SYSTEM PID RSS_IDLE KIND TARGET: every concurrency.
run_system() {
  local system="$1" pid="$2" rss_idle="$3" kind="$4" target="$5" c cpu0 cpu1 line
  for c in $CONCURRENCY; do
    case "$kind" in
    post) load_wrk post.lua "$target" "$c" "$WARMUP" >/dev/null ;;
    task) load_wrk task.lua "$target" "$c" "$WARMUP" >/dev/null ;;
    native) load_native "$target" "$c" "$WARMUP" >/dev/null ;;
    esac
    cpu0="$(cpu_ticks "$pid")"
    case "$kind" in
    post) line="$(load_wrk post.lua "$target" "$c" "$DURATION")" ;;
    task) line="$(load_wrk task.lua "$target" "$c" "$DURATION")" ;;
    native) line="$(load_native "$target" "$c" "$DURATION")" ;;
    esac
    cpu1="$(cpu_ticks "$pid")"
    record "$system" "$c" "$pid" "$rss_idle" "$line" "$(((cpu1 - cpu0) * TICK_US))"
  done
}

# --- the backend: nginx with a fixed chat completion ----------------------------------------
start_nginx
# nginx's master forks its worker: the worker does the work.
sleep 0.2
NGINX_WORKER="$(pgrep -P "$NGINX_PID" | head -n1)"
log "nginx on :$NGINX_PORT (worker $NGINX_WORKER)"

# start_node NAME BIN: a node on a free port; sets NODE_PID, NODE_PORT, RSS_IDLE.
start_node() {
  local name="$1" bin="$2" i
  NODE_PORT="$(free_port)"
  export IICP_HOME="$WORK/home-$name"
  mkdir -p "$IICP_HOME"
  RUST_LOG="${NODE_RUST_LOG:-info}" "$bin" serve --host 127.0.0.1 --port "$NODE_PORT" \
    --auto-detect-nat false --skip-registration --no-cx \
    --backend-type openai_compat --backend-url "$BACKEND" --model "$MODEL" \
    --max-concurrent 256 --max-connections 4096 --replay-window-entries 5000000 \
    >"$OUT/$name.log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  wait_for "$name" "$NODE_PID" post_ok "http://127.0.0.1:$NODE_PORT/v1/task" "$TASK_BODY"
  for i in $(seq 1 20); do post_ok "http://127.0.0.1:$NODE_PORT/v1/task" "$TASK_BODY"; done
  sleep 0.5
  RSS_IDLE="$(kib "$NODE_PID" VmRSS)"
  unset IICP_HOME
  log "$name: $bin on :$NODE_PORT, idle RSS $RSS_IDLE KiB"
}

for system in $SYSTEMS; do
  case "$system" in
  direct) run_system direct "$NGINX_WORKER" "" post "$BACKEND/chat/completions" ;;
  floor-*)
    NODE_PORT="$(free_port)"
    "$PROXY_FLOOR" "$NODE_PORT" "$BACKEND/chat/completions" "${system#floor-}" \
      >"$OUT/$system.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    wait_for "$system" "$NODE_PID" curl -sf -m 5 -d '{}' "http://127.0.0.1:$NODE_PORT/"
    sleep 0.5
    run_system "$system" "$NODE_PID" "$(kib "$NODE_PID" VmRSS)" post "http://127.0.0.1:$NODE_PORT/v1/chat/completions"
    stop "$NODE_PID"
    ;;
  node-* | other-*)
    bin="$NODE_BIN"
    [[ $system == other-* ]] && bin="$OTHER"
    [[ -n $bin ]] || die "$system needs NODE_BIN_OTHER"
    start_node "$system" "$bin"
    case "$system" in
    *-http) run_system "$system" "$NODE_PID" "$RSS_IDLE" task "http://127.0.0.1:$NODE_PORT/v1/task" ;;
    *-native) run_system "$system" "$NODE_PID" "$RSS_IDLE" native "127.0.0.1:$NODE_PORT" ;;
    esac
    stop "$NODE_PID"
    ;;
  *) die "unknown system: $system" ;;
  esac
done

if [[ ${BENCH_PERF:-0} == 1 ]]; then
  for name in node ${OTHER:+other}; do
    bin="$NODE_BIN"
    [[ $name == other ]] && bin="$OTHER"
    start_node "perf-$name" "$bin"
    load_wrk task.lua "http://127.0.0.1:$NODE_PORT/v1/task" 64 $((DURATION + 8)) >/dev/null &
    wrk_pid=$!
    sleep 2
    perf record -g -F 999 -o "$OUT/perf-$name.data" -p "$NODE_PID" -- sleep "$DURATION" \
      >/dev/null 2>&1 || log "perf record failed for $name"
    if [[ ${BENCH_FLAMEGRAPH:-0} == 1 ]]; then
      # DWARF unwinding: a release build has no frame pointers. 3 s is plenty of stacks.
      perf record --call-graph dwarf,16384 -F 499 -o "$OUT/perf-$name-dwarf.data" \
        -p "$NODE_PID" -- sleep 3 >/dev/null 2>&1 || log "perf record (dwarf) failed for $name"
      perf script -i "$OUT/perf-$name-dwarf.data" 2>/dev/null | inferno-collapse-perf \
        | inferno-flamegraph --title "iicp-node ($name), POST /v1/task under wrk c=64" \
          >"$OUT/flame-$name.svg" || log "no flame graph for $name (inferno missing?)"
      rm -f "$OUT/perf-$name-dwarf.data"
    fi
    wait "$wrk_pid" || true
    perf report -i "$OUT/perf-$name.data" --no-children --sort symbol --stdio -g none \
      --percent-limit 0.4 2>/dev/null | grep -v '^$' | grep -v '^#' | head -n 60 >"$OUT/perf-$name.txt" || true
    perf report -i "$OUT/perf-$name.data" --no-children --sort dso --stdio -g none \
      2>/dev/null | grep -v '^$' | grep -v '^#' | head -n 12 >"$OUT/perf-$name-dso.txt" || true
    stop "$NODE_PID"
    log "perf top entries of $name in $OUT/perf-$name.txt"
  done
fi

python3 "$HERE/node_plot.py" "$RESULTS" "$OUT/results.md" "$OUT/node.svg"
echo
cat "$OUT/results.md"
log "results in $OUT (results.md, results.jsonl, node.svg)"
