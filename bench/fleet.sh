#!/usr/bin/env bash
# Benchmark: the fleet (issue 14). A backlog of FILES recordings of MINUTES minutes (16 kHz
# WAV, the pocketsphinx librivox speech, ~30 s, once every 2 minutes, silence between) is sent
# to a controller wired to vastsim (real instances: network namespaces, OpenSSH, our worker
# with the sphinx engine) with autoscaling up to 1, 2 and 3 instances (MAX_INSTANCES=N,
# SCALE_UP_WAIT_MINUTES=0: boot while anything waits), in one run. Printed per N: the
# instances booted, time from the first upload to the first ready worker, the backlog's wall
# time (first upload -> last job done) and its speed-up against one instance, and, once every
# instance is destroyed (idle rule), the controller's ledger total next to vastsim's billing.
# The instances share this machine's cores: the speed-up measures the scheduling, not GPUs.
# Needs root (vastsim's isolation). Loopback only; temp files under /var/tmp.
#   bench/fleet.sh [files] [minutes]     (default: 6 10)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GS_BIN:-$ROOT/build/gpuscribe}
SIMBIN=${GS_SIM:-$ROOT/build/vastsim}
[ -x "$BIN" ] && [ -x "$SIMBIN" ] && [ -x "$ROOT/build/gpuscribe-worker" ] || { echo "fleet: build first (make)"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "fleet: needs root (vastsim's instances are namespaces)"; exit 1; }
FILES=${1:-6}; MIN=${2:-10}
T=$(mktemp -d /var/tmp/gs-bench-fleet-XXXX)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; sleep 1; rm -rf $T' EXIT
port_of() { local p=""; until [ -n "$p" ]; do sleep 0.05; p=$(sed -n "s/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p" "$1" | head -n1); done; echo "$p"; }
now() { date +%s.%N; }
starts=$(awk -v m="$MIN" 'BEGIN{for (t = 5; t + 40 <= m * 60; t += 120) printf "%d ", t}')
for i in $(seq 1 "$FILES"); do "$ROOT/tests/integration/sparse_speech.py" "$T/f$i.wav" $((MIN * 60)) $starts; done
printf '%-9s %6s %14s %9s %8s %14s %14s %8s\n' instances booted first_ready_s wall_s speedup ledger_usd vastsim_usd diff_pct
base=""
for n in 1 2 3; do
    rm -rf "$T/data" "$T/sim" "$T/sim.out" "$T/c.log"; mkdir -p "$T/sim"; : >"$T/app.env"
    key=bench-key-$RANDOM$RANDOM
    "$SIMBIN" --port 0 --api-key "$key" --loading-delay 0.2 --running-delay 0.3 --offers 5 \
        --state-dir "$T/sim" >"$T/sim.out" 2>"$T/sim.log" &
    SPID=$!; PIDS+=("$SPID")
    until [ -s "$T/sim.out" ]; do sleep 0.05; done
    SIM=$(sed -n '1s/^vastsim listening on //p' "$T/sim.out")
    for m in 1 2 3; do  # three cheap RTX 4090s: the offers autoscaling picks
        curl -s -X POST "$SIM/_admin/offers" -d "{\"machine_id\": 99000$m, \"gpu_name\": \"RTX 4090\", \"dph_base\": 0.05, \"cuda_max_good\": 13.1, \"compute_cap\": 890}" >/dev/null
    done
    (cd "$T" && exec env VAST_URL="$SIM" VAST_API_KEY="$key" ENGINE=sphinx WORKER_SLOTS=1 CHUNK_MINUTES=5 \
        MAX_INSTANCES=$n SCALE_UP_WAIT_MINUTES=0 IDLE_DESTROY_MINUTES=0.2 IDLE_WARN_MINUTES=0.05 GPU_ONLY=1 \
        "$BIN" serve --port 0 --data-dir "$T/data" --env-file "$T/app.env") 2>"$T/c.log" &
    CPID=$!; PIDS+=("$CPID")
    B="http://127.0.0.1:$(port_of "$T/c.log")"
    until curl -s "$B/api/jobs" >/dev/null; do sleep 0.1; done
    t0=$(now); ids=()
    for i in $(seq 1 "$FILES"); do
        ids+=("$(curl -s -H 'Content-Type: audio/wav' --data-binary "@$T/f$i.wav" "$B/api/jobs?filename=f$i.wav" | jq -r .id)")
    done
    # MAX_INSTANCES=1 is autoscaling off: that one instance is booted by hand, as a user would
    if [ "$n" = 1 ]; then
        offer=$(curl -s -X POST -H 'Content-Type: application/json' -d '{"sort": "cost_per_audio_hour", "limit": 1}' "$B/api/vast/search" | jq -r '.offers[0].id')
        curl -s -X POST -H 'Content-Type: application/json' -d "{\"offer_id\": $offer}" "$B/api/vast/boot" >/dev/null
    fi
    tready=""
    for id in "${ids[@]}"; do
        while :; do
            [ -n "$tready" ] || { [ "$(curl -s "$B/api/fleet" | jq '[.instances[] | select(.state == "ready")] | length')" -gt 0 ] && tready=$(now); }
            state=$(curl -s "$B/api/jobs/$id" | jq -r .state)
            case $state in done) break;; failed|cancelled) echo "fleet: job $id $state"; exit 1;; esac
            sleep 0.2
        done
    done
    tdone=$(now)
    booted=$(curl -s "$SIM/_admin/ledger" | jq '.instances | length')
    # the idle rule destroys them; then both ledgers are closed
    until [ "$(curl -s "$SIM/_admin/state" | jq '[.instances[] | select((.destroyed // false) | not)] | length')" = 0 ]; do sleep 0.5; done
    sleep 1
    ours=$(curl -s "$B/api/cost" | jq .totals.all_time)
    theirs=$(curl -s "$SIM/_admin/ledger" | jq .totals.total_cost)
    wall=$(awk -v a="$t0" -v b="$tdone" 'BEGIN{printf "%.1f", b-a}')
    [ -n "$base" ] || base=$wall
    printf '%-9s %6s %14.1f %9s %8.2f %14.6f %14.6f %8.2f\n' "$n" "$booted" \
        "$(awk -v a="$t0" -v b="$tready" 'BEGIN{print b-a}')" "$wall" \
        "$(awk -v a="$base" -v b="$wall" 'BEGIN{print a/b}')" "$ours" "$theirs" \
        "$(awk -v a="$ours" -v b="$theirs" 'BEGIN{print (b > 0 ? (a-b)/b*100 : 0)}')"
    kill -TERM "$CPID"; wait "$CPID" 2>/dev/null || true
    kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true
done
