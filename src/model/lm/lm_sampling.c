/*
 * lm_sampling.c — ras_sampling, nucleus candidates, inverse-CDF draws and the RNG (see lm_sampling.h).
 */
#include "model/lm/lm_sampling.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ RNG */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void cosy_rng_seed(cosy_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cosy_rng_next(cosy_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cosy_rng_uniform(cosy_rng *rng) { return (double)(cosy_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0); }

/* ------------------------------------------------------------------ sampler */

cosy_status cosy_ras_init(cosy_ras_sampler *s, int vocab, float top_p, int top_k, int win_size, float tau_r, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    if (vocab < 1 || top_k < 1 || win_size < 0 || !(top_p > 0.0f))
        return cosy_error(COSY_ERR_INVALID_ARG, "sampling: bad parameters (vocab %d, top_p %g, top_k %d, win_size %d)", vocab,
                          (double)top_p, top_k, win_size);
    s->top_p = top_p;
    s->top_k = top_k < vocab ? top_k : vocab;
    s->win_size = win_size;
    s->tau_r = tau_r;
    s->vocab = vocab;
    cosy_rng_seed(&s->rng, seed);
    s->probs = malloc(sizeof(float) * (size_t)vocab);
    s->cand_ids = malloc(sizeof(int32_t) * (size_t)s->top_k);
    s->cand_probs = malloc(sizeof(float) * (size_t)s->top_k);
    if (!s->probs || !s->cand_ids || !s->cand_probs) {
        cosy_ras_free(s);
        return cosy_error(COSY_ERR_NOMEM, "sampling: out of memory");
    }
    return COSY_OK;
}

void cosy_ras_free(cosy_ras_sampler *s)
{
    free(s->probs);
    free(s->cand_ids);
    free(s->cand_probs);
    s->probs = NULL;
    s->cand_ids = NULL;
    s->cand_probs = NULL;
}

void cosy_sampling_softmax(const float *logp, int n, float *probs)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (logp[i] > mx) mx = logp[i];
    if (mx == -INFINITY) {
        memset(probs, 0, sizeof(float) * (size_t)n);
        return;
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        probs[i] = expf(logp[i] - mx);
        sum += probs[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) probs[i] *= inv;
}

int cosy_nucleus_candidates(const float *logp, int n, float top_p, int top_k, float *probs, int32_t *ids, float *cand_probs)
{
    cosy_sampling_softmax(logp, n, probs);
    /* The first top_k entries of a stable descending sort: (p desc, id asc). Insertion keeps the
     * kept list in that order; a later id only displaces an entry of strictly smaller p. */
    int kept = 0;
    for (int i = 0; i < n; i++) {
        float p = probs[i];
        if (kept == top_k && !(p > cand_probs[kept - 1])) continue;
        int j = kept < top_k ? kept++ : kept - 1;
        while (j > 0 && cand_probs[j - 1] < p) {
            cand_probs[j] = cand_probs[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        cand_probs[j] = p;
        ids[j] = i;
    }
    /* take while cum < top_p and fewer than top_k: cum is an f32 sum, compared with top_p in f32 */
    float cum = 0.0f;
    int taken = 0;
    while (taken < kept && cum < top_p && taken < top_k) cum += cand_probs[taken++];
    return taken;
}

int cosy_sampling_draw_index(const float *w, int n, double u)
{
    double total = 0.0;
    for (int i = 0; i < n; i++) total += w[i];
    if (!(total > 0.0)) return -1;
    double target = u * total, cum = 0.0;
    int last = -1;
    for (int i = 0; i < n; i++) {
        if (w[i] <= 0.0f) continue;
        cum += w[i];
        last = i;
        if (target < cum) return i;
    }
    return last; /* u * total rounded up to the total */
}

static double next_uniform(cosy_ras_sampler *s)
{
    double u = s->draw ? s->draw(s->draw_ctx) : cosy_rng_uniform(&s->rng);
    if (!(u >= 0.0)) u = 0.0;
    if (u >= 1.0) u = 0x1.fffffffffffffp-1;
    return u;
}

cosy_status cosy_ras_sample(cosy_ras_sampler *s, float *logp, int n, const int32_t *decoded, int n_decoded, int32_t *out)
{
    if (n != s->vocab) return cosy_error(COSY_ERR_INVALID_ARG, "sampling: %d log-probabilities for a sampler of %d", n, s->vocab);
    int k = cosy_nucleus_candidates(logp, n, s->top_p, s->top_k, s->probs, s->cand_ids, s->cand_probs);
    int pick = cosy_sampling_draw_index(s->cand_probs, k, next_uniform(s));
    if (pick < 0) return cosy_error(COSY_ERR_INVALID_ARG, "sampling: every token has probability 0");
    int32_t top = s->cand_ids[pick];
    s->last_n_candidates = k;
    s->last_resampled = 0;
    int rep = 0, from = n_decoded > s->win_size ? n_decoded - s->win_size : 0;
    for (int i = from; i < n_decoded; i++) rep += decoded[i] == top;
    /* win_size * tau_r in f32 (10 * 0.1f rounds to exactly 1.0f, the reference's 1.0) */
    float threshold = (float)s->win_size * s->tau_r;
    if ((float)rep >= threshold) {
        logp[top] = -INFINITY;
        cosy_sampling_softmax(logp, n, s->probs);
        int j = cosy_sampling_draw_index(s->probs, n, next_uniform(s));
        if (j >= 0) { /* else everything else is masked: keep the nucleus pick */
            top = j;
            s->last_resampled = 1;
        }
    }
    *out = top;
    return COSY_OK;
}

cosy_status cosy_ras_sample_fn(void *ctx, float *logp, int n, const int32_t *decoded, int n_decoded, int32_t *out)
{
    return cosy_ras_sample(ctx, logp, n, decoded, n_decoded, out);
}
