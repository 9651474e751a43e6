/* arch.c — the tensor lists of CosyVoice2 and CosyVoice3 (see arch.h). Mirrors the module trees of
 * Qwen2LM / CosyVoice3LM, CausalMaskedDiffWithXvec (UpsampleConformerEncoder + CausalConditionalDecoder)
 * / CausalMaskedDiffWithDiT (PreLookaheadLayer + DiT) and HiFTGenerator / CausalHiFTGenerator in the
 * reference (cosyvoice/llm/llm.py, cosyvoice/flow/{flow,flow_matching,decoder}.py, cosyvoice/flow/DiT/,
 * cosyvoice/transformer/upsample_encoder.py, cosyvoice/hifigan/{generator,f0_predictor}.py). */
#include "model/arch.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    arch_visit_fn fn;
    void *ctx;
    int stopped;
} visitor;

static void emit(visitor *v, arch_source file, const char *source, arch_init init, int ndim, int64_t d0, int64_t d1,
                 int64_t d2, const char *name_fmt, ...)
{
    if (v->stopped) return;
    arch_tensor t;
    memset(&t, 0, sizeof t);
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(t.name, sizeof t.name, name_fmt, ap);
    va_end(ap);
    snprintf(t.source, sizeof t.source, "%s", source);
    t.file = file;
    t.ndim = ndim;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.shape[2] = d2;
    t.init = init;
    t.is_matrix = ndim >= 2;
    if (v->fn(v->ctx, &t)) v->stopped = 1;
}

/* ---------------------------------------------------------------- LM */

static void lm_tensors(visitor *v, const cosy_hparams *hp)
{
    const int64_t H = hp->lm_hidden, Q = (int64_t)hp->lm_heads * hp->lm_head_dim, KV = (int64_t)hp->lm_kv_heads * hp->lm_head_dim;
    const int64_t F = hp->lm_ffn, SV = hp->lm_speech_vocab;
    char src[112];
    emit(v, ARCH_SRC_LLM, "llm.model.model.embed_tokens.weight", ARCH_INIT_EMBED, 2, hp->lm_text_vocab, H, 0, "lm.embd_text.weight");
    /* CosyVoice3LM has no llm_embedding: sos and task_id are rows of speech_embedding */
    if (hp->family != COSY_FAMILY_COSYVOICE3)
        emit(v, ARCH_SRC_LLM, "llm_embedding.weight", ARCH_INIT_EMBED, 2, 2, H, 0, "lm.embd_special.weight");
    emit(v, ARCH_SRC_LLM, "speech_embedding.weight", ARCH_INIT_EMBED, 2, SV, H, 0, "lm.embd_speech.weight");
    for (int i = 0; i < hp->lm_layers; i++) {
#define L(suffix) (snprintf(src, sizeof src, "llm.model.model.layers.%d.%s", i, suffix), src)
        emit(v, ARCH_SRC_LLM, L("input_layernorm.weight"), ARCH_INIT_ONES, 1, H, 0, 0, "lm.blk.%d.attn_norm.weight", i);
        emit(v, ARCH_SRC_LLM, L("self_attn.q_proj.weight"), ARCH_INIT_WEIGHT, 2, Q, H, 0, "lm.blk.%d.attn_q.weight", i);
        emit(v, ARCH_SRC_LLM, L("self_attn.q_proj.bias"), ARCH_INIT_SMALL, 1, Q, 0, 0, "lm.blk.%d.attn_q.bias", i);
        emit(v, ARCH_SRC_LLM, L("self_attn.k_proj.weight"), ARCH_INIT_WEIGHT, 2, KV, H, 0, "lm.blk.%d.attn_k.weight", i);
        emit(v, ARCH_SRC_LLM, L("self_attn.k_proj.bias"), ARCH_INIT_SMALL, 1, KV, 0, 0, "lm.blk.%d.attn_k.bias", i);
        emit(v, ARCH_SRC_LLM, L("self_attn.v_proj.weight"), ARCH_INIT_WEIGHT, 2, KV, H, 0, "lm.blk.%d.attn_v.weight", i);
        emit(v, ARCH_SRC_LLM, L("self_attn.v_proj.bias"), ARCH_INIT_SMALL, 1, KV, 0, 0, "lm.blk.%d.attn_v.bias", i);
        emit(v, ARCH_SRC_LLM, L("self_attn.o_proj.weight"), ARCH_INIT_WEIGHT, 2, H, Q, 0, "lm.blk.%d.attn_o.weight", i);
        emit(v, ARCH_SRC_LLM, L("post_attention_layernorm.weight"), ARCH_INIT_ONES, 1, H, 0, 0, "lm.blk.%d.ffn_norm.weight", i);
        emit(v, ARCH_SRC_LLM, L("mlp.gate_proj.weight"), ARCH_INIT_WEIGHT, 2, F, H, 0, "lm.blk.%d.ffn_gate.weight", i);
        emit(v, ARCH_SRC_LLM, L("mlp.up_proj.weight"), ARCH_INIT_WEIGHT, 2, F, H, 0, "lm.blk.%d.ffn_up.weight", i);
        emit(v, ARCH_SRC_LLM, L("mlp.down_proj.weight"), ARCH_INIT_WEIGHT, 2, H, F, 0, "lm.blk.%d.ffn_down.weight", i);
#undef L
    }
    emit(v, ARCH_SRC_LLM, "llm.model.model.norm.weight", ARCH_INIT_ONES, 1, H, 0, 0, "lm.out_norm.weight");
    emit(v, ARCH_SRC_LLM, "llm_decoder.weight", ARCH_INIT_WEIGHT, 2, SV, H, 0, "lm.head.weight");
    if (hp->lm_has_head_bias) emit(v, ARCH_SRC_LLM, "llm_decoder.bias", ARCH_INIT_ZEROS, 1, SV, 0, 0, "lm.head.bias");
}

/* ---------------------------------------------------------------- flow */

/* Our flow names: "flow." + the flow.pt key, with "encoder." shortened to "enc." and
 * "decoder.estimator." to "est." (GGUF tools cap names at 64 bytes). */
static void flow_emit(visitor *v, arch_init init, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *key_fmt, ...)
{
    char key[112];
    va_list ap;
    va_start(ap, key_fmt);
    vsnprintf(key, sizeof key, key_fmt, ap);
    va_end(ap);
    const char *rest = key, *infix = "";
    if (!strncmp(key, "encoder.", 8)) { rest = key + 8; infix = "enc."; }
    else if (!strncmp(key, "decoder.estimator.", 18)) { rest = key + 18; infix = "est."; }
    emit(v, ARCH_SRC_FLOW, key, init, ndim, d0, d1, d2, "flow.%s%s", infix, rest);
}

static void linear(visitor *v, int64_t out, int64_t in, int bias, const char *prefix)
{
    flow_emit(v, ARCH_INIT_WEIGHT, 2, out, in, 0, "%s.weight", prefix);
    if (bias) flow_emit(v, ARCH_INIT_SMALL, 1, out, 0, 0, "%s.bias", prefix);
}

static void layer_norm(visitor *v, int64_t dim, const char *prefix)
{
    flow_emit(v, ARCH_INIT_ONES, 1, dim, 0, 0, "%s.weight", prefix);
    flow_emit(v, ARCH_INIT_ZEROS, 1, dim, 0, 0, "%s.bias", prefix);
}

static void conv(visitor *v, int64_t out, int64_t in, int64_t k, const char *prefix)
{
    flow_emit(v, ARCH_INIT_WEIGHT, 3, out, in, k, "%s.weight", prefix);
    flow_emit(v, ARCH_INIT_SMALL, 1, out, 0, 0, "%s.bias", prefix);
}

/* ConformerEncoderLayer with RelPositionMultiHeadedAttention, no conv module, no macaron */
static void conformer_layer(visitor *v, const cosy_hparams *hp, const char *prefix)
{
    const int64_t E = hp->enc_output_size, heads = hp->enc_heads;
    char p[128];
    snprintf(p, sizeof p, "%s.self_attn.pos_bias_u", prefix);
    flow_emit(v, ARCH_INIT_SMALL, 2, heads, E / heads, 0, "%s", p);
    snprintf(p, sizeof p, "%s.self_attn.pos_bias_v", prefix);
    flow_emit(v, ARCH_INIT_SMALL, 2, heads, E / heads, 0, "%s", p);
    const char *proj[] = {"linear_q", "linear_k", "linear_v", "linear_out"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s.self_attn.%s", prefix, proj[i]);
        linear(v, E, E, 1, p);
    }
    snprintf(p, sizeof p, "%s.self_attn.linear_pos", prefix);
    linear(v, E, E, 0, p);
    snprintf(p, sizeof p, "%s.feed_forward.w_1", prefix);
    linear(v, hp->enc_ffn, E, 1, p);
    snprintf(p, sizeof p, "%s.feed_forward.w_2", prefix);
    linear(v, E, hp->enc_ffn, 1, p);
    snprintf(p, sizeof p, "%s.norm_ff", prefix);
    layer_norm(v, E, p);
    snprintf(p, sizeof p, "%s.norm_mha", prefix);
    layer_norm(v, E, p);
}

/* CausalResnetBlock1D(dim -> dim_out) */
static void resnet_block(visitor *v, const cosy_hparams *hp, int64_t dim, int64_t dim_out, const char *prefix)
{
    const int64_t T = 4 * (int64_t)hp->est_channels;
    char p[128];
    snprintf(p, sizeof p, "%s.mlp.1", prefix);
    linear(v, dim_out, T, 1, p);
    snprintf(p, sizeof p, "%s.block1.block.0", prefix);
    conv(v, dim_out, dim, 3, p);
    snprintf(p, sizeof p, "%s.block1.block.2", prefix);
    layer_norm(v, dim_out, p);
    snprintf(p, sizeof p, "%s.block2.block.0", prefix);
    conv(v, dim_out, dim_out, 3, p);
    snprintf(p, sizeof p, "%s.block2.block.2", prefix);
    layer_norm(v, dim_out, p);
    snprintf(p, sizeof p, "%s.res_conv", prefix);
    conv(v, dim_out, dim, 1, p);
}

/* BasicTransformerBlock (matcha/diffusers) with GELU feed-forward, mult 4 */
static void transformer_block(visitor *v, const cosy_hparams *hp, const char *prefix)
{
    const int64_t C = hp->est_channels, inner = (int64_t)hp->est_heads * hp->est_head_dim;
    char p[128];
    snprintf(p, sizeof p, "%s.norm1", prefix);
    layer_norm(v, C, p);
    const char *qkv[] = {"to_q", "to_k", "to_v"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s.attn1.%s", prefix, qkv[i]);
        linear(v, inner, C, 0, p);
    }
    snprintf(p, sizeof p, "%s.attn1.to_out.0", prefix);
    linear(v, C, inner, 1, p);
    snprintf(p, sizeof p, "%s.norm3", prefix);
    layer_norm(v, C, p);
    snprintf(p, sizeof p, "%s.ff.net.0.proj", prefix);
    linear(v, 4 * C, C, 1, p);
    snprintf(p, sizeof p, "%s.ff.net.2", prefix);
    linear(v, C, 4 * C, 1, p);
}

static void flow_tensors(visitor *v, const cosy_hparams *hp)
{
    const int64_t E = hp->enc_output_size, C = hp->est_channels, IN = hp->est_in_channels;
    char p[128];
    flow_emit(v, ARCH_INIT_EMBED, 2, hp->flow_vocab, hp->flow_input_size, 0, "input_embedding.weight");
    linear(v, hp->flow_output_size, hp->spk_embed_dim, 1, "spk_embed_affine_layer");
    linear(v, E, hp->enc_input_size, 1, "encoder.embed.out.0");
    layer_norm(v, E, "encoder.embed.out.1");
    conv(v, E, E, hp->pre_lookahead_len + 1, "encoder.pre_lookahead_layer.conv1");
    conv(v, E, E, 3, "encoder.pre_lookahead_layer.conv2");
    for (int i = 0; i < hp->enc_blocks; i++) {
        snprintf(p, sizeof p, "encoder.encoders.%d", i);
        conformer_layer(v, hp, p);
    }
    conv(v, E, E, 2 * hp->enc_up_stride + 1, "encoder.up_layer.conv");
    linear(v, E, E, 1, "encoder.up_embed.out.0");
    layer_norm(v, E, "encoder.up_embed.out.1");
    for (int i = 0; i < hp->enc_up_blocks; i++) {
        snprintf(p, sizeof p, "encoder.up_encoders.%d", i);
        conformer_layer(v, hp, p);
    }
    layer_norm(v, E, "encoder.after_norm");
    linear(v, hp->flow_output_size, E, 1, "encoder_proj");

    linear(v, 4 * C, IN, 1, "decoder.estimator.time_mlp.linear_1");
    linear(v, 4 * C, 4 * C, 1, "decoder.estimator.time_mlp.linear_2");
    resnet_block(v, hp, IN, C, "decoder.estimator.down_blocks.0.0");
    for (int j = 0; j < hp->est_n_blocks; j++) {
        snprintf(p, sizeof p, "decoder.estimator.down_blocks.0.1.%d", j);
        transformer_block(v, hp, p);
    }
    conv(v, C, C, 3, "decoder.estimator.down_blocks.0.2");
    for (int i = 0; i < hp->est_mid_blocks; i++) {
        snprintf(p, sizeof p, "decoder.estimator.mid_blocks.%d.0", i);
        resnet_block(v, hp, C, C, p);
        for (int j = 0; j < hp->est_n_blocks; j++) {
            snprintf(p, sizeof p, "decoder.estimator.mid_blocks.%d.1.%d", i, j);
            transformer_block(v, hp, p);
        }
    }
    resnet_block(v, hp, 2 * C, C, "decoder.estimator.up_blocks.0.0");
    for (int j = 0; j < hp->est_n_blocks; j++) {
        snprintf(p, sizeof p, "decoder.estimator.up_blocks.0.1.%d", j);
        transformer_block(v, hp, p);
    }
    conv(v, C, C, 3, "decoder.estimator.up_blocks.0.2");
    conv(v, C, C, 3, "decoder.estimator.final_block.block.0");
    layer_norm(v, C, "decoder.estimator.final_block.block.2");
    conv(v, hp->est_out_channels, C, 1, "decoder.estimator.final_proj");
}

/* CosyVoice3: CausalMaskedDiffWithDiT = token embedding, PreLookaheadLayer and the DiT estimator
 * (cosyvoice/flow/DiT/{dit,modules}.py); no encoder. */
static void flow_tensors_v3(visitor *v, const cosy_hparams *hp)
{
    const int64_t D = hp->dit_dim, inner = (int64_t)hp->dit_heads * hp->dit_dim_head, FF = D * hp->dit_ff_mult;
    char p[128];
    flow_emit(v, ARCH_INIT_EMBED, 2, hp->flow_vocab, hp->flow_input_size, 0, "input_embedding.weight");
    linear(v, hp->flow_output_size, hp->spk_embed_dim, 1, "spk_embed_affine_layer");
    conv(v, hp->pre_lookahead_channels, hp->flow_input_size, hp->pre_lookahead_len + 1, "pre_lookahead_layer.conv1");
    conv(v, hp->flow_input_size, hp->pre_lookahead_channels, 3, "pre_lookahead_layer.conv2");
    linear(v, D, hp->dit_time_freq_dim, 1, "decoder.estimator.time_embed.time_mlp.0");
    linear(v, D, D, 1, "decoder.estimator.time_embed.time_mlp.2");
    /* InputEmbedding: proj(cat[x, cond, mu, spks]) + ConvPositionEmbedding (two grouped convs) */
    linear(v, D, 2 * (int64_t)hp->dit_mel_dim + hp->dit_mu_dim + hp->dit_spk_dim, 1, "decoder.estimator.input_embed.proj");
    conv(v, D, D / hp->dit_conv_pos_groups, hp->dit_conv_pos_kernel, "decoder.estimator.input_embed.conv_pos_embed.conv1.0");
    conv(v, D, D / hp->dit_conv_pos_groups, hp->dit_conv_pos_kernel, "decoder.estimator.input_embed.conv_pos_embed.conv2.0");
    /* a persistent buffer of x-transformers' RotaryEmbedding, stored in flow.pt */
    flow_emit(v, ARCH_INIT_ROPE, 1, hp->dit_rope_dim, 0, 0, "decoder.estimator.rotary_embed.inv_freq");
    for (int i = 0; i < hp->dit_depth; i++) {
        /* DiTBlock: AdaLayerNormZero (6 modulations), attention with biases, GELU(tanh) feed-forward */
#define B(s) (snprintf(p, sizeof p, "decoder.estimator.transformer_blocks.%d.%s", i, s), p)
        linear(v, 6 * D, D, 1, B("attn_norm.linear"));
        linear(v, inner, D, 1, B("attn.to_q"));
        linear(v, inner, D, 1, B("attn.to_k"));
        linear(v, inner, D, 1, B("attn.to_v"));
        linear(v, D, inner, 1, B("attn.to_out.0"));
        linear(v, FF, D, 1, B("ff.ff.0.0"));
        linear(v, D, FF, 1, B("ff.ff.2"));
#undef B
    }
    linear(v, 2 * D, D, 1, "decoder.estimator.norm_out.linear"); /* AdaLayerNormZero_Final: scale, shift */
    linear(v, hp->dit_out_channels, D, 1, "decoder.estimator.proj_out");
}

/* ---------------------------------------------------------------- HiFT */

static void hift_emit(visitor *v, arch_init init, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *key_fmt, ...)
{
    char key[112];
    va_list ap;
    va_start(ap, key_fmt);
    vsnprintf(key, sizeof key, key_fmt, ap);
    va_end(ap);
    emit(v, ARCH_SRC_HIFT, key, init, ndim, d0, d1, d2, "hift.%s", key);
}

static void hift_conv(visitor *v, int64_t out, int64_t in, int64_t k, const char *prefix)
{
    hift_emit(v, ARCH_INIT_WEIGHT, 3, out, in, k, "%s.weight", prefix);
    hift_emit(v, ARCH_INIT_SMALL, 1, out, 0, 0, "%s.bias", prefix);
}

/* hifigan ResBlock: convs1 (dilated) / convs2 with Snake activations */
static void hift_resblock(visitor *v, int64_t ch, int k, int n_dil, const char *prefix)
{
    char p[128];
    for (int j = 0; j < n_dil; j++) {
        snprintf(p, sizeof p, "%s.convs1.%d", prefix, j);
        hift_conv(v, ch, ch, k, p);
    }
    for (int j = 0; j < n_dil; j++) {
        snprintf(p, sizeof p, "%s.convs2.%d", prefix, j);
        hift_conv(v, ch, ch, k, p);
    }
    for (int j = 0; j < n_dil; j++) hift_emit(v, ARCH_INIT_ONES, 1, ch, 0, 0, "%s.activations1.%d.alpha", prefix, j);
    for (int j = 0; j < n_dil; j++) hift_emit(v, ARCH_INIT_ONES, 1, ch, 0, 0, "%s.activations2.%d.alpha", prefix, j);
}

static void hift_tensors(visitor *v, const cosy_hparams *hp)
{
    const int64_t base = hp->hift_base_channels, nfft2 = hp->istft_n_fft + 2;
    char p[128];
    hift_emit(v, ARCH_INIT_WEIGHT, 2, 1, hp->hift_nb_harmonics + 1, 0, "m_source.l_linear.weight");
    hift_emit(v, ARCH_INIT_SMALL, 1, 1, 0, 0, "m_source.l_linear.bias");
    /* CausalHiFTGenerator: conv_pre looks conv_pre_look_right frames ahead (kernel look + 1), the
     * upsamplers are nearest + Conv1d ([out, in, k]); HiFTGenerator: kernel 7, ConvTranspose1d ([in, out, k]) */
    const int causal = hp->hift_causal;
    hift_conv(v, base, hp->hift_in_channels, causal ? hp->conv_pre_look_right + 1 : 7, "conv_pre");
    for (int i = 0; i < hp->n_upsample; i++) {
        snprintf(p, sizeof p, "ups.%d", i);
        if (causal) hift_emit(v, ARCH_INIT_WEIGHT, 3, base >> (i + 1), base >> i, hp->upsample_kernel_sizes[i], "%s.weight", p);
        else hift_emit(v, ARCH_INIT_WEIGHT, 3, base >> i, base >> (i + 1), hp->upsample_kernel_sizes[i], "%s.weight", p);
        hift_emit(v, ARCH_INIT_SMALL, 1, base >> (i + 1), 0, 0, "%s.bias", p);
    }
    /* source branch: cumulative downsampling rates, reversed */
    int cum[COSY_HP_MAX_LIST + 1];
    cum[0] = 1;
    for (int i = 1; i < hp->n_upsample; i++) cum[i] = cum[i - 1] * hp->upsample_rates[hp->n_upsample - i];
    for (int i = 0; i < hp->n_source_resblocks; i++) {
        int u = cum[hp->n_upsample - 1 - i];
        snprintf(p, sizeof p, "source_downs.%d", i);
        hift_conv(v, base >> (i + 1), nfft2, u == 1 ? 1 : 2 * u, p);
        snprintf(p, sizeof p, "source_resblocks.%d", i);
        hift_resblock(v, base >> (i + 1), hp->source_resblock_kernel_sizes[i], hp->n_source_dilations, p);
    }
    for (int i = 0; i < hp->n_upsample; i++)
        for (int j = 0; j < hp->n_resblock_kernels; j++) {
            snprintf(p, sizeof p, "resblocks.%d", i * hp->n_resblock_kernels + j);
            hift_resblock(v, base >> (i + 1), hp->resblock_kernel_sizes[j], hp->n_resblock_dilations, p);
        }
    hift_conv(v, nfft2, base >> hp->n_upsample, 7, "conv_post");
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "f0_predictor.condnet.%d", 2 * i);
        /* CausalConvRNNF0Predictor's first conv looks right (kernel f0_first_kernel); the rest are k3 */
        int k = i == 0 && causal ? hp->f0_first_kernel : 3;
        hift_conv(v, hp->f0_cond_channels, i == 0 ? hp->hift_in_channels : hp->f0_cond_channels, k, p);
    }
    hift_emit(v, ARCH_INIT_WEIGHT, 2, hp->f0_num_class, hp->f0_cond_channels, 0, "f0_predictor.classifier.weight");
    hift_emit(v, ARCH_INIT_SMALL, 1, hp->f0_num_class, 0, 0, "f0_predictor.classifier.bias");
}

void cosy_arch_tensors(const cosy_hparams *hp, arch_visit_fn fn, void *ctx)
{
    visitor v = {fn, ctx, 0};
    lm_tensors(&v, hp);
    if (hp->family == COSY_FAMILY_COSYVOICE3) flow_tensors_v3(&v, hp);
    else flow_tensors(&v, hp);
    hift_tensors(&v, hp);
}

static int count_one(void *ctx, const arch_tensor *t)
{
    (void)t;
    (*(int *)ctx)++;
    return 0;
}

int cosy_arch_count(const cosy_hparams *hp)
{
    int n = 0;
    cosy_arch_tensors(hp, count_one, &n);
    return n;
}

typedef struct {
    const char *name;
    arch_tensor *out;
    int found;
} find_ctx;

static int find_one(void *ctx, const arch_tensor *t)
{
    find_ctx *f = ctx;
    if (strcmp(t->name, f->name) != 0) return 0;
    *f->out = *t;
    f->found = 1;
    return 1;
}

int cosy_arch_find(const cosy_hparams *hp, const char *name, arch_tensor *t)
{
    find_ctx f = {name, t, 0};
    cosy_arch_tensors(hp, find_one, &f);
    return f.found;
}
