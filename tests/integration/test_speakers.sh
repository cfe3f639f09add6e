#!/usr/bin/env bash
# Speakers (issue 16): a two-voice conversation (espeak-ng en-us+m3 low and en-gb+f4 high,
# exact words through a JSGF grammar) transcribed by the local CPU engine with diarize=true:
# each reference turn's words carry one speaker id, the two voices get different ids, every
# format shows them (srt, vtt, txt, verbose_json, diarized_json, the OpenAI endpoint), a
# PATCH renames them everywhere; bad speaker options and renames get a 4xx JSON error.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
A=$TDIR/audio; mkdir -p "$A"

S=("the quick brown fox jumps over the lazy dog"
   "please call stella and ask her to bring these things"
   "we will meet at the station at nine"
   "she sells sea shells by the sea shore"
   "the rain in spain stays mainly in the plain")
V=("en-us+m3 -p 30" "en-gb+f4 -p 75" "en-us+m3 -p 30" "en-gb+f4 -p 75" "en-us+m3 -p 30")
SPK=(A B A B A)
sox -n -r 16000 -c 1 -b 16 "$A/gap.wav" trim 0 0.7
parts=(); t=0; : > "$A/ref.txt"
for i in 0 1 2 3 4; do
    # shellcheck disable=SC2086
    espeak-ng -v ${V[$i]} -s 150 -w "$A/raw$i.wav" "${S[$i]}"
    sox "$A/raw$i.wav" -r 16000 -c 1 -b 16 "$A/t$i.wav"
    d=$(soxi -D "$A/t$i.wav")
    echo "$t $(awk -v a="$t" -v b="$d" 'BEGIN{print a+b}') ${SPK[$i]}" >> "$A/ref.txt"
    t=$(awk -v a="$t" -v b="$d" 'BEGIN{print a+b+0.7}')
    parts+=("$A/t$i.wav" "$A/gap.wav")
done
sox "${parts[@]}" "$A/conv.wav"
printf '#JSGF V1.0;\ngrammar t;\npublic <utt> = <s>+;\n<s> = %s | %s | %s | %s | %s;\n' "${S[@]}" > "$A/t.gram"

# turns_ok VERBOSE_JSON: every reference turn's words have one speaker_id; A's turns share
# one, B's another, A != B; the words cover every turn
turns_ok() {
    python3 - "$1" "$A/ref.txt" <<'PY'
import json, sys
v = json.load(open(sys.argv[1])); ref = [l.split() for l in open(sys.argv[2])]
ids = {}
for s, e, who in ref:
    s, e = float(s), float(e)
    ws = [w for w in v["words"] if s <= (w["start"] + w["end"]) / 2 <= e]
    assert len(ws) >= 4, ("too few words in turn", s, e, len(ws))
    got = {w["speaker_id"] for w in ws}
    assert len(got) == 1, ("turn has several speakers", s, e, got)
    ids.setdefault(who, set()).update(got)
assert all(len(x) == 1 for x in ids.values()), ids
assert ids["A"] != ids["B"], ids
for seg in v["segments"]:
    assert all(w in ("Speaker 1", "Speaker 2") for w in [seg["speaker"]]), seg
PY
}

start_server GS_SPHINX_JSGF="$A/t.gram" JOBS_CONCURRENCY=1
(curl -sN "$BASE/api/events" > "$TDIR/events.txt" 2>/dev/null &) ; sleep 0.3

# ---- bad speaker options: 400 with a JSON error, and no job
for bad in "diarize=maybe" "num_speakers=0" "num_speakers=17" "num_speakers=two" \
           "min_speakers=3 max_speakers=2" "num_speakers=5 max_speakers=4" "num_speakers=2"; do
    args=(); for f in $bad; do args+=(-F "$f"); done
    [ "$bad" = "num_speakers=2" ] || args+=(-F diarize=true)
    [ "$bad" = "diarize=maybe" ] && args=(-F diarize=maybe)
    req POST /api/jobs -F "file=@$A/conv.wav" "${args[@]}"
    expect "refused: $bad" 400 '(.error|type) == "string"'
done
req POST /v1/audio/transcriptions -F "file=@$A/conv.wav" -F response_format=diarized_json -F diarize=false
expect "openai: diarized_json with diarize=false refused" 400 '.error.message | test("diarize")'
req GET /api/jobs
expect "no job left behind by the refusals" 200 '.total == 0'

# ---- diarize=true (the count given: the estimate needs minutes of speech, see README)
req POST /api/jobs -F "file=@$A/conv.wav" -F diarize=true -F num_speakers=2 -F language=en
expect "diarize=true accepted" 202 '.options.diarize == true and .options.num_speakers == 2'
ID=$(jget .id)
check "job finishes" test "$(wait_job "$ID" 120)" = done
req GET "/api/jobs/$ID"
expect "no speakers_error" 200 '.speakers_error == null'
check "job.diarizing events with progress" grep -q "\"id\": *\"$ID\".*\"progress\": *1" <(grep -A1 'event: job.diarizing' "$TDIR/events.txt" | grep data)
curl -s "$BASE/api/jobs/$ID/transcript?format=verbose_json" > "$TDIR/v.json"
BODY=$(cat "$TDIR/v.json"); STATUS=200
expect "verbose_json: two speakers with talk time" 200 \
  '(.speakers|length) == 2 and ([.speakers[].name] == ["Speaker 1","Speaker 2"]) and all(.speakers[]; .talk_time > 2)'
expect "verbose_json: speaker on every segment and word" 200 \
  'all(.segments[]; .speaker != null and .speaker_id != null) and all(.words[]; .speaker_id == 1 or .speaker_id == 2)'
check "each reference turn's words carry one speaker id; the voices differ" turns_ok "$TDIR/v.json"
req GET "/api/jobs/$ID/transcript?format=txt"
check "txt: a 'Speaker N:' line per turn, alternating" python3 - "$BODY" <<'PY'
import sys
lines = sys.argv[1].strip().split("\n")
assert len(lines) == 5, lines
who = [l.split(":")[0] for l in lines]
assert who[0] == who[2] == who[4] and who[1] == who[3] and who[0] != who[1], who
assert all(w in ("Speaker 1", "Speaker 2") for w in who), who
PY
req GET "/api/jobs/$ID/transcript?format=srt"
check "srt: 'Speaker 1: ' and 'Speaker 2: ' at turns" bash -c 'grep -c "^Speaker [12]: " <<<"$1" | grep -qx 5' _ "$BODY"
req GET "/api/jobs/$ID/transcript?format=vtt"
check "vtt: voice tags on every cue" bash -c '[ "$(grep -c "^<v Speaker [12]>" <<<"$1")" = 5 ] && grep -q "^<v Speaker 2>" <<<"$1"' _ "$BODY"
req GET "/api/jobs/$ID/transcript?format=diarized_json"
expect "diarized_json: OpenAI's shape" 200 \
  '.task == "transcribe" and .usage.type == "duration" and (.segments|length) == 5 and all(.segments[]; .type == "transcript.text.segment" and (.id|startswith("seg_")) and (.speaker|test("^Speaker [12]$"))) and ([.segments[].speaker]|unique|length) == 2'

# ---- renames
jreq PATCH "/api/jobs/$ID/speakers" '{"1": "Alice", "2": "Bob"}'
expect "PATCH speakers" 200 '[.speakers[].name] == ["Alice","Bob"]'
req GET "/api/jobs/$ID/transcript?format=txt"
check "txt uses the names" bash -c 'grep -q "^Alice: " <<<"$1" && grep -q "^Bob: " <<<"$1" && ! grep -q Speaker <<<"$1"' _ "$BODY"
req GET "/api/jobs/$ID/transcript?format=srt"
check "srt uses the names" bash -c 'grep -q "^Alice: " <<<"$1" && grep -q "^Bob: " <<<"$1" && ! grep -q Speaker <<<"$1"' _ "$BODY"
req GET "/api/jobs/$ID/transcript?format=vtt"
check "vtt uses the names" bash -c 'grep -q "^<v Alice>" <<<"$1" && grep -q "^<v Bob>" <<<"$1" && ! grep -q Speaker <<<"$1"' _ "$BODY"
req GET "/api/jobs/$ID/transcript?format=verbose_json"
expect "verbose_json uses the names" 200 '([.segments[].speaker]|unique) == ["Alice","Bob"] and ([.words[].speaker]|unique) == ["Alice","Bob"] and [.speakers[].name] == ["Alice","Bob"]'
req GET "/api/jobs/$ID/transcript?format=diarized_json"
expect "diarized_json uses the names" 200 '([.segments[].speaker]|unique) == ["Alice","Bob"]'
jreq PATCH "/api/jobs/$ID/speakers" '{"2": null}'
expect "null restores the default label" 200 '[.speakers[].name] == ["Alice","Speaker 2"]'
jreq PATCH "/api/jobs/$ID/speakers" '{"3": "Carol"}'
expect "unknown speaker id: 400" 400 '.error | test("unknown speaker id")'
jreq PATCH "/api/jobs/$ID/speakers" '{"0": "Zero"}'
expect "speaker id 0: 400" 400 '.error | test("unknown speaker id")'
jreq PATCH "/api/jobs/$ID/speakers" "{\"1\": \"$(printf 'x%.0s' $(seq 1 65))\"}"
expect "a name over 64 bytes: 400" 400 '.error | type == "string"'
jreq PATCH "/api/jobs/$ID/speakers" '{"1": 7}'
expect "a name that is not a string: 400" 400 '.error | type == "string"'
jreq PATCH "/api/jobs/$ID/speakers" '["Alice"]'
expect "a body that is not an object: 400" 400 '.error | type == "string"'
jreq PATCH "/api/jobs/$ID/speakers" '{}'
expect "an empty object: 400" 400 '.error | type == "string"'
jreq PATCH "/api/jobs/$ID/speakers" '{"1": "Carol", "9": "Nobody"}'
expect "all or nothing: a bad id renames nobody" 400
req GET "/api/jobs/$ID/transcript?format=verbose_json"
expect "... Alice is still Alice" 200 '.speakers[0].name == "Alice"'
jreq PATCH "/api/jobs/0123456789abcdef/speakers" '{"1": "A"}'
expect "unknown job: 404" 404 '.error | type == "string"'

# ---- a job without diarize has no speakers, and cannot be renamed
req POST /api/jobs -F "file=@$A/conv.wav"
PLAIN=$(jget .id)
check "plain job finishes" test "$(wait_job "$PLAIN" 120)" = done
req GET "/api/jobs/$PLAIN/transcript?format=verbose_json"
expect "no speakers without diarize" 200 '.speakers == null and all(.segments[]; has("speaker") | not)'
req GET "/api/jobs/$PLAIN/transcript?format=srt"
check "plain srt has no speaker names" bash -c '! grep -q Speaker <<<"$1"' _ "$BODY"
jreq PATCH "/api/jobs/$PLAIN/speakers" '{"1": "A"}'
expect "renaming a job without speakers: 409" 409 '.error | test("no speakers")'

# ---- the OpenAI endpoint: response_format=diarized_json implies diarize, num_speakers given
req POST /v1/audio/transcriptions -F "file=@$A/conv.wav" -F response_format=diarized_json -F num_speakers=2
expect "openai diarized_json" 200 \
  '(.segments|length) == 5 and ([.segments[].speaker]|unique) == ["Speaker 1","Speaker 2"] and .segments[0].speaker == .segments[2].speaker and .segments[1].speaker != .segments[0].speaker'
stop_server

# ---- a diarizer that fails loses no transcript
start_server GS_SPHINX_JSGF="$A/t.gram" JOBS_CONCURRENCY=1 GS_FAULT=diarize_fail
req POST /api/jobs -F "file=@$A/conv.wav" -F diarize=true
FID=$(jget .id)
check "job with a failing diarizer still finishes" test "$(wait_job "$FID" 120)" = done
req GET "/api/jobs/$FID"
expect "speakers_error says why" 200 '.state == "done" and (.speakers_error | test("speaker diarization failed"))'
req GET "/api/jobs/$FID/transcript?format=verbose_json"
expect "... and the transcript is there, without speakers" 200 '(.segments|length) == 5 and .speakers == null'
stop_server
finish
