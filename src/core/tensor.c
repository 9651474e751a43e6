/* tensor.c — dtype sizes and element-type conversions (see tensor.h). */
#include "core/tensor.h"
#include "core/half.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int cosy_dtype_valid(int dtype)
{
    switch (dtype) {
    case COSY_DTYPE_F32: case COSY_DTYPE_F16: case COSY_DTYPE_Q8_0: case COSY_DTYPE_Q4_0: case COSY_DTYPE_I8:
    case COSY_DTYPE_I16: case COSY_DTYPE_I32: case COSY_DTYPE_I64: case COSY_DTYPE_F64:
    case COSY_DTYPE_BF16:
        return 1;
    }
    return 0;
}

int cosy_dtype_block(cosy_dtype dtype) { return dtype == COSY_DTYPE_Q8_0 || dtype == COSY_DTYPE_Q4_0 ? 32 : 1; }

size_t cosy_dtype_nbytes(cosy_dtype dtype, int64_t n)
{
    switch (dtype) {
    case COSY_DTYPE_F32: case COSY_DTYPE_I32: return (size_t)n * 4;
    case COSY_DTYPE_F16: case COSY_DTYPE_BF16: case COSY_DTYPE_I16: return (size_t)n * 2;
    case COSY_DTYPE_I8: return (size_t)n;
    case COSY_DTYPE_I64: case COSY_DTYPE_F64: return (size_t)n * 8;
    case COSY_DTYPE_Q8_0: return (size_t)(n / 32) * sizeof(cosy_block_q8_0);
    case COSY_DTYPE_Q4_0: return (size_t)(n / 32) * sizeof(cosy_block_q4_0);
    case COSY_DTYPE_AUTO: return 0;
    }
    return 0;
}

const char *cosy_dtype_name(cosy_dtype dtype)
{
    switch (dtype) {
    case COSY_DTYPE_AUTO: return "auto";
    case COSY_DTYPE_F32: return "f32";
    case COSY_DTYPE_F16: return "f16";
    case COSY_DTYPE_BF16: return "bf16";
    case COSY_DTYPE_Q8_0: return "q8_0";
    case COSY_DTYPE_Q4_0: return "q4_0";
    case COSY_DTYPE_I8: return "i8";
    case COSY_DTYPE_I16: return "i16";
    case COSY_DTYPE_I32: return "i32";
    case COSY_DTYPE_I64: return "i64";
    case COSY_DTYPE_F64: return "f64";
    }
    return "?";
}

int cosy_dtype_from_name(const char *name, cosy_dtype *out)
{
    static const cosy_dtype all[] = {COSY_DTYPE_AUTO, COSY_DTYPE_F32, COSY_DTYPE_F16, COSY_DTYPE_BF16, COSY_DTYPE_Q8_0,
                                     COSY_DTYPE_Q4_0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (name && !strcmp(name, cosy_dtype_name(all[i]))) { *out = all[i]; return 0; }
    return -1;
}

int64_t cosy_tensor_numel(const cosy_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

const char *cosy_shape_str(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t used = 0;
    used += (size_t)snprintf(buf + used, size - used, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

void cosy_convert_to_f32(float *dst, const void *src, cosy_dtype src_dtype, int64_t n)
{
    switch (src_dtype) {
    case COSY_DTYPE_F32: memmove(dst, src, (size_t)n * 4); break;
    case COSY_DTYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = cosy_f16_to_f32(s[i]);
        break;
    }
    case COSY_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = cosy_bf16_to_f32(s[i]);
        break;
    }
    case COSY_DTYPE_Q8_0: {
        const cosy_block_q8_0 *b = src;
        for (int64_t i = 0; i < n / 32; i++) {
            float d = cosy_f16_to_f32(b[i].d);
            for (int j = 0; j < 32; j++) dst[i * 32 + j] = d * (float)b[i].qs[j];
        }
        break;
    }
    case COSY_DTYPE_Q4_0: {
        const cosy_block_q4_0 *b = src;
        for (int64_t i = 0; i < n / 32; i++) {
            float d = cosy_f16_to_f32(b[i].d);
            for (int j = 0; j < 16; j++) {
                dst[i * 32 + j] = d * (float)((b[i].qs[j] & 15) - 8);
                dst[i * 32 + j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
            }
        }
        break;
    }
    default: memset(dst, 0, (size_t)n * 4); break;
    }
}

void cosy_convert_from_f32(void *dst, cosy_dtype dst_dtype, const float *src, int64_t n)
{
    switch (dst_dtype) {
    case COSY_DTYPE_F32: memmove(dst, src, (size_t)n * 4); break;
    case COSY_DTYPE_F16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = cosy_f32_to_f16(src[i]);
        break;
    }
    case COSY_DTYPE_BF16: {
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = cosy_f32_to_bf16(src[i]);
        break;
    }
    case COSY_DTYPE_Q8_0: {
        cosy_block_q8_0 *b = dst;
        for (int64_t i = 0; i < n / 32; i++) {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(src[i * 32 + j]));
            float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
            b[i].d = cosy_f32_to_f16(d);
            for (int j = 0; j < 32; j++) b[i].qs[j] = (int8_t)lrintf(src[i * 32 + j] * id);
        }
        break;
    }
    case COSY_DTYPE_Q4_0: {
        /* the signed value of largest magnitude maps to nibble 0 (d = max / -8), so the grid is
         * asymmetric toward that sign and the largest weight is exact; nibble = trunc(x/d + 8.5)
         * rounds half up, capped at 15 (ggml's quantize_row_q4_0_ref) */
        cosy_block_q4_0 *b = dst;
        for (int64_t i = 0; i < n / 32; i++) {
            const float *x = src + i * 32;
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; j++)
                if (fabsf(x[j]) > amax) {
                    amax = fabsf(x[j]);
                    max = x[j];
                }
            float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            b[i].d = cosy_f32_to_f16(d);
            for (int j = 0; j < 16; j++) {
                int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[j + 16] * id + 8.5f);
                lo = lo < 15 ? lo : 15;
                hi = hi < 15 ? hi : 15;
                b[i].qs[j] = (uint8_t)(lo | hi << 4);
            }
        }
        break;
    }
    default: break;
    }
}
