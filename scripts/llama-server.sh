#!/usr/bin/env bash
# Local OpenAI-compatible inference server for backend integration tests.
#
# Runs llama.cpp (through llama-cpp-python's server) on a tiny random-weight model that
# scripts/make_tiny_gguf.py generates, so nothing is downloaded but PyPI packages.
#
#   scripts/llama-server.sh setup   # venv + pinned packages + model (idempotent)
#   eval "$(scripts/llama-server.sh start)"
#       # -> exports IICP_TEST_LLAMA_URL=http://127.0.0.1:PORT/v1 and IICP_TEST_LLAMA_PID
#   scripts/llama-server.sh stop    # kills $IICP_TEST_LLAMA_PID
#
# Only `start` writes to stdout (exactly one `export ...` line, for eval); everything else
# goes to stderr so it can't corrupt the eval'd text.
#
# Note for `set -e` callers (CI): `eval "$(... start)"` swallows a failed start, because
# eval of the empty string succeeds. Use the two-step form there:
#   llama_env=$(scripts/llama-server.sh start)
#   eval "$llama_env"
#   trap 'scripts/llama-server.sh stop' EXIT
#
# Everything lives outside the clone, under $IICP_CI_CACHE (default
# ~/.cache/iicp-client-ci), next to the conformance venv that .ci/run already keeps there.
# pip's own cache stays in its default location, so once llama-cpp-python has been built a
# fresh venv reinstalls from the cached wheel in seconds instead of recompiling llama.cpp.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${IICP_CI_CACHE:-$HOME/.cache/iicp-client-ci}"
VENV="$CACHE/venv-llama"
MODEL="$CACHE/tiny-random-llama.gguf"
LOG="$CACHE/llama-server.log"
MODEL_ALIAS="tiny-random-llama"
PYTHON="${PYTHON:-python3}"
# How long `start` waits for /v1/models to answer (the tiny model is ready in ~1 s).
READY_TIMEOUT_S="${IICP_TEST_LLAMA_READY_TIMEOUT:-60}"

# Every package the venv gets, pinned (the two we ask for plus everything they pull in, as
# resolved on Python 3.11), so a rebuilt venv is the same venv. The extras marker is kept on
# llama-cpp-python so pip checks the set is complete for the server.
PINS=(
  # asked for
  "llama-cpp-python[server]==0.3.36"
  "gguf==0.19.0"
  # pulled in by them (pip freeze of a venv built from the two lines above, Python 3.11)
  "annotated-doc==0.0.7"
  "annotated-types==0.8.0"
  "anyio==4.16.0"
  "certifi==2026.10.19.post1"
  "charset-normalizer==3.5.2"
  "click==8.5.1"
  "diskcache==5.6.3"
  "fastapi==0.165.0"
  "h11==0.16.0"
  "idna==3.20"
  "jinja2==3.1.6"
  "markupsafe==3.0.4"
  "numpy==2.4.6"
  "opentelemetry-api==1.45.2"
  "pydantic==2.14.4"
  "pydantic-core==2.50.5"
  "pydantic-settings==2.16.3"
  "python-dotenv==1.2.4"
  "pyyaml==6.0.4"
  "requests==2.34.2"
  "sse-starlette==3.7.0"
  "starlette==1.10.0"
  "starlette-context==0.3.6"
  "tqdm==4.70.1"
  "typing-extensions==4.16.0"
  "typing-inspection==0.4.5"
  "urllib3==2.8.0"
  "uvicorn==0.54.0"
)

# llama.cpp is compiled from the sdist:
#  - GGML_NATIVE=OFF: no -march=native, so the wheel pip caches works on any x86-64 CPU
#    (CI and developer machines share the cache dir but not necessarily the CPU model).
#  - LLAVA_BUILD=OFF: the multimodal (mtmd/llava) library isn't needed; skip building it.
#  - GGML_CCACHE=OFF: ccache isn't installed here; don't look for it.
#  - CMAKE_BUILD_PARALLEL_LEVEL=2: the machines have 2 cores.
BUILD_ENV=(
  "CMAKE_ARGS=-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DGGML_CCACHE=OFF"
  "CMAKE_BUILD_PARALLEL_LEVEL=2"
)

log() { printf 'llama-server: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# A stamp of what the venv was built from: if the pins (or the build flags) change, the
# venv is rebuilt instead of silently keeping old versions.
pins_stamp() { printf '%s\n' "${PINS[@]}" "${BUILD_ENV[@]}" | sha256sum | cut -d' ' -f1; }

venv_ok() {
  [ -x "$VENV/bin/python" ] &&
    [ "$(cat "$VENV/.iicp-pins" 2>/dev/null)" = "$(pins_stamp)" ] &&
    "$VENV/bin/python" -c 'import llama_cpp, gguf' >/dev/null 2>&1
}

setup_venv() {
  if venv_ok; then
    log "venv ok: $VENV"
    return
  fi
  log "creating venv $VENV (first run compiles llama.cpp: ~5-7 min on 2 cores; ~25 s once pip's cache has the wheel)"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$PYTHON" -m venv "$VENV"
  # stdout of pip goes to stderr: `start` must keep stdout for the eval line only.
  env "${BUILD_ENV[@]}" "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off \
    "${PINS[@]}" 1>&2
  "$VENV/bin/python" -c 'import llama_cpp, gguf' || die "venv installed but llama_cpp/gguf don't import"
  pins_stamp >"$VENV/.iicp-pins"
}

setup_model() {
  # The generator is deterministic, so the model only needs regenerating when the generator
  # changes; its hash is kept next to the model.
  local want have
  want=$(sha256sum "$SCRIPT_DIR/make_tiny_gguf.py" | cut -d' ' -f1)
  have=$(cat "$MODEL.src-sha256" 2>/dev/null || true)
  if [ -s "$MODEL" ] && [ "$want" = "$have" ]; then
    log "model ok: $MODEL"
    return
  fi
  log "writing model $MODEL"
  # Write to a temp name and rename, so an interrupted run never leaves a half-written model
  # that a later run would take as complete.
  "$VENV/bin/python" "$SCRIPT_DIR/make_tiny_gguf.py" "$MODEL.tmp" 1>&2
  mv -f "$MODEL.tmp" "$MODEL"
  echo "$want" >"$MODEL.src-sha256"
}

cmd_setup() {
  mkdir -p "$CACHE"
  setup_venv
  setup_model
}

# SIGTERM, then SIGKILL if the process is still there after 5 s (uvicorn normally exits
# within ~2 s; a hung or SIGSTOPped process never acts on SIGTERM).
terminate() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "pid $pid still running 5s after SIGTERM; sending SIGKILL"
  kill -9 "$pid" 2>/dev/null || true
}

free_port() {
  # Ask the kernel for a free loopback port. There is a small window between closing this
  # socket and the server binding it; cmd_start retries with a new port if the server dies.
  "$VENV/bin/python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

models_ok() {
  curl -sf --max-time 2 -o /dev/null "http://127.0.0.1:$1/v1/models"
}

cmd_start() {
  command -v curl >/dev/null || die "curl is needed"
  cmd_setup
  local attempt port pid deadline
  for attempt in 1 2 3; do
    port=$(free_port)
    log "starting server on 127.0.0.1:$port (log: $LOG)"
    # stdin/stdout/stderr all redirected: the caller's $(...) must not stay attached to the
    # server's output, or `eval "$(... start)"` would wait for the server to exit.
    # nohup execs python, so $! is the server's own PID.
    # --interrupt_requests false: by default llama-cpp-python ends a running stream with
    # [DONE] (and no finish_reason) as soon as another request arrives, such as a node's
    # model probe; tests that stream while other nodes probe need whole answers.
    nohup "$VENV/bin/python" -m llama_cpp.server \
      --model "$MODEL" \
      --model_alias "$MODEL_ALIAS" \
      --host 127.0.0.1 --port "$port" \
      --n_ctx 256 --n_threads 2 \
      --embedding true \
      --interrupt_requests false \
      </dev/null >"$LOG" 2>&1 &
    pid=$!
    deadline=$((SECONDS + READY_TIMEOUT_S))
    while [ "$SECONDS" -lt "$deadline" ]; do
      if models_ok "$port"; then
        log "ready: pid $pid, http://127.0.0.1:$port/v1"
        echo "export IICP_TEST_LLAMA_URL=http://127.0.0.1:$port/v1; export IICP_TEST_LLAMA_PID=$pid"
        return 0
      fi
      if ! kill -0 "$pid" 2>/dev/null; then
        break
      fi
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      # Still running but never answered: don't retry, show why.
      terminate "$pid"
      log "server did not answer /v1/models within ${READY_TIMEOUT_S}s; log follows"
      cat "$LOG" >&2
      exit 1
    fi
    wait "$pid" 2>/dev/null || true
    if grep -qi 'address already in use' "$LOG"; then
      log "port $port was taken meanwhile (attempt $attempt); retrying"
      continue
    fi
    break
  done
  log "server exited before it was ready; log follows"
  cat "$LOG" >&2
  exit 1
}

cmd_stop() {
  local pid="${1:-${IICP_TEST_LLAMA_PID:-}}"
  [ -n "$pid" ] || die "IICP_TEST_LLAMA_PID is not set (eval the output of 'start' first)"
  [[ "$pid" =~ ^[0-9]+$ ]] || die "bad pid: $pid"
  if ! kill -0 "$pid" 2>/dev/null; then
    log "pid $pid is not running"
    return 0
  fi
  # Only ever kill our server: a stale IICP_TEST_LLAMA_PID may by now name an unrelated
  # process that got the same PID.
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'llama_cpp.server'; then
    die "pid $pid is not a llama_cpp.server process; not killing it"
  fi
  terminate "$pid"
  log "stopped pid $pid"
}

case "${1:-}" in
  setup) cmd_setup ;;
  start) cmd_start ;;
  stop) shift; cmd_stop "$@" ;;
  *)
    echo "usage: $0 setup|start|stop [PID]" >&2
    exit 2
    ;;
esac
