#!/usr/bin/env bash
# Cost safety against vastsim, with short timers (decimal minutes/hours):
#   run 1 (IDLE_DESTROY_MINUTES=0.25, IDLE_WARN_MINUTES=0.1, DESTROY_ORPHANS=1,
#          BUDGET_DAILY_USD=2): an orphan (created directly in vastsim with a gpuscribe label)
#          is found at start and destroyed; an idle instance is warned (instance.warning
#          event, the warning in /api/gpu-status's message and the instance view), kept
#          alive (the warning goes, the deadline moves), then destroyed for being idle
#          (instance.destroyed, destroy_reason idle); a boot whose hour would pass the budget
#          is refused (402) without renting.
#   run 2 (AUTO_DESTROY_AFTER_HOURS=0.008, DEADMAN_MINUTES=0.1): the hard cap destroys an
#          instance busy with a long job; the dead-man switch: the controller SIGKILLed, the
#          worker destroys its own instance with the per-instance key (vastsim's request log:
#          DELETE by auth "instance", source "instance:ID"); the restarted controller closes
#          the ledger at its estimate.
# In every case vastsim's billing ledger (/_admin/ledger) and ours (/api/cost) agree within
# 1% or an absolute tolerance of a few seconds of the instance's rate (see cmp_ledger), and
# no instance is left running.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 41 || { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "cost tests (they boot real instances)"
T0=$(date +%s)
export DATA=$TDIR/data
touch "$TDIR/app.env"
A=$TDIR/a; mkdir -p "$A"
long_speech_wav "$A/long.wav" 6
mapfile -t OFFERS < <(curl -sS -X POST -H 'Content-Type: application/json' -d "{\"limit\": 20, $SIM_FIT}" "$SIM/api/v0/bundles/" | jq -r '.offers | sort_by(.dph_total) | .[].id')
OI=0
AGREE=$TDIR/agreement
EVENTS=""
EV_PID=""
events_start() { EVENTS=$TDIR/events.$RANDOM; curl -sN "$BASE/api/events" >"$EVENTS" 2>/dev/null & EV_PID=$!; sleep 0.3; }
events_stop() { [ -n "$EV_PID" ] && kill "$EV_PID" 2>/dev/null; wait "$EV_PID" 2>/dev/null; EV_PID=""; }
# event_data TYPE: the data lines of TYPE events so far
event_data() { awk -v t="$1" '/^event: /{e=$2} /^data: /{if (e==t) print substr($0,7)}' "$EVENTS"; }
# has_event TYPE JQ-CONDITION: an event of TYPE whose data satisfies the condition was seen
has_event() { event_data "$1" | jq -c "select($2)" 2>/dev/null | grep -q .; }
wait_event() { local i; for i in $(seq 1 $(( $3 * 10 ))); do has_event "$1" "$2" && return 0; sleep 0.1; done; return 1; }
inst() { curl -s "$BASE/api/vast/instances/$1"; }
boot() {
    req POST /api/vast/boot -H 'Content-Type: application/json' -d "{\"offer_id\": ${OFFERS[$OI]}}"
    OI=$((OI + 1))
    BOOTED=$(jget .instance_id)
    local i s
    for i in $(seq 1 300); do s=$(inst "$BOOTED" | jq -r .state); [ "$s" = ready ] || [ "$s" = failed ] && break; sleep 0.1; done
    [ "$s" = ready ]
}
sim_destroyed() { sim GET /_admin/ledger; jq -e --argjson id "$1" '.instances[] | select(.id == $id) | .destroyed' <<<"$SBODY" >/dev/null; }
wait_sim_destroyed() { local i; for i in $(seq 1 $(( $2 * 10 ))); do sim_destroyed "$1" && return 0; sleep 0.1; done; return 1; }
# cmp_ledger NAME VID TOL_S: our cost (/api/cost) vs vastsim's ledger for a destroyed instance;
# agreement within 1%, or within TOL_S seconds of the instance's full rate (GPU + storage):
# the GPU interval opens when the controller sees `running` (polled, ~0.5 s late here) and a
# dead-man destroy is dated by estimate, so very short runs need an absolute bound.
cmp_ledger() {
    local name=$1 vid=$2 tol_s=$3 ours theirs rate
    local secs
    ours=$(curl -s "$BASE/api/cost" | jq --arg id "$vid" '.instances[] | select(.id == $id) | .cost_usd')
    secs=$(curl -s "$BASE/api/cost" | jq -r --arg id "$vid" '.instances[] | select(.id == $id) | "ours running \(.running_s) s, existing \(.uptime_s) s"')
    sim GET /_admin/ledger
    theirs=$(jq --argjson id "$vid" '.instances[] | select(.id == $id) | .total_cost' <<<"$SBODY")
    rate=$(jq --argjson id "$vid" '.instances[] | select(.id == $id) | .gpu_rate + .storage_rate' <<<"$SBODY")
    local verdict
    verdict=$(python3 -c "
o,t,r,s=float('${ours:-nan}'),float('${theirs:-nan}'),float('${rate:-nan}'),float('$tol_s')
d=abs(o-t); tol=max(0.01*t, r*s/3600)
print('ok' if d<=tol else 'bad', '%s: ours \$%.6f vastsim \$%.6f diff \$%.6f (%.2f%%, tolerance \$%.6f)'%('$name',o,t,d,100*d/t if t else 0,tol))")
    echo "${verdict#* }; $secs; vastsim $(jq -r --argjson id "$vid" '.instances[] | select(.id == $id) | "running \(.running_seconds*10|round/10) s, existing \(.exist_seconds*10|round/10) s"' <<<"$SBODY")" >>"$AGREE"
    if [ "${verdict%% *}" = ok ]; then pass "ledger agrees: ${verdict#* }"; else fail "ledger agrees" "${verdict#* }"; fi
}

# ======================= run 1: orphan, idle warning, keepalive, idle destroy, budget
OFF=$(curl -sS -X POST -H 'Content-Type: application/json' -d '{"limit": 40}' "$SIM/api/v0/bundles/" | jq -r '.offers | sort_by(.dph_total) | .[-1].id')
sim PUT "/api/v0/asks/$OFF/" -H "Authorization: Bearer $SIM_KEY" -H 'Content-Type: application/json' \
    -d '{"image": "gpuscribe-test", "disk": 10, "label": "gpuscribe-7", "runtype": "ssh"}'
ORPHAN=$(jq -r .new_contract <<<"$SBODY")
check "orphan created directly in vastsim" test -n "$ORPHAN" -a "$ORPHAN" != null
sleep 1
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx IDLE_DESTROY_MINUTES=0.25 \
    IDLE_WARN_MINUTES=0.1 DESTROY_ORPHANS=1 BUDGET_DAILY_USD=2 -- --env-file "$TDIR/app.env" ||
    { fail "server starts"; sim_stop; finish; exit 1; }
events_start
wait_sim_destroyed "$ORPHAN" 15
check "the orphan is destroyed (DESTROY_ORPHANS=1)" sim_destroyed "$ORPHAN"
check "orphan logged" grep -q "orphan instance $ORPHAN" "$SERVER_LOG"
# (published at start, before this test subscribed: read from the store's event log)
if command -v sqlite3 >/dev/null; then
    check "instance.orphan event recorded" test "$(sqlite3 "$DATA/gpuscribe.db" "SELECT count(*) FROM events WHERE kind='instance.orphan' AND data LIKE '%$ORPHAN%'")" -ge 1
fi
req GET /api/cost
expect "/api/cost lists the orphan (orphan: true, reason orphan)" 200 \
    ".instances[] | select(.id == \"$ORPHAN\") | .orphan == true and .destroy_reason == \"orphan\" and .state == \"destroyed\""
cmp_ledger "orphan $ORPHAN" "$ORPHAN" 2

if ! boot; then fail "instance ready" "$(inst "$BOOTED" | jq -c '{state,error}')"; tail -n 30 "$SERVER_LOG"; stop_server; sim_stop; finish; exit 1; fi
IA=$BOOTED
pass "instance $IA ready"
for i in $(seq 1 30); do inst "$IA" | jq -e '.idle_destroy_at != null' >/dev/null && break; sleep 0.1; done
req GET "/api/vast/instances/$IA"
expect "instance view has cost fields" 200 '(.uptime_s | type) == "number" and (.cost_usd | type) == "number" and (.idle_destroy_at | type) == "number" and .warning == null'
check "instance.warning event (idle)" wait_event instance.warning ".id == \"$IA\" and .reason == \"idle\"" 20
req GET /api/gpu-status
expect "gpu-status: five fields, the warning in its message" 200 \
    '(keys | length) == 5 and .type == "vast" and (.message | test("Warning: .*idle.*destroyed in"))'
req GET "/api/vast/instances/$IA"
expect "instance view shows the warning" 200 '(.warning | test("keep it alive")) and .idle_destroy_at != null'
BEFORE=$(jget .idle_destroy_at)
req POST "/api/vast/keepalive/$IA"
expect "keepalive accepted" 200 '.success == true and .idle_destroy_at != null'
req GET "/api/vast/instances/$IA"
expect "keepalive clears the warning and moves the deadline" 200 ".warning == null and .idle_destroy_at > $BEFORE + 4"
req POST /api/vast/keepalive/abc
expect "keepalive: bad id 400" 400 '.error | test("positive integer")'
req POST /api/vast/keepalive/99999999
expect "keepalive: unknown id 404" 404 '.error != null'
sleep 3
check "not destroyed while kept alive" test "$(event_data instance.destroyed | jq -c "select(.id == \"$IA\")" | wc -l)" = 0
check "destroyed for being idle (event with its cost)" wait_event instance.destroyed ".id == \"$IA\" and .reason == \"idle\" and .cost.cost_usd > 0" 30
check "warned again before the idle destroy" test "$(event_data instance.warning | jq -c "select(.id == \"$IA\")" | wc -l)" -ge 2
check "vastsim: idle instance gone" sim_destroyed "$IA"
check "auto-destroy logged with reason and cost" grep -qE "Instance $IA destroyed automatically \(idle: .*cost \\\$" "$SERVER_LOG"
req GET /api/cost
expect "/api/cost: the idle instance destroyed, reason idle" 200 \
    ".instances[] | select(.id == \"$IA\") | .destroy_reason == \"idle\" and .running == false and .uptime_s > 15 and (.summary | test(\"Ran: \"))"
expect "/api/cost: totals and budgets" 200 '.totals.all_time > 0 and .totals.today > 0 and .budgets.daily.limit == 2 and .budgets.daily.spent > 0 and .budgets.total.limit == null'
cmp_ledger "idle instance $IA" "$IA" 2

# budget: an offer whose hour costs more than the daily budget is refused, nothing rented
sim POST /_admin/offers -H 'Content-Type: application/json' -d '{"id": 990001, "dph_base": 7.5, "cuda_max_good": 13.0, "compute_cap": 890, "disk_space": 500}'
EXP=$(jq -r '.offer.id' <<<"$SBODY")
sim DELETE /_admin/requests
req POST /api/vast/boot -H 'Content-Type: application/json' -d "{\"offer_id\": $EXP}"
expect "budget refuses the boot (402)" 402 '(.error | test("budget")) and .kind == "budget"'
sim GET /_admin/requests
check "nothing rented for the refused boot" test "$(jq '[.requests[] | select(.method == "PUT" and (.path | test("asks")))] | length' <<<"$SBODY")" = 0
events_stop
stop_server
check "run 1: no instance left" test "$(sim_live_instances)" = 0

# ======================= run 2: hard cap on a busy instance, dead-man switch
rm -rf "$DATA"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx IDLE_DESTROY_MINUTES=5 \
    IDLE_WARN_MINUTES=0.1 AUTO_DESTROY_AFTER_HOURS=0.008 DEADMAN_MINUTES=0.1 -- --env-file "$TDIR/app.env" ||
    { fail "server 2 starts"; sim_stop; finish; exit 1; }
events_start
if ! boot; then fail "instance ready (run 2)"; tail -n 30 "$SERVER_LOG"; stop_server; sim_stop; finish; exit 1; fi
IB=$BOOTED
req POST /api/jobs -F "file=@$A/long.wav"
JB=$(jget .id)
for i in $(seq 1 100); do [ "$(curl -s "$BASE/api/jobs/$JB" | jq -r .state)" = running ] && break; sleep 0.1; done
check "a long job runs on the instance" test "$(curl -s "$BASE/api/jobs/$JB" | jq -r '.state + " " + (.backend // "")')" = "running remote"
check "hard-cap warning while busy" wait_event instance.warning ".id == \"$IB\" and .reason == \"hard_cap\"" 30
check "the job still runs at the warning" test "$(curl -s "$BASE/api/jobs/$JB" | jq -r .state)" = running
check "hard cap destroys the busy instance" wait_event instance.destroyed ".id == \"$IB\" and .reason == \"hard_cap\"" 20
check "vastsim: capped instance gone" wait_sim_destroyed "$IB" 5
req DELETE "/api/jobs/$JB"
cmp_ledger "hard-capped instance $IB" "$IB" 2

if ! boot; then fail "instance ready (dead-man)"; tail -n 30 "$SERVER_LOG"; stop_server; sim_stop; finish; exit 1; fi
IC=$BOOTED
req GET "/api/vast/instances/$IC"
expect "dead-man instance ready" 200 '.state == "ready"'
events_stop
sim DELETE /_admin/requests
KILLED_AT=$(date +%s.%N)
kill -KILL "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
wait_sim_destroyed "$IC" 20
check "dead-man switch: the worker destroyed its instance" sim_destroyed "$IC"
sim GET /_admin/requests
check "the DELETE came from the instance with its own key" test "$(jq --arg p "/api/v0/instances/$IC/" --arg src "instance:$IC" \
    '[.requests[] | select(.method == "DELETE" and (.path == $p or .path == ($p | rtrimstr("/"))) and .auth == "instance" and .source == $src and .status == 200)] | length' <<<"$SBODY")" = 1
check "no account-key DELETE of it" test "$(jq --arg src "instance:$IC" '[.requests[] | select(.method == "DELETE" and .auth == "account")] | length' <<<"$SBODY")" = 0
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx IDLE_DESTROY_MINUTES=5 \
    IDLE_WARN_MINUTES=0.1 AUTO_DESTROY_AFTER_HOURS=0.008 DEADMAN_MINUTES=0.1 -- --env-file "$TDIR/app.env" ||
    { fail "server 2 restarts"; sim_stop; finish; exit 1; }
for i in $(seq 1 100); do
    curl -s "$BASE/api/cost" | jq -e --arg id "$IC" '.instances[] | select(.id == $id) | .state == "destroyed" and .running == false and .destroy_reason == "gone"' >/dev/null && break
    sleep 0.2
done
req GET /api/cost
expect "restarted controller: the instance gone, ledger closed" 200 \
    ".instances[] | select(.id == \"$IC\") | .state == \"destroyed\" and .running == false and .destroy_reason == \"gone\""
cmp_ledger "dead-man instance $IC" "$IC" 4
stop_server
check "run 2: no instance left" test "$(sim_live_instances)" = 0
sim_stop
echo "ledger agreement:"; sed 's/^/    /' "$AGREE"
echo "cost suite took $(( $(date +%s) - T0 )) s"
finish
