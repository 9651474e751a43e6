#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) in build-fuzz/ and runs them one after another.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]      each target for SECONDS (default 30); all when none named
#   tests/fuzz/run.sh --runs N [TARGET...]       each target for N executions instead (long runs: 1000000)
#   FUZZ_FLAGS="-jobs=2 ..." tests/fuzz/run.sh   extra libFuzzer flags for every target
#
# Targets: fuzz_text fuzz_pt fuzz_gguf fuzz_yaml fuzz_npy fuzz_wav fuzz_voice fuzz_onnx fuzz_tn (see each file's header).
# Seeds are generated into build-fuzz/fuzz_seeds/<target> from tests/data only (copies of small
# fixtures, and what make_seeds writes); the grown corpus stays in build-fuzz/fuzz_corpus/<target>.
# Exits non-zero on any crash, sanitizer report, leak, broken invariant, timeout (-timeout=10 s per
# input) or memory blow-up (-rss_limit_mb=2048); the input is kept in build-fuzz/artifacts/<target>/
# and the log in build-fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
ALL_TARGETS=(fuzz_text fuzz_pt fuzz_gguf fuzz_yaml fuzz_npy fuzz_wav fuzz_voice fuzz_onnx fuzz_tn)
LIMIT=(-max_total_time=30)
if [ "${1:-}" = "--runs" ]; then
  LIMIT=(-runs="$2"); shift 2
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  LIMIT=(-max_total_time="$1"); shift
fi
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz: unknown target $t (${ALL_TARGETS[*]})" >&2; exit 2; }
done

BUILD=build-fuzz
CC_BIN="${CC_FUZZ:-$(command -v clang || command -v clang-14 || true)}"
if [ -z "$CC_BIN" ]; then echo "fuzz: clang is required (apt-get install clang)" >&2; exit 1; fi
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER="$CC_BIN" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOSY_FUZZ=ON >/dev/null
cmake --build "$BUILD" --target "${ALL_TARGETS[@]}" make_seeds -j"$(nproc)" >/dev/null

# seeds, from tests/data only (regenerated when missing)
SEEDS="$BUILD/fuzz_seeds"
DATA=tests/data
if [ ! -f "$SEEDS/.done" ] || [ ! -d "$SEEDS/onnx" ] || [ ! -d "$SEEDS/tn" ]; then
  rm -rf "$SEEDS"
  for t in "${ALL_TARGETS[@]}"; do mkdir -p "$SEEDS/${t#fuzz_}"; done
  # one seed per tokenizer-corpus line (JSON-quoted; libFuzzer mutates from there)
  { zcat "$DATA/tokenizer/corpus.jsonl.gz" || true; } | head -n 2000 | split -l 1 - "$SEEDS/text/seed_" # zcat gets SIGPIPE
  # fixture sets share file names (prompt_feat.npy...): each seed is named by its path
  find "$DATA" -name '*.npy' -size -16k -print0 | while IFS= read -r -d '' f; do
    rel="${f#"$DATA"/}"; cp "$f" "$SEEDS/npy/${rel//\//_}"
  done
  # text normalisation: the written side of WeTextProcessing's test lines
  cat "$DATA"/wetext/*/*.txt "$DATA"/wetext/*.txt 2>/dev/null | sed 's/ => .*//' | head -n 2000 | split -l 1 - "$SEEDS/tn/seed_" || true
  cp "$DATA/cv2-tiny/model/cosyvoice2.yaml" "$SEEDS/yaml/"
  cp "$DATA/cv3-tiny/model/cosyvoice3.yaml" "$SEEDS/yaml/"
  for w in "$DATA"/cv2-voice-tiny/golden/*.wav; do head -c 16384 "$w" >"$SEEDS/wav/$(basename "$w")"; done
  "$BUILD/tests/fuzz/make_seeds" "$DATA" "$SEEDS"
  cp "$SEEDS"/voice/*.voice "$SEEDS/gguf/"
  touch "$SEEDS/.done"
fi

# input size bounds (the seeds are a few KB)
declare -A MAX_LEN=([text]=4096 [pt]=16384 [gguf]=65536 [yaml]=16384 [npy]=16384 [wav]=16384 [voice]=32768 [onnx]=16384 [tn]=4096)
failed=()
for t in "${TARGETS[@]}"; do
  k="${t#fuzz_}"
  mkdir -p "$BUILD/fuzz_corpus/$k" "$BUILD/artifacts/$k" "$BUILD/logs"
  echo "fuzz: $t ${LIMIT[*]}"
  # shellcheck disable=SC2086
  if "$BUILD/tests/fuzz/$t" "${LIMIT[@]}" -max_len="${MAX_LEN[$k]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$BUILD/artifacts/$k/" ${FUZZ_FLAGS:-} "$BUILD/fuzz_corpus/$k" "$SEEDS/$k" >"$BUILD/logs/$t.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$BUILD/logs/$t.log" | tr '\n' ' '; echo
  else
    echo "fuzz: $t FAILED (log: $BUILD/logs/$t.log, inputs: $BUILD/artifacts/$k/)" >&2
    grep -E 'ERROR|SUMMARY|invariant failed|Test unit written' "$BUILD/logs/$t.log" | head -8 >&2 || true
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "fuzz: failed: ${failed[*]}" >&2; exit 1; fi
echo "fuzz: all clean (${TARGETS[*]})"
