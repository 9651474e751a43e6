/*
 * golden_hift.c — the fixture case of the HiFT vocoder: hift_nonstream (one HiFTGenerator.inference
 * call on a recorded mel, with the call's three random draws replayed). Checks f0, the source after
 * the cache overwrite and the waveform; with --dump it also writes the intermediates the fixture
 * records (source_raw, uv, stft_real/imag, magnitude, phase, istft) under the reference's names, to
 * locate a mismatch stage by stage.
 */
#include "golden.h"
#include "core/error.h"
#include "model/hift/hift.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cosy_status golden_hift_nonstream(golden_ctx *ctx);

cosy_status golden_hift_nonstream(golden_ctx *ctx)
{
    cosy_hift *hift;
    COSY_TRY(cosy_hift_get(ctx->model, &hift));
    npy_array mel, d0, d1, d2;
    memset(&mel, 0, sizeof mel);
    memset(&d0, 0, sizeof d0);
    memset(&d1, 0, sizeof d1);
    memset(&d2, 0, sizeof d2);
    cosy_status st = golden_load(ctx, "hift_ns_mel", &mel);
    if (st == COSY_OK) st = golden_load(ctx, "hift_ns_noise_000", &d0);
    if (st == COSY_OK) st = golden_load(ctx, "hift_ns_noise_001", &d1);
    if (st == COSY_OK) st = golden_load(ctx, "hift_ns_noise_002", &d2);
    const int n_mels = ctx->model->hp.hift_in_channels;
    if (st == COSY_OK && (mel.ndim != 3 || mel.shape[0] != 1 || mel.shape[1] != n_mels))
        st = cosy_error(COSY_ERR_FORMAT, "golden: hift_ns_mel is not [1, %d, F]", n_mels);
    float *buf = NULL;
    if (st == COSY_OK) {
        const int F = (int)mel.shape[2], S = cosy_hift_samples_per_frame(hift), B = ctx->model->hp.istft_n_fft / 2 + 1;
        const int64_t T = (int64_t)F * S, L = T / ctx->model->hp.istft_hop + 1;
        /* one block for every output and intermediate */
        const int64_t sizes[] = {F, T, T, T, T, B * L, B * L, B * L, B * L, T};
        int64_t total = 0;
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
        buf = malloc(sizeof(float) * (size_t)total);
        if (!buf) st = cosy_error(COSY_ERR_NOMEM, "golden: out of memory");
        if (st == COSY_OK) {
            float *p = buf;
            cosy_hift_trace tr;
            memset(&tr, 0, sizeof tr);
            tr.f0 = p, p += F;
            float *wav = p;
            p += T;
            float *source = p;
            p += T;
            tr.source_raw = p, p += T;
            tr.uv = p, p += T;
            tr.stft_real = p, p += B * L;
            tr.stft_imag = p, p += B * L;
            tr.magnitude = p, p += B * L;
            tr.phase = p, p += B * L;
            tr.istft = p;
            cosy_hift_replay replay = {.rand_ini = d0.f32, .n_rand_ini = d0.numel, .sine_noise = d1.f32, .n_sine_noise = d1.numel,
                                       .source_noise = d2.f32, .n_source_noise = d2.numel, .harmonics = cosy_hift_harmonics(hift)};
            cosy_rng_source rng = cosy_hift_replay_source(&replay);
            st = cosy_hift_inference_trace(hift, mel.f32, F, NULL, 0, &rng, wav, source, &tr);
            if (st == COSY_OK) st = replay.status;
            if (st == COSY_OK) {
                golden_check(ctx, "hift_ns_f0", tr.f0, F);
                golden_check(ctx, "hift_ns_source", source, T);
                golden_check(ctx, "hift_ns_wav", wav, T);
                int64_t s_f0[2] = {1, F}, s_wav[2] = {1, T}, s_col[3] = {1, T, 1}, s_row[3] = {1, 1, T}, s_spec[3] = {1, B, L};
                golden_dump(ctx, "hift_ns_f0", tr.f0, s_f0, 2);
                golden_dump(ctx, "hift_ns_wav", wav, s_wav, 2);
                golden_dump(ctx, "hift_ns_source", source, s_row, 3);
                golden_dump(ctx, "hift_ns_source_raw", tr.source_raw, s_col, 3);
                golden_dump(ctx, "hift_ns_uv", tr.uv, s_col, 3);
                golden_dump(ctx, "hift_ns_stft_real", tr.stft_real, s_spec, 3);
                golden_dump(ctx, "hift_ns_stft_imag", tr.stft_imag, s_spec, 3);
                golden_dump(ctx, "hift_ns_magnitude", tr.magnitude, s_spec, 3);
                golden_dump(ctx, "hift_ns_phase", tr.phase, s_spec, 3);
                golden_dump(ctx, "hift_ns_istft", tr.istft, s_wav, 2);
                if (ctx->verbose)
                    printf("    timings: f0 %.1f ms, source %.1f ms, generator %.1f ms, istft %.1f ms\n", tr.f0_ms, tr.source_ms,
                           tr.generator_ms, tr.istft_ms);
            }
        }
    }
    free(buf);
    npy_free(&mel);
    npy_free(&d0);
    npy_free(&d1);
    npy_free(&d2);
    return st;
}
