#!/usr/bin/env bash
# Benchmark: boot-to-ready overhead of our own steps. Boots vastsim instances through
# `gpuscribe serve` (POST /api/vast/boot) and times, per boot, from the moment vastsim reports
# the instance `running` (its /_admin/state, polled every 20 ms) to the moment the server's
# instance view says `ready` (polled every 20 ms): the SSH wait, key check, binary + setup.sh
# upload, setup, worker start and tunnel. Also prints when each of our stages was first seen.
# Needs root (vastsim runs real instances in namespaces only as root). Loopback only.
#   bench/boot.sh [boots=3]
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export GS_BIN=${GS_BIN:-$ROOT/build/gpuscribe} GS_SIM=${GS_SIM:-$ROOT/build/vastsim}
SUITE=boot
# shellcheck source=/dev/null
. "$ROOT/tests/integration/lib.sh"     # start_vastsim, start_server, boot_instance, ...
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
N=${1:-3}
[ "$(id -u)" = 0 ] || { echo "boot bench: skipped (needs root for vastsim's instances)"; exit 0; }
for t in curl jq ssh; do command -v $t >/dev/null || { echo "boot bench: skipped ($t missing)"; exit 0; }; done

start_vastsim --loading-delay 0.2 --running-delay 0.3 || exit 1
sim GET /_admin/state
[ "$(jq -r .isolation <<<"$SBODY")" = true ] ||
    { echo "boot bench: skipped (vastsim has no isolation: $(jq -r .isolation_reason <<<"$SBODY"))"; exit 0; }
: >"$TDIR/app.env"
DATA=$TDIR/data
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" -- --env-file "$TDIR/app.env" || exit 1
mapfile -t OFFERS < <(sim_offers "$N")

now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
sim_status() { sim GET /_admin/state; jq -r --argjson id "$1" '.instances[] | select(.id == $id) | .actual_status // .status // empty' <<<"$SBODY"; }

printf '%-6s %-12s %-14s %-14s %s\n' boot id "boot->running" "running->ready" "stages first seen after running (ms)"
results=()
for i in $(seq 0 $((N - 1))); do
    t_boot=$(now)
    boot_instance "${OFFERS[$i]}"
    id=$BOOTED
    [ -n "$id" ] && [ "$id" != null ] || { echo "boot failed: $BODY"; exit 1; }
    t_run="" t_ready="" stages="" last=""
    declare -A seen=()
    end=$(( $(date +%s) + 120 ))
    while [ "$(date +%s)" -lt "$end" ]; do
        [ -z "$t_run" ] && [ "$(sim_status "$id")" = running ] && t_run=$(now)
        st=$(curl -s "$BASE/api/vast/instances/$id" | jq -r .state)
        t=$(now)
        if [ "$st" != "$last" ] && [ -z "${seen[$st]:-}" ]; then seen[$st]=$t; last=$st; fi
        [ "$st" = ready ] && { t_ready=$t; break; }
        [ "$st" = failed ] && { echo "instance $id failed:"; curl -s "$BASE/api/vast/instances/$id" | jq -c '{error, log: .log[-5:]}'; exit 1; }
        sleep 0.02
    done
    [ -n "$t_ready" ] && [ -n "$t_run" ] || { echo "instance $id not ready in 120 s (last state $last)"; exit 1; }
    for s in ssh_wait installing starting_worker ready; do
        [ -n "${seen[$s]:-}" ] && stages+="$s $(ms "$t_run" "${seen[$s]}")  "
    done
    r=$(ms "$t_run" "$t_ready")
    results+=("$r")
    printf '%-6s %-12s %-14s %-14s %s\n' "$((i + 1))" "$id" "$(ms "$t_boot" "$t_run") ms" "$r ms" "$stages"
    jreq POST "/api/vast/destroy/$id" >/dev/null
    unset seen
done
sorted=$(printf '%s\n' "${results[@]}" | sort -n)
printf '%-28s min %s ms, median %s ms, max %s ms (target: under 10000 ms)\n' "running -> ready" \
    "$(head -n1 <<<"$sorted")" "$(sed -n "$(( (N + 1) / 2 ))p" <<<"$sorted")" "$(tail -n1 <<<"$sorted")"
stop_server >/dev/null || true
