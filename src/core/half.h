/*
 * half.h — scalar conversions between f32 and the 16-bit float formats (IEEE f16, bfloat16).
 * Bulk conversions with SIMD live in convert.c; these are the exact reference versions.
 */
#ifndef COSY_HALF_H
#define COSY_HALF_H

#include <stdint.h>
#include <string.h>

static inline float cosy_f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t cosy_bits_from_f32(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float cosy_bf16_to_f32(uint16_t h) { return cosy_f32_from_bits((uint32_t)h << 16); }

/* Round to nearest even, as torch does when casting to bfloat16; NaN stays NaN. */
static inline uint16_t cosy_f32_to_bf16(float f)
{
    uint32_t u = cosy_bits_from_f32(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float cosy_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) {
        if (man == 0) return cosy_f32_from_bits(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return cosy_f32_from_bits(sign | 0x7f800000u | (man << 13));
    return cosy_f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

/* Round to nearest even; overflow to inf. */
static inline uint16_t cosy_f32_to_f16(float f)
{
    uint32_t u = cosy_bits_from_f32(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (absu > 0x7f800000u ? 0x200u : 0));
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520 -> inf */
    if (absu < 0x38800000u) {                                   /* below 2^-14: subnormal or 0 */
        if (absu < 0x33000000u) return (uint16_t)sign;          /* < 2^-25 rounds to 0 */
        uint32_t e = absu >> 23, m = (absu & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* value / 2^-24 = m * 2^(e - 126), with 14 <= shift <= 24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u); /* round mantissa to 10 bits */
    return (uint16_t)(sign | (((r >> 23) - 112u) << 10) | ((r >> 13) & 0x3ffu));
}

#endif
