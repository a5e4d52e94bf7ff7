"""Shamir t-of-n secret sharing of short byte strings over GF(2^31 - 1).

Theory of operation: the field is the Mersenne prime p = 2^31 - 1, so a
product of two elements fits in a uint64 and reduces with two shift-and-add
folds; numpy then does every step on whole arrays.  A secret of L bytes
(1 <= L <= 1024) is read as a little-endian integer and cut into
m = ceil(8L / 30) limbs of 30 bits (a 32-byte secret gives 9 limbs); each
limb is the constant term of its own polynomial of degree < t whose other
coefficients are uniform in F_p, drawn from the injected rng by rejection
sampling.  Share i (1 <= i <= n) is every polynomial evaluated at x = i:

    value = uint16 L  ||  m x uint32 evaluation      (all little-endian)

so a 32-byte secret gives 38-byte shares.  All polynomials of a call, and of
several secrets in ``split_many``, are evaluated at all n points at once
(baby-step giant-step: one matrix product and a short Horner loop); matrix
products run exactly in float64 BLAS on the 16-bit halves of both factors.

Reconstruction interpolates at 0 from the t lowest indices with Lagrange
coefficients cached per index set (``lagrange_coefficients``), so a server
recovering many secrets from the same survivors pays the O(t^2) setup once.
Shares beyond t are not ignored: each is checked against the polynomial the
first t define (barycentric form, O((s - t) t)), and any disagreement raises
``ReconstructionError``, so a forged share is detected rather than used.  With
exactly t shares a forgery cannot be detected, except when it makes a limb
exceed 30 bits, which is also refused.

Inverses of differences of indices come from a cached table of inverses of
1..N, which is why indices are limited to ``MAX_SHARES`` = 2^20 (far beyond
any n for which O(n t) sharing is affordable).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import ReconstructionError
from .rng import Rng, resolve

__all__ = [
    "PRIME",
    "MAX_SHARES",
    "MAX_SECRET_SIZE",
    "Share",
    "share_size",
    "split",
    "split_many",
    "reconstruct",
    "reconstruct_many",
    "lagrange_coefficients",
]

#: the field modulus, 2^31 - 1
PRIME = (1 << 31) - 1
#: the largest n, and so the largest share index
MAX_SHARES = 1 << 20
#: the longest secret, in bytes
MAX_SECRET_SIZE = 1024

_LIMB_BITS = 30
_HEADER = 2  # uint16 secret length
_P = np.uint64(PRIME)
_SHIFT31 = np.uint64(31)
_LOW16 = np.uint64(0xFFFF)
_SHIFT16 = np.uint64(16)


@dataclass(frozen=True)
class Share:
    """One party's share: its x-coordinate ``index`` and the encoded evaluations ``value``.

    The value is secret, so it is left out of ``repr``.
    """

    index: int
    value: bytes = field(repr=False)

    def __post_init__(self):
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise TypeError(f"a share index must be an int, not {type(self.index).__name__}.")
        if not 1 <= self.index <= MAX_SHARES:
            raise ValueError(f"a share index must lie in 1..{MAX_SHARES}, got {self.index}.")
        if not isinstance(self.value, bytes):
            raise TypeError(f"a share value must be bytes, not {type(self.value).__name__}.")


def share_size(secret_size: int) -> int:
    """The length in bytes of each share value of a ``secret_size``-byte secret."""
    _check_secret_size(secret_size)
    return _HEADER + 4 * _num_limbs(secret_size)


def split(secret: bytes, n: int, t: int, rng: Rng | None = None) -> list[Share]:
    """Split ``secret`` into shares with indices 1..n, any t of which recover it.

    Args:
        secret: 1 to ``MAX_SECRET_SIZE`` bytes.
        n: the number of shares, 1 <= n <= ``MAX_SHARES``.
        t: the threshold, 1 <= t <= n.
        rng: the source of the polynomial coefficients (None: the OS).

    Raises:
        TypeError / ValueError: a bad secret, n or t.
    """
    return split_many([secret], n, t, rng)[0]


def split_many(secrets: Sequence[bytes], n: int, t: int, rng: Rng | None = None) -> list[list[Share]]:
    """``[split(s, n, t, rng) for s in secrets]`` in one vectorised pass.

    The coefficients are drawn in one ``rng.bytes`` call, secret by secret,
    so with a deterministic rng the shares equal those of successive ``split``
    calls (unless a rejected draw, probability 2^-31 per element, shifts them).
    """
    _check_n_t(n, t)
    rng = resolve(rng)
    if isinstance(secrets, (bytes, bytearray, str)) or not isinstance(secrets, Sequence):
        raise TypeError(f"secrets must be a sequence of bytes, not {type(secrets).__name__}.")
    for secret in secrets:
        if not isinstance(secret, bytes):
            raise TypeError(f"a secret must be bytes, not {type(secret).__name__}.")
        _check_secret_size(len(secret))
    if not secrets:
        return []
    widths = [_num_limbs(len(s)) for s in secrets]
    coefficients = np.empty((t, sum(widths)), dtype=np.uint64)
    coefficients[0] = np.concatenate([_to_limbs(s) for s in secrets])
    draws = _random_elements(rng, (t - 1) * coefficients.shape[1])
    start = 0
    for width in widths:
        block = draws[(t - 1) * start : (t - 1) * (start + width)]
        coefficients[1:, start : start + width] = block.reshape(t - 1, width)
        start += width
    evaluations = _evaluate(coefficients, n)

    result = []
    start = 0
    for secret, width in zip(secrets, widths):
        size = _HEADER + 4 * width
        rows = np.empty((n, size), dtype=np.uint8)
        rows[:, :_HEADER] = np.frombuffer(len(secret).to_bytes(_HEADER, "little"), dtype=np.uint8)
        rows[:, _HEADER:] = evaluations[:, start : start + width].astype("<u4").view(np.uint8)
        blob = rows.tobytes()
        result.append([Share(i + 1, blob[i * size : (i + 1) * size]) for i in range(n)])
        start += width
    return result


def reconstruct(shares: Sequence[Share], t: int) -> bytes:
    """The secret behind ``shares``, produced by ``split`` with threshold ``t``.

    Repeated identical shares count once.  Every share beyond the first t
    (by index) must agree with the polynomial the first t define.

    Raises:
        TypeError / ValueError: ``shares`` is not a sequence of ``Share`` or t is bad.
        ReconstructionError: fewer than t distinct indices; two different
            values for one index; shares of different lengths or malformed;
            shares that do not lie on one polynomial of degree < t.
    """
    return _reconstruct_groups([_collect(shares, t)], t, prefix=None)[0]


def reconstruct_many(share_lists: Sequence[Sequence[Share]], t: int) -> list[bytes]:
    """``[reconstruct(shares, t) for shares in share_lists]``, batched.

    Lists with the same set of indices share one set of Lagrange coefficients
    and one matrix product, so recovering hundreds of secrets from the same
    survivors costs little more than recovering one.

    Raises:
        ReconstructionError: as ``reconstruct``, for the first failing list;
            the message names its position.
    """
    if not isinstance(share_lists, Sequence):
        raise TypeError(f"share_lists must be a sequence, not {type(share_lists).__name__}.")
    collected = []
    for position, shares in enumerate(share_lists):
        try:
            collected.append(_collect(shares, t))
        except ReconstructionError as exc:
            raise ReconstructionError(f"share list {position}: {exc}") from None
    return _reconstruct_groups(collected, t, prefix="share list ")


def lagrange_coefficients(indices: tuple[int, ...]) -> np.ndarray:
    """The Lagrange coefficients at x = 0 for the distinct ``indices``, in their order.

    ``secret = sum(c_i * y_i) mod PRIME`` for shares ``(indices[i], y_i)`` of a
    polynomial of degree < len(indices).  Computed once per sorted index set
    (a bounded LRU cache) and returned as a fresh uint64 array.
    """
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"indices must be a tuple of ints, not {type(indices).__name__}.")
    if not indices:
        raise ValueError("indices must not be empty.")
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"an index must be an int, not {type(index).__name__}.")
        if not 1 <= index <= MAX_SHARES:
            raise ValueError(f"an index must lie in 1..{MAX_SHARES}, got {index}.")
    ordered = tuple(sorted(indices))
    if len(set(ordered)) != len(ordered):
        raise ValueError("indices must be distinct.")
    return _lagrange_at_zero(ordered)[np.searchsorted(ordered, indices)]


# --- reconstruction -------------------------------------------------------


def _collect(shares: Sequence[Share], t: int) -> tuple[tuple[int, ...], int, np.ndarray]:
    """Validate one secret's shares: (sorted indices, secret length, limbs as an (s, m) uint64 array)."""
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"t must be an int, not {type(t).__name__}.")
    if not 1 <= t <= MAX_SHARES:
        raise ValueError(f"t must lie in 1..{MAX_SHARES}, got {t}.")
    if not isinstance(shares, Sequence):
        raise TypeError(f"shares must be a sequence of Share, not {type(shares).__name__}.")
    by_index: dict[int, bytes] = {}
    for share in shares:
        if not isinstance(share, Share):
            raise TypeError(f"expected a Share, got {type(share).__name__}.")
        if by_index.setdefault(share.index, share.value) != share.value:
            raise ReconstructionError(f"two shares have index {share.index} but different values.")
    if len(by_index) < t:
        raise ReconstructionError(f"reconstruction needs {t} distinct shares, got {len(by_index)}.")
    indices = tuple(sorted(by_index))
    values = [by_index[i] for i in indices]
    size = len(values[0])
    if any(len(v) != size for v in values):
        raise ReconstructionError("the shares have different lengths, so they cannot be shares of one secret.")
    if size < _HEADER:
        raise ReconstructionError(f"a share value is {size} bytes, too short to be a share.")
    rows = np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), size)
    if (rows[:, :_HEADER] != rows[0, :_HEADER]).any():
        raise ReconstructionError("the shares encode different secret lengths, so they cannot be shares of one secret.")
    length = int.from_bytes(values[0][:_HEADER], "little")
    if not 1 <= length <= MAX_SECRET_SIZE or size != share_size(length):
        raise ReconstructionError(f"a {size}-byte share value cannot encode a {length}-byte secret; it is malformed.")
    limbs = rows[:, _HEADER:].copy().view("<u4").astype(np.uint64)
    if (limbs >= _P).any():
        raise ReconstructionError(f"a share holds a number >= {PRIME}, outside the field; it is malformed.")
    return indices, length, limbs


def _reconstruct_groups(collected, t: int, prefix: str | None) -> list[bytes]:
    """Recover each collected secret, batching those with the same index set."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, (indices, _, _) in enumerate(collected):
        groups.setdefault(indices, []).append(position)

    secrets: list[bytes] = [b""] * len(collected)
    for indices, positions in groups.items():
        blocks = [collected[k][2] for k in positions]
        ys = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
        if len(indices) > t:
            weighted_inverses, scale = _extension(indices[:t], indices[t:])
            predicted = _mulmod(_matmul_mod(weighted_inverses, ys[:t]), scale)
            bad = (predicted != ys[t:]).any(axis=0)
            if bad.any():
                first = positions[_block_of(blocks, int(np.argmax(bad)))]
                where = "" if prefix is None else f"{prefix}{first}: "
                raise ReconstructionError(
                    f"{where}the {len(indices)} shares do not lie on one polynomial of degree < {t}; "
                    "at least one of them is forged or corrupted."
                )
        limbs = _matmul_mod(_halves(_lagrange_at_zero(indices[:t])[None, :]), ys[:t])[0]
        start = 0
        for k, block in zip(positions, blocks):
            width = block.shape[1]
            secret = _from_limbs(limbs[start : start + width], collected[k][1])
            if secret is None:
                where = "" if prefix is None else f"{prefix}{k}: "
                raise ReconstructionError(
                    f"{where}the shares interpolate to a value that no secret encodes; "
                    "at least one of them is forged or corrupted."
                )
            secrets[k] = secret
            start += width
    return secrets


def _block_of(blocks: list[np.ndarray], column: int) -> int:
    """The position in ``blocks`` of the block holding concatenated ``column``."""
    ends = np.cumsum([b.shape[1] for b in blocks])
    return int(np.searchsorted(ends, column, side="right"))


@functools.lru_cache(maxsize=64)
def _lagrange_at_zero(indices: tuple[int, ...]) -> np.ndarray:
    """L_i(0) = prod_{j != i} x_j / (x_j - x_i) for sorted distinct ``indices``; read-only."""
    x = np.array(indices, dtype=np.uint64)
    differences = _difference_matrix(x, x)  # [j, i] = x_j - x_i
    np.fill_diagonal(differences, 1)
    everything = functools.reduce(lambda acc, xj: acc * xj % PRIME, indices, 1)
    # prod_{j != i} x_j = everything / x_i: one table lookup each
    numerators = _mulmod(_small_inverses(_table_size(indices[-1]))[x], np.uint64(everything))
    coefficients = _mulmod(numerators, _powmod(_product_mod(differences), PRIME - 2))
    coefficients.flags.writeable = False
    return coefficients


@functools.lru_cache(maxsize=16)
def _extension(basis: tuple[int, ...], extras: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """What predicts the shares at ``extras`` from those at ``basis``: ``(halves(W), s)``.

    The prediction is f(x_e) = s_e * sum_i W[e, i] f(x_i) (barycentric form):
    L_i(x) = l(x) / l(0) * lambda_i * (-x_i) / (x - x_i) with l(x) = prod_j (x - x_j)
    and lambda_i = L_i(0), so W[e, i] = lambda_i (-x_i) / (x_e - x_i) and
    s_e = l(x_e) / l(0).  The O(t^2) part is the cached lambda; the rest costs
    O(len(extras) * t), and s is applied after the product, on fewer elements.
    """
    xb = np.array(basis, dtype=np.int64)
    xe = np.array(extras, dtype=np.int64)
    weights = _mulmod(_lagrange_at_zero(basis), (PRIME - xb).astype(np.uint64))  # lambda_i * (-x_i)
    matrix = _mulmod(weights[None, :], _inverse_of_differences(xe[:, None] - xb[None, :]))
    # l(x_e) / l(0) is unchanged by the sign (-1)^t, so take l(x) = prod_j (x_j - x)
    ell_at_extras = _product_mod(_difference_matrix(xb.astype(np.uint64), xe.astype(np.uint64)))
    ell_at_zero = functools.reduce(lambda acc, x: acc * x % PRIME, basis, 1)
    scale = _mulmod(ell_at_extras, np.uint64(pow(ell_at_zero, PRIME - 2, PRIME)))[:, None]
    scale.flags.writeable = False
    return _halves(matrix), scale


# --- field arithmetic on uint64 arrays of elements < PRIME ----------------


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


def _mulmod(a, b) -> np.ndarray:
    return _reduce(np.multiply(a, b, dtype=np.uint64))


def _product_mod(matrix: np.ndarray) -> np.ndarray:
    """The product mod PRIME of each column, by halving (log-depth; the halves are contiguous)."""
    while matrix.shape[0] > 1:
        half = matrix.shape[0] // 2
        folded = _mulmod(matrix[:half], matrix[half : 2 * half])
        if matrix.shape[0] % 2:
            folded[0] = _mulmod(folded[0], matrix[-1])
        matrix = folded
    return matrix[0].copy()


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
    inverses = _small_inverses(_table_size(int(magnitude.max())))[magnitude]
    negative = (differences < 0) & (inverses != 0)
    inverses[negative] = _P - inverses[negative]
    return inverses


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


def _evaluate(coefficients: np.ndarray, n: int) -> np.ndarray:
    """Row x - 1 holds every column's polynomial (coefficients by degree) evaluated at x = 1..n.

    Baby-step giant-step: f(x) = sum_a (x^b)^a Q_a(x) where Q_a holds
    coefficients a*b .. a*b + b - 1.  All Q_a at all x are one (n, b) x
    (b, g*width) product, g = ceil(t / b); Horner in x^b joins them.  The
    work is O(n b) powers plus O(n g width) reductions, least near
    b = sqrt(t * width), instead of the O(n t) of a full Vandermonde matrix.
    """
    t, width = coefficients.shape
    baby = min(t, math.isqrt(t * width) + 1)
    giant = -(-t // baby)
    padded = np.zeros((giant * baby, width), dtype=np.uint64)
    padded[:t] = coefficients
    # column block a of ``blocks`` holds the coefficients of Q_a
    blocks = padded.reshape(giant, baby, width).transpose(1, 0, 2).reshape(baby, giant * width)
    x = np.arange(1, n + 1, dtype=np.uint64)
    inner = _matmul_mod(_halves(_powers(x, baby)), blocks).reshape(n, giant, width)
    x_to_baby = _powmod(x, baby)[:, None]
    result = inner[:, -1].copy()
    for a in range(giant - 2, -1, -1):
        result = _mulmod(result, x_to_baby)
        result += inner[:, a]
        _reduce(result)
    return result


def _random_elements(rng: Rng, count: int) -> np.ndarray:
    """``count`` uniform elements of F_p from ``rng``, by rejection sampling."""
    # A 31-bit word is uniform on [0, 2^31); dropping the single value 2^31 - 1
    # leaves it uniform on [0, p).
    out = np.empty(0, dtype=np.uint64)
    while out.size < count:
        words = np.frombuffer(rng.bytes(4 * (count - out.size)), dtype="<u4") & np.uint32(PRIME)
        out = np.concatenate([out, words[words != PRIME].astype(np.uint64)])
    return out


# --- encoding -------------------------------------------------------------


def _num_limbs(secret_size: int) -> int:
    return -(-8 * secret_size // _LIMB_BITS)


def _to_limbs(secret: bytes) -> np.ndarray:
    """The 30-bit little-endian limbs of ``secret`` as uint64."""
    width = _num_limbs(len(secret))
    bits = np.zeros(width * _LIMB_BITS, dtype=np.uint8)
    bits[: 8 * len(secret)] = np.unpackbits(np.frombuffer(secret, dtype=np.uint8), bitorder="little")
    words = np.zeros((width, 32), dtype=np.uint8)
    words[:, :_LIMB_BITS] = bits.reshape(width, _LIMB_BITS)
    return np.packbits(words, axis=1, bitorder="little").view("<u4")[:, 0].astype(np.uint64)


def _from_limbs(limbs: np.ndarray, length: int) -> bytes | None:
    """The ``length``-byte secret with these limbs, or None if none has them."""
    if (limbs >> np.uint64(_LIMB_BITS)).any():
        return None
    bits = np.unpackbits(limbs.astype("<u4").view(np.uint8), bitorder="little").reshape(-1, 32)
    bits = bits[:, :_LIMB_BITS].ravel()
    if bits[8 * length :].any():
        return None
    return np.packbits(bits[: 8 * length], bitorder="little").tobytes()


def _check_secret_size(size: int) -> None:
    if not 1 <= size <= MAX_SECRET_SIZE:
        raise ValueError(f"a secret must be 1 to {MAX_SECRET_SIZE} bytes long, got {size}.")


def _check_n_t(n: int, t: int) -> None:
    for name, value in (("n", n), ("t", t)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}.")
    if not 1 <= n <= MAX_SHARES:
        raise ValueError(f"n must lie in 1..{MAX_SHARES}, got {n}.")
    if not 1 <= t <= n:
        raise ValueError(f"the threshold t must lie in 1..n = 1..{n}, got {t}.")
