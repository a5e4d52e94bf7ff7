/* Ring elements of width b (1..64) packed at b bits each, and back.
 *
 * The packed form is a little-endian bit string: bit j is bit j % 8 of byte
 * j / 8, element i occupies bits [i b, (i + 1) b), the pad bits of the last
 * byte are 0.  The specification is pack_bits / unpack_bits in
 * lepton_secagg/_kernels/_native.py.  A 128-bit accumulator holds the bits
 * not yet written (fewer than 64 between elements), so any b needs one shift
 * and one or-in per element and one 8-byte store per 64 bits.
 */
#include <string.h>

#include "kernels.h"

static inline void store_le64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(v >> (8 * k)); /* one store on little-endian targets */
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 0; k < 8; k++)
        v |= (uint64_t)p[k] << (8 * k);
    return v;
}

int ls_pack_bits(const void *words, int w64, size_t n, unsigned bits, uint8_t *out)
{
    const uint64_t mask = bits >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
    unsigned __int128 acc = 0;
    unsigned nb = 0;
    uint64_t over = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = w64 ? ((const uint64_t *)words)[i] : ((const uint32_t *)words)[i];
        over |= v & ~mask;
        acc |= (unsigned __int128)(v & mask) << nb;
        nb += bits;
        if (nb >= 64) {
            store_le64(out + o, (uint64_t)acc);
            o += 8;
            acc >>= 64;
            nb -= 64;
        }
    }
    for (; nb > 0; nb = nb > 8 ? nb - 8 : 0) {
        out[o++] = (uint8_t)acc;
        acc >>= 8;
    }
    return over != 0;
}

void ls_unpack_bits(const uint8_t *in, size_t nbytes, unsigned bits, size_t n, void *words, int w64)
{
    const uint64_t mask = bits >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
    unsigned __int128 acc = 0;
    unsigned nb = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        while (nb < bits) { /* nb < 64 here, so at most 127 bits are held */
            if (o + 8 <= nbytes) {
                acc |= (unsigned __int128)load_le64(in + o) << nb;
                o += 8;
                nb += 64;
            } else {
                acc |= (unsigned __int128)in[o] << nb;
                o += 1;
                nb += 8;
            }
        }
        uint64_t v = (uint64_t)acc & mask;
        acc >>= bits;
        nb -= bits;
        if (w64)
            ((uint64_t *)words)[i] = v;
        else
            ((uint32_t *)words)[i] = (uint32_t)v;
    }
}
