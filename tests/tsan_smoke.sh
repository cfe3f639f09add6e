#!/usr/bin/env bash
# tsan_smoke.sh: a short threaded smoke of `gpuscribe serve` built with ThreadSanitizer
# (GS_BIN): concurrent uploads and SSE clients while jobs run, then a clean stop. Fails on
# any ThreadSanitizer report in the server's log.
set -u
SUITE=tsan-smoke
. "$(dirname "$0")/integration/lib.sh"
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan.supp"
python3 -c "
import struct,sys
n=16000; d=b'\x00\x00'*n
sys.stdout.buffer.write(b'RIFF'+struct.pack('<I',36+len(d))+b'WAVEfmt '+struct.pack('<IHHIIHH',16,1,1,16000,32000,2,16)+b'data'+struct.pack('<I',len(d))+d)" >"$TDIR/a.wav"
start_server JOBS_CONCURRENCY=2 || { finish; exit 1; }
pids=()
for i in $(seq 1 8); do curl -sS -N --max-time 8 "$BASE/api/events" >"$TDIR/sse$i" 2>/dev/null & pids+=($!); done
busy=()
for i in $(seq 1 12); do curl -sS -o /dev/null -w '%{http_code}\n' -F "file=@$TDIR/a.wav" "$BASE/api/jobs" >>"$TDIR/up" & busy+=($!); done
for i in $(seq 1 40); do
    curl -sS -o /dev/null "$BASE/api/jobs?limit=5" & busy+=($!)
    curl -sS -o /dev/null "$BASE/api/gpu-status" & busy+=($!)
done
wait "${busy[@]}"
wait_jobs() { curl -sS "$BASE/api/jobs?limit=100" | jq '[.jobs[] | select(.state == "queued" or .state == "running")] | length'; }
jobs_idle() { [ "$(wait_jobs)" = 0 ]; }
wait_for "every job finishes" 60 jobs_idle
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
wait "${pids[@]}" 2>/dev/null   # not a bare wait: the server is a child too
check "12 uploads accepted" test "$(grep -c '^202$' "$TDIR/up")" -eq 12
check "SSE clients saw job events" grep -q 'job\.' "$TDIR/sse1"
stop_server && pass "server stops cleanly"
if grep -q 'WARNING: ThreadSanitizer' "$SERVER_LOG"; then
    fail "no data races" "see below"; grep -A30 'WARNING: ThreadSanitizer' "$SERVER_LOG" | head -80
else
    pass "no ThreadSanitizer reports"
fi
finish
