#!/usr/bin/env bash
# The web page served at / (web/index.html), driven in headless Chromium (tests/clients/web_page.mjs):
# Speak over POST /v1/audio/speech and "simulate typing" over the WebSocket, both played with Web
# Audio while they stream. Usage: test_web_page.sh COSY_BIN TMP_DIR
# Exits 77 (SKIP) only when node or chromium is not installed.
set -euo pipefail
cosy="${1:?usage: test_web_page.sh COSY_BIN TMP_DIR}"
tmproot="${2:?usage: test_web_page.sh COSY_BIN TMP_DIR}"
root="$(cd "$(dirname "$0")/.." && pwd)"
chromium="${COSY_CHROMIUM:-/usr/bin/chromium}"
fixture="$root/tests/data/cv2-voice-tiny"

command -v node >/dev/null || { echo "SKIP: node is not installed (scripts/deps.sh installs it)"; exit 77; }
[ -x "$chromium" ] || { echo "SKIP: $chromium is not installed (scripts/deps.sh installs chromium)"; exit 77; }
if [ ! -d "$root/tests/clients/node_modules/playwright-core" ]; then
  command -v npm >/dev/null || { echo "SKIP: npm is not installed"; exit 77; }
  npm ci --prefix "$root/tests/clients" --no-audit --no-fund
fi

mkdir -p "$tmproot"
work="$(mktemp -d "$tmproot/web_page.XXXXXX")"
server_pid=""
node_pid=""
cleanup() {
  if [ -n "$node_pid" ]; then   # playwright closes its Chromium when node gets SIGTERM
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$cosy" convert "$fixture/model" -o "$work/m.gguf" >/dev/null
mkdir -p "$work/voices"
"$cosy" voice import -m "$work/m.gguf" --wav "$fixture/golden/en_16k_prompt.wav" \
  --text "The quick brown fox jumps over the lazy dog near the riverbank." -o "$work/voices/fox.voice" >/dev/null

# with an API key, so that the page's key field (Bearer and xi_api_key) is exercised too
key="web-page-test-key"
: >"$work/serve.log"
# under timeout: should this script be killed outright (SIGKILL), the server still goes away
COSY_API_KEY="$key" timeout 900 "$cosy" serve -m "$work/m.gguf" --voices "$work/voices" --port 0 --quiet 2>"$work/serve.log" &
server_pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$work/serve.log" | head -n1 || true)"
  [ -n "$port" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "FAIL: cosy serve exited:"; cat "$work/serve.log"; exit 1
  fi
  sleep 0.1
done
[ -n "$port" ] || { echo "FAIL: cosy serve did not say where it listens:"; cat "$work/serve.log"; exit 1; }
echo "cosy serve on port $port"

# in the background and waited for, so that a signal to this script is handled at once (bash runs
# traps only between foreground commands)
status=0
node "$root/tests/clients/web_page.mjs" --url "http://127.0.0.1:$port/" --chromium "$chromium" --api-key "$key" \
  --screenshot "$tmproot/web_page.png" &
node_pid=$!
wait "$node_pid" || status=$?
node_pid=""
if [ "$status" -ne 0 ]; then
  echo "--- cosy serve's log"; cat "$work/serve.log"
fi
exit "$status"
