#!/usr/bin/env python3
"""Builds tests/data/tokenizer/corpus.jsonl.gz: the tokenizer exactness corpus, one JSON string per line.

Text comes from what a Debian machine ships (gettext catalogues: English msgids and their Chinese,
Japanese, Korean, Russian, Arabic, Hindi, ... translations, with their format strings and embedded
newlines; /usr/share/doc files), plus generated lines that stress the pre-tokenizer: mixed zh/en,
digit runs, punctuation runs, emoji sequences, every kind of white space and line break, English
contractions in all cases, decomposed (NFD) text, CosyVoice2's special tokens inside text and
partial/overlapping look-alikes, and random code points from many blocks.

Random code points are drawn only from characters assigned in Python's unicodedata (Unicode 14),
from private use, and from never-assigned planes 4-13, so that the corpus does not depend on how
the Unicode versions of the implementations compared (Node's ICU, Oniguruma, utf8proc) classify
characters added later. U+017F after an apostrophe is left out: Oniguruma case-folds it in (?i:'s),
the JavaScript port does not (test_tokenizer.c checks it against the Rust behaviour).

The output is deterministic for a given machine image (fixed seed, sorted file lists); run it with
/usr/bin/python3 from the repository root, then `node tests/tokenizer/gen_expected.mjs`.
"""
import gettext
import glob
import gzip
import json
import os
import random
import sys
import unicodedata

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "tokenizer", "corpus.jsonl.gz")
rng = random.Random(20251125)
lines = []


def add(s):
    if not s or "\u017f" in s:
        return
    # no lone surrogates (not representable in UTF-8)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        return
    lines.append(s)


def catalogue(lang, limit):
    out = []
    for f in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        try:
            t = gettext.GNUTranslations(open(f, "rb"))
        except Exception:
            continue
        for k, v in sorted(t._catalog.items(), key=lambda kv: str(kv[0])):
            if isinstance(k, tuple):
                k = k[0]
            if isinstance(k, str) and isinstance(v, str) and k and v:
                out.append((k, v))
    rng.shuffle(out)
    return out[:limit]


# 1. gettext catalogues: zh translations with their English originals, and other scripts
zh = catalogue("zh_CN", 2600) + catalogue("zh_TW", 900)
for en, tr in zh:
    add(tr)
for en, tr in zh[:1800]:
    add(en)
for lang, n in [("ja", 500), ("ko", 300), ("ru", 250), ("uk", 100), ("ar", 150), ("he", 100), ("hi", 100),
                ("th", 150), ("el", 100), ("vi", 150), ("de", 150), ("fr", 150), ("es", 100), ("ta", 80),
                ("ka", 60), ("bn", 60), ("tr", 80), ("pl", 80)]:
    for en, tr in catalogue(lang, n):
        add(tr)

# 2. English prose from /usr/share/doc
docs = []
for f in sorted(glob.glob("/usr/share/doc/*/README*") + glob.glob("/usr/share/doc/*/copyright"))[:400]:
    if f.endswith(".gz") or not os.path.isfile(f):
        continue
    try:
        text = open(f, encoding="utf-8").read()
    except Exception:
        continue
    for ln in text.split("\n"):
        if len(ln.strip()) > 20:
            docs.append(ln)
rng.shuffle(docs)
for ln in docs[:1500]:
    add(ln)
# a few paragraphs with their newlines, and very long lines
for i in range(20):
    k = rng.randrange(0, max(1, len(docs) - 30))
    add("\n".join(docs[k:k + rng.randrange(2, 30)]))
zh_text = [tr for _, tr in zh]
for i in range(10):
    add("".join(rng.sample(zh_text, 40)))

# 3. generated lines
assigned = [c for c in range(0x20, 0x30000) if unicodedata.category(chr(c)) not in ("Cn", "Cs") and c != 0x17F]
blocks = {
    "latin": [c for c in range(0x20, 0x250) if unicodedata.category(chr(c)) != "Cn" and c != 0x17F],
    "cjk": list(range(0x4E00, 0x9FA6)),
    "cjk_punct": list(range(0x3000, 0x3040)) + list(range(0xFF00, 0xFF66)),
    "kana": list(range(0x3041, 0x3097)) + list(range(0x30A0, 0x3100)),
    "hangul": list(range(0xAC00, 0xD7A4)) + list(range(0x1100, 0x1200)),
    "combining": list(range(0x300, 0x370)) + [0x3099, 0x309A],
    "digits": [c for c in assigned if unicodedata.category(chr(c)) in ("Nd", "Nl", "No")],
    "punct": [c for c in assigned if unicodedata.category(chr(c))[0] in "PS"],
    "space": [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2005, 0x200A,
              0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0x180E, 0x200B, 0xFEFF, 0x1C, 0x1D, 0x1E, 0x1F],
    "emoji": list(range(0x1F300, 0x1F650)) + list(range(0x1F680, 0x1F6D0)) + list(range(0x1F900, 0x1FA00)) +
             list(range(0x2600, 0x2700)),
    "any": assigned,
    "private": list(range(0xE000, 0xE100)),
    "unassigned": [0x40000 + rng.randrange(0, 0xA0000) for _ in range(300)],
}
words_en = [w for ln in docs[:3000] for w in ln.split() if w.isascii()] or ["hello", "world"]
specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|endofprompt|>", "[breath]", "<strong>", "</strong>",
            "[noise]", "[laughter]", "[cough]", "[clucking]", "[accent]", "[quick_breath]", "<laughter>",
            "</laughter>", "[hissing]", "[sigh]", "[vocalized-noise]", "[lipsmack]", "[mn]"]
near = ["<|endofprompt", "<|endofprompt|", "<<|endofprompt|>>", "[breath", "breath]", "[[breath]]", "<strong",
        "</strong", "<|im_start|><|im_end|>", "[laughter]]", "<laughter>>", "[vocalized-noise", "[mn]]", "<|>",
        "<| endofprompt |>", "[BREATH]", "<STRONG>", "<|endoftext|>\n", "[noise][noise]"]
contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Re", "'rE", "'VE", "'M", "'LL",
                "'Ll", "'D", "'x", "'", "''", "'''s"]
ws_runs = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\n ", " \n ", "\r", "\r\r\n", "\t\n\t", "\u3000",
           "\u00a0", " \u00a0 ", "\u2028", "\u0085", "  \n\n  ", "\f", "\v", " \t \n", "\n\t "]


def pick(block, n):
    return "".join(chr(rng.choice(blocks[block])) for _ in range(n))


def zh_piece():
    s = rng.choice(zh_text)
    a = rng.randrange(0, max(1, len(s)))
    return s[a:a + rng.randrange(1, 30)]


def gen_line():
    kind = rng.randrange(14)
    parts = []
    for _ in range(rng.randrange(1, 12)):
        r = rng.randrange(18)
        if r == 0: parts.append(zh_piece())
        elif r == 1: parts.append(rng.choice(words_en))
        elif r == 2: parts.append(str(rng.randrange(0, 10 ** rng.randrange(1, 20))))
        elif r == 3: parts.append(rng.choice(ws_runs))
        elif r == 4: parts.append(pick("punct", rng.randrange(1, 6)))
        elif r == 5: parts.append(rng.choice(contractions))
        elif r == 6: parts.append(pick("emoji", rng.randrange(1, 4)))
        elif r == 7: parts.append(rng.choice(specials) if kind != 3 else rng.choice(near))
        elif r == 8: parts.append(rng.choice(near))
        elif r == 9: parts.append(pick("latin", rng.randrange(1, 8)))
        elif r == 10: parts.append(pick(rng.choice(list(blocks)), rng.randrange(1, 6)))
        elif r == 11: parts.append(pick("space", rng.randrange(1, 4)))
        elif r == 12: parts.append(pick("digits", rng.randrange(1, 4)))
        elif r == 13: parts.append(unicodedata.normalize("NFD", rng.choice(["café", "naïve", "Ångström", "résumé",
                                                                            "über", "Việt Nam", "pokémon", "가나다"])))
        elif r == 14: parts.append(pick("combining", rng.randrange(1, 3)))
        elif r == 15: parts.append(rng.choice(["...", "!!!", "???", "——", "……", "，，", "。。。", "--", "->", "=>",
                                               "~~~", "***", "###", "//", "\\\\", "::", ";;", "%%", "$$$", "@@"]))
        elif r == 16: parts.append(rng.choice(["👨‍👩‍👧‍👦", "👍🏽", "🇨🇳", "🇺🇸", "❤️", "🏳️‍🌈", "✌🏿", "👩🏻‍💻", "1️⃣", "#️⃣"]))
        else: parts.append(pick("hangul" if rng.random() < 0.3 else "kana", rng.randrange(1, 5)))
    sep = rng.choice(["", "", " ", "\t", "\n"])
    return sep.join(parts)


for _ in range(5200):
    add(gen_line())

# fixed cases that pin down the regex alternatives
fixed = [
    "Hello world", " Hello", "  Hello", "Hello  world", "Hello \n world", "Hello\n\nworld", "a\r\nb", "a \r\n b",
    "I'm here", "I'M HERE", "they're", "THEY'RE", "we've", "you'll", "YOU'LL", "he'd", "it's", "IT'S", "don't",
    "DON'T", "'s", "'", "x'", "'sa", "'Sa", "'re'", "123", "1234567890", " 1", "a1b2", "１２３", "٣٤٥", "½", "²", "Ⅻ",
    "   ", "\n", "\r", "\r\n", "\n\r", " \n", "\n ", "\t\t", "a\tb", "a \tb", "x  ", "x \n", "!!!", " !!!", "!!!\n",
    "!!!\n\n", " !\r\n", "?!", "a.b", "a. b", "你好", " 你好", "你好世界！", "你好, world", "中文English混合123",
    "<|endofprompt|>", "<|endofprompt|><|endofprompt|>", "a<|endofprompt|>b", " <|endofprompt|> ", "[breath]",
    "[breath][breath]", "a[breath]b", "<strong>bold</strong>", "<laughter>ha</laughter>", "[vocalized-noise]",
    "<|im_start|>user\nhi<|im_end|>", "<|endoftext|>", "😀", "😀😀", " 😀", "a😀b", "\u00a0", "a\u00a0b",
    "\u3000你好", "e\u0301", "\u1100\u1161\u11a8", "ﬁ", "Ǆ", "ǅ", "\u0000", "a\u0000b", "\u200b", "\ufeffx",
]
for s in fixed:
    add(s)

seen = set()
uniq = []
for s in lines:
    if s not in seen:
        seen.add(s)
        uniq.append(s)
with gzip.GzipFile(OUT, "wb", mtime=0) as f:
    f.write("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in uniq).encode("utf-8"))
print(f"{len(uniq)} lines, {sum(len(s.encode()) for s in uniq)} bytes of text -> {OUT}", file=sys.stderr)
