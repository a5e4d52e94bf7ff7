/* RFC 8439 ChaCha20 keystream (zero nonce) fused with an in-place add.
 *
 * State words: 0-3 constants, 4-11 key, 12 block counter, 13-15 nonce (0).
 * The driver guarantees block + nblocks <= 2^32 (the stream is 256 GiB).
 *
 *   scalar  portable C, 1 block per batch
 *   avx2    8 blocks in parallel, one state word per ymm register (512 B)
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

#define TGT_AVX2 __attribute__((target("avx2")))

TGT_AVX2 INLINE __m256i op256(__m256i v, __m256i k, int w64, int sub)
{
    if (w64)
        return sub ? _mm256_sub_epi64(v, k) : _mm256_add_epi64(v, k);
    return sub ? _mm256_sub_epi32(v, k) : _mm256_add_epi32(v, k);
}

#define R256_SHIFT(x, n) _mm256_or_si256(_mm256_slli_epi32(x, n), _mm256_srli_epi32(x, 32 - (n)))
#define QR256(a, b, c, d)                                                              \
    a = _mm256_add_epi32(a, b); d = _mm256_xor_si256(d, a); d = _mm256_shuffle_epi8(d, r16); \
    c = _mm256_add_epi32(c, d); b = _mm256_xor_si256(b, c); b = R256_SHIFT(b, 12);    \
    a = _mm256_add_epi32(a, b); d = _mm256_xor_si256(d, a); d = _mm256_shuffle_epi8(d, r8); \
    c = _mm256_add_epi32(c, d); b = _mm256_xor_si256(b, c); b = R256_SHIFT(b, 7)

TGT_AVX2 INLINE void avx2_body(const void *key, uint64_t block, uint8_t *v, size_t nbatches,
                               int w64, int sub)
{
    const uint32_t *s = (const uint32_t *)key;
    const __m256i r16 = _mm256_set_epi8(13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2,
                                        13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2);
    const __m256i r8 = _mm256_set_epi8(14, 13, 12, 15, 10, 9, 8, 11, 6, 5, 4, 7, 2, 1, 0, 3,
                                       14, 13, 12, 15, 10, 9, 8, 11, 6, 5, 4, 7, 2, 1, 0, 3);
    __m256i in[16];
    for (int i = 0; i < 16; i++)
        in[i] = _mm256_set1_epi32((int)s[i]);
    in[12] = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)block),
                              _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
    const __m256i eight = _mm256_set1_epi32(8);
    for (size_t b = 0; b < nbatches; b++, v += 512) {
        __m256i x0 = in[0], x1 = in[1], x2 = in[2], x3 = in[3], x4 = in[4], x5 = in[5],
                x6 = in[6], x7 = in[7], x8 = in[8], x9 = in[9], x10 = in[10], x11 = in[11],
                x12 = in[12], x13 = in[13], x14 = in[14], x15 = in[15];
        for (int i = 0; i < 10; i++) {
            QR256(x0, x4, x8, x12);
            QR256(x1, x5, x9, x13);
            QR256(x2, x6, x10, x14);
            QR256(x3, x7, x11, x15);
            QR256(x0, x5, x10, x15);
            QR256(x1, x6, x11, x12);
            QR256(x2, x7, x8, x13);
            QR256(x3, x4, x9, x14);
        }
        __m256i x[16] = {x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15};
        /* y[g][j]: low lane = words 4g..4g+3 of block j, high lane = of block j+4 */
        __m256i y[4][4];
        for (int g = 0; g < 4; g++) {
            __m256i a = _mm256_add_epi32(x[4 * g], in[4 * g]);
            __m256i bb = _mm256_add_epi32(x[4 * g + 1], in[4 * g + 1]);
            __m256i c = _mm256_add_epi32(x[4 * g + 2], in[4 * g + 2]);
            __m256i d = _mm256_add_epi32(x[4 * g + 3], in[4 * g + 3]);
            __m256i t0 = _mm256_unpacklo_epi32(a, bb), t1 = _mm256_unpackhi_epi32(a, bb);
            __m256i t2 = _mm256_unpacklo_epi32(c, d), t3 = _mm256_unpackhi_epi32(c, d);
            y[g][0] = _mm256_unpacklo_epi64(t0, t2);
            y[g][1] = _mm256_unpackhi_epi64(t0, t2);
            y[g][2] = _mm256_unpacklo_epi64(t1, t3);
            y[g][3] = _mm256_unpackhi_epi64(t1, t3);
        }
        for (int j = 0; j < 4; j++) {
            __m256i o0 = _mm256_permute2x128_si256(y[0][j], y[1][j], 0x20);
            __m256i o1 = _mm256_permute2x128_si256(y[2][j], y[3][j], 0x20);
            __m256i o2 = _mm256_permute2x128_si256(y[0][j], y[1][j], 0x31);
            __m256i o3 = _mm256_permute2x128_si256(y[2][j], y[3][j], 0x31);
            __m256i *p = (__m256i *)(v + 64 * j);
            __m256i *q = (__m256i *)(v + 64 * (j + 4));
            _mm256_storeu_si256(p, op256(_mm256_loadu_si256(p), o0, w64, sub));
            _mm256_storeu_si256(p + 1, op256(_mm256_loadu_si256(p + 1), o1, w64, sub));
            _mm256_storeu_si256(q, op256(_mm256_loadu_si256(q), o2, w64, sub));
            _mm256_storeu_si256(q + 1, op256(_mm256_loadu_si256(q + 1), o3, w64, sub));
        }
        in[12] = _mm256_add_epi32(in[12], eight);
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
    const __m512i sixteen = _mm512_set1_epi32(16);
    for (size_t b = 0; b < nbatches; b++, v += 1024) {
        __m512i x0 = in[0], x1 = in[1], x2 = in[2], x3 = in[3], x4 = in[4], x5 = in[5],
                x6 = in[6], x7 = in[7], x8 = in[8], x9 = in[9], x10 = in[10], x11 = in[11],
                x12 = in[12], x13 = in[13], x14 = in[14], x15 = in[15];
        for (int i = 0; i < 10; i++) {
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
