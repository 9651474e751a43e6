/*
 * cosy.h — the one public header of libcosy, a streaming CosyVoice2 text-to-speech engine.
 *
 * Conventions (as in whisper.cpp / llama.cpp): opaque handles, `cosy_*_default_params()` then
 * override the fields you care about, every fallible call returns a cosy_status (0 = ok) and,
 * on failure, leaves a one-line human message in cosy_last_error() (per thread) naming what was
 * wrong and where (file, tensor, key, byte offset, request field).
 */
#ifndef COSY_H
#define COSY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COSY_VERSION "0.1.0"

typedef enum {
    COSY_OK = 0,
    COSY_ERR_INVALID_ARG,  /* a caller-supplied value is out of range or malformed */
    COSY_ERR_IO,           /* open/read/write/mmap failed */
    COSY_ERR_FORMAT,       /* a file is truncated, corrupt, or not what it claims to be */
    COSY_ERR_UNSUPPORTED,  /* a valid input uses a feature we do not implement */
    COSY_ERR_MISSING,      /* a required file, key or tensor is absent */
    COSY_ERR_SHAPE,        /* a tensor's shape disagrees with the hyperparameters */
    COSY_ERR_NOMEM,        /* allocation failed */
    COSY_ERR_CANCELLED,    /* the caller cancelled the operation */
    COSY_ERR_INTERNAL,     /* a bug: an invariant did not hold */
} cosy_status;

/* Short name of a status code ("format error", ...). Never NULL. */
const char *cosy_strerror(cosy_status status);
/* The detailed message of the last failure on this thread ("" if none). */
const char *cosy_last_error(void);

/* ---- weight types ---------------------------------------------------------------------- */

/* Values are the GGUF/ggml type ids, so our model files open in other GGUF tools. */
typedef enum {
    COSY_DTYPE_AUTO = -1,  /* parameters only: "choose for me" (see the fields that accept it) */
    COSY_DTYPE_F32  = 0,
    COSY_DTYPE_F16  = 1,
    COSY_DTYPE_Q4_0 = 2,   /* blocks of 32 4-bit values with one f16 scale (ggml Q4_0 layout) */
    COSY_DTYPE_Q8_0 = 8,   /* blocks of 32 int8 with one f16 scale (ggml Q8_0 layout) */
    COSY_DTYPE_I8   = 24,
    COSY_DTYPE_I16  = 25,
    COSY_DTYPE_I32  = 26,
    COSY_DTYPE_I64  = 27,
    COSY_DTYPE_F64  = 28,
    COSY_DTYPE_BF16 = 30,
} cosy_dtype;

const char *cosy_dtype_name(cosy_dtype dtype);
/* Parses "auto", "f32", "f16", "bf16", "q8_0", "q4_0"; returns 0 on success. */
int cosy_dtype_from_name(const char *name, cosy_dtype *out);

/* ---- conversion from the official checkpoint directory ---------------------------------- */

typedef struct {
    cosy_dtype weight_dtype;  /* storage type of matrices and conv kernels (f32, f16, bf16) */
    cosy_dtype lm_dtype;      /* per-module storage types of the matrices, overriding weight_dtype: */
    cosy_dtype flow_dtype;    /* the types they run in stay mapped from the file, so a model stored */
    cosy_dtype hift_dtype;    /* that way loads at once (AUTO, the default: weight_dtype) */
    int verbose;              /* print one line per stage to stderr */
    const char *tokenizer_dir;/* random models only: take the vocabulary from this directory
                                 (vocab.json + merges.txt, or tokenizer.json) instead of a
                                 byte-level one */
} cosy_convert_params;

cosy_convert_params cosy_convert_default_params(void);

/* Reads MODEL_DIR (cosyvoice2.yaml, llm.pt, flow.pt, hift.pt, CosyVoice-BlankEN/, optional
 * spk2info.pt) and writes one GGUF model file. Writes to a temporary file and renames it at
 * the end, so a failure never leaves a partial output behind. */
cosy_status cosy_convert(const char *model_dir, const char *out_path, const cosy_convert_params *params);

/* Writes a model with the shapes of a known configuration ("cosyvoice2-0.5b", "cv2-tiny")
 * and seeded random weights, for benchmarks. */
cosy_status cosy_convert_random(const char *config_name, uint64_t seed, const char *out_path,
                                const cosy_convert_params *params);

/* ---- models ----------------------------------------------------------------------------- */

typedef struct cosy_model cosy_model;
/* A voice: prompt text tokens, prompt speech tokens, prompt mel and speaker embedding of one
 * speaker, computed once (see `cosy voice` and the functions below). */
typedef struct cosy_voice cosy_voice;

typedef struct {
    cosy_dtype lm_dtype;      /* run-time type of the LM matrices: f32 (reference), bf16, q8_0, q4_0;
                                 AUTO (default): the type the file stores them in if that is bf16, q8_0
                                 or q4_0 (used in place from the map), else f32 */
    cosy_dtype flow_dtype;    /* the flow's weight products: f32 (reference) or bf16 (where the CPU
                                 has bf16 instructions, else f32); AUTO (default); see cosy_model_flow_dtype */
    cosy_dtype hift_dtype;    /* the vocoder's convolutions: f32 (reference) or bf16 (where the CPU has
                                 AMX or AVX512-BF16, else f32); AUTO (default): bf16 where it is faster
                                 (AMX; AVX512-BF16 on AMD, not Intel), see cosy_model_hift_dtype */
    int n_threads;            /* 0 = number of online cores */
    int voice_cache_mb;       /* the flow's state over recently used voices' prompts, computed once and
                                 reused by every later request with the same voice (default 1024 MB; least
                                 recently used out first; 0: none, every request recomputes it) */
} cosy_model_params;

cosy_model_params cosy_model_default_params(void);
cosy_status cosy_model_load(const char *path, const cosy_model_params *params, cosy_model **out);
/* Builds every module's run-time state now (LM weights converted to lm_dtype, the flow's and HiFT's
 * packed weights, tokenizer) instead of during the first session, whose latency would include it. */
cosy_status cosy_model_prepare(cosy_model *model);
/* The type the flow's products actually run in once loaded (bf16 only where AMX is available). */
cosy_dtype cosy_model_flow_dtype(cosy_model *model);
/* The type the vocoder's convolutions actually run in once loaded (bf16 only where the CPU has AMX or
 * AVX512-BF16; builds the vocoder if it is not yet). */
cosy_dtype cosy_model_hift_dtype(cosy_model *model);
void cosy_model_free(cosy_model *model);

/* Writes a human-readable summary (hyperparameters, tensor count, bytes per dtype,
 * tokenizer size, speakers) to the given FILE* (passed as void* to keep stdio out of here). */
void cosy_model_print_info(const cosy_model *model, void *file);

/* ---- streaming ------------------------------------------------------------------------ */

/* How streaming token2wav cuts the speech-token stream into chunks (src/stream/schedule.h). */
typedef enum {
    COSY_CHUNK_DEFAULT = 0,     /* CosyVoice2: 25 tokens aligned with the prompt, x2 per chunk up to 100 */
    COSY_CHUNK_EQUAL = 1,       /* fixed chunks of chunk_tokens */
    COSY_CHUNK_EXPONENTIAL = 2, /* chunk_tokens x 2^i */
} cosy_chunk_strategy;

/* Per-stage timings of a request. */
typedef struct {
    double frontend_ms;      /* text normalisation, sentence splitting, tokenisation */
    double lm_prefill_ms;    /* LM forwards of more than one position */
    double lm_decode_ms;     /* LM one-token forwards and sampling */
    double flow_ms;          /* flow decoder (token encoder + CFM) */
    double vocoder_ms;       /* HiFT */
    double first_audio_ms;   /* from session creation to the first audio sample handed out */
    double total_ms;         /* from session creation to the last sample */
    double audio_seconds;    /* audio produced */
    double rtf;              /* total_ms / 1000 / audio_seconds (0 if no audio) */
    int text_tokens, speech_tokens, chunks, sentences;
    int silent_filter;       /* CosyVoice3: silent ids the LM-to-token2wav filter watches (11; CosyVoice2: 0) */
    int silent_dropped;      /* speech tokens that filter kept from token2wav (a silent id after 5 in a row) */
} cosy_timings;

/* ---- token2wav: speech tokens to audio, as CosyVoice2Model / CosyVoice3Model.token2wav -- */

/* For clients that produce speech tokens elsewhere (Triton-style calls): each call gets every
 * token of the utterance so far, the token offset from which audio is wanted, and whether it is
 * the last call. Non-final calls need pre_lookahead_len (3) tokens past the audio they emit. */
typedef struct cosy_token2wav cosy_token2wav;

typedef struct {
    int reference_final;   /* final call with full attention over the whole utterance, as the
                              official code (recomputes everything); default: chunk-causal */
    int stateless_flow;    /* recompute the flow over all tokens at every call (the reference's
                              quadratic path); default: incremental, linear cost, same mel */
    int context_seconds;   /* bounds a streamed utterance's memory: once it is longer, the flow attends
                              to the voice's prompt and the last context_seconds of it (whole 1-s
                              chunks) instead of every earlier frame as the reference does, and frees
                              the rest (~112 MB per second of context in bf16, ~225 MB in f32). Default
                              10; 0 = unlimited (the reference). Shorter utterances are unaffected. */
    int overlap_tokens;    /* audio re-made and cross-faded at every join: the vocoder re-covers the
                              last max(4, overlap_tokens) tokens of the previous chunk (the reference:
                              8 mel frames = 4 tokens). Calls may rewind token_offset into audio
                              already emitted; it is never emitted twice. */
    uint64_t seed;         /* HiFT's noise (torch.manual_seed semantics) */
    int chunk_causal_final; /* CosyVoice3: the final call of a streamed utterance chunk-causal (flow
                              streaming=True, finalize=True: linear cost, incremental) instead of the
                              official full attention over all tokens (the default for CosyVoice3, whose
                              reference_final is therefore implied). CosyVoice2 ignores it (its default
                              final call is already chunk-causal; see reference_final). CosyVoice3 also
                              ignores context_seconds (its flow stream keeps every chunk) and refuses
                              overlap_tokens (it has no cross-fade). */
} cosy_token2wav_params;

cosy_token2wav_params cosy_token2wav_default_params(void);
cosy_status cosy_token2wav_create(cosy_model *model, const cosy_voice *voice, const cosy_token2wav_params *params,
                                  cosy_token2wav **out);
/* The audio (24 kHz mono float) stays valid until the next call. A call with finalize ends the
 * utterance; the next call starts a new one. */
cosy_status cosy_token2wav_call(cosy_token2wav *t2w, const int32_t *tokens, int n, int token_offset, int finalize,
                                const float **audio, int *n_samples);
void cosy_token2wav_reset(cosy_token2wav *t2w);
void cosy_token2wav_free(cosy_token2wav *t2w);

int cosy_model_sample_rate(const cosy_model *model);

/* ---- sessions: text in, audio out --------------------------------------------------------- */

/* CosyVoice2's inference modes (cosyvoice/cli/cosyvoice.py). They differ only in what the voice
 * contributes: zero-shot uses its transcript and speech tokens as the LM prompt; cross-lingual
 * gives the LM no prompt (the voice reaches only the flow); instruct gives the LM the instruction
 * ending in <|endofprompt|>; SFT uses a built-in speaker (no prompt audio at all). */
typedef enum {
    COSY_MODE_ZERO_SHOT = 0,
    COSY_MODE_CROSS_LINGUAL = 1,
    COSY_MODE_INSTRUCT = 2,
    COSY_MODE_SFT = 3,
} cosy_mode;

typedef struct cosy_session cosy_session;

/* Audio as it is produced (24 kHz mono float in [-1, 1]), called on the engine's thread. */
typedef void (*cosy_audio_fn)(void *user, const float *samples, int n_samples);

typedef struct {
    cosy_mode mode;
    const char *instruct;        /* COSY_MODE_INSTRUCT: the instruction (copied) */
    int stream;                  /* 1: audio in chunks while tokens are produced; 0: one chunk per sentence */
    int bistream;                /* text arrives in pieces (one push per piece), interleaved 5:15 with
                                    speech tokens; no normalisation or sentence splitting, as the reference
                                    does for a text generator */
    int text_frontend;           /* normalise and split text (default 1; ignored in bistream) */
    int text_no_wetext;          /* 1: normalise as an install without wetext does (--text-frontend none);
                                    default 0: WeTextProcessing's TN first, as the official install (wetext) */
    cosy_chunk_strategy strategy;
    int chunk_tokens;            /* default 25 (the flow's static chunk) */
    int overlap_tokens;          /* equal/exponential only: each window starts this many tokens before
                                    the previous one ended, and the vocoder cross-fades over them
                                    (see cosy_token2wav_params) */
    int max_hop_tokens;          /* 0: the strategy's default */
    int first_chunk_tokens;      /* > 0: a small first chunk of this many tokens (+3 look-ahead) before the
                                    strategy's schedule, as NVIDIA's Triton runtime does with 15: earlier
                                    first audio; its frames see only part of the flow's 25-token chunk.
                                    0 (default): the strategy's own first hop (the official schedule) */
    int reference_final;         /* see cosy_token2wav_params */
    int chunk_causal_final;      /* see cosy_token2wav_params (CosyVoice3) */
    int stateless_flow;          /* see cosy_token2wav_params */
    int context_seconds;         /* see cosy_token2wav_params (default 10; 0 = unlimited) */
    uint64_t seed;               /* LM sampling and HiFT noise */
    int max_speech_tokens;       /* > 0: cap per sentence (default: 20 per text token, the reference's) */
    int min_speech_tokens;       /* > 0: no stop before this many tokens per sentence (benchmarks on random
                                    weights; default 0: the model decides, as the reference) */
    int concurrent_lm;           /* 1: the LM keeps decoding while a chunk is made; default 0: it waits,
                                    so each chunk gets all cores (both share the model's thread pool;
                                    lower time to first audio, the same total work) */
    cosy_audio_fn on_audio;      /* NULL: read the audio with cosy_session_read */
    void *user;
} cosy_session_params;

cosy_session_params cosy_session_default_params(void);
/* Starts the engine's threads; the voice is copied where needed and may be freed afterwards. */
cosy_status cosy_session_create(cosy_model *model, const cosy_voice *voice, const cosy_session_params *params,
                                cosy_session **out);
/* Text (UTF-8). Without bistream the pieces are joined and synthesised at cosy_session_end_text;
 * with bistream each piece goes to the LM as it arrives. The text is normalised and split into
 * sentences as the official frontend does, and a sentence longer than 80 tokens (80 characters in
 * Chinese; e.g. a text without punctuation) is cut after a comma or similar clause mark, else between
 * words, else at 80, so that no LM call grows without bound. cosy_session_end_text refuses text with
 * nothing to say — empty, only white space, or only punctuation and symbols (bistream: every piece
 * so) — with COSY_ERR_INVALID_ARG and a message saying so; the session then fails with the same
 * error (wait/read return it) and produces no audio. */
cosy_status cosy_session_push_text(cosy_session *s, const char *text, size_t len);
cosy_status cosy_session_end_text(cosy_session *s);
/* Blocks until audio is available (without on_audio): *n_samples > 0, or 0 when the session has
 * finished. Returns the session's error if it failed. */
cosy_status cosy_session_read(cosy_session *s, float *buf, int capacity, int *n_samples);
/* Blocks until the session has finished; its final status. */
cosy_status cosy_session_wait(cosy_session *s);
/* Stops the session as soon as possible (any thread); wait/read then return COSY_ERR_CANCELLED. */
void cosy_session_cancel(cosy_session *s);
void cosy_session_timings(cosy_session *s, cosy_timings *out);
/* Cancels if still running, joins the threads, frees everything. */
void cosy_session_free(cosy_session *s);

/* ---- voices --------------------------------------------------------------------------- */

cosy_status cosy_voice_load(const char *path, cosy_voice **out);
cosy_status cosy_voice_save(const cosy_voice *voice, const char *path);
/* A built-in speaker of the model (from spk2info.pt at conversion). */
cosy_status cosy_voice_from_speaker(const cosy_model *model, const char *speaker, cosy_voice **out);
/* A voice from a recording of the speaker and its transcript, as CosyVoice2's zero-shot frontend makes
 * one: the 24 kHz prompt mel, the speech tokens (S3TokenizerV2), the speaker embedding (CAM++), the 2:1
 * token/mel alignment, and the transcript normalised and tokenized. Mono samples at sample_rate
 * (>= 16 kHz, at most 30 s); any number of channels from a file (averaged; WAV, FLAC, Ogg). The model
 * must have been converted from a directory with campplus.onnx and speech_tokenizer_v2.onnx
 * (COSY_ERR_MISSING saying so otherwise). The transcript is required (COSY_ERR_INVALID_ARG if NULL or
 * blank). The voice is named "voice" / after the file (alice.wav -> "alice"). */
cosy_status cosy_voice_from_audio(cosy_model *model, const float *samples, int64_t n, int sample_rate, const char *transcript,
                                  cosy_voice **out);
cosy_status cosy_voice_from_audio_file(cosy_model *model, const char *path, const char *transcript, cosy_voice **out);
const char *cosy_voice_name(const cosy_voice *voice);
void cosy_voice_free(cosy_voice *voice);

#ifdef __cplusplus
}
#endif
#endif /* COSY_H */
