/* construction_rng.c — CosyVoice3's construction-time source buffers (see construction_rng.h). */
#include "model/construction_rng.h"
#include "core/error.h"

#define CFM_NOISE_VALUES (80LL * 15000) /* CausalConditionalCFM: torch.randn([1, 80, 50 * 300]) */
#define SOURCE_SECONDS 300              /* SineGen2 / SourceModuleHnNSF: torch.rand(1, 300 * sampling_rate, ...) */

int64_t cosy_cv3_source_buffer_len(const cosy_hparams *hp) { return (int64_t)SOURCE_SECONDS * hp->sample_rate; }

/* 32-bit draws torch's normal_ takes for n >= 16 floats (normal_fill) */
static int64_t normal_draws(int64_t n) { return n + (n % 16 ? 16 : 0); }

cosy_status cosy_cv3_source_rng(const cosy_hparams *hp, float *rand_ini, cosy_torch_rng *g)
{
    const int64_t dim = hp->hift_nb_harmonics + 1;
    if (hp->family != COSY_FAMILY_COSYVOICE3) return cosy_error(COSY_ERR_INVALID_ARG, "source buffers: not a CosyVoice3 model");
    const int64_t embedding = (int64_t)hp->flow_vocab * hp->flow_input_size;
    if (embedding < 16) return cosy_error(COSY_ERR_UNSUPPORTED, "source buffers: a token embedding of %lld values", (long long)embedding);
    cosy_torch_rng_seed(g, 0);
    int64_t skip = normal_draws(CFM_NOISE_VALUES) + normal_draws(embedding);
    skip += (int64_t)hp->flow_output_size * hp->spk_embed_dim + hp->flow_output_size;          /* spk_embed_affine_layer */
    const int64_t C = hp->f0_cond_channels;
    skip += C * hp->hift_in_channels * hp->f0_first_kernel + C + 4 * (C * C * 3 + C);             /* condnet 0, 2, 4, 6, 8 */
    skip += (int64_t)hp->f0_num_class * C + hp->f0_num_class;                                    /* classifier */
    cosy_torch_rng_skip(g, skip);
    float ini[64];
    if (dim > 64) return cosy_error(COSY_ERR_UNSUPPORTED, "source buffers: %lld harmonics", (long long)dim);
    cosy_torch_rand(g, ini, dim);
    ini[0] = 0.0f;
    if (rand_ini) for (int64_t i = 0; i < dim; i++) rand_ini[i] = ini[i];
    return COSY_OK;
}

cosy_status cosy_cv3_source_buffers(const cosy_hparams *hp, float *rand_ini, float *sine_waves, int64_t n_samples, float *uv,
                                    int64_t n_uv)
{
    const int64_t len = cosy_cv3_source_buffer_len(hp), dim = hp->hift_nb_harmonics + 1;
    if (hp->family != COSY_FAMILY_COSYVOICE3) return cosy_error(COSY_ERR_INVALID_ARG, "source buffers: not a CosyVoice3 model");
    if (n_samples < 0 || n_samples > len || n_uv < 0 || n_uv > len)
        return cosy_error(COSY_ERR_INVALID_ARG, "source buffers: %lld/%lld samples asked of %lld", (long long)n_samples, (long long)n_uv,
                          (long long)len);
    cosy_torch_rng g;
    COSY_TRY(cosy_cv3_source_rng(hp, rand_ini, &g));
    cosy_torch_rand(&g, sine_waves, n_samples * dim);
    if (uv) {
        cosy_torch_rng_skip(&g, (len - n_samples) * dim + dim + 1); /* the rest of sine_waves, l_linear (dim weights, 1 bias) */
        cosy_torch_rand(&g, uv, n_uv);
    }
    return COSY_OK;
}
