"""Splitting: ``split`` and ``split_many``.

Each limb of a secret is the constant term of its own polynomial of degree
< t whose other coefficients are uniform in F_p, drawn from the injected rng
by rejection sampling; share i (1 <= i <= n) holds every polynomial
evaluated at x = i.  All polynomials of a call, and of several secrets in
``split_many``, are evaluated at all n points at once (baby-step giant-step:
one matrix product and a short Horner loop, ``_evaluate``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..rng import Rng, resolve
from .field import _matmul_mod, _mulmod, _halves, _powers, _powmod, _random_elements, _reduce
from .shares import _HEADER, Share, _check_n_t, _check_secret_size, _num_limbs, _to_limbs


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
