#!/usr/bin/env bash
# Benchmark: remote setup per stage on a foreign image. Boots vastsim instances through
# `gpuscribe serve` on the emulated Debian 11 image (tests/images/debian11.sh, where the
# controller's own worker cannot run, so setup builds gpuscribe-worker from the source
# bundle), and prints, per boot, setup.sh's own step times (GPUSCRIBE-STEP lines: packages,
# build, worker, models) and the controller's stage times from `running` to `ready`. Then
# re-runs setup on the same instance (worker kept: the stamped-source path) and prints that.
# Needs root (vastsim's instances) and the image (made once, cached). Loopback only.
#   bench/setup-stages.sh [boots=2]
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export GS_BIN=${GS_BIN:-$ROOT/build/gpuscribe} GS_SIM=${GS_SIM:-$ROOT/build/vastsim}
SUITE=setup-stages
# shellcheck source=/dev/null
. "$ROOT/tests/integration/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
N=${1:-2}
[ "$(id -u)" = 0 ] || { echo "setup-stages bench: skipped (needs root for vastsim's instances)"; exit 0; }
IMG=$("$ROOT/tests/images/debian11.sh") || exit 1
start_vastsim --loading-delay 0.2 --running-delay 0.3 --image "gpuscribe-test/debian11=$IMG" || exit 1
DATA=$TDIR/data
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" VAST_IMAGE=gpuscribe-test/debian11 ENGINE=sphinx || exit 1
mapfile -t OFFERS < <(sim_offers "$N")
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
sim_status() { sim GET /_admin/state; jq -r --argjson id "$1" '.instances[] | select(.id == $id) | .actual_status // empty' <<<"$SBODY"; }

echo "machine: $(nproc) cores, $(uname -r); image: Debian $(cat "$IMG/etc/debian_version")"
printf '%-5s %-16s %-44s %s\n' boot "running->ready" "setup.sh steps (s)" "controller stages after running (ms)"
for i in $(seq 0 $((N - 1))); do
    boot_instance "${OFFERS[$i]}"
    id=$BOOTED
    t_run="" t_ready="" last=""
    declare -A seen=()
    end=$(( $(date +%s) + 300 ))
    while [ "$(date +%s)" -lt "$end" ]; do
        [ -z "$t_run" ] && [ "$(sim_status "$id")" = running ] && t_run=$(now)
        st=$(curl -s "$BASE/api/vast/instances/$id" | jq -r .state)
        t=$(now)
        if [ "$st" != "$last" ] && [ -z "${seen[$st]:-}" ]; then seen[$st]=$t; last=$st; fi
        [ "$st" = ready ] && { t_ready=$t; break; }
        [ "$st" = failed ] && { curl -s "$BASE/api/vast/instances/$id" | jq -c '{error, log: .log[-8:]}'; exit 1; }
        sleep 0.02
    done
    [ -n "$t_ready" ] && [ -n "$t_run" ] || { echo "instance $id not ready in 300 s"; exit 1; }
    steps=$(curl -s "$BASE/api/vast/instances/$id" | jq -r '[.log[] | select(startswith("GPUSCRIBE-STEP ")) | sub("GPUSCRIBE-STEP "; "")] | join(", ")')
    stages=""
    for s in ssh_wait installing starting_worker ready; do
        [ -n "${seen[$s]:-}" ] && stages+="$s $(ms "$t_run" "${seen[$s]}")  "
    done
    printf '%-5s %-16s %-44s %s\n' "$((i + 1))" "$(ms "$t_run" "$t_ready") ms" "$steps" "$stages"
    if [ "$i" = 0 ]; then
        sid=$(cat "$ROOT/build/gpuscribe-src.id")
        t0=$(now)
        out=$(on_inst "$id" "cd /workspace/gpuscribe && sh setup.sh --engine sphinx --port 8765 --src-id $sid")
        printf '%-5s %-16s %s\n' "again" "$(ms "$t0" "$(now)") ms" "$(grep '^GPUSCRIBE-STEP' <<<"$out" | sed 's/GPUSCRIBE-STEP //' | tr '\n' ',' | sed 's/,$//; s/,/, /g') (setup.sh on a set-up instance)"
    fi
    jreq POST "/api/vast/destroy/$id" >/dev/null
    unset seen
done
stop_server >/dev/null || true
