/*
 * yaml.h — reads the hyperparameters we need from CosyVoice's HyperPyYAML files
 * (cosyvoice2.yaml) with libyaml. The `!new:` / `!name:` / `!apply:` tags are kept but not
 * interpreted (they name Python classes); `!ref <key>` is resolved, including the arithmetic
 * HyperPyYAML allows (`!ref <chunk_size> * <token_mel_ratio>`).
 *
 * Keys are addressed by dotted paths through mappings: "flow.encoder.num_blocks".
 */
#ifndef COSY_YAML_H
#define COSY_YAML_H

#include <stdint.h>
#include "cosy.h"

typedef struct cosy_yaml cosy_yaml;

cosy_status cosy_yaml_load(const char *path, cosy_yaml **out);
cosy_status cosy_yaml_parse(const char *text, size_t len, const char *name, cosy_yaml **out);
void cosy_yaml_free(cosy_yaml *y);

int cosy_yaml_has(const cosy_yaml *y, const char *path);
cosy_status cosy_yaml_get_int(const cosy_yaml *y, const char *path, int64_t *out);
cosy_status cosy_yaml_get_float(const cosy_yaml *y, const char *path, double *out);
/* Scalar as text; "null"/"~"/"" give an empty string and *is_null = 1 (is_null may be NULL). */
cosy_status cosy_yaml_get_str(const cosy_yaml *y, const char *path, char *buf, size_t size, int *is_null);
/* Tag of the node at path ("" if none), e.g. "!new:cosyvoice.llm.llm.Qwen2LM". */
cosy_status cosy_yaml_get_tag(const cosy_yaml *y, const char *path, char *buf, size_t size);
/* A flat list of integers: [8, 5, 3]. */
cosy_status cosy_yaml_get_int_list(const cosy_yaml *y, const char *path, int64_t *out, int max, int *n);
/* A list of lists of integers: [[1, 3, 5], [1, 3, 5]], row-major into out[rows][max_cols]. */
cosy_status cosy_yaml_get_int_matrix(const cosy_yaml *y, const char *path, int64_t *out, int max_rows, int max_cols,
                                     int *rows, int *cols);

#endif
