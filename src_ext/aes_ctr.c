/* AES-128-CTR keystream fused with an in-place add into the vector.
 *
 * Counter block i is the 128-bit big-endian integer i (IV = 0).  The driver
 * guarantees block + nblocks <= 2^60 (the stream is at most 2^64 bytes), so
 * the counter lives in the low 64 bits: it is kept as a little-endian 64-bit
 * lane (high lane 0), incremented with a 64-bit add (carries across all 64
 * bits) and byte-reversed per 128-bit lane into the big-endian block.
 *
 * Three pipelines, each compiled for its own target with
 * __attribute__((target)) and chosen at run time by speedups.c:
 *   aesni    xmm, 8 blocks in flight (128 B per batch)
 *   vaes256  ymm, 8 registers = 16 blocks in flight (256 B per batch)
 *   vaes512  zmm, 8 registers = 32 blocks in flight (512 B per batch)
 */
#include "kernels.h"

#if LS_X86
#include <immintrin.h>

#define TGT_AESNI __attribute__((target("sse2,ssse3,aes")))
#define TGT_VAES256 __attribute__((target("avx2,aes,vaes")))
#define TGT_VAES512 __attribute__((target("avx512f,avx512bw,avx2,aes,vaes")))
#define INLINE static inline __attribute__((always_inline))

/* ---- key expansion (FIPS-197, AES-NI) ---------------------------------- */

TGT_AESNI INLINE __m128i expand_step(__m128i key, __m128i assist)
{
    assist = _mm_shuffle_epi32(assist, 0xff);
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, assist);
}

#define EXPAND(i, rcon) rk[i] = expand_step(rk[(i) - 1], _mm_aeskeygenassist_si128(rk[(i) - 1], rcon))

TGT_AESNI void ls_aes128_expand(const uint8_t key[16], void *round_keys)
{
    __m128i *rk = (__m128i *)round_keys;
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    EXPAND(1, 0x01);
    EXPAND(2, 0x02);
    EXPAND(3, 0x04);
    EXPAND(4, 0x08);
    EXPAND(5, 0x10);
    EXPAND(6, 0x20);
    EXPAND(7, 0x40);
    EXPAND(8, 0x80);
    EXPAND(9, 0x1b);
    EXPAND(10, 0x36);
}

/* ---- AES-NI xmm, 8 blocks in flight ------------------------------------ */

TGT_AESNI INLINE __m128i op128(__m128i v, __m128i k, int w64, int sub)
{
    if (w64)
        return sub ? _mm_sub_epi64(v, k) : _mm_add_epi64(v, k);
    return sub ? _mm_sub_epi32(v, k) : _mm_add_epi32(v, k);
}

TGT_AESNI INLINE void aesni_body(const void *key, uint64_t block, uint8_t *v,
                                 size_t nbatches, int w64, int sub)
{
    const __m128i *rkp = (const __m128i *)key;
    __m128i rk[11];
    for (int r = 0; r < 11; r++)
        rk[r] = _mm_load_si128(rkp + r);
    const __m128i rev = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m128i one = _mm_set_epi64x(0, 1);
    __m128i ctr = _mm_set_epi64x(0, (long long)block);
    for (size_t b = 0; b < nbatches; b++, v += 128) {
        __m128i x[8];
        for (int i = 0; i < 8; i++) {
            x[i] = _mm_xor_si128(_mm_shuffle_epi8(ctr, rev), rk[0]);
            ctr = _mm_add_epi64(ctr, one);
        }
        for (int r = 1; r < 10; r++)
            for (int i = 0; i < 8; i++)
                x[i] = _mm_aesenc_si128(x[i], rk[r]);
        for (int i = 0; i < 8; i++) {
            x[i] = _mm_aesenclast_si128(x[i], rk[10]);
            __m128i *p = (__m128i *)(v + 16 * i);
            _mm_storeu_si128(p, op128(_mm_loadu_si128(p), x[i], w64, sub));
        }
    }
}

TGT_AESNI static void aesni_fn(const void *key, uint64_t block, uint8_t *v,
                               size_t nbatches, int w64, int sub)
{
    if (w64) {
        if (sub) aesni_body(key, block, v, nbatches, 1, 1);
        else aesni_body(key, block, v, nbatches, 1, 0);
    } else {
        if (sub) aesni_body(key, block, v, nbatches, 0, 1);
        else aesni_body(key, block, v, nbatches, 0, 0);
    }
}

const ls_kernel ls_aes_aesni = {"aesni", aesni_fn, 128};

/* ---- VAES ymm, 16 blocks in flight ------------------------------------- */

TGT_VAES256 INLINE __m256i op256(__m256i v, __m256i k, int w64, int sub)
{
    if (w64)
        return sub ? _mm256_sub_epi64(v, k) : _mm256_add_epi64(v, k);
    return sub ? _mm256_sub_epi32(v, k) : _mm256_add_epi32(v, k);
}

TGT_VAES256 INLINE void vaes256_body(const void *key, uint64_t block, uint8_t *v,
                                     size_t nbatches, int w64, int sub)
{
    const __m128i *rkp = (const __m128i *)key;
    __m256i rk[11];
    for (int r = 0; r < 11; r++)
        rk[r] = _mm256_broadcastsi128_si256(_mm_load_si128(rkp + r));
    const __m256i rev = _mm256_broadcastsi128_si256(
        _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m256i two = _mm256_set_epi64x(0, 2, 0, 2);
    __m256i ctr = _mm256_set_epi64x(0, (long long)(block + 1), 0, (long long)block);
    for (size_t b = 0; b < nbatches; b++, v += 256) {
        __m256i x[8];
        for (int i = 0; i < 8; i++) {
            x[i] = _mm256_xor_si256(_mm256_shuffle_epi8(ctr, rev), rk[0]);
            ctr = _mm256_add_epi64(ctr, two);
        }
        for (int r = 1; r < 10; r++)
            for (int i = 0; i < 8; i++)
                x[i] = _mm256_aesenc_epi128(x[i], rk[r]);
        for (int i = 0; i < 8; i++) {
            x[i] = _mm256_aesenclast_epi128(x[i], rk[10]);
            __m256i *p = (__m256i *)(v + 32 * i);
            _mm256_storeu_si256(p, op256(_mm256_loadu_si256(p), x[i], w64, sub));
        }
    }
}

TGT_VAES256 static void vaes256_fn(const void *key, uint64_t block, uint8_t *v,
                                   size_t nbatches, int w64, int sub)
{
    if (w64) {
        if (sub) vaes256_body(key, block, v, nbatches, 1, 1);
        else vaes256_body(key, block, v, nbatches, 1, 0);
    } else {
        if (sub) vaes256_body(key, block, v, nbatches, 0, 1);
        else vaes256_body(key, block, v, nbatches, 0, 0);
    }
}

const ls_kernel ls_aes_vaes256 = {"vaes256", vaes256_fn, 256};

/* ---- VAES zmm, 32 blocks in flight ------------------------------------- */

TGT_VAES512 INLINE __m512i op512(__m512i v, __m512i k, int w64, int sub)
{
    if (w64)
        return sub ? _mm512_sub_epi64(v, k) : _mm512_add_epi64(v, k);
    return sub ? _mm512_sub_epi32(v, k) : _mm512_add_epi32(v, k);
}

TGT_VAES512 INLINE void vaes512_body(const void *key, uint64_t block, uint8_t *v,
                                     size_t nbatches, int w64, int sub)
{
    const __m128i *rkp = (const __m128i *)key;
    __m512i rk[11];
    for (int r = 0; r < 11; r++)
        rk[r] = _mm512_broadcast_i32x4(_mm_load_si128(rkp + r));
    const __m512i rev = _mm512_broadcast_i32x4(
        _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m512i four = _mm512_set_epi64(0, 4, 0, 4, 0, 4, 0, 4);
    __m512i ctr = _mm512_set_epi64(0, (long long)(block + 3), 0, (long long)(block + 2),
                                   0, (long long)(block + 1), 0, (long long)block);
    for (size_t b = 0; b < nbatches; b++, v += 512) {
        __m512i x[8];
        for (int i = 0; i < 8; i++) {
            x[i] = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, rev), rk[0]);
            ctr = _mm512_add_epi64(ctr, four);
        }
        for (int r = 1; r < 10; r++)
            for (int i = 0; i < 8; i++)
                x[i] = _mm512_aesenc_epi128(x[i], rk[r]);
        for (int i = 0; i < 8; i++) {
            x[i] = _mm512_aesenclast_epi128(x[i], rk[10]);
            void *p = v + 64 * i;
            _mm512_storeu_si512(p, op512(_mm512_loadu_si512(p), x[i], w64, sub));
        }
    }
}

TGT_VAES512 static void vaes512_fn(const void *key, uint64_t block, uint8_t *v,
                                   size_t nbatches, int w64, int sub)
{
    if (w64) {
        if (sub) vaes512_body(key, block, v, nbatches, 1, 1);
        else vaes512_body(key, block, v, nbatches, 1, 0);
    } else {
        if (sub) vaes512_body(key, block, v, nbatches, 0, 1);
        else vaes512_body(key, block, v, nbatches, 0, 0);
    }
}

const ls_kernel ls_aes_vaes512 = {"vaes512", vaes512_fn, 512};

#else /* not x86: no AES kernels; speedups.c falls back to the numpy kernel */

void ls_aes128_expand(const uint8_t key[16], void *round_keys)
{
    (void)key;
    (void)round_keys;
}
const ls_kernel ls_aes_aesni = {"aesni", 0, 128};
const ls_kernel ls_aes_vaes256 = {"vaes256", 0, 256};
const ls_kernel ls_aes_vaes512 = {"vaes512", 0, 512};

#endif
