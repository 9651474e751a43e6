/*
 * lm_sampling.h — how the next speech token is drawn from the LM's log-probabilities:
 * CosyVoice2's ras_sampling (cosyvoice/utils/common.py at ace7c47; the yaml sets top_p 0.8,
 * top_k 25, win_size 10, tau_r 0.1), a seedable random number generator, and the hooks tests use
 * to replace either the uniform draws or the whole sampler.
 *
 * ras_sampling (repetition-aware sampling, VALL-E 2):
 *   1. nucleus: p = softmax(logp) (temperature 1); sort descending, stable (ties keep the lower id
 *      first); walk the sorted list taking entries while cum < top_p and fewer than top_k are taken,
 *      cum accumulating in f32 as the reference's tensor does (so the entry that crosses top_p is
 *      included); draw one of them with probability proportional to p (not renormalised explicitly:
 *      the draw normalises).
 *   2. if that pick occurs at least win_size * tau_r times (= once) among the last win_size decoded
 *      tokens: set its logp to -inf (in place, as the reference does since f2ddcbe) and redraw from
 *      the full softmax.
 * The eos mask the caller applies before sampling (logp[eos] = -inf) therefore holds in both draws.
 *
 * Draws: the reference uses torch.multinomial, whose random stream we cannot reproduce, so a draw
 * here is inverse-CDF sampling with one uniform u in [0, 1): the chosen index j is the first with
 * u * total < C_j, C_j the running sum of the weights in the order given (descending-probability
 * order for the nucleus, id order for the full-softmax redraw). Entries of weight 0 are never drawn.
 */
#ifndef COSY_LM_SAMPLING_H
#define COSY_LM_SAMPLING_H

#include <stdint.h>
#include "cosy.h"

/* xoshiro256** seeded through splitmix64: fast, small state, reproducible across platforms. */
typedef struct {
    uint64_t s[4];
} cosy_rng;

void cosy_rng_seed(cosy_rng *rng, uint64_t seed);
uint64_t cosy_rng_next(cosy_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double cosy_rng_uniform(cosy_rng *rng);

/* A source of uniforms in [0, 1): the sampler's own RNG by default; tests replay given values. */
typedef double (*cosy_draw_fn)(void *ctx);

/*
 * A whole sampler, as the LM decode driver calls it: pick the next id from logp (n values, may be
 * modified in place), given every id decoded so far in this LM call (fill tokens included, as
 * `out_tokens` in the reference). The driver's default is ras_sampling; the golden runner and
 * tests substitute forced values.
 */
typedef cosy_status (*cosy_lm_sample_fn)(void *ctx, float *logp, int n, const int32_t *decoded, int n_decoded, int32_t *out);

typedef struct {
    float top_p;
    int top_k, win_size;
    float tau_r;
    cosy_rng rng;
    cosy_draw_fn draw;    /* NULL: rng */
    void *draw_ctx;
    int vocab;
    float *probs;         /* [vocab] scratch */
    int32_t *cand_ids;    /* [top_k] */
    float *cand_probs;    /* [top_k] */
    /* what the last call did (for tests and traces) */
    int last_n_candidates, last_resampled;
} cosy_ras_sampler;

/* Allocates the scratch for a vocabulary of `vocab` ids. */
cosy_status cosy_ras_init(cosy_ras_sampler *s, int vocab, float top_p, int top_k, int win_size, float tau_r, uint64_t seed);
void cosy_ras_free(cosy_ras_sampler *s);

/* Probabilities softmax(logp) in f32 (max-subtracted, exp, normalised by the sum); all-(-inf) gives zeros. */
void cosy_sampling_softmax(const float *logp, int n, float *probs);

/*
 * nucleus_sampling's candidate set: writes up to top_k ids and their probabilities (softmax of the
 * full logp, not renormalised) in descending-probability order and returns how many were taken.
 * `probs` is [n] scratch (left holding softmax(logp)).
 */
int cosy_nucleus_candidates(const float *logp, int n, float top_p, int top_k, float *probs, int32_t *ids, float *cand_probs);

/* Inverse-CDF draw over weights w[0..n) with uniform u in [0, 1); -1 if every weight is 0. */
int cosy_sampling_draw_index(const float *w, int n, double u);

/* ras_sampling as above; logp may be modified (the repeated id set to -inf). */
cosy_status cosy_ras_sample(cosy_ras_sampler *s, float *logp, int n, const int32_t *decoded, int n_decoded, int32_t *out);

/* cosy_lm_sample_fn adapter: ctx is a cosy_ras_sampler. */
cosy_status cosy_ras_sample_fn(void *ctx, float *logp, int n, const int32_t *decoded, int n_decoded, int32_t *out);

#endif
