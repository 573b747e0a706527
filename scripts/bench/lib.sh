# Shared pieces of the load harnesses in scripts/bench/ (sourced, not run):
#   bench_log/die           messages prefixed with $BENCH_NAME
#   bench_tools             nginx and wrk (apt-get installs them when missing, as root)
#   bench_workdir           a temp dir ($WORK), the PIDS the script starts, cleanup on exit
#   stop PID                stop one process the script started
#   free_port, wait_for     a free loopback port; retry a check until a process is ready
#   build_release [EXAMPLE...]  the release iicp-node on its own (unless IICP_NODE_BIN is
#                           set), then the named examples
#   cpu_ticks PID...        user + system clock ticks of processes and their descendants
#   start_nginx [NAME [PORT]]  the fixed-answer OpenAI backend (a chat completion saying
#                           "hello", a model list) on PORT (default: a free port):
#                           NGINX_PID, NGINX_PORT, BACKEND; NAME (default nginx) names its
#                           folder in $WORK and its log in $OUT, so several can run
# Callers set BENCH_NAME, OUT and MODEL first.

log() { echo "[$BENCH_NAME] $*" >&2; }
die() { log "error: $*"; exit 1; }

bench_tools() {
  if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
    [[ $(id -u) == 0 ]] || die "nginx and wrk are needed: apt-get install -y nginx wrk"
    log "installing nginx and wrk"
    apt-get install -y -qq nginx wrk >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq nginx wrk >/dev/null; }
  fi
  NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
}

# build_release [EXAMPLE...]: the release iicp-node on its own, as `cargo build --release`
# builds it (skipped when IICP_NODE_BIN names a prebuilt node), then the named examples.
# Built in one run with an example, the examples' dev-dependencies would change the node's
# dependencies' features and so its code.
build_release() {
  local args=() example
  if [[ -z "${IICP_NODE_BIN:-}" ]]; then
    log "building iicp-node (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin iicp-node)
  fi
  for example in "$@"; do args+=(--example "$example"); done
  if ((${#args[@]})); then
    log "building $* (release)"
    (cd "$ROOT" && cargo build --release --quiet "${args[@]}")
  fi
}

bench_workdir() {
  WORK="$(mktemp -d "/tmp/iicp-$BENCH_NAME.XXXXXX")"
  PIDS=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}

# Stop one process this script started (and forget it).
stop() {
  local pid="$1" keep=() p
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for NAME PID CMD...: retry CMD until it succeeds (60 s), failing early if PID died.
wait_for() {
  local name="$1" pid="$2"; shift 2
  local i
  for i in $(seq 1 600); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$name exited; see $OUT/$name.log"
    sleep 0.1
  done
  die "$name not ready after 60 s; see $OUT/$name.log"
}

# CPU time (user + system, in clock ticks) of PIDS and all their descendants, summed.
cpu_ticks() {
  local all=("$@") i=0 kids
  while ((i < ${#all[@]})); do
    kids="$(pgrep -P "${all[i]}" || true)"
    [[ -n $kids ]] && all+=($kids)
    i=$((i + 1))
  done
  for i in "${all[@]}"; do cut -d' ' -f14,15 "/proc/$i/stat" 2>/dev/null || true; done \
    | awk '{t += $1 + $2} END {print t + 0}'
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# nginx_ok URL: a chat POST to URL answered 2xx with the fixed text.
nginx_ok() {
  curl -sf -m 5 -H 'Content-Type: application/json' \
    -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
    "$1" | grep -q '"hello"'
}

# start_nginx [NAME [PORT]]: nginx answering POST /v1/chat/completions with a fixed
# completion ("hello") and GET /v1/models, once it answers.
start_nginx() {
  local name="${1:-nginx}" dir
  NGINX_PORT="${2:-$(free_port)}"
  dir="$WORK/$name"
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $OUT/$name.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = /v1/chat/completions {
      default_type application/json;
      return 200 '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"$MODEL","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}';
    }
    location = /v1/models {
      default_type application/json;
      return 200 '{"object":"list","data":[{"id":"$MODEL","object":"model","created":1700000000,"owned_by":"bench"}]}';
    }
  }
}
NGX
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$OUT/$name.log" 2>>"$OUT/$name.log" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  BACKEND="http://127.0.0.1:$NGINX_PORT/v1"
  wait_for "$name" "$NGINX_PID" nginx_ok "$BACKEND/chat/completions"
}
