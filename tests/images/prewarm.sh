#!/usr/bin/env bash
# Starts making (in the background, detached) the root file systems that integration suites
# need and that are not cached yet: the Debian 11 image (test_foreign_image) and the Debian 12
# root (test_package). debootstrap takes minutes the first time; started before the build,
# it overlaps the build and the unit tests. The suites call the same scripts, which wait on
# the makers' locks; tests/run-all.sh waits for them before it ends. Returns at once; does
# nothing without root, debootstrap or flock. Logs: in the cache, beside each root.
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null && command -v flock >/dev/null || exit 0
mapfile -t d12 < <(grep -v '^#' tests/images/debian12.pkgs | grep .)
setsid tests/images/debian11.sh </dev/null >/dev/null 2>&1 &
setsid tests/images/debian12.sh "${d12[@]}" </dev/null >/dev/null 2>&1 &
exit 0
