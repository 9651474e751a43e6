#!/usr/bin/env bash
# The main job: install what cosy needs, build it, convert the bundled official-format fixture model
# (tests/data/cv2-voice-tiny/model: the cv2-tiny model with small random weights, plus its campplus.onnx
# and speech_tokenizer_v2.onnx), make a voice from a recording and its transcript, and synthesise a
# sentence with it in streaming mode to out/hello.wav, printing the per-stage timings. The fixture's random
# weights make noise-like audio: the pipeline is real, the voice is not (real checkpoints: see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
mkdir -p out
build/cosy convert tests/data/cv2-voice-tiny/model -o out/cv2-tiny.gguf
build/cosy info out/cv2-tiny.gguf
build/cosy voice import -m out/cv2-tiny.gguf --wav tests/data/cv2-voice-tiny/golden/en_16k_prompt.wav \
  --text "The quick brown fox jumps over the lazy dog near the riverbank." -o out/fox.voice
build/cosy synth -m out/cv2-tiny.gguf --voice out/fox.voice --stream \
  --text "Hello! This is cosy, a streaming text-to-speech engine in C." -o out/hello.wav
