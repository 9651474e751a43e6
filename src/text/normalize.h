/*
 * normalize.h — CosyVoice's text frontend as it runs without its optional normalisers (ttsfrd,
 * wetext): cosyvoice/cli/frontend.py CosyVoiceFrontEnd.text_normalize(text, split,
 * text_frontend=True) and the helpers of cosyvoice/utils/frontend_utils.py. The pieces it
 * returns with split=1 are exactly the strings the reference feeds, one LM call each.
 *
 * Rule chain (reference @ace7c47, no ttsfrd/wetext):
 *   - text containing both "<|" and "|>": returned unchanged (the frontend is switched off);
 *     empty text: returned unchanged ([""] with split);
 *   - Python str.strip();
 *   - with wetext (cosy_text_normalize_tn, COSY_TEXT_TN_WETEXT): wetext's Normalizer.normalize (text/tn.h) —
 *     digits, dates, times, money, measures read out — then the rules below;
 *   - text with a character in U+4E00..U+9FFF (zh): delete '\n'; replace_blank; '²'->'平方',
 *     '³'->'立方'; every '.'->'。'; " - "->'，'; delete （ ） 【 】 `; "——"->' '; a trailing run of
 *     ，,、 -> '。'; split_paragraph(zh). Digits stay digits: only wetext would read them out.
 *   - otherwise (en): spell_out_number (inflect's number_to_words on every run of str.isdigit()
 *     characters); split_paragraph(en, lengths in Qwen tokens);
 *   - split: pieces made only of punctuation/symbols (or empty) are dropped.
 *
 * Where the reference raises an exception, so do we: COSY_ERR_INVALID_ARG with one line saying why, for
 *   - text that is empty after strip() (e.g. only spaces; IndexError);
 *   - a '"' or '”' right after a terminator before any piece exists (IndexError);
 *   - a number too large for inflect (a non-zero digit at 10^36 or above; NumOutOfRangeError).
 * (test_normalize compares all nine such cases of the reference's own run with these refusals.)
 *
 * cosy_text_normalize_bounded — what the session engine feeds the LM — differs where the reference
 * returns something unbounded: a sentence (text between terminators) longer than token_max_n (80
 * Qwen tokens for en, 80 characters for zh) is cut into parts of at most 80 before the merge: after
 * clause marks, else before white space, else a hard cut (split_long.c). The merge joins a long
 * sentence's parts again only while the join stays within 80; with its neighbours the reference's
 * rule applies (a piece at or below token_min_n = 60 takes the next sentence, a tail below merge_len
 * = 20 joins the previous piece), so no LM call gets more than 80 + 60 + 19 = 159 (the reference's
 * own maximum for text of ordinary sentences; unbounded before). Text whose sentences are all within
 * 80 splits exactly as the reference's. Pass-through text (markup) longer than 80 is cut the same
 * way (cosy_text_bound).
 */
#ifndef COSY_NORMALIZE_H
#define COSY_NORMALIZE_H

#include <stddef.h>
#include "cosy.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

/* A list of malloc'd NUL-terminated strings. */
typedef struct {
    char **items;
    int n, cap;
} cosy_text_list;

cosy_status cosy_text_list_push(cosy_text_list *l, const char *s, size_t n);
void cosy_text_list_free(cosy_text_list *l);

/* Which normaliser runs before CosyVoice's rules (frontend.py picks ttsfrd, else wetext, else none):
 * WETEXT (what the official install, wetext==0.0.4, does: text/tn.h) or NONE (no wetext installed). */
typedef enum { COSY_TEXT_TN_WETEXT = 0, COSY_TEXT_TN_NONE = 1 } cosy_text_tn;

/* text_normalize(text, split) with the chosen normaliser; the two below are these with NONE. */
cosy_status cosy_text_normalize_tn(const cosy_tokenizer *tok, const char *text, size_t len, int split, cosy_text_tn tn,
                                   cosy_text_list *out);
cosy_status cosy_text_normalize_bounded_tn(const cosy_tokenizer *tok, const char *text, size_t len, cosy_text_tn tn,
                                           cosy_text_list *out);

/* text_normalize(text, split) as without wetext. With split=1 the result is the list of sentence pieces the LM is
 * fed (one call each); with split=0 it holds the one normalised string. text must be valid
 * UTF-8. tok counts tokens for English splitting (it may be NULL only for text that takes the
 * zh path or is passed through unchanged; otherwise COSY_ERR_INVALID_ARG). */
cosy_status cosy_text_normalize(const cosy_tokenizer *tok, const char *text, size_t len, int split, cosy_text_list *out);
/* text_normalize(text, split=True) with over-long sentences cut (above): the LM calls of a session. */
cosy_status cosy_text_normalize_bounded(const cosy_tokenizer *tok, const char *text, size_t len, cosy_text_list *out);

/* The pieces of frontend_utils.py, exposed for tests. All take and give valid UTF-8. */
int cosy_text_contains_chinese(const char *s, size_t n);
/* inflect 7.3's engine().number_to_words(digits) for a run of str.isdigit() characters. */
cosy_status cosy_text_number_to_words(const char *digits, size_t n, cosy_strbuf *out);
cosy_status cosy_text_spell_out_number(const char *s, size_t n, cosy_strbuf *out);
cosy_status cosy_text_replace_blank(const char *s, size_t n, cosy_strbuf *out);
/* split_paragraph(text, tokenize, lang, 80, 60, 20, comma_split=False); zh: 1 for "zh". */
cosy_status cosy_text_split_paragraph(const cosy_tokenizer *tok, const char *text, size_t n, int zh, cosy_text_list *out);
int cosy_text_is_only_punctuation(const char *s, size_t n);
/* calc_utt_length: characters (zh) or Qwen tokens (en; tok required). */
cosy_status cosy_text_utt_length(const cosy_tokenizer *tok, int zh, const char *s, size_t n, size_t *len);

/* Ours, for bounded LM calls (split_long.c): appends s to out as one item if it is at most max_len
 * long (tokens or characters as above), else as consecutive parts of at most max_len that
 * concatenate to s but for parts of only white space and punctuation, which are left out; cut after
 * clause marks (a part shorter than min_len prefers a word boundary that gives more), else before
 * white space, else at a code point; no cut leaves a remainder of only punctuation and white space
 * unless nothing else fits. max_len >= 4. */
cosy_status cosy_text_split_long(const cosy_tokenizer *tok, int zh, const char *s, size_t n, size_t max_len, size_t min_len,
                                 cosy_text_list *out);
/* Text that takes no normalisation (markup, or a session without the frontend) cut like a long
 * sentence: one item if within token_max_n, else parts (zh measure if it holds a CJK character). */
cosy_status cosy_text_bound(const cosy_tokenizer *tok, const char *s, size_t n, cosy_text_list *out);
/* 1 if s has nothing to say: only white space, punctuation and symbols (or nothing). */
int cosy_text_is_silent(const char *s, size_t n);

#endif
