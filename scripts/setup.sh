#!/usr/bin/env bash
# Installs the Debian packages gpuscribe needs to build, run and test.
# Idempotent: does nothing when every package is already present.
# Usage: scripts/setup.sh [--test]   (--test adds what the test suite needs, and runs
# npm ci in tests/browser for playwright-core when it is missing)
set -euo pipefail

pkgs=(build-essential pkg-config
      libmicrohttpd-dev libjansson-dev libssh-dev libsqlite3-dev libcurl4-openssl-dev
      libavformat-dev libavcodec-dev libswresample-dev libavutil-dev
      libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us
      libopus-dev libopusenc-dev libopusfile-dev      # Ogg Opus to the workers (src/audio/opus.h)
      openssh-client ca-certificates)
test_pkgs=(openssh-server debootstrap curl jq espeak-ng sox ffmpeg wrk time iproute2 util-linux procps pocketsphinx-testdata python3
           sqlite3 clang libclang-rt-dev valgrind    # sqlite3: bad-input suite; clang + libFuzzer: make fuzz; valgrind: make valgrind-test
           chromium nodejs                           # browser tests (tests/browser: playwright-core from npm)
           prometheus                                # promtool: the metrics suite checks GET /metrics
           debhelper)                                # test_package: dpkg-buildpackage (dpkg-dev comes with build-essential)

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TEST=0
if [ "${1:-}" = "--test" ]; then
    TEST=1
    pkgs+=("${test_pkgs[@]}")
    # Debian's nodejs comes without npm; other builds of nodejs (NodeSource) include it
    command -v npm >/dev/null || pkgs+=(npm)
fi

# tests/browser/node_modules: playwright-core at the version package-lock.json pins (1.61, the
# newest release that runs on node 18, Debian 12's own nodejs; no browser download: the tests
# drive Debian's chromium). Reinstalled when what is there is another version.
npm_step() {
    [ "$TEST" = 1 ] || return 0
    local dir=$ROOT/tests/browser want have
    want=$(sed -n '/"node_modules\/playwright-core"/,/}/s/.*"version": "\([^"]*\)".*/\1/p' "$dir/package-lock.json" | head -n 1)
    have=""   # (none on a fresh clone: sed must not fail the script under set -e/pipefail)
    [ -f "$dir/node_modules/playwright-core/package.json" ] &&
        have=$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' "$dir/node_modules/playwright-core/package.json" | head -n 1)
    [ -n "$have" ] && [ "$have" = "$want" ] && return 0
    echo "setup: installing tests/browser's npm packages (playwright-core $want${have:+, replacing $have})" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then npm_step; exit 0; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
npm_step
