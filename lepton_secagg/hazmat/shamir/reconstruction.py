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

``reconstruct_robust`` and ``reconstruct_many_robust`` correct instead of
refusing: s shares are a Reed-Solomon codeword, so up to (s - t) // 2 wrong
or malformed shares are located (syndromes and Berlekamp-Massey, limb
combinations c = 1, 2, ... so that no error pattern can hide; see the
"robust reconstruction" section below), excluded and reported.

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

from ...exceptions import ReconstructionError
from ..rng import Rng, resolve

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
    "reconstruct_robust",
    "reconstruct_many_robust",
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


def reconstruct_robust(shares: Sequence[Share | tuple[int, bytes]], t: int) -> tuple[bytes, tuple[int, ...]]:
    """The secret behind ``shares`` and the sorted indices of the shares that disagree with it.

    Shares are Reed-Solomon codewords: of s shares with distinct indices, up
    to e = (s - t) // 2 wrong ones are corrected.  The result is the unique
    polynomial of degree < t that agrees with at least s - e of them; the
    other indices are returned.  Wrong shares may be forged values, or
    malformed (a value of the wrong size or secret length for the majority,
    truncated, or holding a number >= ``PRIME``): malformed ones are
    excluded and reported too.  An index given twice with different values
    counts as one share, and a wrong one (neither value is used); repeated
    identical shares count once.  When every share agrees this costs what
    ``reconstruct`` does; otherwise the errors are located by syndrome
    decoding (Berlekamp-Massey), deterministically, for any pattern of at
    most e wrong shares.

    Raises:
        TypeError / ValueError: as ``reconstruct`` (not a share, bad index, bad t).
        ReconstructionError: fewer than t distinct indices; more than e
            shares disagree with every polynomial (too many to correct); or
            the polynomial found encodes no secret.
    """
    try:
        indices, length, ys = _collect(shares, t)
    except ReconstructionError:
        indices, ys, length, wrong = _collect_robust(shares, t)
    else:
        limbs, inconsistent = _interpolate_shared(indices, ys[None], t)
        if not inconsistent[0]:
            secret = _from_limbs(limbs[0], length)
            if secret is None:
                raise ReconstructionError(_failure(False, len(indices), t))
            return secret, ()
        wrong = np.zeros(len(indices), dtype=bool)
    limbs, wrong = _decode(indices, ys, wrong, t)
    secret = _from_limbs(limbs, length)
    if secret is None:
        raise ReconstructionError(_failure(False, len(indices), t))
    return secret, tuple(np.asarray(indices)[wrong].tolist())


def reconstruct_many_robust(
    share_lists: Sequence[Sequence[Share | tuple[int, bytes]]], t: int
) -> tuple[list[bytes], list[tuple[int, ...]]]:
    """``reconstruct_robust`` of every list: (secrets, wrong indices of each list).

    The batched ``reconstruct_many`` pass runs first and flags every list
    that fails it (malformed, or inconsistent); only those are decoded
    robustly, one by one.

    Raises:
        TypeError / ValueError: as ``reconstruct_many``.
        ReconstructionError: as ``reconstruct_robust``, for the first list
            that cannot be corrected; the message names its position.
    """
    if not isinstance(share_lists, Sequence):
        raise TypeError(f"share_lists must be a sequence, not {type(share_lists).__name__}.")
    if not share_lists:
        return [], []
    failing: set[int] = set()
    batches = _gather(share_lists, t)
    if batches is None:
        collected, where = [], []
        for position, shares in enumerate(share_lists):
            try:
                collected.append(_collect(shares, t))
                where.append(position)
            except ReconstructionError:
                failing.add(position)
        mapping = np.array(where, dtype=np.int64)
        batches = [(mapping[positions], *rest) for positions, *rest in _batches(collected)]
    secrets, failures = _recover_all(batches, len(share_lists), t, shared_min=_SHARED_SET_MIN)
    failing.update(failures)
    wrong: list[tuple[int, ...]] = [()] * len(share_lists)
    for position in sorted(failing):
        try:
            secrets[position], wrong[position] = reconstruct_robust(share_lists[position], t)
        except ReconstructionError as exc:
            raise ReconstructionError(f"share list {position}: {exc}") from None
    return secrets, wrong


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


def _by_index(shares) -> tuple[dict[int, bytes], set[int]]:
    """index -> value for ``Share``s or ``(index, value)`` tuples, and the indices given two different values."""
    if not isinstance(shares, Sequence):
        raise TypeError(f"shares must be a sequence of Share, not {type(shares).__name__}.")
    by_index: dict[int, bytes] = {}
    conflicting: set[int] = set()
    for share in shares:
        if isinstance(share, tuple):
            share = Share(*share)
        elif not isinstance(share, Share):
            raise TypeError(f"expected a Share, got {type(share).__name__}.")
        if by_index.setdefault(share.index, share.value) != share.value:
            conflicting.add(share.index)
    return by_index, conflicting


def _collect(shares: Sequence[Share], t: int) -> tuple[tuple[int, ...], int, np.ndarray]:
    """Validate one secret's shares: (sorted indices, secret length, limbs as an (s, m) uint64 array)."""
    _check_t(t)
    by_index, conflicting = _by_index(shares)
    if conflicting:
        raise ReconstructionError(f"two shares have index {min(conflicting)} but different values.")
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
    """The secrets of ``total`` lists given as ``batches``; raises for the first bad list."""
    secrets, failures = _recover_all(batches, total, t, shared_min)
    if failures:
        first = min(failures)
        where = "" if prefix is None else f"{prefix}{first}: "
        raise ReconstructionError(where + failures[first])
    return secrets


def _recover_all(batches: list[_Batch], total: int, t: int, shared_min: int) -> tuple[list, dict[int, str]]:
    """(secrets, {position: why}) of ``total`` lists given as ``batches``; None for failing and absent lists.

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
    return secrets, failures


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


# --- robust reconstruction (error correction) ------------------------------
#
# s shares of a polynomial f of degree < t form a codeword of a generalised
# Reed-Solomon code.  With w_i = prod_{j != i} 1 / (x_i - x_j),
# sum_i w_i g(x_i) is the coefficient of x^(s-1) of any g of degree < s, so the
# r = s - t syndromes S_k = sum_i w_i y_i x_i^k (k < r) vanish on codewords and,
# for shares y = f(x) + error, equal sum_{i in E} w_i e_i x_i^k: a sum of |E|
# geometric sequences, whose shortest linear recurrence is the error locator
# prod_{i in E} (1 - x_i z).  Berlekamp-Massey finds it whenever 2 |E| <= r.
# Known-bad (malformed) shares are erasures: multiplying S(z) by their locator
# Gamma(z) and dropping the first deg Gamma terms leaves r - deg Gamma syndromes
# of the other errors alone ("modified syndromes").
#
# All m limbs share the error positions but not the error values (a forged
# share may be wrong in one limb only), so each round decodes the combination
# sum_k c^k T_k of the limbs' modified syndromes, c = 1, 2, 3, ...: it locates
# exactly the errors whose combined value is nonzero, which become erasures of
# the next round.  An error is missed by at most m - 1 values of c (a nonzero
# polynomial of degree < m in c), so every pattern within the radius is found,
# deterministically, in at most m rounds (one, unless the errors are crafted
# to cancel).  The answer is finally checked by interpolating the shares left,
# all limbs, so a decoding beyond the radius can only end in an error.


def _too_many(s: int, t: int) -> str:
    return (
        f"too many inconsistent shares to correct: no polynomial of degree < {t} agrees with "
        f"all but at most {(s - t) // 2} of the {s} shares."
    )


def _collect_robust(shares, t: int) -> tuple[tuple[int, ...], np.ndarray, int, np.ndarray]:
    """(sorted indices, limbs (s, m) with zero rows for wrong shares, secret length, wrong (s,)).

    Like ``_collect``, but a malformed share is marked wrong instead of
    refused: an index given with two different values, a value that is not
    a well-formed share of the secret length most shares encode, or that
    holds a number >= ``PRIME``.  Raises only for misuse (types, t), fewer
    than t distinct indices, or more wrong shares than can be corrected.
    """
    _check_t(t)
    by_index, conflicting = _by_index(shares)
    s = len(by_index)
    if s < t:
        raise ReconstructionError(f"reconstruction needs {t} distinct shares, got {s}.")
    indices = tuple(sorted(by_index))
    values = [by_index[i] for i in indices]
    lengths = []  # the secret length each share encodes, 0 if malformed
    for index, value in zip(indices, values):
        length = int.from_bytes(value[:_HEADER], "little") if len(value) >= _HEADER else 0
        if index in conflicting or not 1 <= length <= MAX_SECRET_SIZE or len(value) != share_size(length):
            length = 0
        lengths.append(length)
    votes: dict[int, int] = {}
    for length in lengths:
        if length:
            votes[length] = votes.get(length, 0) + 1
    if not votes:
        raise ReconstructionError(_too_many(s, t))
    length = max(votes, key=votes.__getitem__)  # two candidates with a tie are both too few
    wrong = np.array([other != length for other in lengths], dtype=bool)
    good = np.flatnonzero(~wrong)
    ys = np.zeros((s, _num_limbs(length)), dtype=np.uint64)
    blob = b"".join(values[k][_HEADER:] for k in good.tolist())
    ys[good] = np.frombuffer(blob, dtype="<u4").reshape(len(good), -1)
    outside = (ys >= _P).any(axis=1)
    wrong |= outside
    ys[outside] = 0
    usable = s - int(wrong.sum())
    if usable < t:
        raise ReconstructionError(f"reconstruction needs {t} well-formed shares, got {usable}.")
    if s - usable > (s - t) // 2:
        raise ReconstructionError(_too_many(s, t))
    return indices, ys, length, wrong


@functools.lru_cache(maxsize=8)
def _syndrome_basis(indices: tuple[int, ...], t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w (s,), baby (s, b), halves(baby), giant (s, g)) for sorted ``indices``; read-only.

    w_i = prod_{j != i} 1 / (x_i - x_j) (``_grs_weights``); baby[i, c] = x_i^c
    and giant[i, a] = x_i^(a b), with b = ceil(sqrt(r)), r = s - t and
    b g >= r: enough to form the r syndromes and to evaluate polynomials of
    degree < r at every index, baby-step giant-step, in O(s sqrt(r)) space.
    """
    x = np.array(indices, dtype=np.uint64)
    r = max(1, len(indices) - t)
    baby_size = math.isqrt(r - 1) + 1
    giant_size = -(-r // baby_size)
    baby = _powers(x, baby_size)
    giant = _powers(_powmod(x, baby_size), giant_size)
    w = _grs_weights(indices)
    halves = _halves(baby)
    for array in (w, baby, giant):
        array.flags.writeable = False
    return w, baby, halves, giant


def _grs_weights(indices: tuple[int, ...]) -> np.ndarray:
    """w_i = prod_{j != i} 1 / (x_i - x_j) for sorted distinct ``indices``.

    When the indices are most of 1..N (a full graph with a few dropouts) the
    product over all of 1..N is (x_i - 1)! (N - x_i)! (-1)^(N - x_i), so only
    the M missing indices are multiplied in: O(s M).  Otherwise the O(s^2)
    product of the inverses of all differences (a table lookup).
    """
    x = np.array(indices, dtype=np.int64)
    top, s = int(x[-1]), len(indices)
    missing = top - s
    if top < 1 << 16 and missing <= s // 2:
        factorials, inverse_factorials = _factorials(_table_size(top))
        weights = _mulmod(inverse_factorials[x - 1], inverse_factorials[top - x])
        odd = ((top - x) & 1).astype(bool)
        weights[odd] = (_P - weights[odd]) % _P
        if missing:
            present = np.zeros(top + 1, dtype=bool)
            present[x] = True
            absent = np.flatnonzero(~present[1:]) + 1
            differences = x[None, :] - absent[:, None]  # in (-N, N), never 0
            differences += PRIME * (differences < 0)
            weights = _mulmod(weights, _product_mod(differences.astype(np.uint64)))
        return weights
    size = _table_size(top)
    inverse = _signed_inverses(size)  # [size + d] = 1 / d, [size] = 1
    return _product_mod(inverse[(size + x)[None, :] - x[:, None]])  # [j, i] = 1 / (x_i - x_j)


@functools.lru_cache(maxsize=2)
def _factorials(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(k!, 1 / k!) mod PRIME for 0 <= k < size, as uint64 arrays; read-only."""
    p = PRIME
    forward = [1] * size
    for k in range(1, size):
        forward[k] = forward[k - 1] * k % p
    backward = [1] * size
    backward[-1] = pow(forward[-1], p - 2, p)
    for k in range(size - 1, 0, -1):
        backward[k - 1] = backward[k] * k % p
    tables = np.array(forward, dtype=np.uint64), np.array(backward, dtype=np.uint64)
    for table in tables:
        table.flags.writeable = False
    return tables


def _evaluate_at_indices(coefficients: np.ndarray, basis) -> np.ndarray:
    """The polynomial with ``coefficients`` (by degree, fewer than b g) at every index of ``_syndrome_basis``."""
    _, _, baby_halves, giant = basis
    baby_size = baby_halves.shape[1]
    used = -(-coefficients.size // baby_size)
    blocks = np.zeros(used * baby_size, dtype=np.uint64)
    blocks[: coefficients.size] = coefficients
    inner = _matmul_mod(baby_halves, blocks.reshape(used, baby_size).T)  # (s, used): [c, a] = coefficient of x^(a b + c)
    return _reduce(_mulmod(inner, giant[:, :used]).sum(axis=1))


def _decode(indices: tuple[int, ...], ys: np.ndarray, known: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(limbs (m,) of f(0), wrong (s,)) of the polynomial within the decoding radius of the shares.

    ``ys`` (s, m) are the limbs at the sorted ``indices``, ``known`` marks
    shares already known to be wrong (their rows are ignored).  Raises
    ``ReconstructionError`` if no polynomial of degree < t agrees with all
    but (s - t) // 2 of the shares.

    The loop ends when the modified syndromes of every limb vanish, which
    happens exactly when the shares left lie on polynomials of degree < t
    (they are r - |E| independent checks on the s - |E| shares left: a
    Vandermonde matrix with nonzero column factors).  f(0) then follows from
    the barycentric form over those shares, with weights w_i prod_{j in E}
    (x_i - x_j) = w_i x_i^|E| Gamma(1 / x_i): O(s sqrt(r)), no new O(t^2) set-up.
    """
    s, m = ys.shape
    r = s - t
    radius = r // 2
    wrong = known.copy()
    if int(wrong.sum()) > radius:
        raise ReconstructionError(_too_many(s, t))
    basis = _syndrome_basis(indices, t)
    w, baby, _, giant = basis
    x = np.array(indices, dtype=np.uint64)
    weighted = _mulmod(ys, w[:, None])  # w_i y_i, (s, m)
    gamma = np.ones(1, dtype=np.uint64)  # the locator of the errors found so far
    for position in np.flatnonzero(wrong).tolist():
        gamma = _poly_mul(gamma, np.array([1, PRIME - int(x[position])], dtype=np.uint64))
    if r:
        # S[a b + c] = sum_i (x_i^(a b) w_i y_i) x_i^c: one (m g, s) by (s, b) product
        giant_size = giant.shape[1]
        spread = _mulmod(weighted.T[:, None, :], giant.T[None, :, :]).reshape(m * giant_size, s)
        syndromes = _matmul_mod(_halves(spread), baby).reshape(m, -1)[:, :r].T.copy()  # (r, m)
        c = 0
        while True:
            found = gamma.size - 1
            modified = _modified_syndromes(gamma, syndromes)  # (r - found, m)
            if not modified.any():
                break
            while True:  # a combination of the limbs in which some remaining error survives
                c += 1
                weights = _powers(np.array([c], dtype=np.uint64), m)  # (1, m): c^k
                combined = _reduce(_mulmod(modified, weights).sum(axis=1))
                if combined.any():
                    break
            locator, count = _berlekamp_massey(combined)
            if found + count > radius:
                raise ReconstructionError(_too_many(s, t))
            # the roots z = 1 / x_i of the locator: x^count locator(1 / x) = 0
            roots = (_evaluate_at_indices(locator[::-1].copy(), basis) == 0) & ~wrong
            if int(roots.sum()) != count:
                raise ReconstructionError(_too_many(s, t))
            wrong |= roots
            gamma = _poly_mul(gamma, locator)
    keep = np.flatnonzero(~wrong)
    # f(0) = -l(0) sum_i w'_i y_i / x_i over the shares kept, l(x) = prod (x - x_j), w' as above
    factors = _evaluate_at_indices(gamma[::-1].copy(), basis)[keep]
    factors = _mulmod(factors, _small_inverses(_table_size(indices[-1]))[x[keep]])
    total = _reduce(_mulmod(weighted[keep], factors[:, None]).sum(axis=0))
    ell_at_zero = int(_product_mod(x[keep][:, None])[0])  # l(0) = (-1)^k prod x_j
    if len(keep) % 2 == 0:
        ell_at_zero = PRIME - ell_at_zero
    return _mulmod(total, np.uint64(ell_at_zero)), wrong


def _modified_syndromes(gamma: np.ndarray, syndromes: np.ndarray) -> np.ndarray:
    """Rows deg(gamma) .. r - 1 of gamma(z) * S(z): the syndromes with gamma's roots erased."""
    r = syndromes.shape[0]
    found = gamma.size - 1
    rows = r - found
    if found <= 16:
        total = np.zeros((rows, syndromes.shape[1]), dtype=np.uint64)
        for j, coefficient in enumerate(gamma.tolist()):
            total += _mulmod(syndromes[found - j : found - j + rows], np.uint64(coefficient))
        return _reduce(total)
    # a Toeplitz matrix product: [k, found + k - j] = gamma_j
    toeplitz = np.zeros((rows, r), dtype=np.uint64)
    k = np.arange(rows)[:, None]
    toeplitz[k, found + k - np.arange(found + 1)[None, :]] = gamma[None, :]
    return _matmul_mod(_halves(toeplitz), syndromes)


def _poly_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The product mod PRIME of two polynomials given as uint64 coefficient vectors."""
    if a.size < b.size:
        a, b = b, a
    product = np.zeros(a.size + b.size - 1, dtype=np.uint64)
    for j, coefficient in enumerate(b.tolist()):
        product[j : j + a.size] += _mulmod(a, np.uint64(coefficient))
        _reduce(product[j : j + a.size])
    return product


def _berlekamp_massey(sequence: np.ndarray) -> tuple[np.ndarray, int]:
    """(C, L): the shortest linear recurrence sum_{i <= L} C_i a_{n-i} = 0 (n >= L, C_0 = 1) of ``sequence``.

    C is returned with L + 1 coefficients.  Few errors are the usual case: a
    pure-Python pass over the first terms usually finds the recurrence,
    which is then checked on all later terms at once (if it holds, the full
    algorithm would not change it); otherwise the full sequence is processed,
    with numpy vectors when it is long.
    """
    n = sequence.size
    head = min(n, 48)
    locator, length = _bm_python(sequence[:head].tolist())
    if head == n:
        return locator, length
    if 2 * length < head:
        residual = np.zeros(n - head, dtype=np.uint64)
        for i, coefficient in enumerate(locator.tolist()):
            residual += _mulmod(sequence[head - i : n - i], np.uint64(coefficient))
        if not _reduce(residual).any():
            return locator, length
    return _bm_python(sequence.tolist()) if n <= 96 else _bm_numpy(sequence)


def _bm_python(sequence: list[int]) -> tuple[np.ndarray, int]:
    p = PRIME
    current, previous = [1], [1]
    length, shift, last = 0, 1, 1
    for n, term in enumerate(sequence):
        discrepancy = term
        for i in range(1, length + 1):
            discrepancy += current[i] * sequence[n - i]
        discrepancy %= p
        if not discrepancy:
            shift += 1
            continue
        factor = discrepancy * pow(last, p - 2, p) % p
        saved = current[:]
        if len(current) < len(previous) + shift:
            current += [0] * (len(previous) + shift - len(current))
        for i, coefficient in enumerate(previous):
            current[i + shift] = (current[i + shift] - factor * coefficient) % p
        if 2 * length <= n:
            length, previous, last, shift = n + 1 - length, saved, discrepancy, 1
        else:
            shift += 1
    current = (current + [0] * (length + 1))[: length + 1]
    return np.array(current, dtype=np.uint64), length


def _bm_numpy(sequence: np.ndarray) -> tuple[np.ndarray, int]:
    """``_bm_python`` with the polynomial updates and discrepancies as numpy vector operations.

    A discrepancy is two integer dot products, of the recurrence with the
    16-bit and 15-bit halves of the terms: exact in uint64 (each product is
    below 2^47) for recurrences shorter than 2^16.
    """
    p = PRIME
    n_terms = sequence.size
    if n_terms >= 1 << 16:
        return _bm_python(sequence.tolist())
    reverse = sequence[::-1]  # reverse[n_terms - n : n_terms - n + L] = a_{n-1} .. a_{n-L}
    low = np.ascontiguousarray(reverse & _LOW16)
    high = np.ascontiguousarray(reverse >> _SHIFT16)
    terms = sequence.tolist()
    current = np.zeros(2 * n_terms + 2, dtype=np.uint64)
    current[0] = 1
    previous = current.copy()
    previous_size = 1
    length, shift, inverse_last = 0, 1, 1
    for n in range(n_terms):
        discrepancy = terms[n]
        if length:
            window = slice(n_terms - n, n_terms - n + length)
            coefficients = current[1 : length + 1]
            discrepancy += int(np.dot(coefficients, low[window])) + (int(np.dot(coefficients, high[window])) % p << 16)
            discrepancy %= p
        if not discrepancy:
            shift += 1
            continue
        factor = p - discrepancy * inverse_last % p  # subtract: add p - factor
        grows = 2 * length <= n
        if grows:
            saved = current[: length + 1].copy()
        segment = current[shift : shift + previous_size]
        segment += _reduce(previous[:previous_size] * np.uint64(factor))
        np.minimum(segment, segment - _P, out=segment)
        if grows:
            previous[:previous_size] = 0
            previous[: length + 1] = saved
            previous_size = length + 1
            length, inverse_last, shift = n + 1 - length, pow(discrepancy, p - 2, p), 1
        else:
            shift += 1
    return current[: length + 1].copy(), length


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
