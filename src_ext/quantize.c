/* The fused quantisation kernel: clip, scale, stochastic rounding, weight.
 *
 * Per element, the same IEEE double operations in the same order as the numpy
 * specification (lepton_secagg/_kernels/_native.py, quantize_into):
 *
 *     c = clip(x, -clip, clip)          (np.clip: NaN propagates)
 *     clipped += (c != x)
 *     s = (c + clip) * scale
 *     f = floor(s)
 *     q = f + (u < s - f)
 *     q = min(q, levels)                (np.minimum: NaN propagates)
 *     out = (uint64)q * weight          (mod 2^64, then truncated to the width)
 *
 * so the results are bit-identical.  This translation unit must not contract
 * a*b+c into an FMA (setup.py passes -ffp-contract=off; the pragmas below
 * cover compilers that honour them).  It holds no Python objects: the module
 * (speedups.c) validates the arguments and releases the GIL around it.
 */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif !defined(__GNUC__)
#pragma STDC FP_CONTRACT OFF
#endif

#include <math.h>

#include "kernels.h"

/* np.clip(x, lo, hi) on float64: _NPY_MIN(_NPY_MAX(x, lo), hi), NaN-propagating. */
static inline double np_clip(double x, double lo, double hi)
{
    double c = (x > lo || x != x) ? x : lo;
    return (c < hi || c != c) ? c : hi;
}

/* float64 -> uint64 as x86 numpy does for in-range values, without C's
 * undefined behaviour for NaN or out-of-range ones (unspecified results there). */
static inline uint64_t to_u64(double q)
{
    if (q >= 0.0 && q < 18446744073709551616.0)
        return (uint64_t)q;
    return (uint64_t)1 << 63;
}

#define QUANT_LOOP(T)                                                           \
    for (size_t i = 0; i < n; i++) {                                            \
        double x = values[i];                                                   \
        double c = np_clip(x, lo, clip);                                        \
        clipped += c != x;                                                      \
        double s = (c + clip) * scale;                                          \
        double f = floor(s);                                                    \
        double q = f + (double)(uniforms[i] < s - f);                           \
        q = (q < lv || q != q) ? q : lv;                                        \
        ((T *)out)[i] = (T)(to_u64(q) * weight);                                \
    }

size_t ls_quantize_into(const double *values, const double *uniforms, void *out, int w64, size_t n,
                        double clip, double scale, double levels, uint64_t weight)
{
    const double lo = -clip, lv = levels;
    size_t clipped = 0;
    if (w64) {
        QUANT_LOOP(uint64_t)
    } else {
        QUANT_LOOP(uint32_t)
    }
    return clipped;
}

/* The quantisation step of the fused client pipeline (speedups.c, encode_masked):
 * the same operations as QUANT_LOOP on float32 or float64 values widened to
 * double, with the uniform u = w * 2^-32 of a 32-bit keystream word w (exact
 * in double).  Also counts NaN and infinite values (x - x is 0 only for finite x).
 *
 * Fast path, taken when 0 < clip, 0 < scale, (clip + clip) * scale < 2^30 and
 * levels <= 2^30 (every 32-bit ring; the common case): then s lies in
 * [0, 2^30] for every finite x, so floor(s) is the int32 truncation, and the
 * clip, min and conversions have no NaN cases to carry; the loop has no
 * branches or library calls and vectorises (an AVX2 clone is picked at load
 * time where the CPU has it; quant_avx512 below is the same in AVX-512).  For
 * finite x the result is the same double arithmetic as the general loop, so
 * bit-identical; NaN/inf results are unspecified in both (callers refuse them). */
#define QUANT_WORDS_LOOP(VT, T)                                                 \
    for (size_t i = 0; i < n; i++) {                                            \
        double x = (double)((const VT *)values)[i];                             \
        bad += (x - x) != 0.0;                                                  \
        double c = np_clip(x, lo, clip);                                        \
        clipped += c != x;                                                      \
        double s = (c + clip) * scale;                                          \
        double f = floor(s);                                                    \
        double q = f + (double)((double)uw[i] * 0x1p-32 < s - f);               \
        q = (q < lv || q != q) ? q : lv;                                        \
        ((T *)out)[i] = (T)(to_u64(q) * weight);                                \
    }

/* u32 -> double without an unsigned conversion (which SSE2/AVX2 lack): exact. */
#define U32_TO_DOUBLE(w) ((double)(int32_t)((w) ^ 0x80000000u) + 2147483648.0)

#define QUANT_FAST_LOOP(VT, T)                                                  \
    for (size_t i = 0; i < n; i++) {                                            \
        double x = (double)((const VT *)values)[i];                             \
        bad += (x - x) != 0.0;                                                  \
        double c = x > lo ? x : lo;                                             \
        c = c < clip ? c : clip;                                                \
        clipped += c != x;                                                      \
        double s = (c + clip) * scale;                                          \
        int32_t fi = (int32_t)s;                                                \
        double f = (double)fi;                                                  \
        int32_t qi = fi + (U32_TO_DOUBLE(uw[i]) * 0x1p-32 < s - f);             \
        qi = qi < lvi ? qi : lvi;                                               \
        ((T *)out)[i] = (T)((uint64_t)qi * weight);                             \
    }

#if LS_X86 && defined(__GNUC__) && defined(__linux__)
#define LS_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LS_CLONES
#endif

LS_CLONES static size_t quant_generic(const void *values, int f32, const uint32_t *uw, void *out, int w64, size_t n,
                                      double clip, double scale, int32_t lvi, uint64_t weight, size_t *nonfinite)
{
    const double lo = -clip;
    size_t clipped = 0, bad = 0;
    if (f32 && w64) {
        QUANT_FAST_LOOP(float, uint64_t)
    } else if (f32) {
        QUANT_FAST_LOOP(float, uint32_t)
    } else if (w64) {
        QUANT_FAST_LOOP(double, uint64_t)
    } else {
        QUANT_FAST_LOOP(double, uint32_t)
    }
    *nonfinite += bad;
    return clipped;
}

const ls_quant_kernel ls_quant_generic = {"generic", quant_generic};

#if LS_X86 && defined(__GNUC__)
#include <immintrin.h>

/* The fast path in AVX-512 (F, DQ, VL, BW), written out because the compiler's
 * vectorisation of QUANT_FAST_LOOP spends most of its time turning 64-bit
 * compare masks into 32-bit lanes.  Here the rounding decision is integer
 * arithmetic on the same doubles.  With f = floor(s), D = (s - f) * 2^32 (both
 * exact) and a 32-bit word w:
 *
 *     w * 2^-32 < s - f  <=>  w < D  <=>  w < ceil(D)  <=>  ceil(D) + (2^32 - 1 - w) >= 2^32
 *
 * (ceil(D) is in [0, 2^32] and 2^32 - 1 - w in [0, 2^32 - 1]), so
 *
 *     q = f + (u < s - f) = (ceil(s * 2^32) + (2^32 - 1 - w)) >> 32
 *
 * since ceil(s * 2^32) = f * 2^32 + ceil(D).  s * 2^32 is computed as
 * (c + clip) * (scale * 2^32): scaling by a power of two commutes with the
 * rounding of the product when nothing overflows or is subnormal, which the
 * bounds checked in ls_quantize_words guarantee; it is below 2^62, so the
 * conversion to uint64 rounding up is its exact ceiling.  Bit-identical to
 * QUANT_FAST_LOOP for finite values; NaN/inf give unspecified words there as here. */
#define LS_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))

/* Eight values as doubles -> eight ceil(s * 2^32) in 64-bit lanes; counts the clipped ones. */
LS_AVX512 static inline __m512i ceil_scaled8(__m512d x, __m512d lo, __m512d hi, __m512d scale32, size_t *clipped)
{
    __m512d c = _mm512_min_pd(_mm512_max_pd(x, lo), hi);
    *clipped += (size_t)__builtin_popcount(_mm512_cmp_pd_mask(c, x, _CMP_NEQ_UQ));
    return _mm512_cvt_roundpd_epu64(_mm512_mul_pd(_mm512_add_pd(c, hi), scale32), _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
}

/* Sixteen values at a time: q in 32-bit lanes is the high half of each 64-bit
 * ceil(s * 2^32) + (2^32 - 1 - w), picked by one permute. */
LS_AVX512 static size_t quant_avx512(const void *values, int f32, const uint32_t *uw, void *out, int w64, size_t n,
                                     double clip, double scale, int32_t lvi, uint64_t weight, size_t *nonfinite)
{
    const __m512d lo = _mm512_set1_pd(-clip), hi = _mm512_set1_pd(clip), scale32 = _mm512_set1_pd(scale * 0x1p32);
    const __m512i ones = _mm512_set1_epi32(-1), levels = _mm512_set1_epi32(lvi);
    const __m512i high_halves = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i wt64 = _mm512_set1_epi64((long long)weight), wt32 = _mm512_set1_epi32((int)(uint32_t)weight);
    size_t clipped = 0, i = 0;
    __mmask16 bad = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d x0, x1;
        if (f32) {
            __m512 xf = _mm512_loadu_ps((const float *)values + i);
            bad |= _mm512_fpclass_ps_mask(xf, 0x99); /* QNaN, SNaN, +inf, -inf */
            x0 = _mm512_cvtps_pd(_mm512_castps512_ps256(xf));
            x1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xf), 1)));
        } else {
            x0 = _mm512_loadu_pd((const double *)values + i);
            x1 = _mm512_loadu_pd((const double *)values + i + 8);
            bad |= (__mmask16)(_mm512_fpclass_pd_mask(x0, 0x99) | _mm512_fpclass_pd_mask(x1, 0x99));
        }
        __m512i nw = _mm512_xor_si512(_mm512_loadu_si512(uw + i), ones); /* 2^32 - 1 - w */
        __m512i t0 = _mm512_add_epi64(ceil_scaled8(x0, lo, hi, scale32, &clipped), _mm512_cvtepu32_epi64(_mm512_castsi512_si256(nw)));
        __m512i t1 = _mm512_add_epi64(ceil_scaled8(x1, lo, hi, scale32, &clipped), _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(nw, 1)));
        __m512i q = _mm512_min_epu32(_mm512_permutex2var_epi32(t0, high_halves, t1), levels);
        if (w64) {
            _mm512_storeu_si512((uint64_t *)out + i, _mm512_mullo_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(q)), wt64));
            _mm512_storeu_si512((uint64_t *)out + i + 8, _mm512_mullo_epi64(_mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(q, 1)), wt64));
        } else { /* (uint32)(q * weight) = q * (uint32)weight mod 2^32 */
            _mm512_storeu_si512((uint32_t *)out + i, _mm512_mullo_epi32(q, wt32));
        }
    }
    if (bad) { /* rare: count them exactly, as the generic loop would */
        for (size_t j = 0; j < i; j++) {
            double x = f32 ? (double)((const float *)values)[j] : ((const double *)values)[j];
            *nonfinite += (x - x) != 0.0;
        }
    }
    if (i < n) {
        const void *rest = f32 ? (const void *)((const float *)values + i) : (const void *)((const double *)values + i);
        void *rest_out = w64 ? (void *)((uint64_t *)out + i) : (void *)((uint32_t *)out + i);
        clipped += quant_generic(rest, f32, uw + i, rest_out, w64, n - i, clip, scale, lvi, weight, nonfinite);
    }
    return clipped;
}

const ls_quant_kernel ls_quant_avx512 = {"avx512", quant_avx512};
#else
const ls_quant_kernel ls_quant_avx512 = {"avx512", NULL};
#endif

size_t ls_quantize_words(const ls_quant_kernel *kernel, const void *values, int f32, const uint32_t *uw, void *out,
                         int w64, size_t n, double clip, double scale, double levels, uint64_t weight,
                         size_t *nonfinite)
{
    /* The fast paths' bounds: s in [0, 2^30] for finite x; clip * scale >= 2^-100 keeps
     * (c + clip) * scale normal or 0 (c + clip >= clip * 2^-53 when not 0), and
     * scale < 2^960 keeps scale * 2^32 finite. */
    if (clip > 0.0 && scale > 0.0 && (clip + clip) * scale < 0x1p30 && levels <= 0x1p30 && clip * scale >= 0x1p-100
        && scale < 0x1p960)
        return kernel->fn(values, f32, uw, out, w64, n, clip, scale, (int32_t)levels, weight, nonfinite);
    const double lo = -clip, lv = levels;
    size_t clipped = 0, bad = 0;
    if (f32 && w64) {
        QUANT_WORDS_LOOP(float, uint64_t)
    } else if (f32) {
        QUANT_WORDS_LOOP(float, uint32_t)
    } else if (w64) {
        QUANT_WORDS_LOOP(double, uint64_t)
    } else {
        QUANT_WORDS_LOOP(double, uint32_t)
    }
    *nonfinite += bad;
    return clipped;
}
