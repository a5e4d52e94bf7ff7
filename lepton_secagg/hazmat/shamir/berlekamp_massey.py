"""Berlekamp-Massey over GF(2^31 - 1): the shortest linear recurrence of a sequence.

The robust decoder (``robust.py``) finds the error locator of a set of shares
as the shortest recurrence of their syndromes.  ``_bm_python`` is the
textbook algorithm on Python ints; ``_bm_numpy`` the same with numpy vector
updates, for long sequences; ``_berlekamp_massey`` picks between them.
"""
from __future__ import annotations

import numpy as np

from .field import _LOW16, _P, _SHIFT16, PRIME, _mulmod, _reduce


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
