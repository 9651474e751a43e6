/* test_wav_voice.c — WAVE reading/writing (formats, streaming headers, damage) and voice files
 * (round trip, validation against a model, the fixture's prompt data). */
#include "test.h"

#include "io/npy.h"
#include "io/wav.h"
#include "model/model.h"
#include "model/voice/voice.h"

#include <unistd.h>

static void test_wav(void)
{
    float s[1000];
    for (int i = 0; i < 1000; i++) s[i] = sinf((float)i * 0.05f) * 0.9f;
    s[10] = 1.5f;   /* clipped */
    s[11] = -1.5f;
    cosy_wav_writer w;
    CHECK_OK(cosy_wav_writer_open(&w, test_tmp("a.wav"), 24000, COSY_WAV_PCM16));
    CHECK_OK(cosy_wav_writer_write(&w, s, 600));
    CHECK_OK(cosy_wav_writer_write(&w, s + 600, 400));
    CHECK_OK(cosy_wav_writer_close(&w));
    cosy_wav r;
    CHECK_OK(cosy_wav_read(test_tmp("a.wav"), &r));
    CHECK(r.n_samples == 1000 && r.sample_rate == 24000 && r.channels == 1);
    double worst = 0;
    for (int i = 0; i < 1000; i++)
        if (i != 10 && i != 11) worst = fmax(worst, fabs(r.samples[i] - s[i]));
    CHECK(worst <= 1.5 / 32767.0); /* written x32767 and rounded, read /32768 as soundfile does */
    CHECK(fabsf(r.samples[10] - 32767.0f / 32768.0f) < 1e-6f && r.samples[11] == -1.0f);
    cosy_wav_free(&r);

    CHECK_OK(cosy_wav_writer_open(&w, test_tmp("f.wav"), 16000, COSY_WAV_F32));
    CHECK_OK(cosy_wav_writer_write(&w, s, 1000));
    CHECK_OK(cosy_wav_writer_close(&w));
    CHECK_OK(cosy_wav_read(test_tmp("f.wav"), &r));
    CHECK(r.n_samples == 1000 && r.sample_rate == 16000 && test_max_abs_diff(r.samples, s, 1000) == 0);
    cosy_wav_free(&r);

    /* streamed to a pipe: sizes unknown in the header, still readable */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cat > '%s'", test_tmp("pipe.wav"));
    FILE *p = popen(cmd, "w");
    CHECK_OK(cosy_wav_writer_attach(&w, p, 24000, COSY_WAV_PCM16));
    CHECK(!w.seekable);
    CHECK_OK(cosy_wav_writer_write(&w, s, 500));
    CHECK_OK(cosy_wav_writer_close(&w));
    pclose(p);
    CHECK_OK(cosy_wav_read(test_tmp("pipe.wav"), &r));
    CHECK(r.n_samples == 500);
    cosy_wav_free(&r);

    /* stereo 24-bit, averaged to mono */
    unsigned char buf[44 + 6 * 3];
    cosy_wav_header(buf, 22050, COSY_WAV_PCM16, 0);
    buf[20] = 1; buf[22] = 2; /* PCM, 2 channels */
    buf[32] = 6; buf[34] = 24;
    buf[40] = 18; buf[41] = 0; buf[42] = 0; buf[43] = 0;
    const int32_t vals[6] = {4194304, -4194304, 8388607, 8388607, -8388608, 0};
    for (int i = 0; i < 6; i++) {
        uint32_t u = (uint32_t)vals[i];
        buf[44 + 3 * i] = (unsigned char)u;
        buf[45 + 3 * i] = (unsigned char)(u >> 8);
        buf[46 + 3 * i] = (unsigned char)(u >> 16);
    }
    CHECK_OK(cosy_wav_parse(buf, sizeof buf, "stereo", &r));
    CHECK(r.n_samples == 3 && r.channels == 2 && r.sample_rate == 22050);
    CHECK(r.samples[0] == 0.0f && fabsf(r.samples[1] - 8388607.0f / 8388608.0f) < 1e-7f && r.samples[2] == -0.5f);
    cosy_wav_free(&r);

    CHECK_FAILS(cosy_wav_parse("RIFF1234WAVX", 12, "x.wav", &r), COSY_ERR_FORMAT, "x.wav: not a RIFF/WAVE file");
    CHECK_FAILS(cosy_wav_parse(buf, 30, "cut.wav", &r), COSY_ERR_FORMAT, "cut.wav");
    buf[20] = 2; /* ADPCM */
    CHECK_FAILS(cosy_wav_parse(buf, sizeof buf, "adpcm.wav", &r), COSY_ERR_UNSUPPORTED, "WAVE format 2");
    CHECK_FAILS(cosy_wav_read(test_tmp("none.wav"), &r), COSY_ERR_MISSING, "none.wav");
}

static void test_voice(void)
{
    cosy_convert_params cp = cosy_convert_default_params();
    CHECK_OK(cosy_convert(test_data("cv2-tiny/model"), test_tmp("voice-model.gguf"), &cp));
    cosy_model *m = NULL;
    CHECK_OK(cosy_model_load(test_tmp("voice-model.gguf"), NULL, &m));
    if (!m) return;
    npy_array feat, emb, tok;
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/prompt_feat.npy"), &feat));
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/embedding.npy"), &emb));
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/prompt_speech_token.npy"), &tok));
    cosy_voice *v = cosy_voice_alloc("fixture");
    v->n_flow_prompt_tokens = (int)tok.numel;
    v->flow_prompt_tokens = malloc(sizeof(int32_t) * (size_t)tok.numel);
    for (int i = 0; i < (int)tok.numel; i++) v->flow_prompt_tokens[i] = (int32_t)tok.i64[i];
    v->n_prompt_frames = 40;
    v->n_mels = 80;
    v->prompt_feat = feat.f32;
    feat.f32 = NULL;
    v->embed_dim = 192;
    v->flow_embedding = emb.f32;
    emb.f32 = NULL;
    CHECK_OK(cosy_voice_validate(v, m));
    CHECK_OK(cosy_voice_save(v, test_tmp("fixture.voice")));
    cosy_voice *back = NULL;
    CHECK_OK(cosy_voice_load(test_tmp("fixture.voice"), &back));
    if (back) {
        CHECK(!strcmp(cosy_voice_name(back), "fixture") && back->n_flow_prompt_tokens == 20 && back->n_prompt_frames == 40);
        CHECK(back->flow_prompt_tokens[19] == v->flow_prompt_tokens[19] && back->n_prompt_text == 0 && !back->llm_embedding);
        CHECK(test_max_abs_diff(back->prompt_feat, v->prompt_feat, 40 * 80) == 0);
        CHECK(test_max_abs_diff(back->flow_embedding, v->flow_embedding, 192) == 0);
    }
    cosy_voice_free(back);
    /* validation */
    v->flow_prompt_tokens[3] = 6561;
    CHECK_FAILS(cosy_voice_validate(v, m), COSY_ERR_INVALID_ARG, "flow prompt speech token 6561 at position 3");
    v->flow_prompt_tokens[3] = 5;
    v->n_prompt_frames = 39;
    CHECK_FAILS(cosy_voice_validate(v, m), COSY_ERR_INVALID_ARG, "39 frames but 20 flow prompt tokens need 40");
    v->n_prompt_frames = 40;
    v->embed_dim = 191;
    CHECK_FAILS(cosy_voice_validate(v, m), COSY_ERR_INVALID_ARG, "191 values, the model needs 192");
    v->embed_dim = 192;
    v->flow_embedding[7] = NAN;
    CHECK_FAILS(cosy_voice_validate(v, m), COSY_ERR_INVALID_ARG, "non-finite");
    cosy_voice_free(v);
    CHECK_FAILS(cosy_voice_load(test_tmp("voice-model.gguf"), &back), COSY_ERR_FORMAT, "not a voice file");
    CHECK_FAILS(cosy_voice_from_speaker(m, "nobody", &back), COSY_ERR_MISSING, "speaker 'nobody'");
    npy_free(&feat);
    npy_free(&emb);
    npy_free(&tok);
    cosy_model_free(m);
}

int main(void)
{
    test_wav();
    test_voice();
    return test_finish("test_wav_voice");
}
