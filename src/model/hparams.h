/*
 * hparams.h — every hyperparameter the engine needs, read once by `cosy convert` from
 * cosyvoice2.yaml or cosyvoice3.yaml + CosyVoice-BlankEN/config.json (+ the constants the
 * official code hard-codes) and stored as GGUF metadata, so inference never reads yaml or json again.
 *
 * Two model families share this struct: CosyVoice2 (Qwen2LM, conformer encoder + U-Net
 * estimator, HiFTGenerator) and CosyVoice3 (CosyVoice3LM, DiT estimator, CausalHiFTGenerator).
 * The family is the file's general.architecture ("cosyvoice2" / "cosyvoice3"); the GGUF key of
 * each field is "<architecture>.<name>" with <name> as listed in hparams.c, and a field exists
 * only in the families the table says (the others read as 0). docs/model-format.md has the table.
 */
#ifndef COSY_HPARAMS_H
#define COSY_HPARAMS_H

#include "cosy.h"
#include "io/gguf.h"

#define COSY_HP_MAX_LIST 8
#define COSY_HP_MAX_SILENT 32   /* CosyVoice3Model.silent_tokens has 11 */

typedef enum {
    COSY_FAMILY_COSYVOICE2 = 2,
    COSY_FAMILY_COSYVOICE3 = 3,
} cosy_family;

typedef struct {
    cosy_family family;         /* from general.architecture, not a key of its own */

    /* shared */
    int sample_rate;            /* 24000 */
    int token_frame_rate;       /* 25 speech tokens per second */
    int token_mel_ratio;        /* 2 mel frames per token */
    int chunk_size;             /* static chunk of the flow encoder, in tokens (25) */
    int num_decoding_left_chunks; /* < 0: all left chunks */

    /* LM: Qwen2 body (config.json) + speech embedding/head (yaml) */
    int lm_hidden, lm_layers, lm_heads, lm_kv_heads, lm_head_dim, lm_ffn, lm_text_vocab;
    float lm_rope_theta, lm_rms_eps;
    int speech_token_size;      /* 6561: the FSQ codebook; eos = 6561, fill = 6563 */
    int lm_speech_vocab;        /* rows of speech_embedding / llm_decoder (6564) */
    int lm_has_head_bias;
    int mix_text, mix_speech;   /* bistream mix_ratio: 5 text : 15 speech tokens */
    float top_p;                /* RAS sampling (0.8, 25, 10, 0.1) */
    int top_k, win_size;
    float tau_r;
    int min_token_text_ratio, max_token_text_ratio; /* Qwen2LM.inference defaults (2, 20) */
    /* CosyVoice3LM only: specials are rows of speech_embedding (no llm_embedding), the head has
     * speech_token_size + 200 classes and no bias (lm_speech_vocab 6761, lm_has_head_bias 0) */
    int lm_sos, lm_eos, lm_task_id, lm_fill;    /* 6561, 6562, 6563, 6564 */
    int lm_stop_begin, lm_stop_end;             /* decoding stops on any id in [6561, 6760] */
    int lm_endofprompt;                         /* text id of <|endofprompt|> (151646), required in prompt texts */
    int n_silent_tokens, silent_tokens[COSY_HP_MAX_SILENT]; /* CosyVoice3Model.silent_tokens */
    int max_silent_run;                         /* llm_job keeps at most 5 silent ids in a row */

    /* flow: CausalMaskedDiffWithXvec */
    int flow_input_size, flow_output_size, spk_embed_dim, flow_vocab, pre_lookahead_len;
    int enc_input_size, enc_output_size, enc_heads, enc_ffn, enc_blocks, enc_up_blocks, enc_static_chunk;
    int enc_up_stride;          /* Upsample1D stride (2, hard-coded in the reference) */
    int cfm_in_channels, cfm_spk_emb_dim, cfm_steps;
    float cfm_sigma_min, cfm_cfg_rate;
    int cfm_cosine_schedule;    /* t_scheduler == 'cosine' */
    int est_in_channels, est_out_channels, est_channels, est_head_dim, est_n_blocks, est_mid_blocks, est_heads;
    int est_static_chunk;       /* frames (chunk_size * token_mel_ratio = 50) */
    int est_act_gelu;           /* act_fn == 'gelu' (else snake is not supported) */
    /* CosyVoice3 flow (CausalMaskedDiffWithDiT): no encoder; flow_input_size = 80 is the token
     * embedding width, PreLookaheadLayer 80 -> pre_lookahead_channels -> 80; DiT estimator */
    int pre_lookahead_channels;
    int dit_dim, dit_depth, dit_heads, dit_dim_head, dit_ff_mult;
    int dit_mel_dim, dit_mu_dim, dit_spk_dim, dit_out_channels;
    int dit_time_freq_dim;      /* SinusPositionEmbedding width before time_mlp (256, hard-coded) */
    int dit_conv_pos_kernel, dit_conv_pos_groups; /* ConvPositionEmbedding (31, 16, hard-coded) */
    int dit_rope_dim;           /* rotary_embed.inv_freq length = dim_head / 2 (the values are a tensor) */

    /* HiFT: HiFTGenerator + ConvRNNF0Predictor */
    int hift_in_channels, hift_base_channels, hift_nb_harmonics;
    float nsf_alpha, nsf_sigma, nsf_voiced_threshold;
    int n_upsample, upsample_rates[COSY_HP_MAX_LIST], upsample_kernel_sizes[COSY_HP_MAX_LIST];
    int istft_n_fft, istft_hop;
    int n_resblock_kernels, resblock_kernel_sizes[COSY_HP_MAX_LIST];
    int n_resblock_dilations, resblock_dilations[COSY_HP_MAX_LIST * COSY_HP_MAX_LIST];
    int n_source_resblocks, source_resblock_kernel_sizes[COSY_HP_MAX_LIST];
    int n_source_dilations, source_resblock_dilations[COSY_HP_MAX_LIST * COSY_HP_MAX_LIST];
    float lrelu_slope, audio_limit;
    int f0_cond_channels, f0_num_class;
    /* CosyVoice3 (CausalHiFTGenerator + CausalConvRNNF0Predictor): causal convolutions, conv_pre
     * kernel conv_pre_look_right + 1 looking right, upsampling by nearest + Conv1d ([out, in, k]) */
    int hift_causal;
    int conv_pre_look_right;    /* 4 */
    int f0_first_kernel;        /* condnet[0] kernel (4, right-causal; the others 3) */

    /* prompt mel (feat_extractor: matcha mel_spectrogram) */
    int feat_n_fft, feat_num_mels, feat_hop, feat_win;
    float feat_fmin, feat_fmax; /* fmax 0 = Nyquist (yaml null) */
} cosy_hparams;


/* Reads cosyvoice2.yaml or cosyvoice3.yaml (whichever the directory has; the family follows)
 * and CosyVoice-BlankEN/config.json from an official model directory. */
cosy_status cosy_hparams_from_model_dir(const char *model_dir, cosy_hparams *hp);
/* The GGUF architecture name of the family: "cosyvoice2" or "cosyvoice3". */
const char *cosy_family_arch(cosy_family f);
/* The family an architecture name stands for; 0 if none. */
cosy_family cosy_family_from_arch(const char *arch, size_t len);

/* The yaml part of cosy_hparams_from_model_dir: the fields the yaml (cosyvoice2.yaml, or cosyvoice3.yaml
 * when hp->family is CosyVoice3) sets, over the others already in hp (no validation: call
 * cosy_hparams_validate after). */
struct cosy_yaml;
cosy_status cosy_hparams_read_yaml(const struct cosy_yaml *y, cosy_hparams *hp);
/* The shapes of a named configuration ("cosyvoice2-0.5b", "cv2-tiny", "cv2-tiny-hift", "cosyvoice3-0.5b", "cv3-tiny",
 * "cv3-tiny-hift"). */
cosy_status cosy_hparams_preset(const char *name, cosy_hparams *hp);
/* Checks internal consistency (positive sizes, divisibility, supported variants). */
cosy_status cosy_hparams_validate(const cosy_hparams *hp);

void cosy_hparams_write(const cosy_hparams *hp, gguf_writer *w);
/* Reads the family (general.architecture) and all its fields back from a model file. */
cosy_status cosy_hparams_read(const gguf_file *g, cosy_hparams *hp);
/* "name = value" lines. */
void cosy_hparams_print(const cosy_hparams *hp, void *file);

#endif
