"""Robust reconstruction: ``reconstruct_robust`` and ``reconstruct_many_robust``.

Instead of refusing shares that disagree, these correct them: s shares are a
Reed-Solomon codeword, so up to (s - t) // 2 wrong or malformed shares are
located (syndromes and Berlekamp-Massey, limb combinations c = 1, 2, ... so
that no error pattern can hide; see the comment above ``_too_many``),
excluded and reported.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import cast

import numpy as np

from ...exceptions import ReconstructionError
from .berlekamp_massey import _berlekamp_massey
from .field import (
    _P,
    PRIME,
    _halves,
    _matmul_mod,
    _mulmod,
    _powers,
    _powmod,
    _product_mod,
    _reduce,
    _signed_inverses,
    _small_inverses,
    _table_size,
)
from .interpolation import _interpolate_shared
from .reconstruction import _SHARED_SET_MIN, _batches, _failure, _gather, _recover_all
from .shares import (
    _HEADER,
    MAX_SECRET_SIZE,
    Share,
    ShareLike,
    _by_index,
    _check_t,
    _collect,
    _Collected,
    _from_limbs,
    _num_limbs,
    share_size,
)


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
        collected: list[_Collected] = []
        where: list[int] = []
        for position, shares in enumerate(share_lists):
            try:
                collected.append(_collect(shares, t))
                where.append(position)
            except ReconstructionError:
                failing.add(position)
        mapping = np.array(where, dtype=np.int64)
        batches = [(mapping[positions], xs, ys, lengths) for positions, xs, ys, lengths in _batches(collected)]
    secrets, failures = _recover_all(batches, len(share_lists), t, shared_min=_SHARED_SET_MIN)
    failing.update(failures)
    wrong: list[tuple[int, ...]] = [()] * len(share_lists)
    for position in sorted(failing):
        try:
            secrets[position], wrong[position] = reconstruct_robust(share_lists[position], t)
        except ReconstructionError as exc:
            raise ReconstructionError(f"share list {position}: {exc}") from None
    return cast("list[bytes]", secrets), wrong  # every failing list was decoded or raised


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


def _collect_robust(shares: Sequence[ShareLike], t: int) -> tuple[tuple[int, ...], np.ndarray, int, np.ndarray]:
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


#: (w (s,), baby (s, b), halves(baby), giant (s, g)), see ``_syndrome_basis``
_SyndromeBasis = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@functools.lru_cache(maxsize=8)
def _syndrome_basis(indices: tuple[int, ...], t: int) -> _SyndromeBasis:
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


def _evaluate_at_indices(coefficients: np.ndarray, basis: _SyndromeBasis) -> np.ndarray:
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
