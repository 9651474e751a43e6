#!/usr/bin/env bash
# The main job: install what cosy needs, build it, convert the bundled official-format fixture
# model (tests/data/cv2-tiny/model) to model.gguf and print its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
mkdir -p out
build/cosy convert tests/data/cv2-tiny/model -o out/cv2-tiny.gguf
build/cosy info out/cv2-tiny.gguf
