/*
 * bench_t2w.c — `cosy bench token2wav`: the streaming token2wav object (stream/token2wav.h) as the
 * session engine drives it, on random speech tokens and a random voice: every call of a chunk
 * schedule over S seconds of audio, with its flow and HiFT milliseconds, and both per 25 tokens
 * (1 s of audio) — the per-chunk cost at the model's real sizes.
 */
#include "cli.h"
#include "core/clock.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "model/model.h"
#include "model/voice.h"
#include "stream/schedule.h"
#include "stream/token2wav.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_t2w(int argc, char **argv);

static void help(void)
{
    printf("usage: cosy bench token2wav -m MODEL.gguf [--prompt P] [--seconds S] [--strategy default|equal|exponential]\n"
           "                            [--chunk N] [--dtype f32|bf16] [--threads N] [--stateless-flow] [--reference-final]\n\n"
           "Runs every call of the chunk schedule over S seconds (default 10) of random speech tokens after a random\n"
           "prompt of P tokens (default 75 = 3 s), through cosy_token2wav_call (flow + HiFT with its caches), and\n"
           "prints each call's flow and HiFT milliseconds, also per 25 tokens (1 s of audio).\n");
}

int bench_t2w(int argc, char **argv)
{
    const char *path = NULL;
    long long prompt = 75, seconds = 10, threads = 0, chunk = 25;
    cosy_dtype flow_dtype = COSY_DTYPE_F32;
    cosy_chunk_strategy strategy = COSY_CHUNK_DEFAULT;
    cosy_token2wav_params tp = cosy_token2wav_default_params();
    int strategy_index = 0; /* the order of cosy_chunk_strategy */
    const cli_option opts[] = {
        CLI_OPTION_MODEL(&path), CLI_OPTION_THREADS(&threads),
        {"--prompt", NULL, CLI_OPT_INT, &prompt, 0, 1000, NULL},
        {"--seconds", NULL, CLI_OPT_INT, &seconds, 1, 300, NULL},
        {"--chunk", NULL, CLI_OPT_INT, &chunk, 1, 1000, NULL},
        {"--dtype", NULL, CLI_OPT_DTYPE, &flow_dtype, 0, 0, "f32,bf16"},
        {"--strategy", NULL, CLI_OPT_CHOICE, &strategy_index, 0, 0, "default,equal,exponential"},
        {"--stateless-flow", NULL, CLI_OPT_FLAG, &tp.stateless_flow, 0, 0, NULL},
        {"--reference-final", NULL, CLI_OPT_FLAG, &tp.reference_final, 0, 0, NULL},
        CLI_OPTION_END,
    };
    int rc = cli_parse_options("bench", argc, argv, opts, NULL, help);
    if (rc != CLI_GO_ON) return rc;
    strategy = (cosy_chunk_strategy)strategy_index;
    if (!path) return cli_usage_error("bench", "a model file is required (-m MODEL.gguf)");

    cosy_model_params mp = cosy_model_default_params();
    mp.n_threads = (int)threads;
    mp.flow_dtype = flow_dtype;
    cosy_model *model = NULL;
    cosy_status st = cosy_model_load(path, &mp, &model);
    if (st != COSY_OK) return cli_fail("bench", st);
    const cosy_hparams *hp = &model->hp;
    const int P = (int)prompt, la = hp->pre_lookahead_len, N = (int)seconds * hp->token_frame_rate;
    cosy_voice *v = cosy_voice_alloc("bench");
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)N);
    if (!v || !tok) {
        cosy_voice_free(v);
        free(tok);
        cosy_model_free(model);
        fprintf(stderr, "bench: out of memory\n");
        return 1;
    }
    uint32_t seed = 4242;
#define NEXT() (seed = seed * 1664525u + 1013904223u, seed >> 8)
    v->n_flow_prompt_tokens = P;
    v->flow_prompt_tokens = malloc(sizeof(int32_t) * (size_t)(P + 1));
    v->n_mels = hp->flow_output_size;
    v->n_prompt_frames = hp->token_mel_ratio * P;
    v->prompt_feat = malloc(sizeof(float) * (size_t)(v->n_prompt_frames * v->n_mels + 1));
    v->embed_dim = hp->spk_embed_dim;
    v->flow_embedding = malloc(sizeof(float) * (size_t)v->embed_dim);
    if (!v->flow_prompt_tokens || !v->prompt_feat || !v->flow_embedding) st = cosy_error(COSY_ERR_NOMEM, "bench: out of memory");
    for (int i = 0; st == COSY_OK && i < P; i++) v->flow_prompt_tokens[i] = (int32_t)(NEXT() % (uint32_t)hp->flow_vocab);
    for (int i = 0; st == COSY_OK && i < v->n_prompt_frames * v->n_mels; i++)
        v->prompt_feat[i] = -6.0f + 6.0f * (float)(NEXT() & 0xffff) / 65536.0f;
    for (int i = 0; st == COSY_OK && i < v->embed_dim; i++) v->flow_embedding[i] = (float)(NEXT() & 0xffff) / 32768.0f - 1.0f;
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(NEXT() % (uint32_t)hp->flow_vocab);

    cosy_token2wav *t2w = NULL;
    if (st == COSY_OK) st = cosy_token2wav_create(model, v, &tp, &t2w);
    cosy_schedule sched;
    if (st == COSY_OK) st = cosy_schedule_init(&sched, strategy, (int)chunk, 0, 0, la, P);
    if (st == COSY_OK) {
        printf("token2wav: %s, %s, %d threads; prompt %d tokens, %lld s of tokens, %s flow%s, flow products in %s\n", path, cosy_cpu_model_name(),
               cosy_pool_size(model->pool), P, seconds, tp.stateless_flow ? "stateless" : "incremental",
               tp.reference_final ? ", reference final call" : "", cosy_dtype_name(cosy_model_flow_dtype(model)));
        double t0 = cosy_now_ms();
        st = cosy_token2wav_prepare(t2w);
        printf("  voice's prompt work: %.0f ms (done while the LM prefills in a session)\n", cosy_now_ms() - t0);
        printf("  %4s %6s %6s %5s %9s %9s %12s %12s\n", "call", "offset", "end", "new", "flow ms", "hift ms", "flow ms/25t", "hift ms/25t");
    }
    double flow_total = 0, hift_total = 0;
    int calls = 0;
    cosy_schedule_call call;
    while (st == COSY_OK && cosy_schedule_next(&sched, N, 1, &call)) {
        const float *audio;
        int n_audio;
        st = cosy_token2wav_call(t2w, tok, call.end, call.offset, call.finalize, &audio, &n_audio);
        if (st != COSY_OK) break;
        cosy_t2w_call_info info;
        cosy_token2wav_last_info(t2w, &info);
        int fresh = info.mel_frames / hp->token_mel_ratio;
        printf("  %4d %6d %6d %5d %9.1f %9.1f %12.1f %12.1f%s\n", calls, call.offset, call.end, fresh, info.flow_ms, info.vocoder_ms,
               fresh ? info.flow_ms * 25.0 / fresh : 0.0, fresh ? info.vocoder_ms * 25.0 / fresh : 0.0, call.finalize ? "  final" : "");
        flow_total += info.flow_ms;
        hift_total += info.vocoder_ms;
        calls++;
    }
    if (st == COSY_OK)
        printf("  %d calls for %.2f s of audio: flow %.0f ms (%.1f ms per 25 tokens), HiFT %.0f ms (%.1f ms per 25 tokens), RTF %.3f\n", calls,
               N / (double)hp->token_frame_rate, flow_total, flow_total * 25.0 / N, hift_total, hift_total * 25.0 / N,
               (flow_total + hift_total) / 1000.0 / (N / (double)hp->token_frame_rate));
    cosy_token2wav_free(t2w);
    cosy_voice_free(v);
    free(tok);
    cosy_model_free(model);
    if (st != COSY_OK) return cli_fail("bench", st);
    return 0;
}
