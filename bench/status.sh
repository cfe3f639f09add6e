#!/usr/bin/env bash
# Benchmark: GET /api/gpu-status throughput and latency with wrk, the server's peak RSS, and
# the time from exec to the first answered request. Prints a table. Loopback only.
#   bench/status.sh [seconds=10] [connections=64]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GS_BIN:-$ROOT/build/gpuscribe}
DUR=${1:-10}; CONN=${2:-64}
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/setup.sh --test)"; exit 1; }
T=$(mktemp -d); trap 'kill $PID 2>/dev/null; rm -rf $T' EXIT
t0=$(date +%s.%N)
(cd "$T" && exec "$BIN" serve --port 0 --data-dir "$T/data") 2>"$T/log" &
PID=$!
PORT=""
until [ -n "$PORT" ]; do
    kill -0 $PID 2>/dev/null || { cat "$T/log"; exit 1; }
    PORT=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$T/log")
done
until curl -sf "http://127.0.0.1:$PORT/api/gpu-status" >/dev/null; do sleep 0.001; done
t1=$(date +%s.%N)
ready_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a)*1000}')
rss0=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
printf '%-28s %s\n' "machine" "$(nproc) cores, $(awk '/model name/{$1=$2=$3="";print;exit}' /proc/cpuinfo | xargs)"
printf '%-28s %.1f ms\n' "start to first answer" "$ready_ms"
printf '%-28s %s kB\n' "RSS idle" "$rss0"
for th in 1 2; do
    out=$(wrk -t$th -c$CONN -d${DUR}s --latency "http://127.0.0.1:$PORT/api/gpu-status")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    lat=$(awk '/Latency/ && !/Distribution/{print $2; exit}' <<<"$out")
    p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ')
    printf '%-28s %s req/s, avg %s, p99 %s %s\n' "wrk -t$th -c$CONN ${DUR}s" "$rps" "$lat" "$p99" "$errs"
done
printf '%-28s %s kB\n' "peak RSS (VmHWM)" "$(awk '/VmHWM/{print $2}' /proc/$PID/status)"
