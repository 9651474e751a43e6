// Real clients against a running `cosy serve` (started by tests/test_server_clients.sh): the openai
// SDK (whole, streamed, SSE, an error) and a WebSocket client (npm ws) speaking the stream-input
// protocol word by word. The SDK asks for what curl asked for (same text, voice and seed), so its
// answers must be curl's bytes. Usage: node clients.mjs PORT API_KEY PCM_REFERENCE_FILE
import OpenAI from 'openai';
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';

const [port, key, refPath] = process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;
let failures = 0, checks = 0;
const check = (ok, what) => { checks++; if (!ok) { failures++; console.error(`FAILED: ${what}`); } };

const client = new OpenAI({ apiKey: key, baseURL: `${base}/v1` });
const request = { model: 'tts-1', voice: 'fox', input: 'Hello from curl, streamed as it is made.', response_format: 'pcm', seed: 11, max_speech_tokens: 80 };
const reference = readFileSync(refPath);

// whole answer
const whole = Buffer.from(await (await client.audio.speech.create(request)).arrayBuffer());
check(whole.length > 0 && whole.equals(reference), `SDK whole answer equals curl's (${whole.length} vs ${reference.length} bytes)`);

// streamed: read the body as it arrives
const t0 = performance.now();
const response = await client.audio.speech.create(request);
let chunks = 0, bytes = 0, first = 0;
for await (const piece of response.body) {
  if (!first) first = performance.now() - t0;
  chunks++; bytes += piece.length;
}
check(chunks >= 1 && bytes === reference.length, `SDK streamed ${chunks} reads, ${bytes} bytes`);
console.log(`openai SDK: whole ${whole.length} bytes; streamed ${chunks} reads, first audio after ${first.toFixed(0)} ms`);

// SSE
const sse = await client.audio.speech.create({ ...request, stream_format: 'sse' });
const text = await sse.text();
const deltas = [...text.matchAll(/"type":"speech\.audio\.delta","audio":"([^"]*)"/g)].map(m => Buffer.from(m[1], 'base64'));
check(deltas.length >= 1 && Buffer.concat(deltas).equals(reference), `SSE: ${deltas.length} deltas decode to the pcm answer`);
check(/"type":"speech\.audio\.done".*"usage":\{"input_tokens":\d+,"output_tokens":\d+/.test(text), 'SSE ends with speech.audio.done and usage');

// an error: the SDK raises with the status and the server's message
try {
  await client.audio.speech.create({ ...request, voice: 'alloy' });
  check(false, 'an unknown voice is refused');
} catch (e) {
  check(e instanceof OpenAI.APIError && e.status === 400 && /unknown voice 'alloy'/.test(e.message), `SDK error: ${e.status} ${e.message}`);
}
try {
  await new OpenAI({ apiKey: 'wrong', baseURL: `${base}/v1`, maxRetries: 0 }).audio.speech.create(request);
  check(false, 'a wrong key is refused');
} catch (e) {
  check(e.status === 401, `wrong key: ${e.status}`);
}

// WebSocket stream-input: text word by word, audio back before the text ends
async function streamInput(query, binary) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/text-to-speech/fox/stream-input${query}`, { headers: { 'xi-api-key': key } });
    const words = 'This text arrives one word at a time, the way a language model writes it, and the audio starts before it ends.'.split(' ');
    const out = { audio: [], final: null, code: 0, firstAudioAt: 0, lastTextAt: 0, error: null };
    const start = performance.now();
    ws.on('open', async () => {
      ws.send(JSON.stringify({ text: ' ', seed: 3, max_speech_tokens: 300 }));
      for (const w of words) { ws.send(JSON.stringify({ text: w + ' ' })); await new Promise(r => setTimeout(r, 120)); }
      out.lastTextAt = performance.now() - start;
      ws.send(JSON.stringify({ text: '' }));
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) { if (!out.firstAudioAt) out.firstAudioAt = performance.now() - start; out.audio.push(Buffer.from(data)); return; }
      const m = JSON.parse(data.toString());
      if (m.audio) { if (!out.firstAudioAt) out.firstAudioAt = performance.now() - start; out.audio.push(Buffer.from(m.audio, 'base64')); }
      if (m.isFinal) out.final = m;
      if (m.error) out.error = m;
    });
    ws.on('close', (code) => { out.code = code; resolve(out); });
    ws.on('error', (e) => { out.error = e.message; });
  });
}
for (const [query, binary] of [['', false], ['?binary=true', true]]) {
  const r = await streamInput(query, binary);
  const n = r.audio.reduce((a, b) => a + b.length, 0);
  check(r.code === 1000 && r.final && r.final.isFinal === true && !r.error, `ws${query}: clean close ${r.code}, final message, no error (${JSON.stringify(r.error)})`);
  check(n > 0 && n % 2 === 0, `ws${query}: ${n} bytes of pcm`);
  check(r.firstAudioAt > 0 && r.firstAudioAt < r.lastTextAt, `ws${query}: first audio at ${r.firstAudioAt.toFixed(0)} ms, before the text ended at ${r.lastTextAt.toFixed(0)} ms`);
  check(r.final && r.final.timings && r.final.timings.flow_ms >= 0 && r.final.usage.output_tokens > 0, `ws${query}: timings and usage in the final message`);
  console.log(`ws${query}: ${r.audio.length} audio messages, ${n} bytes, first audio ${r.firstAudioAt.toFixed(0)} ms, text ended ${r.lastTextAt.toFixed(0)} ms`);
}
// a refusal over the socket: a message naming it and close code 1008
{
  const r = await new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/text-to-speech/nobody/stream-input`, { headers: { 'xi-api-key': key } });
    const out = { messages: [], code: 0 };
    ws.on('message', d => out.messages.push(d.toString()));
    ws.on('close', code => { out.code = code; resolve(out); });
    ws.on('error', () => {});
  });
  check(r.code === 1008 && r.messages.some(m => /unknown voice 'nobody'/.test(m)), `ws unknown voice: close ${r.code} ${r.messages}`);
}
// a WebSocket client that vanishes after its first audio: the server cancels its session
{
  await new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/text-to-speech/fox/stream-input`, { headers: { 'xi-api-key': key } });
    ws.on('open', () => {
      ws.send(JSON.stringify({ text: ' ', max_speech_tokens: 1000 }));
      ws.send(JSON.stringify({ text: 'A long answer that the client will not wait for, so the server must notice and stop. ' }));
      ws.send(JSON.stringify({ text: '' }));
    });
    ws.on('message', () => { ws.terminate(); resolve(); });
    ws.on('error', () => resolve());
    ws.on('close', () => resolve());
  });
  let idle = false;
  for (let i = 0; i < 600 && !idle; i++) {
    const r = await (await fetch(`${base}/readyz`)).json();
    idle = r.active_sessions === 0;
    if (!idle) await new Promise(r => setTimeout(r, 50));
  }
  check(idle, 'a vanished WebSocket client frees its session');
}
console.log(`clients.mjs: ${checks - failures} of ${checks} checks passed`);
process.exit(failures ? 1 : 0);
