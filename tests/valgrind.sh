#!/usr/bin/env bash
# valgrind.sh [filter]: the unit tests (normal build) under valgrind memcheck; any memory
# error or definite leak fails the test it happens in (the runner forks one child per test).
set -u
cd "$(dirname "$0")/.."
exec valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --track-origins=no --child-silent-after-fork=no \
    --suppressions=tests/valgrind.supp --gen-suppressions=no build/unit_tests "$@"
