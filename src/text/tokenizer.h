/*
 * tokenizer.h — the Qwen2 byte-level BPE tokenizer, giving the ids Hugging Face's tokenizers
 * give for CosyVoice2's tokenizer (cosyvoice/tokenizer/tokenizer.py, CosyVoice2Tokenizer.encode:
 * the BlankEN vocabulary and merges, plus the added special tokens; no BOS/EOS).
 *
 * Pipeline, as the Rust tokenizers library runs it for Qwen2 (transformers' Qwen2Converter):
 *   1. added tokens (every CONTROL/USER entry of the vocabulary) are split out of the raw text,
 *      leftmost-longest, and become their ids; the text between them goes through 2-5;
 *   2. NFC;
 *   3. the Qwen2 pre-tokenizer regex (Split, Isolated) — implemented by hand in tokenizer.c —
 *      (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   4. each piece's UTF-8 bytes are the initial symbols (GPT-2 byte-to-unicode alphabet);
 *   5. BPE: repeatedly merge the adjacent pair with the lowest merge rank, leftmost first.
 *
 * A tokenizer is immutable after creation and may be shared by any number of threads.
 */
#ifndef COSY_TOKENIZER_H
#define COSY_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "cosy.h"
#include "text/vocab.h"

typedef struct cosy_tokenizer cosy_tokenizer;

/* A growable list of token ids. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} cosy_token_ids;

void cosy_token_ids_free(cosy_token_ids *t);

/* Builds a tokenizer from a vocabulary (copied; `v` may be freed afterwards). Fails with a
 * message when a merge names a token the vocabulary lacks, as Hugging Face's BPE does. */
cosy_status cosy_tokenizer_create(const cosy_vocab *v, cosy_tokenizer **out);
/* Same, using only the first n_merges merges (n_merges <= v->n_merges). CosyVoice-BlankEN's
 * merges.txt is stock Qwen2's truncated to 134,839 lines; tests use this to model it. */
cosy_status cosy_tokenizer_create_truncated(const cosy_vocab *v, int32_t n_merges, cosy_tokenizer **out);
/* Loads a Hugging Face tokenizer directory (see cosy_vocab_load_dir) and builds a tokenizer. */
cosy_status cosy_tokenizer_load_dir(const char *dir, cosy_tokenizer **out);
void cosy_tokenizer_free(cosy_tokenizer *t);


/* Appends the ids of text[0..len) to *out. The text must be valid UTF-8 (COSY_ERR_INVALID_ARG
 * naming the byte offset otherwise; see cosy_utf8_sanitize for Hugging Face-style U+FFFD
 * replacement). NUL bytes are ordinary characters. */
cosy_status cosy_tokenizer_encode(const cosy_tokenizer *t, const char *text, size_t len, cosy_token_ids *out);
/* Number of ids encode would produce (CosyVoice's len(tokenizer.encode(text))). */
cosy_status cosy_tokenizer_count(const cosy_tokenizer *t, const char *text, size_t len, size_t *count);

/* Text of ids, as Hugging Face's decode: byte-level tokens back to bytes, added tokens as
 * their text (special ones dropped when skip_special), invalid UTF-8 replaced by U+FFFD.
 * *out is malloc'd and NUL-terminated. Fails on an id outside the vocabulary. */
cosy_status cosy_tokenizer_decode(const cosy_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **out,
                                  size_t *out_len);

int32_t cosy_tokenizer_n_tokens(const cosy_tokenizer *t);
/* The token's string as stored (byte-level alphabet for BPE tokens), or NULL for a bad id. */
const char *cosy_tokenizer_token(const cosy_tokenizer *t, int32_t id);
/* The id of an added token such as "<|endofprompt|>", or -1. */
int32_t cosy_tokenizer_added_id(const cosy_tokenizer *t, const char *text);

#endif
