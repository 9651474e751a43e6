#!/usr/bin/env bash
# Installs the Debian 12 packages cosy builds and tests with (idempotent; uses sudo when not root).
set -euo pipefail
PACKAGES=(build-essential cmake pkg-config libopenblas-dev libcjson-dev libyaml-dev zlib1g-dev libutf8proc-dev libsndfile1-dev
          libmp3lame-dev libopusenc-dev libflac-dev   # response-format encoders (src/io/encode.c)
          libcivetweb-dev                             # the HTTP/WebSocket server (src/server)
          curl prometheus                             # server tests: curl, promtool checks /metrics
          ffmpeg sox flac opus-tools mpg123)           # decoders tests/test_encode.c checks them with
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
