#!/usr/bin/env bash
# Benchmark: the server's peak RSS while it receives a ~1 GB upload (streamed to disk) and
# validates it (decoded to a 16 kHz WAV, also streamed). Prints a table. Loopback only.
#   bench/upload.sh [size_mb=1024]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GS_BIN:-$ROOT/build/gpuscribe}
MB=${1:-1024}
T=$(mktemp -d /var/tmp/gs-bench-XXXX); trap 'kill $PID 2>/dev/null; rm -rf $T' EXIT
secs=$(( MB * 1024 * 1024 / (44100 * 4) ))
sox -n -r 44100 -c 2 -b 16 "$T/big.wav" synth "$secs" sine 440 vol 0.3
size=$(stat -c %s "$T/big.wav")
(cd "$T" && exec env GPU_ONLY=1 "$BIN" serve --port 0 --data-dir "$T/data" --max-upload-mb 4096) 2>"$T/log" &
PID=$!
PORT=""
until [ -n "$PORT" ]; do sleep 0.05; PORT=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$T/log"); done
rss0=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
t0=$(date +%s.%N)
code=$(curl -s -o "$T/resp" -w '%{http_code}' -F "file=@$T/big.wav" "http://127.0.0.1:$PORT/api/jobs")
t1=$(date +%s.%N)
printf '%-34s %s\n' "upload" "$((size / 1048576)) MiB WAV, 44.1 kHz stereo, $(awk -v s=$secs 'BEGIN{printf "%.1f h", s/3600}') (multipart)"
printf '%-34s %s\n' "answer" "HTTP $code in $(awk -v a=$t0 -v b=$t1 'BEGIN{printf "%.1f s", b-a}') (upload + decode to 16 kHz WAV)"
printf '%-34s %s kB\n' "server RSS before" "$rss0"
printf '%-34s %s kB\n' "server peak RSS (VmHWM)" "$(awk '/VmHWM/{print $2}' /proc/$PID/status)"
jq -c '{state, audio_duration, size_bytes}' "$T/resp"
