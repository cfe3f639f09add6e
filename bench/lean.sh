#!/usr/bin/env bash
# Benchmark: the lean controller (issue 15) next to the original design's stack, FastAPI +
# uvicorn serving the same /api/gpu-status body (bench/fastapi_status.py), in one run: idle
# RSS (VmRSS after start, no Vast key, after a few requests), exec to the first 200 from
# /healthz, /api/gpu-status req/s (wrk, loopback), each the median of RUNS starts; then
# gpuscribe's HTTP threading modes (GS_HTTP_THREADS) and the per-library RSS of an idle
# server restarted on its data dir (/proc/PID/smaps). Timings only; no test runs this.
#   bench/lean.sh [seconds=5] [runs=3] [connections=64] [wrk threads=2]
#   GS_BEFORE=/path/to/an/older/gpuscribe adds that binary as a row (before/after figures).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GS_BIN:-$ROOT/build/gpuscribe}
SECS=${1:-5}; RUNS=${2:-3}; CONN=${3:-64}; WT=${4:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (apt install wrk)"; exit 1; }
[ -x "$BIN" ] || { echo "$BIN: not built (make)"; exit 1; }
PY=${PYTHON:-/usr/bin/python3}   # Debian's: python3-fastapi and python3-uvicorn are for it
L="$PY $ROOT/bench/lean.py"
srv() { echo "$1" serve --host 127.0.0.1 --port PORT; }

echo "machine: $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs); $(date -u +%F); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "each row: median of $RUNS starts (min-max); wrk -t$WT -c$CONN -d${SECS}s on /api/gpu-status"
echo "first answer: exec to the first 200 from /healthz; fresh: on a new data dir (database and ssh key created), then on the one it made"
printf '%-34s %-8s %-22s %-20s %-26s %-9s %s\n' server "fresh ms" "first answer ms" "idle RSS MB" "gpu-status req/s" "p99" "libs"
row() {
    local name=$1; shift
    local out
    out=$($L "$name" "$RUNS" "$SECS" "$CONN" "$WT" -- "$@") || { printf '%-34s failed\n' "$name"; return; }
    IFS=$'\t' read -r n fr rm rr sm sr qm qr p99 nl <<<"$out"
    printf '%-34s %-8s %-22s %-20s %-26s %-9s %s\n' "$n" "$fr" "$rm ($rr)" "$sm ($sr)" "$qm ($qr)" "$p99" "$nl"
}
row "gpuscribe" $(srv "$BIN")
if [ -n "${GS_BEFORE:-}" ]; then row "gpuscribe before (linked FFmpeg)" $(srv "$GS_BEFORE"); fi
if "$PY" -c 'import fastapi, uvicorn' 2>/dev/null; then
    row "FastAPI + uvicorn (1 worker)" "$PY" -m uvicorn fastapi_status:app --app-dir "$ROOT/bench" \
        --host 127.0.0.1 --port PORT --log-level warning --no-access-log
else
    printf '%-34s not installed (apt install python3-fastapi python3-uvicorn)\n' "FastAPI + uvicorn"
fi

echo
echo "gpuscribe HTTP threading (GS_HTTP_THREADS; default: 2 per core = $(( $(nproc) * 2 < 4 ? 4 : $(nproc) * 2 )) epoll threads)"
for t in 1 2 4 8 per-connection; do
    GS_HTTP_THREADS=$t row "  threads=$t" $(srv "$BIN")
done

echo
echo "idle gpuscribe: RSS by mapping (/proc/PID/smaps, kB; the largest 14)"
T=$(mktemp -d); trap 'kill $PID 2>/dev/null; rm -rf "$T"' EXIT
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# twice, as the rows above: the first start makes the data dir (database, SSH key); measured
# is the second, on the data dir it made
for start in first second; do
    [ "$start" = first ] || { kill "$PID"; wait "$PID" 2>/dev/null || true; }
    (cd "$T" && exec env -u VAST_API_KEY "$BIN" serve --host 127.0.0.1 --port "$port" --data-dir "$T/data") 2>/dev/null &
    PID=$!
    for _ in $(seq 1 500); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.01; done
done
for _ in 1 2 3 4 5; do curl -sf "http://127.0.0.1:$port/api/gpu-status" >/dev/null; done
awk '/^[0-9a-f]+-[0-9a-f]+ /{n=$6; if(n=="")n="[anon]"; sub(/.*\//,"",n)} /^Rss:/{r[n]+=$2; t+=$2}
     END{for(k in r) printf "%8d  %s\n", r[k], k; printf "%8d  TOTAL\n", t}' /proc/$PID/smaps |
    sort -rn | head -n 15
grep -E '^(RssAnon|RssFile|RssShmem)' /proc/$PID/status | xargs
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
