#!/usr/bin/env bash
# Bad inputs against every route of /openapi.json: malformed JSON, wrong types, huge and
# negative numbers, missing fields, unknown ids, oversized bodies/headers/URLs, path
# traversal, header injection, slow clients (slowloris), and secrets never echoed. After the
# barrage the server still answers, exits cleanly (sanitizers quiet) and the store holds no
# half-done rows. Vast routes go to vastsim ($GS_SIM).
set -u
. "$(dirname "$0")/lib.sh"
for tool in curl jq python3 sqlite3; do
    command -v $tool >/dev/null || { fail "prerequisite $tool" "not installed"; finish; exit 1; }
done

# made-up secrets: none may ever show in a response or the log
VKEY=vastkey-SECRET-$RANDOM$RANDOM-4f1c2a
HFTOK=hf_SECRET_$RANDOM$RANDOM
OAKEY=sk-SECRET-$RANDOM$RANDOM
ALL=$TDIR/all_responses
: >"$ALL"

SIM_KEY=$VKEY
start_vastsim --seed 3 || { fail "vastsim starts"; finish; exit 1; }

start_server VAST_URL="$SIM" VAST_API_KEY="$VKEY" HF_TOKEN="$HFTOK" OPENAI_API_KEY="$OAKEY" \
    OPENAI_BASE_URL=http://127.0.0.1:9/v1 MAX_UPLOAD_MB=1 LOG_LEVEL=debug || { finish; exit 1; }
DATA=$SERVER_DIR/data

# r METHOD PATH [curl args]: req, keeping every body and the response headers
r() {
    local m=$1 p=$2; shift 2
    STATUS=$(curl -sS --path-as-is -o "$TDIR/body" -D "$TDIR/hdrs" -w '%{http_code}' -X "$m" "$@" \
             "$BASE$p" 2>"$TDIR/curl.err") || true
    BODY=$(cat "$TDIR/body" 2>/dev/null)
    { cat "$TDIR/hdrs"; printf '%s\n' "$BODY"; } >>"$ALL" 2>/dev/null
}
# want NAME STATUSES...: STATUS is one of them and a 4xx/5xx body is a JSON error
want() {
    local name=$1; shift
    local s ok=0
    for s in "$@"; do [ "$STATUS" = "$s" ] && ok=1; done
    if [ $ok -eq 0 ]; then fail "$name" "status $STATUS, want $*; body: ${BODY:0:200}"; return; fi
    if [ "$STATUS" -ge 400 ] && ! jq -e '.error' >/dev/null 2>&1 <<<"$BODY"; then
        fail "$name" "error body is not JSON {error}: ${BODY:0:200}"; return
    fi
    pass "$name"
}
J=(-H 'Content-Type: application/json')

# ---- every route is known (the suite is meant to cover them all)
r GET /openapi.json
ROUTES=$(jq -r '.paths | to_entries[] | .key as $p | .value | keys[] | "\(ascii_upcase) \($p)"' <<<"$BODY" | sort)
check "openapi lists routes" test -n "$ROUTES"
COVERED="GET /healthz|GET /openapi.json|GET /docs|GET /api/gpu-status|GET /api/config|POST /api/jobs|GET /api/jobs|GET /api/jobs/{id}|DELETE /api/jobs/{id}|GET /api/jobs/{id}/transcript|GET /api/jobs/{id}/audio|GET /api/events|POST /v1/audio/transcriptions|GET /v1/models|POST /api/vast/search|POST /api/vast/boot|POST /api/vast/destroy/{instance_id}|GET /api/vast/instances|GET /api/vast/instances/{instance_id}|POST /api/vast/keepalive/{instance_id}|GET /api/cost|GET /api/cost/history|GET /api/jobs/{id}/peaks|GET /metrics"
missing=$(grep -vxE "$(sed 's/[{}.]/\\&/g' <<<"$COVERED")" <<<"$ROUTES" || true)
if [ -z "$missing" ]; then pass "every route has bad-input cases"; else fail "every route has bad-input cases" "new: $missing"; fi

# ---- malformed JSON, wrong types, huge and negative numbers, missing fields
for path in /api/vast/search /api/vast/boot; do
    for body in '{' '{"a":' '[]' '"x"' 'null' '123' '{"a":1,"a":2}' $'\xff\xfe{}' '{"x":"\u0000"}'; do
        r POST "$path" "${J[@]}" --data-binary "$body"
        want "$path malformed JSON ${body:0:12}" 400
    done
    r POST "$path" -H 'Content-Type: text/plain' -d '{}'
    want "$path wrong content type" 415
done
r POST /api/vast/boot "${J[@]}"
want "boot: empty body" 400
r POST /api/vast/search "${J[@]}"
want "search: empty body means the default search" 200
for body in '{"gpu_ram_min":"x"}' '{"limit":-1}' '{"limit":1e308}' '{"limit":99999999999999999999}' \
            '{"max_price":-5}' '{"min_reliability":2}' '{"num_gpus":-3}' '{"gpu_name":42}' \
            '{"type":"free"}' '{"include_unverified":"yes"}' '{"bogus":1}' '{"disk":-1e300}'; do
    r POST /api/vast/search "${J[@]}" -d "$body"
    want "search rejects $body" 400
done
r POST /api/vast/search "${J[@]}" -d '{"limit":2}'
want "search still works after bad ones" 200
for body in '{}' '{"offer_id":"12"}' '{"offer_id":-1}' '{"offer_id":0}' '{"offer_id":1.5}' \
            '{"offer_id":null}' '{"offer_id":[1]}' '{"offer_id":99999999999999999999}'; do
    r POST /api/vast/boot "${J[@]}" -d "$body"
    want "boot rejects $body" 400
done
r POST /api/vast/boot "${J[@]}" -d '{"offer_id":9223372036854775807}'
want "boot of an unknown offer" 404 409 400 502
r POST /api/vast/boot "${J[@]}" -H $'Idempotency-Key: a\tb' -d '{"offer_id":5}'
want "boot rejects a control character in Idempotency-Key" 400
for id in abc -1 0 1.5 99999999999999999999 '%00' '..%2f..%2fetc'; do
    r POST "/api/vast/destroy/$id"
    want "destroy rejects id $id" 400 404
done
r POST /api/vast/destroy/424242
want "destroy of an unknown instance" 404
r GET /api/vast/instances
want "instances" 200
for id in abc -1 0 1.5 99999999999999999999 '%00' '..%2f..%2fetc'; do
    r GET "/api/vast/instances/$id"
    want "instance view rejects id $id" 400 404
done
r GET /api/vast/instances/424242
want "instance view of an unknown instance" 404
for id in abc -1 0 1.5 99999999999999999999 '%00' '..%2f..%2fetc'; do
    r POST "/api/vast/keepalive/$id"
    want "keepalive rejects id $id" 400 404
done
r POST /api/vast/keepalive/424242
want "keepalive of an unknown instance" 404
r GET '/api/cost?x=%00&limit=-1'
want "cost ignores junk in the query" 200
for q in 'days=0' 'days=-1' 'days=abc' 'days=367' 'days=99999999999999999999' 'days=%00' 'days='; do
    r GET "/api/cost/history?$q"
    want "cost history rejects $q" 400
done
r GET /api/cost/history
want "cost history with its default" 200
for id in abc -1 '%00' '..%2f..%2fetc' 0123456789abcdef0123456789abcdef; do
    r GET "/api/jobs/$id/peaks"
    want "peaks of job id $id" 400 404
done
for q in 'n=abc' 'n=0' 'n=15' 'n=4001' 'n=-5' 'n=1e99' 'n=%00'; do
    r GET "/api/jobs/0123456789abcdef0123456789abcdef/peaks?$q"
    want "peaks rejects $q (or the unknown job)" 400 404
done
r POST /metrics
want "metrics is GET only" 405
r GET '/metrics?x=%00'
want "metrics ignores junk in the query" 200

# ---- jobs: queries, unknown ids, traversal in ids
for q in 'limit=-1' 'limit=abc' 'limit=99999999999999999999' 'offset=-5' 'offset=1e99' \
         'state=bogus' 'limit=' 'state=%00'; do
    r GET "/api/jobs?$q"
    want "jobs list ?$q" 200 400
done
for id in nope 0000000000000000 '..%2f..%2fetc%2fpasswd' '%2e%2e' "$(printf 'x%.0s' $(seq 1 300))"; do
    r GET "/api/jobs/$id";            want "job $id: get" 404 400
    r GET "/api/jobs/$id/transcript"; want "job $id: transcript" 404 400
    r GET "/api/jobs/$id/audio";      want "job $id: audio" 404 400
    r DELETE "/api/jobs/$id";         want "job $id: delete" 404 400
done
r GET '/api/jobs/nope/transcript?format=../../etc/passwd'
want "transcript with a bad format for an unknown job" 404 400

# ---- uploads
python3 -c "
import struct,sys
n=8000; d=b'\x00\x00'*n
sys.stdout.buffer.write(b'RIFF'+struct.pack('<I',36+len(d))+b'WAVEfmt '+struct.pack('<IHHIIHH',16,1,1,16000,32000,2,16)+b'data'+struct.pack('<I',len(d))+d)" >"$TDIR/ok.wav"
printf 'this is not audio' >"$TDIR/text.txt"
head -c 2100000 /dev/urandom >"$TDIR/big.bin"
r POST /api/jobs;                                        want "upload: no body" 400
r POST /api/jobs -F language=en;                         want "upload: form without file" 400
r POST /api/jobs -F "file=@$TDIR/text.txt";              want "upload: not audio" 400
r POST /api/jobs -F "file=@$TDIR/ok.wav" -F "file2=@$TDIR/ok.wav"; want "upload: two files" 400
r POST /api/jobs -F "file=@$TDIR/ok.wav" -F 'language=../../x'; want "upload: bad language" 400
r POST /api/jobs -F "file=@$TDIR/ok.wav" -F temperature=5; want "upload: temperature 5" 400
r POST /api/jobs -F "file=@$TDIR/ok.wav" -F temperature=-1e308; want "upload: huge negative temperature" 400
r POST /api/jobs -F "file=@$TDIR/ok.wav" -F response_format=exe; want "upload: bad response_format" 400
r POST /api/jobs -H 'Content-Type: multipart/form-data' --data-binary 'garbage';   want "upload: multipart without boundary" 400
r POST /api/jobs -H 'Content-Type: multipart/form-data; boundary=zz' --data-binary $'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'; want "upload: truncated multipart" 400
r POST /api/jobs -F "file=@$TDIR/big.bin";               want "upload: over MAX_UPLOAD_MB (form)" 413
r POST /api/jobs -H 'Content-Type: audio/wav' --data-binary "@$TDIR/big.bin"; want "upload: over MAX_UPLOAD_MB (raw)" 413
r POST '/api/jobs?filename=%0d%0aX-Evil:%201' -H 'Content-Type: audio/wav' --data-binary "@$TDIR/text.txt"
want "upload: CR/LF in the filename" 400
r POST /v1/audio/transcriptions -F model=whisper-1;      want "openai: no file" 400
check "openai: error shape" jq -e '.error.message and .error.type' <<<"$BODY"
r POST /v1/audio/transcriptions -F "file=@$TDIR/ok.wav" -F temperature=abc; want "openai: bad temperature" 400
r POST /v1/audio/transcriptions -F "file=@$TDIR/text.txt"; want "openai: not audio" 400

# ---- oversized bodies, headers and URLs: 413/431/414 or a clean close, never a crash
head -c 2000000 /dev/zero | tr '\0' 'a' >"$TDIR/big.json"
r POST /api/vast/search "${J[@]}" --data-binary "@$TDIR/big.json"
want "2 MB JSON body" 413
BIGH=$(head -c 100000 /dev/zero | tr '\0' 'x')
r GET /api/jobs -H "X-Big: $BIGH"
case $STATUS in 431|413|400|000) pass "100 KB header refused ($STATUS)";; *) fail "100 KB header refused" "status $STATUS";; esac
r GET "/api/jobs?x=$BIGH"
case $STATUS in 414|431|413|400|000) pass "100 KB URL refused ($STATUS)";; *) fail "100 KB URL refused" "status $STATUS";; esac
r GET /api/jobs $(for i in $(seq 1 300); do printf -- '-H X-H%d:v ' "$i"; done)
case $STATUS in 200|431|413|400) pass "300 headers ($STATUS)";; *) fail "300 headers" "status $STATUS";; esac

# ---- method, route, Host, Origin
r PUT /api/jobs;                                   want "wrong method" 405
check "405 says Allow" grep -qi '^Allow:' "$TDIR/hdrs"
r GET /api/nothing-here;                           want "unknown API route" 404
r GET /healthz -H 'Host: evil.example';            want "foreign Host (DNS rebinding)" 421
r POST /api/vast/search "${J[@]}" -H 'Origin: http://evil.example' -d '{}'; want "cross-origin POST" 403
r DELETE /api/jobs/x -H 'Origin: null';            want "Origin null on DELETE" 403

# ---- path traversal on static files
for p in /../../../../etc/passwd /%2e%2e/%2e%2e/etc/passwd /..%2f..%2fetc%2fpasswd '/.%2e/.%2e/etc/passwd' \
         /index.html/../../../etc/passwd '/%5c..%5c..%5cetc%5cpasswd' /.git/config \
         '/%252e%252e/etc/passwd'; do
    r GET "$p"
    if grep -q 'root:x:0:0' "$TDIR/body" 2>/dev/null || grep -q '\[core\]' "$TDIR/body" 2>/dev/null; then
        fail "traversal $p" "file contents served"
    elif [ "$STATUS" = 200 ]; then fail "traversal $p" "status 200"
    else pass "traversal $p ($STATUS)"; fi
done

r GET '/index.html%00/../../etc/passwd'
if grep -q 'root:x:0:0' "$TDIR/body"; then fail "NUL in a static path" "file contents served"; else pass "NUL in a static path ($STATUS)"; fi

# ---- header injection: CR/LF in values that could be echoed never split the response
for p in '/api/jobs/a%0d%0aX-Injected:%201' '/api/jobs?state=x%0d%0aX-Injected:%201' \
         '/api/jobs/x/transcript?format=srt%0d%0aX-Injected:%201&download=1' \
         '/nothing%0d%0aX-Injected:%201'; do
    r GET "$p"
    if grep -qi '^X-Injected' "$TDIR/hdrs"; then fail "no header splitting: $p" "injected header"
    else pass "no header splitting: $p ($STATUS)"; fi
done

# ---- slowloris: slow clients must not block others
python3 - "$BASE" >"$TDIR/slow.out" 2>&1 <<'EOF' &
import socket, sys, time
host, port = sys.argv[1].split('//')[1].split(':')
socks = []
for i in range(20):
    s = socket.create_connection((host, int(port)))
    s.sendall(b'POST /api/vast/search HTTP/1.1\r\nHost: localhost\r\n')
    socks.append(s)
end = time.time() + 6
while time.time() < end:          # a header byte now and then, never finishing
    for s in socks:
        try: s.sendall(b'X-a: b\r\n')
        except OSError: pass
    time.sleep(1)
for s in socks: s.close()
print('slow done')
EOF
SLOW=$!
sleep 0.5
slow_ok=1
for _ in $(seq 1 8); do
    t0=$(date +%s%N)
    r GET /healthz
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    { [ "$STATUS" = 200 ] && [ $ms -lt 1000 ]; } || { slow_ok=0; echo "  healthz $STATUS in $ms ms"; }
    sleep 0.5
done
wait $SLOW
[ $slow_ok -eq 1 ] && pass "healthz stays fast while 20 slow clients trickle headers" || fail "slowloris" "healthz slow or failing"

# ---- the other routes still answer properly
for p in /healthz /openapi.json /docs /api/gpu-status /api/config /v1/models /api/jobs; do
    r GET "$p"; want "after the barrage: GET $p" 200
done
curl -sS -N --max-time 1 -o "$TDIR/sse" "$BASE/api/events?last_event_id=-99999999999999999999" 2>/dev/null
check "events stream answers despite a junk query" test -s "$TDIR/sse"

# ---- secrets never echoed
r GET /api/config
check "config shows secrets only as booleans" jq -e '.VAST_API_KEY == true and .HF_TOKEN == true and .OPENAI_API_KEY == true' <<<"$BODY"
leak=0
for s in "$VKEY" "$HFTOK" "$OAKEY"; do
    if grep -qF -- "$s" "$ALL" "$TDIR/sse"; then leak=1; echo "  secret in a response: ${s:0:10}..."; fi
    if grep -qF -- "$s" "$SERVER_LOG"; then leak=1; echo "  secret in the server log: ${s:0:10}..."; fi
done
[ $leak -eq 0 ] && pass "no secret in any response or the log" || fail "secrets leaked"

# ---- a clean exit and no half-done state
stop_server && pass "server exits cleanly after the barrage"
DB=$DATA/gpuscribe.db
if [ -f "$DB" ]; then
    bad=0
    while IFS='|' read -r id state; do
        [ -z "$id" ] && continue
        case $state in done|failed|cancelled) ;; *) [ -f "$DATA/jobs/$id/upload" ] || { bad=1; echo "  job $id ($state) has no upload"; };; esac
    done < <(sqlite3 "$DB" 'SELECT id, state FROM jobs')
    for d in "$DATA"/jobs/*/; do
        [ -d "$d" ] || continue
        id=$(basename "$d")
        [ -n "$(sqlite3 "$DB" "SELECT 1 FROM jobs WHERE id = '$id'")" ] || { bad=1; echo "  orphan job dir $id"; }
    done
    [ $bad -eq 0 ] && pass "store: no half-done jobs, no orphan upload dirs" || fail "store consistency"
else
    pass "store: no database written (no job was accepted)"
fi
finish
