#!/usr/bin/env bash
# Transcription through the server: uploads (multipart and raw), the queue, every transcript
# format, SSE events, the OpenAI-compatible endpoint, bad inputs, cancel/delete, GPU_ONLY,
# and a SIGKILLed controller that loses no job.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
LIBRI=/usr/share/pocketsphinx/test/data/librivox
A=$TDIR/audio; mkdir -p "$A"

# ---- fixtures: espeak-ng sentences (decoded exactly with a JSGF grammar of them), real speech
S1="the quick brown fox jumps over the lazy dog"
S2="please call stella and ask her to bring these things"
S3="we will meet at the station at nine"
espeak-ng -v en-us -s 150 -w "$A/s1.wav" "$S1"
espeak-ng -v en-us -s 150 -w "$A/s2.wav" "$S2"
espeak-ng -v en-us -s 150 -w "$A/s3.wav" "$S3"
sox -D "$A/s1.wav" "$A/gap.wav" "$A/s2.wav" "$A/gap.wav" "$A/s3.wav" "$A/speech.wav" 2>/dev/null ||
  { sox -n -r 22050 -c 1 "$A/gap.wav" trim 0 1; sox -D "$A/s1.wav" "$A/gap.wav" "$A/s2.wav" "$A/gap.wav" "$A/s3.wav" "$A/speech.wav"; }
ffmpeg -loglevel error -y -i "$A/speech.wav" -c:a libmp3lame "$A/speech.mp3"
ffmpeg -loglevel error -y -i "$A/speech.wav" -c:a aac "$A/speech.m4a"
printf '#JSGF V1.0;\ngrammar t;\npublic <utt> = <s>+;\n<s> = %s | %s | %s;\n' "$S1" "$S2" "$S3" > "$A/t.gram"
: > "$A/empty.wav"
head -c 20000 /dev/urandom > "$A/noise.bin"
echo "definitely not audio" > "$A/text.wav"
head -c 3000 "$A/speech.mp3" > "$A/trunc.mp3"

wer() { # wer REF HYP -> word error rate (Levenshtein on words)
    python3 - "$1" "$2" <<'PY'
import sys,re
r=re.findall(r"[a-z']+",sys.argv[1].lower()); h=re.findall(r"[a-z']+",sys.argv[2].lower())
d=list(range(len(h)+1))
for i in range(1,len(r)+1):
    p=d[:]; d[0]=i
    for j in range(1,len(h)+1):
        d[j]=min(p[j]+1,d[j-1]+1,p[j-1]+(r[i-1]!=h[j-1]))
print("%.3f"%(d[len(h)]/max(1,len(r))))
PY
}
srt_ok() { # valid SRT: numbered cues, well-formed and monotone times
    python3 - "$1" <<'PY'
import sys,re
t=open(sys.argv[1]).read().strip().split("\n\n"); last=-1
for n,c in enumerate(t,1):
    l=c.split("\n"); assert l[0]==str(n),l
    m=re.fullmatch(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})",l[1]); assert m,l[1]
    g=list(map(int,m.groups())); a=g[0]*3600+g[1]*60+g[2]+g[3]/1000; b=g[4]*3600+g[5]*60+g[6]+g[7]/1000
    assert last<=a<=b,(last,a,b); last=b; assert len(l)>=3 and l[2].strip()
PY
}
vtt_ok() {
    python3 - "$1" <<'PY'
import sys,re
t=open(sys.argv[1]).read(); assert t.startswith("WEBVTT\n\n"),t[:20]
last=-1
for c in t.strip().split("\n\n")[1:]:
    l=c.split("\n")
    m=re.fullmatch(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})",l[0]); assert m,l
    g=list(map(int,m.groups())); a=g[0]*3600+g[1]*60+g[2]+g[3]/1000; b=g[4]*3600+g[5]*60+g[6]+g[7]/1000
    assert last<=a<=b; last=b
PY
}

# ================= exact words through the REST API (grammar-constrained CPU engine)
start_server GS_SPHINX_JSGF="$A/t.gram" JOBS_CONCURRENCY=1
(curl -sN "$BASE/api/events" > "$TDIR/events.txt" 2>/dev/null &) ; sleep 0.3
req POST /api/jobs -F "file=@$A/speech.wav" -F language=en
expect "multipart upload -> 202 preparing job" 202 '.state == "preparing" and (.id|length) == 16 and .filename == "speech.wav" and .audio_duration > 5'
ID=$(jget .id)
check "job finishes" test "$(wait_job "$ID")" = done
req GET "/api/jobs/$ID"
expect "job record: engine, backend, timing" 200 '.engine == "sphinx" and .backend == "local" and .progress == 1 and .attempts == 1 and .processing_s > 0 and .error == null'
req GET "/api/jobs/$ID/transcript?format=txt"
check "exact words (txt)" test "$(wer "$S1 $S2 $S3" "$BODY")" = "0.000"
req GET "/api/jobs/$ID/transcript?format=json"
expect "json format" 200 ".text == \"$S1 $S2 $S3\""
req GET "/api/jobs/$ID/transcript?format=verbose_json"
expect "verbose_json: 3 segments at the pauses, monotone words" 200 \
  '(.segments|length) == 3 and .language == "english" and ([.segments[].start] == ([.segments[].start]|sort)) and (.words|length) >= 20 and ([.words[].start] == ([.words[].start]|sort)) and (.words[-1].end <= .duration + 0.01)'
curl -s "$BASE/api/jobs/$ID/transcript?format=srt" > "$TDIR/t.srt"
check "srt syntax and monotone times" srt_ok "$TDIR/t.srt"
check "srt has the 3 sentences as cues" test "$(grep -c -- '-->' "$TDIR/t.srt")" = 3
curl -s "$BASE/api/jobs/$ID/transcript?format=vtt" > "$TDIR/t.vtt"
check "vtt syntax and monotone times" vtt_ok "$TDIR/t.vtt"
check "srt download header" bash -c "curl -s -D - -o /dev/null '$BASE/api/jobs/$ID/transcript?format=srt&download=1' | grep -qi 'content-disposition: attachment; filename=\"transcript-$ID.srt\"'"
check "audio range request -> 206 with the right bytes" bash -c "test \"\$(curl -s -H 'Range: bytes=8-11' '$BASE/api/jobs/$ID/audio')\" = WAVE"
check "audio range answer headers" bash -c "curl -s -D - -o /dev/null -H 'Range: bytes=-100' '$BASE/api/jobs/$ID/audio' | grep -q '^Content-Range: bytes [0-9]*-[0-9]*/[0-9]*'"
req GET "/api/jobs/$ID/audio" -H 'Range: bytes=99999999-'
expect "unsatisfiable range -> 416" 416 '.error'
check "original audio served back" test "$(curl -s "$BASE/api/jobs/$ID/audio" | md5sum)" = "$(md5sum < "$A/speech.wav")"

for f in speech.mp3 speech.m4a; do
    req POST "/api/jobs" -F "file=@$A/$f"
    id=$(jget .id)
    st=$(wait_job "$id")
    txt=$(curl -s "$BASE/api/jobs/$id/transcript?format=txt")
    check "$f transcribed exactly" test "$st $(wer "$S1 $S2 $S3" "$txt")" = "done 0.000"
done
req POST "/api/jobs?filename=raw.wav&language=en&response_format=srt" --data-binary "@$A/speech.wav" -H 'Content-Type: audio/wav'
expect "raw body upload with query options" 202 '.filename == "raw.wav" and .options.language == "en" and .options.response_format == "srt"'
RAW=$(jget .id)
check "raw upload finishes" test "$(wait_job "$RAW")" = done

# ---- events
sleep 0.3
check "SSE: job.created" grep -q "event: job.created" "$TDIR/events.txt"
check "SSE: job.progress" grep -q "event: job.progress" "$TDIR/events.txt"
check "SSE: job.state done for the first job" bash -c "grep -A1 'event: job.state' '$TDIR/events.txt' | grep -q '\"id\":\"$ID\",\"state\":\"done\"'"

# ---- list and paging
req GET "/api/jobs?limit=2"
expect "list is paged, newest first" 200 '(.jobs|length) == 2 and .total == 4 and .limit == 2 and .jobs[0].id == "'"$RAW"'"'
req GET "/api/jobs?state=done&offset=3"
expect "list offset and state filter" 200 '(.jobs|length) == 1 and .jobs[0].id == "'"$ID"'"'

# ---- OpenAI-compatible endpoint
req POST /v1/audio/transcriptions -F "file=@$A/speech.wav" -F model=whisper-1
expect "v1 json" 200 ".text == \"$S1 $S2 $S3\""
req POST /v1/audio/transcriptions -F "file=@$A/speech.wav" -F model=whisper-1 -F response_format=text
check "v1 text" test "$BODY" = "$S1 $S2 $S3"
req POST /v1/audio/transcriptions -F "file=@$A/speech.wav" -F response_format=verbose_json -F 'timestamp_granularities[]=word' -F 'timestamp_granularities[]=segment'
expect "v1 verbose_json with words" 200 '.task == "transcribe" and (.segments|length) == 3 and (.words|length) > 10 and (.words[0]|has("start") and has("end") and has("word"))'
curl -s -F "file=@$A/speech.wav" -F response_format=srt "$BASE/v1/audio/transcriptions" > "$TDIR/v1.srt"
check "v1 srt" srt_ok "$TDIR/v1.srt"
req POST /v1/audio/transcriptions -F "file=@$A/noise.bin"
expect "v1 bad audio -> OpenAI error shape" 400 '.error.type == "invalid_request_error" and .error.param == "file" and (.error.message|test("invalid audio"))'
req POST /v1/audio/transcriptions -F model=whisper-1
expect "v1 without file" 400 '.error.message | test("no audio file")'
req POST /v1/audio/transcriptions -F "file=@$A/speech.wav" -F response_format=docx
expect "v1 bad response_format" 400 '.error.param == "response_format"'
req GET /v1/models
expect "v1 models" 200 '.object == "list" and (.data|map(.id)|index("whisper-1")) != null'

# ---- bad inputs: each a clear 4xx, nothing left behind
n_before=$(curl -s "$BASE/api/jobs" | jq .total)
req POST /api/jobs -F "file=@$A/empty.wav"
expect "empty file refused" 400 '.error | test("empty")'
req POST /api/jobs -F "file=@$A/noise.bin"
expect "random bytes refused" 400 '.error | test("unrecognised or corrupt")'
req POST /api/jobs -F "file=@$A/text.wav"
expect "text named .wav refused" 400 '.error | test("invalid audio")'
# a truncated file passes the header probe (it is answered 202 at once) and fails while it
# is prepared, before any engine or GPU sees it; the synchronous route answers 400
req POST /api/jobs -F "file=@$A/trunc.mp3"
expect "truncated mp3 accepted after the header probe" 202 '.state == "preparing" or .state == "failed"'
TJ=$(jget .id)
wait_job "$TJ" 30 >/dev/null
req GET "/api/jobs/$TJ"
expect "truncated mp3 fails while prepared" 200 '.state == "failed" and .error_kind == "audio" and (.error | test("truncated|corrupt")) and .attempts == 0 and .chunks_total == 0'
check "its decoded audio is not kept" test ! -e "$SERVER_DIR/data/jobs/$TJ/audio.wav"
req DELETE "/api/jobs/$TJ"
req POST /v1/audio/transcriptions -F "file=@$A/trunc.mp3" -F model=whisper-1
expect "truncated mp3 refused by the synchronous route" 400 '.error.message | test("truncated|corrupt")'
req POST /api/jobs -F language=en
expect "no file field" 400 '.error | test("no audio file")'
req POST /api/jobs -F "file=@$A/speech.wav" -F "other=@$A/speech.wav"
expect "two files refused" 400 '.error | test("one audio file")'
req POST /api/jobs -F "file=@$A/speech.wav" -F language='e n;'
expect "bad language" 400 '.error | test("invalid language")'
req POST /api/jobs -F "file=@$A/speech.wav" -F temperature=7
expect "bad temperature" 400 '.error | test("temperature")'
req POST /api/jobs -F "file=@$A/speech.wav" -F response_format=pdf
expect "bad response_format" 400 '.error | test("response_format")'
req POST /api/jobs -H 'Content-Type: multipart/form-data' --data-binary 'garbage'
expect "multipart without boundary" 400 '.error'
check "no job and no files left by bad uploads" test "$(curl -s "$BASE/api/jobs" | jq .total) $(ls "$SERVER_DIR/data/jobs" | wc -l)" = "$n_before $n_before"
req GET /api/jobs/0123456789abcdef
expect "unknown job -> 404" 404 '.error | test("no such job")'
req GET "/api/jobs/../../etc"
expect "odd job id -> 404" 404
req GET "/api/jobs/$ID/transcript?format=docx"
expect "unknown transcript format" 400 '.error | test("unknown format")'
req GET "/api/jobs?limit=0"
expect "bad limit" 400
req GET "/api/jobs?state=weird"
expect "bad state filter" 400

# ---- delete a finished job: row and files gone
req DELETE "/api/jobs/$RAW"
expect "delete a done job" 200 '.state == "deleted"'
check "its files are gone" test ! -e "$SERVER_DIR/data/jobs/$RAW"
req GET "/api/jobs/$RAW"
expect "deleted job is gone" 404
stop_server && pass "clean shutdown after jobs"

# ================= cancel, GPU_ONLY, and a SIGKILLed controller
# the 5 librivox clips x 3 = ~75 s of real speech (about 12 s of CPU work)
long_speech_wav "$A/long.wav" 3
DATA=$TDIR/persist
start_server GPU_ONLY=1
req POST /api/jobs -F "file=@$A/s1.wav"
GID=$(jget .id); sleep 2.5
req GET "/api/jobs/$GID"
expect "GPU_ONLY: job waits visibly" 200 '.state == "queued" and (.waiting_for|test("GPU"))'
req DELETE "/api/jobs/$GID"
expect "cancel a queued job" 200 '.state == "cancelled"'
req GET "/api/jobs/$GID"
expect "cancelled job stays listed" 200 '.state == "cancelled"'
stop_server

start_server
req POST /api/jobs -F "file=@$A/long.wav"
LID=$(jget .id)
check "long job starts" wait_job_state "$LID" running 10
sleep 1
req DELETE "/api/jobs/$LID"
expect "cancel a running job" 200 '.state == "cancelled"'
sleep 1
req GET "/api/jobs/$LID"
expect "running job stops as cancelled" 200 '.state == "cancelled" and .finished_at != null'
wait_for "cancelled job's files removed" 15 test ! -e "$DATA/jobs/$LID"  # the engine stops at its next chunk

req POST /api/jobs -F "file=@$A/long.wav"
KID=$(jget .id)
req POST /api/jobs -F "file=@$A/s2.wav"
K2=$(jget .id)
check "job to kill starts" wait_job_state "$KID" running 10
sleep 1
check "job to kill still runs" test "$(curl -s "$BASE/api/jobs/$KID" | jq -r .state)" = running
# an upload still arriving when the controller dies: never acknowledged, so swept at restart
curl -s --limit-rate 100k -F "file=@$A/long.wav" "$BASE/api/jobs" >/dev/null 2>&1 &
UPC=$!
half=""
for i in $(seq 1 100); do
    half=$(ls "$DATA/jobs" | grep -v -e "$KID" -e "$K2" | head -n1)
    [ -n "$half" ] && [ -s "$DATA/jobs/$half/upload" ] && break
    half=""; sleep 0.1
done
check "an upload is arriving as the controller is killed" test -n "$half"
kill -KILL "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; rc=$?; SERVER_PID=""
check "controller SIGKILLed mid-job" test "$rc" = 137
kill "$UPC" 2>/dev/null; wait "$UPC" 2>/dev/null
check "the half upload is still on disk" test -s "$DATA/jobs/$half/upload"
start_server
check "restart logs the requeue" grep -q "interrupted chunk(s) queued again" "$SERVER_LOG"
check "the upload cut by SIGKILL is swept at restart" test ! -e "$DATA/jobs/$half"
check "the sweep is logged" grep -q "swept what a stopped controller left: 1 upload directory" "$SERVER_LOG"
check "killed job runs again and finishes" test "$(wait_job "$KID" 120)" = done
check "queued job behind it finishes" test "$(wait_job "$K2" 60)" = done
req GET "/api/jobs/$KID"
expect "exactly one completed run recorded" 200 '.attempts == 2 and .state == "done"'
# stopped between a job's last chunk and its stitching (GS_FAULT, test-only): done at restart
stop_server
start_server GS_FAULT=job_before_stitch
req POST /api/jobs -F "file=@$A/s2.wav"
FID=$(jget .id)
for i in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
wait "$SERVER_PID" 2>/dev/null; rc=$?; SERVER_PID=""
check "the controller stopped at job_before_stitch" test "$rc" = 70
start_server
check "restart stitches the job whose chunks were all done" grep -q "job $FID: every chunk was done before the stop" "$SERVER_LOG"
check "... and it is done, run once" test "$(wait_job "$FID" 10)" = done
req GET "/api/jobs/$FID"
expect "its record: one attempt, its one chunk done" 200 '.attempts == 1 and .chunks_done == 1 and (.chunks[0].state == "done")'
req GET "/api/jobs/$KID/transcript?format=txt"
REF=$(for i in 1 2 3; do sed -e 's/([^)]*)//g' -e 's/<\/\?s>//g' "$LIBRI/transcription"; done | tr '\n' ' ')
w=$(wer "$REF" "$BODY")
check "real speech WER below 0.4 (got $w)" python3 -c "import sys; sys.exit(0 if $w < 0.4 else 1)"
stop_server
finish
