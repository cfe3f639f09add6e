#!/usr/bin/env bash
# vastsim end to end: the Vast.ai API surface (docs/vast-api.md) with curl + jq, real SSH into
# instances (OpenSSH client, ed25519 key attached through the API), isolation (private
# /workspace, private loopback, API reachable from inside), faults, destroy, ledger, shutdown.
# Binary: $GS_SIM (default build/vastsim). Tests that need namespaces skip when vastsim reports
# "isolation": false (not root).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
SUITE=vastsim
case "$GS_SIM" in /*) ;; *) GS_SIM=$(cd "$HERE/../.." && pwd)/$GS_SIM ;; esac
for tool in curl jq ssh ssh-keygen; do
    command -v $tool >/dev/null || { fail "prerequisite $tool" "not installed"; finish; exit 1; }
done

KEY=acct-key-$RANDOM$RANDOM
SIM_KEY=$KEY


# start_sim [flags]: starts vastsim (lib.sh's start_vastsim), sets SIM_PID, SIM_PORT, SIM_LOG,
# SIM_STATE and BASE
start_sim() {
    SIM_STATE=$TDIR/state
    start_vastsim --port-file "$TDIR/port" --state-dir "$SIM_STATE" --api-key second-key-$RANDOM \
        --loading-delay 0.3 --running-delay 0.3 --seed 7 --log-level debug "$@"
    SIM_PORT=${SIM##*:}
    BASE=$SIM
}

# api METHOD PATH [curl args]: sets STATUS, BODY, HDRS (account key unless AUTH is set)
api() {
    local method=$1 path=$2; shift 2
    local auth=${AUTH-$KEY}
    local args=(-sS -o "$TDIR/body" -D "$TDIR/hdrs" -w '%{http_code}' -X "$method")
    [ -n "$auth" ] && args+=(-H "Authorization: Bearer $auth")
    STATUS=$(curl "${args[@]}" "$@" "$BASE$path" 2>"$TDIR/curl.err") || true
    BODY=$(cat "$TDIR/body" 2>/dev/null)
    HDRS=$(cat "$TDIR/hdrs" 2>/dev/null)
}
# ok NAME STATUS JQ-CONDITION: checks the last api call
ok() {
    local name=$1 want=$2 cond=${3:-}
    if [ "$STATUS" != "$want" ]; then fail "$name" "status $STATUS, want $want; body: ${BODY:0:300}"; return 1; fi
    if [ -n "$cond" ] && ! jq -e "$cond" >/dev/null 2>&1 <<<"$BODY"; then
        fail "$name" "body fails $cond: ${BODY:0:400}"; return 1
    fi
    pass "$name"
}
j() { jq -r "$1" <<<"$BODY"; }

show() { AUTH=$KEY api GET "/api/v0/instances/$1/"; }
# wait_status ID STATUS [seconds]
wait_status() {
    local id=$1 want=$2 t=${3:-10} i
    for i in $(seq 1 $((t * 10))); do
        show "$id"
        [ "$(j '.instances.actual_status')" = "$want" ] && return 0
        sleep 0.1
    done
    return 1
}
cheapest_offer() {   # cheapest on-demand offer with at least 50 GB of disk
    AUTH= api POST /api/v0/bundles/ -H 'Content-Type: application/json' \
        -d '{"disk_space":{"gte":"50"},"rentable":{"eq":true},"order":[["dph_total","asc"]],"limit":1}'
    j '.offers[0].id'
}
# create ASK [json-extra]: prints instance id, sets CREATED (full body)
create() {
    local ask=$1 extra=${2:-}
    api PUT "/api/v0/asks/$ask/" -d "{\"client_id\":\"me\",\"image\":\"vastai/base:test\",\"disk\":10,\"runtype\":\"ssh_direc ssh_proxy\"$extra}"
    CREATED=$BODY
}

SSH_OPTS=(-o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no
          -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=5)
# on ID CMD: run CMD over ssh in instance ID (port from the API, as a client would)
on() {
    local id=$1; shift
    show "$id"
    local port user
    port=$(j '.instances.ports["22/tcp"][0].HostPort // .instances.ssh_port')
    user=${SSH_USER:-root}
    ssh "${SSH_OPTS[@]}" -i "$TDIR/id_ed25519" -p "$port" "$user@127.0.0.1" "$@"
}

# ------------------------------------------------------------------ startup / CLI
if "$GS_SIM" --host 0.0.0.0 --port 0 >/dev/null 2>&1; then
    fail "refuses a non-loopback bind address"
else
    pass "refuses a non-loopback bind address"
fi

start_sim
if [ -z "$SIM_PORT" ]; then
    fail "starts and prints its URL" "$(cat "$TDIR/sim.out" "$SIM_LOG" | head -20)"
    finish; exit 1
fi
pass "starts and prints 'vastsim listening on http://127.0.0.1:PORT'"
check "port file holds the port" test "$(cat "$TDIR/port")" = "$SIM_PORT"

AUTH= api GET /_admin/state
ok "admin state" 200 '.port > 0 and (.isolation|type) == "boolean"'
ISO=$(j .isolation)
[ "$ISO" = true ] || skip "isolation tests" "vastsim reports isolation false: $(j .isolation_reason)"

# ------------------------------------------------------------------ auth
AUTH= api GET /api/v0/users/current/
ok "no key -> 401 auth_error" 401 '. == {"success":false,"error":"auth_error","msg":"Invalid user key"}'
AUTH=wrong-key api GET /api/v0/users/current/
ok "bad key -> 401 auth_error" 401 '.error == "auth_error" and .msg == "Invalid user key"'
AUTH= api GET "/api/v0/users/current/?api_key=$KEY"
ok "api_key query parameter accepted" 200 '.balance > 0'
AUTH= api GET "/api/v0/users/current/?api_key=wrong" -H "Authorization: Bearer $KEY"
ok "Authorization header wins over api_key" 200
AUTH=wrong api GET "/api/v0/users/current/?api_key=$KEY"
ok "bad header with good api_key -> 401" 401 '.error == "auth_error"'
api GET /api/v0/users/current/
ok "users/current with balance" 200 '(.balance|type) == "number" and .credit == .balance'
check "JSON content type exactly application/json" grep -qi '^content-type: application/json.$' <<<"$HDRS"
api GET /api/v0/instances/
ok "v0 instance list answers 410" 410 '.success == false and .error == "deprecated_endpoint" and .msg == "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead."'

# ------------------------------------------------------------------ search
AUTH= api POST /api/v0/bundles/ -d '{"gpu_ram":{"gte":"24000"},"num_gpus":{"in":["1","2"]},"reliability2":{"gt":"0.9"},"verified":{"eq":true},"rentable":{"eq":true},"rented":{"eq":false},"order":[["dph_total","asc"]],"type":"on-demand","limit":10,"allocated_storage":20}'
ok "search without auth, numeric strings" 200 '(.offers|length) > 0 and (.offers|length) <= 10'
check "search filters hold" jq -e 'all(.offers[]; .gpu_ram >= 24000 and (.num_gpus == 1 or .num_gpus == 2) and .reliability2 > 0.9 and .verification == "verified")' <<<"$BODY"
check "search order dph_total asc" jq -e '[.offers[].dph_total] == ([.offers[].dph_total]|sort)' <<<"$BODY"
check "gpu_ram in MB, offer fields present" jq -e 'all(.offers[]; (.gpu_ram|type)=="number" and .gpu_ram > 1000 and (.gpu_name|type)=="string" and (.cuda_max_good|type)=="number" and (.geolocation|test(", [A-Z][A-Z]$")) and (.inet_down|type)=="number" and (.disk_space|type)=="number")' <<<"$BODY"
check "dph_total = dph_base + storage_cost*allocated/720" jq -e 'all(.offers[]; ((.dph_total - (.dph_base + .storage_cost*20/720))|fabs) < 1e-6 and ((.storage_total_cost - .storage_cost*20/720)|fabs) < 1e-6)' <<<"$BODY"
AUTH= api POST /api/v0/bundles -d '{"num_gpus":{"gte":2,"lte":4},"gpu_name":{"neq":"RTX 3090"},"geolocation":{"notin":["Tokyo, JP"]},"order":[["num_gpus","desc"],["dph_total","asc"]],"limit":50}'
ok "search without trailing slash, combined operators" 200 'all(.offers[]; .num_gpus >= 2 and .num_gpus <= 4 and .gpu_name != "RTX 3090" and .geolocation != "Tokyo, JP")'
check "multi-key order" jq -e '[.offers[].num_gpus] == ([.offers[].num_gpus]|sort|reverse)' <<<"$BODY"
AUTH= api POST /api/v0/bundles/ -d '{"type":"bid","order":[["dph_total","asc"]],"limit":5}'
ok "bid search prices min_bid" 200 'all(.offers[]; .is_bid == true and ((.dph_total - (.min_bid + .storage_cost*5/720))|fabs) < 1e-6)'
AUTH= api POST /api/v0/bundles/ -d '{"num_gpus":{"approx":1}}'
ok "unknown operator -> 400" 400 '.success == false'
AUTH= api POST /api/v0/bundles/ -d '{"no_such_field":{"eq":1}}'
ok "unknown field -> 400" 400 '.success == false and (.msg|test("no_such_field"))'
AUTH= api POST /api/v0/bundles/ -d '{"limit":3}'
ok "default order score desc, limit" 200 '(.offers|length) == 3 and ([.offers[].score] == ([.offers[].score]|sort|reverse))'

# ------------------------------------------------------------------ keys
ssh-keygen -q -t ed25519 -N '' -C vastsim-test -f "$TDIR/id_ed25519"
ssh-keygen -q -t ed25519 -N '' -C other -f "$TDIR/other_ed25519"
PUB=$(cat "$TDIR/id_ed25519.pub")
OTHER=$(cat "$TDIR/other_ed25519.pub")
api POST /api/v0/ssh/ -d "$(jq -n --arg k "$OTHER" '{ssh_key: $k}')"
ok "account ssh key added" 200 '.success == true and (.key.id|type)=="number" and .key.public_key != null'
OTHER_ID=$(j .key.id)
api GET /api/v0/ssh/
ok "account ssh keys listed as array with public_key" 200 "type == \"array\" and any(.[]; .id == $OTHER_ID and (.public_key|startswith(\"ssh-ed25519\")))"
api POST /api/v0/ssh/ -d '{"ssh_key":""}'
ok "empty ssh key -> 400 no_ssh_key" 400 '.error == "no_ssh_key"'
api POST /api/v0/ssh/ -d '{"ssh_key":"-----BEGIN OPENSSH PRIVATE KEY-----"}'
ok "private key refused" 400 '.success == false'

# ------------------------------------------------------------------ create
ASK=$(cheapest_offer)
create "$ASK" ',"env":"-e HF_TOKEN=x"'
ok "string env -> 400 env must be a dict" 400 '.success == false and (.msg|test("env must be a dict"))'
AUTH= api POST /_admin/faults -d '{"type":"slow_boot","loading_delay":1.5,"count":1}'   # margin for the next check
create "$ASK" ',"label":"vs-a","env":{"HF_TOKEN":"hf secret \"quoted\"","MODEL":"tiny","-p 8000:8000":"1"},"onstart":"echo onstart-ran; touch /workspace/onstart-ok"'
ok "create returns new_contract and instance_api_key" 200 '.success == true and (.new_contract|type)=="number" and (.instance_api_key|length) >= 32'
A=$(j .new_contract)
A_KEY=$(j .instance_api_key)
show "$A"
ok "fresh instance: actual_status null, intended running" 200 ".instances.id == $A and .instances.actual_status == null and .instances.intended_status == \"running\" and .instances.label == \"vs-a\""
AUTH= api POST /api/v0/bundles/ -d "{\"id\":{\"eq\":$ASK}}"
ok "rented offer vanishes from search" 200 '(.offers|length) == 0'
create "$ASK"
ok "rent a taken offer -> 404 no_such_ask" 404 ".success == false and (.msg|test(\"no_such_ask\")) and .ask_id == $ASK"
create "$ASK" ',"cancel_unavail":true'
ok "taken offer with cancel_unavail -> 410 no_such_ask" 410 '.error == "no_such_ask"'
create "$(cheapest_offer)" ',"runtype":"bogus_mode"'
ok "unknown runtype -> 400" 400 '.error == "invalid_args"'

if wait_status "$A" running 10; then pass "instance reaches running"; else fail "instance reaches running" "last: ${BODY:0:300}"; fi
show "$A"
ok "running instance shape" 200 '.instances.actual_status == "running" and .instances.cur_state == "running" and .instances.ssh_host == "127.0.0.1" and (.instances.ssh_port|type)=="number" and .instances.ports["22/tcp"][0].HostPort == (.instances.ssh_port|tostring) and (.instances.status_msg|startswith("success, running vastai/base:test")) and .instances.public_ipaddr == "127.0.0.1" and (.instances.start_date|type)=="number" and .instances.dph_total > .instances.dph_base and (.instances.extra_env|length) == 3 and .instances.image_runtype == "ssh_direc ssh_proxy"'
check "dph_total = dph_base + storage (10 GB)" jq -e '((.instances.dph_total - (.instances.dph_base + .instances.storage_cost*10/720))|fabs) < 1e-6' <<<"$BODY"

# second instance, to compare against
create "$(cheapest_offer)" ',"label":"vs-b"'
B=$(j .new_contract)
create "$(cheapest_offer)"
C=$(j .new_contract)
api PUT "/api/v0/instances/$C/" -d '{"label":"vs-c"}'
ok "label an instance" 200 '.success == true'
show "$C"
check "label visible" jq -e '.instances.label == "vs-c"' <<<"$BODY"

# ------------------------------------------------------------------ v1 list paging
api GET "/api/v1/instances/?limit=2&order_by=%5B%7B%22col%22%3A%22id%22%2C%22dir%22%3A%22asc%22%7D%5D&select_filters=%7B%7D"
ok "v1 list page 1" 200 '.success == true and .instances_found == 2 and .total_instances == 3 and (.next_token|type)=="string" and .label_counts["vs-a"] == 1'
P1=$(j '[.instances[].id]|join(",")')
TOKEN=$(j .next_token)
api GET "/api/v1/instances/?limit=2" --data-urlencode "after_token=$TOKEN" -G
ok "v1 list page 2 ends the list" 200 '.instances_found == 1 and .next_token == null'
P2=$(j '[.instances[].id]|join(",")')
check "pages cover every instance once, in id order" test "$P1,$P2" = "$A,$B,$C"
api GET "/api/v1/instances/?after_token=not-a-token"
ok "bad after_token -> 400 invalid_token" 400 '.error == "invalid_token"'
api GET /api/v1/instances/ -G --data-urlencode 'select_filters={"label":{"in":["vs-a","vs-c"]}}'
ok "v1 select_filters label in" 200 '.total_instances == 2'
api GET /api/v1/instances/ -G --data-urlencode 'select_filters={"dph_total":{"lt":1}}'
ok "v1 filter on a computed column -> 400" 400 '.msg | test("dph_total is not a valid search key")'
api GET /api/v1/instances/ -G --data-urlencode 'order_by=[{"col":"id","dir":"desc"}]' --data-urlencode 'select_cols=["id","label","nope"]'
ok "v1 order desc + select_cols" 200 "[.instances[].id] == [$C,$B,$A] and (.instances[0]|keys) == [\"id\",\"label\",\"nope\"] and .instances[0].nope == null"
api GET /api/v0/instances/999999/
ok "show unknown id -> {instances: null}" 200 '. == {"instances": null}'
api GET /api/v0/instances/abc/
ok "show malformed id -> 400" 400

# ------------------------------------------------------------------ ssh
api POST "/api/v0/instances/$A/ssh/" -d "$(jq -n --arg k "$PUB" '{ssh_key: $k}')"
ok "attach ssh key to instance" 200 '.success == true'
api GET "/api/v0/instances/$A/ssh/"
ok "instance ssh keys: JSON string list" 200 '(.ssh_keys|type)=="string" and ((.ssh_keys|fromjson)|any(.[]; .public_key|startswith("ssh-ed25519")))'
AUTH= api GET /_admin/state
SSH_USER=$(j .ssh_user)
OUT=$(on "$A" 'echo connected; whoami' 2>&1)
if grep -q connected <<<"$OUT"; then pass "ssh into the running instance with the attached key"; else fail "ssh into the running instance" "$OUT"; fi
OUT=$(SSH_USER=$SSH_USER on "$B" true 2>&1) && fail "key attached to A does not open B" || pass "key attached to A does not open B"
OUT=$(on "$A" 'printf "%s|%s|%s|%s\n" "$CONTAINER_API_KEY" "$CONTAINER_ID" "$HF_TOKEN" "$MODEL"' 2>&1)
if [ "$OUT" = "$A_KEY|$A|hf secret \"quoted\"|tiny" ]; then pass "sessions get CONTAINER_API_KEY, CONTAINER_ID and the env dict"
else fail "sessions get CONTAINER_API_KEY, CONTAINER_ID and the env dict" "$OUT"; fi
OUT=$(on "$A" 'cat /workspace/onstart-ok >/dev/null && echo yes' 2>&1)
if [ "$ISO" = true ]; then
    if [ "$OUT" = yes ]; then pass "onstart ran inside the instance"; else fail "onstart ran inside the instance" "$OUT"; fi
fi
if command -v sftp >/dev/null; then
    echo hello-sftp >"$TDIR/up.txt"
    show "$A"
    if sftp "${SSH_OPTS[@]}" -i "$TDIR/id_ed25519" -P "$(j .instances.ssh_port)" root@127.0.0.1 >/dev/null 2>&1 <<EOF
put $TDIR/up.txt /workspace/up.txt
EOF
    then pass "sftp upload works"; else fail "sftp upload works"; fi
fi

if [ "$ISO" = true ]; then
    # /workspace is private
    on "$A" 'echo secret-a > /workspace/only-a.txt' >/dev/null 2>&1
    check "file in A's /workspace is not on the host's /workspace" test ! -e /workspace/only-a.txt
    api POST "/api/v0/instances/$B/ssh/" -d "$(jq -n --arg k "$PUB" '{ssh_key: $k}')"
    wait_status "$B" running 10
    OUT=$(on "$B" 'ls /workspace/only-a.txt 2>&1; echo rc=$?' 2>&1)
    if grep -q 'rc=2' <<<"$OUT" || grep -q 'No such file' <<<"$OUT"; then pass "B cannot see A's /workspace"; else fail "B cannot see A's /workspace" "$OUT"; fi
    check "A's /workspace lives in its state dir" test -f "$SIM_STATE/instances/$A/workspace/only-a.txt"
    # a port listening inside is not visible from the host
    on "$A" 'nohup python3 -m http.server 9999 --bind 127.0.0.1 >/dev/null 2>&1 &' >/dev/null 2>&1
    OUT=""
    for i in 1 2 3 4 5 6 7 8 9 10; do
        OUT=$(on "$A" 'curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:9999/' 2>&1)
        [ "$OUT" = 200 ] && break
        sleep 0.3
    done
    if [ "$OUT" = 200 ]; then pass "a server on 127.0.0.1:9999 inside answers inside"; else fail "server inside answers inside" "$OUT"; fi
    if curl -s -m 2 -o /dev/null http://127.0.0.1:9999/; then fail "127.0.0.1:9999 inside is invisible from the host"
    else pass "127.0.0.1:9999 inside is invisible from the host"; fi
    OUT=$(on "$B" 'curl -s -m 2 -o /dev/null -w "%{http_code}" http://127.0.0.1:9999/' 2>&1)
    if [ "$OUT" != 200 ]; then pass "and from another instance"; else fail "invisible from another instance"; fi
    # ...but an SSH tunnel (ssh -L, as gpuscribe's worker tunnel) reaches it
    show "$A"
    LPORT=$((20000 + RANDOM % 20000))
    ssh "${SSH_OPTS[@]}" -i "$TDIR/id_ed25519" -p "$(j .instances.ssh_port)" -N -o ExitOnForwardFailure=yes \
        -L "127.0.0.1:$LPORT:127.0.0.1:9999" root@127.0.0.1 >/dev/null 2>&1 &
    TUN=$!
    code=000
    for i in $(seq 1 30); do
        code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LPORT/") && [ "$code" = 200 ] && break
        sleep 0.2
    done
    kill $TUN 2>/dev/null; wait $TUN 2>/dev/null
    check "ssh -L tunnel reaches 127.0.0.1:9999 inside" test "$code" = 200
    # execute endpoint sees the instance's /workspace
    api PUT "/api/v0/instances/command/$A/" -d '{"command":"ls /workspace"}'
    ok "execute gives a result_url" 200 '.success == true and .writeable_path == "/workspace"'
    URL=$(j .result_url)
    sleep 0.6
    check "execute output lists the instance's files" bash -c "curl -s '$URL' | grep -q only-a.txt"
    # the API at the same VAST_URL from inside, with the per-instance key
    OUT=$(on "$A" "curl -s -H \"Authorization: Bearer \$CONTAINER_API_KEY\" http://127.0.0.1:$SIM_PORT/api/v0/instances/\$CONTAINER_ID/" 2>&1)
    if jq -e ".instances.id == $A" >/dev/null 2>&1 <<<"$OUT"; then pass "API reachable from inside at the same URL with CONTAINER_API_KEY"
    else fail "API reachable from inside" "${OUT:0:300}"; fi
    OUT=$(on "$A" "curl -s -o /dev/null -w '%{http_code}' -H \"Authorization: Bearer \$CONTAINER_API_KEY\" http://127.0.0.1:$SIM_PORT/api/v1/instances/" 2>&1)
    check "per-instance key cannot list the account (403)" test "$OUT" = 403
    OUT=$(on "$A" "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$SIM_PORT/_admin/state" 2>&1)
    check "admin API is not reachable from an instance" test "$OUT" = 403
    AUTH= api GET /_admin/requests
    check "request log marks requests from inside" jq -e "any(.requests[]; .source == \"instance:$A\" and .auth == \"instance\" and .instance_id == $A)" <<<"$BODY"
fi

AUTH=$A_KEY api GET "/api/v0/instances/$B/"
ok "per-instance key cannot read another instance" 403
AUTH=$A_KEY api GET "/api/v0/instances/$A/"
ok "per-instance key reads its own instance" 200 ".instances.id == $A"

# ------------------------------------------------------------------ faults
AUTH= api POST /_admin/faults -d '{"type":"http_429","count":2,"path":"/api/v0/users"}'
ok "inject a 429 burst" 200 '.success == true'
api GET /api/v0/users/current/
ok "429 #1" 429
check "no Retry-After on 429" bash -c "! grep -qi '^retry-after' <<<\"\$1\"" _ "$HDRS"
api GET /api/v0/users/current/
ok "429 #2" 429
api GET /api/v0/users/current/
ok "burst over" 200
AUTH= api POST /_admin/faults -d '{"type":"http_429","count":1,"path":"/api/v0/asks/","style":"detail"}'
create "$(cheapest_offer)"
ok "429 on create in {detail} style" 429 '.detail | test("API requests too frequent")'
AUTH= api POST /_admin/faults -d '[{"type":"http_503","count":1}]'
api GET "/api/v0/instances/$A/"
check "503 burst" test "$STATUS" = 503
api GET "/api/v0/instances/$A/"
ok "after 503" 200
V=$(cheapest_offer)
AUTH= api POST /_admin/faults -d "{\"type\":\"vanish_offer\",\"offer_id\":$V}"
create "$V"
ok "vanished offer -> 404 no_such_ask" 404 '(.msg|test("no_such_ask"))'

# slow boot and stuck loading for the next creates
AUTH= api POST /_admin/faults -d '{"type":"slow_boot","loading_delay":30,"count":1}'
create "$(cheapest_offer)"
SLOW=$(j .new_contract)
AUTH= api POST /_admin/faults -d '{"type":"stuck_loading","count":1}'
create "$(cheapest_offer)"
STUCK=$(j .new_contract)
sleep 1.5
show "$SLOW"
ok "slow boot: still not loading" 200 '.instances.actual_status == null'
show "$STUCK"
ok "stuck loading stays loading" 200 '.instances.actual_status == "loading"'
api DELETE "/api/v0/instances/$SLOW/" -d '{}'
api DELETE "/api/v0/instances/$STUCK/" -d '{}'

# ssh refused for a while, then accepted again
AUTH= api POST /_admin/faults -d "{\"type\":\"ssh_refuse\",\"instance_id\":$A,\"seconds\":1.5}"
if on "$A" true >/dev/null 2>&1; then fail "ssh refused during the window"; else pass "ssh refused during the window"; fi
sleep 1.6
if on "$A" true >/dev/null 2>&1; then pass "ssh accepted after the window"; else fail "ssh accepted after the window"; fi

# dropped connections
show "$A"
PORT_A=$(j .instances.ssh_port)
ssh "${SSH_OPTS[@]}" -i "$TDIR/id_ed25519" -p "$PORT_A" root@127.0.0.1 'sleep 60' >/dev/null 2>&1 &
SSHBG=$!
sleep 1
AUTH= api POST /_admin/faults -d "{\"type\":\"ssh_drop\",\"instance_id\":$A}"
for i in $(seq 1 30); do kill -0 $SSHBG 2>/dev/null || break; sleep 0.1; done
if kill -0 $SSHBG 2>/dev/null; then fail "ssh_drop ends live sessions"; kill $SSHBG; else pass "ssh_drop ends live sessions"; fi
wait $SSHBG 2>/dev/null

# processes die
on "$A" 'nohup sleep 4243 >/dev/null 2>&1 &' >/dev/null 2>&1
sleep 0.3
check "marker process runs" pgrep -f 'sleep 4243'
AUTH= api POST /_admin/faults -d "{\"type\":\"kill_processes\",\"instance_id\":$A}"
sleep 0.3
check "kill_processes fault kills the instance's processes" bash -c '! pgrep -f "slee[p] 4243"'
show "$A"
ok "and the instance stays running" 200 '.instances.actual_status == "running"'

# exited host
AUTH= api POST /_admin/faults -d "{\"type\":\"exit_instance\",\"instance_id\":$C,\"status_msg\":\"Exited (1) host lost\"}"
show "$C"
ok "exit_instance fault -> exited with status_msg" 200 '.instances.actual_status == "exited" and .instances.status_msg == "Exited (1) host lost" and .instances.intended_status == "running"'
AUTH= api POST /_admin/faults -d "{\"type\":\"set_status\",\"instance_id\":$C,\"actual_status\":\"offline\"}"
show "$C"
ok "set_status fault -> offline" 200 '.instances.actual_status == "offline"'
AUTH= api POST /_admin/faults -d "{\"type\":\"outbid\",\"instance_id\":$C}"
show "$C"
ok "outbid fault: all three states stopped" 200 '.instances.intended_status == "stopped" and .instances.cur_state == "stopped" and .instances.next_state == "stopped"'
AUTH= api POST /_admin/faults -d '{"type":"no_such_fault"}'
ok "unknown fault type -> 400" 400

# ------------------------------------------------------------------ stop / start, ledger
api PUT "/api/v0/instances/$B/" -d '{"state":"stopped"}'
ok "stop" 200 '.success == true'
show "$B"
ok "stopped instance state" 200 '.instances.intended_status == "stopped" and .instances.cur_state == "stopped" and (.instances.actual_status == "exited" or .instances.actual_status == "stopped")'
if on "$B" true >/dev/null 2>&1; then fail "ssh refused while stopped"; else pass "ssh refused while stopped"; fi
AUTH= api GET /_admin/ledger
RUN1=$(jq ".instances[] | select(.id == $B) | .running_seconds" <<<"$BODY")
EX1=$(jq ".instances[] | select(.id == $B) | .exist_seconds" <<<"$BODY")
sleep 1
AUTH= api GET /_admin/ledger
ok "ledger shape" 200 '(.instances|length) >= 3 and (.totals.total_cost|type)=="number" and all(.instances[]; ((.total_cost - (.gpu_cost + .storage_cost))|fabs) < 1e-9)'
RUN2=$(jq ".instances[] | select(.id == $B) | .running_seconds" <<<"$BODY")
EX2=$(jq ".instances[] | select(.id == $B) | .exist_seconds" <<<"$BODY")
check "stopped: no GPU time accrues" test "$RUN1" = "$RUN2"
check "stopped: storage still accrues" jq -n -e "$EX2 > $EX1 + 0.5"
check "gpu_cost = gpu_rate x running time" jq -e "all(.instances[]; ((.gpu_cost - .gpu_rate*.running_seconds/3600)|fabs) < 1e-9)" <<<"$BODY"
check "running instance has accrued GPU time" jq -e ".instances[] | select(.id == $A) | .running_seconds > 1 and .gpu_cost > 0" <<<"$BODY"
api PUT "/api/v0/instances/$B/" -d '{"state":"running"}'
ok "start" 200
if wait_status "$B" running 10; then pass "restarted instance runs again"; else fail "restarted instance runs again" "${BODY:0:200}"; fi
AUTH=$A_KEY api PUT "/api/v0/instances/$A/" -d '{"state":"stopped"}'
ok "per-instance key can stop its own instance" 200
api PUT "/api/v0/instances/$A/" -d '{"state":"running"}'
wait_status "$A" running 10
AUTH= api POST /_admin/faults -d "{\"type\":\"slow_boot\",\"instance_id\":$A,\"loading_delay\":1.5}"
api PUT "/api/v0/instances/reboot/$A/" -d '{}'
ok "reboot" 200 '.success == true'
show "$A"
check "rebooting, not running" jq -e '.instances.actual_status != "running"' <<<"$BODY"
if wait_status "$A" running 10; then pass "rebooted instance runs again"; else fail "rebooted instance runs again"; fi

# ------------------------------------------------------------------ destroy
on "$A" 'nohup sleep 4244 >/dev/null 2>&1 & (nohup sh -c "sleep 4245" >/dev/null 2>&1 &)' >/dev/null 2>&1
sleep 0.3
check "processes started over ssh run" pgrep -f 'sleep 424[45]'
api DELETE "/api/v0/instances/$A/" -d '{}'
ok "destroy" 200 '.success == true'
sleep 0.2
check "destroy kills every process of the instance" bash -c '! pgrep -f "slee[p] 424[45]"'
check "destroy removes the instance's files" test ! -e "$SIM_STATE/instances/$A"
show "$A"
ok "destroyed instance shows as null" 200 '.instances == null'
api DELETE "/api/v0/instances/$A/" -d '{}'
ok "destroy again -> 404 no_such_instance" 404 '.error == "no_such_instance"'
AUTH=$A_KEY api GET "/api/v0/instances/$A/"
ok "destroyed instance's key is no longer valid" 401 '.error == "auth_error"'
AUTH= api GET /_admin/ledger
ok "destroyed instance stays in the ledger" 200 ".instances[] | select(.id == $A) | .destroyed == true"
AUTH= api GET /api/v0/instances/request_logs/x/
AUTH= api GET /_admin/requests
ok "request log" 200 '(.requests|length) > 20 and all(.requests[]; has("method") and has("path") and has("status") and has("time"))'
if grep -q -- "$KEY" <<<"$BODY"; then fail "request log never shows the key"; else pass "request log never shows the key"; fi
check "api_key query value redacted" jq -e 'any(.requests[]; .query == "api_key=[REDACTED]")' <<<"$BODY"
if grep -q -- "$KEY" "$SIM_LOG"; then fail "log never shows the key"; else pass "log never shows the key"; fi

# logs endpoint
api PUT "/api/v0/instances/request_logs/$B/" -d '{"tail":"100"}'
ok "request_logs gives a result_url" 200 '.success == true and (.result_url|startswith("http://127.0.0.1:"))'
URL=$(j .result_url)
for i in $(seq 1 30); do
    code=$(curl -s -o "$TDIR/log.txt" -w '%{http_code}' "$URL"); [ "$code" = 200 ] && break; sleep 0.3
done
check "result_url served without auth once ready" test "$code" = 200

# an instance destroys itself with its CONTAINER_API_KEY (the worker's dead-man switch)
if [ "$ISO" = true ]; then
    create "$(cheapest_offer)"
    D=$(j .new_contract)
    api POST "/api/v0/instances/$D/ssh/" -d "$(jq -n --arg k "$PUB" '{ssh_key: $k}')"
    wait_status "$D" running 10
    on "$D" "nohup curl -s -X DELETE -H \"Authorization: Bearer \$CONTAINER_API_KEY\" -d '{}' http://127.0.0.1:$SIM_PORT/api/v0/instances/\$CONTAINER_ID/ >/dev/null 2>&1 &" >/dev/null 2>&1
    gone=no
    for i in $(seq 1 50); do show "$D"; [ "$(j .instances)" = null ] && { gone=yes; break; }; sleep 0.1; done
    check "instance destroys itself from inside with CONTAINER_API_KEY" test "$gone" = yes
fi

# ------------------------------------------------------------------ shutdown
on "$B" 'nohup sleep 4246 >/dev/null 2>&1 &' >/dev/null 2>&1
sleep 0.3
check "a process runs in B before shutdown" pgrep -f 'sleep 4246'
kill -TERM "$SIM_PID"
wait "$SIM_PID"; rc=$?
SIM_PID=""
check "SIGTERM: clean exit 0" test "$rc" = 0
check "SIGTERM: no instance process left" bash -c '! pgrep -f "slee[p] 424[0-9]" && ! pgrep -f "http[.]server 9999"'
check "SIGTERM: no sshd -i left" bash -c "! pgrep -f '[s]shd -i -e -f $SIM_STATE'"
check "SIGTERM: instance files removed" test -z "$(ls -A "$SIM_STATE/instances" 2>/dev/null)"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$SIM_LOG"; then
    fail "sanitizer clean" "$(grep -E -A20 'AddressSanitizer|LeakSanitizer|runtime error:' "$SIM_LOG" | head -40)"
else
    pass "sanitizer clean"
fi

# ------------------------------------------------------------------ fallback without namespaces
start_sim --isolation off
AUTH= api GET /_admin/state
ok "--isolation off reports isolation false" 200 '.isolation == false and (.isolation_reason|type)=="string"'
SSH_USER=$(j .ssh_user)
api POST /api/v0/ssh/ -d "$(jq -n --arg k "$PUB" '{ssh_key: $k}')"
create "$(cheapest_offer)" ',"env":{"FOO":"bar"}'
F=$(j .new_contract)
wait_status "$F" running 10
OUT=$(SSH_USER=$SSH_USER on "$F" 'echo "$CONTAINER_ID $FOO"' 2>&1)
if [ "$OUT" = "$F bar" ]; then pass "fallback: ssh with an account key registered before create"; else fail "fallback ssh" "$OUT"; fi
SSH_USER=$SSH_USER on "$F" 'nohup sleep 4247 >/dev/null 2>&1 &' >/dev/null 2>&1
sleep 0.3
api DELETE "/api/v0/instances/$F/" -d '{}'
sleep 0.2
check "fallback: destroy kills the instance's processes" bash -c '! pgrep -f "slee[p] 4247"'
kill -TERM "$SIM_PID"; wait "$SIM_PID"; rc=$?
SIM_PID=""
check "fallback: clean exit" test "$rc" = 0
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$SIM_LOG"; then
    fail "fallback: sanitizer clean" "$(grep -E -A20 'AddressSanitizer|LeakSanitizer|runtime error:' "$SIM_LOG" | head -40)"
else
    pass "fallback: sanitizer clean"
fi

finish
