#!/usr/bin/env bash
# bench/tunnel.sh: our libssh tunnel (src/ssh, driven by build/tunnelbench) side by side with
# OpenSSH `ssh -N -L` and a direct loopback connection, against one gpuscribe HTTP server
# (static files) behind a local sshd on 127.0.0.1. Measures per-request latency (wrk, one
# keep-alive connection: p50/p99), requests/s with 16 connections and with a new TCP
# connection per request, a 256 MB download (curl), and the time to reconnect once a killed
# sshd answers again. Needs root (sshd), wrk, curl. DURATION=seconds per wrk run (default 4).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${DURATION:-4}
[ "$(id -u)" = 0 ] || { echo "tunnel bench: skipped (needs root to run sshd)"; exit 0; }
for t in /usr/sbin/sshd wrk curl ssh; do
    command -v "$t" >/dev/null || { echo "tunnel bench: skipped ($t missing)"; exit 0; }
done
cd "$ROOT" || exit 1
make -s build/gpuscribe || exit 1
# tunnelbench links only src/core/{util,log}.c and src/ssh (built here, not by `make all`)
cc -std=gnu11 -Wall -Wextra -Werror -Wvla -Wstrict-prototypes -Wshadow=local -O2 -g -Isrc \
   tools/tunnelbench/*.c src/ssh/*.c src/core/util.c src/core/log.c \
   $(pkg-config --cflags --libs libssh) -lpthread -o build/tunnelbench || exit 1

T=$(mktemp -d /tmp/gs-tbench-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "${SSHD_PID:-}" ] && { pkill -KILL -P "$SSHD_PID" 2>/dev/null; kill "$SSHD_PID" 2>/dev/null; }
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 500); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.01; done; return 1; }

mkdir -p /run/sshd "$T/www" "$T/data"
ssh-keygen -q -t ed25519 -N '' -f "$T/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -f "$T/client_ed25519"
cp "$T/client_ed25519.pub" "$T/authorized_keys"; chmod 600 "$T/authorized_keys"
SSHP=$(free_port)
cat > "$T/sshd_config" <<CFG
Port $SSHP
ListenAddress 127.0.0.1
HostKey $T/host_ed25519
PidFile $T/sshd.pid
AuthorizedKeysFile $T/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
Subsystem sftp internal-sftp
CFG
start_sshd() { /usr/sbin/sshd -D -e -f "$T/sshd_config" >>"$T/sshd.log" 2>&1 & SSHD_PID=$!; wait_port "$SSHP"; }
start_sshd || { echo "sshd did not start"; cat "$T/sshd.log"; exit 1; }

head -c 100 /dev/zero | tr '\0' 'x' > "$T/www/small.txt"
head -c $((256 << 20)) /dev/urandom > "$T/www/big.bin"
(cd "$T" && exec env WEB_DIR="$T/www" DATA_DIR="$T/data" LOG_LEVEL=warn "$ROOT/build/gpuscribe" serve --port 0) >"$T/srv.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do
    SPORT=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$T/srv.log" | head -n1)
    [ -n "$SPORT" ] && break; sleep 0.05
done
if [ -z "${SPORT:-}" ]; then
    # LOG_LEVEL=warn may hide the "listening" line: fall back to info
    kill "${PIDS[-1]}"; (cd "$T" && exec env WEB_DIR="$T/www" DATA_DIR="$T/data" "$ROOT/build/gpuscribe" serve --port 0) >"$T/srv.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 200); do
        SPORT=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$T/srv.log" | head -n1)
        [ -n "$SPORT" ] && break; sleep 0.05
    done
fi
[ -n "${SPORT:-}" ] || { echo "server did not start"; cat "$T/srv.log"; exit 1; }

SSH_OPTS=(-p "$SSHP" -i "$T/client_ed25519" -o IdentitiesOnly=yes -o UserKnownHostsFile="$T/kh_openssh"
          -o StrictHostKeyChecking=accept-new -o BatchMode=yes -o ExitOnForwardFailure=yes
          -o ServerAliveInterval=15)
LPORT=$(free_port)
t0=$(date +%s.%N)
ssh "${SSH_OPTS[@]}" -N -L 127.0.0.1:"$LPORT":127.0.0.1:"$SPORT" root@127.0.0.1 &
SSH_PID=$!; PIDS+=($SSH_PID)
until curl -sf -o /dev/null "http://127.0.0.1:$LPORT/small.txt"; do sleep 0.01; done
t1=$(date +%s.%N)
SSH_START=$(echo "$t1 - $t0" | bc)

t0=$(date +%s.%N)
build/tunnelbench 127.0.0.1 "$SSHP" "$T/client_ed25519" "$T/kh_ours" "$SPORT" /small.txt >"$T/tb.out" 2>"$T/tb.err" &
TB_PID=$!; PIDS+=($TB_PID)
for _ in $(seq 1 500); do OPORT=$(sed -n 's/^port //p' "$T/tb.out"); [ -n "$OPORT" ] && break; sleep 0.01; done
[ -n "${OPORT:-}" ] || { echo "tunnelbench did not start"; cat "$T/tb.err"; exit 1; }
until curl -sf -o /dev/null "http://127.0.0.1:$OPORT/small.txt"; do sleep 0.01; done
t1=$(date +%s.%N)
OUR_START=$(echo "$t1 - $t0" | bc)

to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; printf "%.3f", v}'; }
declare -A R
measure() { # name port
    local name=$1 port=$2 out
    out=$(wrk -t1 -c1 -d"${DUR}s" --latency "http://127.0.0.1:$port/small.txt")
    R[$name.p50]=$(echo "$out" | awk '$1=="50%"{print $2}' | to_ms)
    R[$name.p99]=$(echo "$out" | awk '$1=="99%"{print $2}' | to_ms)
    R[$name.rps1]=$(echo "$out" | awk '/Requests\/sec/{printf "%.0f", $2}')
    out=$(wrk -t2 -c16 -d"${DUR}s" "http://127.0.0.1:$port/small.txt")
    R[$name.rps16]=$(echo "$out" | awk '/Requests\/sec/{printf "%.0f", $2}')
    out=$(wrk -t1 -c4 -d"${DUR}s" -H "Connection: close" "http://127.0.0.1:$port/small.txt")
    R[$name.rpsnew]=$(echo "$out" | awk '/Requests\/sec/{printf "%.0f", $2}')
    local best=0 s
    for _ in 1 2; do
        s=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/big.bin")
        best=$(echo "$s $best" | awk '{print ($1 > $2) ? $1 : $2}')
    done
    R[$name.mbs]=$(echo "$best" | awk '{printf "%.0f", $1 / 1e6}')
}
echo "tunnel bench: loopback, sshd $SSHP, server $SPORT, ssh -L $LPORT, ours $OPORT, ${DUR}s per wrk run"
# alternate the order so neither side always runs on a warm cache
measure direct "$SPORT"; measure ours "$OPORT"; measure openssh "$LPORT"

# reconnect: kill sshd and its sessions, bring it back on the same port
pkill -KILL -P "$SSHD_PID" 2>/dev/null; kill -KILL "$SSHD_PID"; wait "$SSHD_PID" 2>/dev/null
for _ in $(seq 1 300); do grep -q '^state reconnecting' "$T/tb.out" && break; sleep 0.01; done
sleep 2
SSH_ALIVE=$(kill -0 "$SSH_PID" 2>/dev/null && echo "still running" || echo "exited")
start_sshd
tr=$(date +%s.%N)
for _ in $(seq 1 1000); do grep -q '^state up .* reconnects=1' "$T/tb.out" && break; sleep 0.01; done
tu=$(awk '/^state up .* reconnects=1/{print $3; exit}' "$T/tb.out")
if [ -n "$tu" ]; then RECON=$(echo "$tu - $tr" | bc | awk '{printf "%.2f s", ($1 < 0 ? 0 : $1)}'); else RECON="did not reconnect"; fi
curl -sf -o /dev/null "http://127.0.0.1:$OPORT/small.txt" && AFTER=ok || AFTER=FAILED

printf '\n%-34s %12s %12s %12s\n' "measure" "direct" "ours" "ssh -L"
printf '%-34s %12s %12s %12s\n' "latency p50, 1 conn keep-alive (ms)" "${R[direct.p50]}" "${R[ours.p50]}" "${R[openssh.p50]}"
printf '%-34s %12s %12s %12s\n' "latency p99, 1 conn keep-alive (ms)" "${R[direct.p99]}" "${R[ours.p99]}" "${R[openssh.p99]}"
printf '%-34s %12s %12s %12s\n' "req/s, 1 conn" "${R[direct.rps1]}" "${R[ours.rps1]}" "${R[openssh.rps1]}"
printf '%-34s %12s %12s %12s\n' "req/s, 16 conns" "${R[direct.rps16]}" "${R[ours.rps16]}" "${R[openssh.rps16]}"
printf '%-34s %12s %12s %12s\n' "req/s, new connection each" "${R[direct.rpsnew]}" "${R[ours.rpsnew]}" "${R[openssh.rpsnew]}"
printf '%-34s %12s %12s %12s\n' "256 MB download (MB/s, best of 2)" "${R[direct.mbs]}" "${R[ours.mbs]}" "${R[openssh.mbs]}"
printf '%-34s %12s %12s %12s\n' "start to first request (s)" "-" "$OUR_START" "$SSH_START"
printf '%-34s %12s %12s %12s\n' "reconnect after sshd answers" "-" "$RECON" "$SSH_ALIVE"
awk -v d="${R[direct.p50]}" -v o="${R[ours.p50]}" -v s="${R[openssh.p50]}" -v d9="${R[direct.p99]}" -v o9="${R[ours.p99]}" -v s9="${R[openssh.p99]}" \
    'BEGIN{printf "\nadded latency vs direct: ours p50 +%.3f ms, p99 +%.3f ms; ssh -L p50 +%.3f ms, p99 +%.3f ms\n", o-d, o9-d9, s-d, s9-d9}'
echo "throughput ours / ssh -L: $(awk -v a="${R[ours.mbs]}" -v b="${R[openssh.mbs]}" 'BEGIN{printf "%.2fx", a/b}'); new requests after reconnect: $AFTER"
