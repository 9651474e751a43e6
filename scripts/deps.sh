#!/usr/bin/env bash
# Installs the Debian 12 packages cosy builds and tests with (idempotent; uses sudo when not root).
set -euo pipefail
PACKAGES=(build-essential cmake pkg-config libopenblas-dev libcjson-dev libyaml-dev zlib1g-dev libutf8proc-dev libsndfile1-dev
          libmp3lame-dev libopusenc-dev libflac-dev   # response-format encoders (src/io/encode.c)
          libcivetweb-dev                             # the HTTP/WebSocket server (src/server)
          curl prometheus                             # server tests: curl, promtool checks /metrics
          ffmpeg sox flac opus-tools mpg123            # decoders tests/test_encode.c checks them with
          chromium                                     # the web page's test (tests/test_web_page.sh)
          clang)                                       # libFuzzer targets (tests/fuzz/run.sh)
# node + npm for the client tests (tests/clients): Debian's, unless a node is there already (e.g.
# NodeSource's nodejs, which brings its own npm and conflicts with Debian's npm package)
if ! command -v node >/dev/null 2>&1; then PACKAGES+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1 && ! dpkg-query -W -f='${Version}' nodejs 2>/dev/null | grep -q nodesource; then PACKAGES+=(npm)
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
