#!/usr/bin/env bash
# Makes (once) a clean Debian 12 (bookworm) root file system: minbase, systemd (for
# `systemd-analyze verify` inside it) and the packages named on the command line (what the
# package under test depends on: tests/integration/test_package.sh passes the names from the
# .deb's Depends), so that installing the .deb there needs no network.
#
#   tests/images/debian12.sh [PKG...]   prints the root's directory, making it when missing
#
# The root is cached outside the clone (GS_IMAGE_CACHE, default /var/cache/gpuscribe-tests),
# keyed by the suite and the sorted package list (a changed list makes a new root; old ones
# can be deleted at any time). It is made in a temporary directory beside the cache and renamed
# into place when complete, under a lock, so concurrent runs neither race nor see half a root.
# Callers must not change it: mount an overlay on it (test_package.sh) or copy it.
# Needs root, debootstrap and flock (scripts/setup.sh --test installs them) and Debian's mirror.
set -euo pipefail

suite=bookworm
pkgs=(systemd "$@")
mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
cache=${GS_IMAGE_CACHE:-/var/cache/gpuscribe-tests}
key=$(echo "$suite ${pkgs[*]}" | sha256sum | cut -c1-12)
dest="$cache/debian12-$key"
ready() { [ -x "$dest/usr/bin/apt-get" ] && [ -f "$dest/.gpuscribe-image" ]; }
if ready; then echo "$dest"; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "debian12.sh: making the root needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian12.sh: debootstrap is missing (scripts/setup.sh --test)" >&2; exit 1; }
mirror=${GS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"
exec 9>"$cache/.debian12.lock"
flock 9
if ready; then echo "$dest"; exit 0; fi   # made by another run while this one waited
tmp=$(mktemp -d "$cache/.debian12-XXXXXX")
cleanup() { [ -n "${tmp:-}" ] && [ -d "$tmp" ] && rm -rf --one-file-system "$tmp"; }
trap cleanup EXIT
log="$cache/debian12-$key.log"
echo "debian12.sh: making the Debian 12 root $dest (debootstrap; a few minutes, once)" >&2
inc=$(IFS=,; echo "${pkgs[*]}")
if ! debootstrap --variant=minbase --include="$inc" "$suite" "$tmp" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    echo "debian12.sh: debootstrap failed (log: $log)" >&2
    exit 1
fi
rm -rf "$tmp"/var/cache/apt/archives/*.deb
echo "debian 12 root: ${pkgs[*]} (tests/images/debian12.sh $key)" >"$tmp/.gpuscribe-image"
rm -rf --one-file-system "$dest"
mv "$tmp" "$dest"
tmp=""
echo "$dest"
