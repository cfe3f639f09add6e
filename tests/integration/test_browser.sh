#!/usr/bin/env bash
# The web UI in a real browser: Debian's Chromium driven by playwright-core
# (tests/browser/ui.test.mjs, node's test runner) against `gpuscribe serve` wired to vastsim,
# plus a second server without a Vast.ai key and with an API token. Screenshots go to tests/out/screenshots/.
# Skips (with the reason) only when chromium, node or playwright-core is missing.
source "$(dirname "$0")/lib.sh"
export GS_NVML_LIB=/nonexistent/libnvidia-ml.so.1
BROWSER_DIR=$ROOT/tests/browser

skip_all() { skip "browser tests" "$1"; finish; exit; }
CHROMIUM=${CHROMIUM:-}
if [ -z "$CHROMIUM" ]; then
    for c in /usr/lib/chromium/chromium /usr/bin/chromium /usr/bin/chromium-browser; do
        [ -x "$c" ] && { CHROMIUM=$c; break; }
    done
fi
[ -n "$CHROMIUM" ] || skip_all "chromium is not installed (scripts/setup.sh --test installs it)"
command -v node >/dev/null || skip_all "node is not installed (scripts/setup.sh --test installs nodejs)"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
# playwright-core 1.61 (package-lock.json) is the newest release that runs on node 18, Debian 12's own nodejs
[ "$node_major" -ge 18 ] || skip_all "node $(node --version) is too old for playwright-core 1.61 (needs 18+)"
[ -d "$BROWSER_DIR/node_modules/playwright-core" ] ||
    skip_all "playwright-core is not installed (scripts/setup.sh --test runs npm ci in tests/browser)"
for tool in curl espeak-ng sox; do
    command -v $tool >/dev/null || { fail "prerequisite $tool" "not installed"; finish; exit 1; }
done

SIM_KEY=vast-ui-key-$RANDOM$RANDOM
NOKEY_PID=""
at_exit '[ -n "$NOKEY_PID" ] && kill -KILL "$NOKEY_PID" 2>/dev/null'
start_vastsim --loading-delay 0.2 --running-delay 0.3 --seed 7 || { fail "vastsim starts"; finish; exit 1; }

# a server without any Vast.ai key, with an API token, first (its BASE and PID are kept aside)
NOKEY_TOKEN=ui-token-$RANDOM$RANDOM
start_server API_TOKEN="$NOKEY_TOKEN" -- --env-file /dev/null || { fail "server (no key) starts"; finish; exit 1; }
BASE_NOKEY=$BASE; NOKEY_PID=$SERVER_PID; NOKEY_LOG=$SERVER_LOG; SERVER_PID=""

ENVF=$TDIR/app.env
: >"$ENVF"
chmod 600 "$ENVF"
start_server VAST_URL="$SIM" VAST_API_KEY="$SIM_KEY" -- --env-file "$ENVF" \
    || { fail "server starts"; finish; exit 1; }

WAV=$TDIR/speech.wav
espeak-ng -v en-us -s 150 -w "$WAV" "Hello world. This is a test of the transcription server. The quick brown fox jumps over the lazy dog." \
    || { fail "espeak-ng makes speech"; finish; exit 1; }

# two voices taking turns (as test_speakers.sh), for the speakers view
WAV2=$TDIR/two-voices.wav
sox -n -r 16000 -c 1 -b 16 "$TDIR/gap.wav" trim 0 0.7 || { fail "sox makes silence"; finish; exit 1; }
parts=()
i=0
for turn in "en-us+m3 -p 30|the quick brown fox jumps over the lazy dog" \
            "en-gb+f4 -p 75|please call stella and ask her to bring these things" \
            "en-us+m3 -p 30|we will meet at the station at nine" \
            "en-gb+f4 -p 75|she sells sea shells by the sea shore"; do
    # shellcheck disable=SC2086
    espeak-ng -v ${turn%%|*} -s 150 -w "$TDIR/raw$i.wav" "${turn#*|}" &&
        sox "$TDIR/raw$i.wav" -r 16000 -c 1 -b 16 "$TDIR/turn$i.wav" || { fail "two voices"; finish; exit 1; }
    parts+=("$TDIR/turn$i.wav" "$TDIR/gap.wav"); i=$((i + 1))
done
sox "${parts[@]}" "$WAV2" || { fail "two voices joined"; finish; exit 1; }

SHOTS=$ROOT/tests/out/screenshots
mkdir -p "$SHOTS"
rm -f "$SHOTS"/*.png
t0=$(date +%s.%N)
(cd "$BROWSER_DIR" && GS_BASE=$BASE GS_BASE_NOKEY=$BASE_NOKEY GS_NOKEY_TOKEN=$NOKEY_TOKEN GS_SIM_URL=$SIM GS_WAV=$WAV GS_WAV2=$WAV2 \
    GS_SHOTS=$SHOTS CHROMIUM=$CHROMIUM timeout 180 node --test --test-reporter=tap ui.test.mjs) \
    >"$TDIR/tap.out" 2>&1
rc=$?
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')   # no bc on a fresh Debian

# top-level TAP results become this suite's ok/FAIL lines
while IFS= read -r line; do
    case "$line" in
        "ok "*" # SKIP"*) tap=${line#ok * - }; skip "${tap%% # SKIP*}" "${tap#* # SKIP}" ;;
        "ok "*) pass "${line#ok * - }" ;;
        "not ok "*) fail "${line#not ok * - }" ;;
    esac
done < <(grep -E '^(not )?ok [0-9]+ - ' "$TDIR/tap.out")
if [ "$FAILED" -gt 0 ] || [ "$rc" -ne 0 ]; then
    sed 's/^/    | /' "$TDIR/tap.out" | grep -vE '^    \| +(duration_ms|type|\.\.\.|---)' | tail -n 80
    [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ] && fail "node --test" "exit $rc"
fi
grep -E '^# note:' "$TDIR/tap.out" | sed "s/^# note:/note $SUITE:/"
echo "$SUITE: browser run took ${secs}s; screenshots in tests/out/screenshots/"

stop_server || true
kill -TERM "$NOKEY_PID" 2>/dev/null; wait "$NOKEY_PID" 2>/dev/null; NOKEY_PID=""
grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$NOKEY_LOG" && fail "sanitizer clean (no-key server)" "see $NOKEY_LOG"
# --env-file /dev/null is read as empty and never written (config_env_set refuses devices)
check "--env-file /dev/null: still the character device 1,3" test -c /dev/null -a "$(stat -c %t,%T /dev/null)" = 1,3
check "--env-file /dev/null: nothing written to it" bash -c "! grep -q 'written to /dev/null' '$NOKEY_LOG'"
finish
