#!/usr/bin/env bash
# Soak (issue 18): SOAK_TASKS chat tasks through a whole local mesh while faults are
# injected on a schedule, and every task accounted for.
#   directory   one iicp-node directory on loopback (heartbeats every second; the real
#               liveness probe of registrations, no --skip-liveness-check);
#   node-1..3   three iicp-node serve, each with a CX key and in front of its own backend:
#               backend-1..3, nginx answering a fixed chat completion ("hello", lib.sh);
#   driver      examples/soak_client.rs: SOAK_CONCURRENCY workers sharing one IicpClient
#               (local directory, loopback nodes allowed, tasks sealed, weighted_v1
#               selection) send chat tasks until SOAK_TASKS were issued. Each task ends as
#               a success (the fixed answer, from a named node, with a task id no other
#               answer had), a structured IicpError (counted by code), a wrong answer, or
#               HUNG: no return within the client's deadline + 5 s.
# The fault schedule runs meanwhile: every SOAK_FAULT_PERIOD seconds, in turn,
#   (a) a backend's nginx (master and worker) is SIGKILLed and started again on its port
#       SOAK_FAULT_DOWN seconds later (backend-1, -2, -3, -1, …): its node keeps running;
#   (b) a node of SOAK_KILL_NODES is SIGKILLed and started again on its port (same
#       IICP_HOME, so the same CX key) SOAK_FAULT_DOWN seconds later; it must register
#       with the directory again (its log says so) before the schedule goes on.
# Every fault is logged with its time in faults.log. The RSS (VmRSS) of the directory, the
# nodes and the driver is sampled every SOAK_RSS_PERIOD seconds into rss.csv; summary.md
# compares each process's RSS at the warm-up point with its RSS at the end (a restarted
# node: its last incarnation, from its own warm-up). The warm-up point is when
# SOAK_WARMUP_FRACTION of the tasks are done, and not before SOAK_WARMUP_MIN_S seconds: a
# node remembers task ids and CX nonces for 300 s (replay protection), so its memory grows
# by design for its first five minutes under load.
#
#   scripts/bench/soak.sh
#   SOAK_TASKS=20000 SOAK_FAULT_PERIOD=5 scripts/bench/soak.sh     # a short run
#
# Environment (all optional):
#   SOAK_TASKS           tasks issued (default 1000000)
#   SOAK_CONCURRENCY     driver workers (default 32)
#   SOAK_OUT             results folder (default target/bench/soak): summary.md,
#                        summary.json, driver.out (progress lines and SOAK_SUMMARY),
#                        faults.log, rss.csv, rss.svg, every log, and the directory's
#                        view at the end (discover_end.json, nodes_end.jsonl)
#   SOAK_FAULT_PERIOD    seconds between faults (default 15; 0: no faults)
#   SOAK_FAULT_DOWN      seconds a killed process stays down (default 3)
#   SOAK_KILL_NODES      the nodes SIGKILLed in turn by fault (b) (default "3": nodes 1
#                        and 2 run the whole soak, so their RSS is one long series)
#   SOAK_BACKEND_FAULTS  the backends killed in turn by fault (a) (default "1 2 3")
#   SOAK_TIMEOUT_MS      the client's deadline per task (default 10000)
#   SOAK_NATIVE          1: tasks over the native transport (prefer_native)
#   SOAK_RSS_PERIOD      seconds between RSS samples (default 5)
#   SOAK_PROGRESS_S      seconds between the driver's progress lines (default 10)
#   SOAK_WARMUP_FRACTION default 0.1
#   SOAK_WARMUP_MIN_S    default 330
#   IICP_NODE_BIN        a prebuilt iicp-node; default: cargo build --release --bin iicp-node
#   SOAK_CLIENT_BIN      a prebuilt driver; default: cargo build --release --example soak_client
#
# Exit status 1 when a task hung, came back wrong, or the accounting does not add up
# (issued == succeeded + errors + wrong + hung). Needs nginx (apt-get installs it when
# missing and this runs as root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/bench"
TASKS="${SOAK_TASKS:-1000000}"
CONCURRENCY="${SOAK_CONCURRENCY:-32}"
OUT="${SOAK_OUT:-$ROOT/target/bench/soak}"
PERIOD="${SOAK_FAULT_PERIOD:-15}"
DOWN="${SOAK_FAULT_DOWN:-3}"
KILL_NODES=(${SOAK_KILL_NODES:-3})
BACKEND_FAULTS=(${SOAK_BACKEND_FAULTS:-1 2 3})
TIMEOUT_MS="${SOAK_TIMEOUT_MS:-10000}"
RSS_PERIOD="${SOAK_RSS_PERIOD:-5}"
PROGRESS_S="${SOAK_PROGRESS_S:-10}"
WARMUP_FRACTION="${SOAK_WARMUP_FRACTION:-0.1}"
WARMUP_MIN_S="${SOAK_WARMUP_MIN_S:-330}"
MODEL="bench-model"
NODES=(1 2 3)

BENCH_NAME=soak
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

# --- tools ---------------------------------------------------------------------------------
bench_tools
build=()
[[ -n "${IICP_NODE_BIN:-}" ]] || build+=(--bin iicp-node)
[[ -n "${SOAK_CLIENT_BIN:-}" ]] || build+=(--example soak_client)
if ((${#build[@]})); then
  log "building ${build[*]} (release)"
  (cd "$ROOT" && cargo build --release --quiet "${build[@]}")
fi
NODE_BIN="${IICP_NODE_BIN:-$ROOT/target/release/iicp-node}"
CLIENT_BIN="${SOAK_CLIENT_BIN:-$ROOT/target/release/examples/soak_client}"

# --- processes -----------------------------------------------------------------------------
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
rm -f "$OUT"/*.log "$OUT"/rss.csv "$OUT"/driver.out "$OUT"/summary.*
bench_workdir
mkdir -p "$WORK/pids"
FAULTS="$OUT/faults.log"
: >"$FAULTS"
now_ms() { date +%s%3N; }
# fault_log TEXT: one line of faults.log (ISO time, Unix ms, text), echoed.
fault_log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ) $(now_ms) $*"
  echo "$line" >>"$FAULTS"
  log "$*"
}
# track NAME PID: the process the RSS sampler reads for NAME from now on.
track() { echo "$2" >"$WORK/pids/$1.tmp" && mv "$WORK/pids/$1.tmp" "$WORK/pids/$1"; }
untrack() { rm -f "$WORK/pids/$1"; }
forget() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

log "load average before the soak: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

# The directory.
DIR_PORT="$(free_port)"
DIR_URL="http://127.0.0.1:$DIR_PORT/api"
RUST_LOG=info "$NODE_BIN" directory --listen "127.0.0.1:$DIR_PORT" --heartbeat-ms 1000 \
  >"$OUT/directory.log" 2>&1 &
DIR_PID=$!
PIDS+=("$DIR_PID")
wait_for directory "$DIR_PID" curl -sf "http://127.0.0.1:$DIR_PORT/health"
track directory "$DIR_PID"
log "directory on :$DIR_PORT"

# The backends.
declare -A BACKEND_PORT NODE_PORT NODE_PID BACKEND_PID
for n in "${NODES[@]}"; do
  start_nginx "backend-$n"
  BACKEND_PORT[$n]="$NGINX_PORT"
  BACKEND_PID[$n]="$NGINX_PID"
  log "backend-$n (nginx) on :$NGINX_PORT"
done

registrations() { grep -c 'registered with the directory' "$OUT/node-$1.log" 2>/dev/null || true; }
listed() {
  curl -sf "http://127.0.0.1:$DIR_PORT/v1/discover?intent=urn:iicp:intent:llm:chat:v1" \
    | grep -q "127.0.0.1:$1"
}
# start_node N: node N on its port (a free one the first time), its own IICP_HOME (so its
# CX key survives a restart); returns once the node says it registered with the directory
# and discover lists its endpoint.
start_node() {
  local n="$1" before
  [[ -n ${NODE_PORT[$n]:-} ]] || NODE_PORT[$n]="$(free_port)"
  mkdir -p "$WORK/home-$n"
  before="$(registrations "$n")"
  IICP_HOME="$WORK/home-$n" RUST_LOG=info "$NODE_BIN" serve --host 127.0.0.1 \
    --port "${NODE_PORT[$n]}" --auto-detect-nat false --directory-url "$DIR_URL" \
    --backend-type openai_compat --backend-url "http://127.0.0.1:${BACKEND_PORT[$n]}/v1" \
    --model "$MODEL" --max-concurrent 256 --max-connections 4096 \
    --replay-window-entries 5000000 >>"$OUT/node-$n.log" 2>&1 &
  NODE_PID[$n]=$!
  PIDS+=("${NODE_PID[$n]}")
  wait_for "node-$n" "${NODE_PID[$n]}" bash -c "(( \$(grep -c 'registered with the directory' '$OUT/node-$n.log') > ${before:-0} ))"
  wait_for "node-$n" "${NODE_PID[$n]}" listed "${NODE_PORT[$n]}"
  track "node-$n" "${NODE_PID[$n]}"
}
for n in "${NODES[@]}"; do
  start_node "$n"
  log "node-$n on :${NODE_PORT[$n]} (pid ${NODE_PID[$n]}), backend-$n behind it, registered"
done

# --- the RSS sampler -----------------------------------------------------------------------
echo "unix_ms,process,pid,rss_kib" >"$OUT/rss.csv"
sample_rss() {
  local f name pid rss t
  while true; do
    t="$(now_ms)"
    for f in "$WORK"/pids/*; do
      [[ $f == *.tmp ]] && continue
      name="${f##*/}"
      pid="$(cat "$f" 2>/dev/null)" || continue
      rss="$(awk '$1 == "VmRSS:" {print $2}' "/proc/$pid/status" 2>/dev/null)" || continue
      [[ -n $rss ]] && echo "$t,$name,$pid,$rss" >>"$OUT/rss.csv"
    done
    sleep "$RSS_PERIOD"
  done
}
sample_rss &
PIDS+=("$!")

# --- faults --------------------------------------------------------------------------------
port_closed() { ! curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/"; }
# The master first: killed after its worker, it would fork a new worker in between, which
# outlives it, keeps the port and answers for the "restarted" backend.
kill_backend() {
  local n="$1" master="${BACKEND_PID[$1]}" workers t0 i
  workers="$(pgrep -P "$master" | xargs || true)"
  t0="$(now_ms)"
  kill -9 "$master" 2>/dev/null || true
  wait "$master" 2>/dev/null || true
  [[ -z $workers ]] || kill -9 $workers 2>/dev/null || true
  forget "$master"
  for i in $(seq 1 50); do port_closed "${BACKEND_PORT[$n]}" && break; sleep 0.1; done
  port_closed "${BACKEND_PORT[$n]}" || die "backend-$n still answers on :${BACKEND_PORT[$n]} after SIGKILL"
  fault_log "fault: backend-$n (nginx master $master, workers ${workers:-?}) SIGKILLed, port closed"
  sleep "$DOWN"
  start_nginx "backend-$n" "${BACKEND_PORT[$n]}"
  BACKEND_PID[$n]="$NGINX_PID"
  sleep 0.3
  kill -0 "$NGINX_PID" 2>/dev/null || die "backend-$n did not stay up (see $OUT/backend-$n.log)"
  fault_log "recovered: backend-$n answering again on :${BACKEND_PORT[$n]} (master $NGINX_PID), $(($(now_ms) - t0)) ms after the kill"
}
kill_node() {
  local n="$1" pid="${NODE_PID[$1]}" t0
  t0="$(now_ms)"
  untrack "node-$n"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
  fault_log "fault: node-$n (pid $pid) SIGKILLed"
  sleep "$DOWN"
  start_node "$n"
  fault_log "recovered: node-$n restarted on :${NODE_PORT[$n]} (pid ${NODE_PID[$n]}), registered again and listed, $(($(now_ms) - t0)) ms after the kill"
}

# --- the soak ------------------------------------------------------------------------------
log "driver: $TASKS tasks, $CONCURRENCY workers, client deadline $TIMEOUT_MS ms; faults every ${PERIOD}s (down ${DOWN}s), nodes killed in turn: ${KILL_NODES[*]}, backends: ${BACKEND_FAULTS[*]}"
"$CLIENT_BIN" "$DIR_URL" "$TASKS" "$CONCURRENCY" "$TIMEOUT_MS" "$MODEL" "$PROGRESS_S" \
  >"$OUT/driver.out" 2>"$OUT/driver.log" &
DRIVER_PID=$!
PIDS+=("$DRIVER_PID")
track driver "$DRIVER_PID"
START_MS="$(now_ms)"
echo "$START_MS" >"$OUT/start_ms"

shown=0
show_progress() {
  local lines
  lines="$(grep -c '^SOAK_PROGRESS' "$OUT/driver.out" || true)"
  if ((lines > shown)); then
    log "$(grep '^SOAK_PROGRESS' "$OUT/driver.out" | tail -n1 | cut -d' ' -f2-)"
    shown="$lines"
  fi
}

fault=0 backend_turn=0 node_turn=0
next_fault=$((START_MS + PERIOD * 1000))
while kill -0 "$DRIVER_PID" 2>/dev/null; do
  sleep 1
  show_progress
  if ((PERIOD > 0 && $(now_ms) >= next_fault)) && kill -0 "$DRIVER_PID" 2>/dev/null; then
    if ((fault % 2 == 0)); then
      kill_backend "${BACKEND_FAULTS[backend_turn % ${#BACKEND_FAULTS[@]}]}"
      backend_turn=$((backend_turn + 1))
    else
      kill_node "${KILL_NODES[node_turn % ${#KILL_NODES[@]}]}"
      node_turn=$((node_turn + 1))
    fi
    fault=$((fault + 1))
    next_fault=$(($(now_ms) + PERIOD * 1000))
  fi
done
driver_rc=0
wait "$DRIVER_PID" || driver_rc=$?
forget "$DRIVER_PID"
show_progress
END_MS="$(now_ms)"
sleep "$RSS_PERIOD" # one more sample of every server after the last task
# What the directory says of every node id it registered, at the end: live, reputation,
# listed by discover or not.
curl -sf "http://127.0.0.1:$DIR_PORT/v1/discover?intent=urn:iicp:intent:llm:chat:v1&model=$MODEL&limit=50" \
  >"$OUT/discover_end.json" || true
for id in $(sed -n 's/.*node registered node_id=\([^ ]*\) .*/\1/p' "$OUT/directory.log"); do
  curl -sf "http://127.0.0.1:$DIR_PORT/v1/node/$id" || echo "{\"node_id\":\"$id\",\"gone\":true}"
  echo
done >"$OUT/nodes_end.jsonl"

python3 "$HERE/soak_report.py" "$OUT" "$TASKS" "$WARMUP_FRACTION" "$WARMUP_MIN_S" \
  "$START_MS" "$END_MS" || die "no summary (see $OUT/driver.out)"
echo
cat "$OUT/summary.md"
log "results in $OUT (summary.md, summary.json, rss.csv, faults.log, driver.out, logs)"
((driver_rc == 0)) || die "the driver exited $driver_rc: a task hung, came back wrong, or the accounting does not add up"
