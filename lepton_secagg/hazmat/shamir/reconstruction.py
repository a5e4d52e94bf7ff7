"""Reconstruction: ``reconstruct`` and the batched ``reconstruct_many``.

``reconstruct`` interpolates at 0 from the t lowest indices with Lagrange
coefficients cached per index set, so a server recovering many secrets from
the same survivors pays the O(t^2) set-up once.  Shares beyond t are not
ignored: each is checked against the polynomial the first t define
(barycentric form, O((s - t) t)), and any disagreement raises
``ReconstructionError``, so a forged share is detected rather than used.
With exactly t shares a forgery cannot be detected, except when it makes a
limb exceed 30 bits, which is also refused.

``reconstruct_many`` serves a SecAgg+ server, whose share lists mostly have
different index sets: lists with the same share count are interpolated
together (``interpolation._interpolate_rows``), and only lists sharing a set
with many others use the cached path.  ``_gather`` validates all lists in a
few passes over all shares at once; ``_recover_all`` runs the batches.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import cast

import numpy as np

from ...exceptions import ReconstructionError
from .field import MAX_SHARES, PRIME
from .interpolation import _interpolate_rows, _interpolate_shared
from .shares import (
    _HEADER,
    _LIMB_BITS,
    MAX_SECRET_SIZE,
    Share,
    ShareLike,
    _check_t,
    _collect,
    _Collected,
    _from_limbs,
    _from_limbs_many,
)


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
        collected: list[_Collected] = []
        for position, shares in enumerate(share_lists):
            try:
                collected.append(_collect(shares, t))
            except ReconstructionError as exc:
                raise ReconstructionError(f"share list {position}: {exc}") from None
        batches = _batches(collected)
    return _recover(batches, len(share_lists), t, prefix="share list ", shared_min=_SHARED_SET_MIN)


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


def _batches(collected: Sequence[_Collected]) -> list[_Batch]:
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


def _gather(share_lists: Sequence[Sequence[ShareLike]], t: int) -> list[_Batch] | None:
    """``_batches`` of ``share_lists`` with a few passes over all shares at once.

    Handles the usual case only: every list a sequence of at least t shares,
    each all ``Share`` or all ``(int, bytes)`` tuples, all of one value size, without
    repeated indices, well formed.  Returns None otherwise, leaving the
    list-by-list ``_collect`` to sort it out (and to name the bad list).
    """
    _check_t(t)
    indices: list[int] = []
    blobs: list[bytes] = []
    counted: list[int] = []
    sizes: set[int] = set()
    tuples = False
    # list by list, so each list's objects are still in cache for the next pass
    for shares in share_lists:
        if shares.__class__ is not list and not isinstance(shares, Sequence):
            return None
        kinds = set(map(type, shares))
        if kinds == _ONLY_SHARES:
            indices += map(_get_index, shares)
            values: Sequence[bytes] = list(map(_get_value, shares))
        # every element is a tuple (``kinds``), which mypy cannot follow
        elif kinds == _ONLY_TUPLES and set(map(len, cast("Sequence[tuple[int, bytes]]", shares))) == _ONLY_PAIRS:
            tuples = True
            listed, values = zip(*shares)
            indices += listed
            if set(map(type, values)) != _ONLY_BYTES:
                return None
        else:
            return None  # (also an empty list)
        sizes.update(map(len, values))
        blobs.append(b"".join(values))
        counted.append(len(values))
    counts = np.array(counted, dtype=np.int64)
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
    return cast("list[bytes]", secrets)  # no failures: every list's secret is there


def _recover_all(
    batches: list[_Batch], total: int, t: int, shared_min: int
) -> tuple[list[bytes | None], dict[int, str]]:
    """(secrets, {position: why}) of ``total`` lists given as ``batches``; None for failing and absent lists.

    Rows whose index set occurs ``shared_min`` times or more in a batch go
    through the cached per-set path, the others through ``_interpolate_rows``.
    """
    secrets: list[bytes | None] = [None] * total
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
