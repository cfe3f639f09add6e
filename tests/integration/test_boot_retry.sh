#!/usr/bin/env bash
# A boot killed half-way (GS_FAULT, test-only: the controller _exits at a named point) and
# retried after a restart rents exactly one instance and never touches other tools'
# instances: the account holds unlabelled instances created by "another tool"; the boot row
# and its label are written together, so a retry with the same Idempotency-Key reconciles by
# the row's own label, never by an empty one (also for an unlabelled row left by an older
# version, which is failed: it was labelled before Vast was ever called).
#   boot_after_insert: killed after the row (and its label) is written, before Vast is called
#   boot_after_create: killed after Vast created the instance, before its id is recorded
# and, restarted without a retry, the startup pass settles each: an instance with the row's
# label is adopted (then billed and destroyed by the hard cap like any other); none once the
# create is certainly over fails the row, with its reason, renting and destroying nothing.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
for tool in curl jq sqlite3; do
    command -v $tool >/dev/null || { fail "prerequisite $tool" "not installed"; finish; exit 1; }
done

SIM_KEY=vast-test-key-$RANDOM$RANDOM
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 11 || { fail "vastsim starts"; finish; exit 1; }
pass "vastsim starts"
mapfile -t OFFERS < <(sim_offers 8)
check "vastsim: offers that fit the image" test "${#OFFERS[@]}" -ge 6

# ---- another tool's instances on the same account: no label, a null label, an empty one
other_create() {
    curl -sS -X PUT -H "Authorization: Bearer $SIM_KEY" -H 'Content-Type: application/json' \
        -d "$2" "$SIM/api/v0/asks/$1/" | jq -r '.new_contract // empty'
}
OTHERS=()
OTHERS+=("$(other_create "${OFFERS[5]}" '{"image": "other/tool:1", "disk": 10}')")
OTHERS+=("$(other_create "${OFFERS[6]}" '{"image": "other/tool:1", "disk": 10, "label": null}')")
OTHERS+=("$(other_create "${OFFERS[7]}" '{"image": "other/tool:1", "disk": 10, "label": ""}')")
check "another tool's 3 unlabelled instances exist" test -n "${OTHERS[0]}" -a -n "${OTHERS[1]}" -a -n "${OTHERS[2]}"
sim GET /_admin/state
check "they carry no label" jq -e '[.instances[] | select((.label // "") == "")] | length == 3' <<<"$SBODY"

DATA=$TDIR/data
DB=$DATA/gpuscribe.db
ENVF=$TDIR/app.env
: >"$ENVF"
LOGS=()
q() { sqlite3 "$DB" "$1"; }
# the server dies at the fault point: its exit status, and the request got no answer
boot_dies() { # FAULT OFFER KEY
    start_server GS_FAULT="$1" VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" -- --env-file "$ENVF" \
        || { fail "server starts with GS_FAULT=$1"; return 1; }
    LOGS+=("$SERVER_LOG")
    jreq POST /api/vast/boot "{\"offer_id\": $2}" -H "Idempotency-Key: $3"
    local rc
    wait "$SERVER_PID"; rc=$?
    SERVER_PID=""
    check "$1: the controller died at the fault point (exit 70)" test "$rc" = 70
    check "$1: the boot request got no answer" test "$STATUS" = 000
    check "$1: the log names the fault point" grep -q "fault: $1: exiting (GS_FAULT)" "$SERVER_LOG"
}
restart() {
    start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" -- --env-file "$ENVF" \
        || { fail "server restarts"; finish; exit 1; }
    LOGS+=("$SERVER_LOG")
}
others_alive() {
    sim GET /_admin/state
    local id
    for id in "${OTHERS[@]}"; do
        jq -e --argjson id "$id" '[.instances[] | select(.id == $id and ((.destroyed // false) | not))] | length == 1' \
            <<<"$SBODY" >/dev/null || return 1
    done
}
ours_alive() { sim GET /_admin/state; jq '[.instances[] | select(((.destroyed // false) | not) and ((.label // "") | startswith("gpuscribe")))] | length' <<<"$SBODY"; }
labelled() { sim GET /_admin/state; jq --arg l "$1" '[.instances[] | select(.label == $l and ((.destroyed // false) | not))] | length' <<<"$SBODY"; }

# ---- 1: killed after the row was written, before Vast was called
boot_dies boot_after_insert "${OFFERS[0]}" retry-A
ROW_A=$(q "SELECT id FROM instances WHERE idem_key='key:retry-A'")
check "insert: the row was written with its label" test "$(q "SELECT label FROM instances WHERE id=${ROW_A:-0} AND vast_id IS NULL AND state='creating'")" = "gpuscribe-$ROW_A"
check "insert: nothing was rented" test "$(sim_live_instances)" = 3
restart
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[0]}}" -H 'Idempotency-Key: retry-A'
expect "insert: the retry rents" 200 '.success == true and .reused == false and (.label | startswith("gpuscribe-"))'
ID_A=$(jget .instance_id)
LABEL_A=$(jget .label)
check "insert: exactly one instance of ours" test "$(ours_alive)" = 1
check "insert: another tool's instances are untouched" others_alive
check "insert: the killed row failed, its key released" test "$(q "SELECT state || ' ' || (idem_key LIKE 'key:retry-A#%') FROM instances WHERE id=$ROW_A")" = "failed 1"
ROW_A2=$(q "SELECT id FROM instances WHERE vast_id='$ID_A'")
check "insert: the new row has the instance and its label" test "$(q "SELECT label || ' ' || idem_key FROM instances WHERE id=${ROW_A2:-0}")" = "$LABEL_A key:retry-A"
check "insert: the failed row has no ledger" test "$(q "SELECT count(*) FROM ledger WHERE instance_id=$ROW_A")" = 0
check "insert: storage billed from the create" test "$(q "SELECT count(*) FROM ledger WHERE instance_id=${ROW_A2:-0} AND kind='storage' AND end_ts IS NULL")" = 1
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[0]}}" -H 'Idempotency-Key: retry-A'
expect "insert: a second retry answers the same instance" 200 ".instance_id == \"$ID_A\" and .reused == true"
check "insert: still one instance of ours" test "$(ours_alive)" = 1
stop_server || true

# ---- 2: killed after Vast created the instance, before its id was recorded
boot_dies boot_after_create "${OFFERS[1]}" retry-B
ROW_B=$(q "SELECT id FROM instances WHERE idem_key='key:retry-B'")
check "create: Vast rented one instance with the row's label" test "$(labelled "gpuscribe-${ROW_B:-x}")" = 1
check "create: the row does not know its id yet" test "$(q "SELECT count(*) FROM instances WHERE id=${ROW_B:-0} AND vast_id IS NULL")" = 1
sim GET /_admin/state
ID_B=$(jq -r --arg l "gpuscribe-$ROW_B" '.instances[] | select(.label == $l) | .id' <<<"$SBODY")
restart
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[1]}}" -H 'Idempotency-Key: retry-B'
expect "create: the retry adopts the instance rented before the crash" 200 ".instance_id == \"$ID_B\" and .reused == true"
check "create: still exactly one instance with that label" test "$(labelled "gpuscribe-$ROW_B")" = 1
check "create: two instances of ours in all" test "$(ours_alive)" = 2
check "create: another tool's instances are untouched" others_alive
check "create: the row has the instance" test "$(q "SELECT vast_id FROM instances WHERE id=$ROW_B")" = "$ID_B"
check "create: one row for it" test "$(q "SELECT count(*) FROM instances WHERE vast_id='$ID_B'")" = 1
check "create: storage billed" test "$(q "SELECT count(*) FROM ledger WHERE instance_id=$ROW_B AND kind='storage' AND end_ts IS NULL")" = 1
check "create: VAST_INSTANCE_ID names it" grep -qx "VAST_INSTANCE_ID=$ID_B" "$ENVF"

# ---- 3: a row left by the old two-step boot record (killed between the row and its label)
stop_server || true
q "INSERT INTO instances(offer_id, idem_key, state, stage, percent, created_at, updated_at) VALUES(${OFFERS[2]}, 'key:retry-C', 'requested', 'boot requested', 0, strftime('%s','now'), strftime('%s','now'))"
ROW_C=$(q "SELECT id FROM instances WHERE idem_key='key:retry-C'")
restart
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[2]}}" -H 'Idempotency-Key: retry-C'
expect "unlabelled row: the retry rents anew (nothing adopted by an empty label)" 200 ".success == true and .reused == false and .label == \"gpuscribe-$((ROW_C + 1))\""
check "unlabelled row: another tool's instances are untouched" others_alive
check "unlabelled row: three instances of ours" test "$(ours_alive)" = 3
check "unlabelled row: it failed (it never reached Vast)" test "$(q "SELECT state || ' ' || (vast_id IS NULL) FROM instances WHERE id=$ROW_C")" = "failed 1"
check "unlabelled row: logged" grep -q "boot #$ROW_C has no label" "$SERVER_LOG"

# ---- the account after a few reaper passes: nobody destroyed anything, no orphan
sleep 3
check "after: another tool's instances are still there" others_alive
check "after: ours are all alive" test "$(ours_alive)" = 3
check "after: no instance was destroyed as a duplicate" bash -c "! grep -h 'duplicates' ${LOGS[*]}"
check "after: no orphan recorded" test "$(q "SELECT count(*) FROM instances WHERE state='orphan'")" = 0
check "after: every open ledger interval belongs to a live row" test "$(q "SELECT count(*) FROM ledger l JOIN instances i ON i.id=l.instance_id WHERE l.end_ts IS NULL AND i.state IN ('failed','destroyed')")" = 0
stop_server || true

# ---- 4: killed after the row was written, restarted WITHOUT a retry: the startup pass
# looks for the row's label, finds none once the create is certainly over (VAST_TIMEOUT_SECONDS
# past the start) and fails the row with its reason
wait_row() { # SECONDS SQL-CONDITION: the instances table has a row matching it
    local i
    for i in $(seq 1 $(( $1 * 10 ))); do
        [ "$(q "SELECT count(*) FROM instances WHERE $2")" != 0 ] && return 0
        sleep 0.1
    done
    return 1
}
LIVE_BEFORE=$(sim_live_instances)
boot_dies boot_after_insert "${OFFERS[3]}" noretry-E
ROW_E=$(q "SELECT id FROM instances WHERE idem_key='key:noretry-E'")
check "no retry, insert: the row was written with its label" test "$(q "SELECT label FROM instances WHERE id=${ROW_E:-0} AND vast_id IS NULL AND state='creating'")" = "gpuscribe-$ROW_E"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" VAST_TIMEOUT_SECONDS=2 -- --env-file "$ENVF" \
    || { fail "server restarts"; finish; exit 1; }
LOGS+=("$SERVER_LOG")
check "no retry, insert: the startup pass fails the row" wait_row 20 "id=${ROW_E:-0} AND state='failed'"
check "no retry, insert: the row's error gives the reason" test "$(q "SELECT error FROM instances WHERE id=${ROW_E:-0}")" = "the controller stopped during the boot; Vast.ai has no instance labelled gpuscribe-$ROW_E: nothing is rented"
check "no retry, insert: the decision is logged" grep -q "boot #$ROW_E: the controller stopped during the boot; Vast.ai has no instance labelled gpuscribe-$ROW_E: nothing is rented; marking it failed" "$SERVER_LOG"
check "no retry, insert: nothing was rented" test "$(sim_live_instances)" = "$LIVE_BEFORE"
check "no retry, insert: nothing carries its label" test "$(labelled "gpuscribe-$ROW_E")" = 0
check "no retry, insert: another tool's instances are untouched" others_alive
check "no retry, insert: the row has no vast_id and no ledger" test "$(q "SELECT (vast_id IS NULL) || ' ' || (SELECT count(*) FROM ledger WHERE instance_id=$ROW_E) FROM instances WHERE id=$ROW_E")" = "1 0"
stop_server || true

# ---- 5: killed after Vast created the instance, restarted WITHOUT a retry: the startup pass
# adopts it by its label (row gets the vast_id, storage billed from Vast's start date), and
# cost safety can destroy it (a short hard cap: AUTO_DESTROY_AFTER_HOURS counts from the boot)
boot_dies boot_after_create "${OFFERS[4]}" noretry-D
ROW_D=$(q "SELECT id FROM instances WHERE idem_key='key:noretry-D'")
check "no retry, create: Vast rented one instance with the row's label" test "$(labelled "gpuscribe-${ROW_D:-x}")" = 1
sim GET /_admin/state
ID_D=$(jq -r --arg l "gpuscribe-$ROW_D" '.instances[] | select(.label == $l) | .id' <<<"$SBODY")
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" AUTO_DESTROY_AFTER_HOURS=0.01 IDLE_WARN_MINUTES=0.05 \
    -- --env-file "$ENVF" || { fail "server restarts"; finish; exit 1; }
LOGS+=("$SERVER_LOG")
check "no retry, create: the startup pass records the instance on the row" wait_row 20 "id=${ROW_D:-0} AND vast_id='$ID_D'"
check "no retry, create: the adoption is logged" grep -q "boot #$ROW_D: the controller stopped during the boot; Vast.ai has instance $ID_D labelled gpuscribe-$ROW_D: adopting it" "$SERVER_LOG"
check "no retry, create: one row for it" test "$(q "SELECT count(*) FROM instances WHERE vast_id='$ID_D'")" = 1
check "no retry, create: still exactly one instance with that label" test "$(labelled "gpuscribe-$ROW_D")" = 1
check "no retry, create: provisioning goes on (a live state)" wait_row 10 "id=${ROW_D:-0} AND state IN ('loading','ssh_wait','installing','starting_worker','ready','failed')"
check "no retry, create: storage billed" test "$(q "SELECT count(*) FROM ledger WHERE instance_id=${ROW_D:-0} AND kind='storage' AND end_ts IS NULL")" = 1
req GET /api/cost
check "no retry, create: /api/cost bills it" jq -e --arg id "$ID_D" '[.instances[] | select(.id == $id and .cost_usd > 0)] | length == 1' <<<"$BODY"
destroy_pending() { local i; for i in $(seq 1 100); do curl -s "$BASE/api/vast/instances/$1" | jq -e '.destroy_at != null and .destroy_reason_pending == "hard_cap"' >/dev/null && return 0; sleep 0.1; done; return 1; }
check "no retry, create: the instance view shows the hard cap's destroy pending" destroy_pending "$ID_D"
check "no retry, create: the hard cap destroys it" wait_row 60 "id=${ROW_D:-0} AND state='destroyed' AND destroy_reason='hard_cap'"
check "no retry, create: gone from Vast.ai" test "$(labelled "gpuscribe-$ROW_D")" = 0
check "no retry, create: its ledger is closed" test "$(q "SELECT count(*) FROM ledger WHERE instance_id=${ROW_D:-0} AND end_ts IS NULL")" = 0
check "no retry, create: another tool's instances are untouched" others_alive
stop_server || true
check "the key never appears in a log" bash -c "! grep -h -- '$SIM_KEY' ${LOGS[*]}"
finish
