#!/usr/bin/env bash
# hung_peers: a Vast.ai API and a worker that accept connections and never answer must not
# stall the server. Four searches, a boot and two uploads wait on them while /healthz,
# /api/gpu-status, /api/jobs and the web page answer fast throughout; the waiting requests
# end with clear errors after VAST_TIMEOUT_SECONDS; SIGTERM does not wait out the hung calls.
. "$(dirname "$0")/lib.sh"

python3 "$ROOT/tests/integration/tarpit.py" 2 "$TDIR/ports" 2>"$TDIR/tarpit.log" &
TARPIT=$!
at_exit 'kill $TARPIT 2>/dev/null; wait $TARPIT 2>/dev/null'
for _ in $(seq 1 100); do [ -s "$TDIR/ports" ] && break; sleep 0.05; done
check "tarpit listening" test -s "$TDIR/ports"
VPORT=$(sed -n 1p "$TDIR/ports"); WPORT=$(sed -n 2p "$TDIR/ports")

python3 -c "
import struct,sys
d=b'\x00\x00'*16000
sys.stdout.buffer.write(b'RIFF'+struct.pack('<I',36+len(d))+b'WAVEfmt '+struct.pack('<IHHIIHH',16,1,1,16000,32000,2,16)+b'data'+struct.pack('<I',len(d))+d)" >"$TDIR/a.wav"

start_server VAST_API_KEY=made-up-key-hung VAST_URL="http://127.0.0.1:$VPORT" \
    VAST_TIMEOUT_SECONDS=2 WORKER_URL="http://127.0.0.1:$WPORT" || { finish; exit 1; }

# the waiting requests, all at once, each with its own status, body and duration
t0=$(date +%s.%N)
waiters=()
for i in 1 2 3 4; do
    curl -sS -o "$TDIR/search$i.body" -w '%{http_code} %{time_total}' --max-time 60 \
        -H 'Content-Type: application/json' -d '{"limit": 5}' "$BASE/api/vast/search" \
        >"$TDIR/search$i.st" 2>&1 &
    waiters+=($!)
done
curl -sS -o "$TDIR/boot.body" -w '%{http_code} %{time_total}' --max-time 60 \
    -H 'Content-Type: application/json' -d '{"offer_id": 4242}' "$BASE/api/vast/boot" \
    >"$TDIR/boot.st" 2>&1 &
waiters+=($!)
for i in 1 2; do
    curl -sS -o "$TDIR/up$i.body" -w '%{http_code} %{time_total}' --max-time 60 \
        -F "file=@$TDIR/a.wav" "$BASE/api/jobs" >"$TDIR/up$i.st" 2>&1 &
    waiters+=($!)
done
sleep 0.3 # let them reach the hung peers

# 50 samples of each fast route while they wait (one process: the samples are quick)
python3 - "$BASE" >"$TDIR/samples" <<'PY'
import http.client, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
for i in range(50):
    for p in ("/healthz", "/api/gpu-status", "/api/jobs?limit=5", "/"):
        t = time.monotonic()
        try:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
            c.request("GET", p)
            r = c.getresponse(); r.read(); code = r.status; c.close()
        except Exception as e:
            code = "error:" + type(e).__name__
        print(p, code, "%.4f" % (time.monotonic() - t))
PY
n=$(wc -l <"$TDIR/samples")
bad=$(awk '$2 != 200' "$TDIR/samples" | wc -l)
slow=$(awk '$3 > 0.1' "$TDIR/samples" | wc -l)
worst=$(sort -k3 -n "$TDIR/samples" | tail -n1)
echo "    $n samples, slowest: $worst"
awk '$2 != 200 || $3 > 0.1 {print "    " $0}' "$TDIR/samples" | head -n 10
check "200 samples taken" test "$n" -eq 200
check "fast routes answered 200 throughout" test "$bad" -eq 0
check "fast routes answered within 100 ms throughout (slowest: $worst)" test "$slow" -eq 0
# the searches and the boot were still waiting when the samples ended (else this proved
# nothing); the uploads were answered at once, and their jobs wait instead
still=0; for p in "${waiters[@]:0:5}"; do kill -0 "$p" 2>/dev/null && still=$((still + 1)); done
check "the 4 searches and the boot were still waiting after the samples ($still)" test "$still" -eq 5

for p in "${waiters[@]}"; do wait "$p"; done
elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
echo "    all waiting requests ended after ${elapsed}s"
for i in 1 2 3 4; do
    st=$(cut -d' ' -f1 "$TDIR/search$i.st")
    check "search $i ended with a Vast timeout error (got $st)" test "$st" = 504
    check "search $i says it timed out talking to VAST_URL" \
        jq -e --arg u "127.0.0.1:$VPORT" '(.error | test("timed out")) and (.error | contains($u)) and .kind == "timeout"' "$TDIR/search$i.body"
done
st=$(cut -d' ' -f1 "$TDIR/boot.st")
check "boot ended with an error (got $st)" test "$st" -ge 500
check "boot error is clear and rents nothing" jq -e '.success == false and (.error | length > 20)' "$TDIR/boot.body"
for i in 1 2; do
    check "upload $i accepted while the worker hangs" test "$(cut -d' ' -f1 "$TDIR/up$i.st")" = 202
done
req GET "/api/jobs?limit=10"
check "both jobs wait for the worker (queued), none lost" \
    jq -e '[.jobs[] | select(.state == "queued")] | length == 2' <<<"$BODY"
check "the server log says the worker is not answering" grep -q "is not answering" "$SERVER_LOG"

# a search in flight when SIGTERM comes must not hold the shutdown
curl -sS -o /dev/null --max-time 30 -H 'Content-Type: application/json' -d '{}' \
    "$BASE/api/vast/search" >/dev/null 2>&1 &
late=$!
sleep 0.5
s0=$(date +%s.%N)
stop_server && pass "server stops cleanly with calls hung"
took=$(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}')
check "SIGTERM with a hung Vast call and a hung worker took ${took}s (under 5 s)" \
    awk -v t="$took" 'BEGIN{exit !(t < 5)}'
wait "$late" 2>/dev/null
finish
