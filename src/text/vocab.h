/*
 * vocab.h — the text tokenizer's data: tokens by id, their types, and the BPE merges, as read
 * from a Hugging Face tokenizer directory (vocab.json + merges.txt + tokenizer_config.json, as
 * in CosyVoice-BlankEN, or one tokenizer.json) and stored in / loaded from the model file under
 * the llama.cpp key names (tokenizer.ggml.tokens / token_type / merges).
 *
 * CosyVoice2 adds its special tokens in code (cosyvoice/tokenizer/tokenizer.py,
 * CosyVoice2Tokenizer): `<|im_start|>`, `<|im_end|>` (usually present already), then 17 more
 * (`<|endofprompt|>`, `[breath]`, ...). Like Hugging Face's add_special_tokens, each one that
 * does not exist yet gets the next free id, in list order.
 */
#ifndef COSY_VOCAB_H
#define COSY_VOCAB_H

#include <stddef.h>
#include <stdint.h>
#include "cosy.h"
#include "io/gguf.h"

typedef enum {
    COSY_TOKEN_UNUSED = 0,   /* an id with no token (a gap) */
    COSY_TOKEN_NORMAL = 1,   /* a BPE vocabulary entry */
    COSY_TOKEN_CONTROL = 3,  /* an added special token (matched before BPE, skipped on decode) */
    COSY_TOKEN_USER = 4,     /* an added non-special token (matched before BPE) */
} cosy_token_type;

typedef struct {
    int32_t n_tokens;       /* ids 0 .. n_tokens-1 */
    char **tokens;          /* byte-level unicode strings (UTF-8); "" for gaps */
    int32_t *types;         /* cosy_token_type */
    int32_t n_merges;
    char **merges;          /* "left right", by rank */
    int32_t n_base;         /* size of the BPE vocabulary (before added tokens) */
} cosy_vocab;

/* CosyVoice2's special tokens in the order the reference adds them. */
extern const char *const cosy_cv2_special_tokens[];
extern const int cosy_cv2_n_special_tokens;

/* Loads a tokenizer directory and appends CosyVoice2's special tokens. */
cosy_status cosy_vocab_load_dir(const char *dir, cosy_vocab *out);
/* Appends CosyVoice3Tokenizer's 261 specials after CosyVoice2's (<|endofsystem|>, ARPAbet, pinyin):
 * with the real 151,643-entry vocabulary, <|endofprompt|> = 151646 ... [ǜ] = 151923. */
cosy_status cosy_vocab_add_cv3_specials(cosy_vocab *v);
extern const int cosy_cv3_n_extra_tokens;
/* The tokenizer of a model file; its base-vocabulary key is "<general.architecture>.tokenizer.base_vocab". */
cosy_status cosy_vocab_from_gguf(const gguf_file *g, cosy_vocab *out);
void cosy_vocab_write_gguf(const cosy_vocab *v, const char *arch, gguf_writer *w);
void cosy_vocab_free(cosy_vocab *v);
/* A byte-level vocabulary with no merges: the 256 GPT-2 byte symbols (ids 0..255), the
 * three Qwen added tokens and CosyVoice2's specials. For models with random weights, where
 * the real vocabulary is not at hand: any text still tokenizes (one token per byte). */
cosy_status cosy_vocab_byte_level(cosy_vocab *out);
/* The GPT-2 byte-to-unicode map: the code point that stands for byte b in BPE tokens. */
uint32_t cosy_byte_to_unicode(uint8_t b);
/* Appends `text` as a new special token unless it exists; returns its id or -1 on OOM. */
int32_t cosy_vocab_add_special(cosy_vocab *v, const char *text);

#endif
