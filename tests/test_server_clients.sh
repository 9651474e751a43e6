#!/usr/bin/env bash
# Real clients against `cosy serve` on the fixture model: curl (streamed, time to first byte), every
# response_format decoded back by ffmpeg and by the format's own Debian tool with its sample count
# checked against the pcm answer, the openai SDK and a WebSocket client (tests/clients/clients.mjs),
# and /metrics through promtool. Usage: test_server_clients.sh COSY_BIN TESTS_DIR TMP_DIR
set -uo pipefail
COSY=$1 TESTS=$2 TMP=$3/server-clients
for tool in node npm curl ffmpeg sox flac opusdec mpg123 promtool; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed (scripts/deps.sh installs it)"; exit 77; }
done
if [ ! -d "$TESTS/clients/node_modules/openai" ]; then
  npm ci --prefix "$TESTS/clients" --no-audit --no-fund >/dev/null || { echo "FAILED: npm ci in tests/clients"; exit 1; }
fi
rm -rf "$TMP" && mkdir -p "$TMP/voices"
fail=0
check() { if eval "$1"; then :; else echo "FAILED: $2"; fail=1; fi; }
"$COSY" convert "$TESTS/data/cv2-voice-tiny/model" -o "$TMP/m.gguf" >/dev/null || exit 1
"$COSY" voice import -m "$TMP/m.gguf" --wav "$TESTS/data/cv2-voice-tiny/golden/en_16k_prompt.wav" \
  --text "The quick brown fox jumps over the lazy dog near the riverbank." -o "$TMP/voices/fox.voice" >/dev/null || exit 1
KEY=test-key-123
COSY_API_KEY=$KEY "$COSY" serve -m "$TMP/m.gguf" --voices "$TMP/voices" --port 0 2>"$TMP/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
port=""
for _ in $(seq 100); do
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$TMP/serve.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "FAILED: the server did not start"; cat "$TMP/serve.log"; exit 1; }
URL=http://127.0.0.1:$port

speech() { # format extra-json -> file
  curl -sSN -o "$TMP/a.$1" -w '%{http_code} %{time_starttransfer} %{time_total}' "$URL/v1/audio/speech" \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d "{\"model\":\"tts-1\",\"input\":\"Hello from curl, streamed as it is made.\",\"voice\":\"fox\",\"response_format\":\"$1\",\"seed\":11,\"max_speech_tokens\":80$2}"
}
read -r code ttfb total <<<"$(speech pcm '')"
check '[ "$code" = 200 ]' "curl pcm: HTTP $code"
check 'awk "BEGIN{exit !($ttfb > 0 && $ttfb <= $total)}"' "curl: first byte $ttfb s within total $total s"
n=$(( $(stat -c %s "$TMP/a.pcm") / 2 ))
check '[ $n -gt 0 ]' "pcm samples $n"
echo "curl pcm: $n samples, first byte ${ttfb}s, total ${total}s"
decoded() { ffmpeg -v error -i "$1" -f s16le -ac 1 -ar 24000 - | wc -c | awk '{print $1/2}'; }
mp3_n=$(( ( (n + 575) / 576 + 2 ) * 576 ))  # lame's priming and padding, see src/io/encode.h
for f in wav flac opus mp3; do
  read -r code _ _ <<<"$(speech $f '')"
  check '[ "$code" = 200 ]' "curl $f: HTTP $code"
  want=$n; [ $f = mp3 ] && want=$mp3_n
  got=$(decoded "$TMP/a.$f")
  check '[ "$got" = "$want" ]' "$f decoded by ffmpeg: $got samples, want $want"
done
check 'cmp -s <(tail -c +45 "$TMP/a.wav") "$TMP/a.pcm"' "wav body equals the pcm answer"
check '[ "$(sox "$TMP/a.wav" -t s16 - 2>/dev/null | wc -c)" = $((n * 2)) ]' "sox reads the streamed wav"
check 'flac -s -d -f --force-raw-format --endian=little --sign=signed -o "$TMP/f.raw" "$TMP/a.flac" 2>/dev/null; cmp -s "$TMP/f.raw" "$TMP/a.pcm"' "flac -d gives the pcm answer"
check 'opusdec --quiet --rate 24000 "$TMP/a.opus" "$TMP/o.wav" && [ "$(sox "$TMP/o.wav" -t s16 - | wc -c)" = $((n * 2)) ]' "opusdec: the pcm length"
check '[ "$(mpg123 -q -s "$TMP/a.mp3" 2>/dev/null | wc -c)" = $((mp3_n * 2)) ]' "mpg123: lame's length"

node "$TESTS/clients/clients.mjs" "$port" "$KEY" "$TMP/a.pcm" || fail=1

curl -s -H "Authorization: Bearer $KEY" "$URL/metrics" >"$TMP/metrics.txt"
check 'promtool check metrics <"$TMP/metrics.txt"' "promtool accepts /metrics"
check 'grep -q "cosy_requests_total{route=\"stream_input\",status=\"101\"}" "$TMP/metrics.txt"' "metrics count the WebSocket sessions"
check '! grep -q "$KEY" "$TMP/serve.log" "$TMP/metrics.txt"' "the API key appears in no log and no metric"
# SIGTERM stops it cleanly: every session ended, everything freed (under ASan a leak fails the exit code)
kill -TERM $server
wait $server
rc=$?
trap - EXIT
check '[ $rc = 0 ]' "cosy serve exits 0 on SIGTERM (got $rc)"
exit $fail
