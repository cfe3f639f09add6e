#!/usr/bin/env bash
# Jobs on a GPU instance: a vastsim instance booted to ready runs the job in its worker,
# through the SSH tunnel (asserted from the instance's side), and every fault ends with the
# job done exactly once: all SSH connections dropped mid-job, the worker killed mid-job, SSH
# refused for 10 s mid-job, the instance destroyed mid-job.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 31 || { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "GPU job tests"
A=$TDIR/a; mkdir -p "$A"
S1="the quick brown fox jumps over the lazy dog"
espeak-ng -v en-us -s 150 -w "$A/s1.wav" "$S1"
long_speech_wav "$A/long.wav" 2
export DATA=$TDIR/data
touch "$TDIR/app.env"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx WORKER_SLOTS=2 -- --env-file "$TDIR/app.env" ||
    { fail "server starts"; sim_stop; finish; exit 1; }
boot_instance "$(sim_offers 5 | head -n1)"
VID=$BOOTED
inst_state() { curl -s "$BASE/api/vast/instances/$VID" | jq -r .state; }
if ! wait_instance "$VID" ready 60; then
    fail "instance ready" "$(jq -c '{state,error,log:.log[-5:]}' <<<"$BODY")"
    tail -n 30 "$SERVER_LOG"
    stop_server; sim_stop; finish; exit 1
fi
pass "instance ready"
check "the fleet knows the worker's 2 slots and its models (from its /health)" \
    jq -e '.worker.slots == 2 and (.worker.models | index("sphinx"))' <<<"$BODY"
req GET /v1/models
expect "/v1/models lists the GPU worker's model" 200 '[.data[].id] | index("sphinx")'
worker_done() { on_inst "$VID" 'curl -s http://127.0.0.1:8765/health' | jq -r .jobs_done; }
running_on_worker() { local i; for i in $(seq 1 200); do on_inst "$VID" 'curl -s http://127.0.0.1:8765/health' | jq -e .busy >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# ---- a job through the tunnel, seen from the instance
req POST /api/jobs -F "file=@$A/s1.wav"
J=$(jget .id)
wait_job "$J" 60 >/dev/null
req GET "/api/jobs/$J"
expect "job done on the GPU instance" 200 '.state == "done" and .backend == "remote" and .attempts == 1 and .instance_id != null'
check "the instance's worker ran it (jobs_done 1)" test "$(worker_done)" = 1
check "no audio or transcript left on the instance" test -z "$(on_inst "$VID" 'find /workspace -name "*.wav" 2>/dev/null')"

# ---- all SSH connections dropped mid-job
req POST /api/jobs -F "file=@$A/long.wav"
J=$(jget .id)
running_on_worker
fault '{"type": "ssh_drop"}'
wait_job "$J" 120 >/dev/null
req GET "/api/jobs/$J"
expect "SSH dropped mid-job: done once" 200 '.state == "done" and .backend == "remote" and .error == null'
check "the worker completed it once (jobs_done 2)" test "$(worker_done)" = 2

# ---- the worker killed mid-job (the supervisor restarts it; the job is resumed or rerun)
req POST /api/jobs -F "file=@$A/long.wav"
J=$(jget .id)
running_on_worker
on_inst "$VID" 'kill -KILL $(cat /workspace/gpuscribe/worker.pid)' || true   # no pid namespace: never pkill
wait_job "$J" 150 >/dev/null
req GET "/api/jobs/$J"
expect "worker killed mid-job: done once" 200 '.state == "done" and .backend == "remote"'

# ---- SSH refused for 10 s mid-job
req POST /api/jobs -F "file=@$A/long.wav"
J=$(jget .id)
running_on_worker
fault "{\"type\": \"ssh_refuse\", \"seconds\": 10}"
fault '{"type": "ssh_drop"}'
wait_job "$J" 150 >/dev/null
req GET "/api/jobs/$J"
expect "SSH refused 10 s mid-job: done once" 200 '.state == "done" and .backend == "remote"'
check "instance ready again" test "$(inst_state)" = ready

# ---- the instance destroyed mid-job: the job goes back to the queue and finishes on the CPU
req POST /api/jobs -F "file=@$A/long.wav"
J=$(jget .id)
running_on_worker
sim DELETE "/api/v0/instances/$VID/" -H "Authorization: Bearer $SIM_KEY"
wait_job "$J" 240 >/dev/null
req GET "/api/jobs/$J"
expect "instance destroyed mid-job: done once, elsewhere" 200 '.state == "done" and .backend == "local"'
req GET "/api/jobs?state=done"
expect "five jobs, each done once" 200 '.total == 5'
stop_server
check "no instance left running" test "$(sim_live_instances)" = 0
sim_stop
finish
