#!/usr/bin/env python3
"""Generates tests/data/tokenizer/normalize_cases.jsonl.gz: what CosyVoice's text_normalize returns,
with split=True and split=False, when neither ttsfrd nor wetext is installed, for a few thousand texts;
and inflect's number_to_words for a set of digit strings.

The oracle runs the reference's own helpers — cosyvoice/utils/frontend_utils.py (FunAudioLLM/CosyVoice
@ace7c47) and inflect 7.3.1 (the version CosyVoice pins) — imported from REFPY; only the short glue of
CosyVoiceFrontEnd.text_normalize (frontend.py, which cannot be imported without torch/onnxruntime) is
restated below. English token counts come from our own tokenizer (`cosy tokenize`), with the Qwen2
vocabulary and CosyVoice-BlankEN's 134,839 merges; test_tokenizer checks that tokenizer against Hugging
Face's on 14.5k lines.

Setup used (inflect's run-time deps typeguard/more_itertools replaced by two tiny stand-ins):
  REFPY=/tmp/refpy: frontend_utils.py, inflect/ (git show v7.3.1:inflect/...), typeguard.py, more_itertools.py
  python3 tests/tokenizer/gen_normalize.py /tmp/refpy build-text/cosy      (needs the `regex` module)
"""
import gzip
import json
import os
import random
import subprocess
import sys

REFPY, COSY = sys.argv[1], sys.argv[2]
sys.path.insert(0, REFPY)
import inflect  # noqa: E402
import frontend_utils as fu  # noqa: E402
import re  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "data")
qwen2 = os.path.join(os.environ.get("COSY_TMP", "/tmp"), "cosy_qwen2_tok")
os.makedirs(qwen2, exist_ok=True)
for f in ["vocab.json", "merges.txt"]:
    with gzip.open(os.path.join(data, "tokenizer", "qwen2", f + ".gz")) as src, open(os.path.join(qwen2, f), "wb") as dst:
        dst.write(src.read())
with open(os.path.join(data, "tokenizer", "qwen2", "tokenizer_config.json"), "rb") as src, \
        open(os.path.join(qwen2, "tokenizer_config.json"), "wb") as dst:
    dst.write(src.read())

tok = subprocess.Popen([COSY, "tokenize", "--tokenizer", qwen2, "--merges", "134839", "--escapes"],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8")


def encode(text, **kw):
    esc = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    tok.stdin.write(esc + "\n")
    tok.stdin.flush()
    line = tok.stdout.readline().rstrip("\n")
    return [int(x) for x in line.split()] if line else []


parser = inflect.engine()


def text_normalize(text, split):
    """CosyVoiceFrontEnd.text_normalize(text, split, text_frontend=True) with text_frontend == ''."""
    if '<|' in text and '|>' in text:
        return [text] if split else text
    if text == '':
        return [text] if split else text
    text = text.strip()
    if fu.contains_chinese(text):
        text = text.replace("\n", "")
        text = fu.replace_blank(text)
        text = fu.replace_corner_mark(text)
        text = text.replace(".", "。")
        text = text.replace(" - ", "，")
        text = fu.remove_bracket(text)
        text = re.sub(r'[，,、]+$', '。', text)
        texts = list(fu.split_paragraph(text, encode, "zh", token_max_n=80, token_min_n=60, merge_len=20,
                                        comma_split=False))
    else:
        text = fu.spell_out_number(text, parser)
        texts = list(fu.split_paragraph(text, encode, "en", token_max_n=80, token_min_n=60, merge_len=20,
                                        comma_split=False))
    texts = [i for i in texts if not fu.is_only_punctuation(i)]
    return texts if split else text


rng = random.Random(7)
cases = []

# hand-written examples of every rule
rules = [
    # frontend switched off / pass-through
    "<|endofprompt|>你好。", "You are a helpful assistant.<|endofprompt|>Hi 123", "a |> b <| c", "", "<|", "|>",
    # zh: newline removal, replace_blank, corner marks, periods, " - ", brackets, trailing commas
    "你好\n世界", "你好 世界", "你好 world", "hello 世界", "中文 English mixed 中文", "a b 中 c d", "中 a  b",
    "面积是5m²，体积是3m³。", "价格是3.5元.", "今天 - 明天", "（注释）【标题】`代码`", "他说——好吧", "好的，，，",
    "好的、", "好的,", "你好，世界，", "你好，世界，。", "１２３中文", "我有123个苹果", "0.5%的中文", "第2021年",
    "“你好。”他说。", "他说：“你好！”然后走了。", "你好吗？我很好！谢谢；再见：", "你好。。。好", "。你好",
    "。”你好", "中" * 100, "中。" * 60, "这是一个很长的句子，" * 12 + "结束。",
    "短句。" + "这是一个比较长的句子需要被合并在一起，" * 4 + "结束。短。",
    # en: digits, splitting by tokens, quotes
    "I have 3 apples and 12 oranges.", "The year 2024 was 1 of 2.", "Call 911 now", "007 is 00", "It costs $3.50.",
    "1,000,000 people", "Version 2.0.1", "He said \"hello.\" Then left.", "Wait... what?!", "No punctuation here",
    "a.b.c", "x²+y³=z", "٣٤ apples", "① first", "Line one\nLine two", "   padded   ", "tabs\tinside",
    "Ends with quote.\"", ".\"", "?!", "...", "Hello! " * 40, "word " * 200, "This is sentence number one. " * 20,
    "9" * 36, "1" + "0" * 36, "5" * 40, "Mr. Smith went to Washington. He arrived at 10:30.",
    "こんにちは。世界！", "안녕하세요. 반갑습니다!", "Привет, мир! Как дела?", "١٢٣", "e\u0301", "[breath] hello [breath]",
    " \u3000 ", "\u3000你好\u3000", "\x1c\x1dtext\x1e\x1f", "\u00a0nbsp\u00a0", "\n\n", "  ", "\t",
]
cases += rules

# gettext catalogues and docs (the tokenizer corpus), singly and as paragraphs
corpus = [json.loads(l) for l in gzip.open(os.path.join(data, "tokenizer", "corpus.jsonl.gz"), "rt", encoding="utf-8")]
natural = corpus[:9000]
cases += rng.sample(natural, 1500)
for _ in range(300):
    cases.append(" ".join(rng.sample(natural, rng.randrange(2, 12))))
for _ in range(200):
    cases.append("".join(rng.sample(natural, rng.randrange(2, 20))))
for _ in range(200):
    cases.append(rng.choice(corpus[9000:]))

out = []
for text in cases:
    if "\x00" in text:  # keep the records readable with cJSON (it ends strings at \u0000)
        continue
    rec = {"text": text}
    for key, split in (("split", True), ("nosplit", False)):
        try:
            rec[key] = text_normalize(text, split)
        except Exception as e:  # the reference raises (IndexError on empty text, NumOutOfRangeError, ...)
            rec[key] = None
            rec["error"] = type(e).__name__
    out.append(rec)

numbers = ["0", "1", "2", "01", "001", "007", "10", "11", "12", "19", "20", "21", "99", "100", "101", "110", "111",
           "120", "999", "1000", "1001", "1010", "1100", "2000100", "1000000", "1000001", "123456789", "100000000",
           "9" * 36, "1" + "0" * 35, "0" * 40, "0" * 39 + "1", "²", "1²", "²3", "٣٤", "٠٥", "१२३", "①②", "１２", "0١"]
numbers += [str(rng.randrange(0, 10 ** rng.randrange(1, 37))) for _ in range(400)]
for n in numbers:
    try:
        out.append({"number": n, "words": parser.number_to_words(n)})
    except Exception as e:
        out.append({"number": n, "words": None, "error": type(e).__name__})

path = os.path.join(data, "tokenizer", "normalize_cases.jsonl.gz")
with gzip.GzipFile(path, "wb", mtime=0) as f:
    f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out).encode("utf-8"))
tok.stdin.close()
tok.wait()
errors = sum(1 for r in out if "error" in r)
print(f"{len(out)} records ({errors} where the reference raises) -> {path}", file=sys.stderr)
