/*
 * onnx.h — read an ONNX model (a protobuf ModelProto) far enough to take its weights out by walking
 * the graph: opset imports, graph inputs/outputs, initializers, nodes with their attributes, and the
 * tensors of Constant nodes. Nothing is executed; the models that use this (CAM++ in
 * model/campplus_onnx.c, the speech tokenizer) find each weight by the scoped name of the node that
 * consumes it (`/xvector/block1/tdnnd1/linear1/Conv`), never by the numbers in `onnx::Conv_N`
 * initializer names, which differ between exports.
 *
 * Why a wire-format reader of our own and not libprotobuf-c + protoc-c: we need six message types and
 * about forty fields of onnx.proto; a generated parser would unpack every tensor into malloc'ed
 * arrays (the released speech tokenizer holds 496 MB of raw_data we want to read in place from the
 * map), would add a build-time code generator and the schema file to the tree, and still leave us
 * the checks a truncated file needs. Here every length and offset is checked against the enclosing
 * message, and a bad file is refused with its name and the byte offset of the bad field.
 *
 * Lifetime: everything returned points into the onnx_model (names are NUL-terminated copies; tensor
 * values stay in the file's bytes, read with onnx_tensor_read_*). onnx_load_memory borrows the caller's
 * bytes, which must outlive the model.
 *
 * Usage:
 *     onnx_model *m;
 *     COSY_TRY(onnx_load_file("campplus.onnx", &m));
 *     const onnx_node *conv = onnx_find_node(m, "/head/conv1/Conv");
 *     const onnx_tensor *w = conv ? onnx_node_initializer(m, conv, 1) : NULL;   // its weight
 *     float *data = malloc(sizeof(float) * w->numel);
 *     onnx_tensor_read_f32(m, w, data);
 *     onnx_free(m);
 */
#ifndef COSY_ONNX_H
#define COSY_ONNX_H

#include <stddef.h>
#include <stdint.h>
#include "cosy.h"

#define ONNX_MAX_DIMS 8

/* TensorProto.DataType values (onnx.proto) */
enum {
    ONNX_FLOAT = 1, ONNX_UINT8 = 2, ONNX_INT8 = 3, ONNX_UINT16 = 4, ONNX_INT16 = 5, ONNX_INT32 = 6, ONNX_INT64 = 7,
    ONNX_STRING = 8, ONNX_BOOL = 9, ONNX_FLOAT16 = 10, ONNX_DOUBLE = 11, ONNX_UINT32 = 12, ONNX_UINT64 = 13,
    ONNX_BFLOAT16 = 16,
};

/* AttributeProto.AttributeType values */
enum {
    ONNX_ATTR_FLOAT = 1, ONNX_ATTR_INT = 2, ONNX_ATTR_STRING = 3, ONNX_ATTR_TENSOR = 4, ONNX_ATTR_GRAPH = 5,
    ONNX_ATTR_FLOATS = 6, ONNX_ATTR_INTS = 7, ONNX_ATTR_STRINGS = 8, ONNX_ATTR_TENSORS = 9, ONNX_ATTR_GRAPHS = 10,
};

/* An initializer or a Constant's value. Its values stay in the file: raw_data, or one of the typed
 * fields (float_data, int32_data, int64_data, double_data), whichever the producer wrote. */
typedef struct {
    char *name;
    int data_type;              /* ONNX_FLOAT, ... */
    int ndim;
    int64_t dims[ONNX_MAX_DIMS];
    int64_t numel;              /* product of dims (1 for a scalar) */
    size_t offset;              /* byte offset of the TensorProto in the file, for messages */
    const unsigned char *raw;   /* raw_data (little-endian, numel elements), or NULL */
    const unsigned char *msg;   /* the TensorProto's own bytes, for the typed fields */
    size_t msg_size;
} onnx_tensor;

typedef struct {
    char *name;
    int type;                   /* ONNX_ATTR_* as stored (0 if the producer left it out) */
    float f;
    int64_t i;
    char *s;                    /* STRING (NUL-terminated copy; s_len bytes) */
    size_t s_len;
    onnx_tensor *t;             /* TENSOR */
    float *floats;              /* FLOATS */
    int n_floats;
    int64_t *ints;              /* INTS */
    int n_ints;
} onnx_attribute;

typedef struct {
    char *name, *op_type, *domain;
    char **inputs;              /* "" for an omitted optional input */
    int n_inputs;
    char **outputs;
    int n_outputs;
    onnx_attribute *attrs;
    int n_attrs;
    size_t offset;              /* of the NodeProto in the file */
} onnx_node;

/* A graph input or output: name, element type and shape (dims[d] < 0 where the dimension is symbolic,
 * its name in dim_params[d]). */
typedef struct {
    char *name;
    int elem_type;
    int ndim;
    int64_t dims[ONNX_MAX_DIMS];
    char *dim_params[ONNX_MAX_DIMS];
} onnx_value_info;

typedef struct {
    char *domain;               /* "" = the default ai.onnx domain */
    int64_t version;
} onnx_opset_import;

typedef struct onnx_index onnx_index;

typedef struct {
    char *path;                 /* the file name, or the name given to onnx_load_memory */
    int64_t ir_version;
    char *producer_name, *producer_version, *graph_name;
    onnx_opset_import *opsets;
    int n_opsets;
    onnx_node *nodes;           /* in file order (topological as exporters write them) */
    int n_nodes;
    onnx_tensor *initializers;
    int n_initializers;
    onnx_value_info *inputs, *outputs;
    int n_inputs, n_outputs;
    /* private */
    void *map;                  /* cosy_mapped_file when loaded from a path */
    onnx_index *index;
} onnx_model;

/* Parses the whole file (mapped, read in place). Refuses truncated or corrupt files, tensors whose
 * values live outside the file (external data) and tensor data that does not match the dims, with a
 * message naming the file and the byte offset. */
cosy_status onnx_load_file(const char *path, onnx_model **out);
/* The same over bytes in memory (borrowed: they must outlive the model); `name` is used in messages. */
cosy_status onnx_load_memory(const void *data, size_t size, const char *name, onnx_model **out);
void onnx_free(onnx_model *m);

/* The version of the default (ai.onnx) operator set the model imports, 0 if none. */
int64_t onnx_opset(const onnx_model *m);

/* Lookups by name (NULL when absent). */
const onnx_node *onnx_find_node(const onnx_model *m, const char *node_name);
const onnx_tensor *onnx_find_initializer(const onnx_model *m, const char *value_name);
/* The node whose output is `value_name` (NULL for graph inputs, initializers and unknown names). */
const onnx_node *onnx_producer(const onnx_model *m, const char *value_name);
/* Up to `max` nodes that take `value_name` as an input, in file order; returns how many there are
 * (which may exceed max). */
int onnx_consumers(const onnx_model *m, const char *value_name, const onnx_node **out, int max);

/* The initializer that input `index` of `node` refers to (NULL if that input is absent or is not an
 * initializer). */
const onnx_tensor *onnx_node_initializer(const onnx_model *m, const onnx_node *node, int index);
/* A constant value: an initializer, or the `value` tensor of the Constant node producing it (through
 * Identity nodes). NULL if the value is computed. */
const onnx_tensor *onnx_constant(const onnx_model *m, const char *value_name);

/* Attributes of a node (NULL / the default when absent). */
const onnx_attribute *onnx_node_attr(const onnx_node *node, const char *name);
int64_t onnx_attr_int(const onnx_node *node, const char *name, int64_t def);
float onnx_attr_float(const onnx_node *node, const char *name, float def);
/* The INTS attribute `name` (NULL with *n = 0 when absent). */
const int64_t *onnx_attr_ints(const onnx_node *node, const char *name, int *n);

/* The axes of an Unsqueeze / Squeeze / Reduce* node, from its `axes` attribute (Unsqueeze/Squeeze before
 * opset 13, ReduceSum before 13, the other Reduce* before 18) or its constant second input (later
 * opsets); up to max into out. Returns the count, 0 when the node has none (all axes), -1 when the
 * axes are computed in the graph or there are more than max. */
int onnx_node_axes(const onnx_model *m, const onnx_node *node, int64_t *out, int max);

/* The values of t converted to f32 / int64 (numel elements into dst). Integer and floating types
 * (float, double, float16, bfloat16, int8..int64, uint8..uint64, bool) convert; strings are refused. */
cosy_status onnx_tensor_read_f32(const onnx_model *m, const onnx_tensor *t, float *dst);
cosy_status onnx_tensor_read_i64(const onnx_model *m, const onnx_tensor *t, int64_t *dst);
/* "float", "int64", ... for messages */
const char *onnx_type_name(int data_type);

#endif
