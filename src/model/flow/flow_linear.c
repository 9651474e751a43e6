/*
 * flow_linear.c — the flow's Linear layers (and the convolutions built on them) on the thread pool:
 * which kernel of core/gemm.h runs a product, and how its output columns are split over the threads.
 *   bf16 mode (flow_dtype bf16 on a CPU with AMX or AVX512-BF16): activations rounded to bf16 rows in
 *     this thread's scratch, then the bf16 tiles;
 *   f32 on AVX-512: the packed f32 panels, read straight from the activations;
 *   otherwise cosy_sgemm on the plain weights (OpenBLAS).
 * A product too small to be worth waking a thread runs on the caller's thread.
 */
#include "model/flow/flow_internal.h"
#include "core/ops.h"

#include <stddef.h>
#include <stdint.h>

#define NR COSY_PANEL

/* ---------------------------------------------------------------- f32 panels */

typedef struct {
    const flow_linear *l;
    const float *x;
    int rows, parts, accumulate, act;
    float *y;
} linear_task;

static void linear_run(void *p, int part)
{
    linear_task *t = p;
    const int panels = (t->l->out + NR - 1) / NR;
    int p0, p1;
    cosy_split_range(panels, t->parts, part, &p0, &p1);
    if (p0 < p1)
        cosy_gemm_f32_panels(t->rows, t->l->out, t->l->in, 1.0f, t->x, t->l->in, t->l->packed, (size_t)t->l->in * NR, p0, p1, t->l->packed_bias,
                         t->y, t->l->out, t->accumulate, t->act);
}

/* ---------------------------------------------------------------- bf16 tiles */

/* Without memory for the converted rows (this thread's scratch could not grow): 32 rows at a time
 * through a buffer on the stack (FLOW_BF16_MAX_IN bounds it; flow.c refuses wider layers), each
 * pass reading every weight again. Slower, never wrong. */
static __attribute__((noinline)) void linear_bf16_chunked(const flow_linear *l, const float *x, int rows, float *y, int accumulate, int act,
                                                          int j0, int j1)
{
    uint16_t A[32 * FLOW_BF16_MAX_IN];
    const int K = l->in, N = l->out, Kp = (K + 31) / 32 * 32;
    for (int r0 = 0; r0 < rows; r0 += 32) {
        const int m = rows - r0 < 32 ? rows - r0 : 32;
        cosy_bf16_convert_rows(A, x + (size_t)r0 * K, m, K, K, 1.0f, Kp, 32);
        cosy_gemm_bf16(m, N, Kp, A, l->tiles, Kp / 32, l->b, y + (size_t)r0 * N, N, accumulate, act, j0, j1);
    }
}

typedef struct {
    const flow_linear *l;
    const float *x;
    int rows, parts, accumulate, act;
    float *y;
} bf16_task;

/* One thread's output columns. Every thread rounds the rows to bf16 itself, into its own scratch: the
 * same few hundred KB twice, instead of one thread converting while the others wait. */
static void bf16_run(void *p, int part)
{
    bf16_task *t = p;
    const flow_linear *l = t->l;
    const int K = l->in, N = l->out, Kp = (K + 31) / 32 * 32, Mp = (t->rows + 31) / 32 * 32;
    int j0, j1;
    cosy_split_range((N + 31) / 32, t->parts, part, &j0, &j1);
    if (j0 >= j1) return;
    uint16_t *A = cosy_thread_scratch(sizeof(uint16_t) * (size_t)Mp * Kp);
    if (!A) {
        linear_bf16_chunked(l, t->x, t->rows, t->y, t->accumulate, t->act, j0, j1);
        return;
    }
    cosy_bf16_convert_rows(A, t->x, t->rows, K, K, 1.0f, Kp, Mp);
    cosy_gemm_bf16(t->rows, N, Kp, A, l->tiles, Kp / 32, l->b, t->y, N, t->accumulate, t->act, j0, j1);
}

/* flow_linear_act on l->tiles */
static void linear_bf16(flow_ctx *c, const flow_linear *l, const float *x, int rows, float *y, int accumulate, int act)
{
    bf16_task t = {l, x, rows, 1, accumulate, act, y};
    const int blocks = (l->out + 31) / 32;
    int parts = cosy_pool_size(c->pool);
    if (parts > blocks) parts = blocks;
    if ((size_t)rows * l->in * l->out < 400000) parts = 1;
    t.parts = parts;
    if (parts == 1) bf16_run(&t, 0);
    else cosy_pool_run(c->pool, parts, bf16_run, &t);
}

void flow_linear_act(flow_ctx *c, const flow_linear *l, const float *x, int rows, float *y, int accumulate, int act)
{
    if (rows <= 0) return;
    if (l->tiles) {
        linear_bf16(c, l, x, rows, y, accumulate, act);
        return;
    }
    if (l->packed) {
        linear_task t = {l, x, rows, 1, accumulate, act, y};
        const int panels = (l->out + NR - 1) / NR;
        int parts = cosy_pool_size(c->pool);
        if (parts > panels) parts = panels;
        if ((size_t)rows * l->in * l->out < 200000) parts = 1; /* too small to be worth waking a thread */
        t.parts = parts;
        if (parts == 1) linear_run(&t, 0);
        else cosy_pool_run(c->pool, parts, linear_run, &t);
        return;
    }
    /* portable: sgemm on the unpacked weights */
    if (accumulate) {
        if (l->b)
            for (int r = 0; r < rows; r++) cosy_add(y + (size_t)r * l->out, l->b, (size_t)l->out);
        cosy_sgemm(0, 1, rows, l->out, l->in, 1.0f, x, l->in, l->w, l->in, 1.0f, y, l->out);
    } else {
        cosy_linear(y, x, rows, l->in, l->w, l->b, l->out);
    }
    if (act == COSY_ACT_GELU) cosy_vec_gelu(y, (size_t)rows * l->out);
    else if (act == COSY_ACT_SILU) cosy_vec_silu(y, (size_t)rows * l->out);
}

void flow_linear_run(flow_ctx *c, const flow_linear *l, const float *x, int rows, float *y, int accumulate)
{
    flow_linear_act(c, l, x, rows, y, accumulate, COSY_ACT_NONE);
}
