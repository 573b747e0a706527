#!/usr/bin/env bash
# Gateway benchmark: the same OpenAI chat POST, side by side, against
#   backend         nginx answering a fixed chat completion (the model stand-in) alone;
#   gateway         iicp-node proxy -> local directory -> one iicp-node serve node
#                   (openai_compat backend = that nginx), tasks over HTTP;
#   gateway-plaintext  the same with a node without a CX key (tasks not sealed);
#   gateway-native  the same as gateway, the proxy reaching the node over native frames
#                   (IICP_PREFER_NATIVE=1);
#   litellm         LiteLLM's proxy with one model pointing at the same nginx.
# Load: wrk with scripts/bench/post.lua, each concurrency after a short warm-up. Everything
# on loopback, every process stopped on exit.
#
#   scripts/bench/gateway.sh
#
# Environment (all optional):
#   BENCH_SYSTEMS      which rows, in order (default "backend gateway gateway-plaintext
#                      gateway-native litellm"; gateway-plaintext is the HTTP gateway with a
#                      node without a CX key, so tasks are not sealed)
#   BENCH_CONCURRENCY  wrk connections (default "1 4 16 64")
#   BENCH_DURATION     seconds per measurement (default 10)
#   BENCH_WARMUP       seconds of warm-up before each (default 2)
#   BENCH_OUT          results folder (default target/bench/gateway): results.jsonl,
#                      results.md, gateway.svg, logs of every process
#   LITELLM_VENV       venv for LiteLLM, created with `pip install 'litellm[proxy]'` when
#                      missing (default /tmp/litellm-venv)
#   LITELLM_WORKERS    LiteLLM worker processes (default 1, LiteLLM's own default)
#   IICP_NODE_BIN      a prebuilt iicp-node; default: cargo build --release --bin iicp-node
#
# Needs nginx and wrk (apt-get installs them when missing and this runs as root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/bench"
SYSTEMS="${BENCH_SYSTEMS:-backend gateway gateway-plaintext gateway-native litellm}"
CONCURRENCY="${BENCH_CONCURRENCY:-1 4 16 64}"
DURATION="${BENCH_DURATION:-10}"
WARMUP="${BENCH_WARMUP:-2}"
OUT="${BENCH_OUT:-$ROOT/target/bench/gateway}"
LITELLM_VENV="${LITELLM_VENV:-/tmp/litellm-venv}"
LITELLM_WORKERS="${LITELLM_WORKERS:-1}"
MODEL="bench-model"
export BENCH_MODEL="$MODEL"
# The Bearer key every request carries: LiteLLM's master key (it refuses to start without
# one); the gateway's proxy is open on loopback and does not look at it.
BENCH_API_KEY="sk-$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
export BENCH_API_KEY

BENCH_NAME=gateway-bench
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
has() { [[ " $SYSTEMS " == *" $1 "* ]]; }

# --- tools ---------------------------------------------------------------------------------
bench_tools

if [[ -n "${IICP_NODE_BIN:-}" ]]; then
  NODE_BIN="$IICP_NODE_BIN"
elif has gateway || has gateway-native || has gateway-plaintext; then
  log "building iicp-node (release)"
  (cd "$ROOT" && cargo build --release --quiet --bin iicp-node)
  NODE_BIN="$ROOT/target/release/iicp-node"
fi

if has litellm && [[ ! -x "$LITELLM_VENV/bin/litellm" ]]; then
  log "creating the LiteLLM venv at $LITELLM_VENV (pip install 'litellm[proxy]')"
  python3 -m venv "$LITELLM_VENV"
  "$LITELLM_VENV/bin/pip" install -q 'litellm[proxy]'
fi

# --- processes -----------------------------------------------------------------------------
bench_workdir

# A POST of the benchmark's body answered 200 with the backend's text.
chat_ok() {
  curl -sf -m 5 -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_API_KEY" \
    -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
    "$1" | grep -q '"hello"'
}

mkdir -p "$OUT"
log "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (other work on the machine skews every figure)"
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"


# run_load SYSTEM URL PID...: one warm-up and one measurement per concurrency. PIDS are the
# system's processes (with their children): their CPU time per request is recorded too, a
# figure that other work on the machine disturbs less than throughput.
run_load() {
  local system="$1" url="$2" c t line cpu0 cpu1
  shift 2
  chat_ok "$url" || die "$system did not answer the chat POST with the fixed answer"
  for c in $CONCURRENCY; do
    t=$((c < 2 ? c : 2))
    wrk -t"$t" -c"$c" -d"${WARMUP}s" --timeout 10s -s "$HERE/post.lua" "$url" >/dev/null
    cpu0="$(cpu_ticks "$@")"
    line="$(wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout 10s -s "$HERE/post.lua" "$url" \
      | sed -n 's/^BENCH_JSON {//p')"
    cpu1="$(cpu_ticks "$@")"
    [[ -n "$line" ]] || die "wrk printed no result for $system c=$c"
    line="\"cpu_us\":$(((cpu1 - cpu0) * TICK_US)),$line"
    # The 1-minute load average after the run: other work on the machine shows there.
    echo "{\"system\":\"$system\",\"c\":$c,\"loadavg\":$(cut -d' ' -f1 /proc/loadavg),$line" >>"$RESULTS"
    log "$system c=$c: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); x=r["requests"]/r["duration_us"]*1e6; print("%.0f req/s, mean %.0f us, p50 %d us, p99 %d us, non-2xx %d" % (x, int(sys.argv[2])/x*1e6, r["lat_p50_us"], r["lat_p99_us"], r["err_status"]))' "{${line}" "$c")"
  done
}

# --- the backend: nginx with a fixed chat completion ----------------------------------------
start_nginx
log "nginx on :$NGINX_PORT"

for system in $SYSTEMS; do
  case "$system" in
  backend)
    run_load backend "$BACKEND/chat/completions" "$NGINX_PID"
    ;;

  gateway | gateway-native | gateway-plaintext)
    DIR_PORT="$(free_port)" NODE_PORT="$(free_port)" PROXY_PORT="$(free_port)"
    export IICP_HOME="$WORK/iicp-home-$system"
    mkdir -p "$IICP_HOME"
    RUST_LOG=warn "$NODE_BIN" directory --listen "127.0.0.1:$DIR_PORT" --heartbeat-ms 1000 \
      >"$OUT/$system-directory.log" 2>&1 &
    DIR_PID=$!
    PIDS+=("$DIR_PID")
    wait_for "$system-directory" "$DIR_PID" curl -sf "http://127.0.0.1:$DIR_PORT/health"
    node_args=()
    [[ $system == gateway-plaintext ]] && node_args+=(--no-cx)
    RUST_LOG=warn "$NODE_BIN" serve --host 127.0.0.1 --port "$NODE_PORT" --auto-detect-nat false \
      --directory-url "http://127.0.0.1:$DIR_PORT/api" \
      --backend-type openai_compat --backend-url "$BACKEND" --model "$MODEL" \
      --max-concurrent 256 --max-connections 4096 --replay-window-entries 5000000 \
      "${node_args[@]}" >"$OUT/$system-node.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    # Listed by discover (the directory shows a loopback node after its first heartbeat).
    wait_for "$system-node" "$NODE_PID" bash -c \
      "curl -sf 'http://127.0.0.1:$DIR_PORT/v1/discover?intent=urn:iicp:intent:llm:chat:v1' | grep -q '127.0.0.1:$NODE_PORT'"
    proxy_env=()
    [[ $system == gateway-native ]] && proxy_env+=(IICP_PREFER_NATIVE=1)
    env "${proxy_env[@]}" RUST_LOG=warn "$NODE_BIN" proxy \
      --directory-url "http://127.0.0.1:$DIR_PORT/api" --port "$PROXY_PORT" --allow-plaintext \
      >"$OUT/$system-proxy.log" 2>&1 &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_for "$system-proxy" "$PROXY_PID" chat_ok "http://127.0.0.1:$PROXY_PORT/v1/chat/completions"
    log "$system: directory :$DIR_PORT, node :$NODE_PORT, proxy :$PROXY_PORT"
    run_load "$system" "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" \
      "$PROXY_PID" "$NODE_PID" "$DIR_PID" "$NGINX_PID"
    stop "$PROXY_PID"
    stop "$NODE_PID"
    stop "$DIR_PID"
    unset IICP_HOME
    ;;

  litellm)
    LITELLM_PORT="$(free_port)"
    cat >"$WORK/litellm.yaml" <<EOF
model_list:
  - model_name: $MODEL
    litellm_params:
      model: openai/$MODEL
      api_base: $BACKEND
      api_key: sk-bench
litellm_settings:
  telemetry: false
  set_verbose: false
general_settings:
  master_key: $BENCH_API_KEY
  disable_spend_logs: true
EOF
    LITELLM_LOG=ERROR LITELLM_LOCAL_MODEL_COST_MAP=True NO_PROXY='*' \
      "$LITELLM_VENV/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 \
      --port "$LITELLM_PORT" --num_workers "$LITELLM_WORKERS" >"$OUT/litellm.log" 2>&1 &
    LITELLM_PID=$!
    PIDS+=("$LITELLM_PID")
    wait_for litellm "$LITELLM_PID" chat_ok "http://127.0.0.1:$LITELLM_PORT/v1/chat/completions"
    log "litellm on :$LITELLM_PORT ($LITELLM_WORKERS worker(s))"
    run_load litellm "http://127.0.0.1:$LITELLM_PORT/v1/chat/completions" \
      "$LITELLM_PID" "$NGINX_PID"
    stop "$LITELLM_PID"
    ;;

  *) die "unknown system: $system" ;;
  esac
done

python3 "$HERE/gateway_plot.py" "$RESULTS" "$OUT/results.md" "$OUT/gateway.svg"
echo
cat "$OUT/results.md"
python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["system"], r["c"]): r for r in rows}
rps = lambda r: r["requests"] / r["duration_us"] * 1e6
print()
mean = lambda r: r["c"] / rps(r) * 1e6  # Little's law, as in the table
base = by.get(("backend", 1))
for s in ("gateway", "gateway-native", "gateway-plaintext"):
    g = by.get((s, 1))
    if g and base:
        print(f"{s}: adds {(mean(g) - mean(base)) / 1000:.3f} ms mean "
              f"({(g['lat_p50_us'] - base['lat_p50_us']) / 1000:.3f} ms p50) at c=1 over the backend alone (goal < 1 ms)")
lt = by.get(("litellm", 16))
for s in ("gateway", "gateway-native", "gateway-plaintext"):
    g = by.get((s, 16))
    if g and lt:
        print(f"{s}: {rps(g) / rps(lt):.1f}x LiteLLM's throughput at c=16 (goal >= 50x)")
EOF
log "results in $OUT (results.md, results.jsonl, gateway.svg)"
