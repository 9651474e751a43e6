#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) in build-fuzz/ and runs fuzz_text for a bounded
# time: tests/fuzz/run.sh [SECONDS, default 60] [extra libFuzzer flags...]. Seeds: the tokenizer corpus
# lines. Exits non-zero on a crash, a sanitizer report or a broken invariant (the input is kept in
# build-fuzz/artifacts/).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN="${1:-60}"
shift || true
BUILD=build-fuzz
CC_BIN="${CC_FUZZ:-$(command -v clang || command -v clang-14 || true)}"
if [ -z "$CC_BIN" ]; then echo "fuzz: clang is required (apt-get install clang)" >&2; exit 1; fi
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOSY_FUZZ=ON >/dev/null
cmake --build "$BUILD" --target fuzz_text -j"$(nproc)" >/dev/null
SEEDS="$BUILD/fuzz_seeds"
mkdir -p "$SEEDS" "$BUILD/artifacts" "$BUILD/fuzz_corpus"
if [ -z "$(ls -A "$SEEDS")" ]; then
  # one seed per corpus line (JSON-quoted; libFuzzer mutates from there)
  zcat tests/data/tokenizer/corpus.jsonl.gz | head -n 2000 | split -l 1 - "$SEEDS/seed_"
fi
"$BUILD/tests/fuzz/fuzz_text" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -print_final_stats=1 \
  -artifact_prefix="$BUILD/artifacts/" "$@" "$BUILD/fuzz_corpus" "$SEEDS"
