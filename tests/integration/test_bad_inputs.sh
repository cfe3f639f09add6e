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
COVERED="GET /healthz|GET /openapi.json|GET /docs|GET /api/gpu-status|GET /api/config|POST /api/jobs|GET /api/jobs|GET /api/jobs/{id}|DELETE /api/jobs/{id}|GET /api/jobs/{id}/transcript|GET /api/jobs/{id}/audio|GET /api/events|POST /v1/audio/transcriptions|GET /v1/models|POST /api/vast/search|POST /api/vast/boot|POST /api/vast/destroy/{instance_id}|GET /api/vast/instances|GET /api/vast/instances/{instance_id}|POST /api/vast/keepalive/{instance_id}|GET /api/cost|GET /api/cost/history|GET /api/jobs/{id}/peaks|PATCH /api/jobs/{id}/speakers|GET /metrics|GET /api/fleet|PUT /api/fleet"
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
r GET '/api/fleet?x=%00'
want "fleet view ignores junk in the query" 200
for body in '' 'not json' '[]' '{}' '{"max_instances": null}' '{"max_instances": 0}' '{"max_instances": -1}' \
            '{"max_instances": 65}' '{"max_instances": 2.5}' '{"max_instances": "2"}' \
            '{"max_instances": 99999999999999999999}' '{"max_instances": 2, "x": 1}'; do
    r PUT /api/fleet -H 'Content-Type: application/json' -d "$body"
    want "PUT /api/fleet rejects '$body'" 400
done
for id in abc -1 '%00' '..%2f..%2fetc' 0123456789abcdef0123456789abcdef; do
    r GET "/api/jobs/$id/peaks"
    want "peaks of job id $id" 400 404
done
for q in 'n=abc' 'n=0' 'n=15' 'n=4001' 'n=-5' 'n=1e99' 'n=%00'; do
    r GET "/api/jobs/0123456789abcdef0123456789abcdef/peaks?$q"
    want "peaks rejects $q (or the unknown job)" 400 404
done
for id in abc -1 '%00' '..%2f..%2fetc' 0123456789abcdef0123456789abcdef; do
    r PATCH "/api/jobs/$id/speakers" -H 'Content-Type: application/json' -d '{"1":"A"}'
    want "speakers of job id $id" 400 404
done
for body in '' 'null' '[]' '{' '"x"' '{"1":' "$(printf '{"1":"%0100000d"}' 0)"; do
    r PATCH /api/jobs/0123456789abcdef/speakers -H 'Content-Type: application/json' -d "$body"
    want "speakers rejects the body ${body:0:20}" 400 404 413 415
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
r POST /api/jobs -H 'Content-Type: audio/wav' -H 'Transfer-Encoding: chunked' --data-binary "@$TDIR/big.bin"
want "upload: over MAX_UPLOAD_MB (chunked: no Content-Length, stopped while streaming)" 413
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
    # blocked by them, it would wait out their 6 s of trickling: 3 s leaves room for a loaded CI
    { [ "$STATUS" = 200 ] && [ $ms -lt 3000 ]; } || { slow_ok=0; echo "  healthz $STATUS in $ms ms"; }
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

# ---- audio admission (issue 13): files that would decode to far more than they are, or more
# than the limits, are refused from their headers with nothing left on disk
command -v ffmpeg >/dev/null || { fail "prerequisite ffmpeg" "not installed"; finish; exit 1; }
FF=(ffmpeg -nostdin -loglevel error -y)
# the entries of DATA_DIR/jobs (each one a job's directory)
job_dirs() { ls -1A "$1/jobs" 2>/dev/null | sort | tr '\n' ' '; }
# refused NAME STATUS TEXT DATA [r args]: an upload answered STATUS with TEXT in its error, no
# job dir left behind (the request's cleanup runs as it ends: allow it a moment)
refused() {
    local name=$1 st=$2 text=$3 data=$4 before i; shift 4
    before=$(job_dirs "$data")
    r POST "$@"
    if [ "$STATUS" != "$st" ]; then fail "$name" "status $STATUS, want $st; body: ${BODY:0:300}"; return; fi
    if ! jq -e --arg t "$text" '(.error | if type == "object" then .message else . end) | contains($t)' \
            >/dev/null 2>&1 <<<"$BODY"; then
        fail "$name" "error lacks \"$text\": ${BODY:0:300}"; return
    fi
    for i in $(seq 1 50); do [ "$(job_dirs "$data")" = "$before" ] && break; sleep 0.1; done
    if [ "$(job_dirs "$data")" != "$before" ]; then fail "$name" "left in jobs/: $(job_dirs "$data")"; return; fi
    pass "$name"
}
# headers_only PATH CONTENT-LENGTH [CONTENT-TYPE]: send a request's headers and never its body;
# prints "SECONDS STATUS CLOSED BODY" (CLOSED: 1 when the server closed the connection)
headers_only() {
    python3 - "$BASE" "$1" "$2" "${3:-audio/wav}" <<'PY'
import socket, sys, time
host, port = sys.argv[1].split('//')[1].split(':')
s = socket.create_connection((host, int(port)))
s.settimeout(10)
t = time.time()
s.sendall(('POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: %s\r\nContent-Length: %s\r\n\r\n'
           % (sys.argv[2], sys.argv[4], sys.argv[3])).encode())
data, closed = b'', 0
try:
    while True:
        c = s.recv(65536)
        if not c: closed = 1; break
        data += c
except socket.timeout: pass
head, _, body = data.partition(b'\r\n\r\n')
status = head.split(b' ')[1].decode() if head.startswith(b'HTTP/') else '000'
print('%.2f %s %d %s' % (time.time() - t, status, closed, body.decode(errors='replace')))
PY
}
# quick NAME WANT-STATUS LINE: headers_only's answer came at once (under 3 s: the body was
# never sent), with WANT-STATUS, a JSON error, and the connection closed
quick() {
    local name=$1 want=$2 secs st closed body
    read -r secs st closed body <<<"$3"
    if [ "$st" = "$want" ] && [ "$closed" = 1 ] && awk -v s="$secs" 'BEGIN { exit !(s < 3) }' &&
       jq -e '.error' >/dev/null 2>&1 <<<"$body"; then pass "$name ($secs s)"
    else fail "$name" "got: $3"; fi
}

A=$TDIR/admit
mkdir -p "$A"
# a FLAC of 24 h of digital silence: ~320 KB that would decode to a 2.75 GB WAV
"${FF[@]}" -f lavfi -i anullsrc=r=16000:cl=mono -t 86400 -sample_fmt s16 -c:a flac \
    -frame_size 65535 -strict -2 "$A/bomb.flac"
# the same bomb streamed into Matroska from a pipe (its length unknown to the muxer): no
# declared length at all, 2 h of silence in 64 KB
"${FF[@]}" -f lavfi -i anullsrc=r=16000:cl=mono -t 7200 -f s16le - |
    "${FF[@]}" -f s16le -ar 16000 -ac 1 -i - -c:a flac -frame_size 65535 -strict -2 \
    -f matroska - >"$A/streamed-bomb.mkv"
# 60 s of noise at 8 kHz (960 KB: under MAX_UPLOAD_MB=1), and as a streamed WebM (no length)
"${FF[@]}" -f lavfi -i anoisesrc=r=8000:d=60:a=0.3 -c:a pcm_s16le "$A/noise60.wav"
"${FF[@]}" -i "$A/noise60.wav" -c:a libopus -b:a 16k -f webm - >"$A/noise60.webm"
# 20 min of noise as a small MP3 (4.6 MB) whose WAV (38 MB) will not fit on the small disk below
"${FF[@]}" -f lavfi -i anoisesrc=r=8000:d=1200:a=0.3 -c:a libmp3lame -b:a 32k "$A/noise20m.mp3"
espeak-ng -v en-us -s 150 -w "$A/speech.wav" "a few words of speech, and a few more" 2>/dev/null
"${FF[@]}" -i "$A/speech.wav" -c:a flac "$A/speech.flac"
"${FF[@]}" -i "$A/speech.wav" -c:a libmp3lame -b:a 32k "$A/speech.mp3"
python3 - "$A" <<'PY'
import struct, sys
a = sys.argv[1]
# a WAV at 1 Hz: 2 KB that says it is 1000 s long
d = b'\0\0' * 1000
open(a + '/hz1.wav', 'wb').write(b'RIFF' + struct.pack('<I', 36 + len(d)) + b'WAVEfmt ' +
    struct.pack('<IHHIIHH', 16, 1, 1, 1, 2, 2, 16) + b'data' + struct.pack('<I', len(d)) + d)
# length liars: an MP3 whose Info/Xing header counts 10 million frames, FLACs whose STREAMINFO
# claims 12 h and 30 s (the speech holds a few seconds)
m = bytearray(open(a + '/speech.mp3', 'rb').read())
i = max(m.find(b'Info', 0, 4096), m.find(b'Xing', 0, 4096))
assert i > 0 and m[i + 7] & 1
m[i + 8:i + 12] = (10000000).to_bytes(4, 'big')
open(a + '/liar.mp3', 'wb').write(m)
f = bytearray(open(a + '/speech.flac', 'rb').read())
v = int.from_bytes(f[18:26], 'big'); rate = v >> 44
for name, secs in (('liar12h.flac', 43200), ('liar30s.flac', 30)):
    g = bytearray(f); g[18:26] = ((v & ~((1 << 36) - 1)) | secs * rate).to_bytes(8, 'big')
    open(a + '/' + name, 'wb').write(g)
PY
check "admission test files made" test -s "$A/bomb.flac" -a -s "$A/liar30s.flac" -a -s "$A/noise20m.mp3" -a -s "$A/streamed-bomb.mkv"

unset DATA
start_server MAX_UPLOAD_MB=1 MAX_AUDIO_HOURS=0.01 GPU_ONLY=1 || { finish; exit 1; }
D2=$SERVER_DIR/data
refused "silence FLAC bomb (24 h in $(( $(stat -c %s "$A/bomb.flac") / 1024 )) KB) refused" 400 \
    "declared length 24 h is implausible for a " "$D2" /api/jobs -F "file=@$A/bomb.flac"
check "the bomb's error names the file" jq -e '.error | startswith("invalid audio file '"'"'bomb.flac'"'"': ")' <<<"$BODY"
refused "a 1 Hz WAV refused" 400 "sample rate 1 Hz is not plausible for speech" "$D2" \
    /api/jobs -F "file=@$A/hz1.wav"
refused "an MP3 whose Xing header claims hours refused" 400 "implausible" "$D2" \
    /api/jobs -F "file=@$A/liar.mp3"
refused "a FLAC whose STREAMINFO claims 12 h refused" 400 "declared length 12 h is implausible" "$D2" \
    /api/jobs -H 'Content-Type: audio/flac' --data-binary "@$A/liar12h.flac"
# what only the decode finds is found while the job is prepared, after its 202: the
# synchronous route still answers it (and keeps no job), the asynchronous one fails the job
refused "a FLAC claiming 30 s is found truncated while decoding (/v1/: 400)" 400 "truncated or corrupt audio" "$D2" \
    /v1/audio/transcriptions -F "file=@$A/liar30s.flac" -F model=whisper-1
r POST /api/jobs -F "file=@$A/liar30s.flac"
want "the same on /api/jobs: 202, then prepared" 202
LJ=$(jq -r .id <<<"$BODY")
for i in $(seq 1 100); do [ "$(curl -s "$BASE/api/jobs/$LJ" | jq -r .state)" = failed ] && break; sleep 0.1; done
r GET "/api/jobs/$LJ"
check "... and failed as bad audio before any engine ran" jq -e '.state == "failed" and .error_kind == "audio" and (.error | contains("truncated or corrupt audio")) and .chunks_total == 0' <<<"$BODY"
r DELETE "/api/jobs/$LJ"
want "that failed job is deleted" 200
refused "60 s over MAX_AUDIO_HOURS=0.01: 413" 413 \
    "audio is 1 min long; the limit is 36 s (MAX_AUDIO_HOURS=0.01)" "$D2" /api/jobs -F "file=@$A/noise60.wav"
refused "over MAX_AUDIO_HOURS on /v1/ (OpenAI's shape)" 413 "MAX_AUDIO_HOURS" "$D2" \
    /v1/audio/transcriptions -F "file=@$A/noise60.wav" -F model=whisper-1
check "the 413 is OpenAI-shaped" jq -e '.error.type == "invalid_request_error" and .error.param == "file"' <<<"$BODY"
refused "a streamed WebM (no declared length) stops at MAX_AUDIO_HOURS while decoding" 413 \
    "audio is longer than the limit of 36 s (MAX_AUDIO_HOURS=0.01)" "$D2" /v1/audio/transcriptions \
    -F "file=@$A/noise60.webm" -F model=whisper-1
quick "Content-Length 3 GB (over MAX_UPLOAD_MB) answered 413 before the body" 413 \
    "$(headers_only /api/jobs 3000000000)"
quick "Content-Length 3 GB on /v1/ (multipart) answered 413 before the body" 413 \
    "$(headers_only /v1/audio/transcriptions 3000000000 'multipart/form-data; boundary=zz')"
r POST /api/jobs -F "file=@$A/speech.mp3"
want "speech is admitted beside them (202)" 202
check "no other job was created" test "$(curl -s "$BASE/api/jobs" | jq .total)" = 1
stop_server && pass "admission server exits cleanly"

# ---- a full disk: DATA_DIR on a 100 MB tmpfs (64 MB must stay free besides what a job needs)
if [ "$(id -u)" != 0 ]; then
    skip "uploads on a full disk" "needs root to mount a tmpfs"
else
    MNT=$TDIR/small-disk
    mkdir -p "$MNT"
    if ! mount -t tmpfs -o size=100m,mode=0700 gs-it-small-disk "$MNT"; then
        fail "mount a 100 MB tmpfs for DATA_DIR"
    else
        # at exit (also on a failure): the server holds files there, stop it first
        small_disk_down() {
            if [ -n "$SERVER_PID" ]; then kill -KILL "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""; fi
            if mountpoint -q "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
        }
        at_exit small_disk_down
        DATA=$MNT/data start_server GPU_ONLY=1 || { finish; exit 1; }
        D3=$MNT/data
        r POST /api/jobs -F "file=@$A/speech.flac"
        want "small disk: a short file is admitted (202)" 202
        refused "small disk: 20 min whose WAV will not fit refused 507" 507 \
            "not enough disk space in DATA_DIR to prepare this audio: needs 41 MB plus 64 MB to spare" \
            "$D3" /api/jobs -F "file=@$A/noise20m.mp3"
        quick "small disk: Content-Length 200 MB answered 507 before the body" 507 \
            "$(headers_only /api/jobs 200000000)"
        check "small disk: that 507 says why" grep -q 'not enough disk space in DATA_DIR to store this upload' \
            <<<"$(headers_only /api/jobs 200000000)"
        refused "small disk: a streamed bomb (no length) fills the disk while decoding: 507" 507 \
            "not enough disk space in DATA_DIR to prepare this audio: the disk filled up" \
            "$D3" /v1/audio/transcriptions -F "file=@$A/streamed-bomb.mkv" -F model=whisper-1
        check "small disk: no temporary WAV left" test -z "$(find "$D3/jobs" -name '*.tmp*')"
        r POST /api/jobs -F "file=@$A/speech.flac"
        want "small disk: the space is back, a short file is admitted again" 202
        check "small disk: two jobs, nothing else" test "$(curl -s "$BASE/api/jobs" | jq .total)" = 2
        stop_server && pass "small disk: server exits cleanly"
        if umount "$MNT"; then pass "small disk: unmounted"; else fail "small disk: unmounted"; fi
    fi
fi
finish
