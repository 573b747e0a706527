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
#   CLIENT_COST_BIN_OTHER=/path/to/older/client_cost scripts/bench/client_cost.sh  # side by side
#
# With CLIENT_COST_BIN_OTHER, every round runs both builds (this one, then the other, both
# against the same stand-ins) and every row is given for each; the other build's rows are
# labelled `other`.
#
# Environment (all optional): BENCH_N (default 20000), BENCH_ROUNDS (default 3),
# CLIENT_COST_BIN (skip the build), CLIENT_COST_BIN_OTHER (a second build, side by side),
# BENCH_OUT (default target/bench/client-cost).
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
OTHER="${CLIENT_COST_BIN_OTHER:-}"
[[ -z $OTHER || -x $OTHER ]] || die "CLIENT_COST_BIN_OTHER is not an executable ($OTHER)"
# label=binary for every build measured.
BUILDS=("this=$BIN")
[[ -n $OTHER ]] && BUILDS+=("other=$OTHER")

bench_workdir
mkfifo "$WORK/stdin"
"$BIN" serve <"$WORK/stdin" >"$WORK/urls" 2>"$OUT/stand-ins.log" &
PIDS+=($!)
exec 9>"$WORK/stdin" # the stand-ins serve until this closes
wait_for stand-ins "${PIDS[-1]}" grep -q NODE= "$WORK/urls"
eval "$(cat "$WORK/urls")"

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
# One JSON line in, the same line with the build's label added.
labelled() { sed "s/^{/{\"build\":\"$1\",/" | tee -a "$RESULTS"; }
for round in $(seq "$ROUNDS"); do
  for build in "${BUILDS[@]}"; do
    for mode in bare submit; do
      "${build#*=}" measure "$mode" "$N" "$DIR" "$NODE" | labelled "${build%%=*}"
    done
  done
done

if command -v valgrind >/dev/null; then
  for build in "${BUILDS[@]}"; do
    label="${build%%=*}"
    for mode in bare submit; do
      for n in 500 2500; do
        valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind-$label-$mode-$n.out" \
          "${build#*=}" measure "$mode" "$n" "$DIR" "$NODE" >/dev/null 2>"$WORK/vg-$label-$mode-$n"
      done
      short=$(sed -n 's/.*Collected : //p' "$WORK/vg-$label-$mode-500")
      long=$(sed -n 's/.*Collected : //p' "$WORK/vg-$label-$mode-2500")
      echo "{\"mode\":\"$mode\",\"instructions_per_request\":$(( (long - short) / 2000 ))}" | labelled "$label"
    done
  done
else
  log "valgrind not found: no instruction counts (apt-get install -y valgrind)"
fi

python3 - "$RESULTS" <<'PY' | tee "$OUT/results.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
builds = list(dict.fromkeys(r["build"] for r in rows))
def values(build, mode, key):
    return [r[key] for r in rows if r["build"] == build and r.get("mode") == mode and key in r]
print("| build | | bare POST | submit() | submit() − bare |")
print("|---|---|---|---|---|")
for build in builds:
    for key, label in [("cpu_us_per_request", "CPU µs per request"),
                       ("wall_us_per_request", "wall µs per request"),
                       ("instructions_per_request", "instructions per request (callgrind)")]:
        b, s = values(build, "bare", key), values(build, "submit", key)
        if not b or not s:
            continue
        # Rounds alternate bare and submit: the difference is taken within each round
        # (both saw the same machine), then the median over rounds.
        diffs = [y - x for x, y in zip(b, s)]
        fmt = "{:,.0f}" if key.startswith("instr") else "{:.1f}"
        spread = "" if len(diffs) == 1 else " (" + " / ".join(fmt.format(d) for d in diffs) + ")"
        print(f"| {build} | {label} | {fmt.format(statistics.median(b))} | "
              f"{fmt.format(statistics.median(s))} | {fmt.format(statistics.median(diffs))}{spread} |")
PY
