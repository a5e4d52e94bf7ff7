/* Internal interface between the module (speedups.c) and the SIMD kernels.
 *
 * A "batch kernel" adds (or subtracts) keystream into a vector, a whole number
 * of batches at a time:
 *
 *     fn(key, block, v, nbatches, w64, sub)
 *
 * key      the expanded key (AES: 11 round keys, 176 bytes, 16-byte aligned;
 *          ChaCha20: the 16-word initial state with counter 0)
 * block    the index of the first keystream block (16 B for AES, 64 B for
 *          ChaCha20) that lines up with v[0]
 * v        the vector bytes (any alignment); nbatches * batch_bytes of them
 * w64      0: the vector holds 32-bit words; 1: 64-bit words
 * sub      0: v += keystream word; 1: v -= keystream word
 *
 * The keystream words are the little-endian reading of the keystream bytes.
 * Partial batches are produced by the driver by running the kernel on a zeroed
 * scratch batch and adding the needed bytes in scalar code.
 */
#ifndef LEPTON_SECAGG_KERNELS_H
#define LEPTON_SECAGG_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#define LS_X86 1
#else
#define LS_X86 0
#endif

typedef void (*ls_batch_fn)(const void *key, uint64_t block, uint8_t *v,
                            size_t nbatches, int w64, int sub);

typedef struct {
    const char *name;   /* "aesni", "vaes256", "avx2", ... */
    ls_batch_fn fn;
    size_t batch_bytes; /* bytes of keystream per batch, a power of two <= 1024 */
} ls_kernel;

/* Largest batch of any kernel; scratch buffers use this size. */
#define LS_MAX_BATCH 1024

/* AES-128 (aes_ctr.c).  Available only on x86 with AES-NI. */
#define LS_AES_KEY_BYTES 176
void ls_aes128_expand(const uint8_t key[16], void *round_keys /* 176 B, 16-aligned */);
extern const ls_kernel ls_aes_aesni;   /* AES-NI xmm, 8 blocks in flight  */
extern const ls_kernel ls_aes_vaes256; /* VAES ymm, 16 blocks in flight   */
extern const ls_kernel ls_aes_vaes512; /* VAES zmm, 32 blocks in flight   */

/* ChaCha20 (chacha20.c). */
#define LS_CHACHA_KEY_BYTES 64
void ls_chacha_setup(const uint8_t key[32], void *state /* 64 B */);
extern const ls_kernel ls_chacha_scalar; /* portable, 1 block */
extern const ls_kernel ls_chacha_avx2;   /* 8 blocks in parallel */
extern const ls_kernel ls_chacha_avx512; /* 16 blocks in parallel */

/* Fused quantisation (quantize.c): out[i] = min(floor(s) + (u[i] < frac(s)), levels)
 * * weight with s = (clip(values[i], -clip, clip) + clip) * scale, out holding
 * uint32 (w64 = 0) or uint64 words; returns how many values were clipped.
 * Pure C, no Python objects: callable without the GIL. */
size_t ls_quantize_into(const double *values, const double *uniforms, void *out, int w64, size_t n,
                        double clip, double scale, double levels, uint64_t weight);

/* A fast path of the quantisation step (quantize.c), for clip > 0 and s = (c + clip) * scale
 * within [0, 2^30]: as ls_quantize_into on float32 (f32 = 1) or float64 values with
 * uniforms[i] = uw[i] * 2^-32 and integer levels lvi. */
typedef size_t (*ls_quant_fn)(const void *values, int f32, const uint32_t *uw, void *out, int w64, size_t n,
                              double clip, double scale, int32_t lvi, uint64_t weight, size_t *nonfinite);
typedef struct {
    const char *name; /* "avx512", "generic" */
    ls_quant_fn fn;   /* NULL where not compiled */
} ls_quant_kernel;
extern const ls_quant_kernel ls_quant_avx512;  /* AVX-512 F/DQ/VL/BW */
extern const ls_quant_kernel ls_quant_generic; /* C, compiler-vectorised (AVX2 clone) */

/* The quantisation step of the fused pipeline (quantize.c): as ls_quantize_into on float32
 * (f32 = 1) or float64 values, with uniforms[i] = uw[i] * 2^-32; kernel->fn where its bounds
 * hold, else the general loop; adds the number of NaN/infinite values to *nonfinite;
 * returns how many values were clipped. */
size_t ls_quantize_words(const ls_quant_kernel *kernel, const void *values, int f32, const uint32_t *uw, void *out,
                         int w64, size_t n, double clip, double scale, double levels, uint64_t weight,
                         size_t *nonfinite);

/* Packing at b bits per element (pack.c): out gets ceil(n * bits / 8) bytes; returns
 * nonzero when some element was >= 2^bits (its high bits are dropped).  unpack reads
 * ceil(n * bits / 8) = nbytes bytes and ignores the pad bits. */
int ls_pack_bits(const void *words, int w64, size_t n, unsigned bits, uint8_t *out);
void ls_unpack_bits(const uint8_t *in, size_t nbytes, unsigned bits, size_t n, void *words, int w64);

/* CPU feature probes (speedups.c). */
int ls_cpu_has(const char *feature);

#endif
