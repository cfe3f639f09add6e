#!/bin/sh
# setup.sh: prepares a Vast.ai instance to run `gpuscribe-worker`. Idempotent: every step
# checks first and does nothing when its result is already there, so running it twice
# changes nothing. The controller uploads it, with the worker's source bundle (src.tar.gz)
# and, when it has one, its own build of the worker (gpuscribe-worker.prebuilt), to
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
#                                     dry run of the build: checks the source bundle and lists
#                                     what would be installed and run
#   sh setup.sh --fetch-model NAME    download and verify one model
#   sh setup.sh --models [OPTIONS]    step 2 alone: the engine's models (and MODELS_PRELOAD's)
# OPTIONS: --engine auto|whisper|parakeet|sphinx  --model NAME  --port N (default 8765)
#          --src-id SHA256 (the bundle's sha256: names the source the worker is built from)
#
# Install steps, each timed ("GPUSCRIBE-STEP <name> <seconds>"):
#  (1) worker: a gpuscribe-worker stamped with this --src-id (.worker-source; any, without
#      --src-id) that runs and has the engine is kept as it is (re-setups build nothing). Otherwise the controller's
#      prebuilt worker is used when it runs here (same distribution) and has the engine;
#      otherwise the worker is built from src.tar.gz (its sha256 must be --src-id): only the
#      missing build packages are installed with apt-get (build-essential pkg-config
#      libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libopusfile-dev, plus pocketsphinx's for the
#      sphinx engine), whisper.cpp (and parakeet) are found in /app (whisper.cpp's image:
#      headers in /app/include and /app/ggml/include, shared libraries under /app/build) or
#      through pkg-config, and `make worker` builds it. An engine that needs whisper.cpp
#      where there is none fails with a GPUSCRIBE-ERROR saying so.
#  (2) models: the engine's model (and MODELS_PRELOAD's, and Silero VAD's for whisper unless
#      VAD=off) in /workspace/models: a model the image ships (/app/models) is linked, not
#      downloaded; downloads resume (.part), report progress, and are verified against the
#      size and the SHA-256 that the model host publishes (X-Linked-Size / X-Linked-Etag),
#      then kept (.ok holds "size sha256") across re-setups. HF_TOKEN from worker.env, never
#      on a command line.
#  (3) worker.env (written by the controller over SFTP, mode 0600) is checked.
# --start-worker also keeps the container's CONTAINER_ID and CONTAINER_API_KEY in
# instance.env (0600) for the worker's dead-man switch (DEADMAN_MINUTES and VAST_URL come in
# worker.env). Progress lines for the controller:
#   GPUSCRIBE-PROGRESS <percent> <stage>      GPUSCRIBE-ERROR <message>
# Test hooks (the controller passes the first two through from its own environment, never
# secrets): GS_SETUP_DELAY=S sleeps S seconds at the start of the install;
# GS_SETUP_FAIL=binary|engine fails the install at that step; GS_MODEL_BASE_URL replaces the
# model host; GS_APP_DIR replaces /app.
set -u
umask 077

DIR=${GS_DIR:-/workspace/gpuscribe}
MODELS=${GS_MODELS_DIR:-/workspace/models}
APP=${GS_APP_DIR:-/app}
ENGINE=auto
MODEL=large-v3
PORT=8765
WAIT=0
MODE=install
POLL_OFF=0
TARBALL=""
SRC_ID=""
FETCH=""

progress() { echo "GPUSCRIBE-PROGRESS $1 $2"; }
die() { echo "GPUSCRIBE-ERROR $*"; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
now() { date +%s.%N 2>/dev/null | cut -c1-14; }
# step_done NAME START: the step's time, for the controller's log and bench/setup-stages.sh
step_done() { echo "GPUSCRIBE-STEP $1 $(awk -v a="$2" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')"; }

while [ $# -gt 0 ]; do
    case $1 in
        --bg) MODE=bg ;;
        --run) MODE=install ;;
        --poll) MODE=poll; POLL_OFF=${2:-0}; shift ;;
        --start-worker) MODE=start ;;
        --status) MODE=status ;;
        --stop) MODE=stop ;;
        --check-build) MODE=checkbuild; if [ $# -gt 1 ] && [ "${2#--}" = "$2" ]; then TARBALL=$2; shift; fi ;;
        --fetch-model) MODE=fetch; FETCH=${2:-}; shift ;;
        --models) MODE=models ;;
        --engine) ENGINE=${2:-auto}; shift ;;
        --model) MODEL=${2:-large-v3}; shift ;;
        --port) PORT=${2:-8765}; shift ;;
        --wait) WAIT=${2:-0}; shift ;;
        --src-id) SRC_ID=${2:-}; shift ;;
        *) die "setup.sh: unknown argument '$1'" ;;
    esac
    shift
done

case $ENGINE in auto|whisper|parakeet|sphinx) ;; *) die "unknown engine '$ENGINE'" ;; esac
case $PORT in ''|*[!0-9]*) die "bad port '$PORT'" ;; esac
case $MODEL in ''|*[!A-Za-z0-9._-]*) die "bad model name '$MODEL'" ;; esac
case $POLL_OFF in ''|*[!0-9]*) die "bad offset '$POLL_OFF'" ;; esac
case $WAIT in ''|*[!0-9]*) die "bad wait '$WAIT'" ;; esac
case $SRC_ID in *[!0-9a-f]*) die "bad source id '$SRC_ID'" ;; esac

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
    case $ENGINE in
        auto)
            case $MODEL in parakeet*) echo parakeet; return ;; esac
            if have nvidia-smi && nvidia-smi -L >/dev/null 2>&1; then echo whisper; else echo sphinx; fi ;;
        *) echo "$ENGINE" ;;
    esac
}

# worker_ok FILE: FILE is a gpuscribe-worker that runs here and has the engine
worker_ok() {
    [ -x "$1" ] || return 1
    "$1" version >/dev/null 2>&1 || return 1
    "$1" version --features 2>/dev/null | grep -qw "$(resolve_engine)"
}

WORKER_PKGS="build-essential pkg-config libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libopusfile-dev"
SPHINX_PKGS="libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us"
build_pkgs() { if [ "$(resolve_engine)" = sphinx ]; then echo "$WORKER_PKGS $SPHINX_PKGS"; else echo "$WORKER_PKGS"; fi; }
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
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed (packages missing:$miss)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $miss || die "apt-get install$miss failed"
}

# app_pc NAME HEADER: writes a pkg-config file for whisper.cpp's uninstalled build in $APP
# (the image's own .pc files point at /usr/local) and prints its directory; prints nothing
# when $APP lacks the header, or has it without a built lib NAME (never a bare -L.)
app_pc() {
    [ -f "$APP/include/$2" ] || return 0
    lib=$(find "$APP/build" -name "lib$1.so*" 2>/dev/null | sort | head -n 1)
    if [ -z "$lib" ]; then
        echo "$APP/include/$2 exists but no lib$1.so* under $APP/build" >&2
        return 0
    fi
    libdir=$(dirname "$lib")
    ggml=$(find "$APP/build" -name 'libggml.so*' 2>/dev/null | sort | head -n 1)
    gdir=${ggml:+$(dirname "$ggml")}
    [ "$gdir" = "$libdir" ] && gdir=""
    mkdir -p "$DIR/pc"
    {
        echo "Name: $1"
        echo "Description: $1 from whisper.cpp in $APP"
        echo "Version: 1"
        echo "Cflags: -I$APP/include -I$APP/ggml/include"
        # DT_RPATH (not RUNPATH): it also finds libwhisper's own libggml*.so in that directory
        echo "Libs: -L$libdir ${gdir:+-L$gdir }-l$1 -Wl,--disable-new-dtags -Wl,-rpath,$libdir${gdir:+ -Wl,-rpath,$gdir}"
    } >"$DIR/pc/$1.pc"
    echo "$DIR/pc"
}

build_worker() {
    t0=$(now)
    [ -s src.tar.gz ] || die "no source bundle (src.tar.gz) to build the worker from"
    if [ -n "$SRC_ID" ] && have sha256sum; then
        got=$(sha256sum src.tar.gz | cut -d' ' -f1)
        [ "$got" = "$SRC_ID" ] || die "src.tar.gz has sha256 $got, not the controller's $SRC_ID"
    fi
    progress 62 "installing the worker's build packages"
    apt_install $(build_pkgs)
    step_done packages "$t0"
    t0=$(now)
    eng=$(resolve_engine)
    pc=""
    for lib in whisper:whisper.h parakeet:parakeet.h; do
        d=$(app_pc "${lib%%:*}" "${lib#*:}")
        [ -n "$d" ] && pc=$d
    done
    PKG_CONFIG_PATH="${pc}${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export PKG_CONFIG_PATH
    case $eng in
        whisper|parakeet)
            pkg-config --exists "$eng" ||
                die "the $eng engine needs whisper.cpp: there is none in $APP (whisper.cpp's main-cuda image) nor through pkg-config" ;;
    esac
    progress 66 "building gpuscribe-worker from source"
    rm -rf build-src && mkdir -p build-src || die "cannot create build-src"
    tar -xzf src.tar.gz -C build-src || die "cannot unpack src.tar.gz"
    [ -f build-src/Makefile ] && [ -f build-src/src/worker/main.c ] || die "src.tar.gz lacks Makefile or src/worker/main.c"
    if ! (cd build-src && make -j"$(nproc 2>/dev/null || echo 2)" worker) >build.log 2>&1; then
        tail -n 15 build.log
        die "building gpuscribe-worker failed (see $DIR/build.log)"
    fi
    cp build-src/build/gpuscribe-worker gpuscribe-worker.new && chmod 0755 gpuscribe-worker.new ||
        die "cannot install the built worker"
    worker_ok ./gpuscribe-worker.new || die "the built gpuscribe-worker does not run or lacks the $eng engine"
    mv -f gpuscribe-worker.new gpuscribe-worker || die "cannot install the built worker"
    rm -rf build-src
    echo "built $(./gpuscribe-worker version) with engines: $(./gpuscribe-worker version --features)"
    step_done build "$t0"
}

install_worker() {
    t0=$(now)
    if { [ -z "$SRC_ID" ] || [ "$(cat .worker-source 2>/dev/null)" = "$SRC_ID" ]; } && worker_ok ./gpuscribe-worker; then
        echo "worker already installed: $(./gpuscribe-worker version) (source $(cut -c1-12 .worker-source 2>/dev/null))"
    elif worker_ok ./gpuscribe-worker.prebuilt; then
        mv -f gpuscribe-worker.prebuilt gpuscribe-worker || die "cannot install the worker"
        echo "the controller's worker runs here: $(./gpuscribe-worker version)"
    else
        [ -e gpuscribe-worker.prebuilt ] &&
            echo "the controller's worker cannot run the $(resolve_engine) engine here: building from source"
        build_worker
    fi
    rm -f gpuscribe-worker.prebuilt
    if [ -n "$SRC_ID" ]; then echo "$SRC_ID" >.worker-source; fi
    step_done worker "$t0"
}

# ---- models

# model_url NAME: where the model host keeps ggml-NAME.bin
model_url() {
    base=${GS_MODEL_BASE_URL:-https://huggingface.co}
    case $1 in
        silero-*) echo "$base/ggml-org/whisper-vad/resolve/main/ggml-$1.bin" ;;
        parakeet-*) echo "$base/ggml-org/$1-GGUF/resolve/main/ggml-$1.bin" ;;
        *) echo "$base/ggerganov/whisper.cpp/resolve/main/ggml-$1.bin" ;;
    esac
}

# header NAME FILE: one header's value from curl's dump (case-insensitive; the last one: the
# answer after the redirects)
header() { tr -d '\r' <"$2" | sed -n "s/^$1: *//Ip" | tail -n 1 | tr -d '"'; }

# fetch_model NAME LO HI: ggml-NAME.bin in $MODELS, verified; progress from LO to HI percent
fetch_model() {
    name=$1; lo=$2; hi=$3
    case $name in ''|*[!A-Za-z0-9._-]*) die "bad model name '$name'" ;; esac
    f="$MODELS/ggml-$name.bin"
    mkdir -p "$MODELS" || die "cannot create $MODELS"
    if [ -s "$f" ] && [ -f "$f.ok" ] && [ "$(cut -d' ' -f1 "$f.ok")" = "$(wc -c <"$f" | tr -d ' ')" ]; then
        echo "model $name present in $MODELS"; return 0
    fi
    img="$APP/models/ggml-$name.bin"
    if [ -s "$img" ]; then
        ln -sf "$img" "$f" && echo "$(wc -c <"$img" | tr -d ' ') image" >"$f.ok" ||
            die "cannot link the image's model $name"
        echo "model $name: using the image's $img"
        return 0
    fi
    have curl || die "no curl here to download model $name"
    url=$(model_url "$name")
    hdr="$DIR/.hf-header"
    : >"$hdr"
    tok=$(envget HF_TOKEN)
    [ -n "$tok" ] && printf 'Authorization: Bearer %s\n' "$tok" >"$hdr"   # a file: never argv
    # what the host publishes: the size and sha256 of the file behind the redirect
    if ! curl -fsSL -I -H @"$hdr" -o /dev/null -D "$DIR/.model-head" "$url"; then
        rm -f "$hdr" "$DIR/.model-head"
        die "model $name: cannot reach $url"
    fi
    size=$(header x-linked-size "$DIR/.model-head")
    sha=$(header x-linked-etag "$DIR/.model-head")
    [ -n "$size" ] || size=$(header content-length "$DIR/.model-head")
    case $size in *[!0-9]*) size="" ;; esac
    case $sha in *[!0-9a-f]*) sha="" ;; esac
    [ ${#sha} -eq 64 ] || sha=""
    progress "$lo" "downloading model $name ($(awk -v s="${size:-0}" 'BEGIN { printf "%.0f", s / 1e6 }') MB)"
    # curl resumes the .part; a watcher turns its growth into setup percent
    ( while sleep 2; do
          got=$(wc -c <"$f.part" 2>/dev/null || echo 0)
          [ -n "$size" ] && [ "$size" -gt 0 ] &&
              progress "$(awk -v g="$got" -v s="$size" -v l="$lo" -v h="$hi" 'BEGIN { printf "%d", l + (h - l) * g / s }')" \
                  "downloading model $name ($(awk -v g="$got" -v s="$size" 'BEGIN { printf "%.0f%% of %.0f MB", 100 * g / s, s / 1e6 }'))"
      done ) &
    watcher=$!
    ok=0
    for try in 1 2 3 4 5; do
        if [ -n "$size" ] && [ -f "$f.part" ] && [ "$(wc -c <"$f.part" | tr -d ' ')" = "$size" ]; then ok=1; break; fi
        if curl -fsSL -C - -H @"$hdr" -o "$f.part" "$url"; then ok=1; break; fi
        echo "model $name: download interrupted (try $try of 5); resuming"
        sleep 1
    done
    kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null
    rm -f "$hdr" "$DIR/.model-head"
    [ $ok = 1 ] || die "downloading $url failed"
    got=$(wc -c <"$f.part" | tr -d ' ')
    if [ -n "$size" ] && [ "$size" != "$got" ]; then
        rm -f "$f.part"; die "model $name: got $got bytes, the host says $size"
    fi
    if [ -n "$sha" ]; then
        have sha256sum || die "no sha256sum here to verify model $name"
        h=$(sha256sum "$f.part" | cut -d' ' -f1)
        [ "$h" = "$sha" ] || { rm -f "$f.part"; die "model $name: sha256 $h is not the host's $sha"; }
    else
        echo "model $name: the host publishes no sha256; checked the size only"
    fi
    mv -f "$f.part" "$f" && echo "$got ${sha:-size-only}" >"$f.ok" || die "cannot store the model"
    echo "model $name downloaded ($got bytes${sha:+, sha256 verified})"
}

install_models() {
    t0=$(now)
    eng=$(resolve_engine)
    list=""
    case $eng in whisper|parakeet) list=$MODEL ;; esac
    for m in $(envget MODELS_PRELOAD | tr ',' ' '); do
        case " $list " in *" $m "*) ;; *) list="$list $m" ;; esac
    done
    vad=$(envget VAD)
    if [ "$eng" = whisper ] && [ "${vad:-auto}" != off ]; then list="$list ${GS_VAD_MODEL:-silero-v5.1.2}"; fi
    if [ -z "$list" ]; then
        progress 80 "engine: pocketsphinx (CPU), no model download needed"
        step_done models "$t0"
        return 0
    fi
    n=$(echo $list | wc -w); i=0
    for m in $list; do
        fetch_model "$m" $((72 + 17 * i / n)) $((72 + 17 * (i + 1) / n))
        i=$((i + 1))
    done
    step_done models "$t0"
}

do_install() {
    exec 9>setup.lock
    if have flock; then flock -w 600 9 || die "another setup run holds setup.lock"; fi
    progress 60 "checking the worker"
    if [ -n "${GS_SETUP_DELAY:-}" ]; then sleep "$GS_SETUP_DELAY"; fi
    install_worker
    [ "${GS_SETUP_FAIL:-}" = binary ] && die "simulated failure after the binary check (GS_SETUP_FAIL)"
    progress 70 "installing engine ($(resolve_engine))"
    install_models
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
    ./gpuscribe-worker --env-file ./worker.env --listen "127.0.0.1:$1" --engine "$2" --model "$3" \
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

stamp_now() { cksum gpuscribe-worker worker.env run-worker.sh instance.env 2>/dev/null | tr '\n' ' '; echo "$PORT $ENGINE $MODEL"; }

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
    [ -x ./gpuscribe-worker ] || die "gpuscribe-worker is not installed in $DIR (run setup first)"
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
        rm -f setup.rc setup.pid
        : >setup.out
        date +%s >setup.starting   # until the child has written setup.pid (a loaded host is slow)
        # the child writes its own status; setsid keeps it alive when the SSH session ends
        if have setsid; then
            setsid nohup sh -c 'echo $$ >setup.pid; rm -f setup.starting; sh ./setup.sh --run "$@" >>setup.out 2>&1 </dev/null; echo $? >setup.rc.new; mv -f setup.rc.new setup.rc; exit 0' \
                setup.sh --engine "$ENGINE" --model "$MODEL" --port "$PORT" --src-id "$SRC_ID" >/dev/null 2>&1 </dev/null &
        else
            nohup sh -c 'echo $$ >setup.pid; rm -f setup.starting; sh ./setup.sh --run "$@" >>setup.out 2>&1 </dev/null; echo $? >setup.rc.new; mv -f setup.rc.new setup.rc; exit 0' \
                setup.sh --engine "$ENGINE" --model "$MODEL" --port "$PORT" --src-id "$SRC_ID" >/dev/null 2>&1 </dev/null &
        fi
        i=0; while [ ! -s setup.pid ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        echo "setup started (pid $(cat setup.pid 2>/dev/null))"
        ;;
    poll)
        if [ -s setup.rc ]; then echo "GPUSCRIBE-STATUS done $(cat setup.rc)"
        elif pid_alive setup.pid setup.sh; then echo "GPUSCRIBE-STATUS running"
        elif [ ! -s setup.pid ] && [ -s setup.starting ] &&
             [ $(( $(date +%s) - $(cat setup.starting) )) -lt 60 ]; then echo "GPUSCRIBE-STATUS running"
        elif [ -f setup.out ]; then
            # the run's last step (writing setup.rc) may be under way as another process
            sleep 0.3
            if [ -s setup.rc ]; then echo "GPUSCRIBE-STATUS done $(cat setup.rc)"; else echo "GPUSCRIBE-STATUS died"; fi
        else echo "GPUSCRIBE-STATUS none"
        fi
        [ -f setup.out ] && tail -c +$((POLL_OFF + 1)) setup.out
        exit 0
        ;;
    install) do_install ;;
    start) do_start ;;
    status)
        if pid_alive worker.pid gpuscribe-worker; then echo "worker running $(cat worker.pid)"; else echo "worker stopped"; fi
        ;;
    stop)
        pid_alive supervisor.pid run-worker && kill "$(cat supervisor.pid)"
        pid_alive worker.pid gpuscribe-worker && kill "$(cat worker.pid)"
        echo "worker stopped"
        ;;
    checkbuild)
        t=${TARBALL:-src.tar.gz}
        [ -s "$t" ] || die "no source bundle at $t"
        list=$(tar -tzf "$t" 2>/dev/null) || die "$t is not a gzip tar"
        echo "$list" | grep -qx 'Makefile' || die "$t lacks Makefile"
        echo "$list" | grep -qx 'src/worker/main.c' || die "$t lacks src/worker/main.c"
        echo "$list" | grep -qx 'src/worker/worker.c' || die "$t lacks src/worker/worker.c"
        miss=$(missing_pkgs $(build_pkgs))
        echo "bundle ok: $(echo "$list" | grep -c '\.c$') C files"
        echo "engine: $(resolve_engine)"
        echo "would install:${miss:- nothing}"
        echo "would run: tar -xzf $t -C build-src && make -C build-src worker"
        ;;
    fetch) fetch_model "$FETCH" 72 89 ;;
    models) install_models ;;
esac
