/*
 * hift_source.c — HiFT's harmonic-plus-noise excitation: F0 per mel frame -> one source sample per
 * output sample (cosyvoice/hifigan/generator.py: HiFTGenerator.f0_upsamp, SourceModuleHnNSF.forward,
 * SineGen2.forward and _f02sine), and the random sources that feed it.
 *
 * CosyVoice2 at 24 kHz builds SineGen2 (sinegen_type '2'). Its phase path, reproduced step by step
 * because the phase is a running sum whose float rounding shows up in the waveform:
 *   f0u[n]    = f0[nearest(n)]                         torch.nn.Upsample(scale 480), nearest
 *   rad[n][h] = (f0u[n] * (h + 1) / sr) % 1            float; rand_ini[h] added at n = 0 only
 *   down[d]   = linear interpolation of rad, x 1/480   F.interpolate(linear, align_corners=False)
 *   phase[d]  = cumsum(down) * 2 * pi                  cumsum accumulates in double on the CPU
 *   up[n]     = linear interpolation of phase * 480, x 480
 *   sine      = sin(up) * sine_amp
 * With nearest-upsampled f0 the down-sampling reads two equal samples per frame, so the phase per
 * frame is exact; rand_ini lands on sample 0, which the down-sampling never reads (for 480), yet it
 * is still drawn. Then uv = f0u > threshold, noise = (uv ? sigma : alpha / 3) * randn, the sine is
 * kept only where voiced, and l_linear + tanh merges the harmonics into one source channel.
 */
#include "model/hift/hift_internal.h"
#include "model/model.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

/* Source index and weights of torch's linear interpolation (F.interpolate(mode='linear',
 * align_corners=False); UpSample.h area_pixel_compute_source_index / compute_source_index_and_lambda):
 * the scale is rounded to float, the source index stays in double (negative ones clamp to 0), and the
 * weights are float: l1 = float(src - i0), l0 = 1 - l1. Matching these roundings bit for bit matters
 * because the interpolated phase reaches thousands of radians, where one float ulp shows in the sine. */
typedef struct {
    int64_t i0, i1;
    float l0, l1;
} interp_tap;

static interp_tap interp_index(float scale, int64_t dst, int64_t in_size)
{
    interp_tap t;
    double src = (double)scale * ((double)dst + 0.5) - 0.5;
    if (src < 0.0) src = 0.0;
    t.i0 = (int64_t)src;
    t.i1 = t.i0 + (t.i0 < in_size - 1 ? 1 : 0);
    t.l1 = (float)(src - (double)t.i0);
    t.l0 = 1.0f - t.l1;
    return t;
}

/* t0 * w0 + t1 * w1 (UpSampleKernel.cpp, Interpolate<1, scalar_t, index_t, 2>), which the compiler of
 * torch's CPU kernels contracts to fma(t0, w0, t1 * w1): the form that reproduces the fixtures exactly */
static inline float interp_apply(interp_tap t, float x0, float x1)
{
    return fmaf(x0, t.l0, x1 * t.l1);
}

/* torch.nn.Upsample(scale_factor=S, mode='nearest'): floor(n * (float)(1/S)) (UpSample.h
 * nearest_neighbor_compute_source_index), clamped to the last frame */
static inline int64_t nearest_index(float scale, int64_t n, int64_t in_size)
{
    int64_t i = (int64_t)floorf((float)n * scale);
    return i < in_size - 1 ? i : in_size - 1;
}

/* rad_values at sample n, harmonic h (before the cumsum): (f0u * (h + 1) / sr) % 1, plus rand_ini at n = 0 */
static inline float rad_at(const float *f0, int n_frames, float nearest_scale, float sr, const float *rand_ini, int64_t n,
                           int h)
{
    float fn = f0[nearest_index(nearest_scale, n, n_frames)] * (float)(h + 1);
    float r = fmodf(fn / sr, 1.0f);
    if (n == 0) r += rand_ini[h];
    return r;
}

typedef struct {
    const cosy_hift *h;
    const float *f0, *phase_up_src; /* phase_up_src: [F][H] phase per frame, x upsample_scale */
    const float *noise;             /* [H][T] */
    float *source, *uv;
    int n_frames;
    int64_t T;
    int n_tasks;
    float up_scale, nearest_scale, amp_voiced, amp_unvoiced, sine_amp, threshold;
} source_job;

/* Samples of one task: up-sampled phase -> sines -> noise and voicing -> merged source. */
static void source_task(void *ctx, int task)
{
    const source_job *j = ctx;
    const cosy_hift *h = j->h;
    const int H = h->harmonics, F = j->n_frames;
    int begin, end;
    cosy_split_range((int)j->T, j->n_tasks, task, &begin, &end);
    for (int64_t n = begin; n < end; n++) {
        interp_tap tap = interp_index(j->up_scale, n, F);
        float f0u = j->f0[nearest_index(j->nearest_scale, n, F)];
        float uv = f0u > j->threshold ? 1.0f : 0.0f;
        float amp = uv * j->amp_voiced + (1.0f - uv) * j->amp_unvoiced;
        float dot = 0.0f;
        for (int k = 0; k < H; k++) {
            float p = interp_apply(tap, j->phase_up_src[tap.i0 * H + k], j->phase_up_src[tap.i1 * H + k]);
            float sine = sinf(p) * j->sine_amp;
            float x = sine * uv + amp * j->noise[(size_t)k * j->T + n];
            dot = fmaf(h->merge_w[k], x, dot);
        }
        j->source[n] = tanhf(dot + h->merge_b[0]);
        if (j->uv) j->uv[n] = uv;
    }
}

cosy_status hift_source_draws_alloc(const cosy_hift *h, int n_frames, hift_draws *d, cosy_arena *arena)
{
    const int64_t T = (int64_t)n_frames * h->upsample_scale;
    d->rand_ini = cosy_arena_floats(arena, (size_t)h->harmonics);
    d->noise = cosy_arena_floats(arena, (size_t)h->harmonics * (size_t)T);
    d->discard = cosy_arena_floats(arena, (size_t)T);
    if (!d->rand_ini || !d->noise || !d->discard) return cosy_error(COSY_ERR_NOMEM, "hift: source noise scratch exhausted");
    return COSY_OK;
}

void hift_source_draw(const cosy_hift *h, int n_frames, cosy_rng_source *rng, hift_draws *d)
{
    const int64_t T = (int64_t)n_frames * h->upsample_scale;
    /* draw 1: SineGen2._f02sine rand_ini, the fundamental's initial phase forced to 0 */
    rng->uniform(rng->ctx, d->rand_ini, h->harmonics);
    d->rand_ini[0] = 0.0f;
    /* draw 2: randn_like(sine_waves), harmonic-major; draw 3: randn_like(uv), discarded by inference */
    rng->normal(rng->ctx, d->noise, (int64_t)h->harmonics * T);
    rng->normal(rng->ctx, d->discard, T);
}

cosy_status hift_source_forward(const cosy_hift *h, const float *f0, int n_frames, const hift_draws *draws, float *source, float *uv,
                                cosy_arena *arena)
{
    const cosy_hparams *hp = h->hp;
    const int H = h->harmonics, S = h->upsample_scale, F = n_frames;
    const int64_t T = (int64_t)F * S;
    const float sr = (float)hp->sample_rate;
    const float *rand_ini = draws->rand_ini, *noise = draws->noise;
    size_t mark = cosy_arena_mark(arena);
    float *phase = cosy_arena_floats(arena, (size_t)F * H);
    if (!phase) return cosy_error(COSY_ERR_NOMEM, "hift: source scratch exhausted");

    /* F.interpolate(scale_factor=1/S) gives floor(T * (1/S)) frames; the reference only runs when that is F */
    const double down_factor = 1.0 / (double)S;
    if ((int64_t)floor((double)T * down_factor) != F)
        return cosy_error(COSY_ERR_INTERNAL, "hift: %lld samples do not down-sample to %d frames", (long long)T, F);
    const float down_scale = (float)(1.0 / down_factor);     /* compute_scales_value: 1 / scale_factor */
    const float up_scale = (float)(1.0 / (double)S);
    const float nearest_scale = (float)(1.0 / (double)S);

    /* per-frame phase: down-sampled rad, cumsum in double, * 2 * pi, * S (all float steps as torch) */
    for (int k = 0; k < H; k++) {
        double cum = 0.0;
        for (int d = 0; d < F; d++) {
            interp_tap tap = interp_index(down_scale, d, T);
            float r0 = rad_at(f0, F, nearest_scale, sr, rand_ini, tap.i0, k);
            float r1 = rad_at(f0, F, nearest_scale, sr, rand_ini, tap.i1, k);
            cum += interp_apply(tap, r0, r1);
            float p = (float)cum * 2.0f;
            p = p * (float)M_PI;
            phase[(size_t)d * H + k] = p * (float)S;
        }
    }

    source_job job = {
        .h = h, .f0 = f0, .phase_up_src = phase, .noise = noise, .source = source, .uv = uv, .n_frames = F, .T = T,
        .up_scale = up_scale, .nearest_scale = nearest_scale, .sine_amp = hp->nsf_alpha, .threshold = hp->nsf_voiced_threshold,
        .amp_voiced = hp->nsf_sigma,
        /* (1 - uv) * sine_amp / 3: float ops left to right */
        .amp_unvoiced = hp->nsf_alpha / 3.0f,
    };
    int n_tasks = cosy_pool_size(h->pool);
    if ((int64_t)n_tasks > T) n_tasks = (int)T;
    job.n_tasks = n_tasks;
    cosy_pool_run(h->pool, n_tasks, source_task, &job);
    cosy_arena_release(arena, mark);
    return COSY_OK;
}

/* ---- random sources ------------------------------------------------------------------------- */

static void torch_uniform(void *ctx, float *out, int64_t n)
{
    cosy_hift_rng *r = ctx;
    cosy_torch_rand(&r->torch, out, n);
    r->normals_since_uniform = 0;
}

static void torch_normal(void *ctx, float *out, int64_t n)
{
    cosy_hift_rng *r = ctx;
    /* HiFT's first normal draw fills a transposed (non-contiguous) tensor: torch's element-by-element
     * path; the second a contiguous one: the vectorised path, which torch only takes from 16 values */
    if (r->normals_since_uniform++ == 0 || n < 16) cosy_torch_normal_serial(&r->torch, out, n);
    else (void)cosy_torch_randn(&r->torch, out, n);
}

void cosy_hift_rng_seed(cosy_hift_rng *rng, uint64_t seed)
{
    cosy_torch_rng_seed(&rng->torch, seed);
    rng->normals_since_uniform = 0;
}

cosy_rng_source cosy_hift_rng_source(cosy_hift_rng *rng)
{
    cosy_rng_source s = {torch_uniform, torch_normal, rng};
    return s;
}

static void replay_fail(cosy_hift_replay *r, float *out, int64_t n, const char *what, int64_t have)
{
    for (int64_t i = 0; i < n; i++) out[i] = NAN;
    if (r->status == COSY_OK)
        r->status = cosy_error(COSY_ERR_INVALID_ARG, "hift replay: %s draw of %lld values, the recording has %lld", what,
                               (long long)n, (long long)have);
}

static void replay_uniform(void *ctx, float *out, int64_t n)
{
    cosy_hift_replay *r = ctx;
    r->normals_since_uniform = 0;
    if (!r->rand_ini || n != r->n_rand_ini) { replay_fail(r, out, n, "uniform", r->n_rand_ini); return; }
    memcpy(out, r->rand_ini, sizeof(float) * (size_t)n);
}

static void replay_normal(void *ctx, float *out, int64_t n)
{
    cosy_hift_replay *r = ctx;
    if (r->normals_since_uniform++ == 0) {
        /* recorded time-major [T][H]; HiFT asks harmonic-major [H][T] */
        int64_t H = r->harmonics, T = H > 0 ? n / H : 0;
        if (!r->sine_noise || n != r->n_sine_noise || H <= 0 || T * H != n) {
            replay_fail(r, out, n, "sine noise", r->n_sine_noise);
            return;
        }
        for (int64_t k = 0; k < H; k++)
            for (int64_t t = 0; t < T; t++) out[k * T + t] = r->sine_noise[t * H + k];
    } else {
        if (!r->source_noise || n != r->n_source_noise) { replay_fail(r, out, n, "source noise", r->n_source_noise); return; }
        memcpy(out, r->source_noise, sizeof(float) * (size_t)n);
    }
}

cosy_rng_source cosy_hift_replay_source(cosy_hift_replay *replay)
{
    replay->normals_since_uniform = 0;
    replay->status = COSY_OK;
    cosy_rng_source s = {replay_uniform, replay_normal, replay};
    return s;
}
