#!/usr/bin/env bash
# Installs what cosy needs, builds it and runs the whole test suite (unit, parity against the
# official fixtures, CLI). `--sanitize` builds and runs it under AddressSanitizer + UBSan instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if [ "${1:-}" = "--sanitize" ]; then
  scripts/build.sh build-asan -DCOSY_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest --test-dir build-asan --output-on-failure -j1
else
  scripts/build.sh build
  ctest --test-dir build --output-on-failure -j1
fi
