#!/usr/bin/env bash
# Jobs routed to a GPU worker (here `gpuscribe worker` on loopback, named by WORKER_URL):
# the job runs on the worker (asserted from the worker's side), waits rather than falls back
# while the worker is away, and survives the worker dying mid-job: done exactly once.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
A=$TDIR/a; mkdir -p "$A"
S1="the quick brown fox jumps over the lazy dog"
espeak-ng -v en-us -s 150 -w "$A/s1.wav" "$S1"
printf '#JSGF V1.0;\ngrammar t;\npublic <utt> = <s>+;\n<s> = %s;\n' "$S1" > "$A/t.gram"
long_speech_wav "$A/long.wav" 2
WPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WPID=""
start_worker() {
    env ${WSLOTS:+WORKER_SLOTS=$WSLOTS} "$GS_BIN" worker --listen "127.0.0.1:$WPORT" --engine sphinx > "$TDIR/worker.log" 2>&1 &
    WPID=$!
    local i; for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$WPORT/health" >/dev/null && return 0; sleep 0.1; done
    fail "worker starts${WSLOTS:+ with $WSLOTS slots}" "no /health within 10 s: $(tail -n 5 "$TDIR/worker.log")"
    return 1
}
at_exit '[ -n "$WPID" ] && kill -9 $WPID 2>/dev/null'
export GS_SPHINX_JSGF=$A/t.gram

start_worker
start_server WORKER_URL="http://127.0.0.1:$WPORT"
req POST /api/jobs -F "file=@$A/s1.wav"
ID=$(jget .id)
check "job done" wait_job_state "$ID" done 60
req GET "/api/jobs/$ID"
expect "ran on the remote worker" 200 '.backend == "remote" and .engine == "sphinx" and .attempts == 1'
req GET "/api/jobs/$ID/transcript?format=txt"
check "exact words from the worker" test "$BODY" = "$S1"
check "the worker counted the job" bash -c "curl -s http://127.0.0.1:$WPORT/health | jq -e '.jobs_done == 1 and .busy == false' >/dev/null"

# worker away: jobs wait (no CPU fallback), then run when it returns
kill -TERM $WPID; wait $WPID 2>/dev/null; WPID=""
req POST /api/jobs -F "file=@$A/s1.wav"
W=$(jget .id)
sleep 3
req GET "/api/jobs/$W"
expect "job waits for the worker instead of falling back" 200 '.state == "queued" and .backend == null and (.waiting_for|test("GPU")) and .engine == null'
start_worker
check "waiting job runs once the worker is back" wait_job_state "$W" done 60
req GET "/api/jobs/$W"
expect "... on the worker" 200 '.backend == "remote"'

# the worker dies mid-job: the job is queued again and completes exactly once
unset GS_SPHINX_JSGF
kill -TERM $WPID; wait $WPID 2>/dev/null
start_worker
req POST /api/jobs -F "file=@$A/long.wav"
L=$(jget .id)
check "long job starts on the worker" wait_job_state "$L" running 30
wait_for "the worker is busy with it" 10 bash -c "curl -s http://127.0.0.1:$WPORT/health | jq -e .busy"
sleep 1
kill -KILL $WPID; wait $WPID 2>/dev/null; rc=$?; WPID=""
check "worker SIGKILLed mid-job" test "$rc" = 137
check "job goes back to the queue" wait_job_state "$L" queued 40
start_worker
check "job completes after the worker restarts" wait_job_state "$L" done 120
req GET "/api/jobs/$L"
expect "exactly one completed run, two attempts, on the worker" 200 '.attempts == 2 and .backend == "remote" and .state == "done" and .error == null'
check "restarted worker ran it once" bash -c "curl -s http://127.0.0.1:$WPORT/health | jq -e '.jobs_done == 1' >/dev/null"
check "worker keeps no job files" bash -c "! grep -q 'lost' '$TDIR/worker.log'"
stop_server
kill -TERM $WPID; wait $WPID 2>/dev/null; WPID=""

# WORKER_SLOTS=2: the controller sends the worker two jobs at once, never a third
WSLOTS=2 start_worker
check "the worker advertises 2 slots" bash -c "curl -s http://127.0.0.1:$WPORT/health | jq -e '.slots == 2' >/dev/null"
start_server WORKER_URL="http://127.0.0.1:$WPORT"
ids=()
for k in 1 2 3; do req POST /api/jobs -F "file=@$A/long.wav"; ids+=("$(jget .id)"); done
both=0; over=0
for i in $(seq 1 300); do
    n=$(curl -s "$BASE/api/jobs?state=running" | jq '.jobs | length')
    r=$(curl -s "http://127.0.0.1:$WPORT/health" | jq .running)
    [ "$n" -ge 2 ] && [ "$r" = 2 ] && both=1
    [ "$n" -gt 2 ] && over=1
    [ "$both" = 1 ] && break
    sleep 0.05
done
check "two jobs run at once on the 2-slot worker" test "$both" = 1
for k in 0 1 2; do wait_job "${ids[$k]}" 180 >/dev/null; done
check "never more than its 2 slots" test "$over" = 0
req GET "/api/jobs/${ids[2]}"
expect "the third waited for a slot, then ran there" 200 '.state == "done" and .backend == "remote" and .attempts == 1'
check "the worker ran all three" bash -c "curl -s http://127.0.0.1:$WPORT/health | jq -e '.jobs_done == 3' >/dev/null"
# a model the worker does not have: refused once, the job fails with the reason, no retries
req POST /api/jobs -F "file=@$A/s1.wav" -F model=large-v3-turbo
M=$(jget .id)
wait_job "$M" 60 >/dev/null
req GET "/api/jobs/$M"
expect "a model the worker lacks: failed at once, saying why" 200 '.state == "failed" and .attempts == 1 and (.error | test("model .large-v3-turbo. is not on this worker"))'
check "the worker was not taken for broken (no retry, no failure report)" bash -c "grep -q 'job $M failed on the GPU worker (invalid, not retried)' '$SERVER_LOG' && ! grep -q 'job $M: GPU worker failed' '$SERVER_LOG' && ! grep -q 'worker http://127.0.0.1:$WPORT failed' '$SERVER_LOG'"
jreq GET /v1/models
expect "/v1/models lists whisper-1 and the configured model" 200 '[.data[].id] | index("whisper-1") != null and index("large-v3") != null'
stop_server
kill -TERM $WPID; wait $WPID 2>/dev/null; WPID=""
finish
