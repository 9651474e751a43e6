// Generates the expected token ids of the tokenizer exactness corpus with Hugging Face's tokenizers.
//
//   cd tests/tokenizer && npm ci && node make_qwen_files.mjs && node gen_expected.mjs
//
// Reference: npm @huggingface/tokenizers (tokenizers.js). Every id list is cross-checked against npm
// `tokenizers` — the Rust library transformers uses, as a native Node addon — and the script fails if the
// two disagree on any line, so the expected ids are what CosyVoice2's Python frontend computes.
//
// Three tokenizers, each with CosyVoice2's special tokens added as CosyVoice2Tokenizer does
// (add_special_tokens: special, not normalised, no lstrip/rstrip; a token that exists keeps its id, a new
// one gets the next free id):
//   qwen2   - the Qwen2 vocabulary with all 151,387 merges (tests/data/tokenizer/qwen2)
//   blanken - the same vocabulary with the merges truncated to the first 134,839, as CosyVoice-BlankEN ships
//   tiny    - the fixture model's small Qwen-style tokenizer (tests/data/cv2-tiny/model/CosyVoice-BlankEN)
// Output: tests/data/tokenizer/expected_<name>.txt.gz, one line of space-separated ids per corpus line.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";
import { Tokenizer } from "@huggingface/tokenizers";

const require = createRequire(import.meta.url);
const rust = require("tokenizers");
const here = path.dirname(new URL(import.meta.url).pathname);
export const data = path.resolve(here, "../data");

export const CV2_SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endofprompt|>", "[breath]", "<strong>", "</strong>",
  "[noise]", "[laughter]", "[cough]", "[clucking]", "[accent]", "[quick_breath]", "<laughter>", "</laughter>",
  "[hissing]", "[sigh]", "[vocalized-noise]", "[lipsmack]", "[mn]"];

const QWEN2_PRETOKENIZER_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The tokenizer.json transformers' Qwen2Converter builds from vocab.json + merges.txt + tokenizer_config.json.
function qwen2TokenizerJson(vocab, merges, configAdded) {
  const added = [];
  const byContent = new Map();
  for (const [id, a] of Object.entries(configAdded)) {
    added.push({ id: Number(id), content: a.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: a.special !== false });
    byContent.set(a.content, Number(id));
  }
  let next = Object.keys(vocab).length + added.filter((a) => !(a.content in vocab)).length;
  for (const s of CV2_SPECIALS) {
    if (byContent.has(s) || s in vocab) continue;
    added.push({ id: next, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    byContent.set(s, next++);
  }
  added.sort((a, b) => a.id - b.id);
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: "1.0", truncation: null, padding: null, added_tokens: added,
    normalizer: { type: "NFC" },
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: QWEN2_PRETOKENIZER_REGEX }, behavior: "Isolated", invert: false }, byteLevel] },
    post_processor: byteLevel, decoder: byteLevel,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "",
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

export function readDir(dir, maxMerges) {
  const read = (f) => {
    const p = path.join(dir, f);
    return fs.existsSync(p) ? fs.readFileSync(p) : zlib.gunzipSync(fs.readFileSync(p + ".gz"));
  };
  const vocab = JSON.parse(read("vocab.json").toString("utf8"));
  let merges = read("merges.txt").toString("utf8").split("\n").filter((l, i) => l && !(i === 0 && l.startsWith("#version")));
  if (maxMerges !== undefined) merges = merges.slice(0, maxMerges);
  const config = JSON.parse(read("tokenizer_config.json").toString("utf8"));
  return qwen2TokenizerJson(vocab, merges.map((m) => m.split(" ")), config.added_tokens_decoder || {});
}

async function main() {
  const corpus = zlib.gunzipSync(fs.readFileSync(path.join(data, "tokenizer/corpus.jsonl.gz"))).toString("utf8")
    .split("\n").filter((l) => l).map((l) => JSON.parse(l));
  const sets = {
    qwen2: readDir(path.join(data, "tokenizer/qwen2")),
    blanken: readDir(path.join(data, "tokenizer/qwen2"), 134839),
    tiny: readDir(path.join(data, "cv2-tiny/model/CosyVoice-BlankEN")),
  };
  let failed = false;
  for (const [name, tj] of Object.entries(sets)) {
    const js = new Tokenizer(tj, { tokenizer_class: "Qwen2Tokenizer" });
    const rs = rust.Tokenizer.fromString(JSON.stringify(tj));
    const out = [];
    let differ = 0;
    for (let i = 0; i < corpus.length; i++) {
      const a = js.encode(corpus[i], { add_special_tokens: false }).ids;
      const b = (await rs.encode(corpus[i], null, { addSpecialTokens: false })).getIds();
      if (a.length !== b.length || a.some((v, k) => v !== b[k])) {
        if (differ++ < 10) console.error(`${name} line ${i + 1} ${JSON.stringify(corpus[i])}: js ${a} rust ${b}`);
      }
      out.push(a.join(" "));
    }
    const file = path.join(data, `tokenizer/expected_${name}.txt.gz`);
    fs.writeFileSync(file, zlib.gzipSync(out.join("\n") + "\n", { level: 9 }));
    const nIds = out.reduce((s, l) => s + (l ? l.split(" ").length : 0), 0);
    console.log(`${name}: ${corpus.length} lines, ${nIds} ids, ${tj.model.merges.length} merges, ` +
      `${tj.added_tokens.length} added tokens; js vs rust: ${differ} differing lines -> ${path.relative(process.cwd(), file)}`);
    if (differ) failed = true;
  }
  if (failed) process.exit(1);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
