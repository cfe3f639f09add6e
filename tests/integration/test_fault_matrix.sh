#!/usr/bin/env bash
# Fault matrix: the controller SIGKILLed at each step of a boot (loading, waiting for SSH,
# installing) and while a job runs on the GPU worker. After each restart the same instance
# reaches ready (never a second rental), the job is done exactly once (the worker ran it
# once), and nothing is left running at the end.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 41 || { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "fault matrix tests"
export DATA=$TDIR/data
ENVF=$TDIR/app.env; touch "$ENVF"
serve() { start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx "$@" -- --env-file "$ENVF"; }
kill9() { # SIGKILL the server; true when it died of that signal (status 137)
    local rc; kill -KILL "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; rc=$?; SERVER_PID=""; [ "$rc" = 137 ]
}
inst() { curl -s "$BASE/api/vast/instances/$1" | jq -r .state; }
creates() { sim GET /_admin/requests; jq '[.requests[] | select(.method == "PUT" and (.path|startswith("/api/v0/asks/")))] | length' <<<"$SBODY"; }
mapfile -t OFFERS < <(sim_offers 10)

step() { # step NAME STATE FAULT-JSON SERVE-ENV...: boot, kill at STATE, restart, expect ready
    local name=$1 state=$2 f=$3; shift 3
    local before; before=$(creates)
    serve "$@" || { fail "$name: server starts"; return; }
    [ -n "$f" ] && fault "$f"
    req POST /api/vast/boot -H 'Content-Type: application/json' -d "{\"offer_id\": ${OFFERS[$OI]}}"
    OI=$((OI + 1))
    local id; id=$(jget .instance_id)
    if ! wait_instance "$id" "$state" 30; then fail "$name: reached $state" "$(inst "$id")"; stop_server; return; fi
    check "$name: controller SIGKILLed while $state" kill9
    serve
    if wait_instance "$id" ready 60; then pass "$name: same instance ready after restart"; else fail "$name: ready after restart" "$(curl -s "$BASE/api/vast/instances/$id" | jq -c '{state,error}')"; fi
    check "$name: rented once" test "$(( $(creates) - before ))" = 1
    req POST "/api/vast/destroy/$id"
    expect "$name: destroyed" 200 '.success == true'
    stop_server
}
OI=0
step "loading" loading '{"type": "slow_boot", "count": 1, "loading_delay": 3, "running_delay": 2}'
step "ssh_wait" ssh_wait '{"type": "ssh_refuse", "seconds": 4}'
step "installing" installing '' GS_SETUP_DELAY=3
check "no instance left after the boot steps" test "$(sim_live_instances)" = 0

# ---- a job running on the GPU worker when the controller dies
long_speech_wav "$TDIR/long.wav" 2
serve
req POST /api/vast/boot -H 'Content-Type: application/json' -d "{\"offer_id\": ${OFFERS[$OI]}}"
VID=$(jget .instance_id)
wait_instance "$VID" ready 60 || fail "job: instance ready"
worker_health() { on_inst "$VID" 'curl -s http://127.0.0.1:8765/health'; }
worker_busy() { worker_health | jq -e .busy; }
req POST /api/jobs -F "file=@$TDIR/long.wav"
J=$(jget .id)
wait_for "job: the worker transcribes it" 20 worker_busy
check "job: controller SIGKILLed while the worker transcribes" kill9
serve
wait_job "$J" 180 >/dev/null
req GET "/api/jobs/$J"
expect "job: done once on the worker after the restart" 200 '.state == "done" and .backend == "remote" and .attempts == 2'
check "job: the worker ran it once (resumed, not rerun)" test "$(worker_health | jq -r .jobs_done)" = 1
req POST "/api/vast/destroy/$VID"
stop_server
check "nothing left running" test "$(sim_live_instances)" = 0
sim_stop
finish
