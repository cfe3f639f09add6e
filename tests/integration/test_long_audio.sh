#!/usr/bin/env bash
# Long audio through two GPU instances: a 3-hour recording (the pocketsphinx librivox speech,
# placed at the start, across two chunk seams and at the end, with silence between) is
# answered 202 at once, prepared in the background, cut at pauses into 10-minute chunks and
# run on two vastsim instances of two slots each. Asserted: /healthz answers while four 1-hour
# uploads are prepared; both instances ran chunks; a short job sent behind the long one is not
# stuck behind its chunks; timestamps are monotonic and inside the audio; the speech is that of
# the same file transcribed whole, piece for piece (nothing lost or doubled at a seam); the job
# lists its chunks; then one instance is killed mid-job and only the chunks it was running are
# run again, on the other one.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 41 || { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "long audio on GPU instances"
A=$TDIR/a; mkdir -p "$A"
# speech blocks (s): at 5, across the 600 and 1200 s seams, and at the end of 3 h
"$(dirname "$0")/sparse_speech.py" "$A/three.wav" 10800 5 585 1185 10760
export DATA=$TDIR/data
touch "$TDIR/app.env"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx WORKER_SLOTS=2 CHUNK_MINUTES=10 \
    -- --env-file "$TDIR/app.env" || { fail "server starts"; sim_stop; finish; exit 1; }
read -r O1 O2 < <(sim_offers 5 | head -n2 | tr '\n' ' ')
boot_instance "$O1"; V1=$BOOTED
boot_instance "$O2"; V2=$BOOTED
# the reference: the same file transcribed whole by the same engine, in-process (meanwhile)
ENGINE=sphinx "$GS_BIN" transcribe --format verbose_json "$A/three.wav" >"$A/ref.json" 2>"$A/ref.err" &
REF=$!
ok=1
for v in "$V1" "$V2"; do wait_instance "$v" ready 120 || ok=0; done
if [ $ok = 0 ]; then
    fail "two instances ready" "$(jq -c '{state,error,log:.log[-5:]}' <<<"$BODY")"
    tail -n 20 "$SIM_LOG"; tail -n 30 "$SERVER_LOG"
    kill $REF 2>/dev/null; stop_server; sim_stop; finish; exit 1
fi
pass "two instances ready"
row_of() { curl -s "$BASE/api/vast/instances/$1" | jq -r .row_id; }   # jobs name instances by our row id
R1=$(row_of "$V1"); R2=$(row_of "$V2")
# /healthz while four 1-hour uploads are being prepared (decoded, cut): no request thread
# does that work, so it answers at once
"$(dirname "$0")/sparse_speech.py" "$A/hour.wav" 3600 5
ups=()
for i in 1 2 3 4; do
    curl -s -H 'Content-Type: audio/wav' --data-binary "@$A/hour.wav" "$BASE/api/jobs?filename=h$i.wav" >"$A/h$i.json" &
    ups+=($!)
done
wait "${ups[@]}"   # only the uploads (the server and vastsim are children too)
HS=$(python3 - "$BASE" "$A"/h[1-4].json <<'PY'
import json, sys, time, urllib.request
base = sys.argv[1]; ids = [json.load(open(f))["id"] for f in sys.argv[2:]]
lat = []
def preparing():
    return any(json.load(urllib.request.urlopen(base + "/api/jobs/" + i))["state"] == "preparing" for i in ids)
while preparing() or not lat:
    t = time.monotonic(); urllib.request.urlopen(base + "/healthz").read(); lat.append(time.monotonic() - t)
    time.sleep(0.02)
lat.sort()
print("%d answers while preparing: median %.1f ms, max %.1f ms" % (len(lat), lat[len(lat) // 2] * 1e3, lat[-1] * 1e3))
sys.exit(0 if lat[len(lat) // 2] < 0.1 and lat[-1] < 0.5 else 1)
PY
)
if [ $? = 0 ]; then pass "/healthz while four 1-hour uploads are prepared ($HS)"; else fail "/healthz while four 1-hour uploads are prepared" "$HS"; fi
for i in 1 2 3 4; do req DELETE "/api/jobs/$(jq -r .id "$A/h$i.json")"; done
t0=$(date +%s.%N)
req POST /api/jobs -F "file=@$A/three.wav" -F language=en
t1=$(date +%s.%N)
expect "3 h upload answered 202 while it is prepared" 202 '.state == "preparing" and (.audio_duration | . > 10799 and . < 10801)'
echo "     (the 345 MB upload and its answer took $(python3 -c "print(round($t1-$t0,2))") s; timings belong in bench/long_audio.sh)"
J=$(jget .id)
# a short job sent right behind it is not stuck behind its 18 chunks: it gets the next free slot
"$(dirname "$0")/sparse_speech.py" "$A/short.wav" 40 5
wait_job_state "$J" running 120 || true
req POST /api/jobs -F "file=@$A/short.wav" -F language=en
SJ=$(jget .id)
wait_job "$J" 300 >/dev/null
req GET "/api/jobs/$J"
cp "$TDIR/body" "$A/job.json"
expect "3 h job done" 200 '.state == "done" and .backend == "remote" and .progress == 1'
check "cut into 18 chunks of about 10 minutes, covering the audio" jq -e '
    (.chunks | length) == 18 and .chunks_total == 18 and .chunks_done == 18 and
    .chunks[0].start == 0 and (.chunks[-1].end | . > 10799.9) and
    ([.chunks[] | .end - .start] | (min > 540 and max < 660)) and
    ([range(1; .chunks | length) as $i | .chunks[$i].start == .chunks[$i - 1].end] | all)' "$A/job.json"
check "the seams with speech across them were cut in its pauses (not at 600/1200 s exactly)" jq -e '
    (.chunks[1].start | . != 600 and . > 585 and . < 615) and (.chunks[2].start | . != 1200 and . > 1185 and . < 1215)' "$A/job.json"
req GET "/api/jobs/$SJ"
check "the short job ran before most of the long one's chunks had started" jq -e --slurpfile l "$A/job.json" '
    .state == "done" and .started_at < ([$l[0].chunks[].started_at] | sort | .[8])' <<<"$BODY"
check "both instances ran chunks, each once" jq -e --argjson a "$R1" --argjson b "$R2" '
    ([.chunks[].instance_id] | unique) == ([$a, $b] | sort) and ([.chunks[].attempts] | max) == 1' "$A/job.json"
req GET "/api/jobs/$J/transcript?format=verbose_json"
cp "$TDIR/body" "$A/chunked.json"
check "timestamps monotonic and inside the audio" python3 - "$A/chunked.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); last = 0
for s in t["segments"]:
    assert last <= s["start"] <= s["end"] <= 10800, (last, s["start"], s["end"]); last = s["end"]
assert t["segments"][0]["start"] < 10 and t["segments"][-1]["end"] > 10760, "speech at both ends"
PY
wait $REF; rc=$?
check "the whole-file reference ran" test $rc = 0
# a chunk reaches its worker as Opus and is decoded on its own, so words may be recognised a
# little differently; what must not differ is where the speech is: every piece of speech of the
# whole-file transcript is in the chunked one and the other way round (a piece lost at a seam,
# or doubled, shows), and the word counts are close
SEAMS=$(python3 - "$A/chunked.json" "$A/ref.json" 2>&1 <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
sa = [(s["start"], s["end"]) for s in a["segments"]]; sb = [(s["start"], s["end"]) for s in b["segments"]]
assert len(sb) >= 15, len(sb)
def covered(x, ys): return any(min(x[1], y[1]) - max(x[0], y[0]) > 0.2 for y in ys)
lost = [x for x in sb if not covered(x, sa)]; extra = [x for x in sa if not covered(x, sb)]
wa, wb = len(a["text"].split()), len(b["text"].split())
print("segments: chunked %d, whole %d; words %d / %d; lost %s; extra %s" % (len(sa), len(sb), wa, wb, lost, extra))
assert not lost and not extra and abs(wa - wb) <= wb // 20, (lost, extra, wa, wb)
PY
)
if [ $? = 0 ]; then pass "the speech of the file transcribed whole, piece for piece: nothing lost or doubled at a seam ($SEAMS)"
else fail "the speech of the file transcribed whole, piece for piece" "$SEAMS"; fi

# ---- one instance killed mid-job: only its chunks in flight run again, on the other (30 min,
# speech at the start of each 10-minute chunk, so that each keeps a slot busy a while)
"$(dirname "$0")/sparse_speech.py" "$A/one.wav" 1800 5 605 1205
req POST /api/jobs -F "file=@$A/one.wav" -F language=en
J2=$(jget .id)
on_b=""
for i in $(seq 1 600); do
    on_b=$(curl -s "$BASE/api/jobs/$J2" | jq -c --argjson b "$R2" '[.chunks[]? | select(.state == "running" and .instance_id == $b) | .index]')
    [ "$on_b" != "[]" ] && [ -n "$on_b" ] && break
    sleep 0.1
done
check "instance $V2 runs chunks of the second job" test "$on_b" != "[]"
fault "{\"type\": \"exit_instance\", \"instance_id\": $V2, \"status_msg\": \"host lost\"}"
wait_job "$J2" 300 >/dev/null
req GET "/api/jobs/$J2"
cp "$TDIR/body" "$A/job2.json"
expect "second job done despite the lost instance" 200 '.state == "done"'
check "only chunks that were on the lost instance ran again ($on_b), and they finished elsewhere" jq -e --argjson b "$R2" --argjson was "$on_b" '
    [.chunks[] | select(.attempts > 1)] as $re |
    ($re | length) >= 1 and ([$re[].index] - $was) == [] and ([$re[].instance_id] | all(. != $b)) and
    ([.chunks[] | select(.attempts > 1 | not) | .attempts] | all(. == 1))' "$A/job2.json"
req GET "/api/jobs/$J2/transcript?format=verbose_json"
check "its transcript has the speech of every chunk" python3 - "$TDIR/body" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
for s0 in (5, 605, 1205):
    assert any(s0 - 1 <= s["start"] <= s0 + 30 for s in t["segments"]), s0
PY
for v in "$V1" "$V2"; do jreq POST "/api/vast/destroy/$v" '{}'; done
for v in "$V1" "$V2"; do wait_instance "$v" destroyed 60 || true; done
stop_server
check "no instance left running" test "$(sim_live_instances)" = 0
sim_stop
finish
