#!/usr/bin/env bash
# What the UI's pictures read: GET /api/jobs/{id}/peaks (the waveform, computed off the HTTP
# threads and cached beside audio.wav) and GET /api/cost/history (spending per day and per
# instance, from the ledger). The boot timeline (GET /api/vast/instances/{id} "boot") is
# checked against a real boot in the browser suite.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
for tool in curl jq espeak-ng sqlite3 python3; do
    command -v $tool >/dev/null || { fail "prerequisite $tool" "not installed"; finish; exit 1; }
done
export DATA=$TDIR/data
WAV=$TDIR/s.wav
espeak-ng -v en-us -s 150 -w "$WAV" "the quick brown fox jumps over the lazy dog"

# ---- the ledger, written before the server starts: a destroyed instance billed from 22:00
# yesterday to 02:00 today (local time) at $1.50/h GPU + $0.10/h storage, and one billed for
# an hour three days ago at $0.60/h
start_server ENGINE=sphinx -- --env-file /dev/null || { fail "server starts"; finish; exit 1; }
stop_server || true
read -r T0 T1 T3 <<<"$(python3 -c '
import time,datetime
d=datetime.datetime.combine(datetime.date.today(),datetime.time())
print(int(time.mktime((d-datetime.timedelta(hours=2)).timetuple())), int(time.mktime((d+datetime.timedelta(hours=2)).timetuple())),
      int(time.mktime((d-datetime.timedelta(days=3)+datetime.timedelta(hours=10)).timetuple())))')"
sqlite3 "$DATA/gpuscribe.db" "
INSERT INTO instances(id, vast_id, state, label, created_at, updated_at, destroyed_at) VALUES
  (41, '9001', 'destroyed', 'gpuscribe-a', $T0, $T1, $T1), (42, '9002', 'destroyed', 'gpuscribe-b', $T3, $T3, $T3 + 3600);
INSERT INTO ledger(instance_id, kind, rate_per_hour, start_ts, end_ts) VALUES
  (41, 'gpu', 1.5, $T0, $T1), (41, 'storage', 0.1, $T0, $T1), (42, 'gpu', 0.6, $T3, $T3 + 3600);"
start_server ENGINE=sphinx -- --env-file /dev/null || { fail "server restarts"; finish; exit 1; }

req GET "/api/cost/history?days=7"
expect "cost history: 7 days, oldest first, today last" 200 \
    '.days == 7 and (.per_day | length) == 7 and ([.per_day[].start] | . == sort) and .per_day[6].end >= .per_day[6].start'
expect "cost history: yesterday and today each carry 2 h of instance 9001 (\$3.20 each)" 200 \
    '(.per_day[6].instances["9001"] - 3.2 | fabs) < 0.001 and (.per_day[5].instances["9001"] - 3.2 | fabs) < 0.001 and (.per_day[6].total - 3.2 | fabs) < 0.001'
expect "cost history: three days ago, instance 9002's hour (\$0.60), nothing else that day" 200 \
    '(.per_day[3].instances["9002"] - 0.6 | fabs) < 0.001 and (.per_day[3].instances | length) == 1 and (.per_day[4].instances | length) == 0'
expect "cost history: per instance totals and labels, and the whole" 200 \
    '(.instances | length) == 2 and ([.instances[] | select(.id == "9001")][0] | .label == "gpuscribe-a" and ((.total - 6.4) | fabs) < 0.001) and ((.total - 7.0) | fabs) < 0.001'
expect "cost history: each day's total is the sum of its instances" 200 \
    '[.per_day[] | ((.total - ([.instances[]] | add // 0)) | fabs) < 0.000001] | all'
req GET "/api/cost/history"
expect "cost history: 14 days by default" 200 '.days == 14 and (.per_day | length) == 14'
req GET "/api/cost/history?days=1"
expect "cost history: days=1 is today alone" 200 '(.per_day | length) == 1 and (.total - 3.2 | fabs) < 0.001'
for bad in 0 367 -1 abc 3.5 ""; do
    req GET "/api/cost/history?days=$bad"
    expect "cost history: days='$bad' refused with a JSON 400" 400 '.error | test("days must be an integer from 1 to 366")'
done

# ---- peaks
req POST /api/jobs -F "file=@$WAV"
expect "upload accepted" 202 '.id | length > 0'
ID=$(jget .id)
SECS=$(python3 -c "import wave,sys; w=wave.open(sys.argv[1]); print(w.getnframes()/w.getframerate())" "$WAV")
req GET "/api/jobs/$ID/peaks?n=200"
expect "peaks: 200 (min, max) pairs of the 16 kHz audio, computed" 200 \
    ".n == 200 and (.min | length) == 200 and (.max | length) == 200 and .rate == 16000 and .cached == false and ((.duration - $SECS) | fabs) < 0.05"
expect "peaks: each min <= max, within 16 bits, the speech loud somewhere" 200 \
    '([range(.n) as $i | .min[$i] <= .max[$i] and .min[$i] >= -32768 and .max[$i] <= 32767] | all) and ((.max | max) > 3000)'
# the same peaks as python computes from audio.wav (slice i = the samples k with i <= k*n/N < i+1)
python3 - "$DATA/jobs/$ID/audio.wav" "$BODY" <<'PY' && pass "peaks: match audio.wav sample by sample" || fail "peaks: match audio.wav sample by sample"
import sys, wave, array, json
w = wave.open(sys.argv[1]); s = array.array('h', w.readframes(w.getnframes())); N = len(s)
got = json.loads(sys.argv[2]); n = got['n']
for i in range(n):
    sl = s[-(-i * N // n):-(-(i + 1) * N // n)]
    if min(sl) != got['min'][i] or max(sl) != got['max'][i]:
        sys.exit("slice %d differs: %d..%d, got %d..%d" % (i, min(sl), max(sl), got['min'][i], got['max'][i]))
PY
check "peaks: cached beside the audio (peaks-200.json)" test -s "$DATA/jobs/$ID/peaks-200.json"
FIRST=$BODY
req GET "/api/jobs/$ID/peaks?n=200"
expect "peaks: the second request reads the cache, same peaks" 200 \
    ".cached == true and (.min == $(jq -c .min <<<"$FIRST")) and (.max == $(jq -c .max <<<"$FIRST"))"
# a cache older than audio.wav is computed again
touch -d '2000-01-01' "$DATA/jobs/$ID/peaks-200.json"
req GET "/api/jobs/$ID/peaks?n=200"
expect "peaks: a cache older than the audio is not used" 200 '.cached == false and .n == 200'
req GET "/api/jobs/$ID/peaks"
expect "peaks: 800 by default" 200 '.n == 800 and (.min | length) == 800'
for bad in 0 15 4001 abc -5 1e3 ""; do
    req GET "/api/jobs/$ID/peaks?n=$bad"
    expect "peaks: n='$bad' refused with a JSON 400" 400 '.error | test("n must be an integer from 16 to 4000")'
done
for bad in 0123456789abcdef0123456789abcdef zz-not-hex "$(printf 'a%.0s' {1..40})"; do
    req GET "/api/jobs/$bad/peaks"
    expect "peaks: job '${bad:0:20}' -> JSON 404" 404 '.error | test("no such job")'
done
# the job without its audio (files gone behind the server's back): 404, not a crash
mv "$DATA/jobs/$ID/audio.wav" "$TDIR/moved.wav"
req GET "/api/jobs/$ID/peaks?n=300"
expect "peaks: no audio.wav -> JSON 404" 404 '.error | test("no audio for job")'
mv "$TDIR/moved.wav" "$DATA/jobs/$ID/audio.wav"
# peaks of several requests at once (each on the background pool) agree
pids=()
for i in 1 2 3 4 5 6; do curl -s "$BASE/api/jobs/$ID/peaks?n=$((100 + i))" -o "$TDIR/p$i.json" & pids+=($!); done
wait "${pids[@]}"
check "peaks: six concurrent requests each get their n" bash -c "for i in 1 2 3 4 5 6; do jq -e \".n == \$((100 + i))\" $TDIR/p\$i.json >/dev/null || exit 1; done"
wait_job "$ID" 60 >/dev/null
req DELETE "/api/jobs/$ID"
req GET "/api/jobs/$ID/peaks"
expect "peaks: a deleted job -> JSON 404" 404 '.error | test("no such job")'
check "peaks: the cache went with the job's directory" test ! -e "$DATA/jobs/$ID"
req GET /openapi.json
expect "openapi describes both routes" 200 '.paths["/api/jobs/{id}/peaks"].get and .paths["/api/cost/history"].get'
stop_server
finish
