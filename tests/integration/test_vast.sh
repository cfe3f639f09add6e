#!/usr/bin/env bash
# The Vast.ai endpoints and CLI against vastsim: search (filters, order, validation), boot
# (one rental per request, also when repeated or concurrent), vanished offers, 429/503 bursts,
# auth errors, no key, instances, gpu-status turning `vast` and back when the instance
# vanishes, destroy (ledger stops billing, .env cleared), the `gpuscribe vast` CLI, and the
# key never showing in a response or a log; a symlinked or character-device env file is
# edited safely (the link stays, the device is never written).
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

# ---- offers that fit the image (the default VAST_IMAGE, whisper.cpp's main-cuda: CUDA >= 13.0,
# compute capability >= 7.5, disk for large-v3); vastsim's hosts run CUDA 12.2 to 13.1 drivers
MAIN_CUDA=ghcr.io/ggml-org/whisper.cpp:main-cuda
CATALOG=$(curl -sS -X POST -H 'Content-Type: application/json' -d '{"limit": 1000, "verified": {"eq": true}, "external": {"eq": false}, "rentable": {"eq": true}, "rented": {"eq": false}, "disk_space": {"gte": 40}, "order": [["dph_total", "asc"]], "allocated_storage": 40}' "$SIM/api/v0/bundles/")
check "image: the catalog has CUDA 12.x and 13.x hosts" jq -e '([.offers[] | select(.cuda_max_good >= 12 and .cuda_max_good < 13)] | length) > 10 and ([.offers[] | select(.cuda_max_good >= 13)] | length) > 10' <<<"$CATALOG"
check "image: the catalog's cheapest host is on CUDA 12.x" jq -e '.offers[0].cuda_max_good < 13' <<<"$CATALOG"
jreq POST /api/vast/search '{"limit": 1000}'
expect "image: default search lists no host below CUDA 13.0 or compute capability 7.5" 200 '(.offers | length) > 10 and all(.offers[]; .cuda_max_good >= 13 and .compute_cap >= 750 and .disk_space >= 10)'
expect "image: search says what the image requires" 200 ".requirements == {\"image\": \"$MAIN_CUDA\", \"known\": true, \"min_cuda\": 13.0, \"min_compute_cap\": 750, \"min_disk_gb\": 10.0, \"model\": \"large-v3\", \"model_gb\": 3.1, \"image_gb\": 4.0, \"cuda_source\": \"table\"} and (has(\"excluded\") | not)"
FIT_N=$(jget '.offers | length')
check "image: every fitting catalog host is listed, no other" test "$FIT_N" = "$(jq '[.offers[] | select(.cuda_max_good >= 13 and .compute_cap >= 750)] | length' <<<"$CATALOG")"
CHEAPEST=$(jget '.offers[0].dph_total')
check "image: cheaper CUDA 12.x hosts exist but are not listed" jq -e --argjson p "$CHEAPEST" '[.offers[] | select(.cuda_max_good < 13 and .dph_total < $p)] | length > 0' <<<"$CATALOG"
jreq POST /api/vast/search '{"min_cuda": 12, "min_compute_cap": 500, "min_disk": 1, "limit": 1000}'
expect "image: looser user filters cannot loosen it" 200 "(.offers | length) == $FIT_N and all(.offers[]; .cuda_max_good >= 13 and .compute_cap >= 750)"
jreq POST /api/vast/search '{"min_cuda": 13.1, "min_compute_cap": 860, "limit": 1000}'
expect "image: stricter user filters tighten it" 200 '(.offers | length) > 0 and all(.offers[]; .cuda_max_good >= 13.1 and .compute_cap >= 860)'
jreq POST /api/vast/search '{"limit": 20, "explain": true}'
expect "image: explain lists excluded offers" 200 '(.excluded | length) > 0 and (.offers | length) == 20'
expect "image: excluded offers are the ones that do not fit" 200 '([.offers[].id] - [.excluded[].id]) == [.offers[].id] and all(.excluded[]; .cuda_max_good < 13 or .compute_cap < 750)'
expect "image: each exclusion says why" 200 "all(.excluded[]; . as \$o | (.reasons | length) >= 1 and .reason == (.reasons | join(\"; \")) and (\$o.cuda_max_good >= 13 or (.reasons | index(\"CUDA \\(\$o.cuda_max_good) < 13.0 required by $MAIN_CUDA\"))) and (\$o.compute_cap >= 750 or any(.reasons[]; test(\"^compute capability [0-9.]+ < 7.5 required by\"))))"
expect "image: explain covers the cheapest excluded host" 200 "[.excluded[].id] | index($(jq '.offers[0].id' <<<"$CATALOG")) != null"
jreq POST /api/vast/search '{"explain": "yes"}'
expect "image: explain not a boolean -> 400" 400 '.error | test("explain")'
jreq POST /api/vast/search '{"min_compute_cap": -1}'
expect "image: negative min_compute_cap -> 400" 400 '.error | test("min_compute_cap")'
jreq POST /api/vast/search '{"min_compute_cap": 7.5}'
expect "image: fractional min_compute_cap -> 400" 400 '.error | test("min_compute_cap")'

# boot refuses a host that cannot run the image, before any rental
CU12=$(jq '[.offers[] | select(.cuda_max_good < 13 and .compute_cap >= 750)][0]' <<<"$CATALOG")
CU12_ID=$(jq .id <<<"$CU12")
sim DELETE /_admin/requests
before=$(sim_live_instances)
jreq POST /api/vast/boot "{\"offer_id\": $CU12_ID}"
expect "image: boot of a CUDA 12 host -> 409" 409 ".kind == \"image_mismatch\" and .success == false and (.error | contains(\"Offer $CU12_ID\") and contains(\"CUDA $(jq .cuda_max_good <<<"$CU12") < 13.0 required by $MAIN_CUDA\") and contains(\"Nothing was rented\"))"
check "image: refused boot made no PUT /asks/" test "$(puts_to_asks)" = 0
check "image: refused boot rented nothing" test "$(sim_live_instances)" = "$before"
check "image: refused boot is logged" grep -q "boot of offer $CU12_ID refused: .*CUDA" "$SERVER_LOG"
check "image: refused boot left no store row" test "$(sqlite3 "$DATA/gpuscribe.db" "SELECT count(*) FROM instances WHERE offer_id=$CU12_ID")" = 0
OLD_CC=$(jq '[.offers[] | select(.compute_cap > 0 and .compute_cap < 750)][0].id' <<<"$CATALOG")
jreq POST /api/vast/boot "{\"offer_id\": $OLD_CC}"
expect "image: boot of a compute capability 7.0 host -> 409" 409 '.kind == "image_mismatch" and (.error | test("compute capability 7\\.0 < 7\\.5 required by"))'
check "image: still no PUT /asks/" test "$(puts_to_asks)" = 0

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

# ---- the env file edited safely: a symlinked .env stays a symlink (its target is edited,
# keeping its mode), and an env file that is a character device is never written or replaced
mkdir -p "$TDIR/conf"
printf '# shared settings\n' >"$TDIR/conf/real.env"
chmod 0640 "$TDIR/conf/real.env"
ln -s conf/real.env "$TDIR/link.env"
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" -- --env-file "$TDIR/link.env"
LOGS+=("$SERVER_LOG")
jreq POST /api/vast/search '{"limit": 2}'
mapfile -t EOFFERS < <(jget '.offers[].id')
jreq POST /api/vast/boot "{\"offer_id\": ${EOFFERS[0]}}"
expect "symlinked .env: boot" 200 '.success == true'
LID=$(jget .instance_id)
check "symlinked .env: still a symlink to the same target" test -L "$TDIR/link.env" -a "$(readlink "$TDIR/link.env")" = conf/real.env
check "symlinked .env: the target got VAST_INSTANCE_ID" grep -qx "VAST_INSTANCE_ID=$LID" "$TDIR/conf/real.env"
check "symlinked .env: the target keeps its lines and mode 0640" bash -c "grep -q '^# shared settings' '$TDIR/conf/real.env' && [ \$(stat -c %a '$TDIR/conf/real.env') = 640 ]"
jreq POST /api/vast/destroy/$LID
expect "symlinked .env: destroy" 200 '.success == true'
check "symlinked .env: cleared in the target, still a symlink" bash -c "! grep -q VAST_INSTANCE_ID '$TDIR/conf/real.env' && [ -L '$TDIR/link.env' ]"
check "symlinked .env: no temp file left" bash -c "[ -z \"\$(find '$TDIR' -maxdepth 2 -name '*.tmp')\" ]"
stop_server
if mknod "$TDIR/null.env" c 1 3 2>/dev/null; then
    start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" -- --env-file "$TDIR/null.env"
    LOGS+=("$SERVER_LOG")
    jreq POST /api/vast/boot "{\"offer_id\": ${EOFFERS[1]}}"
    expect "char device env file: boot still works" 200 '.success == true'
    NID=$(jget .instance_id)
    check "char device env file: still a character device 1,3" test -c "$TDIR/null.env" -a "$(stat -c %t,%T "$TDIR/null.env")" = 1,3
    check "char device env file: a clear warning" grep -q "env file $TDIR/null.env is a character device: not editing it; VAST_INSTANCE_ID=$NID is not saved" "$SERVER_LOG"
    jreq GET /api/vast/instances
    expect "char device env file: the id is kept in memory" 200 ".vast_instance == \"$NID\""
    jreq POST /api/vast/destroy/$NID
    expect "char device env file: destroy" 200 '.success == true'
    check "char device env file: still a character device after the destroy" test -c "$TDIR/null.env"
    check "char device env file: no temp file left" bash -c "[ -z \"\$(find '$TDIR' -maxdepth 1 -name '.null.env.*')\" ]"
    stop_server
else
    echo "skip: mknod is not permitted here (not root?): the character-device env file case"
    pass "char device env file: skipped without mknod"
fi

# ---- VAST_IMAGE_MIN_CUDA: a custom image that needs CUDA 12.4
CUSTOM=registry.example/me/asr:cu124
: >"$TDIR/custom.env"
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" VAST_IMAGE="$CUSTOM" VAST_IMAGE_MIN_CUDA=12.4 -- \
    --env-file "$TDIR/custom.env"
LOGS+=("$SERVER_LOG")
jreq POST /api/vast/search '{"limit": 1000, "explain": true}'
expect "override: CUDA >= 12.4 from VAST_IMAGE_MIN_CUDA" 200 "(.offers | length) > $FIT_N and all(.offers[]; .cuda_max_good >= 12.4) and any(.offers[]; .cuda_max_good < 13) and .requirements.min_cuda == 12.4 and .requirements.cuda_source == \"VAST_IMAGE_MIN_CUDA\" and .requirements.known == false and .requirements.min_compute_cap == 0"
expect "override: an unknown image has no compute capability requirement" 200 'any(.offers[]; .compute_cap < 750)'
expect "override: explain names VAST_IMAGE_MIN_CUDA" 200 "(.excluded | length) > 0 and all(.excluded[]; .cuda_max_good < 12.4 and (.reason | test(\"^(CUDA 12\\\\.2 < 12\\\\.4|no CUDA driver .*CUDA 12\\\\.4) required by VAST_IMAGE_MIN_CUDA for $CUSTOM$\"))) and any(.excluded[]; .cuda_max_good == 12.2)"
CU128=$(jq --argjson not "$CU12_ID" '[.offers[] | select(.cuda_max_good >= 12.4 and .cuda_max_good < 13 and .id != $not)][0].id' <<<"$CATALOG")
CU122=$(jq '[.offers[] | select(.cuda_max_good < 12.4)][0].id' <<<"$CATALOG")
jreq POST /api/vast/boot "{\"offer_id\": $CU122}"
expect "override: a CUDA 12.2 host is still refused" 409 '.kind == "image_mismatch" and (.error | test("CUDA 12\\.2 < 12\\.4"))'
jreq POST /api/vast/boot "{\"offer_id\": $CU128}"
expect "override: a CUDA 12.x host the image accepts boots" 200 '.success == true'
OVR=$(jget .instance_id)
sim GET "/api/v0/instances/$OVR/" -H "Authorization: Bearer $KEY"
check "override: rented with the custom image" jq -e --arg img "$CUSTOM" '.instances.image_uuid == $img' <<<"$SBODY"
jreq POST /api/vast/destroy/$OVR
expect "override: destroy it" 200 '.success == true'
stop_server
: >"$TDIR/zero.env"
start_server VAST_URL="$SIM" VAST_API_KEY="$KEY" VAST_IMAGE_MIN_CUDA=0 -- --env-file "$TDIR/zero.env"
LOGS+=("$SERVER_LOG")
jreq POST /api/vast/search '{"limit": 1000}'
expect "override 0 on main-cuda: CUDA 12 hosts listed, compute capability still >= 7.5" 200 'any(.offers[]; .cuda_max_good < 13) and all(.offers[]; .compute_cap >= 750) and .requirements.min_cuda == 0 and .requirements.min_compute_cap == 750'
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
check "cli boot of the same offer a moment later: the same instance, nothing rented twice" bash -c "[ $RC = 0 ] && grep -q 'Instance $CID was booted from offer $CO a moment ago' '$O'"
VAST_API_KEY=$KEY cli list --env-file "$TDIR/cli.env"
check "cli list shows it (labelled as the store's row)" bash -c "[ $RC = 0 ] && grep -qE '^$CID .*gpuscribe-[0-9]+.*VAST_INSTANCE_ID' '$O'"
VAST_API_KEY=$KEY "$GS_BIN" vast list --json >"$O"; RC=$?
check "cli list --json" bash -c "[ $RC = 0 ] && jq -e '.instances | map(select(.id == $CID)) | length == 1' '$O'"
VAST_API_KEY=$KEY "$GS_BIN" vast search --limit 1000 --json >"$O"; RC=$?
CLI_FIT=$(jq '.offers | length' "$O")
check "cli search: only hosts that fit the image" bash -c "[ $RC = 0 ] && jq -e '(.offers | length) > 10 and all(.offers[]; .cuda_max_good >= 13 and .compute_cap >= 750) and .requirements.min_cuda == 13 and .requirements.min_compute_cap == 750' '$O'"
VAST_API_KEY=$KEY "$GS_BIN" vast search --limit 1000 --min-cuda 12 --min-compute-cap 500 --min-disk 1 --json >"$O"; RC=$?
check "cli search: looser flags cannot loosen it" bash -c "[ $RC = 0 ] && jq -e '(.offers | length) == $CLI_FIT and all(.offers[]; .cuda_max_good >= 13 and .compute_cap >= 750)' '$O'"
VAST_API_KEY=$KEY cli search --limit 20 --explain
check "cli search --explain: says why" bash -c "[ $RC = 0 ] && grep -q 'Only hosts that can run $MAIN_CUDA: CUDA >= 13.0, compute capability >= 7.5, disk >= 40 GB' '$O' && grep -q '^Excluded' '$O' && grep -qE '^[0-9]+ .* CUDA 12\.[0-9] < 13\.0 required by $MAIN_CUDA' '$O'"
sim DELETE /_admin/requests
VAST_API_KEY=$KEY cli boot "$CU12_ID" --env-file "$TDIR/cli.env"
check "cli boot of a CUDA 12 host -> exit 1, why, no rental" bash -c "[ $RC = 1 ] && grep -q 'CUDA [0-9.]* < 13.0 required by $MAIN_CUDA' '$O' && grep -q 'Nothing was rented' '$O' && [ $(puts_to_asks) = 0 ]"
FITTING=$(jq '[.offers[] | select(.cuda_max_good >= 13 and .compute_cap >= 750)][-1].id' <<<"$CATALOG")
sim DELETE /_admin/requests
VAST_API_KEY=$KEY VAST_DISK_GB=8 cli boot "$FITTING" --env-file "$TDIR/cli.env"
check "cli boot with VAST_DISK_GB below the image's need -> exit 1" bash -c "[ $RC = 1 ] && grep -q 'VAST_DISK_GB=8 is smaller than the 10 GB' '$O' && [ $(puts_to_asks) = 0 ]"
VAST_IMAGE_MIN_CUDA=abc cli search
check "cli: bad VAST_IMAGE_MIN_CUDA -> exit 2 naming it" bash -c "[ $RC = 2 ] && grep -q VAST_IMAGE_MIN_CUDA '$O'"
cli boot 12abc
check "cli boot bad id -> exit 2" bash -c "[ $RC = 2 ] && grep -q 'positive integer' '$O'"
cli list
check "cli without key -> exit 1 explaining" bash -c "[ $RC = 1 ] && grep -q VAST_API_KEY '$O'"
VAST_API_KEY=bad-cli-key-987654 cli list
check "cli wrong key -> exit 1 explaining" bash -c "[ $RC = 1 ] && grep -q 'rejected the API key' '$O' && ! grep -q bad-cli-key-987654 '$O'"
VAST_API_KEY=$KEY cli destroy "$CID" -y --env-file "$TDIR/cli.env"
check "cli destroy" bash -c "[ $RC = 0 ] && grep -q 'Instance $CID destroyed' '$O'"
check "cli destroy clears VAST_INSTANCE_ID" bash -c "! grep -q VAST_INSTANCE_ID '$TDIR/cli.env'"
VAST_API_KEY=$KEY cli destroy "$CID" -y --env-file "$TDIR/cli.env"
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
