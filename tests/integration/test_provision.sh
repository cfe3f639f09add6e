#!/usr/bin/env bash
# Provisioning against vastsim's real instances (network + mount namespaces over real sshd):
# boot -> ready with a worker answering /health inside the instance (seen from the instance
# over SSH with our key, and through /api/vast/instances/{id}); instance.state progress on
# /api/events; setup idempotent; secrets only in the 0600 env file; auto-connect of a running
# VAST_INSTANCE_ID (fresh data dir: adopted, worker untouched) and of a vanished one (cleared);
# SIGKILL mid-setup -> resumes to ready; SSH refused for a while -> ready; SSH never answering
# -> failed after SSH_WAIT_MINUTES, destroyable; host key changed -> refused; setup failing ->
# failed with the script's error; instance exiting during setup -> failed with status_msg;
# 429 storms -> ready. Ends with no instance left in vastsim and vastsim stopped.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
for tool in curl jq ssh ssh-keygen; do
    command -v $tool >/dev/null || { fail "prerequisite $tool" "not installed"; finish; exit 1; }
done

SIM_KEY=vast-prov-key-$RANDOM$RANDOM
KEY=$SIM_KEY
HF=hf_secret_$RANDOM$RANDOM
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 23 || { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "provisioning tests"
pass "vastsim starts with isolation"

ALL=$TDIR/all_bodies
OFFER_I=0
mapfile -t OFFERS < <(sim_offers 40)
boot() {
    boot_instance "${OFFERS[$OFFER_I]}"
    OFFER_I=$((OFFER_I + 1))
}
destroy() {
    jreq POST "/api/vast/destroy/$1"
    expect "$2: destroy" 200 '.success == true'
}
LOGS=()
ENVF=$TDIR/app.env
: >"$ENVF"
DATA=$TDIR/data
T0=$(date +%s)

# ---------------------------------------------------------------- boot -> ready
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" HF_TOKEN="$HF" -- --env-file "$ENVF" \
    || { fail "server starts"; finish; exit 1; }
LOGS+=("$SERVER_LOG")
curl -sN "$BASE/api/events" >"$TDIR/events.txt" 2>/dev/null &
EV_PID=$!
sleep 0.3
boot
ID=$BOOTED
check "boot answered" test -n "$ID"
if wait_instance "$ID" ready 30; then pass "boot -> ready"; else fail "boot -> ready" "${BODY:0:600}"; fi
req GET "/api/vast/instances/$ID"
expect "instance view: fields" 200 ".id == \"$ID\" and .percent == 100 and .stage == \"ready\" and .error == null and (.row_id|type) == \"number\" and (.label|startswith(\"gpuscribe\")) and (.log|length) > 3 and (.log|length) <= 50 and (.gpu_name|type) == \"string\" and .num_gpus >= 1 and .dph_total > 0 and .ssh_host == \"127.0.0.1\" and (.ssh_port|type) == \"number\" and (.created_at|type) == \"number\" and (.ready_at|type) == \"number\" and .worker.engine == \"sphinx\" and .tunnel.state == \"up\" and (.tunnel.rtt_ms|type) == \"number\" and .tunnel.reconnects == 0"
expect "setup log has the script's progress" 200 '[.log[] | select(test("GPUSCRIBE-PROGRESS (60|70|80|90) "))] | length >= 3'
jreq GET /api/gpu-status
expect "gpu-status: vast once the worker is ready" 200 ".available == true and .type == \"vast\" and .vast_instance == \"$ID\" and .message == \"Vast.ai GPU available: Instance $ID\""
check "log line: GPU available" grep -q "Vast.ai GPU available: Instance $ID" "$SERVER_LOG"
jreq GET /api/vast/instances
expect "list: state, stage, percent" 200 "(.instances[] | select(.id == $ID) | .state == \"ready\" and .percent == 100 and .stage == \"ready\")"
kill "$EV_PID" 2>/dev/null; wait "$EV_PID" 2>/dev/null
grep '^data: ' "$TDIR/events.txt" | sed 's/^data: //' | jq -c --arg id "$ID" 'select(.id? == $id and has("percent")) | [.state, .percent]' >"$TDIR/progress.txt" 2>/dev/null
check "events: instance.state sent" grep -q 'instance.state' "$TDIR/events.txt"
check "events: waiting for SSH 30%" grep -q '"ssh_wait",30' "$TDIR/progress.txt"
check "events: installing 60-90%" grep -qE '"installing",(6|7|8|9)0' "$TDIR/progress.txt"
check "events: starting worker 95%" grep -q '"starting_worker",95' "$TDIR/progress.txt"
check "events: ready 100%" grep -q '"ready",100' "$TDIR/progress.txt"
check "events: percent never goes back" bash -c "jq -s '[.[][1]] as \$p | \$p == (\$p | sort)' '$TDIR/progress.txt' | grep -q true"

# from the instance side
out=$(on_inst "$ID" 'cd /workspace/gpuscribe && sh setup.sh --status && curl -fsS 127.0.0.1:8765/health && echo && stat -c %a worker.env && for d in /proc/[0-9]*; do tr "\0" " " <$d/cmdline 2>/dev/null; echo; done | awk -v a='"${HF:0:6}"' -v b='"${HF:6}"' "index(\$0, a b) { n++ } END { print n + 0 }"')
check "instance: worker process running" grep -q '^worker running [0-9]' <<<"$out"
check "instance: /health answers inside the instance" grep -q '"status":"ok"' <<<"$out"
check "instance: worker.env is 0600" grep -qx 600 <<<"$out"
check "instance: HF_TOKEN in no process argument" grep -qx 0 <<<"$out"
check "instance: HF_TOKEN in worker.env" test "$(on_inst "$ID" 'grep -c ^HF_TOKEN= /workspace/gpuscribe/worker.env')" = 1
wpid=$(on_inst "$ID" 'cat /workspace/gpuscribe/worker.pid')
sum1=$(on_inst "$ID" 'cd /workspace/gpuscribe && ls -l --time-style=+%s gpuscribe-worker worker.env run-worker.sh | md5sum')
out=$(on_inst "$ID" 'cd /workspace/gpuscribe && sh setup.sh --engine auto --model large-v3 --port 8765 && sh setup.sh --start-worker --engine auto --model large-v3 --port 8765 && sh setup.sh --engine auto --model large-v3 --port 8765; echo rc=$?')
check "setup twice: succeeds" grep -q 'rc=0' <<<"$out"
check "setup twice: nothing to install" bash -c "! grep -qiE 'apt-get|installing:|downloading|building' <<<'$out'"
check "setup twice: worker left alone" grep -q 'already running' <<<"$out"
check "setup twice: same worker pid" test "$(on_inst "$ID" 'cat /workspace/gpuscribe/worker.pid')" = "$wpid"
check "setup twice: files unchanged" test "$(on_inst "$ID" 'cd /workspace/gpuscribe && ls -l --time-style=+%s gpuscribe-worker worker.env run-worker.sh | md5sum')" = "$sum1"
# the supervisor restarts a dead worker
on_inst "$ID" 'kill -9 $(cat /workspace/gpuscribe/worker.pid)'
for i in $(seq 1 60); do
    p=$(on_inst "$ID" 'cat /workspace/gpuscribe/worker.pid; curl -fsS 127.0.0.1:8765/health >/dev/null && echo healthy')
    grep -q healthy <<<"$p" && [ "$(head -1 <<<"$p")" != "$wpid" ] && break
    sleep 0.2
done
check "supervisor restarts a killed worker" bash -c "grep -q healthy <<<'$p' && [ '$(head -1 <<<"$p")' != '$wpid' ]"

# ---------------------------------------------------------------- SSH refused for a while
fault '{"type": "ssh_refuse", "seconds": 3}'
boot
ID2=$BOOTED
if wait_instance "$ID2" ready 30; then pass "SSH refused 3 s -> still ready"; else fail "SSH refused 3 s -> still ready" "${BODY:0:400}"; fi
req GET "/api/vast/instances/$ID2"
expect "SSH refused: the log shows the retries" 200 '[.log[] | select(test("SSH ready .* after [0-9]+ attempts"))] | length == 1'
destroy "$ID2" "SSH refused"

# ---------------------------------------------------------------- 429 storms while provisioning
fault '{"type": "http_429", "count": 12, "path": "/instances/"}'
boot
ID3=$BOOTED
if wait_instance "$ID3" ready 40; then pass "429 storm -> still ready"; else fail "429 storm -> still ready" "${BODY:0:400}"; fi
sim DELETE /_admin/faults
destroy "$ID3" "429 storm"

# ---------------------------------------------------------------- host key changed
dir=$(sim_inst "$ID" dir)
rm -f "$dir/ssh_host_ed25519_key" "$dir/ssh_host_ed25519_key.pub"
ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh_host_ed25519_key" -C replaced
fault "{\"type\": \"ssh_drop\", \"instance_id\": $ID}"
if wait_instance "$ID" failed 20; then pass "host key changed -> failed"; else fail "host key changed -> failed" "${BODY:0:400}"; fi
expect "host key changed: clear error" 200 '(.error | test("host key .* changed")) and (.error | test("still rented")) and .tunnel == null'
jreq GET /api/gpu-status
expect "gpu-status: not available after the refusal" 200 ".available == false and .type == \"none\""
destroy "$ID" "host key"
stop_server

# ---------------------------------------------------------------- auto-connect: adopt a running instance
DATA=$TDIR/data2
: >"$ENVF"
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" -- --env-file "$ENVF"
LOGS+=("$SERVER_LOG")
boot
ID4=$BOOTED
wait_instance "$ID4" ready 30 || fail "adopt: first boot ready" "${BODY:0:300}"
wpid=$(on_inst "$ID4" 'cat /workspace/gpuscribe/worker.pid')
stop_server
olddata=$DATA
DATA=$TDIR/data3            # a controller that has never seen the instance
mkdir -p "$DATA/ssh" && cp "$olddata/ssh/id_ed25519"* "$DATA/ssh/"   # same key (same user)
printf '# mine\nVAST_INSTANCE_ID=%s\n' "$ID4" >"$ENVF"
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" -- --env-file "$ENVF"
LOGS+=("$SERVER_LOG")
t=$(date +%s.%N)
if wait_instance "$ID4" ready 20; then pass "auto-connect: running instance -> ready"; else fail "auto-connect: running instance -> ready" "${BODY:0:400}"; fi
echo "    (auto-connect took $(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s)"
check "auto-connect: log line" grep -q "Vast.ai GPU available: Instance $ID4" "$SERVER_LOG"
check "auto-connect: adopted (store row created)" grep -q "VAST_INSTANCE_ID=$ID4: instance $ID4 is running" "$SERVER_LOG"
req GET "/api/vast/instances/$ID4"
expect "auto-connect: nothing reinstalled" 200 '([.log[] | select(test("built from this source already"))] | length == 1) and ([.log[] | select(test("already running"))] | length == 1)'
check "auto-connect: worker not restarted" test "$(on_inst "$ID4" 'cat /workspace/gpuscribe/worker.pid')" = "$wpid"
jreq GET /api/gpu-status
expect "auto-connect: gpu-status vast" 200 ".type == \"vast\" and .vast_instance == \"$ID4\""
destroy "$ID4" "auto-connect"
check "destroy clears VAST_INSTANCE_ID" bash -c "! grep -q VAST_INSTANCE_ID '$ENVF'"
stop_server

# ---------------------------------------------------------------- auto-connect: a vanished instance
printf 'VAST_INSTANCE_ID=%s\n' "$ID4" >"$ENVF"
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" -- --env-file "$ENVF"
LOGS+=("$SERVER_LOG")
for i in $(seq 1 50); do grep -q VAST_INSTANCE_ID "$ENVF" || break; sleep 0.1; done
check "vanished: cleared from .env" bash -c "! grep -q VAST_INSTANCE_ID '$ENVF'"
check "vanished: reported" grep -q "$ID4 no longer exists" "$SERVER_LOG"
jreq GET /api/gpu-status
expect "vanished: gpu-status none" 200 '.type == "none" and .available == false'
stop_server

# ---------------------------------------------------------------- SIGKILL mid-setup, resume
DATA=$TDIR/data4
: >"$ENVF"
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" GS_SETUP_DELAY=3 -- --env-file "$ENVF"
LOGS+=("$SERVER_LOG")
boot
ID5=$BOOTED
wait_instance "$ID5" installing 20 || fail "SIGKILL: reached installing" "${BODY:0:300}"
kill -KILL "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" -- --env-file "$ENVF"
LOGS+=("$SERVER_LOG")
if wait_instance "$ID5" ready 30; then pass "SIGKILL during installing -> resumed to ready"; else fail "SIGKILL during installing -> resumed to ready" "${BODY:0:500}"; fi
check "SIGKILL: resumed the row (no new rental)" test "$(jq '[.instances[] | select((.destroyed // false) | not)] | length' <<<"$(curl -s "$SIM/_admin/state")")" = 1
nsup=$(on_inst "$ID5" 'me=$(readlink /proc/self/ns/net); n=0; for d in /proc/[0-9]*; do [ "$(readlink $d/ns/net 2>/dev/null)" = "$me" ] || continue; tr "\0" " " <$d/cmdline 2>/dev/null | grep -q "^sh ./run-worker.sh" && n=$((n + 1)); done; echo $n')
check "SIGKILL: one worker supervisor on the instance (got $nsup)" test "$nsup" = 1

# ---------------------------------------------------------------- instance exits during setup
stop_server
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" GS_SETUP_DELAY=4 -- --env-file "$ENVF"
LOGS+=("$SERVER_LOG")
boot
ID6=$BOOTED
wait_instance "$ID6" installing 20 || fail "exit: reached installing" "${BODY:0:300}"
fault "{\"type\": \"exit_instance\", \"instance_id\": $ID6, \"status_msg\": \"simulated host failure 42\"}"
if wait_instance "$ID6" failed 20; then pass "instance exits during setup -> failed"; else fail "instance exits during setup -> failed" "${BODY:0:400}"; fi
expect "exit: error carries status_msg" 200 '(.error | test("exited: simulated host failure 42")) and (.error | test("destroy"))'
destroy "$ID6" "exited instance"
destroy "$ID5" "resumed instance"
stop_server

# ---------------------------------------------------------------- setup failing; SSH never answering
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" GS_SETUP_FAIL=engine SSH_WAIT_MINUTES=0.1 -- --env-file "$ENVF"
LOGS+=("$SERVER_LOG")
boot
ID7=$BOOTED
if wait_instance "$ID7" failed 30; then pass "setup failing -> failed"; else fail "setup failing -> failed" "${BODY:0:400}"; fi
expect "setup failing: the script's error line" 200 '(.error | test("setup failed .*simulated failure while installing the engine")) and (.stage | test("still rented"))'
destroy "$ID7" "setup failing"
fault '{"type": "ssh_refuse", "seconds": 600}'
boot
ID8=$BOOTED
t=$(date +%s)
if wait_instance "$ID8" failed 30; then pass "SSH never answering -> failed"; else fail "SSH never answering -> failed" "${BODY:0:400}"; fi
el=$(( $(date +%s) - t ))
check "SSH never answering: after the deadline (6 s), not long after (${el}s)" test "$el" -ge 4 -a "$el" -le 20
expect "SSH never answering: clear error" 200 '(.error | test("did not answer SSH .* within 0.1 minutes")) and (.error | test("still rented"))'
sim DELETE /_admin/faults
destroy "$ID8" "SSH never answering"
jreq GET /api/vast/instances/abc
expect "instance view: bad id -> 400" 400 '.error'
jreq GET /api/vast/instances/999999999
expect "instance view: unknown -> 404" 404 '.error | test("not known")'
jreq GET /openapi.json
expect "openapi documents the instance view" 200 '.paths["/api/vast/instances/{instance_id}"].get.responses["200"]'
stop_server

# ---------------------------------------------------------------- nothing left, nothing leaked
check "no instance left running" test "$(sim_live_instances)" = 0
sim GET /_admin/ledger
check "ledger: nothing billing" jq -e '[.instances[] | select(.destroyed | not)] | length == 0' <<<"$SBODY"
check "the keys never appear in a response" bash -c "! grep -qF -e '$KEY' -e '$HF' '$ALL'"
check "the keys never appear in a server log" bash -c "! grep -qF -e '$KEY' -e '$HF' ${LOGS[*]}"
spid=$SIM_PID
sim_stop
check "vastsim stopped, no process left" bash -c "! kill -0 $spid 2>/dev/null && ! pgrep -f 'VASTSIM_TAG=$spid\.' >/dev/null"
echo "    (provision suite: $(( $(date +%s) - T0 )) s)"
finish
