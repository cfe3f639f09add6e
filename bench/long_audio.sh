#!/usr/bin/env bash
# Benchmark: long audio (issue 13). For each length (default 1 h and 10 h of 16 kHz WAV:
# digital silence with the pocketsphinx librivox speech, ~30 s, once every 30 minutes), a
# controller (sphinx engine on its worker, CHUNK_MINUTES=10) sends its chunks to one local
# gpuscribe-worker (WORKER_URL) with 1, 2 and 4 slots, in one run. Printed per length and
# slot count: time to 202, preparation time (202 -> queued), wall time (202 -> done, and the
# speed-up against one slot), controller and worker peak RSS (VmHWM), and the bytes sent to
# the worker per audio hour (the chunk files the controller made for it, Ogg Opus).
# Loopback only; temp files under /var/tmp (a 10 h file is 1.15 GB, twice).
#   bench/long_audio.sh [hours...]     (default: 1 10)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GS_BIN:-$ROOT/build/gpuscribe}
WBIN=${GS_WORKER_BIN:-$ROOT/build/gpuscribe-worker}
[ -x "$BIN" ] && [ -x "$WBIN" ] || { echo "long_audio: build first (make)"; exit 1; }
hours=("$@"); [ ${#hours[@]} -gt 0 ] || hours=(1 10)
T=$(mktemp -d /var/tmp/gs-bench-XXXX)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf $T' EXIT
port_of() { local p=""; until [ -n "$p" ]; do sleep 0.05; p=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$1" | head -n1); done; echo "$p"; }
hwm() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
printf '%-6s %-5s %9s %9s %9s %8s %12s %12s %12s\n' audio slots to_202_s prep_s wall_s speedup ctl_peak_MB wrk_peak_MB MB_per_audio_h
for h in "${hours[@]}"; do
    starts=$(awk -v h="$h" 'BEGIN{for (t = 0; t + 1800 <= h * 3600; t += 1800) printf "%d ", t}')
    "$ROOT/tests/integration/sparse_speech.py" "$T/a.wav" "$(awk -v h="$h" 'BEGIN{print h * 3600}')" $starts
    base_wall=""
    for slots in 1 2 4; do
        rm -rf "$T/data" "$T/w"; mkdir -p "$T/w"
        (cd "$T/w" && exec env WORKER_SLOTS=$slots ENGINE=sphinx "$WBIN" worker --listen 127.0.0.1:0) 2>"$T/w.log" &
        WPID=$!; PIDS+=("$WPID")
        wport=$(port_of "$T/w.log")
        (cd "$T" && exec env ENGINE=sphinx CHUNK_MINUTES=10 WORKER_URL="http://127.0.0.1:$wport" \
            "$BIN" serve --port 0 --data-dir "$T/data" --max-upload-mb 4096) 2>"$T/c.log" &
        CPID=$!; PIDS+=("$CPID")
        cport=$(port_of "$T/c.log")
        B="http://127.0.0.1:$cport"
        until curl -s "$B/api/jobs" >/dev/null; do sleep 0.1; done
        sleep 2.5   # the static worker's health is checked every 2 s
        # the chunk files made for the worker, sampled while they exist
        (while :; do ls -l "$T"/data/jobs/*/chunk-* 2>/dev/null | awk '{print $NF, $5}'; sleep 0.1; done) >"$T/sizes" &
        SPID=$!; PIDS+=("$SPID")
        t0=$(now)
        id=$(curl -s -H 'Content-Type: audio/wav' --data-binary "@$T/a.wav" "$B/api/jobs?filename=a.wav" | jq -r .id)
        t202=$(now)
        state=preparing; tq=""
        while :; do
            state=$(curl -s "$B/api/jobs/$id" | jq -r .state)
            [ -z "$tq" ] && [ "$state" != preparing ] && tq=$(now)
            case $state in done|failed|cancelled) break;; esac
            sleep 0.2
        done
        tdone=$(now)
        kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true
        [ "$state" = done ] || { echo "long_audio: job $state: $(curl -s "$B/api/jobs/$id" | jq -c .error)"; exit 1; }
        c_hwm=$(hwm "$CPID"); w_hwm=$(hwm "$WPID")
        bytes=$(sort -u "$T/sizes" | awk '{m[$1] = ($2 > m[$1] ? $2 : m[$1])} END {s = 0; for (k in m) s += m[k]; print s}')
        wall=$(awk -v a="$t202" -v b="$tdone" 'BEGIN{printf "%.1f", b-a}')
        [ -n "$base_wall" ] || base_wall=$wall
        printf '%-6s %-5s %9.2f %9.1f %9s %8.2f %12.1f %12.1f %12.1f\n' "${h}h" "$slots" \
            "$(awk -v a="$t0" -v b="$t202" 'BEGIN{print b-a}')" "$(awk -v a="$t202" -v b="$tq" 'BEGIN{print b-a}')" \
            "$wall" "$(awk -v a="$base_wall" -v b="$wall" 'BEGIN{print a/b}')" "$(awk -v k="$c_hwm" 'BEGIN{print k/1024}')" \
            "$(awk -v k="$w_hwm" 'BEGIN{print k/1024}')" "$(awk -v b="$bytes" -v h="$h" 'BEGIN{print b/1048576/h}')"
        kill "$CPID" "$WPID" 2>/dev/null; wait "$CPID" "$WPID" 2>/dev/null || true
    done
done
echo "(to_202_s includes sending the WAV over loopback: 115 MB per audio hour)"
