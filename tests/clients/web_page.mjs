// The web page (web/index.html) in headless Chromium, against a running `cosy serve`:
//   node web_page.mjs --url http://127.0.0.1:PORT/ [--chromium /usr/bin/chromium] [--api-key KEY]
//                     [--screenshot out.png]
// Run by tests/test_web_page.sh. Exits non-zero with a message on the first failed check.
import { chromium } from "playwright-core";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    "api-key": { type: "string", default: "" },
    screenshot: { type: "string", default: "" },
    voice: { type: "string", default: "fox" },
  },
});
if (!args.url) throw new Error("--url is required");

let failures = 0;
function check(cond, what, detail) {
  console.log(`${cond ? "ok  " : "FAIL"} ${what}${detail !== undefined ? ": " + detail : ""}`);
  if (!cond) failures++;
  return cond;
}
const num = (s) => Number.parseFloat(String(s).replace(/,/g, ""));

const browser = await chromium.launch({
  executablePath: args.chromium,
  args: ["--autoplay-policy=no-user-gesture-required", "--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") console.log(`  [page console] ${m.text()} (${m.location().url || "?"})`);
  });
  page.setDefaultTimeout(30000);

  const resp = await page.goto(args.url);
  check(resp && resp.status() === 200, "GET / is 200", resp && resp.status());
  for (const id of ["text", "voice", "mode", "stream", "strategy", "speak", "ttfa", "chunks", "total", "rtf", "underruns",
                    "status", "ws-text", "ws-simulate", "ws-ttfa", "ws-chunks", "ws-status"])
    check(await page.locator("#" + id).count() === 1, `#${id} is on the page`);

  if (args["api-key"]) {
    // without the key the voice list is refused; with it (sent as Authorization: Bearer) it loads
    await page.waitForFunction(() => /cannot list/.test(document.getElementById("voices-msg").textContent));
    check(true, "without the API key the voice list is refused",
          await page.textContent("#voices-msg"));
    await page.fill("#api-key", args["api-key"]);
    await page.dispatchEvent("#api-key", "change");
  }
  await page.waitForSelector(`#voice option[value="${args.voice}"]`, { state: "attached" });
  await page.selectOption("#voice", args.voice);
  await page.fill("#text", "Hello from the web page test. The quick brown fox jumps over the lazy dog, twice.");

  // ---- Speak: POST /v1/audio/speech, played while it streams
  const t0 = Date.now();
  await page.click("#speak");
  await page.waitForFunction(() => /^(done|error|stopped)/.test(document.getElementById("status").textContent),
                             null, { timeout: 120000 });
  const speak = {
    status: await page.textContent("#status"),
    ttfa: await page.textContent("#ttfa"),
    chunks: await page.textContent("#chunks"),
    total: await page.textContent("#total"),
    rtf: await page.textContent("#rtf"),
    underruns: await page.textContent("#underruns"),
    rows: await page.locator("#chunk-table tr").count(),
    stats: await page.evaluate(() => window.cosyStats.speak),
    audio: await page.evaluate(() => window.cosyStats.audio()),
  };
  check(speak.audio && speak.audio.state === "running" && speak.audio.sampleRate === 24000,
        "Web Audio plays at 24 kHz", JSON.stringify(speak.audio));
  console.log(`speak: ${Date.now() - t0} ms in the test; page shows ttfa=${speak.ttfa} chunks=${speak.chunks} total=${speak.total} ` +
              `rtf=${speak.rtf} underruns=${speak.underruns}; ${speak.stats.samples} samples`);
  check(speak.status === "done", "#status is done", speak.status);
  check(num(speak.chunks) >= 1, "chunk count >= 1", speak.chunks);
  check(num(speak.chunks) === speak.stats.chunks, "#chunks matches cosyStats.speak.chunks");
  check(speak.rows === Math.min(speak.stats.chunks, 500), "one table row per chunk", speak.rows);
  check(num(speak.ttfa) > 0, "time to first audio shown and > 0", speak.ttfa);
  check(num(speak.total) >= num(speak.ttfa), "total >= time to first audio", speak.total);
  check(Number.isFinite(num(speak.rtf)) && num(speak.rtf) > 0, "RTF shown", speak.rtf);
  check(Number.isInteger(num(speak.underruns)) && num(speak.underruns) >= 0, "underruns shown", speak.underruns);
  check(speak.stats.samples >= 24000, "the player received >= 1 s of audio", `${speak.stats.samples} samples`);
  check(speak.stats.bytes === 2 * speak.stats.samples, "every byte became a sample (s16le)", `${speak.stats.bytes} bytes`);

  // ---- the WebSocket demo: the text box streamed word by word, audio back as it comes
  const w0 = Date.now();
  await page.click("#ws-simulate");
  await page.waitForFunction(() => /^(done|error|stopped)/.test(document.getElementById("ws-status").textContent),
                             null, { timeout: 120000 });
  const ws = {
    status: await page.textContent("#ws-status"),
    ttfa: await page.textContent("#ws-ttfa"),
    chunks: await page.textContent("#ws-chunks"),
    rtf: await page.textContent("#ws-rtf"),
    underruns: await page.textContent("#ws-underruns"),
    typed: await page.inputValue("#ws-text"),
    serverTotal: await page.textContent("#ws-t-total_ms"),
    stats: await page.evaluate(() => window.cosyStats.ws),
  };
  console.log(`ws: ${Date.now() - w0} ms in the test; page shows ttfa=${ws.ttfa} chunks=${ws.chunks} rtf=${ws.rtf} ` +
              `underruns=${ws.underruns}; ${ws.stats.samples} samples; server timings ${JSON.stringify(ws.stats.timings)}`);
  check(ws.status === "done", "#ws-status is done", ws.status);
  check(ws.typed.trim() === (await page.inputValue("#text")).trim().split(/\s+/).join(" "),
        "simulated typing put the whole text into #ws-text");
  check(num(ws.chunks) >= 1, "ws chunk count >= 1", ws.chunks);
  check(num(ws.ttfa) > 0, "ws time to first audio shown and > 0", ws.ttfa);
  check(Number.isFinite(num(ws.rtf)) && num(ws.rtf) > 0, "ws RTF shown", ws.rtf);
  check(Number.isInteger(num(ws.underruns)) && num(ws.underruns) >= 0, "ws underruns shown", ws.underruns);
  check(ws.stats.samples >= 24000, "the player received >= 1 s of audio over the WebSocket", `${ws.stats.samples} samples`);
  const t = ws.stats.timings || {};
  check(t.total_ms > 0 && t.first_audio_ms > 0 && t.audio_seconds > 0, "the server's final timings arrived");
  check(Math.abs(t.audio_seconds * 24000 - ws.stats.samples) <= 1, "the server's audio_seconds matches what was played",
        `${t.audio_seconds} s`);
  check(num(ws.serverTotal) > 0, "the per-stage timings are shown", ws.serverTotal);

  if (args.screenshot) {
    await page.screenshot({ path: args.screenshot, fullPage: true });
    console.log("screenshot: " + args.screenshot);
  }

  // ---- typing by hand: each finished word goes out as it is typed, Finish sends the rest and ""
  await page.click("#ws-reset");
  await page.evaluate(() => {
    window.sentMessages = [];
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (m) { window.sentMessages.push(JSON.parse(m)); return send.call(this, m); };
  });
  await page.type("#ws-text", "Typed by hand", { delay: 30 });
  const beforeFinish = await page.evaluate(() => window.sentMessages.map((m) => m.text));
  await page.click("#ws-finish");
  await page.waitForFunction(() => /^(done|error|stopped)/.test(document.getElementById("ws-status").textContent),
                             null, { timeout: 120000 });
  const sent = await page.evaluate(() => window.sentMessages);
  console.log("typed: sent " + JSON.stringify(sent.map((m) => m.text)));
  check(await page.textContent("#ws-status") === "done", "typing: #ws-status is done", await page.textContent("#ws-status"));
  check(JSON.stringify(beforeFinish) === JSON.stringify([" ", "Typed ", "by "]), "typing: words leave as they are finished",
        JSON.stringify(beforeFinish));
  check(JSON.stringify(sent.map((m) => m.text)) === JSON.stringify([" ", "Typed ", "by ", "hand ", ""]),
        "typing: Finish sends the rest, then the end of input");
  check(!args["api-key"] || sent[0].xi_api_key === args["api-key"], "the first message carries xi_api_key");
  check(await page.evaluate(() => window.cosyStats.ws.samples) >= 24000, "typing: >= 1 s of audio played");

  // ---- an error from the server is shown: a text over --max-input-chars (4096) is refused with 400
  await page.fill("#text", "word ".repeat(1000));
  await page.click("#speak");
  await page.waitForFunction(() => /^(done|error|stopped)/.test(document.getElementById("status").textContent),
                             null, { timeout: 60000 });
  const err = await page.textContent("#status");
  check(/^error: .*limit/.test(err), "a refused request shows the server's message", err);
  // ---- the player itself: samples split across reads, and an underrun when audio arrives late
  const split = await page.evaluate(() => {
    const st = newStats(), p = new Playback(st, null), got = [];
    p.schedule = (f) => got.push(...f);
    p.push(new Uint8Array([0x01]));                    // half a sample
    p.push(new Uint8Array([0x80, 0xff, 0x7f, 0x00]));  // its other half, a whole one, half of the next
    p.push(new Uint8Array([0x40]));
    return { got, samples: st.samples, odd: p.odd };
  });
  check(JSON.stringify(split.got) === JSON.stringify([-32767 / 32768, 32767 / 32768, 0x4000 / 32768]) &&
        split.samples === 3 && split.odd === -1, "s16le decoded with the odd byte carried across reads", JSON.stringify(split));
  const underruns = await page.evaluate(async () => {
    const st = newStats(), p = new Playback(st, null);
    p.push(new Uint8Array(2400 * 2));                  // 0.1 s
    p.push(new Uint8Array(2400 * 2));                  // queued behind it: no underrun
    await new Promise((r) => setTimeout(r, 500));      // both have played when the next arrives
    p.push(new Uint8Array(2400 * 2));
    p.stop();
    return st.underruns;
  });
  check(underruns === 1, "a chunk arriving after the audio ran out counts as one underrun", underruns);
  check(pageErrors.length === 0, "no uncaught errors in the page", pageErrors.join(" | "));
} finally {
  await browser.close();
}
if (failures) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log("web page: all checks passed");
