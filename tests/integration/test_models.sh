#!/usr/bin/env bash
# Model downloads of remote/setup.sh against a local stand-in for the model host
# (fake_models.py: 302 to the bytes with X-Linked-Size / X-Linked-Etag, Range support):
# verified by size and the published sha256; a download cut off midway resumes where it
# stopped (a Range request) instead of starting again; a wrong sha256 fails with a clear
# GPUSCRIBE-ERROR and keeps nothing; a model already there is not fetched again; a model the
# image ships (/app/models) is linked, not downloaded; MODELS_PRELOAD fetches more; the
# HF_TOKEN goes in a header, never on a command line, and is not left on disk.
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null && command -v curl >/dev/null || { fail "prerequisites" "python3, curl"; finish; exit 1; }

HOST=$TDIR/host
mkdir -p "$HOST" "$TDIR/gs" "$TDIR/models" "$TDIR/app/models"
head -c 3000000 /dev/urandom >"$HOST/ggml-tiny-test.bin"
head -c 200000 /dev/urandom >"$HOST/ggml-extra-test.bin"
head -c 100000 /dev/urandom >"$HOST/ggml-bad-test.bin"
touch "$HOST/ggml-bad-test.bin.badsha"
head -c 150000 /dev/urandom >"$TDIR/app/models/ggml-shipped-test.bin"
python3 "$ROOT/tests/integration/fake_models.py" "$HOST" "$TDIR/port" &
FAKE=$!
at_exit "kill $FAKE 2>/dev/null"
for i in $(seq 1 100); do [ -s "$TDIR/port" ] && break; sleep 0.05; done
[ -s "$TDIR/port" ] || fail "fake model server starts" "no port file within 5 s"
URL=http://127.0.0.1:$(cat "$TDIR/port")
HF=hf_modeltest_$RANDOM$RANDOM
printf 'HF_TOKEN=%s\nMODELS_PRELOAD=extra-test\n' "$HF" >"$TDIR/gs/worker.env"
setup() { GS_DIR=$TDIR/gs GS_MODELS_DIR=$TDIR/models GS_APP_DIR=$TDIR/app GS_MODEL_BASE_URL=$URL sh "$ROOT/remote/setup.sh" "$@" 2>&1; }

# cut the first transfer after 1 MB: the retry must resume with a Range request
echo 1000000 >"$HOST/ggml-tiny-test.bin.cut"
out=$(setup --fetch-model tiny-test); rc=$?
check "download succeeds" test "$rc" = 0
check "the model is there, byte for byte" cmp -s "$HOST/ggml-tiny-test.bin" "$TDIR/models/ggml-tiny-test.bin"
check "it says the sha256 was verified" grep -q 'downloaded (3000000 bytes, sha256 verified)' <<<"$out"
check "the cut-off download was resumed" grep -q 'download interrupted (try 1 of 5); resuming' <<<"$out"
check "the retry asked only for the rest (Range: bytes=1000000-)" grep -q '^GET /cdn/ggml-tiny-test.bin bytes=1000000- ' "$HOST/requests.log"
check "the host was sent the token as a header" grep -q '^HEAD .*ggml-tiny-test.bin - auth$' "$HOST/requests.log"
check ".ok records size and sha256" grep -qE '^3000000 [0-9a-f]{64}$' "$TDIR/models/ggml-tiny-test.bin.ok"
check "no .part or header file left" bash -c "! ls '$TDIR/models' | grep -q '\\.part' && test ! -e '$TDIR/gs/.hf-header'"
check "progress lines while downloading" grep -q '^GPUSCRIBE-PROGRESS [0-9]* downloading model tiny-test' <<<"$out"

n1=$(wc -l <"$HOST/requests.log")
out=$(setup --fetch-model tiny-test); rc=$?
check "a model already there: success" test "$rc" = 0
check "a model already there: not fetched again" test "$(wc -l <"$HOST/requests.log")" = "$n1"
check "a model already there: says so" grep -q 'model tiny-test present' <<<"$out"

out=$(setup --fetch-model bad-test); rc=$?
check "a wrong sha256 fails" test "$rc" != 0
check "a wrong sha256: clear error" grep -q 'GPUSCRIBE-ERROR model bad-test: sha256 [0-9a-f]* is not the host.s 0000' <<<"$out"
check "a wrong sha256: nothing kept" bash -c "! ls '$TDIR/models' | grep -q bad-test"

out=$(setup --fetch-model missing-test); rc=$?
check "a model the host lacks fails clearly" bash -c "test $rc != 0 && grep -q 'GPUSCRIBE-ERROR model missing-test: cannot reach' <<<'$out'"

n1=$(wc -l <"$HOST/requests.log")
out=$(setup --fetch-model shipped-test); rc=$?
check "the image's model: success" test "$rc" = 0
check "the image's model is used" grep -q "using the image's" <<<"$out"
check "the image's model is linked, not downloaded" bash -c "test \"\$(readlink '$TDIR/models/ggml-shipped-test.bin')\" = '$TDIR/app/models/ggml-shipped-test.bin' && test \"\$(wc -l <'$HOST/requests.log')\" = $n1"

# the install step: the engine's model plus MODELS_PRELOAD's (whisper engine, VAD off)
printf 'VAD=off\n' >>"$TDIR/gs/worker.env"
out=$(setup --engine whisper --model tiny-test --models); rc=$?
check "models step succeeds" test "$rc" = 0
check "models step: the engine's model is kept" grep -q 'model tiny-test present' <<<"$out"
check "models step: MODELS_PRELOAD's model fetched" cmp -s "$HOST/ggml-extra-test.bin" "$TDIR/models/ggml-extra-test.bin"
check "models step: VAD=off fetches no VAD model" bash -c "! grep -q silero <<<'$out'"
check "models step: timed" grep -qE '^GPUSCRIBE-STEP models [0-9.]+$' <<<"$out"
check "the token never reached the output or the host's log" bash -c "! grep -q '$HF' <<<'$out' && ! grep -q '$HF' '$HOST/requests.log'"
finish
