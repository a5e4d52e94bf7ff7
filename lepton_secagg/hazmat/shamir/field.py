"""Arithmetic in GF(2^31 - 1) on whole numpy arrays of uint64 elements < ``PRIME``.

p = 2^31 - 1 is a Mersenne prime, so a product of two elements fits in a
uint64 and reduces with two shift-and-add folds (``_reduce``).  Matrix
products run exactly in float64 BLAS on the 16-bit and 15-bit halves of the
factors (``_matmul_mod``, ``_matmul_mod_batched``).  Inverses of index
differences come from a cached table of inverses of 1..N
(``_small_inverses``), which is why share indices stop at ``MAX_SHARES``.
``_random_elements`` draws uniform elements from the injected rng.
"""
from __future__ import annotations

import functools

import numpy as np

from ..rng import Rng

#: the field modulus, 2^31 - 1
PRIME = (1 << 31) - 1
#: the largest n, and so the largest share index (the inverse tables cover 1..2^20)
MAX_SHARES = 1 << 20

_P = np.uint64(PRIME)
_SHIFT31 = np.uint64(31)
_LOW16 = np.uint64(0xFFFF)
_SHIFT16 = np.uint64(16)


def _reduce(z: np.ndarray) -> np.ndarray:
    """``z mod PRIME`` for any uint64 array, in place; returns it."""
    # 2^31 = 1 (mod p): fold the high bits onto the low ones twice, then one
    # conditional subtraction; about twice as fast as numpy's uint64 ``%``.
    high = z >> _SHIFT31
    z &= _P
    z += high
    np.right_shift(z, _SHIFT31, out=high)
    z &= _P
    z += high
    # z <= p now; z - p wraps to a huge value unless z == p, so min picks the residue
    np.subtract(z, _P, out=high)
    np.minimum(z, high, out=z)
    return z


def _mulmod(a: np.ndarray, b: np.ndarray | np.uint64) -> np.ndarray:
    return _reduce(np.multiply(a, b, dtype=np.uint64))


def _product_mod(matrix: np.ndarray) -> np.ndarray:
    """The product mod PRIME of each column (along axis 0), by halving (log-depth; the halves are contiguous).

    Intermediate products are only folded below 2^32 (two folds, not a full
    reduction: a product of two such is still below 2^64); the result is reduced.
    """
    while matrix.shape[0] > 1:
        half = matrix.shape[0] // 2
        folded = _mulmod_lazy(matrix[:half], matrix[half : 2 * half])
        if matrix.shape[0] % 2:
            folded[0] = _mulmod_lazy(folded[0], matrix[-1])
        matrix = folded
    return _reduce(matrix[0].copy())


def _mulmod_lazy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A value < 2^32 congruent to a * b mod PRIME, for uint64 a, b < 2^32."""
    z: np.ndarray = np.multiply(a, b, dtype=np.uint64)
    high = z >> _SHIFT31
    z &= _P
    z += high  # < 2^31 + 2^33
    np.right_shift(z, _SHIFT31, out=high)
    z &= _P
    z += high  # < 2^31 + 8
    return z


def _difference_matrix(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``[j, c] = rows[j] - columns[c] mod PRIME`` for uint64 vectors of elements."""
    differences = rows[:, None] + (_P - columns)[None, :]  # in [1, 2p]
    np.minimum(differences, differences - _P, out=differences)  # unsigned wrap-around picks the residue
    return differences


def _powmod(base: np.ndarray, exponent: int) -> np.ndarray:
    result = np.ones_like(base)
    square = base.copy()
    while exponent:
        if exponent & 1:
            result = _mulmod(result, square)
        square = _mulmod(square, square)
        exponent >>= 1
    return result


@functools.lru_cache(maxsize=4)
def _small_inverses(size: int) -> np.ndarray:
    """``table[d] = d^-1 mod PRIME`` for 1 <= d < size (``table[0]`` = 0); read-only."""
    table = _powmod(np.arange(size, dtype=np.uint64), PRIME - 2)  # Fermat; 0 maps to 0
    table.flags.writeable = False
    return table


def _table_size(largest: int) -> int:
    """A ``_small_inverses`` size covering 1..largest, a power of two so few sizes get cached."""
    return 1 << largest.bit_length()


def _inverse_of_differences(differences: np.ndarray) -> np.ndarray:
    """Inverses mod PRIME of an int64 array of index differences (0 maps to 0)."""
    magnitude = np.abs(differences)
    inverses: np.ndarray = _small_inverses(_table_size(int(magnitude.max())))[magnitude]
    negative = (differences < 0) & (inverses != 0)
    inverses[negative] = _P - inverses[negative]
    return inverses


@functools.lru_cache(maxsize=4)
def _signed_inverses(size: int) -> np.ndarray:
    """``table[size + d] = d^-1 mod PRIME`` for 0 < |d| < size, and ``table[size] = 1``; read-only.

    The 1 at d = 0 makes the diagonal of a product over differences x_j - x_i drop out.
    """
    positive = _small_inverses(size)
    table = np.empty(2 * size, dtype=np.uint64)
    table[size:] = positive
    table[1 : size + 1] = (_P - positive)[::-1]  # [size - d] = -(1 / d)
    table[0] = 0
    table[size] = 1
    table.flags.writeable = False
    return table


def _matmul_mod_batched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a[l] @ b[l] mod PRIME`` for stacks (L, r, k), (L, k, c) of uint64 elements, exactly.

    Only ``a`` is cut into 16-bit and 15-bit halves: a partial product is below
    2^47 and a sum of up to 64 stays below 2^53, so float64 BLAS is exact; a
    longer k is done 64 at a time.
    """
    total = _matmul_mod_chunk(a, b, 0)
    for start in range(64, a.shape[2], 64):
        total += _matmul_mod_chunk(a, b, start)
    return _reduce(total) if a.shape[2] > 64 else total


def _matmul_mod_chunk(a: np.ndarray, b: np.ndarray, start: int) -> np.ndarray:
    """``a[:, :, start:start + 64] @ b[:, start:start + 64] mod PRIME`` for ``_matmul_mod_batched``."""
    rows = a.shape[1]
    part = a[:, :, start : start + 64]
    halves = np.empty((a.shape[0], 2 * rows, part.shape[2]), dtype=np.float64)
    halves[:, :rows] = part & _LOW16
    halves[:, rows:] = part >> _SHIFT16
    product = np.matmul(halves, b[:, start : start + 64].astype(np.float64)).astype(np.uint64)
    high = product[:, rows:]  # < 2^52, weighs 2^16 = 2^31 / 2^15
    step = high >> np.uint64(15)
    high &= np.uint64(0x7FFF)
    high <<= _SHIFT16
    step += high
    step += product[:, :rows]  # < 2^54
    return _reduce(step)


def _halves(a: np.ndarray) -> np.ndarray:
    """The (2r, k) float64 stack [a mod 2^16; a >> 16] of an (r, k) matrix of elements; read-only."""
    halves = np.empty((2 * a.shape[0], a.shape[1]), dtype=np.float64)
    halves[: a.shape[0]] = a & _LOW16
    halves[a.shape[0] :] = a >> _SHIFT16
    halves.flags.writeable = False
    return halves


def _matmul_mod(a_halves: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b mod PRIME``, exactly, for ``a_halves = _halves(a)`` and b of elements < PRIME.

    Both factors are cut into 16-bit and 15-bit halves held as float64: each
    partial product is < 2^32, and a sum of k <= MAX_SHARES = 2^20 of them stays
    below 2^53, so the one BLAS call is exact.
    """
    rows, cols = a_halves.shape[0] // 2, b.shape[1]
    b_halves = np.empty((b.shape[0], 2 * cols), dtype=np.float64)
    b_halves[:, :cols] = b & _LOW16
    b_halves[:, cols:] = b >> _SHIFT16
    product = (a_halves @ b_halves).astype(np.uint64)
    middle = product[:rows, cols:] + product[rows:, :cols]  # < 2^54
    # low + 2^16 middle + 2^32 high with 2^31 = 1 (mod p): 2^32 high = 2 high, and
    # 2^16 middle = (middle >> 15) + 2^16 (middle mod 2^15); the total is < 2^55.
    total = middle >> np.uint64(15)
    middle &= np.uint64(0x7FFF)
    middle <<= _SHIFT16
    total += middle
    total += product[:rows, :cols]
    total += product[rows:, cols:] << np.uint64(1)
    return _reduce(total)


def _powers(base: np.ndarray, count: int) -> np.ndarray:
    """The (len(base), count) matrix of base^k mod PRIME, k = 0..count-1 (doubling the filled columns)."""
    powers = np.empty((base.size, count), dtype=np.uint64)
    powers[:, 0] = 1
    factor = base.copy()  # base^filled
    filled = 1
    while filled < count:
        take = min(filled, count - filled)
        powers[:, filled : filled + take] = _mulmod(powers[:, :take], factor[:, None])
        factor = _mulmod(factor, factor)
        filled += take
    return powers


def _random_elements(rng: Rng, count: int) -> np.ndarray:
    """``count`` uniform elements of F_p from ``rng``, by rejection sampling."""
    # A 31-bit word is uniform on [0, 2^31); dropping the single value 2^31 - 1
    # leaves it uniform on [0, p).
    out = np.empty(0, dtype=np.uint64)
    while out.size < count:
        words = np.frombuffer(rng.bytes(4 * (count - out.size)), dtype="<u4") & np.uint32(PRIME)
        out = np.concatenate([out, words[words != PRIME].astype(np.uint64)])
    return out
