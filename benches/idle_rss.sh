#!/usr/bin/env bash
# Idle resident memory of the release binaries: a directory, and a node with the
# echo backend registered with it, each measured after start-up and 20 tasks.
# First it checks the release link options of build.rs took effect: a .text.hot section
# (link/hot-text.ld) of at least 1 MiB and RELR relocations.
# Run: bash benches/idle_rss.sh   (builds target/release/iicp-node first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin iicp-node
bin=target/release/iicp-node
sections=$(readelf -SW "$bin")
hot=$(python3 -c 'import sys
for l in sys.stdin:
    p = l.replace("[ ", "[").split()
    if len(p) > 5 and p[1] == ".text.hot": print(int(p[5], 16))' <<<"$sections")
if [[ -z $hot || $hot -lt 1048576 ]]; then
  echo "release layout: no .text.hot of at least 1 MiB in $bin (${hot:-none}): link/hot-text.ld matched too little (see build.rs, scripts/hot_text.sh)" >&2
  exit 1
fi
grep -q '\.relr\.dyn' <<<"$sections" || { echo "release layout: no RELR relocations in $bin" >&2; exit 1; }
echo "release layout: .text.hot $((hot / 1024)) KiB, RELR relocations"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dport=$(free_port); nport=$(free_port)
"$bin" directory --listen "127.0.0.1:$dport" 2>/dev/null & dpid=$!
sleep 0.5
"$bin" serve --backend-type echo --host 127.0.0.1 --port "$nport" \
  --directory-url "http://127.0.0.1:$dport/api" 2>/dev/null & npid=$!
trap 'kill $npid $dpid 2>/dev/null || true' EXIT
sleep 1.5
for i in $(seq 1 20); do
  curl -s -o /dev/null -X POST "http://127.0.0.1:$nport/v1/task" -H 'content-type: application/json' \
    -d "{\"intent\":\"urn:iicp:intent:llm:chat:v1\",\"payload\":{\"messages\":[{\"role\":\"user\",\"content\":\"hi $i\"}]}}"
done
sleep 0.5
rss() { awk '/VmRSS/ {print $2" "$3}' "/proc/$1/status"; }
echo "directory idle RSS: $(rss $dpid)"
echo "node (echo) idle RSS: $(rss $npid)"
