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
 * branches or library calls and vectorises (AVX-512 and AVX2 clones are
 * picked at load time where the CPU has them).  For finite x the result is the same double
 * arithmetic as the general loop, so bit-identical; NaN/inf results are
 * unspecified in both (callers refuse them). */
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
#define LS_CLONES __attribute__((target_clones("arch=skylake-avx512", "avx2", "default")))
#else
#define LS_CLONES
#endif

LS_CLONES static size_t quant_fast(const void *values, int f32, const uint32_t *uw, void *out, int w64, size_t n,
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

size_t ls_quantize_words(const void *values, int f32, const uint32_t *uw, void *out, int w64, size_t n,
                         double clip, double scale, double levels, uint64_t weight, size_t *nonfinite)
{
    if (clip > 0.0 && scale > 0.0 && (clip + clip) * scale < 0x1p30 && levels <= 0x1p30)
        return quant_fast(values, f32, uw, out, w64, n, clip, scale, (int32_t)levels, weight, nonfinite);
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
