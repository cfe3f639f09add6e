#!/usr/bin/env bash
# The lean worker and its source bundle: build/gpuscribe-worker links none of FFmpeg's
# libraries, libssh or SQLite; the controller links none of FFmpeg, pocketsphinx, libcurl and
# libssh (it opens them on first use: an idle server restarted on its data dir maps none of
# them, nor OpenSSL) and still decodes uploads and calls Vast; the bundle (what the controller sends to instances) unpacked
# into an empty directory builds the worker there with `make worker` alone, holds exactly the
# worker's sources (no test, tool or controller file), and is deterministic (the same source
# gives the same sha256, which is what instances are stamped with).
source "$(dirname "$0")/lib.sh"

W=$ROOT/build/gpuscribe-worker
B=$ROOT/build/gpuscribe-src.tar.gz
for f in "$W" "$B" "$ROOT/build/gpuscribe-src.id"; do
    [ -e "$f" ] || { fail "built: $f" "missing (make all)"; finish; exit 1; }
done
libs=$(ldd "$W" | awk '{print $1}')
check "the worker links libmicrohttpd, jansson and libcurl" bash -c "grep -q libmicrohttpd <<<'$libs' && grep -q libjansson <<<'$libs' && grep -q libcurl <<<'$libs'"
check "the worker links libopusfile (Opus bodies) but not libopusenc (the controller encodes)" bash -c "grep -q '^libopusfile' <<<'$libs' && ! grep -q '^libopusenc' <<<'$libs'"
check "the worker links no FFmpeg library" bash -c "! grep -qE '^libav|^libsw' <<<'$libs'"
check "the worker links no libssh" bash -c "! grep -qE '^libssh\\.so' <<<'$libs'"
check "the worker links no SQLite" bash -c "! grep -q '^libsqlite3' <<<'$libs'"
check "the controller does link SQLite and libmicrohttpd (the check can see them)" bash -c "ldd '$ROOT/build/gpuscribe' | grep -q libsqlite3 && ldd '$ROOT/build/gpuscribe' | grep -q libmicrohttpd"
# the controller opens FFmpeg, pocketsphinx, libcurl and libssh with dlopen on first use
# (issue 15): linking them mapped ~150 libraries, OpenSSL among them, into every idle server
for bin in "$ROOT/build/gpuscribe" "$GS_BIN"; do
    clibs=$(ldd "$bin" | awk '{print $1}')
    check "$(basename "$(dirname "$bin")")/$(basename "$bin") links no FFmpeg library" bash -c "! grep -qE '^libav|^libsw' <<<'$clibs'"
    check "$(basename "$(dirname "$bin")")/$(basename "$bin") links no pocketsphinx" bash -c "! grep -qE '^libpocketsphinx|^libsphinx' <<<'$clibs'"
    check "$(basename "$(dirname "$bin")")/$(basename "$bin") links no libcurl, libssh or OpenSSL" bash -c "! grep -qE '^libcurl|^libssh\\.so|^libcrypto|^libssl' <<<'$clibs'"
done
# ... and still decodes uploads (FFmpeg loaded on the first one), reports a missing FFmpeg as
# the server's fault (500, with the package to install) and a missing pocketsphinx as the
# local job's error
python3 - "$TDIR/tone.wav" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1], "wb"); w.setnchannels(2); w.setsampwidth(2); w.setframerate(44100)
w.writeframes(b"".join(struct.pack("<hh", v, v) for v in
              (int(8000 * math.sin(i * 0.0627)) for i in range(44100))))
w.close()
PY
# a first start makes the SSH key (libssh); a restart on that data dir reads its .pub
DATA=$TDIR/lean-data start_server
req GET /healthz
check "a first start made the app's SSH key" test -s "$TDIR/lean-data/ssh/id_ed25519.pub"
stop_server
DATA=$TDIR/lean-data start_server
req GET /healthz
req GET /api/gpu-status
pid_maps=$(cat /proc/"$SERVER_PID"/maps 2>/dev/null)
check "an idle controller has not mapped FFmpeg or pocketsphinx" bash -c "! grep -qE 'libavformat|libpocketsphinx' <<<'$pid_maps'"
check "an idle controller has not mapped libcurl, libssh or OpenSSL" bash -c "! grep -qE 'libcurl|/libssh\\.so|libcrypto|libssl' <<<'$pid_maps'"
check "... and maps what it links (the check can see libraries)" grep -q libsqlite3 <<<"$pid_maps"
req POST /api/jobs -F "file=@$TDIR/tone.wav"
expect "the controller decodes an upload (FFmpeg loaded on first use)" 202 '.audio_duration > 0.9 and .audio_duration < 1.1'
check "FFmpeg is mapped after the first upload" grep -q libavformat /proc/"$SERVER_PID"/maps
stop_server
# the first Vast call loads libcurl (and with it OpenSSL); the answer is the usual one
start_vastsim --seed 3 || fail "vastsim starts"
DATA=$TDIR/lean-data start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" -- --env-file /dev/null
jreq POST /api/vast/search '{}'
expect "a search through the lazily loaded libcurl answers offers" 200 '(.offers | length) > 0'
check "libcurl is mapped after the first Vast call" grep -q libcurl /proc/"$SERVER_PID"/maps
stop_server
sim_stop
start_server GS_FFMPEG_SONAME_TEST=libavformat.so.999 GS_SPHINX_SONAME_TEST=libpocketsphinx.so.999
req POST /api/jobs -F "file=@$TDIR/tone.wav"
expect "no FFmpeg: the upload gets a 500 naming the package" 500 '.error | contains("FFmpeg'"'"'s libavformat.so.999 is not installed: apt install libavformat999")'
req POST /v1/audio/transcriptions -F "file=@$TDIR/tone.wav" -F model=whisper-1
expect "no FFmpeg: the OpenAI-style upload gets a 500 too" 500 '.error.message | contains("apt install libavformat999")'
stop_server
start_server GS_SPHINX_SONAME_TEST=libpocketsphinx.so.999
req POST /api/jobs -F "file=@$TDIR/tone.wav"
expect "no pocketsphinx: the upload is accepted" 202
ID=$(jget .id)
state=$(wait_job "$ID" 60)
req GET "/api/jobs/$ID"
check "no pocketsphinx: the local job fails with the package to install" \
    bash -c '[ "$1" = failed ] && grep -q "libpocketsphinx.so.999 is not installed: apt install libpocketsphinx999" <<<"$2"' _ "$state" "$(jget .error)"
stop_server
out=$("$W" version --features)
check "the worker reports its engines" grep -qw sphinx <<<"$out"

# the bundle, built where nothing else is
mkdir -p "$TDIR/empty"
tar -xzf "$B" -C "$TDIR/empty"
files=$(cd "$TDIR/empty" && find . -type f | sed 's|^\./||' | sort)
check "the bundle has the Makefile, VERSION and setup.sh" bash -c "grep -qx Makefile <<<'$files' && grep -qx VERSION <<<'$files' && grep -qx remote/setup.sh <<<'$files'"
# of src/audio only the Opus decoder (Opus bodies) and the headers it needs
check "the bundle has no tests, tools or controller modules" bash -c "! grep -vxE 'src/audio/(opus_dec\\.c|opus\\.h|audio\\.h)' <<<'$files' | grep -qE '^(tests|tools|web)/|^src/(store|ssh|audio|fleet|api|jobs)/|^src/main\\.c'"
check "the bundle has the Opus decoder, not the encoder" bash -c "grep -qx src/audio/opus_dec.c <<<'$files' && ! grep -q opus_enc <<<'$files'"
if (cd "$TDIR/empty" && make worker) >"$TDIR/build.log" 2>&1; then pass "make worker builds the unpacked bundle"; else
    fail "make worker builds the unpacked bundle" "$(tail -n 15 "$TDIR/build.log")"
fi
check "the built worker runs" "$TDIR/empty/build/gpuscribe-worker" version
check "the bundle's build does not ask pkg-config for the controller's libraries" bash -c "! grep -qE 'libavformat|libssh|sqlite3' '$TDIR/build.log'"
# every C file in the bundle is compiled by make worker
unused=""
for c in $(grep '\.c$' <<<"$files"); do
    [ -f "$TDIR/empty/build/worker/obj/${c%.c}.o" ] || unused="$unused $c"
done
check "every C file in the bundle is part of the worker${unused:+ (unused:$unused)}" test -z "$unused"

# deterministic: the same tree gives the same bundle
rebuild() { (cd "$ROOT" && rm -f build/gpuscribe-src.tar.gz && make -s build/gpuscribe-src.tar.gz) >/dev/null 2>&1; }
rebuild
id1=$(cat "$ROOT/build/gpuscribe-src.id")
sleep 1.1   # other file times: they must not reach the bundle
rebuild
check "the bundle is rebuilt the same (same sha256)" test "$(sha256sum "$B" | cut -c1-64)" = "$id1"
finish
