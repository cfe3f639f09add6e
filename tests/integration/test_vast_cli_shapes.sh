#!/usr/bin/env bash
# vastsim driven the way the official vast CLIs drive the real API (vast-ai/vast-cli: the legacy
# vast.py and the vastai package): the same paths (trailing slash or not), the key as a Bearer
# header or as ?api_key= (older vast.py), the JSON bodies they build (parse_env, parse_query,
# create/launch/change-bid blobs), and the responses parsed the way the CLIs parse them (with jq:
# Python's dict.get("ports", {}).get("22/tcp") becomes "has(ports) then .ports else {}").
# Binary: $GS_SIM (default build/vastsim). Needs no isolation (runs with --isolation off).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
SUITE=vast_cli_shapes
case "$GS_SIM" in /*) ;; *) GS_SIM=$(cd "$HERE/../.." && pwd)/$GS_SIM ;; esac
for tool in curl jq; do
    command -v $tool >/dev/null || { fail "prerequisite $tool" "not installed"; finish; exit 1; }
done

KEY=cli-acct-key-$RANDOM$RANDOM
KEY2=cli-second-key-$RANDOM$RANDOM
SIM_KEY=$KEY
start_vastsim --api-key "$KEY2" --loading-delay 0.3 --running-delay 0.3 --seed 7 --log-level debug \
    --isolation off || { fail "vastsim starts"; finish; exit 1; }
BASE=$SIM

# api METHOD PATH [curl args]: sets STATUS, BODY, HDRS; Bearer $KEY unless AUTH is set ('' = none)
api() {
    local method=$1 path=$2; shift 2
    local auth=${AUTH-$KEY}
    local args=(-sS -o "$TDIR/body" -D "$TDIR/hdrs" -w '%{http_code}' -X "$method")
    [ -n "$auth" ] && args+=(-H "Authorization: Bearer $auth")
    STATUS=$(curl "${args[@]}" "$@" "$BASE$path" 2>"$TDIR/curl.err") || true
    BODY=$(cat "$TDIR/body" 2>/dev/null)
    HDRS=$(cat "$TDIR/hdrs" 2>/dev/null)
}
# The CLIs send JSON bodies with requests' json=: Content-Type application/json.
japi() { local m=$1 p=$2 d=$3; shift 3; api "$m" "$p" -H 'Content-Type: application/json' -d "$d" "$@"; }
ok() {
    local name=$1 want=$2 cond=${3:-}
    if [ "$STATUS" != "$want" ]; then fail "$name" "status $STATUS, want $want; body: ${BODY:0:300}"; return 1; fi
    if [ -n "$cond" ] && ! jq -e "$cond" >/dev/null 2>&1 <<<"$BODY"; then
        fail "$name" "body fails $cond: ${BODY:0:400}"; return 1
    fi
    pass "$name"
}
j() { jq -r "$1" <<<"$BODY"; }
show() { api GET "/api/v0/instances/$1/?owner=me"; }
wait_status() {
    local id=$1 want=$2 i
    for i in $(seq 1 100); do
        show "$id"
        [ "$(j '.instances.actual_status')" = "$want" ] && return 0
        sleep 0.1
    done
    return 1
}
# ssh-url as both CLIs compute it from one instance row (misc.py / vast.py _ssh_url): ports
# defaults to {} only when the key is absent; a null there is what crashed them.
SSH_URL='(if has("ports") then .ports else {} end) as $p
    | if ($p|type) != "object" then error("ports is \($p|type), .get() would crash")
      elif $p["22/tcp"] != null then "ssh://root@\(.public_ipaddr):\($p["22/tcp"][0].HostPort|tonumber)"
      else "ssh://root@\(.ssh_host):\(.ssh_port + (if (.image_runtype|test("jupyter")) then 1 else 0 end))" end'
# The v1 listing as _fetch_all_instances_v1 requests it (JSON-encoded, then URL-encoded args).
V1_QUERY='select_filters=%7B%7D&order_by=%5B%7B%22col%22%3A+%22id%22%2C+%22dir%22%3A+%22asc%22%7D%5D&limit=25'

# ------------------------------------------------------------------ start-up calls
# _get_gpu_names(): requests.get(VAST_URL + "/api/v0/gpu_names/unique/", headers={})
AUTH= api GET /api/v0/gpu_names/unique/
ok "gpu_names/unique without a key" 200 \
   '(.gpu_names|type) == "array" and (.gpu_names|length) > 0 and all(.gpu_names[]; type == "string")
    and .gpu_names == (.gpu_names|unique)'
NAMES=$BODY
AUTH= api GET /_admin/offers
check "gpu_names are the catalog's GPU models" \
    jq -e --argjson n "$NAMES" '[.offers[].gpu_name]|unique == $n.gpu_names' <<<"$BODY"
check "the CLI's choices list builds from it" \
    jq -e '[.gpu_names[] | gsub(" "; "_") | gsub("-"; "_")] | length > 0 and all(test("^[A-Za-z0-9_]+$"))' <<<"$NAMES"

# ------------------------------------------------------------------ show user
# show__user: GET /users/current (no trailing slash), then user_blob.pop("api_key") (KeyError if absent)
api GET /api/v0/users/current
ok "users/current returns an api_key" 200 'has("api_key") and (.balance|type) == "number"'
check "api_key is the key the caller used" jq -e --arg k "$KEY" '.api_key == $k' <<<"$BODY"
AUTH=$KEY2 api GET /api/v0/users/current
check "a second account key gets itself back, never the first" \
    jq -e --arg k "$KEY2" --arg o "$KEY" '.api_key == $k and (tostring|contains($o)|not)' <<<"$BODY"
AUTH= api GET "/api/v0/users/current/?api_key=$KEY"
ok "older vast.py (?api_key= on the URL) gets its key" 200 ".api_key == \"$KEY\""
AUTH= api GET /api/v0/users/current
ok "no key: still auth_error, no api_key" 401 '.error == "auth_error" and (has("api_key")|not)'

# ------------------------------------------------------------------ search offers
# search__offers: POST /bundles/ with parse_query's output plus the default filters; the legacy
# CLI refuses any Content-Type other than exactly application/json.
Q='{"verified":{"eq":true},"external":{"eq":false},"rentable":{"eq":true},"rented":{"eq":false},
    "num_gpus":{"eq":"1"},"order":[["score","desc"]],"type":"on-demand","allocated_storage":5.0}'
japi POST /api/v0/bundles/ "$Q"
ok "search with the CLI's default query" 200 '(.offers|length) > 0 and all(.offers[]; .num_gpus == 1 and .verification == "verified")'
check "search Content-Type is exactly application/json" grep -qiE '^content-type: application/json.?$' <<<"$HDRS"

AUTH= api GET /_admin/offers
ALL=$BODY
count_cc() { jq --arg re "$1" '[.offers[] | select(.geolocation|test(", (" + $re + ")$"))] | length' <<<"$ALL"; }
TOTAL=$(jq '.offers|length' <<<"$ALL")
N_DE=$(count_cc DE); N_USCA=$(count_cc 'US|CA')
japi POST /api/v0/bundles/ '{"geolocation":{"eq":"DE"},"limit":10000}'
ok "geolocation eq DE matches the country code" 200 \
   "(.offers|length) == $N_DE and $N_DE > 0 and all(.offers[]; .geolocation|endswith(\", DE\"))"
# "geolocation in [US,CA]" as parse_query sends it
japi POST /api/v0/bundles/ '{"geolocation":{"in":["US","CA"]},"limit":10000}'
ok "geolocation in [US,CA]" 200 "(.offers|length) == $N_USCA and all(.offers[]; .geolocation|test(\", (US|CA)\$\"))"
japi POST /api/v0/bundles/ '{"geolocation":{"notin":["US","CA"]},"limit":10000}'
ok "geolocation notin [US,CA]" 200 "(.offers|length) == $TOTAL - $N_USCA and all(.offers[]; .geolocation|test(\", (US|CA)\$\")|not)"
japi POST /api/v0/bundles/ '{"geolocation":{"neq":"DE"},"limit":10000}'
ok "geolocation neq DE" 200 "(.offers|length) == $TOTAL - $N_DE"
japi POST /api/v0/bundles/ '{"geolocation":{"in":["US","CA"],"neq":"US"},"limit":10000}'
ok "geolocation in + neq combine" 200 "(.offers|length) == $(count_cc CA) and all(.offers[]; .geolocation|endswith(\", CA\"))"
japi POST /api/v0/bundles/ '{"geolocation":{"eq":"ZZ"},"limit":10000}'
ok "geolocation of no offer -> none" 200 '(.offers|length) == 0'

# ------------------------------------------------------------------ create instance
japi POST /api/v0/bundles/ '{"rentable":{"eq":true},"disk_space":{"gte":"50"},"order":[["dph_total","asc"]],"type":"on-demand","limit":3}'
ASK=$(j '.offers[0].id'); ASK_B=$(j '.offers[1].id')
# create__instance's blob, env from parse_env("-e FOO=bar -p 8000:8000 -p 8081:8081/udp -h myhost")
CREATE='{"client_id":"me","image":"vastai/base:test",
  "env":{"FOO":"bar","-p 8000:8000":"1","-p 8081:8081/udp":"1","-h":"myhost"},
  "price":null,"disk":10.0,"label":null,"extra":null,"onstart":null,"image_login":null,
  "python_utf8":false,"lang_utf8":false,"use_jupyter_lab":false,"jupyter_dir":null,"force":false,
  "cancel_unavail":false,"template_hash_id":null,"user":null,"runtype":"ssh_direc ssh_proxy"}'
# this boot's phases take 2 s each: the show below must see it before it runs, under load too
AUTH= api POST /_admin/faults -d '{"type":"slow_boot","loading_delay":2,"running_delay":2,"count":1}'
japi PUT "/api/v0/asks/$ASK/" "$CREATE"
ok "create with the CLI's blob" 200 '.success == true and (.new_contract|type) == "number"'
A=$(j .new_contract)

show "$A"
ok "not running yet: ports is an object, not null" 200 '.instances.actual_status != "running" and (.instances.ports|type) == "object"'
check "ssh-url before running falls back to ssh_host:ssh_port" jq -e -r ".instances | $SSH_URL | startswith(\"ssh://root@127.0.0.1:\")" <<<"$BODY"
api GET "/api/v1/instances/?$V1_QUERY"
ok "v1 list (as ssh-url fetches it): every row's ports is an object" 200 \
   '(.instances|length) >= 1 and all(.instances[]; (.ports|type) == "object")'
if wait_status "$A" running; then pass "instance runs"; else fail "instance runs" "${BODY:0:300}"; fi
ok "running: 22/tcp and the env's -p ports are mapped" 200 \
   '.instances.ports["22/tcp"][0].HostPort == (.instances.ssh_port|tostring)
    and .instances.ports["8000/tcp"] == [{"HostIp":"0.0.0.0","HostPort":"8000"}]
    and .instances.ports["8081/udp"] == [{"HostIp":"0.0.0.0","HostPort":"8081"}]
    and (.instances.ports|keys) == ["22/tcp","8000/tcp","8081/udp"]'
URL=$(jq -r ".instances | $SSH_URL" <<<"$BODY" 2>&1)
check "ssh-url when running is the direct 22/tcp mapping" test "$URL" = "ssh://root@127.0.0.1:$(j .instances.ssh_port)"
# show_instance: row['extra_env'] = {k: v for k, v in row['extra_env']}
check "extra_env pairs build the CLI's dict" \
    jq -e '.instances.extra_env | map({(.[0]): .[1]}) | add | .FOO == "bar" and .["-p 8000:8000"] == "1"' <<<"$BODY"

# ------------------------------------------------------------------ instances/filters
api GET /api/v0/instances/filters/
ok "instances/filters is routed (not an instance id)" 200 '(.filters|type) == "array"'
check "filters list the running instance's combination" \
    jq -e --arg g "$(show "$A"; j .instances.gpu_name)" \
    'any(.filters[]; .actual_status == "running" and .gpu_name == $g and (.verification|type) == "string")' <<<"$BODY"
AUTH= api GET /api/v0/instances/filters/
ok "instances/filters needs a key" 401 '.error == "auth_error"'

# ------------------------------------------------------------------ stop / start lifecycle
japi PUT "/api/v0/instances/$A/" '{"state":"stopped"}'
ok "stop" 200 '.success == true'
show "$A"
STOPPED=$(j .instances.actual_status)
check "stopped: exited or stopped" bash -c "[ '$STOPPED' = exited ] || [ '$STOPPED' = stopped ]"
# a second per phase, so that polling (slow under sanitizers and load) sees each one
AUTH= api POST /_admin/faults -d "{\"type\":\"slow_boot\",\"instance_id\":$A,\"loading_delay\":1,\"running_delay\":1}"
japi PUT "/api/v0/instances/$A/" '{"state":"running"}'
ok "start" 200 '.success == true'
show "$A"
check "just after start: intended running, cur_state still stopped, actual the stop status" \
    jq -e --arg s "$STOPPED" '.instances | .intended_status == "running" and .next_state == "running"
        and .cur_state == "stopped" and .actual_status == $s' <<<"$BODY"
SEEN=("$(j .instances.actual_status)")
for i in $(seq 1 200); do
    show "$A"
    SEEN+=("$(j .instances.actual_status)")
    [ "$(j .instances.actual_status)" = running ] && break
    sleep 0.02
done
SEQ=$(printf '%s\n' "${SEEN[@]}" | uniq | tr '\n' ' ')
check "start goes stop status -> loading -> running ($SEQ)" test "$SEQ" = "$STOPPED loading running "
check "no actual_status outside the API's values" bash -c "! grep -qvE '^(null|created|loading|running|stopped|exited|rebooting)$' <<<'$(printf '%s\n' "${SEEN[@]}")'"

# ------------------------------------------------------------------ change bid
japi PUT "/api/v0/instances/bid_price/$A/" '{"client_id":"me","price":0.5}'
ok "change bid of an on-demand instance -> 400" 400 '.success == false and .error == "invalid_args"'
japi POST /api/v0/bundles/ "{\"id\":{\"eq\":$ASK_B},\"type\":\"bid\",\"allocated_storage\":10.0}"
MIN=$(j '.offers[0].min_bid')
BID=$(jq -n "$MIN * 1.5 | . * 10000 | round / 10000")
# create instance ID --bid_price X: the same blob with "price"
japi PUT "/api/v0/asks/$ASK_B/" "$(jq -c --argjson p "$BID" '.price = $p | .env = {}' <<<"$CREATE")"
ok "create interruptible (--bid_price)" 200 '.success == true'
B=$(j .new_contract)
wait_status "$B" running >/dev/null
NEW=$(jq -n "$MIN * 2 | . * 10000 | round / 10000")
# change__bid: PUT /instances/bid_price/{id}/ {"client_id": "me", "price": args.price}
japi PUT "/api/v0/instances/bid_price/$B/" "{\"client_id\":\"me\",\"price\":$NEW}"
ok "change bid" 200 '.success == true'
show "$B"
ok "new bid prices the instance" 200 "((.instances.dph_total - ($NEW + .instances.storage_total_cost))|fabs) < 1e-9 and .instances.actual_status == \"running\""
AUTH= api GET /_admin/ledger
check "ledger bills GPU at the new bid" jq -e ".instances[] | select(.id == $B) | .gpu_rate == $NEW" <<<"$BODY"
LOW=$(jq -n "$MIN / 2 | . * 10000 | round / 10000")
japi PUT "/api/v0/instances/bid_price/$B/" "{\"client_id\":\"me\",\"price\":$LOW}"
ok "bid below the minimum accepted" 200 '.success == true'
show "$B"
ok "... and the instance is outbid (stopped)" 200 '.instances.intended_status == "stopped" and .instances.cur_state == "stopped" and (.instances.status_msg|startswith("outbid"))'
# change bid ID without --price: "price": null, a winning bid
japi PUT "/api/v0/instances/bid_price/$B/" '{"client_id":"me","price":null}'
ok "price null" 200 '.success == true'
show "$B"
ok "... bids the minimum and resumes the outbid instance" 200 ".instances.intended_status == \"running\" and ((.instances.dph_total - ($MIN + .instances.storage_total_cost))|fabs) < 1e-9"
if wait_status "$B" running; then pass "resumed instance runs"; else fail "resumed instance runs" "${BODY:0:200}"; fi
japi PUT "/api/v0/instances/bid_price/$B/" '{"client_id":"me","price":"lots"}'
ok "non-numeric bid -> 400 invalid_price" 400 '.error == "invalid_price"'
japi PUT "/api/v0/instances/bid_price/999999999/" '{"client_id":"me","price":0.2}'
ok "bid for an unknown instance -> 404 no_such_instance" 404 '.error == "no_such_instance"'

# ------------------------------------------------------------------ launch instance
# launch__instance: parse_query("num_gpus=1 gpu_name=RTX_4090 geolocation in [DE,NL,GB]
# disk_space>=10.0") over the default filters, order score-, on-demand, allocated_storage = disk.
LQ='{"verified":{"eq":true},"external":{"eq":false},"rentable":{"eq":true},"rented":{"eq":false},
     "num_gpus":{"eq":"1"},"gpu_name":{"eq":"GPU"},"geolocation":{"in":["DE","NL","GB","FR","IE","SE","CZ"]},
     "disk_space":{"gte":"10.0"},"order":[["score","desc"]],"type":"on-demand","allocated_storage":10.0}'
GPU=$(jq -r '[.offers[] | select(.num_gpus == 1 and .verification == "verified" and (.geolocation|test(", (DE|NL|GB|FR|IE|SE|CZ)$")))][0].gpu_name' <<<"$ALL")
LQ=$(jq -c --arg g "$GPU" '.gpu_name.eq = $g' <<<"$LQ")
japi POST /api/v0/bundles/ "$LQ"
TOP=$(j '.offers[0].id')
LAUNCH=$(jq -c --argjson q "$LQ" -n '{"image":"vastai/base:test","disk":10.0,"q":$q,"env":{},"label":null,
  "extra":null,"onstart":null,"image_login":null,"python_utf8":false,"lang_utf8":false,
  "use_jupyter_lab":false,"jupyter_dir":null,"cancel_unavail":false,"template_hash_id":null,"runtype":"ssh_proxy"}')
japi PUT /api/v0/launch_instance/ "$LAUNCH"
ok "launch_instance rents the top offer of its query" 200 ".success == true and .ask_id == $TOP and (.new_contract|type) == \"number\""
L=$(j .new_contract)
show "$L"
ok "launched instance matches the query" 200 \
   ".instances.gpu_name == \"$GPU\" and .instances.num_gpus == 1 and (.instances.geolocation|test(\", (DE|NL|GB|FR|IE|SE|CZ)\$\")) and .instances.disk_space == 10 and .instances.image_runtype == \"ssh_proxy\""
japi PUT /api/v0/launch_instance/ "$(jq -c '.q.gpu_name.eq = "No Such GPU"' <<<"$LAUNCH")"
ok "launch with no matching offer -> 404" 404 '.success == false and (.msg|type) == "string" and (.message|type) == "string"'
japi PUT /api/v0/launch_instance/ '{"image":"vastai/base:test"}'
ok "launch without q -> 400" 400 '.success == false'
AUTH= japi PUT /api/v0/launch_instance/ "$LAUNCH"
ok "launch needs a key" 401 '.error == "auth_error"'

# ------------------------------------------------------------------ destroy, logs
for id in "$A" "$B" "$L"; do
    japi DELETE "/api/v0/instances/$id/" '{}'
    [ "$STATUS" = 200 ] || fail "destroy $id" "status $STATUS: ${BODY:0:200}"
done
show "$A"
ok "destroyed: {\"instances\": null}" 200 '.instances == null'

AUTH= api GET /_admin/requests
check "request log never holds a key" bash -c "! grep -qF -e '$KEY' -e '$KEY2' <<<'$BODY'"
check "request log shows the ?api_key= call redacted" jq -e 'any(.requests[]; (.query // "") | contains("api_key=[REDACTED]"))' <<<"$BODY"
sim_stop
check "vastsim's log never holds a key" bash -c "! grep -qF -e '$KEY' -e '$KEY2' '$SIM_LOG' '$TDIR/sim.out'"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$SIM_LOG"; then
    fail "sanitizer clean" "$(grep -E -A20 'AddressSanitizer|LeakSanitizer|runtime error:' "$SIM_LOG" | head -40)"
else
    pass "sanitizer clean"
fi
finish
