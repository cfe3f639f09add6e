#!/usr/bin/env bash
# Long audio through two GPU instances: a 3-hour recording (the pocketsphinx librivox speech,
# placed at the start, across two chunk seams and at the end, with silence between) is
# answered 202 at once, prepared in the background, cut at pauses into 10-minute chunks and
# run on two vastsim instances of two slots each. Asserted: both instances ran chunks,
# timestamps are monotonic and inside the audio, the text equals the same file transcribed
# whole (nothing lost or doubled at a seam), the job lists its chunks; then one instance is
# killed mid-job and only the chunks it was running are run again, on the other one.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 41 || { fail "vastsim starts"; finish; exit 1; }
skip_without_isolation "long audio on GPU instances"
A=$TDIR/a; mkdir -p "$A"
# speech blocks (s): at 5, across the 600 and 1200 s seams, and at the end of 3 h
python3 - "$A/three.wav" 5 585 1185 10760 <<'PY'
import sys, wave
d = "/usr/share/pocketsphinx/test/data/librivox/"
clips = []
for l in open(d + "fileids"):
    if l.strip():
        w = wave.open(d + l.strip() + ".wav"); clips.append(w.readframes(w.getnframes()))
speech = b"".join(c + b"\0\0" * 16000 for c in clips)        # the clips, 1 s apart (~30 s)
starts = [int(float(x) * 16000) for x in sys.argv[2:]]
total = 3 * 3600 * 16000
out = wave.open(sys.argv[1], "wb"); out.setnchannels(1); out.setsampwidth(2); out.setframerate(16000)
pos = 0
for s in starts:
    out.writeframes(b"\0\0" * (s - pos)); out.writeframes(speech); pos = s + len(speech) // 2
out.writeframes(b"\0\0" * (total - pos)); out.close()
PY
export DATA=$TDIR/data
touch "$TDIR/app.env"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" ENGINE=sphinx WORKER_SLOTS=2 CHUNK_MINUTES=10 \
    -- --env-file "$TDIR/app.env" || { fail "server starts"; sim_stop; finish; exit 1; }
read -r O1 O2 < <(sim_offers 5 | head -n2 | tr '\n' ' ')
boot_instance "$O1"; V1=$BOOTED
boot_instance "$O2"; V2=$BOOTED
# the reference: the same file transcribed whole by the same engine, in-process (meanwhile)
ENGINE=sphinx "$GS_BIN" transcribe --format json "$A/three.wav" >"$A/ref.json" 2>"$A/ref.err" &
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
t0=$(date +%s.%N)
req POST /api/jobs -F "file=@$A/three.wav" -F language=en
t1=$(date +%s.%N)
expect "3 h upload answered 202 while it is prepared" 202 '.state == "preparing" and (.audio_duration | . > 10799 and . < 10801)'
check "answered 202 in under a second once uploaded ($(python3 -c "print(round($t1-$t0,2))") s incl. the 345 MB upload)" \
    python3 -c "import sys; sys.exit(0 if $t1 - $t0 < 5 else 1)"
J=$(jget .id)
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
# a chunk is decoded on its own, so a word may be recognised differently (mostly a
# substitution, "a real blow" / "the amiable" is one insertion), but a piece of speech lost or
# doubled at a seam shows as several insertions or deletions
check "the text of the file transcribed whole: no word lost or doubled at a seam" python3 - "$A/chunked.json" "$A/ref.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["text"].split(); b = json.load(open(sys.argv[2]))["text"].split()
assert len(b) > 150, len(b)
INF = 10**9
# cost (edits, indels) minimised lexicographically by edits
d = [[(INF, 0)] * (len(b) + 1) for _ in range(len(a) + 1)]
for i in range(len(a) + 1): d[i][0] = (i, i)
for j in range(len(b) + 1): d[0][j] = (j, j)
for i in range(1, len(a) + 1):
    for j in range(1, len(b) + 1):
        x, y, z = d[i-1][j], d[i][j-1], d[i-1][j-1]
        d[i][j] = min((x[0] + 1, x[1] + 1), (y[0] + 1, y[1] + 1), (z[0] + (a[i-1] != b[j-1]), z[1]))
edits, indels = d[-1][-1]
print("words: chunked %d, whole %d; edits %d, of which insertions/deletions %d" % (len(a), len(b), edits, indels))
assert indels <= 4 and edits <= len(b) // 20 and abs(len(a) - len(b)) <= 2, (edits, indels)
PY

# ---- one instance killed mid-job: only its chunks in flight run again, on the other
req POST /api/jobs -F "file=@$A/three.wav" -F language=en
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
req GET "/api/jobs/$J2/transcript?format=json"
check "its text is the same as the first run's" test "$(jq -r .text "$TDIR/body")" = "$(jq -r .text "$A/chunked.json")"
for v in "$V1" "$V2"; do jreq POST "/api/vast/destroy/$v" '{}'; done
for v in "$V1" "$V2"; do wait_instance "$v" destroyed 60 || true; done
stop_server
check "no instance left running" test "$(sim_live_instances)" = 0
sim_stop
finish
