/*
 * hparams.c — hyperparameters: from the official yaml/json, to and from GGUF metadata, and
 * the named presets used for random benchmark models.
 *
 * One table (`fields`) lists every field with its GGUF key and the families that have it;
 * writing, reading and printing all walk it, so a new field is one line here plus its yaml
 * source in read_yaml_v2() / read_yaml_v3().
 */
#include "model/hparams.h"
#include "core/error.h"
#include "core/file.h"
#include "io/yaml.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { HP_INT, HP_FLOAT, HP_LIST, HP_MATRIX } hp_kind;

/* which families have a field */
#define FAM_V2 1u
#define FAM_V3 2u
#define FAM_ALL (FAM_V2 | FAM_V3)

typedef struct {
    const char *name;
    hp_kind kind;
    size_t offset;
    size_t count_offset;  /* HP_LIST: field holding the length; HP_MATRIX: rows */
    size_t cols_offset;   /* HP_MATRIX: columns */
    double lo, hi;        /* accepted range (of each entry for lists); products of these must fit an int */
    unsigned families;
} hp_field;

#define INT_F(fam, f, lo, hi) {#f, HP_INT, offsetof(cosy_hparams, f), 0, 0, lo, hi, fam}
#define INT(f, lo, hi) INT_F(FAM_ALL, f, lo, hi)
#define INT2(f, lo, hi) INT_F(FAM_V2, f, lo, hi)
#define INT3(f, lo, hi) INT_F(FAM_V3, f, lo, hi)
#define FLT(f, lo, hi) {#f, HP_FLOAT, offsetof(cosy_hparams, f), 0, 0, lo, hi, FAM_ALL}
#define LIST_F(fam, f, n, lo, hi) {#f, HP_LIST, offsetof(cosy_hparams, f), offsetof(cosy_hparams, n), 0, lo, hi, fam}
#define LIST(f, n, lo, hi) LIST_F(FAM_ALL, f, n, lo, hi)
#define MATRIX(f, r, c, lo, hi) {#f, HP_MATRIX, offsetof(cosy_hparams, f), offsetof(cosy_hparams, r), offsetof(cosy_hparams, c), lo, hi, FAM_ALL}

/* Ranges: generous around the real models (CosyVoice2-0.5B, cv2-tiny) but small enough that
 * the products the code forms (rates x ratios, widths x heads, vocab x width in size_t) cannot
 * overflow, so a crafted file is refused here, naming the key, instead of failing later. */
#define DIM 65536     /* widths, channels, FFT sizes */
#define LAYERS 1024   /* block and head counts */
#define VOCAB (1 << 21)
#define LMAX COSY_HP_MAX_LIST
static const hp_field fields[] = {
    INT(sample_rate, 8000, 192000), INT(token_frame_rate, 1, 1000), INT(token_mel_ratio, 1, 64), INT(chunk_size, 1, 10000),
    INT(num_decoding_left_chunks, -1, 10000),
    INT(lm_hidden, 1, DIM), INT(lm_layers, 1, LAYERS), INT(lm_heads, 1, LAYERS), INT(lm_kv_heads, 1, LAYERS),
    INT(lm_head_dim, 1, DIM), INT(lm_ffn, 1, 4 * DIM), INT(lm_text_vocab, 1, VOCAB),
    FLT(lm_rope_theta, 1e-3, 1e12), FLT(lm_rms_eps, 1e-30, 1), INT(speech_token_size, 1, VOCAB), INT(lm_speech_vocab, 1, VOCAB + 16),
    INT(lm_has_head_bias, 0, 1),
    INT(mix_text, 1, 1000), INT(mix_speech, 1, 1000), FLT(top_p, 0, 1), INT(top_k, 1, VOCAB), INT(win_size, 1, 100000),
    FLT(tau_r, 0, 1e6),
    INT(min_token_text_ratio, 0, 1000), INT(max_token_text_ratio, 0, 1000),
    INT3(lm_sos, 0, VOCAB + 1024), INT3(lm_eos, 0, VOCAB + 1024), INT3(lm_task_id, 0, VOCAB + 1024), INT3(lm_fill, 0, VOCAB + 1024),
    INT3(lm_stop_begin, 0, VOCAB + 1024), INT3(lm_stop_end, 0, VOCAB + 1024), INT3(lm_endofprompt, 0, VOCAB),
    INT3(n_silent_tokens, 0, COSY_HP_MAX_SILENT), LIST_F(FAM_V3, silent_tokens, n_silent_tokens, 0, VOCAB), INT3(max_silent_run, 0, 100000),
    INT(flow_input_size, 1, DIM), INT(flow_output_size, 1, DIM), INT(spk_embed_dim, 1, DIM), INT(flow_vocab, 1, VOCAB),
    INT(pre_lookahead_len, 0, 1024),
    INT2(enc_input_size, 1, DIM), INT2(enc_output_size, 1, DIM), INT2(enc_heads, 1, LAYERS), INT2(enc_ffn, 1, 4 * DIM),
    INT2(enc_blocks, 0, LAYERS), INT2(enc_up_blocks, 0, LAYERS), INT2(enc_static_chunk, 0, 100000), INT2(enc_up_stride, 1, 64),
    INT(cfm_in_channels, 1, 4 * DIM), INT(cfm_spk_emb_dim, 1, DIM), INT(cfm_steps, 1, 1000), FLT(cfm_sigma_min, 0, 1),
    FLT(cfm_cfg_rate, 0, 1000), INT(cfm_cosine_schedule, 0, 1),
    INT2(est_in_channels, 1, 4 * DIM), INT2(est_out_channels, 1, DIM), INT2(est_channels, 1, DIM), INT2(est_head_dim, 1, DIM),
    INT2(est_n_blocks, 0, LAYERS), INT2(est_mid_blocks, 0, LAYERS), INT2(est_heads, 1, LAYERS), INT(est_static_chunk, 0, 100000),
    INT2(est_act_gelu, 0, 1),
    INT3(pre_lookahead_channels, 1, DIM),
    INT3(dit_dim, 1, DIM), INT3(dit_depth, 0, LAYERS), INT3(dit_heads, 1, LAYERS), INT3(dit_dim_head, 2, DIM), INT3(dit_ff_mult, 1, 64),
    INT3(dit_mel_dim, 1, DIM), INT3(dit_mu_dim, 1, DIM), INT3(dit_spk_dim, 1, DIM), INT3(dit_out_channels, 1, DIM),
    INT3(dit_time_freq_dim, 2, DIM), INT3(dit_conv_pos_kernel, 1, 1024), INT3(dit_conv_pos_groups, 1, DIM), INT3(dit_rope_dim, 1, DIM),
    INT(hift_in_channels, 1, DIM), INT(hift_base_channels, 1, DIM), INT(hift_nb_harmonics, 0, LAYERS),
    FLT(nsf_alpha, 0, 1e6), FLT(nsf_sigma, 0, 1e6), FLT(nsf_voiced_threshold, 0, 1e6),
    INT(n_upsample, 1, LMAX), LIST(upsample_rates, n_upsample, 1, 64), LIST(upsample_kernel_sizes, n_upsample, 1, 1024),
    INT(istft_n_fft, 2, DIM), INT(istft_hop, 1, DIM),
    INT(n_resblock_kernels, 1, LMAX), LIST(resblock_kernel_sizes, n_resblock_kernels, 1, 1024), INT(n_resblock_dilations, 1, LMAX),
    MATRIX(resblock_dilations, n_resblock_kernels, n_resblock_dilations, 1, 1024),
    INT(n_source_resblocks, 0, LMAX), LIST(source_resblock_kernel_sizes, n_source_resblocks, 1, 1024),
    INT(n_source_dilations, 0, LMAX),
    MATRIX(source_resblock_dilations, n_source_resblocks, n_source_dilations, 1, 1024),
    FLT(lrelu_slope, -1e6, 1e6), FLT(audio_limit, 1e-6, 1e6), INT(f0_cond_channels, 1, DIM), INT(f0_num_class, 1, LAYERS),
    INT3(hift_causal, 0, 1), INT3(conv_pre_look_right, 0, 1024), INT3(f0_first_kernel, 1, 1024),
    INT(feat_n_fft, 1, DIM), INT(feat_num_mels, 1, DIM), INT(feat_hop, 1, DIM), INT(feat_win, 1, DIM), FLT(feat_fmin, 0, 192000),
    FLT(feat_fmax, 0, 192000),
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

const char *cosy_family_arch(cosy_family f) { return f == COSY_FAMILY_COSYVOICE3 ? "cosyvoice3" : "cosyvoice2"; }

cosy_family cosy_family_from_arch(const char *arch, size_t len)
{
    if (len == 10 && !memcmp(arch, "cosyvoice2", 10)) return COSY_FAMILY_COSYVOICE2;
    if (len == 10 && !memcmp(arch, "cosyvoice3", 10)) return COSY_FAMILY_COSYVOICE3;
    return (cosy_family)0;
}

static unsigned family_bit(const cosy_hparams *hp) { return hp->family == COSY_FAMILY_COSYVOICE3 ? FAM_V3 : FAM_V2; }
/* the field is part of hp's family */
static int has_field(const cosy_hparams *hp, const hp_field *f) { return (f->families & family_bit(hp)) != 0; }

static int *int_at(const cosy_hparams *hp, size_t off) { return (int *)((char *)hp + off); }
static float *float_at(const cosy_hparams *hp, size_t off) { return (float *)((char *)hp + off); }

static int field_count(const cosy_hparams *hp, const hp_field *f)
{
    if (f->kind == HP_LIST) return *int_at(hp, f->count_offset);
    if (f->kind == HP_MATRIX) return *int_at(hp, f->count_offset) * *int_at(hp, f->cols_offset);
    return 1;
}

/* NaN compares false, so it is refused too. */
static int in_range(const hp_field *f, double v) { return v >= f->lo && v <= f->hi; }

/* Checks every field against its range; `where` and `prefix` name the source in the message
 * (a GGUF path and its key prefix, or "hyperparameters" and ""). */
static cosy_status check_ranges(const cosy_hparams *hp, const char *where, const char *prefix)
{
    if (hp->family != COSY_FAMILY_COSYVOICE2 && hp->family != COSY_FAMILY_COSYVOICE3)
        return cosy_error(COSY_ERR_FORMAT, "%s: model family %d is neither CosyVoice2 nor CosyVoice3", where, (int)hp->family);
    for (size_t i = 0; i < N_FIELDS; i++) {
        const hp_field *f = &fields[i];
        if (!has_field(hp, f)) continue;
        if (f->kind == HP_INT) {
            int v = *int_at(hp, f->offset);
            if (!in_range(f, v))
                return cosy_error(COSY_ERR_FORMAT, "%s: %s%s = %d is outside the range %.0f..%.0f", where, prefix, f->name, v, f->lo, f->hi);
        } else if (f->kind == HP_FLOAT) {
            float v = *float_at(hp, f->offset);
            if (!in_range(f, v))
                return cosy_error(COSY_ERR_FORMAT, "%s: %s%s = %g is outside the range %g..%g", where, prefix, f->name, (double)v, f->lo, f->hi);
        } else {
            int n = field_count(hp, f); /* the counts are scalars: checked before the lists (table order) */
            for (int k = 0; k < n; k++) {
                int v = int_at(hp, f->offset)[k];
                if (!in_range(f, v))
                    return cosy_error(COSY_ERR_FORMAT, "%s: %s%s[%d] = %d is outside the range %.0f..%.0f", where, prefix, f->name, k, v,
                                      f->lo, f->hi);
            }
        }
    }
    return COSY_OK;
}

void cosy_hparams_write(const cosy_hparams *hp, gguf_writer *w)
{
    char key[128];
    for (size_t i = 0; i < N_FIELDS; i++) {
        const hp_field *f = &fields[i];
        if (!has_field(hp, f)) continue;
        snprintf(key, sizeof key, "%s.%s", cosy_family_arch(hp->family), f->name);
        if (f->kind == HP_INT) gguf_writer_set_i32(w, key, *int_at(hp, f->offset));
        else if (f->kind == HP_FLOAT) gguf_writer_set_f32(w, key, *float_at(hp, f->offset));
        else {
            int32_t v[COSY_HP_MAX_LIST * COSY_HP_MAX_LIST];
            int n = field_count(hp, f);
            for (int k = 0; k < n; k++) v[k] = int_at(hp, f->offset)[k];
            gguf_writer_set_arr_i32(w, key, v, (uint64_t)n);
        }
    }
}

cosy_status cosy_hparams_read(const gguf_file *g, cosy_hparams *hp)
{
    char key[128];
    memset(hp, 0, sizeof *hp);
    const gguf_kv *arch = gguf_find_kv(g, "general.architecture");
    if (arch && arch->type == GGUF_TYPE_STRING) hp->family = cosy_family_from_arch(arch->str.ptr, (size_t)arch->str.len);
    if (!hp->family)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: general.architecture is not \"cosyvoice2\" or \"cosyvoice3\" (convert the model with `cosy convert`)",
                          g->file.path);
    /* scalars first: list lengths are scalars */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < N_FIELDS; i++) {
            const hp_field *f = &fields[i];
            if (!has_field(hp, f)) continue;
            snprintf(key, sizeof key, "%s.%s", cosy_family_arch(hp->family), f->name);
            if (pass == 0 && f->kind == HP_INT) {
                int64_t v;
                COSY_TRY(gguf_get_int(g, key, &v));
                if (!in_range(f, (double)v))
                    return cosy_error(COSY_ERR_FORMAT, "%s: %s = %lld is outside the range %.0f..%.0f", g->file.path, key, (long long)v, f->lo, f->hi);
                *int_at(hp, f->offset) = (int)v;
            } else if (pass == 0 && f->kind == HP_FLOAT) {
                double v;
                COSY_TRY(gguf_get_float(g, key, &v));
                if (!in_range(f, v))
                    return cosy_error(COSY_ERR_FORMAT, "%s: %s = %g is outside the range %g..%g", g->file.path, key, v, f->lo, f->hi);
                *float_at(hp, f->offset) = (float)v;
            } else if (pass == 1 && (f->kind == HP_LIST || f->kind == HP_MATRIX)) {
                int64_t v[COSY_HP_MAX_LIST * COSY_HP_MAX_LIST];
                int n, want = field_count(hp, f);
                if (want < 0 || want > COSY_HP_MAX_LIST * COSY_HP_MAX_LIST)
                    return cosy_error(COSY_ERR_FORMAT, "%s: %s has an impossible length %d", g->file.path, key, want);
                COSY_TRY(gguf_get_int_array(g, key, v, COSY_HP_MAX_LIST * COSY_HP_MAX_LIST, &n));
                if (n != want) return cosy_error(COSY_ERR_FORMAT, "%s: %s has %d entries, %d expected", g->file.path, key, n, want);
                for (int k = 0; k < n; k++) {
                    if (!in_range(f, (double)v[k]))
                        return cosy_error(COSY_ERR_FORMAT, "%s: %s[%d] = %lld is outside the range %.0f..%.0f", g->file.path, key, k,
                                          (long long)v[k], f->lo, f->hi);
                    int_at(hp, f->offset)[k] = (int)v[k];
                }
            }
        }
    }
    return cosy_hparams_validate(hp);
}

void cosy_hparams_print(const cosy_hparams *hp, void *file)
{
    FILE *fp = file;
    fprintf(fp, "  %-28s %s\n", "family", hp->family == COSY_FAMILY_COSYVOICE3 ? "CosyVoice3" : "CosyVoice2");
    for (size_t i = 0; i < N_FIELDS; i++) {
        const hp_field *f = &fields[i];
        if (!has_field(hp, f)) continue;
        fprintf(fp, "  %-28s ", f->name);
        if (f->kind == HP_INT) fprintf(fp, "%d\n", *int_at(hp, f->offset));
        else if (f->kind == HP_FLOAT) fprintf(fp, "%g\n", (double)*float_at(hp, f->offset));
        else {
            int n = field_count(hp, f);
            int cols = f->kind == HP_MATRIX ? *int_at(hp, f->cols_offset) : n;
            fputc('[', fp);
            for (int k = 0; k < n; k++) {
                if (f->kind == HP_MATRIX && cols && k % cols == 0) fputc('[', fp);
                fprintf(fp, "%d", int_at(hp, f->offset)[k]);
                if (f->kind == HP_MATRIX && cols && k % cols == cols - 1) fputc(']', fp);
                if (k + 1 < n) fputs(", ", fp);
            }
            fputs("]\n", fp);
        }
    }
}

/* ------------------------------------------------------------------ validation */

#define REQUIRE(cond, ...) do { if (!(cond)) return cosy_error(COSY_ERR_FORMAT, __VA_ARGS__); } while (0)

/* CosyVoice2: conformer encoder + U-Net estimator */
static cosy_status validate_v2(const cosy_hparams *hp)
{
    REQUIRE(hp->enc_heads > 0 && hp->enc_output_size % hp->enc_heads == 0,
            "hyperparameters: encoder width %d is not a multiple of %d heads", hp->enc_output_size, hp->enc_heads);
    REQUIRE(hp->enc_blocks >= 0 && hp->enc_up_blocks >= 0 && hp->enc_ffn > 0 && hp->enc_up_stride > 0, "hyperparameters: bad encoder sizes");
    REQUIRE(hp->est_in_channels == 2 * hp->flow_output_size + hp->cfm_spk_emb_dim + hp->flow_output_size,
            "hyperparameters: estimator in_channels %d != x + mu + spks + cond (%d)", hp->est_in_channels,
            3 * hp->flow_output_size + hp->cfm_spk_emb_dim);
    REQUIRE(hp->est_channels > 0 && hp->est_heads > 0 && hp->est_head_dim > 0 && hp->est_n_blocks >= 0 && hp->est_mid_blocks >= 0,
            "hyperparameters: bad estimator sizes");
    REQUIRE(hp->est_act_gelu, "hyperparameters: only the 'gelu' estimator activation is supported");
    return COSY_OK;
}

/* CosyVoice3: speech-embedding specials, PreLookahead + DiT, CausalHiFT. Every value was range
 * checked first, so the sums and products below fit an int. */
static cosy_status validate_v3(const cosy_hparams *hp)
{
    const int S = hp->speech_token_size, V = hp->lm_speech_vocab;
    REQUIRE(!hp->lm_has_head_bias, "hyperparameters: the CosyVoice3 speech head has no bias");
    REQUIRE(hp->lm_sos >= S && hp->lm_sos < V && hp->lm_eos >= S && hp->lm_eos < V && hp->lm_task_id >= S && hp->lm_task_id < V &&
            hp->lm_fill >= S && hp->lm_fill < V, "hyperparameters: the special speech ids sos %d, eos %d, task %d, fill %d must lie in %d..%d",
            hp->lm_sos, hp->lm_eos, hp->lm_task_id, hp->lm_fill, S, V - 1);
    REQUIRE(hp->lm_stop_begin >= S && hp->lm_stop_begin <= hp->lm_stop_end && hp->lm_stop_end < V && hp->lm_eos >= hp->lm_stop_begin &&
            hp->lm_eos <= hp->lm_stop_end, "hyperparameters: stop ids %d..%d must hold eos %d and lie in %d..%d", hp->lm_stop_begin,
            hp->lm_stop_end, hp->lm_eos, S, V - 1);
    REQUIRE(hp->lm_endofprompt < hp->lm_text_vocab, "hyperparameters: <|endofprompt|> id %d is outside the text vocabulary %d",
            hp->lm_endofprompt, hp->lm_text_vocab);
    for (int i = 0; i < hp->n_silent_tokens; i++)
        REQUIRE(hp->silent_tokens[i] < S, "hyperparameters: silent token %d is not a speech token (< %d)", hp->silent_tokens[i], S);
    REQUIRE(hp->dit_dim % hp->dit_conv_pos_groups == 0, "hyperparameters: DiT width %d is not a multiple of %d conv groups",
            hp->dit_dim, hp->dit_conv_pos_groups);
    REQUIRE(hp->dit_dim_head % 2 == 0 && hp->dit_rope_dim == hp->dit_dim_head / 2,
            "hyperparameters: DiT rotary inv_freq length %d must be dim_head %d / 2", hp->dit_rope_dim, hp->dit_dim_head);
    REQUIRE(hp->dit_time_freq_dim % 2 == 0, "hyperparameters: DiT time embedding width %d must be even", hp->dit_time_freq_dim);
    REQUIRE(hp->dit_mu_dim == hp->flow_input_size && hp->dit_spk_dim == hp->flow_output_size && hp->dit_mel_dim == hp->flow_output_size &&
            hp->dit_out_channels == hp->flow_output_size,
            "hyperparameters: DiT mel/mu/spk/out sizes %d/%d/%d/%d do not match the flow's %d-wide tokens and %d mels", hp->dit_mel_dim,
            hp->dit_mu_dim, hp->dit_spk_dim, hp->dit_out_channels, hp->flow_input_size, hp->flow_output_size);
    REQUIRE(hp->est_static_chunk > 0, "hyperparameters: the DiT needs a static chunk size");
    REQUIRE(hp->hift_causal == 1, "hyperparameters: the CosyVoice3 vocoder is causal");
    return COSY_OK;
}

cosy_status cosy_hparams_validate(const cosy_hparams *hp)
{
    COSY_TRY(check_ranges(hp, "hyperparameters", ""));
    REQUIRE(hp->lm_hidden > 0 && hp->lm_layers > 0 && hp->lm_heads > 0 && hp->lm_kv_heads > 0 && hp->lm_ffn > 0 &&
            hp->lm_text_vocab > 0 && hp->lm_head_dim > 0, "hyperparameters: the LM sizes must be positive");
    REQUIRE(hp->lm_heads % hp->lm_kv_heads == 0, "hyperparameters: %d attention heads are not a multiple of %d key/value heads",
            hp->lm_heads, hp->lm_kv_heads);
    REQUIRE(hp->lm_head_dim % 2 == 0, "hyperparameters: LM head_dim %d must be even for RoPE", hp->lm_head_dim);
    REQUIRE(hp->lm_rope_theta > 0 && hp->lm_rms_eps > 0, "hyperparameters: rope_theta and rms_norm_eps must be positive");
    REQUIRE(hp->speech_token_size > 0 && hp->lm_speech_vocab >= hp->speech_token_size + 3,
            "hyperparameters: speech vocabulary %d must hold %d tokens + eos/unused/fill", hp->lm_speech_vocab, hp->speech_token_size);
    REQUIRE((int64_t)hp->flow_vocab <= hp->lm_speech_vocab, "hyperparameters: flow vocabulary %d exceeds the LM's %d",
            hp->flow_vocab, hp->lm_speech_vocab);
    REQUIRE(hp->mix_text > 0 && hp->mix_speech > 0, "hyperparameters: mix_ratio must be positive");
    REQUIRE(hp->top_k > 0 && hp->top_p > 0 && hp->win_size > 0, "hyperparameters: sampling parameters must be positive");
    REQUIRE(hp->token_mel_ratio > 0 && hp->chunk_size > 0 && hp->token_frame_rate > 0, "hyperparameters: token rates must be positive");
    REQUIRE(hp->flow_input_size > 0 && hp->flow_output_size > 0 && hp->spk_embed_dim > 0 && hp->flow_vocab > 0 &&
            hp->pre_lookahead_len >= 0, "hyperparameters: flow sizes must be positive");
    REQUIRE(hp->cfm_spk_emb_dim == hp->flow_output_size, "hyperparameters: spk_emb_dim %d must equal the mel size %d",
            hp->cfm_spk_emb_dim, hp->flow_output_size);
    REQUIRE(hp->cfm_steps > 0 && hp->cfm_steps <= 1000, "hyperparameters: bad CFM step count %d", hp->cfm_steps);
    if (hp->family == COSY_FAMILY_COSYVOICE3) COSY_TRY(validate_v3(hp));
    else COSY_TRY(validate_v2(hp));
    REQUIRE(hp->hift_base_channels > 0 && hp->hift_in_channels == hp->flow_output_size, "hyperparameters: bad HiFT channels");
    REQUIRE(hp->n_upsample > 0 && hp->n_upsample <= COSY_HP_MAX_LIST, "hyperparameters: bad HiFT upsample count");
    REQUIRE((hp->hift_base_channels >> hp->n_upsample) > 0 && hp->hift_base_channels % (1 << hp->n_upsample) == 0,
            "hyperparameters: HiFT base_channels %d cannot be halved %d times", hp->hift_base_channels, hp->n_upsample);
    for (int i = 0; i < hp->n_upsample; i++)
        REQUIRE(hp->upsample_rates[i] > 0 && hp->upsample_kernel_sizes[i] >= hp->upsample_rates[i],
                "hyperparameters: bad HiFT upsample rate/kernel %d/%d", hp->upsample_rates[i], hp->upsample_kernel_sizes[i]);
    REQUIRE(hp->istft_n_fft > 0 && hp->istft_n_fft % 2 == 0 && hp->istft_hop > 0, "hyperparameters: bad iSTFT parameters");
    REQUIRE(hp->n_resblock_kernels > 0 && hp->n_resblock_dilations > 0 && hp->n_resblock_kernels <= COSY_HP_MAX_LIST &&
            hp->n_resblock_dilations <= COSY_HP_MAX_LIST, "hyperparameters: bad HiFT resblocks");
    REQUIRE(hp->n_source_resblocks >= 0 && hp->n_source_resblocks <= hp->n_upsample && hp->n_source_dilations <= COSY_HP_MAX_LIST,
            "hyperparameters: bad HiFT source resblocks");
    REQUIRE(hp->f0_cond_channels > 0 && hp->f0_num_class == 1, "hyperparameters: the F0 predictor must have one class");
    REQUIRE(hp->feat_n_fft > 0 && hp->feat_num_mels > 0 && hp->feat_hop > 0 && hp->feat_win > 0, "hyperparameters: bad mel parameters");
    int64_t prod = 1; /* at most 64^8 x 65536: fits */
    for (int i = 0; i < hp->n_upsample; i++) prod *= hp->upsample_rates[i];
    REQUIRE(prod * hp->istft_hop == hp->sample_rate / (hp->token_frame_rate * hp->token_mel_ratio),
            "hyperparameters: HiFT hop %lld x %d does not give %d samples per mel frame", (long long)prod, hp->istft_hop,
            hp->sample_rate / (hp->token_frame_rate * hp->token_mel_ratio));
    return COSY_OK;
}

/* ------------------------------------------------------------------ presets */

/* Values shared by every CosyVoice2 configuration (fixed by the format or hard-coded in the
 * reference). */
static void set_common(cosy_hparams *hp)
{
    hp->family = COSY_FAMILY_COSYVOICE2;
    hp->sample_rate = 24000;
    hp->token_frame_rate = 25;
    hp->token_mel_ratio = 2;
    hp->chunk_size = 25;
    hp->num_decoding_left_chunks = -1;
    hp->lm_rope_theta = 1000000.0f;
    hp->lm_rms_eps = 1e-6f;
    hp->speech_token_size = 6561;
    hp->lm_speech_vocab = 6564;
    hp->lm_has_head_bias = 1;
    hp->mix_text = 5;
    hp->mix_speech = 15;
    hp->top_p = 0.8f;
    hp->top_k = 25;
    hp->win_size = 10;
    hp->tau_r = 0.1f;
    hp->min_token_text_ratio = 2;
    hp->max_token_text_ratio = 20;
    hp->flow_input_size = 512;
    hp->flow_output_size = 80;
    hp->spk_embed_dim = 192;
    hp->flow_vocab = 6561;
    hp->pre_lookahead_len = 3;
    hp->enc_input_size = 512;
    hp->enc_output_size = 512;
    hp->enc_up_blocks = 4;
    hp->enc_static_chunk = 25;
    hp->enc_up_stride = 2;
    hp->cfm_in_channels = 240;
    hp->cfm_spk_emb_dim = 80;
    hp->cfm_steps = 10;
    hp->cfm_sigma_min = 1e-6f;
    hp->cfm_cfg_rate = 0.7f;
    hp->cfm_cosine_schedule = 1;
    hp->est_in_channels = 320;
    hp->est_out_channels = 80;
    hp->est_static_chunk = 50;
    hp->est_act_gelu = 1;
    hp->hift_in_channels = 80;
    hp->hift_nb_harmonics = 8;
    hp->nsf_alpha = 0.1f;
    hp->nsf_sigma = 0.003f;
    hp->nsf_voiced_threshold = 10.0f;
    hp->n_upsample = 3;
    const int ur[] = {8, 5, 3}, uk[] = {16, 11, 7}, rk[] = {3, 7, 11}, sk[] = {7, 7, 11};
    for (int i = 0; i < 3; i++) {
        hp->upsample_rates[i] = ur[i];
        hp->upsample_kernel_sizes[i] = uk[i];
        hp->resblock_kernel_sizes[i] = rk[i];
        hp->source_resblock_kernel_sizes[i] = sk[i];
        for (int j = 0; j < 3; j++) {
            const int dil[] = {1, 3, 5};
            hp->resblock_dilations[i * 3 + j] = dil[j];
            hp->source_resblock_dilations[i * 3 + j] = dil[j];
        }
    }
    hp->istft_n_fft = 16;
    hp->istft_hop = 4;
    hp->n_resblock_kernels = 3;
    hp->n_resblock_dilations = 3;
    hp->n_source_resblocks = 3;
    hp->n_source_dilations = 3;
    hp->lrelu_slope = 0.1f;
    hp->audio_limit = 0.99f;
    hp->f0_num_class = 1;
    hp->feat_n_fft = 1920;
    hp->feat_num_mels = 80;
    hp->feat_hop = 480;
    hp->feat_win = 1920;
    hp->feat_fmin = 0.0f;
    hp->feat_fmax = 8000.0f;
}

/* CosyVoice3's fixed values over the shared ones: cosyvoice3.yaml, CosyVoice3LM / CosyVoice3Model
 * (cosyvoice/llm/llm.py, cosyvoice/cli/model.py) and the DiT / CausalHiFT constants. */
static void set_common_v3(cosy_hparams *hp)
{
    set_common(hp);
    hp->family = COSY_FAMILY_COSYVOICE3;
    hp->lm_speech_vocab = hp->speech_token_size + 200;
    hp->lm_has_head_bias = 0;
    hp->lm_sos = hp->speech_token_size;
    hp->lm_eos = hp->speech_token_size + 1;
    hp->lm_task_id = hp->speech_token_size + 2;
    hp->lm_fill = hp->speech_token_size + 3;
    hp->lm_stop_begin = hp->speech_token_size;
    hp->lm_stop_end = hp->speech_token_size + 199;
    hp->lm_endofprompt = 151646;
    static const int silent[] = {1, 2, 28, 29, 55, 248, 494, 2241, 2242, 2322, 2323};
    hp->n_silent_tokens = (int)(sizeof silent / sizeof silent[0]);
    memcpy(hp->silent_tokens, silent, sizeof silent);
    hp->max_silent_run = 5;
    hp->flow_input_size = 80;
    /* the conformer encoder and U-Net fields stay 0: not part of this family */
    hp->enc_input_size = hp->enc_output_size = hp->enc_up_blocks = hp->enc_static_chunk = hp->enc_up_stride = 0;
    hp->est_in_channels = hp->est_out_channels = hp->est_act_gelu = 0;
    hp->dit_mel_dim = hp->dit_mu_dim = hp->dit_spk_dim = hp->dit_out_channels = 80;
    hp->dit_time_freq_dim = 256;
    hp->dit_conv_pos_kernel = 31;
    hp->dit_conv_pos_groups = 16;
    hp->hift_causal = 1;
    hp->conv_pre_look_right = 4;
    hp->f0_first_kernel = 4;
    hp->feat_fmax = 0.0f; /* yaml null: Nyquist */
}

cosy_status cosy_hparams_preset(const char *name, cosy_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    set_common(hp);
    if (!strcmp(name, "cosyvoice3-0.5b") || !strcmp(name, "cv3-tiny") || !strcmp(name, "cv3-tiny-hift")) {
        set_common_v3(hp);
        if (!strcmp(name, "cosyvoice3-0.5b")) {
            /* Fun-CosyVoice3-0.5B: the same Qwen2.5-0.5B body + cosyvoice3.yaml */
            hp->lm_hidden = 896; hp->lm_layers = 24; hp->lm_heads = 14; hp->lm_kv_heads = 2; hp->lm_head_dim = 64;
            hp->lm_ffn = 4864; hp->lm_text_vocab = 151936;
            hp->pre_lookahead_channels = 1024;
            hp->dit_dim = 1024; hp->dit_depth = 22; hp->dit_heads = 16; hp->dit_dim_head = 64; hp->dit_ff_mult = 2;
            hp->hift_base_channels = 512; hp->f0_cond_channels = 512;
        } else {
            /* the shapes of ../shared/golden/cv3-tiny */
            hp->lm_hidden = 32; hp->lm_layers = 2; hp->lm_heads = 4; hp->lm_kv_heads = 2; hp->lm_head_dim = 8;
            hp->lm_ffn = 64; hp->lm_text_vocab = 151936;
            hp->pre_lookahead_channels = 64;
            hp->dit_dim = 64; hp->dit_depth = 2; hp->dit_heads = 4; hp->dit_dim_head = 16; hp->dit_ff_mult = 2;
            hp->hift_base_channels = 32; hp->f0_cond_channels = 32;
            /* cv3-tiny-hift: the same with Fun-CosyVoice3-0.5B's vocoder, to test CausalHiFT at its real size quickly */
            if (!strcmp(name, "cv3-tiny-hift")) hp->hift_base_channels = hp->f0_cond_channels = 512;
        }
        hp->dit_rope_dim = hp->dit_dim_head / 2;
    } else if (!strcmp(name, "cosyvoice2-0.5b")) {
        /* CosyVoice2-0.5B: Qwen2.5-0.5B body (CosyVoice-BlankEN/config.json) + cosyvoice2.yaml */
        hp->lm_hidden = 896; hp->lm_layers = 24; hp->lm_heads = 14; hp->lm_kv_heads = 2; hp->lm_head_dim = 64;
        hp->lm_ffn = 4864; hp->lm_text_vocab = 151936;
        hp->enc_heads = 8; hp->enc_ffn = 2048; hp->enc_blocks = 6;
        hp->est_channels = 256; hp->est_head_dim = 64; hp->est_n_blocks = 4; hp->est_mid_blocks = 12; hp->est_heads = 8;
        hp->hift_base_channels = 512; hp->f0_cond_channels = 512;
    } else if (!strcmp(name, "cv2-tiny") || !strcmp(name, "cv2-tiny-hift")) {
        /* the shapes of ../shared/golden/cv2-tiny */
        hp->lm_hidden = 64; hp->lm_layers = 2; hp->lm_heads = 4; hp->lm_kv_heads = 2; hp->lm_head_dim = 16;
        hp->lm_ffn = 128; hp->lm_text_vocab = 2000;
        hp->enc_heads = 4; hp->enc_ffn = 64; hp->enc_blocks = 1;
        hp->est_channels = 64; hp->est_head_dim = 16; hp->est_n_blocks = 1; hp->est_mid_blocks = 2; hp->est_heads = 2;
        hp->hift_base_channels = 32; hp->f0_cond_channels = 32;
        /* cv2-tiny-hift: the same with CosyVoice2-0.5B's vocoder, to test HiFT at its real size quickly */
        if (!strcmp(name, "cv2-tiny-hift")) hp->hift_base_channels = hp->f0_cond_channels = 512;
    } else {
        return cosy_error(COSY_ERR_INVALID_ARG, "unknown model configuration '%s' (known: cosyvoice2-0.5b, cv2-tiny, cv2-tiny-hift, cosyvoice3-0.5b, cv3-tiny, cv3-tiny-hift)", name);
    }
    return cosy_hparams_validate(hp);
}

/* ------------------------------------------------------------------ official files */

/* the yaml being read, for messages ("cosyvoice2.yaml" / "cosyvoice3.yaml") */
static _Thread_local const char *yaml_name = "cosyvoice2.yaml";

static cosy_status yint(const cosy_yaml *y, const char *path, int *out)
{
    int64_t v;
    COSY_TRY(cosy_yaml_get_int(y, path, &v));
    if (v < -(1ll << 31) || v > (1ll << 31) - 1) return cosy_error(COSY_ERR_FORMAT, "%s: %s = %lld is out of range", yaml_name, path, (long long)v);
    *out = (int)v;
    return COSY_OK;
}

static cosy_status yfloat(const cosy_yaml *y, const char *path, float *out)
{
    double v;
    COSY_TRY(cosy_yaml_get_float(y, path, &v));
    *out = (float)v;
    return COSY_OK;
}

static cosy_status ylist(const cosy_yaml *y, const char *path, int *out, int *n)
{
    int64_t v[COSY_HP_MAX_LIST];
    COSY_TRY(cosy_yaml_get_int_list(y, path, v, COSY_HP_MAX_LIST, n));
    for (int i = 0; i < *n; i++) out[i] = (int)v[i];
    return COSY_OK;
}

static cosy_status ymatrix(const cosy_yaml *y, const char *path, int *out, int *rows, int *cols)
{
    int64_t v[COSY_HP_MAX_LIST * COSY_HP_MAX_LIST];
    COSY_TRY(cosy_yaml_get_int_matrix(y, path, v, COSY_HP_MAX_LIST, COSY_HP_MAX_LIST, rows, cols));
    for (int r = 0; r < *rows; r++)
        for (int c = 0; c < *cols; c++) out[r * *cols + c] = (int)v[r * COSY_HP_MAX_LIST + c];
    return COSY_OK;
}

/* A yaml string option that must have one of the values we implement. */
static cosy_status yexpect(const cosy_yaml *y, const char *path, const char *want)
{
    char buf[128];
    COSY_TRY(cosy_yaml_get_str(y, path, buf, sizeof buf, NULL));
    if (strcmp(buf, want) != 0)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: %s is '%s'; only '%s' is supported", yaml_name, path, buf, want);
    return COSY_OK;
}

static cosy_status yexpect_tag(const cosy_yaml *y, const char *path, const char *want)
{
    char buf[256];
    COSY_TRY(cosy_yaml_get_tag(y, path, buf, sizeof buf));
    if (strcmp(buf, want) != 0)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: %s is %s; this engine runs %s", yaml_name, path, buf[0] ? buf : "untagged", want);
    return COSY_OK;
}

/* llm: what Qwen2LM and CosyVoice3LM share */
static cosy_status read_yaml_lm(const cosy_yaml *y, cosy_hparams *hp)
{
    COSY_TRY(yint(y, "llm.speech_token_size", &hp->speech_token_size));
    int mix[COSY_HP_MAX_LIST], n;
    COSY_TRY(ylist(y, "llm.mix_ratio", mix, &n));
    if (n != 2) return cosy_error(COSY_ERR_FORMAT, "%s: llm.mix_ratio must have 2 entries", yaml_name);
    hp->mix_text = mix[0];
    hp->mix_speech = mix[1];
    COSY_TRY(yexpect_tag(y, "llm.sampling", "!name:cosyvoice.utils.common.ras_sampling"));
    COSY_TRY(yfloat(y, "llm.sampling.top_p", &hp->top_p));
    COSY_TRY(yint(y, "llm.sampling.top_k", &hp->top_k));
    COSY_TRY(yint(y, "llm.sampling.win_size", &hp->win_size));
    COSY_TRY(yfloat(y, "llm.sampling.tau_r", &hp->tau_r));
    int llm_in, llm_out;
    COSY_TRY(yint(y, "llm.llm_input_size", &llm_in));
    COSY_TRY(yint(y, "llm.llm_output_size", &llm_out));
    if (llm_in != hp->lm_hidden || llm_out != hp->lm_hidden)
        return cosy_error(COSY_ERR_SHAPE, "%s: llm_input_size/llm_output_size %d/%d disagree with hidden_size %d in config.json", yaml_name,
                          llm_in, llm_out, hp->lm_hidden);

    return COSY_OK;
}

/* flow: what CausalMaskedDiffWithXvec and CausalMaskedDiffWithDiT share */
static cosy_status read_yaml_flow(const cosy_yaml *y, cosy_hparams *hp)
{
    COSY_TRY(yint(y, "flow.input_frame_rate", &hp->token_frame_rate));
    COSY_TRY(yint(y, "flow.token_mel_ratio", &hp->token_mel_ratio));
    COSY_TRY(yint(y, "flow.input_size", &hp->flow_input_size));
    COSY_TRY(yint(y, "flow.output_size", &hp->flow_output_size));
    COSY_TRY(yint(y, "flow.spk_embed_dim", &hp->spk_embed_dim));
    COSY_TRY(yint(y, "flow.vocab_size", &hp->flow_vocab));
    COSY_TRY(yint(y, "flow.pre_lookahead_len", &hp->pre_lookahead_len));
    return COSY_OK;
}

/* flow.decoder: CausalConditionalCFM, the same in both; CausalMaskedDiffWithXvec.inference and
 * CausalMaskedDiffWithDiT.inference both call it with n_timesteps=10 */
static cosy_status read_yaml_cfm(const cosy_yaml *y, cosy_hparams *hp)
{
    COSY_TRY(yint(y, "flow.decoder.in_channels", &hp->cfm_in_channels));
    COSY_TRY(yint(y, "flow.decoder.spk_emb_dim", &hp->cfm_spk_emb_dim));
    COSY_TRY(yfloat(y, "flow.decoder.cfm_params.content.sigma_min", &hp->cfm_sigma_min));
    COSY_TRY(yfloat(y, "flow.decoder.cfm_params.content.inference_cfg_rate", &hp->cfm_cfg_rate));
    COSY_TRY(yexpect(y, "flow.decoder.cfm_params.content.solver", "euler"));
    char sched[64];
    COSY_TRY(cosy_yaml_get_str(y, "flow.decoder.cfm_params.content.t_scheduler", sched, sizeof sched, NULL));
    hp->cfm_cosine_schedule = !strcmp(sched, "cosine");
    hp->cfm_steps = 10;
    return COSY_OK;
}

/* hift: what HiFTGenerator and CausalHiFTGenerator share */
static cosy_status read_yaml_hift(const cosy_yaml *y, cosy_hparams *hp)
{
    COSY_TRY(yint(y, "sample_rate", &hp->sample_rate)); /* the model's output rate: the vocoder's */
    COSY_TRY(yint(y, "hift.in_channels", &hp->hift_in_channels));
    COSY_TRY(yint(y, "hift.base_channels", &hp->hift_base_channels));
    COSY_TRY(yint(y, "hift.nb_harmonics", &hp->hift_nb_harmonics));
    int hift_sr;
    COSY_TRY(yint(y, "hift.sampling_rate", &hift_sr));
    if (hift_sr != hp->sample_rate)
        return cosy_error(COSY_ERR_FORMAT, "%s: hift.sampling_rate %d differs from sample_rate %d", yaml_name, hift_sr, hp->sample_rate);
    if (hift_sr == 22050)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: a 22050 Hz HiFT (SineGen v1, CosyVoice 1) is not supported", yaml_name);
    COSY_TRY(yfloat(y, "hift.nsf_alpha", &hp->nsf_alpha));
    COSY_TRY(yfloat(y, "hift.nsf_sigma", &hp->nsf_sigma));
    COSY_TRY(yfloat(y, "hift.nsf_voiced_threshold", &hp->nsf_voiced_threshold));
    int nk;
    COSY_TRY(ylist(y, "hift.upsample_rates", hp->upsample_rates, &hp->n_upsample));
    COSY_TRY(ylist(y, "hift.upsample_kernel_sizes", hp->upsample_kernel_sizes, &nk));
    if (nk != hp->n_upsample) return cosy_error(COSY_ERR_FORMAT, "%s: hift upsample_rates and upsample_kernel_sizes differ in length", yaml_name);
    COSY_TRY(yint(y, "hift.istft_params.n_fft", &hp->istft_n_fft));
    COSY_TRY(yint(y, "hift.istft_params.hop_len", &hp->istft_hop));
    int rows;
    COSY_TRY(ylist(y, "hift.resblock_kernel_sizes", hp->resblock_kernel_sizes, &hp->n_resblock_kernels));
    COSY_TRY(ymatrix(y, "hift.resblock_dilation_sizes", hp->resblock_dilations, &rows, &hp->n_resblock_dilations));
    if (rows != hp->n_resblock_kernels) return cosy_error(COSY_ERR_FORMAT, "%s: hift resblock kernel and dilation lists differ in length", yaml_name);
    int nsk;
    COSY_TRY(ylist(y, "hift.source_resblock_kernel_sizes", hp->source_resblock_kernel_sizes, &nsk));
    COSY_TRY(ymatrix(y, "hift.source_resblock_dilation_sizes", hp->source_resblock_dilations, &rows, &hp->n_source_dilations));
    if (rows != nsk) return cosy_error(COSY_ERR_FORMAT, "%s: hift source resblock kernel and dilation lists differ in length", yaml_name);
    /* HiFTGenerator zips the source branch lists with the upsample rates: the shortest wins */
    hp->n_source_resblocks = nsk < hp->n_upsample ? nsk : hp->n_upsample;
    COSY_TRY(yfloat(y, "hift.lrelu_slope", &hp->lrelu_slope));
    COSY_TRY(yfloat(y, "hift.audio_limit", &hp->audio_limit));
    COSY_TRY(yint(y, "hift.f0_predictor.cond_channels", &hp->f0_cond_channels));
    COSY_TRY(yint(y, "hift.f0_predictor.num_class", &hp->f0_num_class));
    int f0_in;
    COSY_TRY(yint(y, "hift.f0_predictor.in_channels", &f0_in));
    if (f0_in != hp->hift_in_channels) return cosy_error(COSY_ERR_FORMAT, "%s: f0_predictor.in_channels %d != hift.in_channels %d", yaml_name, f0_in, hp->hift_in_channels);

    return COSY_OK;
}

/* feat_extractor: the prompt mel */
static cosy_status read_yaml_feat(const cosy_yaml *y, cosy_hparams *hp)
{
    COSY_TRY(yint(y, "feat_extractor.n_fft", &hp->feat_n_fft));
    COSY_TRY(yint(y, "feat_extractor.num_mels", &hp->feat_num_mels));
    COSY_TRY(yint(y, "feat_extractor.hop_size", &hp->feat_hop));
    COSY_TRY(yint(y, "feat_extractor.win_size", &hp->feat_win));
    COSY_TRY(yfloat(y, "feat_extractor.fmin", &hp->feat_fmin));
    char fmax[64];
    int null;
    COSY_TRY(cosy_yaml_get_str(y, "feat_extractor.fmax", fmax, sizeof fmax, &null));
    if (null) hp->feat_fmax = 0.0f;
    else COSY_TRY(yfloat(y, "feat_extractor.fmax", &hp->feat_fmax));
    return COSY_OK;
}

static cosy_status read_yaml_v2(const cosy_yaml *y, cosy_hparams *hp)
{
    COSY_TRY(yexpect_tag(y, "llm", "!new:cosyvoice.llm.llm.Qwen2LM"));
    COSY_TRY(yexpect_tag(y, "flow", "!new:cosyvoice.flow.flow.CausalMaskedDiffWithXvec"));
    COSY_TRY(yexpect_tag(y, "flow.encoder", "!new:cosyvoice.transformer.upsample_encoder.UpsampleConformerEncoder"));
    COSY_TRY(yexpect_tag(y, "flow.decoder", "!new:cosyvoice.flow.flow_matching.CausalConditionalCFM"));
    COSY_TRY(yexpect_tag(y, "flow.decoder.estimator", "!new:cosyvoice.flow.decoder.CausalConditionalDecoder"));
    COSY_TRY(yexpect_tag(y, "hift", "!new:cosyvoice.hifigan.generator.HiFTGenerator"));
    COSY_TRY(yexpect_tag(y, "hift.f0_predictor", "!new:cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor"));

    COSY_TRY(yint(y, "flow.encoder.static_chunk_size", &hp->chunk_size));
    COSY_TRY(yint(y, "flow.decoder.estimator.num_decoding_left_chunks", &hp->num_decoding_left_chunks));

    COSY_TRY(read_yaml_lm(y, hp));
    COSY_TRY(read_yaml_flow(y, hp));
    COSY_TRY(yint(y, "flow.encoder.input_size", &hp->enc_input_size));
    COSY_TRY(yint(y, "flow.encoder.output_size", &hp->enc_output_size));
    COSY_TRY(yint(y, "flow.encoder.attention_heads", &hp->enc_heads));
    COSY_TRY(yint(y, "flow.encoder.linear_units", &hp->enc_ffn));
    COSY_TRY(yint(y, "flow.encoder.num_blocks", &hp->enc_blocks));
    COSY_TRY(yexpect(y, "flow.encoder.input_layer", "linear"));
    COSY_TRY(yexpect(y, "flow.encoder.pos_enc_layer_type", "rel_pos_espnet"));
    COSY_TRY(yexpect(y, "flow.encoder.selfattention_layer_type", "rel_selfattn"));
    if (cosy_yaml_has(y, "flow.encoder.use_cnn_module")) COSY_TRY(yexpect(y, "flow.encoder.use_cnn_module", "False"));
    if (cosy_yaml_has(y, "flow.encoder.macaron_style")) COSY_TRY(yexpect(y, "flow.encoder.macaron_style", "False"));
    if (cosy_yaml_has(y, "flow.encoder.normalize_before")) COSY_TRY(yexpect(y, "flow.encoder.normalize_before", "True"));
    hp->enc_static_chunk = hp->chunk_size;
    hp->enc_up_blocks = 4;  /* UpsampleConformerEncoder hard-codes 4 up-blocks */
    hp->enc_up_stride = 2;  /* and Upsample1D(stride=2) */
    if (hp->enc_up_stride != hp->token_mel_ratio)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: token_mel_ratio %d differs from the encoder's x2 upsampling", yaml_name, hp->token_mel_ratio);

    COSY_TRY(read_yaml_cfm(y, hp));
    COSY_TRY(yint(y, "flow.decoder.estimator.in_channels", &hp->est_in_channels));
    COSY_TRY(yint(y, "flow.decoder.estimator.out_channels", &hp->est_out_channels));
    int ch[COSY_HP_MAX_LIST], n;
    COSY_TRY(ylist(y, "flow.decoder.estimator.channels", ch, &n));
    if (n != 1)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: flow.decoder.estimator.channels has %d entries; "
                          "CosyVoice2 uses one (down/up-sampling U-Net levels are not supported)", yaml_name, n);
    hp->est_channels = ch[0];
    COSY_TRY(yint(y, "flow.decoder.estimator.attention_head_dim", &hp->est_head_dim));
    COSY_TRY(yint(y, "flow.decoder.estimator.n_blocks", &hp->est_n_blocks));
    COSY_TRY(yint(y, "flow.decoder.estimator.num_mid_blocks", &hp->est_mid_blocks));
    COSY_TRY(yint(y, "flow.decoder.estimator.num_heads", &hp->est_heads));
    COSY_TRY(yint(y, "flow.decoder.estimator.static_chunk_size", &hp->est_static_chunk));
    char act[64];
    COSY_TRY(cosy_yaml_get_str(y, "flow.decoder.estimator.act_fn", act, sizeof act, NULL));
    hp->est_act_gelu = !strcmp(act, "gelu");
    if (!hp->est_act_gelu)
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: flow.decoder.estimator.act_fn '%s' (only 'gelu' is supported)", yaml_name, act);

    COSY_TRY(read_yaml_hift(y, hp));
    COSY_TRY(read_yaml_feat(y, hp));
    return COSY_OK;
}

/* cosyvoice3.yaml: CosyVoice3LM, CausalMaskedDiffWithDiT (PreLookaheadLayer + DiT), CausalHiFTGenerator.
 * The LM's special ids, silent tokens and the DiT's fixed sub-module sizes are set by set_common_v3
 * (the official code hard-codes them); everything the yaml names is read from it. */
static cosy_status read_yaml_v3(const cosy_yaml *y, cosy_hparams *hp)
{
    COSY_TRY(yexpect_tag(y, "llm", "!new:cosyvoice.llm.llm.CosyVoice3LM"));
    COSY_TRY(yexpect_tag(y, "flow", "!new:cosyvoice.flow.flow.CausalMaskedDiffWithDiT"));
    COSY_TRY(yexpect_tag(y, "flow.pre_lookahead_layer", "!new:cosyvoice.transformer.upsample_encoder.PreLookaheadLayer"));
    COSY_TRY(yexpect_tag(y, "flow.decoder", "!new:cosyvoice.flow.flow_matching.CausalConditionalCFM"));
    COSY_TRY(yexpect_tag(y, "flow.decoder.estimator", "!new:cosyvoice.flow.DiT.dit.DiT"));
    COSY_TRY(yexpect_tag(y, "hift", "!new:cosyvoice.hifigan.generator.CausalHiFTGenerator"));
    COSY_TRY(yexpect_tag(y, "hift.f0_predictor", "!new:cosyvoice.hifigan.f0_predictor.CausalConvRNNF0Predictor"));

    COSY_TRY(yint(y, "chunk_size", &hp->chunk_size));
    COSY_TRY(yint(y, "flow.decoder.estimator.num_decoding_left_chunks", &hp->num_decoding_left_chunks));
    COSY_TRY(read_yaml_lm(y, hp));
    /* CosyVoice3LM: 200 specials after the speech tokens (sos, eos, task, fill, reserved), all stop ids */
    if (hp->speech_token_size > (1 << 21))
        return cosy_error(COSY_ERR_FORMAT, "%s: llm.speech_token_size %d is out of range", yaml_name, hp->speech_token_size);
    hp->lm_speech_vocab = hp->speech_token_size + 200;
    hp->lm_sos = hp->speech_token_size;
    hp->lm_eos = hp->speech_token_size + 1;
    hp->lm_task_id = hp->speech_token_size + 2;
    hp->lm_fill = hp->speech_token_size + 3;
    hp->lm_stop_begin = hp->speech_token_size;
    hp->lm_stop_end = hp->speech_token_size + 199;

    COSY_TRY(read_yaml_flow(y, hp));
    int in, look;
    COSY_TRY(yint(y, "flow.pre_lookahead_layer.in_channels", &in));
    COSY_TRY(yint(y, "flow.pre_lookahead_layer.channels", &hp->pre_lookahead_channels));
    COSY_TRY(yint(y, "flow.pre_lookahead_layer.pre_lookahead_len", &look));
    if (in != hp->flow_input_size || look != hp->pre_lookahead_len)
        return cosy_error(COSY_ERR_FORMAT, "%s: pre_lookahead_layer in_channels/pre_lookahead_len %d/%d differ from flow.input_size/pre_lookahead_len %d/%d",
                          yaml_name, in, look, hp->flow_input_size, hp->pre_lookahead_len);

    COSY_TRY(read_yaml_cfm(y, hp));
    COSY_TRY(yint(y, "flow.decoder.estimator.dim", &hp->dit_dim));
    COSY_TRY(yint(y, "flow.decoder.estimator.depth", &hp->dit_depth));
    COSY_TRY(yint(y, "flow.decoder.estimator.heads", &hp->dit_heads));
    COSY_TRY(yint(y, "flow.decoder.estimator.dim_head", &hp->dit_dim_head));
    COSY_TRY(yint(y, "flow.decoder.estimator.ff_mult", &hp->dit_ff_mult));
    COSY_TRY(yint(y, "flow.decoder.estimator.mel_dim", &hp->dit_mel_dim));
    COSY_TRY(yint(y, "flow.decoder.estimator.mu_dim", &hp->dit_mu_dim));
    COSY_TRY(yint(y, "flow.decoder.estimator.spk_dim", &hp->dit_spk_dim));
    COSY_TRY(yint(y, "flow.decoder.estimator.out_channels", &hp->dit_out_channels));
    COSY_TRY(yint(y, "flow.decoder.estimator.static_chunk_size", &hp->est_static_chunk));
    /* x-transformers RotaryEmbedding(dim_head): inv_freq has dim_head / 2 entries (its values are
     * the tensor flow.est.rotary_embed.inv_freq, so rope theta is whatever the checkpoint holds) */
    hp->dit_rope_dim = hp->dit_dim_head / 2;

    COSY_TRY(read_yaml_hift(y, hp));
    int causal_look;
    COSY_TRY(yint(y, "hift.conv_pre_look_right", &causal_look));
    hp->conv_pre_look_right = causal_look;
    return read_yaml_feat(y, hp);
}

static cosy_status json_int(const cJSON *root, const char *path, const char *key, int *out, int required)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) {
        if (!required) return COSY_OK;
        return cosy_error(COSY_ERR_MISSING, "%s: key %s is missing", path, key);
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 2e9)
        return cosy_error(COSY_ERR_FORMAT, "%s: key %s is not an integer", path, key);
    *out = (int)v->valuedouble;
    return COSY_OK;
}

static cosy_status json_float(const cJSON *root, const char *path, const char *key, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return cosy_error(COSY_ERR_MISSING, "%s: key %s is missing", path, key);
    if (!cJSON_IsNumber(v)) return cosy_error(COSY_ERR_FORMAT, "%s: key %s is not a number", path, key);
    *out = (float)v->valuedouble;
    return COSY_OK;
}

static cosy_status read_qwen_config(const char *path, cosy_hparams *hp)
{
    char *text;
    COSY_TRY(cosy_file_read_all(path, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cosy_error(COSY_ERR_FORMAT, "%s: not a JSON object", path);
    }
    cosy_status st = COSY_OK;
    if (st == COSY_OK) st = json_int(root, path, "hidden_size", &hp->lm_hidden, 1);
    if (st == COSY_OK) st = json_int(root, path, "num_hidden_layers", &hp->lm_layers, 1);
    if (st == COSY_OK) st = json_int(root, path, "num_attention_heads", &hp->lm_heads, 1);
    if (st == COSY_OK) st = json_int(root, path, "num_key_value_heads", &hp->lm_kv_heads, 1);
    if (st == COSY_OK) st = json_int(root, path, "intermediate_size", &hp->lm_ffn, 1);
    if (st == COSY_OK) st = json_int(root, path, "vocab_size", &hp->lm_text_vocab, 1);
    if (st == COSY_OK) st = json_float(root, path, "rope_theta", &hp->lm_rope_theta);
    if (st == COSY_OK) st = json_float(root, path, "rms_norm_eps", &hp->lm_rms_eps);
    if (st == COSY_OK && hp->lm_heads > 0) {
        hp->lm_head_dim = hp->lm_hidden / hp->lm_heads;
        st = json_int(root, path, "head_dim", &hp->lm_head_dim, 0);
    }
    if (st == COSY_OK) {
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
        if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
            st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: hidden_act must be \"silu\"", path);
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
        if (st == COSY_OK && rs && !cJSON_IsNull(rs))
            st = cosy_error(COSY_ERR_UNSUPPORTED, "%s: rope_scaling is not supported", path);
    }
    cJSON_Delete(root);
    return st;
}

cosy_status cosy_hparams_read_yaml(const cosy_yaml *y, cosy_hparams *hp)
{
    if (hp->family == COSY_FAMILY_COSYVOICE3) {
        yaml_name = "cosyvoice3.yaml";
        return read_yaml_v3(y, hp);
    }
    yaml_name = "cosyvoice2.yaml";
    return read_yaml_v2(y, hp);
}

cosy_status cosy_hparams_from_model_dir(const char *model_dir, cosy_hparams *hp)
{
    memset(hp, 0, sizeof *hp);
    set_common(hp);
    char *cfg = cosy_path_join(model_dir, "CosyVoice-BlankEN/config.json");
    char *yml2 = cosy_path_join(model_dir, "cosyvoice2.yaml"), *yml3 = cosy_path_join(model_dir, "cosyvoice3.yaml");
    cosy_status st = (!cfg || !yml2 || !yml3) ? cosy_error(COSY_ERR_NOMEM, "out of memory") : COSY_OK;
    /* AutoModel picks the class by the yaml the directory has */
    const char *yml = NULL;
    if (st == COSY_OK) {
        if (cosy_file_exists(yml2)) yml = yml2;
        else if (cosy_file_exists(yml3)) { yml = yml3; set_common_v3(hp); }
        else st = cosy_error(COSY_ERR_MISSING, "%s: not a CosyVoice2 or CosyVoice3 model directory (no cosyvoice2.yaml or cosyvoice3.yaml)", model_dir);
    }
    yaml_name = yml == yml3 ? "cosyvoice3.yaml" : "cosyvoice2.yaml";
    if (st == COSY_OK) st = read_qwen_config(cfg, hp);
    cosy_yaml *y = NULL;
    if (st == COSY_OK) st = cosy_yaml_load(yml, &y);
    if (st == COSY_OK) {
        st = cosy_hparams_read_yaml(y, hp);
        if (st != COSY_OK && strncmp(cosy_last_error(), yml, strlen(yml)) != 0 && strncmp(cosy_last_error(), yaml_name, 15) == 0)
            cosy_error_prefix(st, "%s", model_dir);
    }
    cosy_yaml_free(y);
    if (st == COSY_OK) {
        st = cosy_hparams_validate(hp);
        if (st != COSY_OK) cosy_error_prefix(st, "%s", model_dir);
    }
    free(cfg);
    free(yml2);
    free(yml3);
    return st;
}
