#!/bin/sh
# setup.sh: prepares a Vast.ai instance to run `gpuscribe worker`. Idempotent: every step
# checks first and does nothing when its result is already there, so running it twice
# changes nothing. The controller uploads it, with its own `gpuscribe` binary, to
# /workspace/gpuscribe/ (GS_DIR overrides, for tests) and runs it over SSH.
#
#   sh setup.sh --bg [OPTIONS]        start the install in the background (setsid; survives the
#                                     SSH session), output in setup.out, status in setup.rc;
#                                     a run already in progress is left alone
#   sh setup.sh --poll OFFSET         "GPUSCRIBE-STATUS running|done RC|none" then setup.out
#                                     from byte OFFSET
#   sh setup.sh [OPTIONS]             install in the foreground
#   sh setup.sh --start-worker [OPTIONS] [--wait S]
#                                     start the worker under its supervisor (restarted when it
#                                     dies; restarted when the binary or worker.env changed),
#                                     wait up to S seconds for /health
#   sh setup.sh --status              "worker running PID" / "worker stopped"
#   sh setup.sh --stop                stop the supervisor and the worker
#   sh setup.sh --check-build [TARBALL]
#                                     dry run of the build-from-source path: checks the source
#                                     bundle and lists what would be installed and run
# OPTIONS: --engine auto|whisper|sphinx  --model NAME  --port N (default 8765)
#
# Install steps: (1) does the uploaded binary run here? If not (another distro), or whisper is
# wanted and the binary lacks it: install build dependencies with apt-get (only the missing
# ones) and build `gpuscribe` from src.tar.gz (the controller uploads it on demand: exit
# status 3 and a GPUSCRIBE-NEED-SOURCE line ask for it). (2) the engine: whisper models are
# downloaded into /workspace/models (HF_TOKEN from worker.env when set, never on a command
# line), checked and kept; pocketsphinx needs no download. (3) worker.env (written by the
# controller over SFTP, mode 0600) is checked. --start-worker also keeps the container's
# CONTAINER_ID and CONTAINER_API_KEY in instance.env (0600) for the worker's dead-man switch
# (DEADMAN_MINUTES and VAST_URL come in worker.env). Progress lines for the controller:
#   GPUSCRIBE-PROGRESS <percent> <stage>      GPUSCRIBE-ERROR <message>
# Test hooks (the controller passes them through from its own environment, never secrets):
# GS_SETUP_DELAY=S sleeps S seconds at the start of the install; GS_SETUP_FAIL=binary|engine
# fails the install at that step.
set -u
umask 077

DIR=${GS_DIR:-/workspace/gpuscribe}
MODELS=${GS_MODELS_DIR:-/workspace/models}
ENGINE=auto
MODEL=large-v3
PORT=8765
WAIT=0
MODE=install
POLL_OFF=0
TARBALL=""

progress() { echo "GPUSCRIBE-PROGRESS $1 $2"; }
die() { echo "GPUSCRIBE-ERROR $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

while [ $# -gt 0 ]; do
    case $1 in
        --bg) MODE=bg ;;
        --run) MODE=install ;;
        --poll) MODE=poll; POLL_OFF=${2:-0}; shift ;;
        --start-worker) MODE=start ;;
        --status) MODE=status ;;
        --stop) MODE=stop ;;
        --check-build) MODE=checkbuild; if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then TARBALL=$2; shift; fi ;;
        --engine) ENGINE=${2:-auto}; shift ;;
        --model) MODEL=${2:-large-v3}; shift ;;
        --port) PORT=${2:-8765}; shift ;;
        --wait) WAIT=${2:-0}; shift ;;
        *) die "setup.sh: unknown argument '$1'" ;;
    esac
    shift
done

case $ENGINE in auto|whisper|sphinx) ;; *) die "unknown engine '$ENGINE'" ;; esac
case $PORT in ''|*[!0-9]*) die "bad port '$PORT'" ;; esac
case $MODEL in ''|*[!A-Za-z0-9._-]*) die "bad model name '$MODEL'" ;; esac
case $POLL_OFF in ''|*[!0-9]*) die "bad offset '$POLL_OFF'" ;; esac
case $WAIT in ''|*[!0-9]*) die "bad wait '$WAIT'" ;; esac

mkdir -p "$DIR" || die "cannot create $DIR"
cd "$DIR" || die "cannot enter $DIR"

# pid_alive FILE WORD: the pid in FILE runs and its command line mentions WORD
pid_alive() {
    [ -s "$1" ] || return 1
    p=$(cat "$1" 2>/dev/null)
    case $p in ''|*[!0-9]*) return 1 ;; esac
    kill -0 "$p" 2>/dev/null || return 1
    [ -r "/proc/$p/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "$2"
}

# envget KEY: a value from worker.env (KEY=value, KEY="va\"lue" or KEY='value'), "" if none
envget() {
    [ -r worker.env ] || return 0
    v=$(sed -n "s/^$1=//p" worker.env | tail -n 1)
    case $v in
        \"*\") v=${v#\"}; v=${v%\"}; v=$(printf '%s' "$v" | sed 's/\\\(["\\]\)/\1/g') ;;
        \'*\') v=${v#\'}; v=${v%\'} ;;
    esac
    printf '%s' "$v"
}

# the engine the worker will use
resolve_engine() {
    if [ "$ENGINE" = auto ]; then
        if have nvidia-smi && nvidia-smi -L >/dev/null 2>&1; then echo whisper; else echo sphinx; fi
    else
        echo "$ENGINE"
    fi
}

binary_ok() {
    [ -x ./gpuscribe ] || return 1
    ./gpuscribe version >/dev/null 2>&1 || return 1
    if [ "$(resolve_engine)" = whisper ]; then
        ./gpuscribe version --features 2>/dev/null | grep -qw whisper || return 1
    fi
    return 0
}

BUILD_PKGS="build-essential pkg-config libmicrohttpd-dev libjansson-dev libssh-dev libsqlite3-dev libcurl4-openssl-dev libavformat-dev libavcodec-dev libswresample-dev libavutil-dev libpocketsphinx-dev libsphinxbase-dev"
missing_pkgs() {
    out=""
    for p in $*; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out="$out $p"
    done
    echo "$out"
}

apt_install() {
    miss=$(missing_pkgs "$@")
    [ -z "$miss" ] && return 0
    have apt-get || die "packages missing ($miss) and no apt-get to install them"
    echo "installing:$miss"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $miss || die "apt-get install$miss failed"
}

# whisper.cpp's image has no pkg-config file: describe /app's build for the Makefile
whisper_pc() {
    [ -f /app/include/whisper.h ] || return 1
    mkdir -p "$DIR/pc"
    libdir=$(dirname "$(find /app/build -name 'libwhisper.so*' 2>/dev/null | head -n 1)")
    [ -n "$libdir" ] || return 1
    ggml=$(find /app/build -name 'libggml.so*' 2>/dev/null | head -n 1)
    cat >"$DIR/pc/whisper.pc" <<EOF
Name: whisper
Description: whisper.cpp from /app
Version: 1
Cflags: -I/app/include -I/app/ggml/include
Libs: -L$libdir ${ggml:+-L$(dirname "$ggml")} -lwhisper -Wl,-rpath,$libdir ${ggml:+-Wl,-rpath,$(dirname "$ggml")}
EOF
    echo "$DIR/pc"
}

build_from_source() {
    [ -s src.tar.gz ] || { echo "GPUSCRIBE-NEED-SOURCE"; exit 3; }
    progress 64 "installing build dependencies"
    apt_install $BUILD_PKGS
    progress 68 "building gpuscribe worker from source"
    rm -rf build-src && mkdir -p build-src || die "cannot create build-src"
    tar -xzf src.tar.gz -C build-src || die "cannot unpack src.tar.gz"
    [ -f build-src/Makefile ] && [ -f build-src/src/main.c ] || die "src.tar.gz lacks Makefile or src/main.c"
    pc=$(whisper_pc || true)
    (cd build-src && PKG_CONFIG_PATH="${pc}${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" make -j"$(nproc 2>/dev/null || echo 2)" build/gpuscribe) \
        || die "building gpuscribe from source failed"
    cp build-src/build/gpuscribe gpuscribe.new && chmod 0755 gpuscribe.new && mv -f gpuscribe.new gpuscribe \
        || die "cannot install the built binary"
    ./gpuscribe version >/dev/null 2>&1 || die "the built gpuscribe does not run"
    echo "built $(./gpuscribe version)"
}

download_model() {
    f="$MODELS/ggml-$MODEL.bin"
    if [ -s "$f" ] && [ -f "$f.ok" ]; then echo "model $MODEL present in $MODELS"; return 0; fi
    mkdir -p "$MODELS" || die "cannot create $MODELS"
    have curl || apt_install curl
    url="https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-$MODEL.bin"
    hdr="$DIR/.hf-header"
    : >"$hdr"
    tok=$(envget HF_TOKEN)
    [ -n "$tok" ] && printf 'Authorization: Bearer %s\n' "$tok" >"$hdr"   # a file: never argv
    progress 80 "downloading whisper model $MODEL"
    size=$(curl -fsSLI -H @"$hdr" "$url" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ength: *//p' | tail -n 1)
    curl -fsSL --retry 3 -C - -H @"$hdr" -o "$f.part" "$url" || { rm -f "$hdr"; die "downloading $url failed"; }
    rm -f "$hdr"
    got=$(wc -c <"$f.part")
    [ "$got" -ge 1000000 ] || die "model $MODEL: download too small ($got bytes)"
    [ -z "$size" ] || [ "$size" = "$got" ] || die "model $MODEL: got $got bytes, expected $size"
    mv -f "$f.part" "$f" && echo "$got" >"$f.ok" || die "cannot store the model"
    echo "model $MODEL downloaded ($got bytes)"
}

install_engine() {
    eng=$(resolve_engine)
    if [ "$eng" = whisper ]; then
        download_model
    else
        progress 80 "engine: pocketsphinx (CPU), no model download needed"
    fi
}

do_install() {
    exec 9>setup.lock
    if have flock; then flock -w 600 9 || die "another setup run holds setup.lock"; fi
    progress 60 "checking the gpuscribe binary"
    if [ -n "${GS_SETUP_DELAY:-}" ]; then sleep "$GS_SETUP_DELAY"; fi
    if binary_ok; then
        echo "binary runs here: $(./gpuscribe version)"
    else
        echo "the uploaded binary cannot run the $(resolve_engine) engine here: building from source"
        build_from_source
    fi
    [ "${GS_SETUP_FAIL:-}" = binary ] && die "simulated failure after the binary check (GS_SETUP_FAIL)"
    progress 70 "installing engine ($(resolve_engine))"
    install_engine
    [ "${GS_SETUP_FAIL:-}" = engine ] && die "simulated failure while installing the engine (GS_SETUP_FAIL)"
    progress 90 "configuring the worker"
    [ -f worker.env ] || die "worker.env missing (the controller uploads it)"
    chmod 0600 worker.env
    echo "setup complete"
}

write_supervisor() {
    cat >run-worker.sh.new <<'EOF'
#!/bin/sh
# supervisor: runs the worker, restarts it when it dies (1 s pause, at most every 5 s under
# a crash loop). Started by setup.sh --start-worker with setsid; pid in supervisor.pid.
cd "$(dirname "$0")" || exit 1
echo $$ >supervisor.pid
# the instance's own id and per-instance API key (dead-man switch), kept by setup.sh
if [ -r ./instance.env ]; then set -a; . ./instance.env; set +a; fi
trap 'kill $(cat worker.pid 2>/dev/null) 2>/dev/null; rm -f worker.pid supervisor.pid; exit 0' TERM INT
while :; do
    start=$(date +%s)
    ./gpuscribe worker --env-file ./worker.env --listen "127.0.0.1:$1" --engine "$2" --model "$3" \
        >>worker.log 2>&1 </dev/null &
    echo $! >worker.pid
    wait $!
    echo "$(date -u +%FT%TZ) worker exited ($?); restarting" >>worker.log
    [ $(( $(date +%s) - start )) -lt 5 ] && sleep 4
    sleep 1
done
EOF
    if ! cmp -s run-worker.sh.new run-worker.sh 2>/dev/null; then
        chmod 0700 run-worker.sh.new && mv -f run-worker.sh.new run-worker.sh
    else
        rm -f run-worker.sh.new
    fi
}

stamp_now() { cksum gpuscribe worker.env run-worker.sh instance.env 2>/dev/null | tr '\n' ' '; echo "$PORT $ENGINE $MODEL"; }

# instance_env: CONTAINER_ID and CONTAINER_API_KEY (Vast passes them to the container; the
# worker's dead-man switch destroys its own instance with that per-instance key, never the
# account key) into instance.env, mode 0600, from this session's environment or, when the
# SSH session lacks them, from the container's first process. Never on a command line.
instance_env() {
    id=${CONTAINER_ID:-}; key=${CONTAINER_API_KEY:-}
    if { [ -z "$id" ] || [ -z "$key" ]; } && [ -r /proc/1/environ ]; then
        id=${id:-$(tr '\0' '\n' </proc/1/environ 2>/dev/null | sed -n 's/^CONTAINER_ID=//p' | head -n 1)}
        key=${key:-$(tr '\0' '\n' </proc/1/environ 2>/dev/null | sed -n 's/^CONTAINER_API_KEY=//p' | head -n 1)}
    fi
    case $id in ''|*[!0-9]*) echo "no CONTAINER_ID here: the dead-man switch stays off"; return 0 ;; esac
    case $key in ''|*[!A-Za-z0-9._-]*) echo "no usable CONTAINER_API_KEY here: the dead-man switch stays off"; return 0 ;; esac
    printf "CONTAINER_ID='%s'\nCONTAINER_API_KEY='%s'\n" "$id" "$key" >instance.env.new &&
        chmod 0600 instance.env.new && mv -f instance.env.new instance.env
}

do_start() {
    [ -x ./gpuscribe ] || die "gpuscribe is not installed in $DIR (run setup first)"
    [ -f worker.env ] || die "worker.env missing"
    instance_env
    write_supervisor
    want=$(stamp_now)
    if pid_alive supervisor.pid run-worker; then
        if [ "$(cat .worker-stamp 2>/dev/null)" = "$want" ]; then
            echo "worker supervisor already running (pid $(cat supervisor.pid))"
        else
            echo "binary or settings changed: restarting the worker"
            kill "$(cat supervisor.pid)" 2>/dev/null
            i=0; while pid_alive supervisor.pid run-worker && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
            start_supervisor
        fi
    else
        start_supervisor
    fi
    echo "$want" >.worker-stamp
    [ "$WAIT" -gt 0 ] || return 0
    have curl || { echo "no curl here: the controller checks /health itself"; return 0; }
    i=0
    while [ $i -lt $((WAIT * 5)) ]; do
        h=$(curl -fsS -m 2 "http://127.0.0.1:$PORT/health" 2>/dev/null) && { echo "GPUSCRIBE-HEALTH $h"; return 0; }
        sleep 0.2; i=$((i + 1))
    done
    tail -n 5 worker.log 2>/dev/null
    die "the worker did not answer /health on 127.0.0.1:$PORT within $WAIT s (see $DIR/worker.log)"
}

start_supervisor() {
    rm -f supervisor.pid
    if have setsid; then
        setsid nohup sh ./run-worker.sh "$PORT" "$ENGINE" "$MODEL" >/dev/null 2>&1 </dev/null &
    else
        nohup sh ./run-worker.sh "$PORT" "$ENGINE" "$MODEL" >/dev/null 2>&1 </dev/null &
    fi
    i=0; while [ ! -s supervisor.pid ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    echo "worker supervisor started (pid $(cat supervisor.pid 2>/dev/null))"
}

case $MODE in
    bg)
        if pid_alive setup.pid setup.sh; then
            echo "setup already running (pid $(cat setup.pid))"
            exit 0
        fi
        rm -f setup.rc
        : >setup.out
        # the child writes its own status; setsid keeps it alive when the SSH session ends
        if have setsid; then
            setsid nohup sh -c 'echo $$ >setup.pid; sh ./setup.sh --run "$@" >>setup.out 2>&1 </dev/null; echo $? >setup.rc.new; mv -f setup.rc.new setup.rc' \
                setup.sh --engine "$ENGINE" --model "$MODEL" --port "$PORT" >/dev/null 2>&1 </dev/null &
        else
            nohup sh -c 'echo $$ >setup.pid; sh ./setup.sh --run "$@" >>setup.out 2>&1 </dev/null; echo $? >setup.rc.new; mv -f setup.rc.new setup.rc' \
                setup.sh --engine "$ENGINE" --model "$MODEL" --port "$PORT" >/dev/null 2>&1 </dev/null &
        fi
        i=0; while [ ! -s setup.pid ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        echo "setup started (pid $(cat setup.pid 2>/dev/null))"
        ;;
    poll)
        if [ -s setup.rc ]; then echo "GPUSCRIBE-STATUS done $(cat setup.rc)"
        elif pid_alive setup.pid setup.sh; then echo "GPUSCRIBE-STATUS running"
        elif [ -f setup.out ]; then echo "GPUSCRIBE-STATUS died"
        else echo "GPUSCRIBE-STATUS none"
        fi
        [ -f setup.out ] && tail -c +$((POLL_OFF + 1)) setup.out
        exit 0
        ;;
    install) do_install ;;
    start) do_start ;;
    status)
        if pid_alive worker.pid gpuscribe; then echo "worker running $(cat worker.pid)"; else echo "worker stopped"; fi
        ;;
    stop)
        pid_alive supervisor.pid run-worker && kill "$(cat supervisor.pid)"
        pid_alive worker.pid gpuscribe && kill "$(cat worker.pid)"
        echo "worker stopped"
        ;;
    checkbuild)
        t=${TARBALL:-src.tar.gz}
        [ -s "$t" ] || die "no source bundle at $t"
        list=$(tar -tzf "$t" 2>/dev/null) || die "$t is not a gzip tar"
        echo "$list" | grep -qx 'Makefile' || die "$t lacks Makefile"
        echo "$list" | grep -qx 'src/main.c' || die "$t lacks src/main.c"
        echo "$list" | grep -q '^src/worker/worker.c$' || die "$t lacks src/worker/worker.c"
        miss=$(missing_pkgs $BUILD_PKGS)
        echo "bundle ok: $(echo "$list" | grep -c '\.c$') C files"
        echo "engine: $(resolve_engine)"
        echo "would install:${miss:- nothing}"
        echo "would run: tar -xzf $t -C build-src && make -C build-src build/gpuscribe"
        ;;
esac
