#!/usr/bin/env bash
# The client's own cost per submit() (issue 17): benches/client_cost.rs, with the stand-in
# directory and node in a process of their own so only the client is measured.
#
# For each round: a bare reqwest POST of the task (the baseline) and IicpClient::submit
# with the discover answer cached, BENCH_N requests each on one thread, alternating, so
# both see the same machine; CPU (user + system) and wall time per request. Then, with
# valgrind, the user-space instructions per request of each: callgrind counts two runs of
# different lengths and the difference is divided by the extra requests, so start-up and
# the warm-up cancel out. Instruction counts hardly move when other work shares the
# machine; CPU and wall time do.
#
#   scripts/bench/client_cost.sh
#   CLIENT_COST_BIN=/path/to/other/client_cost scripts/bench/client_cost.sh   # another build
#
# Environment (all optional): BENCH_N (default 20000), BENCH_ROUNDS (default 3),
# CLIENT_COST_BIN (skip the build), BENCH_OUT (default target/bench/client-cost).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
N="${BENCH_N:-20000}"
ROUNDS="${BENCH_ROUNDS:-3}"
OUT="${BENCH_OUT:-$ROOT/target/bench/client-cost}"
mkdir -p "$OUT"
BENCH_NAME=client-cost
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

BIN="${CLIENT_COST_BIN:-}"
if [[ -z $BIN ]]; then
  log "building benches/client_cost.rs (bench profile)"
  BIN="$(cd "$ROOT" && cargo bench --no-run --bench client_cost --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "client_cost" and m.get("executable"):
        print(m["executable"])')"
fi
[[ -x $BIN ]] || die "no client_cost executable ($BIN)"

bench_workdir
mkfifo "$WORK/stdin"
"$BIN" serve <"$WORK/stdin" >"$WORK/urls" 2>"$OUT/stand-ins.log" &
PIDS+=($!)
exec 9>"$WORK/stdin" # the stand-ins serve until this closes
wait_for stand-ins "${PIDS[-1]}" grep -q NODE= "$WORK/urls"
eval "$(cat "$WORK/urls")"

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for mode in bare submit; do
    "$BIN" measure "$mode" "$N" "$DIR" "$NODE" | tee -a "$RESULTS"
  done
done

if command -v valgrind >/dev/null; then
  for mode in bare submit; do
    for n in 500 2500; do
      valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-$mode-$n.out" \
        "$BIN" measure "$mode" "$n" "$DIR" "$NODE" >/dev/null 2>"$WORK/vg-$mode-$n"
    done
    short=$(sed -n 's/.*Collected : //p' "$WORK/vg-$mode-500")
    long=$(sed -n 's/.*Collected : //p' "$WORK/vg-$mode-2500")
    echo "{\"mode\":\"$mode\",\"instructions_per_request\":$(( (long - short) / 2000 ))}" | tee -a "$RESULTS"
  done
else
  log "valgrind not found: no instruction counts (apt-get install -y valgrind)"
fi

python3 - "$RESULTS" <<'PY' | tee "$OUT/results.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def values(mode, key):
    return [r[key] for r in rows if r.get("mode") == mode and key in r]
print("| | bare POST | submit() | submit() − bare |")
print("|---|---|---|---|")
for key, label in [("cpu_us_per_request", "CPU µs per request"),
                   ("wall_us_per_request", "wall µs per request"),
                   ("instructions_per_request", "instructions per request (callgrind)")]:
    b, s = values("bare", key), values("submit", key)
    if not b or not s:
        continue
    # Rounds alternate bare and submit: the difference is taken within each round
    # (both saw the same machine), then the median over rounds.
    diff = statistics.median(y - x for x, y in zip(b, s))
    fmt = "{:,.0f}" if key.startswith("instr") else "{:.1f}"
    print(f"| {label} | {fmt.format(statistics.median(b))} | {fmt.format(statistics.median(s))} | {fmt.format(diff)} |")
PY
