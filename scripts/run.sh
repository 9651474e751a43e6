#!/usr/bin/env bash
# The main job: install what cosy needs, build it, convert the bundled official-format fixture model
# (tests/data/cv2-tiny/model, small random weights), import its prompt voice and synthesise a sentence
# in streaming mode to out/hello.wav, printing the per-stage timings. The fixture's random weights make
# noise-like audio: the pipeline is real, the voice is not (real checkpoints: see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
mkdir -p out
build/cosy convert tests/data/cv2-tiny/model -o out/cv2-tiny.gguf
build/cosy info out/cv2-tiny.gguf
build/cosy voice import -m out/cv2-tiny.gguf --fixture tests/data/cv2-tiny/golden -o out/fixture.voice
build/cosy synth -m out/cv2-tiny.gguf --voice out/fixture.voice --stream \
  --text "Hello! This is cosy, a streaming text-to-speech engine in C." -o out/hello.wav
