#!/usr/bin/env bash
# With OPENAI_API_KEY set, jobs go to the OpenAI API (here a local fake): the job records the
# backend, the key never shows in logs or responses, and API failures fail the job clearly.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
KEY=sk-test-fake-0000000000000000000000000000
# 5 s: the fake API's segments end at 4 s (a transcript's times stay inside its audio)
espeak-ng -v en-us -s 150 -w "$TDIR/a.wav" "hello there" && sox "$TDIR/a.wav" "$TDIR/a5.wav" pad 0 4 && mv "$TDIR/a5.wav" "$TDIR/a.wav"

start_fake() { # start_fake [extra args] -> FAKE_PID, FAKE_URL
    python3 -u "$ROOT/tests/integration/fake_openai.py" --key "$KEY" --log "$TDIR/fake.log" "$@" > "$TDIR/fake.out" 2>&1 &
    FAKE_PID=$!
    local i p=""
    for i in $(seq 1 100); do p=$(sed -n 's/fake-openai listening on //p' "$TDIR/fake.out"); [ -n "$p" ] && break; sleep 0.05; done
    [ -n "$p" ] || fail "fake openai server starts" "$(tail -n 5 "$TDIR/fake.out")"
    FAKE_URL=http://127.0.0.1:$p/v1
}

start_fake
start_server OPENAI_API_KEY=$KEY OPENAI_BASE_URL=$FAKE_URL LOG_LEVEL=debug
req POST /api/jobs -F "file=@$TDIR/a.wav" -F language=en -F prompt=greetings
ID=$(jget .id)
check "job done through the OpenAI backend" test "$(wait_job "$ID" 20)" = done
req GET "/api/jobs/$ID"
expect "job records backend openai" 200 '.backend == "openai" and .engine == "openai"'
req GET "/api/jobs/$ID/transcript?format=verbose_json"
expect "transcript from the API's segments" 200 '.text == "this transcript came from the fake openai api" and (.segments|length) == 2 and .segments[1].start == 2'
check "fake saw our key and fields" bash -c "jq -e 'select(.auth_ok and .fields.model == \"whisper-1\" and .fields.response_format == \"verbose_json\" and .fields.language == \"en\" and .fields.prompt == \"greetings\" and (.fields.file|startswith(\"<file\")))' '$TDIR/fake.log' >/dev/null"
req POST /v1/audio/transcriptions -F "file=@$TDIR/a.wav"
expect "OpenAI-compatible endpoint on top of the OpenAI backend" 200 '.text == "this transcript came from the fake openai api"'
stop_server
check "key never logged" bash -c "! grep -q '$KEY' '$SERVER_LOG'"
kill $FAKE_PID; wait $FAKE_PID 2>/dev/null

start_fake --fail-status 401
start_server OPENAI_API_KEY=sk-test-wrong-key-111111111111111111111 OPENAI_BASE_URL=$FAKE_URL
req POST /api/jobs -F "file=@$TDIR/a.wav"
ID=$(jget .id)
check "rejected key fails the job" test "$(wait_job "$ID" 20)" = failed
req GET "/api/jobs/$ID"
expect "failure names the API's message, not the key" 200 '(.error|test("401")) and (.error|test("Incorrect API key")) and (.error|test("sk-test") | not)'
stop_server
kill $FAKE_PID; wait $FAKE_PID 2>/dev/null

start_server GPU_ONLY=1 OPENAI_API_KEY=$KEY OPENAI_BASE_URL=http://127.0.0.1:9/v1
req POST /api/jobs -F "file=@$TDIR/a.wav"
ID=$(jget .id); sleep 2.5
req GET "/api/jobs/$ID"
expect "GPU_ONLY: no OpenAI fallback either" 200 '.state == "queued"'
stop_server
finish
