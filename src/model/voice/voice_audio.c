/*
 * voice_audio.c — a voice from a prompt recording and its transcript (cosy_voice_from_audio), as the
 * official zero-shot frontend makes one (cosyvoice/cli/frontend.py frontend_zero_shot):
 *   prompt text   = the transcript normalised without splitting (text_normalize(split=False)), then
 *                   the model's Qwen2 tokenizer;
 *   speech tokens = S3TokenizerV2 on the 16 kHz whisper log-mel;
 *   embedding     = CAM++ on the mean-normalised 16 kHz kaldi fbank, unnormalised (the flow normalises);
 *                   the same vector for the LM and the flow;
 *   prompt mel    = the 24 kHz Matcha mel;
 *   then the 2:1 alignment: the first L = min(F24 / 2, tokens) tokens and the first 2 L mel frames, and
 *   the same token list for the LM and the flow.
 * CAM++ and the tokenizer come from the model file (`cosy convert` of a directory with campplus.onnx and
 * speech_tokenizer_v2.onnx).
 */
#include "cosy.h"

#include "core/error.h"
#include "model/voice/campplus.h"
#include "model/model.h"
#include "model/voice/s3tokenizer.h"
#include "model/voice/voice.h"
#include "model/voice/voice_prompt.h"
#include "text/normalize.h"
#include "text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cosy_status need_networks(cosy_model *model, const cosy_campplus **cam, const cosy_s3tokenizer **tok)
{
    cosy_status a = cosy_campplus_get(model, cam);
    cosy_status b = a == COSY_OK || a == COSY_ERR_MISSING ? cosy_s3tokenizer_get(model, tok) : COSY_OK;
    if (a != COSY_OK && a != COSY_ERR_MISSING) return a;
    if (b != COSY_OK && b != COSY_ERR_MISSING) return b;
    if (a == COSY_OK && b == COSY_OK) return COSY_OK;
    return cosy_error(COSY_ERR_MISSING,
                      "%s: the model file has no %s: making a voice from audio needs both; convert the model from a directory that has "
                      "campplus.onnx and speech_tokenizer_v2.onnx (every CosyVoice2 release ships them)",
                      model->file.file.path, a != COSY_OK && b != COSY_OK ? "CAM++ and no speech tokenizer"
                                             : a != COSY_OK                ? "CAM++ (campplus.onnx)"
                                                                           : "speech tokenizer (speech_tokenizer_v2.onnx)");
}

static cosy_status prompt_text_ids(cosy_model *model, const char *transcript, cosy_token_ids *ids)
{
    const cosy_tokenizer *tok;
    COSY_TRY(cosy_tokenizer_get(model, &tok));
    cosy_text_list norm;
    memset(&norm, 0, sizeof norm);
    /* frontend_zero_shot: text_normalize(prompt_text, split=False), wetext included as the official install */
    cosy_status st = cosy_text_normalize_tn(tok, transcript, strlen(transcript), 0, COSY_TEXT_TN_WETEXT, &norm);
    if (st != COSY_OK) return cosy_error_prefix(st, "transcript");
    const char *text = norm.n ? norm.items[0] : "";
    st = cosy_tokenizer_encode(tok, text, strlen(text), ids);
    if (st != COSY_OK) cosy_error_prefix(st, "transcript");
    else if (ids->n == 0) st = cosy_error(COSY_ERR_INVALID_ARG, "transcript: '%s' gives no text tokens", transcript);
    cosy_text_list_free(&norm);
    return st;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (!strchr(" \t\r\n\v\f", *s)) return 0;
    return 1;
}

static cosy_status from_features(cosy_model *model, const char *name, const char *transcript, const float *samples, int64_t n,
                                 int sample_rate, const char *path, cosy_voice **out)
{
    *out = NULL;
    if (!transcript || blank(transcript))
        return cosy_error(COSY_ERR_INVALID_ARG, "a voice from audio needs the transcript of the recording (what is said in it)%s",
                          transcript ? ": it is empty" : "");
    const cosy_campplus *cam = NULL;
    const cosy_s3tokenizer *s3 = NULL;
    COSY_TRY(need_networks(model, &cam, &s3));
    cosy_token_ids ids;
    memset(&ids, 0, sizeof ids);
    COSY_TRY(prompt_text_ids(model, transcript, &ids));

    const cosy_prompt_mel_params melp = cosy_prompt_mel_params_from_hparams(&model->hp);
    cosy_prompt_features f;
    memset(&f, 0, sizeof f);
    cosy_status st = path ? cosy_prompt_features_from_file(path, &melp, &f)
                          : cosy_prompt_features_compute(samples, n, sample_rate, name, &melp, &f);
    const cosy_s3tokenizer_hparams *thp = cosy_s3tokenizer_hp(s3);
    if (st == COSY_OK && thp->n_mels != COSY_WHISPER_MELS)
        st = cosy_error(COSY_ERR_UNSUPPORTED, "the model's speech tokenizer takes %d mel bins, the frontend computes %d", thp->n_mels,
                        COSY_WHISPER_MELS);
    cosy_voice *v = st == COSY_OK ? cosy_voice_alloc(name) : NULL;
    if (st == COSY_OK && !v) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    int32_t *tokens = NULL;
    const int n_tok = st == COSY_OK ? cosy_s3tokenizer_n_tokens(f.n_whisper) : 0;
    if (st == COSY_OK && !(tokens = malloc(sizeof(int32_t) * (size_t)(n_tok + 1)))) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    if (st == COSY_OK) st = cosy_s3tokenizer_forward(s3, model->pool, f.whisper_mel, f.n_whisper, f.n_whisper, tokens, NULL, NULL);
    const int emb = st == COSY_OK ? cosy_campplus_hp((cosy_campplus *)cam)->embedding_size : 0;
    if (st == COSY_OK) {
        v->embed_dim = v->n_llm_embedding = emb;
        v->flow_embedding = malloc(sizeof(float) * (size_t)emb);
        v->llm_embedding = malloc(sizeof(float) * (size_t)emb);
        if (!v->flow_embedding || !v->llm_embedding) st = cosy_error(COSY_ERR_NOMEM, "out of memory");
    }
    if (st == COSY_OK) st = cosy_campplus_forward(cam, model->pool, f.campplus_input, f.n_fbank, v->flow_embedding, NULL, NULL);
    if (st == COSY_OK) {
        memcpy(v->llm_embedding, v->flow_embedding, sizeof(float) * (size_t)emb);
        /* the 2:1 alignment */
        const int L = cosy_prompt_align(f.n_speech_feat, n_tok);
        if (L < 1) st = cosy_error(COSY_ERR_INVALID_ARG, "%s: the recording is too short: it gives no prompt speech token", name);
        else {
            v->n_llm_prompt_tokens = v->n_flow_prompt_tokens = L;
            v->llm_prompt_tokens = malloc(sizeof(int32_t) * (size_t)L);
            v->flow_prompt_tokens = malloc(sizeof(int32_t) * (size_t)L);
            v->n_mels = f.n_mels;
            v->n_prompt_frames = 2 * L;
            v->prompt_feat = malloc(sizeof(float) * (size_t)(2 * L) * (size_t)f.n_mels);
            v->prompt_text = malloc(sizeof(int32_t) * ids.n);
            v->transcript = strdup(transcript);
            if (!v->llm_prompt_tokens || !v->flow_prompt_tokens || !v->prompt_feat || !v->prompt_text || !v->transcript)
                st = cosy_error(COSY_ERR_NOMEM, "out of memory");
            else {
                memcpy(v->llm_prompt_tokens, tokens, sizeof(int32_t) * (size_t)L);
                memcpy(v->flow_prompt_tokens, tokens, sizeof(int32_t) * (size_t)L);
                memcpy(v->prompt_feat, f.speech_feat, sizeof(float) * (size_t)(2 * L) * (size_t)f.n_mels);
                memcpy(v->prompt_text, ids.ids, sizeof(int32_t) * ids.n);
                v->n_prompt_text = (int)ids.n;
            }
        }
    }
    if (st == COSY_OK) st = cosy_voice_validate(v, model);
    free(tokens);
    cosy_token_ids_free(&ids);
    cosy_prompt_features_free(&f);
    if (st != COSY_OK) {
        cosy_voice_free(v);
        return st;
    }
    *out = v;
    return COSY_OK;
}

cosy_status cosy_voice_from_audio(cosy_model *model, const float *samples, int64_t n, int sample_rate, const char *transcript,
                                  cosy_voice **out)
{
    if (!out) return cosy_error(COSY_ERR_INVALID_ARG, "cosy_voice_from_audio: out is NULL");
    *out = NULL;
    if (!model || (!samples && n > 0)) return cosy_error(COSY_ERR_INVALID_ARG, "cosy_voice_from_audio: model or samples is NULL");
    return from_features(model, "voice", transcript, samples, n, sample_rate, NULL, out);
}

cosy_status cosy_voice_from_audio_file(cosy_model *model, const char *path, const char *transcript, cosy_voice **out)
{
    if (!out) return cosy_error(COSY_ERR_INVALID_ARG, "cosy_voice_from_audio_file: out is NULL");
    *out = NULL;
    if (!model || !path) return cosy_error(COSY_ERR_INVALID_ARG, "cosy_voice_from_audio_file: model or path is NULL");
    /* the voice is named after the file: /a/b/alice.wav -> alice */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[256];
    snprintf(name, sizeof name, "%s", *base ? base : "voice");
    char *dot = strrchr(name, '.');
    if (dot && dot != name) *dot = '\0';
    return from_features(model, name, transcript, NULL, 0, 0, path, out);
}
