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

``reconstruct_many`` serves a SecAgg+ server, whose share lists mostly have
different index sets: lists with the same share count are interpolated
together (``_interpolate_rows``: a table lookup of inverses of index
differences, a log-depth product and one batched matrix product for all of
them), and only lists sharing a set with many others use the cached path.
Shares may be ``(index, value)`` tuples instead of ``Share`` objects.

Inverses of differences of indices come from a cached table of inverses of
1..N, which is why indices are limited to ``MAX_SHARES`` = 2^20 (far beyond
any n for which O(n t) sharing is affordable).
"""
from __future__ import annotations

import functools
import math
import operator
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


@dataclass(frozen=True, init=False)
class Share:
    """One party's share: its x-coordinate ``index`` and the encoded evaluations ``value``.

    The value is secret, so it is left out of ``repr``.  ``index`` must be an
    int in 1..``MAX_SHARES`` (not a bool) and ``value`` bytes.
    """

    index: int
    value: bytes = field(repr=False)

    def __init__(self, index: int, value: bytes):
        # A server builds tens of thousands of these per round: one combined
        # test for the usual case, the detailed ones only when it fails.
        if index.__class__ is not int or not 0 < index <= MAX_SHARES or value.__class__ is not bytes:
            _check_share(index, value)
        # frozen: write the fields past the refusing __setattr__
        fields = self.__dict__
        fields["index"] = index
        fields["value"] = value


def _check_share(index, value) -> None:
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"a share index must be an int, not {type(index).__name__}.")
    if not 1 <= index <= MAX_SHARES:
        raise ValueError(f"a share index must lie in 1..{MAX_SHARES}, got {index}.")
    if not isinstance(value, bytes):
        raise TypeError(f"a share value must be bytes, not {type(value).__name__}.")


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


def reconstruct(shares: Sequence[Share | tuple[int, bytes]], t: int) -> bytes:
    """The secret behind ``shares``, produced by ``split`` with threshold ``t``.

    Each share is a ``Share`` or an ``(index, value)`` tuple, validated as
    ``Share`` would.  Repeated identical shares count once.  Every share
    beyond the first t (by index) must agree with the polynomial the first t
    define.

    Raises:
        TypeError / ValueError: ``shares`` is not a sequence of shares or t is bad.
        ReconstructionError: fewer than t distinct indices; two different
            values for one index; shares of different lengths or malformed;
            shares that do not lie on one polynomial of degree < t.
    """
    indices, length, ys = _collect(shares, t)
    limbs, inconsistent = _interpolate_shared(indices, ys[None], t)
    secret = None if inconsistent[0] else _from_limbs(limbs[0], length)
    if secret is None:
        raise ReconstructionError(_failure(bool(inconsistent[0]), len(indices), t))
    return secret


def reconstruct_many(share_lists: Sequence[Sequence[Share | tuple[int, bytes]]], t: int) -> list[bytes]:
    """``[reconstruct(shares, t) for shares in share_lists]``, batched.

    Lists whose index sets differ (a SecAgg+ server's usual case) are
    interpolated together, all lists with the same number of shares in a few
    array operations; lists that share one index set with many others
    (``_SHARED_SET_MIN`` or more) use that set's cached coefficients and one
    matrix product instead.  Shares may be ``Share`` objects or
    ``(index, value)`` tuples (validated the same way), which saves building
    a ``Share`` per share.

    Raises:
        TypeError / ValueError: as ``reconstruct``.
        ReconstructionError: as ``reconstruct``, for the first failing list
            (malformed lists are reported before inconsistent ones); the
            message names its position.
    """
    if not isinstance(share_lists, Sequence):
        raise TypeError(f"share_lists must be a sequence, not {type(share_lists).__name__}.")
    if not share_lists:
        return []
    batches = _gather(share_lists, t)
    if batches is None:
        # something unusual (duplicates, mixed sizes, ..., or an error): the
        # list-by-list validation, which also names the first bad list
        collected = []
        for position, shares in enumerate(share_lists):
            try:
                collected.append(_collect(shares, t))
            except ReconstructionError as exc:
                raise ReconstructionError(f"share list {position}: {exc}") from None
        batches = _batches(collected)
    return _recover(batches, len(share_lists), t, prefix="share list ", shared_min=_SHARED_SET_MIN)


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


def _check_t(t) -> None:
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"t must be an int, not {type(t).__name__}.")
    if not 1 <= t <= MAX_SHARES:
        raise ValueError(f"t must lie in 1..{MAX_SHARES}, got {t}.")


def _collect(shares: Sequence[Share], t: int) -> tuple[tuple[int, ...], int, np.ndarray]:
    """Validate one secret's shares: (sorted indices, secret length, limbs as an (s, m) uint64 array)."""
    _check_t(t)
    if not isinstance(shares, Sequence):
        raise TypeError(f"shares must be a sequence of Share, not {type(shares).__name__}.")
    by_index: dict[int, bytes] = {}
    for share in shares:
        if isinstance(share, tuple):
            share = Share(*share)
        elif not isinstance(share, Share):
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


# A batch: (positions (L,), sorted indices X (L, s) int64, limbs Y (L, s, m)
# uint64, secret lengths (L,) int64) of L lists with s distinct shares each.
_Batch = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

#: lists sharing one index set with at least this many others of a
#: ``reconstruct_many`` call use that set's cached coefficients
_SHARED_SET_MIN = 16
#: elements of the (t, L, s) difference array of one batched pass
_CHUNK_ELEMENTS = 1 << 17

_ONLY_SHARES, _ONLY_TUPLES, _ONLY_INTS, _ONLY_BYTES, _ONLY_PAIRS = {Share}, {tuple}, {int}, {bytes}, {2}
_get_index = operator.attrgetter("index")
_get_value = operator.attrgetter("value")


def _batches(collected) -> list[_Batch]:
    """``_collect`` results grouped into batches by share count and limb count."""
    groups: dict[tuple[int, int], list[int]] = {}
    for position, (indices, _, limbs) in enumerate(collected):
        groups.setdefault(limbs.shape, []).append(position)
    return [
        (
            np.array(positions, dtype=np.int64),
            np.array([collected[k][0] for k in positions], dtype=np.int64),
            np.stack([collected[k][2] for k in positions]),
            np.array([collected[k][1] for k in positions], dtype=np.int64),
        )
        for positions in groups.values()
    ]


def _gather(share_lists, t: int) -> list[_Batch] | None:
    """``_batches`` of ``share_lists`` with a few passes over all shares at once.

    Handles the usual case only: every list a sequence of at least t shares,
    each all ``Share`` or all ``(int, bytes)`` tuples, all of one value size, without
    repeated indices, well formed.  Returns None otherwise, leaving the
    list-by-list ``_collect`` to sort it out (and to name the bad list).
    """
    _check_t(t)
    indices: list = []
    blobs = []
    counts = []
    sizes: set = set()
    tuples = False
    # list by list, so each list's objects are still in cache for the next pass
    for shares in share_lists:
        if shares.__class__ is not list and not isinstance(shares, Sequence):
            return None
        kinds = set(map(type, shares))
        if kinds == _ONLY_SHARES:
            indices += map(_get_index, shares)
            values = list(map(_get_value, shares))
        elif kinds == _ONLY_TUPLES and set(map(len, shares)) == _ONLY_PAIRS:
            tuples = True
            listed, values = zip(*shares)
            indices += listed
            if set(map(type, values)) != _ONLY_BYTES:
                return None
        else:
            return None  # (also an empty list)
        sizes.update(map(len, values))
        blobs.append(b"".join(values))
        counts.append(len(values))
    counts = np.array(counts, dtype=np.int64)
    if int(counts.min()) < t or len(sizes) != 1 or (tuples and set(map(type, indices)) != _ONLY_INTS):
        return None
    size = sizes.pop()
    width, ragged = divmod(size - _HEADER, 4)
    if size <= _HEADER or ragged:
        return None
    index = np.array(indices, dtype=np.int64)
    if int(index.min()) < 1 or int(index.max()) > MAX_SHARES:
        return None
    rows = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(indices), size)
    starts = np.cumsum(counts) - counts

    batches = []
    for count in np.unique(counts).tolist():
        positions = np.flatnonzero(counts == count)
        where = starts[positions][:, None] + np.arange(count)  # (L, s) rows of ``rows``
        order = np.argsort(index[where], axis=1)
        where = np.take_along_axis(where, order, axis=1)
        xs = index[where]
        if (xs[:, 1:] == xs[:, :-1]).any():
            return None  # repeated indices: identical (allowed) or conflicting
        block = rows[where]  # (L, s, size)
        header = block[:, :, 0].astype(np.int64) | (block[:, :, 1].astype(np.int64) << 8)
        if (header != header[:, :1]).any():
            return None
        lengths = header[:, 0]
        if (lengths < 1).any() or (lengths > MAX_SECRET_SIZE).any() or ((8 * lengths + _LIMB_BITS - 1) // _LIMB_BITS != width).any():
            return None
        limbs = np.ascontiguousarray(block[:, :, _HEADER:]).view("<u4")
        if int(limbs.max()) >= PRIME:
            return None
        batches.append((positions, xs, limbs.astype(np.uint64), lengths))
    return batches


def _recover(batches: list[_Batch], total: int, t: int, prefix: str | None, shared_min: int) -> list[bytes]:
    """The secrets of ``total`` lists given as ``batches``; raises for the first bad list.

    Rows whose index set occurs ``shared_min`` times or more in a batch go
    through the cached per-set path, the others through ``_interpolate_rows``.
    """
    secrets: list = [None] * total
    failures: dict[int, str] = {}
    for positions, xs, ys, lengths in batches:
        s = xs.shape[1]
        parts = []  # (rows of the batch, limbs of the secrets, inconsistent)
        rest = np.arange(len(positions))
        if len(positions) >= shared_min:
            # rows with equal index sets have equal hashes (and other rows almost never)
            hashes = (xs.astype(np.uint64) * _row_hash_weights(s)).sum(axis=1)
            _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
            shared = counts[inverse] >= shared_min
            for k in np.flatnonzero(counts >= shared_min).tolist():
                rows = np.flatnonzero(inverse == k)
                if (xs[rows] != xs[rows[0]]).any():  # a collision: leave those rows to the general path
                    shared[rows] = False
                    continue
                block = ys if len(rows) == len(ys) else ys[rows]
                parts.append((rows, *_interpolate_shared(tuple(xs[rows[0]].tolist()), block, t)))
            rest = np.flatnonzero(~shared)
        step = max(1, _CHUNK_ELEMENTS // (t * s))
        for start in range(0, len(rest), step):
            rows = rest[start : start + step]
            parts.append((rows, *_interpolate_rows(xs[rows], ys[rows], t)))
        for rows, limbs, inconsistent in parts:
            decoded = _from_limbs_many(limbs, lengths[rows])
            for position, secret, bad in zip(positions[rows].tolist(), decoded, inconsistent.tolist()):
                if bad or secret is None:
                    failures[position] = _failure(bad, s, t)
                else:
                    secrets[position] = secret
    if failures:
        first = min(failures)
        where = "" if prefix is None else f"{prefix}{first}: "
        raise ReconstructionError(where + failures[first])
    return secrets


def _row_hash_weights(count: int) -> np.ndarray:
    """``count`` pseudo-random odd uint64 multipliers (splitmix64 of 1..count) for hashing index rows."""
    z = np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z | np.uint64(1)


def _failure(inconsistent: bool, count: int, t: int) -> str:
    """Why ``count`` distinct, well-formed shares did not give a secret."""
    if inconsistent:
        return (
            f"the {count} shares do not lie on one polynomial of degree < {t}; "
            "at least one of them is forged or corrupted."
        )
    return "the shares interpolate to a value that no secret encodes; at least one of them is forged or corrupted."


def _interpolate_shared(indices: tuple[int, ...], ys: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(limbs (L, m) of f(0), inconsistent (L,)) for L lists all with share indices ``indices``.

    Uses the cached Lagrange coefficients of ``indices[:t]`` and extension of
    ``indices[t:]``, and one matrix product over all L lists' limbs.
    """
    count, s, m = ys.shape
    columns = ys[0] if count == 1 else ys.transpose(1, 0, 2).reshape(s, count * m)
    if s > t:
        weighted_inverses, scale = _extension(indices[:t], indices[t:])
        predicted = _mulmod(_matmul_mod(weighted_inverses, columns[:t]), scale)
        inconsistent = (predicted != columns[t:]).reshape(s - t, count, m).any(axis=(0, 2))
    else:
        inconsistent = np.zeros(count, dtype=bool)
    limbs = _matmul_mod(_halves(_lagrange_at_zero(indices[:t])[None, :]), columns[:t])[0]
    return limbs.reshape(count, m), inconsistent


def _interpolate_rows(xs: np.ndarray, ys: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(limbs (L, m) of f(0), inconsistent (L,)) for L lists, each with its own indices.

    ``xs`` (L, s) holds each list's sorted indices, ``ys`` (L, s, m) its limbs;
    row l's polynomial is the one through its first t points.  With
    l(x) = prod_j (x_j - x) and w_i = prod_{j != i} 1 / (x_j - x_i) over those
    points, f(x) = -l(x) S(x), S(x) = sum_i w_i y_i / (x - x_i) (barycentric
    form), for x = 0 and every further index x_e.  Share e is consistent iff
    y_e / l(x_e) = -S(x_e).  Everything is a table lookup of an inverse of an
    index difference, a log-depth product or one batched matrix product.
    """
    count, s, m = ys.shape
    size = _table_size(int(xs[:, -1].max()))
    inverse = _signed_inverses(size)  # [size + d] = 1 / d, [size] = 1
    xs = xs.astype(np.int32)  # indices and table positions are below 2^22
    basis = xs[:, :t]
    # [j, l, c] = 1 / (x_j - x_c), j < t: the products over j are w (c < t; the
    # diagonal is 1) and 1 / l(x_c) (c >= t)
    products = _product_mod(inverse[(basis.T + size)[:, :, None] - xs[None, :, :]])
    ell_at_zero = _product_mod(basis.T.astype(np.uint64))
    weighted = _mulmod(ys[:, :t], products[:, :t, None])  # w_i y_i
    points = xs[:, t:].copy()
    # [l, e, i] = 1 / (x_e - x_i) for x_e = 0 and each extra index
    differences = np.empty((count, s - t + 1, t), dtype=np.int32)
    differences[:, 0] = size - basis
    np.subtract((points + size)[:, :, None], basis[:, None, :], out=differences[:, 1:])
    sums = _matmul_mod_batched(inverse[differences], weighted)  # S, (L, s - t + 1, m)
    limbs = _mulmod(sums[:, 0], (_P - ell_at_zero)[:, None])
    check = _mulmod(ys[:, t:], products[:, t:, None])
    check += sums[:, 1:]
    inconsistent = _reduce(check).any(axis=(1, 2))
    return limbs, inconsistent


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
    z = np.multiply(a, b, dtype=np.uint64)
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
    inverses = _small_inverses(_table_size(int(magnitude.max())))[magnitude]
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
    rows = a.shape[1]
    total = None
    for start in range(0, a.shape[2], 64):
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
        step = _reduce(step)
        if total is None:
            total = step
        else:
            total += step
    return _reduce(total) if a.shape[2] > 64 else total


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


def _from_limbs_many(limbs: np.ndarray, lengths: np.ndarray) -> list[bytes | None]:
    """``[_from_limbs(row, length) ...]`` for an (L, m) array of limbs, in a few passes."""
    count, width = limbs.shape
    if count == 0:
        return []
    bits = np.unpackbits(limbs.astype("<u4").view(np.uint8).reshape(count, width, 4), axis=2, bitorder="little")
    bits = bits[:, :, :_LIMB_BITS].reshape(count, width * _LIMB_BITS)
    beyond = np.arange(width * _LIMB_BITS)[None, :] >= 8 * lengths[:, None]
    invalid = (limbs >> np.uint64(_LIMB_BITS)).any(axis=1) | (bits.astype(bool) & beyond).any(axis=1)
    packed = np.packbits(bits, axis=1, bitorder="little")
    blob, stride = packed.tobytes(), packed.shape[1]
    return [
        None if bad else blob[row * stride : row * stride + length]
        for row, (bad, length) in enumerate(zip(invalid.tolist(), lengths.tolist()))
    ]


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
