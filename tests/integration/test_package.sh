#!/usr/bin/env bash
# test_package: the Debian package, built from a copy of the tree and installed in a clean
# Debian 12 root.
#
# 1. The tree (tracked and untracked files git does not ignore) is copied to a temp dir and
#    `dpkg-buildpackage -b -us -uc` runs there: the tree itself stays as it was.
# 2. A cached Debian 12 root (tests/images/debian12.sh: minbase, systemd and the .deb's
#    Depends; first run: debootstrap, a few minutes) gets an overlay in a private mount,
#    network and PID namespace (unshare): whatever is mounted there goes with the namespace,
#    nothing is written to the cached root, the only network is loopback (apt must resolve the
#    dependencies from the root alone) and every process dies with the namespace.
# 3. There: `apt-get install ./gpuscribe_*.deb`; the files, user, modes; `systemd-analyze
#    verify` of the unit (and of a broken copy, which must fail); the man page and the bash
#    completion against `gpuscribe serve --help`; then the unit's own ExecStart, run as its
#    User= with its Environment= (DATA_DIR in the StateDirectory): /healthz, the UI from
#    /usr/share/gpuscribe/web, the state owned by the user, and VAST_INSTANCE_ID (a vanished
#    instance, against vastsim) removed from /etc/gpuscribe/gpuscribe.env by the service
#    itself; SIGTERM exits 0.
# 4. `dpkg --purge gpuscribe`: none of its files, no user or group, no /etc/gpuscribe, no
#    /var/lib/gpuscribe, no file named *gpuscribe* and none owned by its uid are left.
# Needs root, dpkg-dev, debhelper, debootstrap, unshare/setpriv/flock (util-linux), curl;
# scripts/setup.sh --test installs them.
source "$(dirname "$0")/lib.sh"
export LC_ALL=C

need_all() {
    [ "$(id -u)" = 0 ] || { skip "package" "needs root (chroot, mounts, debootstrap)"; finish; exit; }
    local c
    for c in dpkg-buildpackage dh debootstrap unshare setpriv flock curl jq ip; do
        command -v "$c" >/dev/null || { skip "package" "$c is missing (scripts/setup.sh --test)"; finish; exit; }
    done
}
need_all

VERSION=$(cat "$ROOT/VERSION")
ARCH=$(dpkg --print-architecture)
BUILD=$TDIR/build
SRC=$BUILD/gpuscribe-$VERSION
DEB=$BUILD/gpuscribe_${VERSION}_${ARCH}.deb

# ---------------------------------------------------------------- 1. build, in a copy
# what git tracks or would (not build/, node_modules/...); without git, the tree less those
tree_state() { git -C "$ROOT" status --porcelain --ignored=no 2>/dev/null; }
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    tree_before=$(tree_state)
    (cd "$ROOT" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -C "$SRC" -xf -
else
    tree_before=""
    tar -C "$ROOT" --exclude=./build --exclude=node_modules --exclude=./tests/out --exclude=./.env -cf - . | tar -C "$SRC" -xf -
fi
t0=$(date +%s)
(cd "$SRC" && dpkg-buildpackage -b -us -uc) >"$TDIR/build.log" 2>&1
rc=$?
build_s=$(( $(date +%s) - t0 ))
if [ "$rc" -ne 0 ] || [ ! -f "$DEB" ]; then
    fail "dpkg-buildpackage builds gpuscribe_${VERSION}_${ARCH}.deb" "exit $rc; log tail:"
    tail -n 30 "$TDIR/build.log" | sed 's/^/    | /'
    finish; exit
fi
pass "dpkg-buildpackage builds gpuscribe_${VERSION}_${ARCH}.deb (${build_s} s, $(stat -c %s "$DEB") bytes)"
check "the tree is left as it was" test "$(tree_state)" = "$tree_before"
# packaging warnings (dpkg-shlibdeps, dpkg-gencontrol's substvars, dh_*); a compiler warning
# already fails the build (-Werror). The lines are shown when there are any.
warns=$(grep -E '^(dpkg-[a-z]+|dh_[a-z]+|dpkg-buildpackage): warning' "$TDIR/build.log" | head -n 5)
if [ -z "$warns" ]; then pass "no packaging warning"; else fail "no packaging warning" "$warns"; fi
check "the binary embeds no build path" bash -c "! grep -qa -- '$BUILD' '$SRC/build/gpuscribe'"
field() { dpkg-deb -f "$DEB" "$1"; }
check "control: gpuscribe $VERSION (VERSION) $ARCH" test "$(field Package) $(field Version) $(field Architecture)" = "gpuscribe $VERSION $ARCH"
depends=$(field Depends)
# libav*, libpocketsphinx and libsphinxbase are opened with dlopen: ${dlopen:Depends}; libopus0
# comes with libopusenc0 / libopusfile0 (the binary calls libopus only through them)
for d in libmicrohttpd12 libssh-4 libavformat59 libavcodec59 libswresample4 libavutil57 \
         libpocketsphinx3 libsphinxbase3 libsqlite3-0 libopusenc0 libopusfile0 \
         adduser ca-certificates; do
    check "Depends: $d" grep -qE "(^|, )$d( |,|\$)" <<<"$depends"
done
contents=$(dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/bin/gpuscribe /lib/systemd/system/gpuscribe.service /usr/share/gpuscribe/gpuscribe-worker \
         /usr/share/gpuscribe/gpuscribe-src.tar.gz /usr/share/gpuscribe/gpuscribe-src.id \
         /usr/share/gpuscribe/remote/setup.sh /usr/share/gpuscribe/web/index.html \
         /usr/share/man/man1/gpuscribe.1.gz /usr/share/bash-completion/completions/gpuscribe; do
    check "the package has $f" grep -qx -- "$f" <<<"$contents"
done

# ---------------------------------------------------------------- 2. the Debian 12 root
mapfile -t deps < <(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/[[:space:]]//g' | grep .)
# the root holds a fixed list (tests/run-all.sh makes it ahead, in the background): every
# Depends must be on it
mapfile -t root_pkgs < <(grep -v '^#' "$ROOT/tests/images/debian12.pkgs" | grep .)
missing=()
for d in "${deps[@]}"; do printf '%s\n' "${root_pkgs[@]}" | grep -qx -- "$d" || missing+=("$d"); done
check "every Depends is in the root's list (tests/images/debian12.pkgs)${missing[*]:+; missing: ${missing[*]}}" \
    test "${#missing[@]}" -eq 0
t0=$(date +%s)
IMG=$("$ROOT/tests/images/debian12.sh" "${root_pkgs[@]}" 2>"$TDIR/image.log")
if [ -z "$IMG" ] || [ ! -x "$IMG/usr/bin/apt-get" ]; then
    fail "a Debian 12 root" "tests/images/debian12.sh failed:"; sed 's/^/    | /' "$TDIR/image.log"
    finish; exit
fi
pass "a Debian 12 root with the Depends ($IMG, $(( $(date +%s) - t0 )) s)"

# ---------------------------------------------------------------- 3 and 4, in the namespace
# inner.sh prints "PASS<tab>name" / "FAIL<tab>name<tab>why" lines; anything else is shown.
cat >"$TDIR/inner.sh" <<'INNER'
set -u
IMG=$1 T=$2 DEB=$3 SIM_BIN=$4
R=$T/ov/root
res() { printf '%s\t%s\t%s\n' "$@"; }
ok() { res PASS "$1" ""; }
ko() { res FAIL "$1" "$2"; }
chk() { local n=$1; shift; if "$@" >/dev/null 2>&1; then ok "$n"; else ko "$n" "command failed: $*"; fi; }
in_root() { chroot "$R" "$@"; }
mkdir -p "$T/ov/upper" "$T/ov/work" "$R"
mount -t overlay overlay -o "lowerdir=$IMG,upperdir=$T/ov/upper,workdir=$T/ov/work" "$R" || { ko "overlay on the root" "mount failed"; exit 1; }
mount -t proc proc "$R/proc" || { ko "proc in the root" "mount failed"; umount "$R"; exit 1; }
ip link set lo up 2>/dev/null || ko "loopback up" "ip link set lo up failed"
unmount_all() { umount "$R/proc" 2>/dev/null; umount "$R" 2>/dev/null; }
trap unmount_all EXIT

# ---- install
cp "$DEB" "$R/tmp/"
deb=/tmp/$(basename "$DEB")
if DEBIAN_FRONTEND=noninteractive in_root apt-get install -y --no-install-recommends "$deb" >"$T/apt.log" 2>&1; then
    ok "apt-get install ./$(basename "$DEB") (dependencies from the root, offline)"
else
    ko "apt-get install ./$(basename "$DEB")" "see:"; sed 's/^/    | /' "$T/apt.log" | tail -n 20
    exit 0
fi
rm -f "$R$deb"
chk "nothing else installed" grep -q '^0 upgraded, 1 newly installed' "$T/apt.log"
in_root dpkg -L gpuscribe >"$T/files.list"
pw=$(in_root getent passwd gpuscribe); gr=$(in_root getent group gpuscribe)
IFS=: read -r _ _ uid gid _ home shell <<<"$pw"
chk "a gpuscribe system user (uid $uid < 1000, home /var/lib/gpuscribe, no login)" \
    test -n "$pw" -a "${uid:-9999}" -lt 1000 -a "$home" = /var/lib/gpuscribe -a "$shell" = /usr/sbin/nologin
chk "a gpuscribe group" test -n "$gr"
mode() { stat -c '%u:%g %a' "$R$1"; }   # numeric: the host's names for these ids differ
chk "/etc/gpuscribe root:gpuscribe 0770" test "$(mode /etc/gpuscribe)" = "0:$gid 770"
chk "gpuscribe.env gpuscribe:gpuscribe 0600" test "$(mode /etc/gpuscribe/gpuscribe.env)" = "$uid:$gid 600"
chk "/var/lib/gpuscribe gpuscribe 0750" test "$(mode /var/lib/gpuscribe)" = "$uid:$gid 750"
chk "the unit is enabled (multi-user.target.wants)" test -L "$R/etc/systemd/system/multi-user.target.wants/gpuscribe.service"
chk "the bundle's id is its sha256" test "$(sha256sum "$R/usr/share/gpuscribe/gpuscribe-src.tar.gz" | cut -c1-64)" = "$(cat "$R/usr/share/gpuscribe/gpuscribe-src.id")"
chk "the worker runs" in_root /usr/share/gpuscribe/gpuscribe-worker version
chk "gpuscribe version is VERSION" test "$(in_root gpuscribe version)" = "gpuscribe $(dpkg-deb -f "$DEB" Version)"

# ---- the unit
unit=/lib/systemd/system/gpuscribe.service
if in_root systemd-analyze verify --man=no "$unit" >"$T/verify.log" 2>&1 && ! grep -q . "$T/verify.log"; then
    ok "systemd-analyze verify gpuscribe.service: clean"
else
    ko "systemd-analyze verify gpuscribe.service" "$(tr '\n' ' ' <"$T/verify.log")"
fi
sed 's|^ExecStart=/usr/bin/gpuscribe |ExecStart=/usr/bin/gpuscribe-missing |' "$R$unit" >"$R/etc/systemd/system/gpuscribe-broken.service"
chk "systemd-analyze verify fails on a broken copy (ExecStart missing)" \
    bash -c "! chroot '$R' systemd-analyze verify --man=no /etc/systemd/system/gpuscribe-broken.service"
rm -f "$R/etc/systemd/system/gpuscribe-broken.service"
key() { sed -n "s/^$1=//p" "$R$unit"; }
for k in NoNewPrivileges ProtectHome PrivateTmp; do chk "unit: $k=yes" test "$(key $k)" = yes; done
chk "unit: ProtectSystem=strict, StateDirectory=gpuscribe, ReadWritePaths=/etc/gpuscribe, Restart=on-failure" \
    test "$(key ProtectSystem) $(key StateDirectory) $(key ReadWritePaths) $(key Restart)" = "strict gpuscribe /etc/gpuscribe on-failure"

# ---- the man page and the completion against --help
help=$(in_root gpuscribe serve --help)
mapfile -t names < <(sed -nE 's/^  (--[a-z0-9-]+, )?([A-Z][A-Z0-9_]+) .*/\2/p' <<<"$help")
mapfile -t flags < <(sed -nE 's/^  (--[a-z0-9-]+), [A-Z].*/\1/p' <<<"$help")
man=$(zcat "$R/usr/share/man/man1/gpuscribe.1.gz")
miss=(); for n in "${names[@]}"; do grep -q "$n\$" <<<"$man" || miss+=("$n"); done
chk "gpuscribe(1): .TH, and all ${#names[@]} settings of --help" test "${#names[@]}" -ge 30 -a "${#miss[@]}" = 0 -a -n "$(grep '^\.TH GPUSCRIBE 1' <<<"$man")"
[ "${#miss[@]}" = 0 ] || echo "    settings missing in the man page: ${miss[*]}"
if command -v man >/dev/null; then
    chk "gpuscribe(1) renders (man -l), with no warning" bash -c "MANWIDTH=80 man --warnings -l '$R/usr/share/man/man1/gpuscribe.1.gz' 2>&1 >/dev/null | (! grep -q .) && MANWIDTH=80 man -l '$R/usr/share/man/man1/gpuscribe.1.gz' 2>/dev/null | grep -q 'VAST_API_KEY'"
fi
comp="$R/usr/share/bash-completion/completions/gpuscribe"
complete_words() { bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _gpuscribe; printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"; }
chk "completion: commands" test "$(complete_words gpuscribe s | tr '\n' ' ')" = "serve status "
chk "completion: gpuscribe vast d -> destroy" test "$(complete_words gpuscribe vast d)" = destroy
all=$(complete_words gpuscribe serve --)
miss=(); for f in "${flags[@]}"; do grep -qx -- "$f" <<<"$all" || miss+=("$f"); done
chk "completion: all ${#flags[@]} flags of serve --help, no secret" test "${#flags[@]}" -ge 25 -a "${#miss[@]}" = 0 -a -z "$(grep -E -- '--(vast-api-key|api-token|hf-token|openai-api-key)$' <<<"$all")"
[ "${#miss[@]}" = 0 ] || echo "    flags missing in the completion: ${miss[*]}"

# ---- the service's ExecStart, as its user, with its environment
exec_start=$(key ExecStart); user=$(key User); group=$(key Group)
mapfile -t envs < <(key Environment)
data_dir=$(printf '%s\n' "${envs[@]}" | sed -n 's/^DATA_DIR=//p')
chk "unit: DATA_DIR is the StateDirectory" test "$data_dir" = "/var/lib/$(key StateDirectory)"
env_file=$(sed -nE 's/.*--env-file ([^ ]+).*/\1/p' <<<"$exec_start")
chk "unit: ExecStart reads /etc/gpuscribe/gpuscribe.env" test "$env_file" = /etc/gpuscribe/gpuscribe.env
sim_key=vast-test-key-$RANDOM
"$SIM_BIN" --port 0 --api-key "$sim_key" --isolation off >"$T/sim.out" 2>"$T/sim.log" &
simpid=$!
for _ in $(seq 1 100); do [ -s "$T/sim.out" ] && break; sleep 0.05; done
sim=$(sed -n '1s/^vastsim listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$T/sim.out")
[ -n "$sim" ] || ko "vastsim starts" "$(cat "$T/sim.log")"
printf 'VAST_API_KEY=%s\nVAST_URL=%s\nVAST_INSTANCE_ID=424242\n' "$sim_key" "$sim" >>"$R$env_file"
# the environment systemd gives a service: its Environment=, the user's HOME, a PATH
chroot "$R" setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs -- \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$home" USER="$user" LANG=C.UTF-8 "${envs[@]}" \
    $exec_start >"$T/serve.log" 2>&1 &
spid=$!
url=""
for _ in $(seq 1 150); do
    url=$(sed -n 's/.*listening on \(http:\/\/[^ ]*\) .*/\1/p' "$T/serve.log" | head -n1)
    [ -n "$url" ] && break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$url" ]; then
    ko "the service starts" "log:"; sed 's/^/    | /' "$T/serve.log" | tail -n 20
else
    ok "the service starts ($url)"
    chk "it listens on the default 127.0.0.1:8000" test "$url" = http://127.0.0.1:8000
    chk "GET /healthz over loopback: 200" test "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" = 200
    curl -s "$url/" -o "$T/index.html"
    chk "GET / is /usr/share/gpuscribe/web/index.html" cmp "$T/index.html" "$R/usr/share/gpuscribe/web/index.html"
    cfg=$(curl -s "$url/api/config")
    chk "config: WEB_DIR /usr/share/gpuscribe/web, DATA_DIR $data_dir" \
        test "$(jq -r '.WEB_DIR + " " + .DATA_DIR' <<<"$cfg")" = "/usr/share/gpuscribe/web $data_dir"
    chk "it runs as $user (uid $uid)" bash -c "grep -qE '^Uid:\s+$uid\s' '$R/proc/$spid/status'"
    # FFmpeg and pocketsphinx are opened on first use: the Depends must have brought them
    espeak-ng -v en-us -w "$T/s.wav" "hello world" 2>/dev/null
    jid=$(curl -s -F "file=@$T/s.wav" "$url/api/jobs" | jq -r '.id // empty')
    jst=none
    for _ in $(seq 1 600); do
        [ -n "$jid" ] || break
        jst=$(curl -s "$url/api/jobs/$jid" | jq -r .state)
        case $jst in done|failed) break;; esac
        sleep 0.1
    done
    chk "an upload is decoded (FFmpeg) and transcribed (pocketsphinx) by the installed service ($jst)" \
        test "$jst" = done
    for _ in $(seq 1 100); do grep -q "^VAST_INSTANCE_ID=" "$R$env_file" || break; sleep 0.1; done
    if ! grep -q "^VAST_INSTANCE_ID=" "$R$env_file" && grep -q "VAST_INSTANCE_ID removed from $env_file" "$T/serve.log"; then
        ok "the service removed the vanished VAST_INSTANCE_ID from its env file"
    else
        ko "the service removed the vanished VAST_INSTANCE_ID from its env file" "log:"
        sed 's/^/    | /' "$T/serve.log" | tail -n 20; sed 's/^/    env | /' "$R$env_file"
    fi
    chk "the env file kept its other lines, mode and owner" bash -c "grep -q '^VAST_API_KEY=' '$R$env_file' && grep -q '^#API_TOKEN=' '$R$env_file' && test \"\$(stat -c '%u:%g %a' '$R$env_file')\" = '$uid:$gid 600'"
    chk "the store is in $data_dir" test -s "$R$data_dir/gpuscribe.db"
    chk "all its state (and what is in /etc/gpuscribe) is owned by $user" test -z "$(find "$R$data_dir" "$R/etc/gpuscribe" -mindepth 1 ! -user "$uid" -print)"
    chk "the worker payload is found (no 'no worker source bundle')" bash -c "! grep -q 'no worker source bundle' '$T/serve.log'"
    kill -TERM "$spid"; wait "$spid"; src=$?
    chk "SIGTERM: exit status 0" test "$src" = 0
fi
kill -TERM "$simpid" 2>/dev/null; wait "$simpid" 2>/dev/null

# ---- purge
if in_root dpkg --purge gpuscribe >"$T/purge.log" 2>&1; then ok "dpkg --purge gpuscribe"; else ko "dpkg --purge gpuscribe" "$(tail -n 5 "$T/purge.log" | tr '\n' ' ')"; fi
left=()
while read -r f; do
    [ -e "$R$f" ] || [ -L "$R$f" ] || continue
    [ -d "$R$f" ] && [[ "$f" != *gpuscribe* ]] && continue   # /usr, /usr/bin, /lib (-> usr/lib) ...
    left+=("$f")
done <"$T/files.list"
chk "none of the package's files is left" test "${#left[@]}" = 0
[ "${#left[@]}" = 0 ] || echo "    left: ${left[*]}"
chk "no gpuscribe user or group" bash -c "! chroot '$R' getent passwd gpuscribe && ! chroot '$R' getent group gpuscribe"
chk "no /etc/gpuscribe, no /var/lib/gpuscribe" test ! -e "$R/etc/gpuscribe" -a ! -e "$R/var/lib/gpuscribe"
named=$(find "$R" -xdev -name '*gpuscribe*' ! -path "$R/.gpuscribe-image" -print 2>/dev/null)
chk "no file named *gpuscribe* anywhere in the root" test -z "$named"
[ -z "$named" ] || echo "$named" | sed "s|^$R|    left: |"
owned=$(find "$R" -xdev -uid "${uid:-0}" -print 2>/dev/null | head)
chk "no file owned by its uid $uid" test -z "$owned"
unmount_all
trap - EXIT
chk "the overlay and proc are unmounted" bash -c "! grep -q ' $R' /proc/self/mounts"
INNER

t0=$(date +%s)
while IFS= read -r line; do
    if [[ "$line" == PASS$'\t'* ]]; then IFS=$'\t' read -r _ n _ <<<"$line"; pass "$n"
    elif [[ "$line" == FAIL$'\t'* ]]; then IFS=$'\t' read -r _ n m <<<"$line"; fail "$n" "$m"
    else echo "$line"; fi
done < <(unshare --mount --net --pid --fork --propagation private \
             bash "$TDIR/inner.sh" "$IMG" "$TDIR" "$DEB" "$GS_SIM" 2>&1)
echo "     (install, checks, service and purge: $(( $(date +%s) - t0 )) s)"
check "nothing of the test is mounted on the host" bash -c "! grep -q '$TDIR' /proc/self/mounts"
check "the cached root was not changed" test ! -e "$IMG/usr/bin/gpuscribe" -a ! -e "$IMG/etc/gpuscribe"
finish
