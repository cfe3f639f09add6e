#!/usr/bin/env bash
# make demo: a local Vast.ai (build/vastsim) and `gpuscribe serve` wired to it, with a demo
# key, a temporary DATA_DIR and .env file. Prints what to open and try; Ctrl-C stops both
# and removes the temporary files. PORT (default 8000) chooses the server's port.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GS=${GS_BIN:-$ROOT/build/gpuscribe}
SIM_BIN=${GS_SIM:-$ROOT/build/vastsim}
PORT=${PORT:-8000}
case "$GS" in /*) ;; *) GS=$PWD/$GS ;; esac
case "$SIM_BIN" in /*) ;; *) SIM_BIN=$PWD/$SIM_BIN ;; esac
for b in "$GS" "$SIM_BIN"; do
    [ -x "$b" ] || { echo "demo: $b is missing; run make first" >&2; exit 1; }
done

DEMO=$(mktemp -d /tmp/gpuscribe-demo-XXXXXX)
KEY=demo-key-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
SIM_PID=""
SRV_PID=""
stop() {
    trap - INT TERM EXIT
    echo
    echo "demo: stopping"
    for p in $SRV_PID $SIM_PID; do kill -TERM "$p" 2>/dev/null; done
    for p in $SRV_PID $SIM_PID; do wait "$p" 2>/dev/null; done
    rm -rf "$DEMO"
    exit 0
}
trap stop INT TERM EXIT

# vastsim: isolated instances (namespaces) when root, plain sshd per instance otherwise
"$SIM_BIN" --port 0 --api-key "$KEY" --state-dir "$DEMO/vastsim" --loading-delay 3 \
    --running-delay 5 >"$DEMO/vastsim.out" 2>"$DEMO/vastsim.log" &
SIM_PID=$!
for _ in $(seq 1 100); do [ -s "$DEMO/vastsim.out" ] && break; sleep 0.05; done
SIM_URL=$(sed -n '1s/^vastsim listening on \(http:[^ ]*\)$/\1/p' "$DEMO/vastsim.out")
[ -n "$SIM_URL" ] || { echo "demo: vastsim did not start:" >&2; cat "$DEMO/vastsim.log" >&2; exit 1; }

: >"$DEMO/.env"
chmod 600 "$DEMO/.env"
# the key goes through the environment, never the command line
(cd "$DEMO" && exec env VAST_URL="$SIM_URL" VAST_API_KEY="$KEY" "$GS" serve --port "$PORT" \
    --data-dir "$DEMO/data" --env-file "$DEMO/.env") >"$DEMO/server.log" 2>&1 &
SRV_PID=$!
URL=""
for _ in $(seq 1 100); do
    URL=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$DEMO/server.log" | head -n1)
    [ -n "$URL" ] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
done
[ -n "$URL" ] || { echo "demo: gpuscribe did not start:" >&2; cat "$DEMO/server.log" >&2; exit 1; }
isolation=$(curl -s "$SIM_URL/_admin/state" | sed -n 's/.*"isolation": *\(true\|false\).*/\1/p')

cat <<EOF

gpuscribe demo: a local Vast.ai emulator and the server, nothing leaves this machine.

  UI                 $URL/
  API docs           $URL/docs
  emulated Vast.ai   $SIM_URL   (instances isolated: ${isolation:-?})
  files              $DEMO  (.env, data/, server.log, vastsim.log)

Try:
  curl -s $URL/api/gpu-status
  curl -s -X POST $URL/api/vast/search -H 'Content-Type: application/json' \\
       -d '{"gpu_ram_min": 16, "max_price": 0.5, "limit": 5}'
  curl -s -X POST $URL/api/vast/boot -H 'Content-Type: application/json' -d '{"offer_id": ID}'
  curl -s $URL/api/vast/instances
  cat $DEMO/.env                          # VAST_INSTANCE_ID written by the boot
  curl -s $URL/api/gpu-status             # "type": "vast" once the instance runs (~8 s)
  curl -s -X POST $URL/api/vast/destroy/INSTANCE_ID
  curl -s $SIM_URL/_admin/ledger          # what the emulated account was billed

  The CLI against the same emulator:
  VAST_URL=$SIM_URL VAST_API_KEY=$KEY $GS vast search --limit 5

Press Ctrl-C to stop both (the emulator destroys its instances on the way out).
EOF
tail -n +1 -f "$DEMO/server.log" --pid "$SRV_PID" &
wait "$SRV_PID"
echo "demo: the server exited; see $DEMO/server.log"
