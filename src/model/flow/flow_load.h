/*
 * flow_load.h — loading the flow's layers by tensor name (flow_load.c), for flow.c and the networks
 * it drives (cv2_encoder.c, cv2_unet.c; a CosyVoice3 DiT beside them). It depends only on the model
 * file and the layer types of flow_internal.h, never on the networks: the networks call it, flow.c
 * calls the networks' *_load functions.
 *
 * Every tensor is read straight from the mapped file when stored in the type the flow runs in, and
 * otherwise widened; whatever is packed (f32 panels, bf16 tiles) is allocated from the model, so it
 * lives as long as the model does. Shapes are checked against the requested sizes.
 */
#ifndef COSY_FLOW_LOAD_H
#define COSY_FLOW_LOAD_H

#include "model/flow/flow_internal.h"

/* Linear `<name>.weight` [out][in] and, with `bias`, `<name>.bias` [out]; name printf-style. */
cosy_status flow_load_linear(cosy_flow *f, flow_linear *l, int bias, int out, int in, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
cosy_status flow_load_norm(cosy_flow *f, flow_norm *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Three [out][in] linears (with or without biases) stacked into one [3 out][in]: one product
 * computes q, k and v. */
cosy_status flow_load_qkv(cosy_flow *f, flow_linear *l, int bias, int out, int in, const char *prefix, const char *q, const char *k,
                          const char *v);
cosy_status flow_load_conv(cosy_flow *f, flow_conv *cv, int out, int in, int k, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* A grouped Conv1d `<name>.weight` [out][in][k] (in = inputs per group) as `groups` convolutions cv[g]
 * of out / groups outputs each (input channels [g in, (g + 1) in)). */
cosy_status flow_load_conv_groups(cosy_flow *f, flow_conv *cv, int groups, int out, int in, int k, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

#endif
