/* RFC 8439 ChaCha20 keystream (zero nonce) fused with an in-place add.
 *
 * State words: 0-3 constants, 4-11 key, 12 block counter, 13-15 nonce (0).
 * The driver guarantees block + nblocks <= 2^32 (the stream is 256 GiB).
 *
 *   scalar  portable C, 1 block per batch
 *   avx2    8 blocks in parallel, one state word per ymm register (512 B);
 *           the rounds are inline assembly (x86-64)
 *   avx512  16 blocks in parallel, one state word per zmm register (1 KiB)
 */
#include <string.h>

#include "kernels.h"

static inline uint32_t load32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void ls_chacha_setup(const uint8_t key[32], void *state)
{
    uint32_t *s = (uint32_t *)state;
    s[0] = 0x61707865u;
    s[1] = 0x3320646eu;
    s[2] = 0x79622d32u;
    s[3] = 0x6b206574u;
    for (int i = 0; i < 8; i++)
        s[4 + i] = load32_le(key + 4 * i);
    s[12] = 0;
    s[13] = s[14] = s[15] = 0;
}

/* ---- portable scalar ---------------------------------------------------- */

#define ROTL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))
#define QR(a, b, c, d)                    \
    a += b; d ^= a; d = ROTL32(d, 16);    \
    c += d; b ^= c; b = ROTL32(b, 12);    \
    a += b; d ^= a; d = ROTL32(d, 8);     \
    c += d; b ^= c; b = ROTL32(b, 7)

static void chacha_block(const uint32_t *s, uint32_t counter, uint32_t out[16])
{
    uint32_t x[16];
    memcpy(x, s, sizeof x);
    x[12] = counter;
    for (int i = 0; i < 10; i++) {
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++)
        out[i] = x[i] + (i == 12 ? counter : s[i]);
}

static void scalar_fn(const void *key, uint64_t block, uint8_t *v, size_t nbatches, int w64, int sub)
{
    const uint32_t *s = (const uint32_t *)key;
    uint32_t ks[16];
    for (size_t b = 0; b < nbatches; b++, v += 64) {
        chacha_block(s, (uint32_t)(block + b), ks);
        if (w64) {
            for (int i = 0; i < 8; i++) {
                uint64_t x, k = (uint64_t)ks[2 * i] | ((uint64_t)ks[2 * i + 1] << 32);
                memcpy(&x, v + 8 * i, 8);
                x = sub ? x - k : x + k;
                memcpy(v + 8 * i, &x, 8);
            }
        } else {
            for (int i = 0; i < 16; i++) {
                uint32_t x;
                memcpy(&x, v + 4 * i, 4);
                x = sub ? x - ks[i] : x + ks[i];
                memcpy(v + 4 * i, &x, 4);
            }
        }
    }
}

const ls_kernel ls_chacha_scalar = {"scalar", scalar_fn, 64};

#if LS_X86
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

/* ---- AVX2, 8 blocks ----------------------------------------------------- */

/* The 20 rounds run in inline assembly (x86-64 only: it needs all 16 ymm
 * registers).  Written with intrinsics, the 16 state words plus temporaries
 * made the compiler spill and reload throughout the rounds.  The layout
 * follows OpenSSL's ChaCha20_8x:
 *
 *   ymm0-3  a words (state 0-3)      ymm10-13  d words (state 12-15)
 *   ymm4-7  b words (state 4-7)      ymm14-15  temporaries
 *   ymm8-9  two of the four c words (state 8-11); the other two stay in
 *           their slots of x[]
 *
 * Quarter rounds go two at a time, interleaved instruction by instruction.
 * Between the two pairs of a half round the c words in registers and in
 * memory trade places (2 stores + 2 loads).  Rotations by 16 and 8 are one
 * vpshufb each, with the mask as a memory operand, so no register holds a
 * constant; rotations by 12 and 7 are shift, shift, or.
 *
 * The nonce is zero and only word 12 (the counter) differs between blocks,
 * so columns 1-3 of the first column round are the same for every block of
 * every batch: avx2_body computes them once per call (pre[]), and each batch
 * runs 79 quarter rounds instead of 80.  The AVX-512 path does the same.
 *
 * The state leaves the registers once, into x[], after the rounds; the C code
 * adds the input state, transposes 4x4 within 128-bit lanes, swaps lanes and
 * adds the result into the vector. */

#if defined(__x86_64__)

#define TGT_AVX2 __attribute__((target("avx2")))

TGT_AVX2 INLINE __m256i op256(__m256i v, __m256i k, int w64, int sub)
{
    if (w64)
        return sub ? _mm256_sub_epi64(v, k) : _mm256_add_epi64(v, k);
    return sub ? _mm256_sub_epi32(v, k) : _mm256_add_epi32(v, k);
}

#define A_(op, s2, s1, d) op " " s2 ", " s1 ", " d "\n\t"
#define Y0 "%%ymm0"
#define Y1 "%%ymm1"
#define Y2 "%%ymm2"
#define Y3 "%%ymm3"
#define Y4 "%%ymm4"
#define Y5 "%%ymm5"
#define Y6 "%%ymm6"
#define Y7 "%%ymm7"
#define Y8 "%%ymm8"
#define Y9 "%%ymm9"
#define Y10 "%%ymm10"
#define Y11 "%%ymm11"
#define Y12 "%%ymm12"
#define Y13 "%%ymm13"
#define T0 "%%ymm14"
#define T1 "%%ymm15"
#define ROT16 "(%[rot])"
#define ROT8 "32(%[rot])"
#define XS(i) #i "*32(%[x])"
#define PS(i) #i "*32(%[pre])"
#define LD(m, r) "vmovdqa " m ", " r "\n\t"
#define ST(r, m) "vmovdqa " r ", " m "\n\t"

/* one quarter round on (a, b, c, d) with temporary T0 */
#define QR1(a, b, c, d)                                                             \
    A_("vpaddd", b, a, a) A_("vpxor", a, d, d) A_("vpshufb", ROT16, d, d)           \
    A_("vpaddd", d, c, c) A_("vpxor", c, b, T0)                                     \
    A_("vpslld", "$12", T0, b) A_("vpsrld", "$20", T0, T0) A_("vpor", T0, b, b)     \
    A_("vpaddd", b, a, a) A_("vpxor", a, d, d) A_("vpshufb", ROT8, d, d)            \
    A_("vpaddd", d, c, c) A_("vpxor", c, b, T0)                                     \
    A_("vpslld", "$7", T0, b) A_("vpsrld", "$25", T0, T0) A_("vpor", T0, b, b)

/* two interleaved quarter rounds, (a, b, c, d) with T0 and (e, f, g, h) with T1 */
#define QR2(a, b, c, d, e, f, g, h)                                                 \
    A_("vpaddd", b, a, a) A_("vpaddd", f, e, e)                                     \
    A_("vpxor", a, d, d) A_("vpxor", e, h, h)                                       \
    A_("vpshufb", ROT16, d, d) A_("vpshufb", ROT16, h, h)                           \
    A_("vpaddd", d, c, c) A_("vpaddd", h, g, g)                                     \
    A_("vpxor", c, b, T0) A_("vpxor", g, f, T1)                                     \
    A_("vpslld", "$12", T0, b) A_("vpslld", "$12", T1, f)                           \
    A_("vpsrld", "$20", T0, T0) A_("vpsrld", "$20", T1, T1)                         \
    A_("vpor", T0, b, b) A_("vpor", T1, f, f)                                       \
    A_("vpaddd", b, a, a) A_("vpaddd", f, e, e)                                     \
    A_("vpxor", a, d, d) A_("vpxor", e, h, h)                                       \
    A_("vpshufb", ROT8, d, d) A_("vpshufb", ROT8, h, h)                             \
    A_("vpaddd", d, c, c) A_("vpaddd", h, g, g)                                     \
    A_("vpxor", c, b, T0) A_("vpxor", g, f, T1)                                     \
    A_("vpslld", "$7", T0, b) A_("vpslld", "$7", T1, f)                             \
    A_("vpsrld", "$25", T0, T0) A_("vpsrld", "$25", T1, T1)                         \
    A_("vpor", T0, b, b) A_("vpor", T1, f, f)

/* 20 rounds of 8 blocks.  In: pre[] (see above) and the counters in x[12].
 * Out: x[i] = state word i after the rounds, before the feed-forward add. */
TGT_AVX2 INLINE void avx2_rounds(__m256i *x, const __m256i *pre, const __m256i *rot)
{
    size_t n;
    __asm__ volatile(
        LD(PS(0), Y0) LD(PS(1), Y1) LD(PS(2), Y2) LD(PS(3), Y3)
        LD(PS(4), Y4) LD(PS(5), Y5) LD(PS(6), Y6) LD(PS(7), Y7)
        LD(PS(8), Y8) LD(XS(12), Y10) LD(PS(13), Y11) LD(PS(14), Y12) LD(PS(15), Y13)
        /* round 1: column 0 only (columns 1-3 are in pre[]) */
        QR1(Y0, Y4, Y8, Y10)
        ST(Y8, XS(8)) LD(PS(9), Y9) ST(Y9, XS(9))
        LD(PS(10), Y8) LD(PS(11), Y9)
        /* round 2: diagonals */
        QR2(Y0, Y5, Y8, Y13, Y1, Y6, Y9, Y10)
        ST(Y8, XS(10)) ST(Y9, XS(11)) LD(XS(8), Y8) LD(XS(9), Y9)
        QR2(Y2, Y7, Y8, Y11, Y3, Y4, Y9, Y12)
        /* rounds 3-20 */
        "mov $9, %[n]\n\t"
        ".p2align 5\n\t"
        "1:\n\t"
        QR2(Y0, Y4, Y8, Y10, Y1, Y5, Y9, Y11)
        ST(Y8, XS(8)) ST(Y9, XS(9)) LD(XS(10), Y8) LD(XS(11), Y9)
        QR2(Y2, Y6, Y8, Y12, Y3, Y7, Y9, Y13)
        QR2(Y0, Y5, Y8, Y13, Y1, Y6, Y9, Y10)
        ST(Y8, XS(10)) ST(Y9, XS(11)) LD(XS(8), Y8) LD(XS(9), Y9)
        QR2(Y2, Y7, Y8, Y11, Y3, Y4, Y9, Y12)
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        ST(Y0, XS(0)) ST(Y1, XS(1)) ST(Y2, XS(2)) ST(Y3, XS(3))
        ST(Y4, XS(4)) ST(Y5, XS(5)) ST(Y6, XS(6)) ST(Y7, XS(7))
        ST(Y8, XS(8)) ST(Y9, XS(9))
        ST(Y10, XS(12)) ST(Y11, XS(13)) ST(Y12, XS(14)) ST(Y13, XS(15))
        : [n] "=&r"(n)
        : [x] "r"(x), [pre] "r"(pre), [rot] "r"(rot)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
}

TGT_AVX2 INLINE void avx2_body(const void *key, uint64_t block, uint8_t *v, size_t nbatches,
                               int w64, int sub)
{
    const uint32_t *s = (const uint32_t *)key;
    __m256i x[16] __attribute__((aligned(32)));
    __m256i pre[16] __attribute__((aligned(32)));
    __m256i rot[2] __attribute__((aligned(32)));
    rot[0] = _mm256_set_epi8(13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2,
                             13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2);
    rot[1] = _mm256_set_epi8(14, 13, 12, 15, 10, 9, 8, 11, 6, 5, 4, 7, 2, 1, 0, 3,
                             14, 13, 12, 15, 10, 9, 8, 11, 6, 5, 4, 7, 2, 1, 0, 3);
    /* first column round for columns 1-3, which do not involve the counter */
    uint32_t t[16];
    memcpy(t, s, sizeof t);
    QR(t[1], t[5], t[9], t[13]);
    QR(t[2], t[6], t[10], t[14]);
    QR(t[3], t[7], t[11], t[15]);
    for (int i = 0; i < 16; i++)
        pre[i] = _mm256_set1_epi32((int)t[i]);
    __m256i ctr = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)block),
                                   _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
    const __m256i eight = _mm256_set1_epi32(8);
    for (size_t b = 0; b < nbatches; b++, v += 512) {
        x[12] = ctr;
        avx2_rounds(x, pre, rot);
        /* Words 0-7 (groups 0, 1) and words 8-15 (groups 2, 3) of each block
         * are separate 32-byte halves of its 64 bytes, so each half is
         * finished and added before the next one is transposed: at most 8
         * transposed registers are live and nothing spills. */
        for (int h = 0; h < 2; h++) {
            /* y[g][j]: low lane = words 4g'..4g'+3 of block j, high lane = of
             * block j+4, with g' = 2h + g */
            __m256i y[2][4];
            for (int g = 0; g < 2; g++) {
                const int w = 8 * h + 4 * g;
                __m256i a, bb, c, d;
                if (w < 12) {
                    a = _mm256_add_epi32(x[w], _mm256_set1_epi32((int)s[w]));
                    bb = _mm256_add_epi32(x[w + 1], _mm256_set1_epi32((int)s[w + 1]));
                    c = _mm256_add_epi32(x[w + 2], _mm256_set1_epi32((int)s[w + 2]));
                    d = _mm256_add_epi32(x[w + 3], _mm256_set1_epi32((int)s[w + 3]));
                } else { /* words 13-15 are the zero nonce: nothing to add */
                    a = _mm256_add_epi32(x[12], ctr);
                    bb = x[13];
                    c = x[14];
                    d = x[15];
                }
                __m256i t0 = _mm256_unpacklo_epi32(a, bb), t1 = _mm256_unpackhi_epi32(a, bb);
                __m256i t2 = _mm256_unpacklo_epi32(c, d), t3 = _mm256_unpackhi_epi32(c, d);
                y[g][0] = _mm256_unpacklo_epi64(t0, t2);
                y[g][1] = _mm256_unpackhi_epi64(t0, t2);
                y[g][2] = _mm256_unpacklo_epi64(t1, t3);
                y[g][3] = _mm256_unpackhi_epi64(t1, t3);
            }
            for (int j = 0; j < 4; j++) {
                __m256i lo = _mm256_permute2x128_si256(y[0][j], y[1][j], 0x20); /* block j   */
                __m256i hi = _mm256_permute2x128_si256(y[0][j], y[1][j], 0x31); /* block j+4 */
                __m256i *p = (__m256i *)(v + 64 * j + 32 * h);
                __m256i *q = (__m256i *)(v + 64 * (j + 4) + 32 * h);
                _mm256_storeu_si256(p, op256(_mm256_loadu_si256(p), lo, w64, sub));
                _mm256_storeu_si256(q, op256(_mm256_loadu_si256(q), hi, w64, sub));
            }
        }
        ctr = _mm256_add_epi32(ctr, eight);
    }
}

TGT_AVX2 static void avx2_fn(const void *key, uint64_t block, uint8_t *v, size_t nbatches,
                             int w64, int sub)
{
    if (w64) {
        if (sub) avx2_body(key, block, v, nbatches, 1, 1);
        else avx2_body(key, block, v, nbatches, 1, 0);
    } else {
        if (sub) avx2_body(key, block, v, nbatches, 0, 1);
        else avx2_body(key, block, v, nbatches, 0, 0);
    }
}

const ls_kernel ls_chacha_avx2 = {"avx2", avx2_fn, 512};
#else /* 32-bit x86: 8 ymm registers only; the scalar kernel is used instead */
const ls_kernel ls_chacha_avx2 = {"avx2", 0, 512};
#endif

/* ---- AVX-512F, 16 blocks ------------------------------------------------ */

#define TGT_AVX512 __attribute__((target("avx512f,avx2")))

TGT_AVX512 INLINE __m512i op512(__m512i v, __m512i k, int w64, int sub)
{
    if (w64)
        return sub ? _mm512_sub_epi64(v, k) : _mm512_add_epi64(v, k);
    return sub ? _mm512_sub_epi32(v, k) : _mm512_add_epi32(v, k);
}

#define QR512(a, b, c, d)                                                                  \
    a = _mm512_add_epi32(a, b); d = _mm512_xor_si512(d, a); d = _mm512_rol_epi32(d, 16);   \
    c = _mm512_add_epi32(c, d); b = _mm512_xor_si512(b, c); b = _mm512_rol_epi32(b, 12);   \
    a = _mm512_add_epi32(a, b); d = _mm512_xor_si512(d, a); d = _mm512_rol_epi32(d, 8);    \
    c = _mm512_add_epi32(c, d); b = _mm512_xor_si512(b, c); b = _mm512_rol_epi32(b, 7)

TGT_AVX512 INLINE void avx512_body(const void *key, uint64_t block, uint8_t *v, size_t nbatches,
                                   int w64, int sub)
{
    const uint32_t *s = (const uint32_t *)key;
    __m512i in[16];
    for (int i = 0; i < 16; i++)
        in[i] = _mm512_set1_epi32((int)s[i]);
    in[12] = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)block),
                              _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    /* columns 1-3 of the first round do not involve the counter (see avx2) */
    uint32_t t[16];
    memcpy(t, s, sizeof t);
    QR(t[1], t[5], t[9], t[13]);
    QR(t[2], t[6], t[10], t[14]);
    QR(t[3], t[7], t[11], t[15]);
    __m512i pre[16];
    for (int i = 0; i < 16; i++)
        pre[i] = _mm512_set1_epi32((int)t[i]);
    const __m512i sixteen = _mm512_set1_epi32(16);
    for (size_t b = 0; b < nbatches; b++, v += 1024) {
        __m512i x0 = in[0], x1 = pre[1], x2 = pre[2], x3 = pre[3], x4 = in[4], x5 = pre[5],
                x6 = pre[6], x7 = pre[7], x8 = in[8], x9 = pre[9], x10 = pre[10], x11 = pre[11],
                x12 = in[12], x13 = pre[13], x14 = pre[14], x15 = pre[15];
        QR512(x0, x4, x8, x12); /* round 1: column 0 only */
        QR512(x0, x5, x10, x15);
        QR512(x1, x6, x11, x12);
        QR512(x2, x7, x8, x13);
        QR512(x3, x4, x9, x14);
        for (int i = 1; i < 10; i++) {
            QR512(x0, x4, x8, x12);
            QR512(x1, x5, x9, x13);
            QR512(x2, x6, x10, x14);
            QR512(x3, x7, x11, x15);
            QR512(x0, x5, x10, x15);
            QR512(x1, x6, x11, x12);
            QR512(x2, x7, x8, x13);
            QR512(x3, x4, x9, x14);
        }
        __m512i x[16] = {x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15};
        /* y[g][j]: 128-bit lane L = words 4g..4g+3 of block j + 4L */
        __m512i y[4][4];
        for (int g = 0; g < 4; g++) {
            __m512i a = _mm512_add_epi32(x[4 * g], in[4 * g]);
            __m512i bb = _mm512_add_epi32(x[4 * g + 1], in[4 * g + 1]);
            __m512i c = _mm512_add_epi32(x[4 * g + 2], in[4 * g + 2]);
            __m512i d = _mm512_add_epi32(x[4 * g + 3], in[4 * g + 3]);
            __m512i t0 = _mm512_unpacklo_epi32(a, bb), t1 = _mm512_unpackhi_epi32(a, bb);
            __m512i t2 = _mm512_unpacklo_epi32(c, d), t3 = _mm512_unpackhi_epi32(c, d);
            y[g][0] = _mm512_unpacklo_epi64(t0, t2);
            y[g][1] = _mm512_unpackhi_epi64(t0, t2);
            y[g][2] = _mm512_unpacklo_epi64(t1, t3);
            y[g][3] = _mm512_unpackhi_epi64(t1, t3);
        }
        for (int j = 0; j < 4; j++) {
            __m512i t0 = _mm512_shuffle_i32x4(y[0][j], y[1][j], 0x44);
            __m512i t1 = _mm512_shuffle_i32x4(y[0][j], y[1][j], 0xEE);
            __m512i t2 = _mm512_shuffle_i32x4(y[2][j], y[3][j], 0x44);
            __m512i t3 = _mm512_shuffle_i32x4(y[2][j], y[3][j], 0xEE);
            __m512i o[4];
            o[0] = _mm512_shuffle_i32x4(t0, t2, 0x88); /* block j      */
            o[1] = _mm512_shuffle_i32x4(t0, t2, 0xDD); /* block j + 4  */
            o[2] = _mm512_shuffle_i32x4(t1, t3, 0x88); /* block j + 8  */
            o[3] = _mm512_shuffle_i32x4(t1, t3, 0xDD); /* block j + 12 */
            for (int l = 0; l < 4; l++) {
                void *p = v + 64 * (j + 4 * l);
                _mm512_storeu_si512(p, op512(_mm512_loadu_si512(p), o[l], w64, sub));
            }
        }
        in[12] = _mm512_add_epi32(in[12], sixteen);
    }
}

TGT_AVX512 static void avx512_fn(const void *key, uint64_t block, uint8_t *v, size_t nbatches,
                                 int w64, int sub)
{
    if (w64) {
        if (sub) avx512_body(key, block, v, nbatches, 1, 1);
        else avx512_body(key, block, v, nbatches, 1, 0);
    } else {
        if (sub) avx512_body(key, block, v, nbatches, 0, 1);
        else avx512_body(key, block, v, nbatches, 0, 0);
    }
}

const ls_kernel ls_chacha_avx512 = {"avx512", avx512_fn, 1024};

#else

const ls_kernel ls_chacha_avx2 = {"avx2", 0, 512};
const ls_kernel ls_chacha_avx512 = {"avx512", 0, 1024};

#endif
