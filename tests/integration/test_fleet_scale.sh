#!/usr/bin/env bash
# Autoscaling against vastsim (real instances, sphinx workers), in three runs:
#   run 1 (MAX_INSTANCES=3, SCALE_UP_WAIT_MINUTES=0.5): a backlog of three 20-minute files;
#          the fleet grows to 3 by itself (each boot logged and published as fleet.scale with
#          its reason and figures, the offer the cheapest per audio hour), all three run
#          chunks, the plan then says it is at MAX_INSTANCES; the measured speed is learned;
#          when the backlog is done the fleet shrinks to 0 through the idle rule, and nothing
#          more is booted.
#   run 2 (BUDGET_TOTAL_USD=0.25, offers at $0.10/h): it stops at 2 and says why (budget).
#   run 3 (the same fleet, the controller restarted with a budget just above what is spent):
#          the 80% warning, the warning before the destroy, every instance destroyed for the
#          budget, and autoscaling never boots past it.
# Also: PUT /api/fleet changes MAX_INSTANCES (and .env); bad values are 400. Nothing is left
# running at the end.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 43 --offers 5 || { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "autoscaling (it boots real instances)"
A=$TDIR/a; mkdir -p "$A"
# add_offers PRICE M1 M2 M3: RTX 4090 offers at PRICE $/h (base) on machines M1..; prints ids
add_offers() {
    local p=$1 m; shift
    for m in "$@"; do
        sim POST /_admin/offers -d "{\"machine_id\": $m, \"gpu_name\": \"RTX 4090\", \"dph_base\": $p, \"cuda_max_good\": 13.1, \"compute_cap\": 890}"
        jq -r .offer.id <<<"$SBODY"
    done
}
mapfile -t CHEAP < <(add_offers 0.05 990001 990002 990003)
for i in 1 2 3; do "$(dirname "$0")/sparse_speech.py" "$A/f$i.wav" 1200 5 400 800 1150; done
scale_events() { # the fleet.scale events the store kept (boots are persisted)
    python3 - "$1" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1] + "/gpuscribe.db")
for (d,) in db.execute("SELECT data FROM events WHERE kind='fleet.scale' ORDER BY id"):
    print(d)
PY
}
sim_created() { sim GET /_admin/ledger; jq '.instances | length' <<<"$SBODY"; }   # destroyed ones too

# ======================= run 1: grow to 3, all run chunks, shrink to 0
export DATA=$TDIR/data1
touch "$TDIR/app1.env"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx WORKER_SLOTS=1 CHUNK_MINUTES=2 \
    MAX_INSTANCES=3 SCALE_UP_WAIT_MINUTES=0.5 IDLE_DESTROY_MINUTES=0.3 IDLE_WARN_MINUTES=0.1 GPU_ONLY=1 \
    -- --env-file "$TDIR/app1.env" || { fail "server starts"; sim_stop; finish; exit 1; }
req GET /api/fleet
expect "fleet view: empty, MAX_INSTANCES 3, autoscaling on" 200 '.max_instances == 3 and (.instances | length) == 0 and .plan.enabled == true'
JOBS=()
for i in 1 2 3; do
    req POST /api/jobs -F "file=@$A/f$i.wav" -F language=en
    JOBS+=("$(jget .id)")
done
check "three 20-minute jobs accepted" test "${#JOBS[@]}" = 3
ok=0
for i in $(seq 1 600); do
    req GET /api/fleet
    [ "$(jq '[.instances[] | select(.state == "ready")] | length' <<<"$BODY")" = 3 ] && { ok=1; break; }
    server_dead && break
    sleep 0.2
done
if [ $ok = 1 ]; then pass "the fleet grew to 3 ready instances by itself"
else fail "the fleet grew to 3 ready instances by itself" "$(jq -c '{plan, instances: [.instances[] | {id, state, error}]}' <<<"$BODY")"; tail -n 30 "$SERVER_LOG"; fi
check "the fleet view lists slots, speed and cost per instance" jq -e '[.instances[] | (.slots == 1 and .speed_x > 0 and (.cost_usd | type) == "number" and .gpu_name == "RTX 4090")] | all' <<<"$BODY"
check "every instance was booted from one of the cheapest-per-audio-hour offers (machines 990001-3)" \
    jq -e '[.instances[] | .machine_id] | sort == [990001, 990002, 990003]' <<<"$BODY"
check "vastsim has exactly 3 instances" test "$(sim_live_instances)" = 3
for j in "${JOBS[@]}"; do wait_job "$j" 400 >/dev/null; done
req GET /api/fleet
cp "$TDIR/body" "$A/fleet1.json"
ALLCH=$(for j in "${JOBS[@]}"; do curl -s "$BASE/api/jobs/$j"; done | jq -s '[.[] | .chunks[]]')
check "the three jobs are done" test "$(for j in "${JOBS[@]}"; do curl -s "$BASE/api/jobs/$j" | jq -r .state; done | sort -u)" = done
check "all three instances ran chunks ($(jq -c 'group_by(.instance_id) | map({(.[0].instance_id | tostring): length}) | add' <<<"$ALLCH"))" \
    jq -e '[.[] | .instance_id] | unique | length == 3' <<<"$ALLCH"
scale_events "$DATA" >"$A/ev1"
check "three boots, each published with its reason and figures ($(jq -r .message "$A/ev1" | head -n1))" \
    jq -s -e '[.[] | select(.decision == "boot")] | length == 3 and all(.reason == "wait" and .backlog_audio_s > 0 and (.wait_s == null or .wait_s > .wait_limit_s) and .offer.cost_per_audio_hour > 0 and .instance_id > 0)' "$A/ev1"
check "the log says it holds at MAX_INSTANCES=3" grep -q 'autoscale: max: at MAX_INSTANCES=3' "$SERVER_LOG"
check "the speed of RTX 4090 with sphinx was measured" jq -e '.speeds.models | map(select(.gpu_name == "RTX 4090" and .engine == "sphinx" and .chunks > 0 and .x > 0)) | length == 1' "$A/fleet1.json"
ok=0
for i in $(seq 1 900); do [ "$(sim_live_instances)" = 0 ] && { ok=1; break; }; server_dead && break; sleep 0.2; done
check "the fleet shrank to 0 through the idle rule" test $ok = 1
req GET /api/cost
check "each was destroyed for being idle" jq -e '[.instances[] | .destroy_reason] | (length == 3 and all(. == "idle"))' <<<"$BODY"
check "nothing more was booted (3 instances ever)" test "$(sim_created)" = 3
req GET /api/fleet
expect "the plan: no backlog" 200 '.plan.reason == "no_backlog" and (.instances | length) == 0'
# MAX_INSTANCES at run time
jreq PUT /api/fleet '{"max_instances": 2}'
expect "PUT /api/fleet sets MAX_INSTANCES" 200 '.max_instances == 2'
for bad in '{"max_instances": 0}' '{"max_instances": 65}' '{"max_instances": "3"}' '{"max_instances": 4294967298}' '{"max": 2}' '[2]'; do
    jreq PUT /api/fleet "$bad"
    expect "PUT /api/fleet refuses $bad" 400 '.error | length > 0'
done
for i in $(seq 1 50); do grep -q '^MAX_INSTANCES=2$' "$TDIR/app1.env" && break; sleep 0.1; done
check "MAX_INSTANCES=2 written to .env" grep -q '^MAX_INSTANCES=2$' "$TDIR/app1.env"
jreq POST /api/vast/search '{"sort": "cost_per_audio_hour", "limit": 3}'
expect "search sorted by cost per audio hour: ascending, each offer with its estimate" 200 \
    '.sort == "cost_per_audio_hour" and (.offers | length) > 0 and ([.offers[].cost_per_audio_hour] | . == sort) and all(.offers[]; .speed_x > 0)'
jreq POST /api/vast/search '{"sort": "fastest"}'
expect "search refuses an unknown sort" 400 '.error | test("cost_per_audio_hour")'
stop_server

# ======================= run 2: a budget that allows only 2 first hours
sim_stop
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 44 --offers 5 || { fail "vastsim starts again"; finish; exit 1; }
mapfile -t MID < <(add_offers 0.10 990011 990012 990013)
export DATA=$TDIR/data2
touch "$TDIR/app2.env"
SRV2=(VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx WORKER_SLOTS=1 CHUNK_MINUTES=2
      MAX_INSTANCES=3 SCALE_UP_WAIT_MINUTES=0.5 IDLE_DESTROY_MINUTES=30 IDLE_WARN_MINUTES=0.1 GPU_ONLY=1)
start_server "${SRV2[@]}" BUDGET_TOTAL_USD=0.25 -- --env-file "$TDIR/app2.env" || { fail "server starts (budget)"; sim_stop; finish; exit 1; }
JOBS=()
for i in 1 2 3; do req POST /api/jobs -F "file=@$A/f$i.wav" -F language=en; JOBS+=("$(jget .id)"); done
ok=0
for i in $(seq 1 300); do
    req GET /api/fleet
    [ "$(jget .plan.reason)" = budget ] && [ "$(jq '.instances | length' <<<"$BODY")" = 2 ] && { ok=1; break; }
    server_dead && break
    sleep 0.2
done
if [ $ok = 1 ]; then pass "with a budget for 2 first hours it stops at 2 ($(jget .plan.message | cut -c1-160))"
else fail "with a budget for 2 first hours it stops at 2" "$(jq -c '{plan, n: (.instances | length)}' <<<"$BODY")"; fi
check "the reason names the budget" jq -e '.plan.message | test("BUDGET_TOTAL_USD")' <<<"$BODY"
sleep 4
check "still 2 on vastsim" test "$(sim_live_instances)" = 2
for v in $(jq -r '.instances[].id' <<<"$BODY"); do wait_instance "$v" ready 120 || fail "instance $v ready" "$(jget .error)"; done
req GET /api/cost
SPENT=$(jget .totals.all_time)
stop_server

# ======================= run 3: the budget reached while they run
LIMIT=$(python3 -c "print(round($SPENT + 0.0006, 6))")
start_server "${SRV2[@]}" BUDGET_TOTAL_USD="$LIMIT" -- --env-file "$TDIR/app2.env" || { fail "server starts (budget reached)"; sim_stop; finish; exit 1; }
ok=0
for i in $(seq 1 600); do [ "$(sim_live_instances)" = 0 ] && { ok=1; break; }; server_dead && break; sleep 0.2; done
check "the budget (\$$LIMIT, \$$SPENT spent) destroyed every instance" test $ok = 1
req GET /api/cost
check "each destroyed for the budget" jq -e '[.instances[] | select(.destroyed_at != null) | .destroy_reason] | (length == 2 and all(. == "budget"))' <<<"$BODY"
sleep 4
req GET /api/fleet
check "autoscaling holds for the budget ($(jget .plan.message | cut -c1-120))" jq -e '.plan.reason == "budget" and (.instances | length) == 0' <<<"$BODY"
check "never booted past it (2 instances ever)" test "$(sim_created)" = 2
for j in "${JOBS[@]}"; do req DELETE "/api/jobs/$j"; done
stop_server
python3 - "$DATA" >"$A/ev3" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1] + "/gpuscribe.db")
for k, d in db.execute("SELECT kind, coalesce(data,'') FROM events ORDER BY id"):
    print(k, d)
PY
check "the 80% warning was published" grep -q '^budget.warning ' "$A/ev3"
check "then the warning before the destroy, for the budget" grep -q '^instance.warning .*budget' "$A/ev3"
check "then two destroys for the budget" test "$(grep -c '^instance.destroyed .*"budget"' "$A/ev3")" = 2
check "nothing left running on vastsim" test "$(sim_live_instances)" = 0
sim_stop
finish
