#!/usr/bin/env bash
# `gpuscribe vast boot` keeps the fleet in the store: two boots from the shell with no server
# running are two rows (labels gpuscribe-<row>), the second named by VAST_INSTANCE_ID and the
# first still in the fleet (the output says so); a server started on that DATA_DIR drives both to ready and reports no
# orphan even with DESTROY_ORPHANS=1; a third boot from the shell while it runs is set up by it
# too. `vast list` shows what is billed now, the cost so far, Vast.ai's status message and a
# total; --json numbers are rounded and its errors are JSON; unreachable VAST_URLs are named with
# where they came from; destroy asks on a terminal and needs -y without one. Then every instance
# is destroyed and nothing is left on vastsim.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 45 || { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "CLI boots provisioned by the server (real instances)"
export DATA=$TDIR/data
ENVF=$TDIR/app.env; : >"$ENVF"
read -r O1 O2 O3 < <(sim_offers 6 | head -n3 | tr '\n' ' ')
O=$TDIR/cli.out
cli() { VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" "$GS_BIN" vast "$@" --data-dir "$DATA" --env-file "$ENVF" >"$O" 2>&1; RC=$?; }
rows() {
    python3 - "$DATA" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1] + "/gpuscribe.db")
for r in db.execute("SELECT vast_id, label, state FROM instances ORDER BY id"):
    print(*r)
PY
}
cli boot "$O1"
V1=$(sed -n 's/^Instance \([0-9]*\) created.*/\1/p' "$O")
check "first boot from the shell (no server): VAST_INSTANCE_ID=$V1" bash -c "[ $RC = 0 ] && [ -n '$V1' ] && grep -qx 'VAST_INSTANCE_ID=$V1' '$ENVF'"
cli boot "$O2"
V2=$(sed -n 's/^Instance \([0-9]*\) created.*/\1/p' "$O")
check "second boot: added beside the first, says so ($(sed -n 3p "$O" | cut -c1-90))" bash -c "[ $RC = 0 ] && [ -n '$V2' ] && grep -q 'Added to the fleet beside instance $V1' '$O'"
check "VAST_INSTANCE_ID names the newest" grep -qx "VAST_INSTANCE_ID=$V2" "$ENVF"
rows >"$TDIR/rows"
check "both are rows of the store, labelled by their row ($(tr '\n' ';' <"$TDIR/rows"))" \
    bash -c "grep -qE '^$V1 gpuscribe-[0-9]+ ' '$TDIR/rows' && grep -qE '^$V2 gpuscribe-[0-9]+ ' '$TDIR/rows'"
cli boot "$O2"
check "the same offer booted again a moment later: the same instance, nothing rented twice" \
    bash -c "[ $RC = 0 ] && grep -q 'Instance $V2 was booted from offer $O2 a moment ago' '$O' && [ $(sim_live_instances) = 2 ]"
cli boot "$O3" --json
V3=$(jq -r '.instance_id // empty' "$O" 2>/dev/null)
check "boot --json" bash -c "[ $RC = 0 ] && jq -e '.success == true and (.label | test(\"^gpuscribe-[0-9]+$\")) and .vast_instance == .instance_id' '$O'"
cli list
check "list: what is billed now, cost so far from the store, a total ($(tail -n1 "$O" | cut -c1-90))" \
    bash -c "[ $RC = 0 ] && head -1 '$O' | grep -q 'Billed now.*Cost' && grep -qE '^$V3 .* (GPU|disk) \\\$[0-9.]+/h +\\\$[0-9]+\.[0-9]{4} ' '$O' && grep -qE '^Total: 3 instances, billed now \\\$[0-9.]+/h; spent so far \\\$[0-9.]+$' '$O'"
fault "{\"type\": \"exit_instance\", \"instance_id\": $V3, \"status_msg\": \"OCI runtime create failed: test fault\"}"
for _ in $(seq 1 100); do [ "$(sim_inst "$V3" actual_status)" = exited ] && break; sleep 0.05; done
cli list
check "list: an instance that failed shows Vast.ai's status message, and storage only is billed" \
    bash -c "grep -A1 -E '^$V3 +exited .* disk \\\$' '$O' | grep -q 'OCI runtime create failed: test fault'"
cli list --json
check "list --json: billed_now, cost_usd, a total, numbers rounded ($(jq -c '.total' "$O" 2>/dev/null))" \
    bash -c "[ $RC = 0 ] && jq -e '(.instances | map(select(.id == $V3))[0] | .billed_now == \"storage\" and .status_msg == \"OCI runtime create failed: test fault\" and (.cost_usd | type) == \"number\") and .total.instances == 3 and .total.instances_with_cost == 3' '$O' && ! grep -qE '[0-9]\.[0-9]{11,}' '$O'"
VAST_URL=http://127.0.0.1:9 VAST_API_KEY="$SIM_KEY" "$GS_BIN" vast list --json --data-dir "$DATA" --env-file "$ENVF" >"$O" 2>&1; RC=$?
check "list --json, Vast.ai unreachable: a JSON error naming VAST_URL and where it came from" \
    bash -c "[ $RC = 1 ] && jq -e '.success == false and .kind == \"network\" and (.error | contains(\"VAST_URL=http://127.0.0.1:9, from the environment\"))' '$O'"
echo "VAST_URL=http://127.0.0.1:9" >>"$ENVF"
VAST_API_KEY="$SIM_KEY" "$GS_BIN" vast list --data-dir "$DATA" --env-file "$ENVF" >"$O" 2>&1; RC=$?
sed -i '/^VAST_URL=/d' "$ENVF"
check "list, unreachable VAST_URL from the .env file: says so ($(cut -c1-100 "$O"))" \
    bash -c "[ $RC = 1 ] && grep -q 'VAST_URL=http://127.0.0.1:9, from $ENVF' '$O'"
cli boot 12x --json
check "boot --json with a bad id: the error is JSON" bash -c "[ $RC = 2 ] && jq -e '.success == false and .kind == \"bad_request\" and (.error | test(\"positive integer\"))' '$O'"
cli destroy "$V3" </dev/null
check "destroy without -y and without a terminal: refused, nothing destroyed" \
    bash -c "[ $RC = 2 ] && grep -q 'add -y' '$O' && [ $(sim_live_instances) = 3 ]"
printf 'n\n' | VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" script -qec "'$GS_BIN' vast destroy $V3 --data-dir '$DATA' --env-file '$ENVF'" /dev/null >"$O" 2>&1
check "destroy on a terminal asks; 'n' keeps it ($(tr -d '\r' <"$O" | head -c 120))" \
    bash -c "grep -q 'Destroy instance $V3 (' '$O' && grep -q 'Not destroyed' '$O' && [ $(sim_live_instances) = 3 ]"
printf 'y\n' | VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" script -qec "'$GS_BIN' vast destroy $V3 --data-dir '$DATA' --env-file '$ENVF'" /dev/null >"$O" 2>&1
rows >"$TDIR/rows"
check "destroy on a terminal, 'y': gone on vastsim and in the store" \
    bash -c "grep -q 'Instance $V3 destroyed' '$O' && [ $(sim_live_instances) = 2 ] && grep -q '^$V3 .* destroyed$' '$TDIR/rows'"
cli destroy "$V3" -y --json
check "destroy -y --json of an unknown id: exit 1, a JSON error" bash -c "[ $RC = 1 ] && jq -e '.success == false and .kind == \"not_found\"' '$O'"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx DESTROY_ORPHANS=1 -- --env-file "$ENVF" ||
    { fail "server starts"; sim_stop; finish; exit 1; }
ok=1
for v in "$V1" "$V2"; do wait_instance "$v" ready 120 || ok=0; done
check "a server started later drives both to ready" test $ok = 1
req GET /api/cost
check "no orphan reported for either" bash -c "! grep -qi 'orphan' '$SERVER_LOG' && jq -e '[.instances[] | select(.orphan)] | length == 0' <<<'$BODY'"
read -r O4 < <(sim_offers 10 | tail -n1)
cli boot "$O4"
V4=$(sed -n 's/^Instance \([0-9]*\) created.*/\1/p' "$O")
check "a boot from the shell while the server runs" bash -c "[ $RC = 0 ] && [ -n '$V4' ]"
if wait_instance "$V4" ready 120; then pass "the running server sets it up"; else fail "the running server sets it up" "$(jget .state) $(jget .error)"; fi
sleep 3
check "still no orphan, all three live" bash -c "! grep -qi 'orphan' '$SERVER_LOG' && [ $(sim_live_instances) = 3 ]"
for v in "$V1" "$V2" "$V4"; do jreq POST "/api/vast/destroy/$v"; done
check "nothing left on vastsim" test "$(sim_live_instances)" = 0
stop_server
sim_stop
finish
