/*
 * onnx.c — the ONNX ModelProto reader (onnx.h says why it is our own wire-format reader).
 *
 * Protobuf wire format in brief: a message is a run of fields, each a varint key (field number << 3 |
 * wire type) then a value: wire type 0 a varint, 1 eight bytes, 2 a varint length then that many bytes
 * (strings, sub-messages, packed repeated numbers), 5 four bytes. Repeated numeric fields come either
 * packed (one length-delimited run) or one field per element; readers must take both. Field numbers are
 * those of onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
 * ValueInfoProto/TypeProto/TensorShapeProto, OperatorSetIdProto); fields we do not need are skipped.
 *
 * Every message is parsed twice: once to count its repeated fields, once to fill arrays of exactly
 * that size from one allocation pool owned by the model, so there is no realloc and one free.
 * Every read is checked against the end of the enclosing message; failures name the file and the byte
 * offset of the field that was bad.
 */
#include "io/onnx.h"

#include "core/error.h"
#include "core/file.h"
#include "core/half.h"

#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ allocation pool */

typedef struct pool_block {
    struct pool_block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} pool_block;

struct onnx_index {
    pool_block *blocks;
    /* open-addressing tables: name -> index + 1 (0 = empty slot) */
    int *node_by_name, *producer, *init_by_name;
    size_t cap;
};

static void *pool_alloc(onnx_index *ix, size_t bytes)
{
    bytes = (bytes + 15) & ~(size_t)15;
    pool_block *b = ix->blocks;
    if (!b || b->size - b->used < bytes) {
        size_t size = bytes > 65536 ? bytes : 65536;
        b = malloc(sizeof *b + size);
        if (!b) return NULL;
        b->size = size;
        b->used = 0;
        b->next = ix->blocks;
        ix->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += bytes;
    memset(p, 0, bytes);
    return p;
}

/* ------------------------------------------------------------------ wire-format reader */

typedef struct {
    const unsigned char *base; /* start of the file: offsets in messages are from here */
    const unsigned char *p, *end;
    const char *path;
    onnx_index *ix;
} reader;

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

static cosy_status fail_at(const reader *r, const unsigned char *at, const char *fmt, ...) COSY_PRINTF(3, 4);
static cosy_status fail_at(const reader *r, const unsigned char *at, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cosy_error(COSY_ERR_FORMAT, "%s: byte %zu: %s", r->path, (size_t)(at - r->base), msg);
}

static cosy_status read_varint(reader *r, uint64_t *out)
{
    uint64_t v = 0;
    const unsigned char *start = r->p;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return fail_at(r, start, "truncated varint");
        unsigned char b = *r->p++;
        if (shift == 63 && b > 1) return fail_at(r, start, "varint longer than 64 bits");
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return COSY_OK;
        }
    }
    return fail_at(r, start, "varint longer than 10 bytes");
}

/* The next field's number and wire type; `at` = where its key starts. */
static cosy_status read_key(reader *r, uint32_t *field, int *wire, const unsigned char **at)
{
    *at = r->p;
    uint64_t key;
    COSY_TRY(read_varint(r, &key));
    *wire = (int)(key & 7);
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff) return fail_at(r, *at, "invalid field number %llu", (unsigned long long)(key >> 3));
    *field = (uint32_t)(key >> 3);
    if (*wire != WIRE_VARINT && *wire != WIRE_I64 && *wire != WIRE_LEN && *wire != WIRE_I32)
        return fail_at(r, *at, "field %u has wire type %d (groups and unknown wire types are not protobuf 3)", *field, *wire);
    return COSY_OK;
}

/* A length-delimited value: sub covers its bytes. */
static cosy_status read_len(reader *r, reader *sub)
{
    const unsigned char *start = r->p;
    uint64_t n;
    COSY_TRY(read_varint(r, &n));
    if (n > (uint64_t)(r->end - r->p))
        return fail_at(r, start, "length %llu runs past the end of its message (%zu bytes left)", (unsigned long long)n, (size_t)(r->end - r->p));
    *sub = *r;
    sub->end = r->p + n;
    r->p += n;
    return COSY_OK;
}

static cosy_status skip_value(reader *r, int wire, const unsigned char *at)
{
    uint64_t v;
    reader sub;
    switch (wire) {
    case WIRE_VARINT: return read_varint(r, &v);
    case WIRE_LEN: return read_len(r, &sub);
    case WIRE_I64:
    case WIRE_I32: {
        size_t n = wire == WIRE_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n) return fail_at(r, at, "truncated fixed-size field");
        r->p += n;
        return COSY_OK;
    }
    }
    return fail_at(r, at, "unknown wire type %d", wire);
}

static cosy_status expect_wire(reader *r, const unsigned char *at, uint32_t field, int wire, int want, const char *what)
{
    if (wire != want) return fail_at(r, at, "%s (field %u) has wire type %d, %d expected", what, field, wire, want);
    return COSY_OK;
}

static cosy_status read_string(reader *r, char **out, size_t *len)
{
    reader s;
    COSY_TRY(read_len(r, &s));
    size_t n = (size_t)(s.end - s.p);
    char *c = pool_alloc(r->ix, n + 1);
    if (!c) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r->path);
    memcpy(c, s.p, n);
    c[n] = 0;
    *out = c;
    if (len) *len = n;
    return COSY_OK;
}

static cosy_status read_fixed32(reader *r, const unsigned char *at, uint32_t *out)
{
    if (r->end - r->p < 4) return fail_at(r, at, "truncated 4-byte field");
    *out = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    return COSY_OK;
}

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Repeated numbers, packed or not. Counts them (dst == NULL) or stores them as int64 / float.
 * kind: WIRE_VARINT (int64 values), WIRE_I32 (float values). */
static cosy_status repeated_numbers(reader *r, int wire, const unsigned char *at, int kind, int64_t *ints, float *floats, int *count,
                                    const char *what)
{
    if (wire == WIRE_LEN) {
        reader s;
        COSY_TRY(read_len(r, &s));
        if (kind == WIRE_I32) {
            if ((s.end - s.p) % 4) return fail_at(r, at, "packed %s: %zu bytes is not a whole number of floats", what, (size_t)(s.end - s.p));
            int n = (int)((s.end - s.p) / 4);
            for (int k = 0; floats && k < n; k++) {
                uint32_t u;
                COSY_TRY(read_fixed32(&s, at, &u));
                floats[*count + k] = bits_to_float(u);
            }
            *count += n;
            return COSY_OK;
        }
        while (s.p < s.end) {
            uint64_t v;
            COSY_TRY(read_varint(&s, &v));
            if (ints) ints[*count] = (int64_t)v;
            (*count)++;
        }
        return COSY_OK;
    }
    if (kind == WIRE_I32 && wire == WIRE_I32) {
        uint32_t u;
        COSY_TRY(read_fixed32(r, at, &u));
        if (floats) floats[*count] = bits_to_float(u);
        (*count)++;
        return COSY_OK;
    }
    if (kind == WIRE_VARINT && wire == WIRE_VARINT) {
        uint64_t v;
        COSY_TRY(read_varint(r, &v));
        if (ints) ints[*count] = (int64_t)v;
        (*count)++;
        return COSY_OK;
    }
    return fail_at(r, at, "%s has wire type %d", what, wire);
}

/* ------------------------------------------------------------------ TensorProto */

enum {
    TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_SEGMENT = 3, TENSOR_FLOAT_DATA = 4, TENSOR_INT32_DATA = 5, TENSOR_STRING_DATA = 6,
    TENSOR_INT64_DATA = 7, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9, TENSOR_DOUBLE_DATA = 10, TENSOR_UINT64_DATA = 11,
    TENSOR_EXTERNAL_DATA = 13, TENSOR_DATA_LOCATION = 14,
};

/* Bytes per element in raw_data; 0 for strings and unknown types. */
static size_t element_size(int t)
{
    switch (t) {
    case ONNX_FLOAT: case ONNX_INT32: case ONNX_UINT32: return 4;
    case ONNX_UINT8: case ONNX_INT8: case ONNX_BOOL: return 1;
    case ONNX_UINT16: case ONNX_INT16: case ONNX_FLOAT16: case ONNX_BFLOAT16: return 2;
    case ONNX_INT64: case ONNX_DOUBLE: case ONNX_UINT64: return 8;
    }
    return 0;
}

/* The typed field that holds type t's values when raw_data is not used (onnx.proto's comments). */
static int typed_field(int t)
{
    switch (t) {
    case ONNX_FLOAT: return TENSOR_FLOAT_DATA;
    case ONNX_INT32: case ONNX_INT16: case ONNX_INT8: case ONNX_UINT16: case ONNX_UINT8: case ONNX_BOOL: case ONNX_FLOAT16:
    case ONNX_BFLOAT16: return TENSOR_INT32_DATA;
    case ONNX_INT64: return TENSOR_INT64_DATA;
    case ONNX_DOUBLE: return TENSOR_DOUBLE_DATA;
    case ONNX_UINT32: case ONNX_UINT64: return TENSOR_UINT64_DATA;
    case ONNX_STRING: return TENSOR_STRING_DATA;
    }
    return 0;
}

const char *onnx_type_name(int t)
{
    switch (t) {
    case ONNX_FLOAT: return "float"; case ONNX_UINT8: return "uint8"; case ONNX_INT8: return "int8";
    case ONNX_UINT16: return "uint16"; case ONNX_INT16: return "int16"; case ONNX_INT32: return "int32";
    case ONNX_INT64: return "int64"; case ONNX_STRING: return "string"; case ONNX_BOOL: return "bool";
    case ONNX_FLOAT16: return "float16"; case ONNX_DOUBLE: return "double"; case ONNX_UINT32: return "uint32";
    case ONNX_UINT64: return "uint64"; case ONNX_BFLOAT16: return "bfloat16";
    }
    return "unknown type";
}

/* The number of values stored in typed field `field` of the TensorProto bytes [p, end). */
static cosy_status count_typed(reader *r, int field_wanted, int64_t *count)
{
    *count = 0;
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(r, &field, &wire, &at));
        if ((int)field != field_wanted) {
            COSY_TRY(skip_value(r, wire, at));
            continue;
        }
        if (field_wanted == TENSOR_STRING_DATA) {
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "string_data"));
            reader s;
            COSY_TRY(read_len(r, &s));
            (*count)++;
        } else if (field_wanted == TENSOR_FLOAT_DATA || field_wanted == TENSOR_DOUBLE_DATA) {
            size_t width = field_wanted == TENSOR_FLOAT_DATA ? 4 : 8;
            if (wire == WIRE_LEN) {
                reader s;
                COSY_TRY(read_len(r, &s));
                if ((size_t)(s.end - s.p) % width) return fail_at(r, at, "packed tensor data is not a whole number of elements");
                *count += (int64_t)((size_t)(s.end - s.p) / width);
            } else {
                if (wire != (width == 4 ? WIRE_I32 : WIRE_I64)) return fail_at(r, at, "tensor data field %u has wire type %d", field, wire);
                COSY_TRY(skip_value(r, wire, at));
                (*count)++;
            }
        } else {
            int n = 0;
            COSY_TRY(repeated_numbers(r, wire, at, WIRE_VARINT, NULL, NULL, &n, "tensor data"));
            *count += n;
        }
    }
    return COSY_OK;
}

static cosy_status parse_tensor(reader *r, onnx_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->offset = (size_t)(r->p - r->base);
    t->msg = r->p;
    t->msg_size = (size_t)(r->end - r->p);
    t->name = "";
    int has_data_type = 0;
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(r, &field, &wire, &at));
        switch (field) {
        case TENSOR_DIMS: {
            int64_t dims[64];
            int n = 0;
            /* count first: a packed run may hold more than fits */
            reader probe = *r;
            COSY_TRY(repeated_numbers(&probe, wire, at, WIRE_VARINT, NULL, NULL, &n, "dims"));
            if (t->ndim + n > ONNX_MAX_DIMS) return fail_at(r, at, "tensor has more than %d dimensions", ONNX_MAX_DIMS);
            n = 0;
            COSY_TRY(repeated_numbers(r, wire, at, WIRE_VARINT, dims, NULL, &n, "dims"));
            for (int k = 0; k < n; k++) {
                if (dims[k] < 0 || dims[k] > ((int64_t)1 << 40)) return fail_at(r, at, "tensor dimension %lld is out of range", (long long)dims[k]);
                t->dims[t->ndim++] = dims[k];
            }
            break;
        }
        case TENSOR_DATA_TYPE: {
            uint64_t v;
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_VARINT, "data_type"));
            COSY_TRY(read_varint(r, &v));
            t->data_type = (int)v;
            has_data_type = 1;
            break;
        }
        case TENSOR_NAME:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "name"));
            COSY_TRY(read_string(r, &t->name, NULL));
            break;
        case TENSOR_RAW_DATA: {
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "raw_data"));
            reader s;
            COSY_TRY(read_len(r, &s));
            t->raw = s.p;
            t->numel = (int64_t)(s.end - s.p); /* bytes for now */
            break;
        }
        case TENSOR_SEGMENT:
            return fail_at(r, at, "tensor %s is stored in segments (not supported)", t->name);
        case TENSOR_EXTERNAL_DATA:
        case TENSOR_DATA_LOCATION: {
            uint64_t v = 1;
            if (field == TENSOR_DATA_LOCATION) {
                COSY_TRY(expect_wire(r, at, field, wire, WIRE_VARINT, "data_location"));
                COSY_TRY(read_varint(r, &v));
            } else {
                COSY_TRY(skip_value(r, wire, at));
            }
            if (v != 0)
                return fail_at(r, at, "tensor %s keeps its values in an external file (external data is not supported: save the model "
                                      "with its weights inside the .onnx file)", t->name[0] ? t->name : "(unnamed)");
            break;
        }
        default:
            COSY_TRY(skip_value(r, wire, at));
        }
    }
    const unsigned char *start = t->msg;
    if (!has_data_type || t->data_type == 0) return fail_at(r, start, "tensor %s has no data type", t->name);
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->dims[d] && numel > ((int64_t)1 << 40) / t->dims[d]) return fail_at(r, start, "tensor %s is too large", t->name);
        numel *= t->dims[d];
    }
    if (t->raw) {
        size_t es = element_size(t->data_type);
        int64_t bytes = t->numel;
        if (!es) return fail_at(r, start, "tensor %s: raw_data of type %s is not supported", t->name, onnx_type_name(t->data_type));
        if ((uint64_t)bytes != (uint64_t)numel * es)
            return fail_at(r, start, "tensor %s: raw_data holds %lld bytes, its dims need %lld", t->name, (long long)bytes,
                           (long long)(numel * (int64_t)es));
    } else {
        int field = typed_field(t->data_type);
        if (!field) return fail_at(r, start, "tensor %s has unsupported data type %d", t->name, t->data_type);
        reader scan = *r;
        scan.p = t->msg;
        scan.end = t->msg + t->msg_size;
        int64_t count;
        COSY_TRY(count_typed(&scan, field, &count));
        if (count != numel)
            return fail_at(r, start, "tensor %s holds %lld values, its dims need %lld", t->name, (long long)count, (long long)numel);
    }
    t->numel = numel;
    return COSY_OK;
}

/* Converting reads: element k of the tensor as double / int64. */
static double raw_as_double(int type, const unsigned char *p)
{
    union { float f; double d; int8_t i8; uint8_t u8; int16_t i16; uint16_t u16; int32_t i32; uint32_t u32; int64_t i64; uint64_t u64; } v;
    memcpy(&v, p, element_size(type));
    switch (type) {
    case ONNX_FLOAT: return v.f;
    case ONNX_DOUBLE: return v.d;
    case ONNX_INT8: return v.i8;
    case ONNX_UINT8: case ONNX_BOOL: return v.u8;
    case ONNX_INT16: return v.i16;
    case ONNX_UINT16: return v.u16;
    case ONNX_FLOAT16: return cosy_f16_to_f32(v.u16);
    case ONNX_BFLOAT16: return cosy_bf16_to_f32(v.u16);
    case ONNX_INT32: return v.i32;
    case ONNX_UINT32: return v.u32;
    case ONNX_INT64: return (double)v.i64;
    case ONNX_UINT64: return (double)v.u64;
    }
    return 0;
}

static int is_float_type(int t) { return t == ONNX_FLOAT || t == ONNX_DOUBLE || t == ONNX_FLOAT16 || t == ONNX_BFLOAT16; }

/* A floating value read as int64 (truncated): NaN, infinities and values beyond int64 are refused
 * (converting them is undefined behaviour in C). */
static cosy_status float_to_i64(const onnx_model *m, const onnx_tensor *t, int64_t k, double v, int64_t *out)
{
    if (!(isfinite(v) && v >= -9223372036854775808.0 && v < 9223372036854775808.0))
        return cosy_error(COSY_ERR_FORMAT, "%s: tensor %s: value %lld (%g) is not an integer in the int64 range", m->path, t->name,
                          (long long)k, v);
    *out = (int64_t)v;
    return COSY_OK;
}

/* Reads every value of t into f32 (dst_f) or int64 (dst_i). */
static cosy_status tensor_read(const onnx_model *m, const onnx_tensor *t, float *dst_f, int64_t *dst_i)
{
    const char *path = m->path;
    if (t->data_type == ONNX_STRING || !typed_field(t->data_type))
        return cosy_error(COSY_ERR_UNSUPPORTED, "%s: tensor %s: values of type %s cannot be read as numbers", path, t->name,
                          onnx_type_name(t->data_type));
    if (t->raw) {
        size_t es = element_size(t->data_type);
        if (dst_f && t->data_type == ONNX_FLOAT) { /* little-endian hosts only, as the rest of cosy */
            memcpy(dst_f, t->raw, (size_t)t->numel * 4);
            return COSY_OK;
        }
        if (dst_i && t->data_type == ONNX_INT64) {
            memcpy(dst_i, t->raw, (size_t)t->numel * 8);
            return COSY_OK;
        }
        for (int64_t k = 0; k < t->numel; k++) {
            const unsigned char *p = t->raw + (size_t)k * es;
            if (dst_f) dst_f[k] = (float)raw_as_double(t->data_type, p);
            else if (t->data_type == ONNX_INT64) memcpy(&dst_i[k], p, 8);
            else if (t->data_type == ONNX_UINT64) { uint64_t u; memcpy(&u, p, 8); dst_i[k] = (int64_t)u; }
            else if (is_float_type(t->data_type)) COSY_TRY(float_to_i64(m, t, k, raw_as_double(t->data_type, p), &dst_i[k]));
            else dst_i[k] = (int64_t)raw_as_double(t->data_type, p); /* integer types: exact in a double up to 2^53 */
        }
        return COSY_OK;
    }
    /* typed field: walk the message again (it was validated when loading) */
    reader r = {t->msg - t->offset, t->msg, t->msg + t->msg_size, path, m->index};
    const int want = typed_field(t->data_type);
    int64_t k = 0;
    while (r.p < r.end && k < t->numel) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(&r, &field, &wire, &at));
        if ((int)field != want) {
            COSY_TRY(skip_value(&r, wire, at));
            continue;
        }
        reader s = r;
        if (wire == WIRE_LEN) COSY_TRY(read_len(&r, &s));
        else {
            s.end = r.end;
            COSY_TRY(skip_value(&r, wire, at));
            s.end = r.p;
        }
        while (s.p < s.end && k < t->numel) {
            double dv = 0;
            int64_t iv = 0;
            if (want == TENSOR_FLOAT_DATA) {
                uint32_t u;
                COSY_TRY(read_fixed32(&s, at, &u));
                dv = bits_to_float(u);
            } else if (want == TENSOR_DOUBLE_DATA) {
                if (s.end - s.p < 8) return fail_at(&s, at, "truncated double");
                memcpy(&dv, s.p, 8);
                s.p += 8;
            } else {
                uint64_t u;
                COSY_TRY(read_varint(&s, &u));
                iv = (int64_t)u;
                if (want == TENSOR_INT32_DATA) iv = (int32_t)(uint32_t)u;
                dv = t->data_type == ONNX_FLOAT16 ? cosy_f16_to_f32((uint16_t)u)
                     : t->data_type == ONNX_BFLOAT16 ? cosy_bf16_to_f32((uint16_t)u)
                     : t->data_type == ONNX_UINT64 ? (double)u : (double)iv;
            }
            if (dst_f) dst_f[k] = (float)dv;
            else if (is_float_type(t->data_type)) COSY_TRY(float_to_i64(m, t, k, dv, &dst_i[k]));
            else dst_i[k] = iv;
            k++;
        }
    }
    if (k != t->numel) return cosy_error(COSY_ERR_FORMAT, "%s: tensor %s: %lld of %lld values found", path, t->name, (long long)k, (long long)t->numel);
    return COSY_OK;
}

cosy_status onnx_tensor_read_f32(const onnx_model *m, const onnx_tensor *t, float *dst) { return tensor_read(m, t, dst, NULL); }
cosy_status onnx_tensor_read_i64(const onnx_model *m, const onnx_tensor *t, int64_t *dst) { return tensor_read(m, t, NULL, dst); }

/* ------------------------------------------------------------------ AttributeProto, NodeProto */

enum { ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_S = 4, ATTR_T = 5, ATTR_FLOATS = 7, ATTR_INTS = 8, ATTR_TYPE = 20 };

static cosy_status parse_attribute(reader *r, onnx_attribute *a)
{
    a->name = "";
    /* pass 1: counts */
    reader c = *r;
    int n_ints = 0, n_floats = 0;
    while (c.p < c.end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(&c, &field, &wire, &at));
        if (field == ATTR_INTS) COSY_TRY(repeated_numbers(&c, wire, at, WIRE_VARINT, NULL, NULL, &n_ints, "ints"));
        else if (field == ATTR_FLOATS) COSY_TRY(repeated_numbers(&c, wire, at, WIRE_I32, NULL, NULL, &n_floats, "floats"));
        else COSY_TRY(skip_value(&c, wire, at));
    }
    if (n_ints) a->ints = pool_alloc(r->ix, sizeof(int64_t) * (size_t)n_ints);
    if (n_floats) a->floats = pool_alloc(r->ix, sizeof(float) * (size_t)n_floats);
    if ((n_ints && !a->ints) || (n_floats && !a->floats)) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r->path);
    /* pass 2 */
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(r, &field, &wire, &at));
        uint64_t v;
        switch (field) {
        case ATTR_NAME:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "attribute name"));
            COSY_TRY(read_string(r, &a->name, NULL));
            break;
        case ATTR_TYPE:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_VARINT, "attribute type"));
            COSY_TRY(read_varint(r, &v));
            a->type = (int)v;
            break;
        case ATTR_F: {
            uint32_t u;
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_I32, "attribute f"));
            COSY_TRY(read_fixed32(r, at, &u));
            a->f = bits_to_float(u);
            break;
        }
        case ATTR_I:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_VARINT, "attribute i"));
            COSY_TRY(read_varint(r, &v));
            a->i = (int64_t)v;
            break;
        case ATTR_S:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "attribute s"));
            COSY_TRY(read_string(r, &a->s, &a->s_len));
            break;
        case ATTR_T: {
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "attribute t"));
            reader s;
            COSY_TRY(read_len(r, &s));
            a->t = pool_alloc(r->ix, sizeof *a->t);
            if (!a->t) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r->path);
            COSY_TRY(parse_tensor(&s, a->t));
            break;
        }
        case ATTR_INTS: COSY_TRY(repeated_numbers(r, wire, at, WIRE_VARINT, a->ints, NULL, &a->n_ints, "ints")); break;
        case ATTR_FLOATS: COSY_TRY(repeated_numbers(r, wire, at, WIRE_I32, NULL, a->floats, &a->n_floats, "floats")); break;
        default: COSY_TRY(skip_value(r, wire, at));
        }
    }
    return COSY_OK;
}

enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5, NODE_DOMAIN = 7 };

static cosy_status parse_node(reader *r, onnx_node *n)
{
    n->offset = (size_t)(r->p - r->base);
    n->name = n->op_type = n->domain = "";
    reader c = *r;
    while (c.p < c.end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(&c, &field, &wire, &at));
        if (field == NODE_INPUT) n->n_inputs++;
        else if (field == NODE_OUTPUT) n->n_outputs++;
        else if (field == NODE_ATTRIBUTE) n->n_attrs++;
        COSY_TRY(skip_value(&c, wire, at));
    }
    n->inputs = pool_alloc(r->ix, sizeof(char *) * (size_t)(n->n_inputs + 1));
    n->outputs = pool_alloc(r->ix, sizeof(char *) * (size_t)(n->n_outputs + 1));
    n->attrs = pool_alloc(r->ix, sizeof(onnx_attribute) * (size_t)(n->n_attrs + 1));
    if (!n->inputs || !n->outputs || !n->attrs) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r->path);
    int ni = 0, no = 0, na = 0;
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(r, &field, &wire, &at));
        switch (field) {
        case NODE_INPUT:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "node input"));
            COSY_TRY(read_string(r, &n->inputs[ni++], NULL));
            break;
        case NODE_OUTPUT:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "node output"));
            COSY_TRY(read_string(r, &n->outputs[no++], NULL));
            break;
        case NODE_NAME:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "node name"));
            COSY_TRY(read_string(r, &n->name, NULL));
            break;
        case NODE_OP_TYPE:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "op_type"));
            COSY_TRY(read_string(r, &n->op_type, NULL));
            break;
        case NODE_DOMAIN:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "node domain"));
            COSY_TRY(read_string(r, &n->domain, NULL));
            break;
        case NODE_ATTRIBUTE: {
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "attribute"));
            reader s;
            COSY_TRY(read_len(r, &s));
            COSY_TRY(parse_attribute(&s, &n->attrs[na++]));
            break;
        }
        default: COSY_TRY(skip_value(r, wire, at));
        }
    }
    return COSY_OK;
}

/* ------------------------------------------------------------------ ValueInfoProto */

static cosy_status parse_shape(reader *r, onnx_value_info *v)
{
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(r, &field, &wire, &at));
        if (field != 1) { /* TensorShapeProto.dim */
            COSY_TRY(skip_value(r, wire, at));
            continue;
        }
        COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "dim"));
        reader d;
        COSY_TRY(read_len(r, &d));
        if (v->ndim >= ONNX_MAX_DIMS) return fail_at(r, at, "value %s has more than %d dimensions", v->name, ONNX_MAX_DIMS);
        int k = v->ndim++;
        v->dims[k] = -1;
        while (d.p < d.end) {
            uint32_t f2;
            int w2;
            const unsigned char *at2;
            COSY_TRY(read_key(&d, &f2, &w2, &at2));
            if (f2 == 1 && w2 == WIRE_VARINT) {
                uint64_t x;
                COSY_TRY(read_varint(&d, &x));
                v->dims[k] = (int64_t)x;
            } else if (f2 == 2 && w2 == WIRE_LEN) {
                COSY_TRY(read_string(&d, &v->dim_params[k], NULL));
            } else {
                COSY_TRY(skip_value(&d, w2, at2));
            }
        }
    }
    return COSY_OK;
}

static cosy_status parse_value_info(reader *r, onnx_value_info *v)
{
    v->name = "";
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(r, &field, &wire, &at));
        if (field == 1) {
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "value name"));
            COSY_TRY(read_string(r, &v->name, NULL));
        } else if (field == 2 && wire == WIRE_LEN) { /* TypeProto */
            reader tp;
            COSY_TRY(read_len(r, &tp));
            while (tp.p < tp.end) {
                uint32_t f2;
                int w2;
                const unsigned char *at2;
                COSY_TRY(read_key(&tp, &f2, &w2, &at2));
                if (f2 != 1 || w2 != WIRE_LEN) { /* only tensor_type */
                    COSY_TRY(skip_value(&tp, w2, at2));
                    continue;
                }
                reader tt;
                COSY_TRY(read_len(&tp, &tt));
                while (tt.p < tt.end) {
                    uint32_t f3;
                    int w3;
                    const unsigned char *at3;
                    COSY_TRY(read_key(&tt, &f3, &w3, &at3));
                    if (f3 == 1 && w3 == WIRE_VARINT) {
                        uint64_t x;
                        COSY_TRY(read_varint(&tt, &x));
                        v->elem_type = (int)x;
                    } else if (f3 == 2 && w3 == WIRE_LEN) {
                        reader sh;
                        COSY_TRY(read_len(&tt, &sh));
                        COSY_TRY(parse_shape(&sh, v));
                    } else {
                        COSY_TRY(skip_value(&tt, w3, at3));
                    }
                }
            }
        } else {
            COSY_TRY(skip_value(r, wire, at));
        }
    }
    return COSY_OK;
}

/* ------------------------------------------------------------------ GraphProto, ModelProto */

enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12, GRAPH_SPARSE_INITIALIZER = 15 };

static cosy_status parse_graph(reader *r, onnx_model *m)
{
    reader c = *r;
    int n_inputs_all = 0;
    while (c.p < c.end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(&c, &field, &wire, &at));
        if (field == GRAPH_NODE) m->n_nodes++;
        else if (field == GRAPH_INITIALIZER) m->n_initializers++;
        else if (field == GRAPH_INPUT) n_inputs_all++;
        else if (field == GRAPH_OUTPUT) m->n_outputs++;
        else if (field == GRAPH_SPARSE_INITIALIZER) return fail_at(r, at, "the graph has sparse initializers (not supported)");
        COSY_TRY(skip_value(&c, wire, at));
    }
    m->nodes = pool_alloc(r->ix, sizeof(onnx_node) * (size_t)(m->n_nodes + 1));
    m->initializers = pool_alloc(r->ix, sizeof(onnx_tensor) * (size_t)(m->n_initializers + 1));
    m->inputs = pool_alloc(r->ix, sizeof(onnx_value_info) * (size_t)(n_inputs_all + 1));
    m->outputs = pool_alloc(r->ix, sizeof(onnx_value_info) * (size_t)(m->n_outputs + 1));
    if (!m->nodes || !m->initializers || !m->inputs || !m->outputs) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r->path);
    int nn = 0, ni = 0, no = 0, nt = 0;
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(r, &field, &wire, &at));
        reader s;
        switch (field) {
        case GRAPH_NODE:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "node"));
            COSY_TRY(read_len(r, &s));
            COSY_TRY(parse_node(&s, &m->nodes[nn++]));
            break;
        case GRAPH_INITIALIZER:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "initializer"));
            COSY_TRY(read_len(r, &s));
            COSY_TRY(parse_tensor(&s, &m->initializers[nt++]));
            break;
        case GRAPH_INPUT:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "graph input"));
            COSY_TRY(read_len(r, &s));
            COSY_TRY(parse_value_info(&s, &m->inputs[ni++]));
            break;
        case GRAPH_OUTPUT:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "graph output"));
            COSY_TRY(read_len(r, &s));
            COSY_TRY(parse_value_info(&s, &m->outputs[no++]));
            break;
        case GRAPH_NAME:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "graph name"));
            COSY_TRY(read_string(r, &m->graph_name, NULL));
            break;
        default: COSY_TRY(skip_value(r, wire, at));
        }
    }
    m->n_inputs = ni;
    return COSY_OK;
}

enum { MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_GRAPH = 7, MODEL_OPSET_IMPORT = 8 };

static cosy_status parse_model(reader *r, onnx_model *m)
{
    reader c = *r;
    int n_graphs = 0;
    const unsigned char *graph_at = NULL;
    while (c.p < c.end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(&c, &field, &wire, &at));
        if (field == MODEL_OPSET_IMPORT) m->n_opsets++;
        if (field == MODEL_GRAPH) n_graphs++, graph_at = at;
        COSY_TRY(skip_value(&c, wire, at));
    }
    if (n_graphs != 1)
        return n_graphs ? fail_at(r, graph_at, "the model has %d graphs", n_graphs)
                        : cosy_error(COSY_ERR_FORMAT, "%s: not an ONNX model (no graph found in %zu bytes)", r->path, (size_t)(r->end - r->p));
    m->opsets = pool_alloc(r->ix, sizeof(onnx_opset_import) * (size_t)(m->n_opsets + 1));
    if (!m->opsets) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", r->path);
    int no = 0;
    while (r->p < r->end) {
        uint32_t field;
        int wire;
        const unsigned char *at;
        COSY_TRY(read_key(r, &field, &wire, &at));
        reader s;
        uint64_t v;
        switch (field) {
        case MODEL_IR_VERSION:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_VARINT, "ir_version"));
            COSY_TRY(read_varint(r, &v));
            m->ir_version = (int64_t)v;
            break;
        case MODEL_PRODUCER_NAME:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "producer_name"));
            COSY_TRY(read_string(r, &m->producer_name, NULL));
            break;
        case MODEL_PRODUCER_VERSION:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "producer_version"));
            COSY_TRY(read_string(r, &m->producer_version, NULL));
            break;
        case MODEL_OPSET_IMPORT: {
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "opset_import"));
            COSY_TRY(read_len(r, &s));
            onnx_opset_import *o = &m->opsets[no++];
            o->domain = "";
            while (s.p < s.end) {
                uint32_t f2;
                int w2;
                const unsigned char *at2;
                COSY_TRY(read_key(&s, &f2, &w2, &at2));
                if (f2 == 1) {
                    COSY_TRY(expect_wire(&s, at2, f2, w2, WIRE_LEN, "opset domain"));
                    COSY_TRY(read_string(&s, &o->domain, NULL));
                } else if (f2 == 2) {
                    COSY_TRY(expect_wire(&s, at2, f2, w2, WIRE_VARINT, "opset version"));
                    COSY_TRY(read_varint(&s, &v));
                    o->version = (int64_t)v;
                } else {
                    COSY_TRY(skip_value(&s, w2, at2));
                }
            }
            break;
        }
        case MODEL_GRAPH:
            COSY_TRY(expect_wire(r, at, field, wire, WIRE_LEN, "graph"));
            COSY_TRY(read_len(r, &s));
            COSY_TRY(parse_graph(&s, m));
            break;
        default: COSY_TRY(skip_value(r, wire, at));
        }
    }
    return COSY_OK;
}

/* ------------------------------------------------------------------ name index */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Slot of `name` in table (index + 1 stored), or of the empty slot where it would go. */
static size_t table_slot(const onnx_index *ix, const int *table, const char *name, const char *(*key)(const onnx_model *, int),
                         const onnx_model *m)
{
    size_t mask = ix->cap - 1, s = (size_t)hash_str(name) & mask;
    while (table[s] && strcmp(key(m, table[s] - 1), name) != 0) s = (s + 1) & mask;
    return s;
}

static const char *node_key(const onnx_model *m, int i) { return m->nodes[i].name; }
static const char *init_key(const onnx_model *m, int i) { return m->initializers[i].name; }
/* producer table: index = node * 64 + output (nodes have few outputs; checked when building) */
static const char *producer_key(const onnx_model *m, int i) { return m->nodes[i / 64].outputs[i % 64]; }

static cosy_status build_index(onnx_model *m)
{
    onnx_index *ix = m->index;
    size_t n = (size_t)m->n_nodes * 2 + (size_t)m->n_initializers + 16, cap = 16;
    while (cap < 2 * n) cap *= 2;
    ix->cap = cap;
    ix->node_by_name = pool_alloc(ix, sizeof(int) * cap);
    ix->producer = pool_alloc(ix, sizeof(int) * cap);
    ix->init_by_name = pool_alloc(ix, sizeof(int) * cap);
    if (!ix->node_by_name || !ix->producer || !ix->init_by_name) return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", m->path);
    for (int i = 0; i < m->n_initializers; i++) {
        size_t s = table_slot(ix, ix->init_by_name, m->initializers[i].name, init_key, m);
        if (ix->init_by_name[s])
            return cosy_error(COSY_ERR_FORMAT, "%s: byte %zu: initializer %s is defined twice", m->path, m->initializers[i].offset,
                              m->initializers[i].name);
        ix->init_by_name[s] = i + 1;
    }
    int n_outputs = 0;
    for (int i = 0; i < m->n_nodes; i++) {
        const onnx_node *nd = &m->nodes[i];
        if (nd->name[0]) {
            size_t s = table_slot(ix, ix->node_by_name, nd->name, node_key, m);
            if (!ix->node_by_name[s]) ix->node_by_name[s] = i + 1; /* names need not be unique: the first wins */
        }
        if (nd->n_outputs > 64) return cosy_error(COSY_ERR_FORMAT, "%s: byte %zu: node %s has %d outputs", m->path, nd->offset, nd->name, nd->n_outputs);
        for (int o = 0; o < nd->n_outputs; o++) {
            if (!nd->outputs[o][0]) continue;
            if (++n_outputs > (int)(cap / 2)) return cosy_error(COSY_ERR_FORMAT, "%s: too many node outputs", m->path);
            size_t s = table_slot(ix, ix->producer, nd->outputs[o], producer_key, m);
            if (ix->producer[s])
                return cosy_error(COSY_ERR_FORMAT, "%s: byte %zu: value %s is produced by two nodes (%s and %s)", m->path, nd->offset,
                                  nd->outputs[o], m->nodes[(ix->producer[s] - 1) / 64].name, nd->name);
            ix->producer[s] = i * 64 + o + 1;
        }
    }
    /* graph inputs that are initializers (IR < 4 lists them there) are not real inputs */
    int k = 0;
    for (int i = 0; i < m->n_inputs; i++)
        if (!onnx_find_initializer(m, m->inputs[i].name)) m->inputs[k++] = m->inputs[i];
    m->n_inputs = k;
    return COSY_OK;
}

/* ------------------------------------------------------------------ public API */

static cosy_status load(const unsigned char *data, size_t size, const char *name, void *map, onnx_model **out)
{
    *out = NULL;
    onnx_model *m = calloc(1, sizeof *m);
    onnx_index *ix = calloc(1, sizeof *ix);
    if (!m || !ix) {
        free(m);
        free(ix);
        return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name);
    }
    m->index = ix;
    m->map = map;
    m->path = pool_alloc(ix, strlen(name) + 1);
    if (!m->path) {
        onnx_free(m);
        return cosy_error(COSY_ERR_NOMEM, "%s: out of memory", name);
    }
    strcpy(m->path, name);
    m->producer_name = m->producer_version = m->graph_name = "";
    reader r = {data, data, data + size, m->path, ix};
    cosy_status st = size ? parse_model(&r, m) : cosy_error(COSY_ERR_FORMAT, "%s: the file is empty", name);
    if (st == COSY_OK) st = build_index(m);
    if (st != COSY_OK) {
        onnx_free(m);
        return st;
    }
    *out = m;
    return COSY_OK;
}

cosy_status onnx_load_memory(const void *data, size_t size, const char *name, onnx_model **out)
{
    return load(data, size, name ? name : "(memory)", NULL, out);
}

cosy_status onnx_load_file(const char *path, onnx_model **out)
{
    *out = NULL;
    cosy_mapped_file *f = calloc(1, sizeof *f);
    if (!f) return cosy_error(COSY_ERR_NOMEM, "out of memory");
    cosy_status st = cosy_file_map(path, f);
    if (st != COSY_OK) {
        free(f);
        return st;
    }
    st = load(f->data, f->size, path, f, out);
    if (st != COSY_OK) {
        cosy_file_unmap(f);
        free(f);
    }
    return st;
}

void onnx_free(onnx_model *m)
{
    if (!m) return;
    if (m->map) {
        cosy_file_unmap(m->map);
        free(m->map);
    }
    if (m->index) {
        for (pool_block *b = m->index->blocks, *next; b; b = next) {
            next = b->next;
            free(b);
        }
        free(m->index);
    }
    free(m);
}

int64_t onnx_opset(const onnx_model *m)
{
    for (int i = 0; i < m->n_opsets; i++)
        if (!m->opsets[i].domain[0] || !strcmp(m->opsets[i].domain, "ai.onnx")) return m->opsets[i].version;
    return 0;
}

const onnx_node *onnx_find_node(const onnx_model *m, const char *name)
{
    if (!name || !name[0]) return NULL;
    size_t s = table_slot(m->index, m->index->node_by_name, name, node_key, m);
    return m->index->node_by_name[s] ? &m->nodes[m->index->node_by_name[s] - 1] : NULL;
}

const onnx_tensor *onnx_find_initializer(const onnx_model *m, const char *name)
{
    if (!name || !name[0]) return NULL;
    size_t s = table_slot(m->index, m->index->init_by_name, name, init_key, m);
    return m->index->init_by_name[s] ? &m->initializers[m->index->init_by_name[s] - 1] : NULL;
}

const onnx_node *onnx_producer(const onnx_model *m, const char *name)
{
    if (!name || !name[0]) return NULL;
    size_t s = table_slot(m->index, m->index->producer, name, producer_key, m);
    return m->index->producer[s] ? &m->nodes[(m->index->producer[s] - 1) / 64] : NULL;
}

int onnx_consumers(const onnx_model *m, const char *name, const onnx_node **out, int max)
{
    int n = 0;
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_inputs; k++)
            if (!strcmp(m->nodes[i].inputs[k], name)) {
                if (n < max) out[n] = &m->nodes[i];
                n++;
                break;
            }
    return n;
}

const onnx_tensor *onnx_node_initializer(const onnx_model *m, const onnx_node *node, int index)
{
    if (!node || index < 0 || index >= node->n_inputs) return NULL;
    return onnx_find_initializer(m, node->inputs[index]);
}

const onnx_tensor *onnx_constant(const onnx_model *m, const char *name)
{
    for (int hops = 0; hops < 16; hops++) {
        const onnx_tensor *t = onnx_find_initializer(m, name);
        if (t) return t;
        const onnx_node *p = onnx_producer(m, name);
        if (!p) return NULL;
        if (!strcmp(p->op_type, "Identity") && p->n_inputs == 1) {
            name = p->inputs[0];
            continue;
        }
        if (strcmp(p->op_type, "Constant") != 0) return NULL;
        const onnx_attribute *a = onnx_node_attr(p, "value");
        return a ? a->t : NULL;
    }
    return NULL;
}

const onnx_attribute *onnx_node_attr(const onnx_node *node, const char *name)
{
    for (int i = 0; i < node->n_attrs; i++)
        if (!strcmp(node->attrs[i].name, name)) return &node->attrs[i];
    return NULL;
}

int64_t onnx_attr_int(const onnx_node *node, const char *name, int64_t def)
{
    const onnx_attribute *a = onnx_node_attr(node, name);
    return a ? a->i : def;
}

float onnx_attr_float(const onnx_node *node, const char *name, float def)
{
    const onnx_attribute *a = onnx_node_attr(node, name);
    return a ? a->f : def;
}

const int64_t *onnx_attr_ints(const onnx_node *node, const char *name, int *n)
{
    const onnx_attribute *a = onnx_node_attr(node, name);
    *n = a ? a->n_ints : 0;
    return a && a->n_ints ? a->ints : NULL;
}

int onnx_node_axes(const onnx_model *m, const onnx_node *node, int64_t *out, int max)
{
    const onnx_attribute *a = onnx_node_attr(node, "axes");
    if (a) {
        if (a->n_ints > max) return -1;
        if (a->n_ints) memcpy(out, a->ints, sizeof(int64_t) * (size_t)a->n_ints); /* an empty list has no array */
        return a->n_ints;
    }
    if (node->n_inputs < 2 || !node->inputs[1][0]) return 0;
    const onnx_tensor *t = onnx_constant(m, node->inputs[1]);
    if (!t || t->numel > max || (t->data_type != ONNX_INT64 && t->data_type != ONNX_INT32)) return -1;
    if (onnx_tensor_read_i64(m, t, out) != COSY_OK) return -1;
    return (int)t->numel;
}
