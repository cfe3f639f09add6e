#!/usr/bin/env bash
# `gpuscribe worker` (loopback only, health, a job through curl, refusals, clean shutdown) and
# `gpuscribe transcribe` (local engine on espeak-ng and librivox speech in every format with
# SRT/VTT syntax checks, -o, errors, and --server against a running `gpuscribe serve`).
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
LIBRIVOX=/usr/share/pocketsphinx/test/data/librivox
CLIP=$LIBRIVOX/sense_and_sensibility_01_austen_64kb-0880.wav   # "he was not an ill disposed young man"
CLIP2=$LIBRIVOX/sense_and_sensibility_01_austen_64kb-0870.wav
cd "$TDIR"

# ---- SRT / VTT checkers: contiguous cue numbers, HH:MM:SS,mmm --> HH:MM:SS,mmm, monotone
check_srt() {
    awk '
    function ms(t,  a, b) { split(t, a, ":"); split(a[3], b, ","); return ((a[1] * 60 + a[2]) * 60 + b[1]) * 1000 + b[2] }
    BEGIN { st = 0; n = 0; prev = 0; bad = 0 }
    { sub(/\r$/, "") }
    st == 0 && $0 == "" { next }
    st == 0 { n++; if ($0 != n) { bad = 1; print "cue number " $0 ", want " n > "/dev/stderr" } st = 1; next }
    st == 1 {
        if ($0 !~ /^[0-9][0-9]:[0-5][0-9]:[0-5][0-9],[0-9][0-9][0-9] --> [0-9][0-9]:[0-5][0-9]:[0-5][0-9],[0-9][0-9][0-9]$/) {
            bad = 1; print "bad time line: " $0 > "/dev/stderr"
        } else { s = ms($1); e = ms($3); if (s > e || s < prev) { bad = 1; print "not monotone: " $0 > "/dev/stderr" } prev = e }
        st = 2; nt = 0; next
    }
    st == 2 { if ($0 == "") { if (nt == 0) bad = 1; st = 0 } else nt++; next }
    END { if (st == 1 || n == 0) bad = 1; exit bad }' "$1"
}
check_vtt() {
    awk '
    function ms(t,  a, b) { split(t, a, ":"); split(a[3], b, "."); return ((a[1] * 60 + a[2]) * 60 + b[1]) * 1000 + b[2] }
    BEGIN { bad = 0; n = 0; prev = 0 }
    NR == 1 { if ($0 != "WEBVTT") bad = 1; next }
    / --> / {
        if ($0 !~ /^[0-9][0-9]:[0-5][0-9]:[0-5][0-9]\.[0-9][0-9][0-9] --> [0-9][0-9]:[0-5][0-9]:[0-5][0-9]\.[0-9][0-9][0-9]$/) {
            bad = 1; print "bad time line: " $0 > "/dev/stderr"
        } else { s = ms($1); e = ms($3); if (s > e || s < prev) bad = 1; prev = e }
        n++
    }
    END { if (n == 0) bad = 1; exit bad }' "$1"
}

# ---- worker: loopback only
for h in 0.0.0.0:0 '[::]:0' 192.0.2.7:8000; do
    out=$("$GS_BIN" worker --listen "$h" --engine sphinx 2>&1); rc=$?
    if [ "$rc" = 2 ] && grep -q "refusing to listen" <<<"$out"; then pass "worker refuses $h"; else fail "worker refuses $h" "rc $rc: $out"; fi
done
out=$("$GS_BIN" worker --listen nonsense 2>&1); rc=$?
check "worker: bad --listen is a usage error" test "$rc" = 2
out=$("$GS_BIN" worker --listen 127.0.0.1:0 --bogus 2>&1); rc=$?
check "worker: unknown option is a usage error" test "$rc" = 2

# ---- worker: serve one job through curl
mkdir -p "$TDIR/wtmp"
WLOG=$TDIR/worker.log
TMPDIR=$TDIR/wtmp "$GS_BIN" worker --listen 127.0.0.1:0 --engine sphinx >"$WLOG" 2>&1 &
WPID=$!
SERVER_PID=$WPID   # lib.sh kills it on exit if something goes wrong
wport=$(log_port "$WLOG" "$WPID" '.*worker listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*')
if [ -z "$wport" ]; then fail "worker starts" "$(cat "$WLOG")"; finish; exit 1; fi
pass "worker starts and logs its URL"
BASE=http://127.0.0.1:$wport
req GET /health
expect "worker health" 200 '.status == "ok" and .engine == "sphinx" and .gpu == false and .busy == false and .jobs_done == 0 and (.model | type) == "string" and (.version | type) == "string"'
req POST "/transcribe?job_id=it-1&language=en" --data-binary @"$CLIP" -H 'Content-Type: audio/wav'
expect "worker accepts a WAV" 202 '.job_id == "it-1" and (.state == "queued" or .state == "running")'
for i in $(seq 1 200); do
    req GET /jobs/it-1
    [ "$(jget .state)" = done ] && break
    sleep 0.1
done
expect "worker job done" 200 '.state == "done" and .progress == 1'
req GET /jobs/it-1/result
expect "worker result is the store form" 200 '(.segments | length) >= 1 and .language == "en" and (.duration > 2.9)'
check "worker heard the words" grep -q "young man" <<<"$BODY"
req POST "/transcribe?job_id=it-1" --data-binary @"$CLIP"
expect "same job_id again: the existing job" 200 '.state == "done"'
req DELETE /jobs/it-1
expect "delete the job" 200 '.deleted == true'
req GET /jobs/it-1/result
expect "result gone after delete" 404 '.error'
req POST "/transcribe?job_id=it-2" --data-binary @/etc/hostname
expect "non-WAV refused" 415 '.error | test("not a WAV")'
req GET /jobs/nope
expect "unknown job" 404 '.error | test("unknown job")'
req GET /health
expect "health after one job" 200 '.jobs_done == 1'
kill -TERM "$WPID"; wait "$WPID"; rc=$?; SERVER_PID=""
check "worker exits 0 on SIGTERM" test "$rc" = 0
check "worker sanitizer clean" bash -c "! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' '$WLOG'"
check "worker left no files" test -z "$(ls -A "$TDIR/wtmp")"

# ---- transcribe locally: espeak-ng speech
espeak-ng -v en-us -s 150 -w "$TDIR/speech.wav" "hello world, this is a test of the transcription system." 2>/dev/null
"$GS_BIN" transcribe "$TDIR/speech.wav" >"$TDIR/speech.txt" 2>"$TDIR/err"; rc=$?
check "transcribe espeak-ng speech (22 kHz wav) exits 0" test "$rc" = 0
check "espeak-ng speech heard (\"hello world\")" grep -qi "hello world" "$TDIR/speech.txt"
check "no progress bar when stderr is not a terminal" test ! -s "$TDIR/err"

# ---- every format on a librivox clip
for f in txt json verbose_json srt vtt; do
    "$GS_BIN" transcribe "$CLIP2" --format "$f" --language en >"$TDIR/out.$f" 2>"$TDIR/err.$f"; rc=$?
    [ "$rc" = 0 ] || fail "transcribe --format $f" "rc $rc: $(cat "$TDIR/err.$f")"
done
check "txt has the words" grep -q "leisure to consider" "$TDIR/out.txt"
check "json is {text}" jq -e '(keys == ["text"]) and (.text | test("leisure"))' "$TDIR/out.json"
check "verbose_json shape" jq -e '.task == "transcribe" and .language == "english" and .duration > 7 and (.segments | length) >= 1 and (.segments[0] | has("avg_logprob"))' "$TDIR/out.verbose_json"
check "srt syntax" check_srt "$TDIR/out.srt"
check "vtt syntax" check_vtt "$TDIR/out.vtt"
# a longer input with several cues: three clips and silences behind one canonical header
le32() { local v=$1 i; for i in 0 8 16 24; do printf "\\x$(printf %02x $(((v >> i) & 255)))"; done; }
for c in 0870 0880 0890; do tail -c +45 "$LIBRIVOX/sense_and_sensibility_01_austen_64kb-$c.wav"; head -c 32000 /dev/zero; done >"$TDIR/joined.pcm"
n=$(stat -c %s "$TDIR/joined.pcm")
{ printf RIFF; le32 $((36 + n)); head -c 36 "$CLIP2" | tail -c +9; printf data; le32 "$n"; cat "$TDIR/joined.pcm"; } >"$TDIR/joined.wav"
"$GS_BIN" transcribe "$TDIR/joined.wav" --format srt -o "$TDIR/joined.srt" >"$TDIR/stdout" 2>&1; rc=$?
check "-o writes the file, nothing on stdout" test "$rc" = 0 -a -s "$TDIR/joined.srt" -a ! -s "$TDIR/stdout"
check "multi-cue srt syntax" check_srt "$TDIR/joined.srt"
check "multi-cue srt has several cues" test "$(grep -c -- ' --> ' "$TDIR/joined.srt")" -ge 3
"$GS_BIN" transcribe "$TDIR/joined.wav" --format vtt -o "$TDIR/joined.vtt" 2>/dev/null
check "multi-cue vtt syntax" check_vtt "$TDIR/joined.vtt"
# -o through a symlink edits its target; a device or fifo is written through, never replaced
ln -s joined.vtt "$TDIR/link.txt"
"$GS_BIN" transcribe "$CLIP2" --format txt -o "$TDIR/link.txt" 2>/dev/null
check "-o symlink: still a symlink, the target written" bash -c "[ -L '$TDIR/link.txt' ] && grep -q 'leisure to consider' '$TDIR/joined.vtt'"
if mknod "$TDIR/null.dev" c 1 3 2>/dev/null; then
    "$GS_BIN" transcribe "$CLIP2" --format txt -o "$TDIR/null.dev" >"$TDIR/stdout" 2>&1; rc=$?
    check "-o a character device: written through, still the device" bash -c "[ $rc = 0 ] && [ -c '$TDIR/null.dev' ] && [ \$(stat -c %t,%T '$TDIR/null.dev') = 1,3 ]"
fi
mkfifo "$TDIR/out.fifo"
cat "$TDIR/out.fifo" >"$TDIR/fifo.txt" & catpid=$!
"$GS_BIN" transcribe "$CLIP2" --format txt -o "$TDIR/out.fifo" 2>/dev/null; rc=$?
wait "$catpid"
check "-o a fifo: written through, still a fifo" bash -c "[ $rc = 0 ] && [ -p '$TDIR/out.fifo' ] && grep -q 'leisure to consider' '$TDIR/fifo.txt'"

# ---- errors
expect_fail() {  # NAME WANT_RC PATTERN CMD...
    local name=$1 want=$2 pat=$3; shift 3
    local out rc
    out=$("$@" 2>&1 >/dev/null); rc=$?
    if [ "$rc" = "$want" ] && grep -qi -- "$pat" <<<"$out"; then pass "$name"; else fail "$name" "rc $rc: $out"; fi
}
expect_fail "missing file" 1 "file not found" "$GS_BIN" transcribe "$TDIR/nope.wav"
expect_fail "bad audio" 1 "unrecognised or corrupt audio" "$GS_BIN" transcribe /etc/hostname
expect_fail "unknown format" 2 "unknown format 'xml'" "$GS_BIN" transcribe "$CLIP" --format xml
expect_fail "no FILE" 2 "which FILE" "$GS_BIN" transcribe
expect_fail "unsupported language on the CPU engine" 1 "only supports English" "$GS_BIN" transcribe "$CLIP" --language de
expect_fail "unreachable server" 1 "cannot reach the server" "$GS_BIN" transcribe "$CLIP" --server http://127.0.0.1:1
expect_fail "bad server URL" 2 "--server takes" "$GS_BIN" transcribe "$CLIP" --server ftp://x
expect_fail "-o a directory" 1 "is a directory" "$GS_BIN" transcribe "$CLIP" -o "$TDIR"
check "failed -o leaves no file" bash -c "! '$GS_BIN' transcribe /etc/hostname -o '$TDIR/never.txt' 2>/dev/null; test ! -e '$TDIR/never.txt'"

# ---- transcribe through a running server (POST /api/jobs, poll, GET transcript)
start_server API_TOKEN=it-token-0123456789 || { fail "server starts"; finish; exit 1; }
req POST /api/jobs -H 'Authorization: Bearer it-token-0123456789'
if [ "$STATUS" = 404 ] || [ "$STATUS" = 405 ]; then
    skip "transcribe --server" "the server has no /api/jobs yet"
else
    API_TOKEN=it-token-0123456789 "$GS_BIN" transcribe "$CLIP2" --server "$BASE" --format srt >"$TDIR/srv.srt" 2>"$TDIR/srv.err"; rc=$?
    check "transcribe --server exits 0" test "$rc" = 0
    check "transcribe --server srt syntax" check_srt "$TDIR/srv.srt"
    check "server and local agree" diff -q "$TDIR/srv.srt" "$TDIR/out.srt"
    expect_fail "--server without the token" 1 "401" "$GS_BIN" transcribe "$CLIP" --server "$BASE"
    API_TOKEN=it-token-0123456789 expect_fail "--server with bad audio" 1 "refused" "$GS_BIN" transcribe /etc/hostname --server "$BASE"
fi
stop_server && pass "server clean shutdown"
finish
