/* test_torch_rng.c — torch's CPU generator reproduced bit for bit: the CFM noise buffer
 * (rand_noise_head, flow_ns_z) and HiFT's recorded draws (torch.rand then randn_like after
 * torch.manual_seed(2001)) from the official fixtures. */
#include "test.h"
#include "core/torch_rng.h"
#include "io/npy.h"

#include <stdint.h>

static int64_t count_bit_mismatches(const float *a, const float *b, int64_t n)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += memcmp(&a[i], &b[i], 4) != 0;
    return bad;
}

static void test_mt19937(void)
{
    /* the C++ standard's check value: the 10000th output of mt19937 with seed 5489 */
    cosy_torch_rng g;
    cosy_torch_rng_seed(&g, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = cosy_torch_rng_u32(&g);
    CHECK(v == 4123659995u);
    /* skip() lands on the same output */
    cosy_torch_rng_seed(&g, 5489);
    cosy_torch_rng_skip(&g, 9999);
    CHECK(cosy_torch_rng_u32(&g) == 4123659995u);
    /* only the low 32 bits of the seed matter (at::mt19937 takes a uint64 and truncates) */
    cosy_torch_rng h;
    cosy_torch_rng_seed(&g, 7);
    cosy_torch_rng_seed(&h, 7 + (1ull << 32));
    CHECK(cosy_torch_rng_u32(&g) == cosy_torch_rng_u32(&h));
}

static void test_rand(void)
{
    /* torch.manual_seed(0); torch.rand(3) -> tensor([0.4963, 0.7682, 0.0885]) */
    cosy_torch_rng g;
    cosy_torch_rng_seed(&g, 0);
    float u[3];
    cosy_torch_rand(&g, u, 3);
    CHECK_NEAR(u[0], 0.4963, 1e-4);
    CHECK_NEAR(u[1], 0.7682, 1e-4);
    CHECK_NEAR(u[2], 0.0885, 1e-4);
    for (int i = 0; i < 3; i++) CHECK(u[i] >= 0.0f && u[i] < 1.0f);
}

/* set_all_random_seed(0); torch.randn([1, 80, 15000]) — CausalConditionalCFM.rand_noise */
static void test_cfm_noise(void)
{
    const int64_t n = 80 * 15000;
    float *all = malloc(sizeof(float) * (size_t)n);
    cosy_torch_rng g;
    cosy_torch_rng_seed(&g, 0);
    CHECK_OK(cosy_torch_randn(&g, all, n));

    npy_array head;
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/rand_noise_head.npy"), &head));
    CHECK(head.numel == 4096);
    if (head.numel == 4096) CHECK(count_bit_mismatches(all, head.f32, 4096) == 0);
    npy_free(&head);

    /* flow_ns_z = rand_noise[:, :, :160]: a prefix of every row, so the whole buffer is exercised */
    npy_array z;
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/flow_ns_z.npy"), &z));
    CHECK(z.numel == 80 * 160);
    if (z.numel == 80 * 160) {
        int64_t bad = 0;
        for (int c = 0; c < 80; c++) bad += count_bit_mismatches(all + (int64_t)c * 15000, z.f32 + c * 160, 160);
        CHECK(bad == 0);

        /* the same prefix drawn lazily, one range per row */
        int64_t ranges[160];
        for (int c = 0; c < 80; c++) {
            ranges[2 * c] = (int64_t)c * 15000;
            ranges[2 * c + 1] = (int64_t)c * 15000 + 160;
        }
        float sel[80 * 160];
        cosy_torch_rng_seed(&g, 0);
        CHECK_OK(cosy_torch_randn_ranges(&g, n, ranges, 80, sel));
        CHECK(count_bit_mismatches(sel, z.f32, 80 * 160) == 0);
        /* and the generator is left where torch.randn leaves it */
        cosy_torch_rng full;
        cosy_torch_rng_seed(&full, 0);
        cosy_torch_rng_skip(&full, n);
        CHECK(cosy_torch_rng_u32(&g) == cosy_torch_rng_u32(&full));
    }
    npy_free(&z);

    /* torch.randn(16) is the first block of any larger draw */
    float first[16];
    cosy_torch_rng_seed(&g, 0);
    CHECK_OK(cosy_torch_randn(&g, first, 16));
    CHECK(count_bit_mismatches(first, all, 16) == 0);
    free(all);
}

/* sizes that are not a multiple of 16: the last 16 values come from 16 extra draws */
static void test_tail(void)
{
    const int64_t n = 1000 + 5;
    float full[1005], sel[1005];
    cosy_torch_rng g, h;
    cosy_torch_rng_seed(&g, 42);
    CHECK_OK(cosy_torch_randn(&g, full, n));
    uint32_t after_full = cosy_torch_rng_u32(&g);
    /* elements before the re-drawn tail equal those of a 16-multiple draw */
    float ref[1008];
    cosy_torch_rng_seed(&h, 42);
    CHECK_OK(cosy_torch_randn(&h, ref, 1008));
    CHECK(count_bit_mismatches(full, ref, n - 16) == 0);
    CHECK(count_bit_mismatches(full + n - 16, ref + n - 16, 16) > 0);
    /* the tail block comes from draws n .. n+15 */
    cosy_torch_rng_seed(&h, 42);
    cosy_torch_rng_skip(&h, n);
    float tail_uniform[16];
    cosy_torch_rand(&h, tail_uniform, 16);
    CHECK(cosy_torch_rng_u32(&h) == after_full);
    /* ranges (crossing the tail boundary) agree with the full draw */
    int64_t ranges[6] = {3, 40, 500, 501, 980, 1005};
    cosy_torch_rng_seed(&h, 42);
    CHECK_OK(cosy_torch_randn_ranges(&h, n, ranges, 3, sel));
    CHECK(count_bit_mismatches(sel, full + 3, 37) == 0);
    CHECK(count_bit_mismatches(sel + 37, full + 500, 1) == 0);
    CHECK(count_bit_mismatches(sel + 38, full + 980, 25) == 0);
    CHECK(cosy_torch_rng_u32(&h) == after_full);
    /* bad arguments */
    int64_t unordered[4] = {10, 20, 5, 8};
    CHECK_FAILS(cosy_torch_randn_ranges(&h, n, unordered, 2, sel), COSY_ERR_INVALID_ARG, "out of order");
    int64_t outside[2] = {0, n + 1};
    CHECK_FAILS(cosy_torch_randn_ranges(&h, n, outside, 1, sel), COSY_ERR_INVALID_ARG, "outside");
    CHECK_FAILS(cosy_torch_randn(&h, sel, 15), COSY_ERR_UNSUPPORTED, "fewer than 16");
}

/* HiFT's draws in the fixture: torch.manual_seed(2001); rand(1, 9); randn_like(sine_waves) [1, T, 9];
 * randn_like(uv) [1, T, 1]. sine_waves is a transposed view (strides [9T, 1, T]), so randn_like
 * keeps that layout, the tensor is not contiguous and torch fills it element by element in memory
 * order: draw k lands at (t = k % T, harmonic = k / T). uv is contiguous: the block path. */
static void test_hift_draws(void)
{
    npy_array d0, d1, d2;
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/hift_ns_noise_000.npy"), &d0));
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/hift_ns_noise_001.npy"), &d1));
    CHECK_OK(npy_load(test_data("cv2-tiny/golden/hift_ns_noise_002.npy"), &d2));
    cosy_torch_rng g;
    cosy_torch_rng_seed(&g, 2001);
    float *buf = malloc(sizeof(float) * (size_t)(d1.numel > 9 ? d1.numel : 9));
    cosy_torch_rand(&g, buf, d0.numel);
    CHECK(count_bit_mismatches(buf, d0.f32, d0.numel) == 0);
    int64_t T = d1.shape[1], H = d1.shape[2];
    float *mem = malloc(sizeof(float) * (size_t)d1.numel);
    cosy_torch_normal_serial(&g, mem, d1.numel);
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < T; t++) buf[t * H + h] = mem[h * T + t];
    free(mem);
    CHECK(count_bit_mismatches(buf, d1.f32, d1.numel) == 0);
    CHECK_OK(cosy_torch_randn(&g, buf, d2.numel));
    CHECK(count_bit_mismatches(buf, d2.f32, d2.numel) == 0);
    free(buf);
    npy_free(&d0);
    npy_free(&d1);
    npy_free(&d2);
}

int main(void)
{
    test_mt19937();
    test_rand();
    test_cfm_noise();
    test_tail();
    test_hift_draws();
    return test_finish("test_torch_rng");
}
