#!/usr/bin/env bash
# Makes (once) the root file system of an emulated foreign GPU image: Debian 11 (bullseye,
# gcc 10, libmicrohttpd 0.9.72, jansson 2.13, glibc 2.31) with what whisper.cpp's main-cuda
# image has that setup uses (curl, wget, git, ca-certificates), the worker's build packages
# and pocketsphinx (an emulated instance has no network for apt-get), OpenSSH's server (Vast
# injects its own SSH into every image; vastsim runs the image's sshd), and none of the
# controller's libraries (FFmpeg, libssh, SQLite): the controller's Debian 12 binary cannot
# start there, so setup has to build the worker from the source bundle.
#
#   tests/images/debian11.sh            prints the image's directory, making it when missing
#
# The image is cached outside the clone (GS_IMAGE_CACHE, default /var/cache/gpuscribe-tests),
# keyed by the suite and the package list, so later runs and CI on the same machine reuse it. It is
# made in a temporary directory beside the cache and renamed into place when complete.
# Needs root and debootstrap (scripts/setup.sh --test installs it) and Debian's mirror.
set -euo pipefail

suite=bullseye
pkgs=(build-essential pkg-config libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libopusfile-dev
      libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us
      openssh-server curl wget git ca-certificates procps)
cache=${GS_IMAGE_CACHE:-/var/cache/gpuscribe-tests}
key=$(echo "$suite ${pkgs[*]}" | sha256sum | cut -c1-12)
dest="$cache/debian11-$key"
if [ -x "$dest/usr/bin/gcc" ] && [ -f "$dest/.gpuscribe-image" ]; then echo "$dest"; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "debian11.sh: making the image needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian11.sh: debootstrap is missing (scripts/setup.sh --test)" >&2; exit 1; }
mirror=${GS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$cache"
exec 9>"$cache/.debian11.lock"   # one maker at a time (tests/run-all.sh makes it ahead)
flock 9
if [ -x "$dest/usr/bin/gcc" ] && [ -f "$dest/.gpuscribe-image" ]; then echo "$dest"; exit 0; fi
tmp=$(mktemp -d "$cache/.debian11-XXXXXX")
cleanup() { [ -n "${tmp:-}" ] && [ -d "$tmp" ] && rm -rf --one-file-system "$tmp"; }
trap cleanup EXIT
echo "debian11.sh: making the Debian 11 image in $dest (debootstrap; a few minutes, once)" >&2
inc=$(IFS=,; echo "${pkgs[*]}")
if ! debootstrap --variant=minbase --include="$inc" "$suite" "$tmp" "$mirror" >"$cache/debian11.log" 2>&1; then
    tail -n 20 "$cache/debian11.log" >&2
    echo "debian11.sh: debootstrap failed (log: $cache/debian11.log)" >&2
    exit 1
fi
# what an image does not need and must not keep: downloaded packages, host keys made at install
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/etc/ssh/ssh_host_*
mkdir -p "$tmp/run/sshd" "$tmp/workspace"
echo "debian 11 worker build image, made by tests/images/debian11.sh $key" >"$tmp/.gpuscribe-image"
rm -rf --one-file-system "$dest"
mv "$tmp" "$dest"
tmp=""
echo "$dest"
