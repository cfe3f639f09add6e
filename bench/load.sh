#!/usr/bin/env bash
# load.sh [SOAK_SECONDS=60] [INTERVAL=10]: load and soak of `gpuscribe serve` (build/gpuscribe,
# or $GS_BIN). Not part of `make test`.
#   1. wrk on GET /api/gpu-status and GET /api/jobs with many connections
#   2. a few hundred SSE clients on /api/events while jobs are uploaded (all must get events)
#   3. many concurrent small uploads
#   4. a soak: mixed load for SOAK_SECONDS, printing RSS, open fds and threads every INTERVAL
#      seconds (they should stay flat)
# Env: CONNS (wrk connections, 256), DUR (wrk seconds, 10), SSE (clients, 300), UPLOADS (64).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GS_BIN:-$ROOT/build/gpuscribe}
SOAK=${1:-60}
INTERVAL=${2:-10}
CONNS=${CONNS:-256}
DUR=${DUR:-10}
SSE=${SSE:-300}
UPLOADS=${UPLOADS:-64}
for t in wrk curl python3 jq; do command -v $t >/dev/null || { echo "load: $t is needed" >&2; exit 1; }; done
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

T=$(mktemp -d /tmp/gs-load-XXXXXX)
SP=""
cleanup() { [ -n "$SP" ] && kill -TERM "$SP" 2>/dev/null && wait "$SP" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
unset VAST_API_KEY OPENAI_API_KEY API_TOKEN HF_TOKEN
(cd "$T" && exec env HOME="$T" LOG_LEVEL=info "$BIN" serve --port 0 --data-dir "$T/data") >"$T/server.log" 2>&1 &
SP=$!
for _ in $(seq 1 200); do
    PORT=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$T/server.log" | head -n1)
    [ -n "$PORT" ] && break; sleep 0.05
done
[ -n "${PORT:-}" ] || { echo "load: server did not start" >&2; cat "$T/server.log" >&2; exit 1; }
BASE=http://127.0.0.1:$PORT

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$SP/status"; }
nfds() { ls "/proc/$SP/fd" | wc -l; }
nthr() { ls "/proc/$SP/task" | wc -l; }

python3 -c "
import struct,sys
n=8000; d=bytes(((i*37)&0xff) for i in range(2*n))
sys.stdout.buffer.write(b'RIFF'+struct.pack('<I',36+len(d))+b'WAVEfmt '+struct.pack('<IHHIIHH',16,1,1,16000,32000,2,16)+b'data'+struct.pack('<I',len(d))+d)" >"$T/a.wav"

echo "server: $BIN ($(nproc) CPUs), start RSS $(rss_kb) kB, $(nfds) fds, $(nthr) threads"
echo
echo "## wrk: $CONNS connections, $DUR s"
printf '%-22s %12s %10s %10s %8s\n' route req/s p50 p99 errors
for path in /api/gpu-status /api/jobs; do
    out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" --latency "$BASE$path" 2>&1)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errs=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10} /Non-2xx/ {n+=$5} END {print n+0}' <<<"$out" | paste -sd+ | bc)
    printf '%-22s %12s %10s %10s %8s\n' "$path" "$rps" "$p50" "$p99" "$errs"
done
echo "after wrk: RSS $(rss_kb) kB, $(nfds) fds"

echo
echo "## SSE: $SSE clients on /api/events while 4 jobs are uploaded"
python3 - "$PORT" "$SSE" >"$T/sse.out" 2>&1 <<'EOF' &
import asyncio, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
async def client(i, stats):
    try:
        r, w = await asyncio.open_connection('127.0.0.1', port)
        w.write(b'GET /api/events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n')
        await w.drain()
        stats['connected'] += 1
        got = False
        end = time.time() + 20
        while time.time() < end:
            line = await asyncio.wait_for(r.readline(), timeout=max(0.1, end - time.time()))
            if not line: break
            if line.startswith(b'event: job.'):
                got = True
                break
        stats['events'] += got
        w.close()
    except Exception as e:
        stats['errors'] += 1
async def main():
    stats = {'connected': 0, 'events': 0, 'errors': 0}
    t0 = time.time()
    await asyncio.gather(*(client(i, stats) for i in range(n)))
    print(f"{n} {stats['connected']} {stats['events']} {stats['errors']} {time.time()-t0:.1f}")
asyncio.run(main())
EOF
SSEP=$!
sleep 2
echo "with $SSE SSE clients connected: RSS $(rss_kb) kB, $(nfds) fds, $(nthr) threads"
for i in 1 2 3 4; do curl -sS -o /dev/null -F "file=@$T/a.wav" "$BASE/api/jobs"; done
t0=$(date +%s%N)
r=$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' "$BASE/api/gpu-status")
wait $SSEP
read -r n conn ev err secs <"$T/sse.out" || true
printf '%-10s %-10s %-18s %-8s %s\n' clients connected "got a job event" errors seconds
printf '%-10s %-10s %-18s %-8s %s\n' "$n" "$conn" "$ev" "$err" "$secs"
echo "gpu-status during SSE: $r"

echo
echo "## $UPLOADS concurrent uploads of a 0.5 s WAV"
t0=$(date +%s%N)
seq 1 "$UPLOADS" | xargs -P "$UPLOADS" -I{} curl -sS -o /dev/null -w '%{http_code}\n' \
    -F "file=@$T/a.wav" "$BASE/api/jobs" >"$T/up.codes" 2>/dev/null
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
printf '%-8s %-8s %-10s %s\n' uploads 202 other "wall ms"
printf '%-8s %-8s %-10s %s\n' "$UPLOADS" "$(grep -c '^202$' "$T/up.codes")" "$(grep -vc '^202$' "$T/up.codes")" "$ms"
echo "after uploads: RSS $(rss_kb) kB, $(nfds) fds, $(nthr) threads"

echo
echo "## soak: $SOAK s of mixed load (wrk on status/jobs, uploads, SSE churn)"
end=$(( $(date +%s) + SOAK ))
(while [ "$(date +%s)" -lt $end ]; do wrk -t1 -c64 -d5s "$BASE/api/gpu-status" >/dev/null 2>&1; done) &
L1=$!
(while [ "$(date +%s)" -lt $end ]; do wrk -t1 -c16 -d5s "$BASE/api/jobs?limit=20" >/dev/null 2>&1; done) &
L2=$!
(while [ "$(date +%s)" -lt $end ]; do
    curl -sS -o /dev/null -F "file=@$T/a.wav" "$BASE/api/jobs"
    timeout 2 curl -sS -N -o /dev/null "$BASE/api/events" 2>/dev/null
    id=$(curl -sS "$BASE/api/jobs?limit=1&offset=30" | jq -r '.jobs[0].id // empty')
    [ -n "$id" ] && curl -sS -o /dev/null -X DELETE "$BASE/api/jobs/$id"
done) &
L3=$!
printf '%-8s %-10s %-6s %-8s\n' second RSS_kB fds threads
s0=$(date +%s)
while [ "$(date +%s)" -lt $end ]; do
    printf '%-8s %-10s %-6s %-8s\n' "$(( $(date +%s) - s0 ))" "$(rss_kb)" "$(nfds)" "$(nthr)"
    sleep "$INTERVAL"
done
wait $L1 $L2 $L3 2>/dev/null
sleep 1
printf '%-8s %-10s %-6s %-8s\n' end "$(rss_kb)" "$(nfds)" "$(nthr)"
r=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/healthz")
echo "healthz after the soak: $r"
kill -TERM "$SP"; wait "$SP"; rc=$?; SP=""
echo "server exit status: $rc"
