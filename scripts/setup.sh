#!/usr/bin/env bash
# Installs the Debian packages gpuscribe needs to build, run and test.
# Idempotent: does nothing when every package is already present.
# Usage: scripts/setup.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail

pkgs=(build-essential pkg-config
      libmicrohttpd-dev libjansson-dev libssh-dev libsqlite3-dev libcurl4-openssl-dev
      libavformat-dev libavcodec-dev libswresample-dev libavutil-dev
      libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us
      openssh-client ca-certificates)
test_pkgs=(openssh-server curl jq espeak-ng sox ffmpeg wrk time iproute2 util-linux procps pocketsphinx-testdata python3
           sqlite3 clang libclang-rt-dev valgrind)   # sqlite3: bad-input suite; clang + libFuzzer: make fuzz; valgrind: make valgrind-test

if [ "${1:-}" = "--test" ]; then
    pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
