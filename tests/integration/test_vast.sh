#!/usr/bin/env bash
# The Vast.ai endpoints and CLI against vastsim: search (filters, order, validation), boot
# (one rental per request, also when repeated or concurrent), vanished offers, 429/503 bursts,
# auth errors, no key, instances, gpu-status turning `vast` and back when the instance
# vanishes, destroy (ledger stops billing, .env cleared), the `gpuscribe vast` CLI, and the
# key never showing in a response or a log.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
for tool in curl jq; do
    command -v $tool >/dev/null || { fail "prerequisite $tool" "not installed"; finish; exit 1; }
done

SIM_KEY=vast-test-key-$RANDOM$RANDOM
KEY=$SIM_KEY
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 11 || { fail "vastsim starts"; finish; exit 1; }
pass "vastsim starts"

puts_to_asks() { sim GET /_admin/requests; jq '[.requests[] | select(.method == "PUT" and (.path | test("^/api/v0/asks/")))] | length' <<<"$SBODY"; }
ALL=$TDIR/all_bodies

ENVF=$TDIR/app.env
: >"$ENVF"
DATA=$TDIR/data
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" -- --env-file "$ENVF" \
    || { fail "server starts"; finish; exit 1; }
LOGS=("$SERVER_LOG")

# ---- search
jreq POST /api/vast/search '{}'
expect "search: default" 200 '(.offers | length) > 0 and (.offers | length) <= 20'
expect "search: cheapest first" 200 '[.offers[].dph_total] as $p | $p == ($p | sort)'
expect "search: offer fields" 200 '.offers[0] | (.id|type) == "number" and (.gpu_name|type) == "string" and (.gpu_ram|type) == "number" and has("dph_total") and has("reliability2") and has("disk_space") and has("inet_down") and has("inet_up") and has("cuda_max_good") and has("geolocation") and has("num_gpus")'
jreq POST /api/vast/search '{"gpu_ram_min": 24, "max_price": 1.5, "min_reliability": 0.9, "limit": 5}'
expect "search: filters applied" 200 '(.offers | length) > 0 and (.offers | length) <= 5 and all(.offers[]; .gpu_ram >= 23 and .dph_total <= 1.5 and .reliability2 >= 0.9)'
jreq POST /api/vast/search '{"num_gpus": 2, "min_inet_down": 100, "min_cuda": 12}'
expect "search: num_gpus, bandwidth, cuda" 200 'all(.offers[]; .num_gpus == 2 and .inet_down >= 100 and .cuda_max_good >= 12)'
jreq POST /api/vast/search '{"max_price": 0.0001}'
expect "search: nothing matches -> empty list" 200 '.offers == []'
jreq POST /api/vast/search '{"gpu_ram_min": "16"}'
expect "search: string number -> 400 naming it" 400 '.error | test("gpu_ram_min")'
jreq POST /api/vast/search '{"max_price": -1}'
expect "search: negative -> 400 naming it" 400 '.error | test("max_price")'
jreq POST /api/vast/search '{"limit": 0}'
expect "search: limit 0 -> 400" 400 '.error | test("limit")'
jreq POST /api/vast/search '{"num_gpus": 1.5}'
expect "search: fractional num_gpus -> 400" 400 '.error | test("num_gpus")'
jreq POST /api/vast/search '{"max_prize": 1}'
expect "search: unknown field -> 400" 400 '.error | test("max_prize")'
jreq POST /api/vast/search '{"gpu_ram_min": 16,'
expect "search: malformed JSON -> 400" 400 '.error'

# ---- boot: exactly one rental
jreq POST /api/vast/search '{"limit": 8}'
mapfile -t OFFERS < <(jget '.offers[].id')
sim DELETE /_admin/requests
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[0]}}"
expect "boot -> created" 200 '.success == true and (.instance_id|test("^[0-9]+$")) and .message == "Instance created. Setting up dependencies in background..." and .reused == false and (.label|startswith("gpuscribe"))'
ID1=$(jget .instance_id)
check "boot: one PUT /api/v0/asks/" test "$(puts_to_asks)" = 1
check "boot: VAST_INSTANCE_ID in .env" grep -qx "VAST_INSTANCE_ID=$ID1" "$ENVF"
sim GET "/_admin/state"
check "boot: instance labelled gpuscribe" jq -e --argjson id "$ID1" '.instances[] | select(.id == $id) | .label | startswith("gpuscribe")' <<<"$SBODY"
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[0]}}"
expect "boot repeated -> same instance" 200 ".instance_id == \"$ID1\" and .reused == true"
check "boot repeated: still one PUT" test "$(puts_to_asks)" = 1

# concurrent identical boots
cpids=()
for n in 1 2 3; do
    curl -s -X POST -H 'Content-Type: application/json' -d "{\"offer_id\": ${OFFERS[1]}}" \
        "$BASE/api/vast/boot" >"$TDIR/conc$n" &
    cpids+=($!)
done
wait "${cpids[@]}"
ids=$(cat "$TDIR"/conc? | jq -r .instance_id | sort -u)
check "3 concurrent boots -> one instance" test "$(wc -l <<<"$ids")" = 1 -a -n "$ids"
check "3 concurrent boots -> 2 PUTs in all" test "$(puts_to_asks)" = 2
ID2=$ids

# Idempotency-Key
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[2]}}" -H 'Idempotency-Key: ui-click-42'
expect "boot with Idempotency-Key" 200 '.success == true'
ID3=$(jget .instance_id)
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[2]}}" -H 'Idempotency-Key: ui-click-42'
expect "same Idempotency-Key -> same instance" 200 ".instance_id == \"$ID3\" and .reused == true"
check "Idempotency-Key: 3 PUTs in all" test "$(puts_to_asks)" = 3
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[3]}}" -H 'Idempotency-Key: ui-click-42'
expect "key reused for another offer -> 409" 409 '.error | test("Idempotency-Key")'

# invalid ids
for bad in '"abc"' '1.5' '-3' '0' 'null' '"123"'; do
    jreq POST /api/vast/boot "{\"offer_id\": $bad}"
    expect "boot offer_id $bad -> 400" 400 '.error | test("offer_id")'
done
jreq POST /api/vast/boot '{}'
expect "boot without offer_id -> 400" 400 '.error | test("offer_id")'

# vanished offer
before=$(sim_live_instances)
fault "{\"type\": \"vanish_offer\", \"offer_id\": ${OFFERS[4]}}"
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[4]}}"
expect "vanished offer -> 409 search again" 409 '(.error | test("[Ss]earch again")) and .success == false'
check "vanished offer: no instance" test "$(sim_live_instances)" = "$before"

# 429 / 503 bursts
fault '{"type": "http_429", "count": 2, "path": "/bundles"}'
jreq POST /api/vast/search '{"limit": 3}'
expect "search through a 429 burst" 200 '(.offers | length) > 0'
fault '{"type": "http_503", "count": 2, "path": "/bundles"}'
jreq POST /api/vast/search '{"limit": 3}'
expect "search through a 503 burst" 200 '(.offers | length) > 0'
p0=$(puts_to_asks)
fault '{"type": "http_429", "count": 2, "path": "/asks/", "method": "PUT"}'
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[5]}}"
expect "boot through a 429 burst" 200 '.success == true'
ID4=$(jget .instance_id)
fault '{"type": "http_503", "count": 1, "path": "/asks/", "method": "PUT"}'
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[6]}}"
expect "boot through a 503 (checked, then retried)" 200 '.success == true'
ID5=$(jget .instance_id)
sim GET /_admin/state
check "503 burst: one instance for that offer" test "$(jq --arg l "$(jq -r --argjson id "$ID5" '.instances[] | select(.id == $id) | .label' <<<"$SBODY")" '[.instances[] | select(.label == $l)] | length' <<<"$SBODY")" = 1

# ---- instances
jreq GET /api/vast/instances
expect "instances: ours, merged with our state" 200 "(.instances | map(select(.id == $ID1))[0] | .ours == true and .current == false and (.state|type) == \"string\" and (.gpu_name|type) == \"string\" and has(\"dph_total\") and has(\"ssh_host\") and has(\"ssh_port\") and has(\"actual_status\") and has(\"created_at\") and has(\"label\"))"
expect "instances: VAST_INSTANCE_ID is the latest boot" 200 ".vast_instance == \"$ID5\" and (.instances | map(select(.current)) | length) == 1"

# ---- gpu-status turns vast once the instance runs
for i in $(seq 1 100); do
    jreq GET /api/gpu-status
    [ "$(jget .type)" = vast ] && break
    sleep 0.1
done
expect "gpu-status: vast when running" 200 ".available == true and .type == \"vast\" and .vast_instance == \"$ID5\" and .message == \"Vast.ai GPU available: Instance $ID5\""

# ---- destroy
jreq POST /api/vast/destroy/abc
expect "destroy non-integer id -> 400" 400 '.error'
jreq POST /api/vast/destroy/999999999
expect "destroy unknown id -> 404" 404 '.error | test("not found")'
jreq POST /api/vast/destroy/$ID1
expect "destroy" 200 ".success == true and .message == \"Instance $ID1 destroyed\""
sim GET /_admin/ledger
check "ledger: destroyed instance stopped billing" jq -e --argjson id "$ID1" '.instances[] | select(.id == $id) | .destroyed == true and .running == false' <<<"$SBODY"
check "destroy of another instance keeps VAST_INSTANCE_ID" grep -qx "VAST_INSTANCE_ID=$ID5" "$ENVF"
jreq POST /api/vast/destroy/$ID5
expect "destroy the current instance" 200 '.success == true'
check "destroy clears VAST_INSTANCE_ID from .env" bash -c "! grep -q VAST_INSTANCE_ID '$ENVF'"
jreq GET /api/gpu-status
expect "gpu-status after destroy" 200 '.type == "none" and .vast_instance == null'
for id in $ID2 $ID3; do jreq POST /api/vast/destroy/$id; done
expect "destroy the rest" 200 '.success == true'

# ---- auto-connect at start-up, and an instance that vanishes
stop_server
printf '# keep me\nVAST_INSTANCE_ID=%s\n' "$ID4" >"$ENVF"
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" -- --env-file "$ENVF"
LOGS+=("$SERVER_LOG")
for i in $(seq 1 100); do
    jreq GET /api/gpu-status
    [ "$(jget .type)" = vast ] && break
    sleep 0.1
done
expect "start-up: VAST_INSTANCE_ID running -> vast" 200 ".type == \"vast\" and .vast_instance == \"$ID4\""
check "start-up: one clear log line" grep -q "Vast.ai GPU available: Instance $ID4" "$SERVER_LOG"
curl -s -X DELETE -H "Authorization: Bearer $KEY" "$SIM/api/v0/instances/$ID4/" >/dev/null
for i in $(seq 1 100); do   # gpu-status asks for a re-check when its view is over 5 s old
    jreq GET /api/gpu-status
    [ "$(jget .type)" = none ] && ! grep -q VAST_INSTANCE_ID "$ENVF" && break
    sleep 0.1
done
jreq GET /api/gpu-status
expect "vanished instance -> gpu-status none" 200 '.type == "none" and .vast_instance == null'
check "vanished instance cleared from .env" bash -c "! grep -q VAST_INSTANCE_ID '$ENVF'"
check ".env keeps its other lines" grep -q '^# keep me' "$ENVF"
check "vanished instance logged" grep -q "$ID4 no longer exists" "$SERVER_LOG"
jreq GET /api/vast/instances
expect "instances: destroyed ones gone" 200 '[.instances[] | select(.actual_status != null)] | length == 0'
stop_server

# ---- a key Vast rejects
: >"$TDIR/wrong.env"; : >"$TDIR/nokey.env"
start_server VAST_URL="$SIM" VAST_API_KEY=wrong-key-0123456789 -- --env-file "$TDIR/wrong.env"
LOGS+=("$SERVER_LOG")
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[7]}}"
expect "wrong key: boot -> 502 explaining" 502 '.error | test("rejected the API key") and test("VAST_API_KEY")'
jreq GET /api/vast/instances
expect "wrong key: instances -> 502" 502 '.error | test("rejected the API key")'
check "wrong key never echoed" bash -c "! grep -q wrong-key-0123456789 '$ALL' '$SERVER_LOG'"
stop_server

# ---- no key at all
start_server VAST_URL="$SIM" -- --env-file "$TDIR/nokey.env"
LOGS+=("$SERVER_LOG")
jreq POST /api/vast/boot "{\"offer_id\": ${OFFERS[7]}}"
expect "no key: boot -> 503 explaining" 503 '(.error | test("VAST_API_KEY")) and .kind == "no_key"'
jreq GET /api/vast/instances
expect "no key: instances -> 503" 503 '.error | test("VAST_API_KEY")'
jreq POST /api/vast/destroy/123
expect "no key: destroy -> 503" 503 '.error | test("VAST_API_KEY")'
jreq POST /api/vast/search '{"limit": 2}'
expect "no key: search still works (Vast allows it)" 200 '(.offers | length) > 0'
jreq GET /openapi.json
expect "openapi documents the vast routes" 200 '.paths["/api/vast/boot"].post.requestBody and .paths["/api/vast/search"].post.responses["200"] and .paths["/api/vast/destroy/{instance_id}"].post and .paths["/api/vast/instances"].get'
stop_server

# ---- CLI (outputs go to files: they contain quotes)
cd "$TDIR"
: >"$TDIR/cli.env"
O=$TDIR/cli.out
export VAST_URL=$SIM
cli() { "$GS_BIN" vast "$@" >"$O" 2>&1; RC=$?; }
has() { grep -q -- "$1" "$O"; }
VAST_API_KEY=$KEY cli search --limit 3 --gpu-ram-min 16
check "cli search: table" bash -c "[ $RC = 0 ] && head -1 '$O' | grep -q 'ID.*GPU.*VRAM' && [ \$(grep -cE '^[0-9]+ ' '$O') -ge 1 ]"
VAST_API_KEY=$KEY "$GS_BIN" vast search --limit 4 --max-price 2 --json >"$O"; RC=$?
check "cli search --json" bash -c "[ $RC = 0 ] && jq -e '(.offers|length) <= 4 and all(.offers[]; .dph_total <= 2)' '$O'"
CO=$(jq -r '.offers[0].id' "$O")
cli search --limit abc
check "cli search: bad number -> exit 2" bash -c "[ $RC = 2 ] && grep -q -- '--limit' '$O'"
VAST_API_KEY=$KEY cli boot "$CO" --env-file "$TDIR/cli.env"
CID=$(sed -n 's/^Instance \([0-9]*\) created.*/\1/p' "$O")
check "cli boot" bash -c "[ $RC = 0 ] && [ -n '$CID' ]"
check "cli boot writes VAST_INSTANCE_ID" grep -qx "VAST_INSTANCE_ID=$CID" "$TDIR/cli.env"
VAST_API_KEY=$KEY cli boot "$CO" --env-file "$TDIR/cli.env"
check "cli boot of a taken offer -> exit 1, search again" bash -c "[ $RC = 1 ] && grep -q 'search' '$O'"
VAST_API_KEY=$KEY cli list --env-file "$TDIR/cli.env"
check "cli list shows it" bash -c "[ $RC = 0 ] && grep -q '^$CID .*gpuscribe-cli.*VAST_INSTANCE_ID' '$O'"
VAST_API_KEY=$KEY "$GS_BIN" vast list --json >"$O"; RC=$?
check "cli list --json" bash -c "[ $RC = 0 ] && jq -e '.instances | map(select(.id == $CID)) | length == 1' '$O'"
cli boot 12abc
check "cli boot bad id -> exit 2" bash -c "[ $RC = 2 ] && grep -q 'positive integer' '$O'"
cli list
check "cli without key -> exit 1 explaining" bash -c "[ $RC = 1 ] && grep -q VAST_API_KEY '$O'"
VAST_API_KEY=bad-cli-key-987654 cli list
check "cli wrong key -> exit 1 explaining" bash -c "[ $RC = 1 ] && grep -q 'rejected the API key' '$O' && ! grep -q bad-cli-key-987654 '$O'"
VAST_API_KEY=$KEY cli destroy "$CID" --env-file "$TDIR/cli.env"
check "cli destroy" bash -c "[ $RC = 0 ] && grep -q 'Instance $CID destroyed' '$O'"
check "cli destroy clears VAST_INSTANCE_ID" bash -c "! grep -q VAST_INSTANCE_ID '$TDIR/cli.env'"
VAST_API_KEY=$KEY cli destroy "$CID" --env-file "$TDIR/cli.env"
check "cli destroy unknown -> exit 1" bash -c "[ $RC = 1 ] && grep -q 'not found' '$O'"
cli frob
check "cli unknown subcommand -> exit 2" bash -c "[ $RC = 2 ] && grep -q 'unknown command' '$O'"
check "cli: the key never printed" bash -c "! grep -qF '$KEY' '$O'"
unset VAST_URL
cd "$ROOT"

# ---- nothing left running, nothing leaked
check "no instance left running" test "$(sim_live_instances)" = 0
sim GET /_admin/ledger
check "ledger: nothing billing" jq -e '[.instances[] | select(.destroyed | not)] | length == 0' <<<"$SBODY"
check "the key never appears in a response" bash -c "! grep -qF '$KEY' '$ALL'"
check "the key never appears in a server log" bash -c "! grep -qF '$KEY' ${LOGS[*]}"
spid=$SIM_PID
sim_stop
check "vastsim stopped, no process left" bash -c "! kill -0 $spid 2>/dev/null && ! pgrep -f 'VASTSIM_TAG=$spid\.' >/dev/null"
finish
