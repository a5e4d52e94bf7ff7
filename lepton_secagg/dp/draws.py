"""Exact uniform integers and Bernoulli draws from the injectable ``rng``'s bytes.

Theory of operation: every random choice of the DP samplers reduces to
"a uniform integer below N", drawn by rejection so it is exactly uniform:
take 64 random bits r and accept when r >= 2^64 mod N (the accepted block
is a whole number of copies of 0..N-1), then return r mod N.  On top of it:

* ``bernoulli(num, den)``: uniform below den, then compare with num; exactly
  num/den.
* ``bernoulli_exp(num, den)``: exactly exp(-num/den) for a rational
  num/den >= 0, by Canonne, Kamath and Steinke (2020), Algorithm 1: for
  gamma <= 1 draw Bernoulli(gamma/k) for k = 1, 2, ... until the first
  failure and return whether k is odd; for gamma > 1 require floor(gamma)
  successes of the gamma = 1 case and one of the fractional part.

Two implementations share one specification: ``*_int`` works on Python ints
of any size (the readable reference, and the fallback for the rare elements
whose integers outgrow 64 bits); the array functions run the same algorithm
on many elements at once in uint64 and hand any element they cannot hold to
the reference.  Only integer arithmetic is used, no float anywhere.
"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..hazmat.rng import Rng

__all__ = [
    "uniform_below_int",
    "bernoulli_int",
    "bernoulli_exp_int",
    "uniform_below",
    "bernoulli",
    "bernoulli_exp",
]

_TWO64 = 1 << 64
# den * k must stay below 2^63 in the array form of bernoulli_exp; beyond it
# (k > 2^(63 - 56), probability below 1/127!) an element goes to the reference.
_ARRAY_DEN_LIMIT = 1 << 56


def uniform_below_int(rng: Rng, bound: int) -> int:
    """A uniform integer in [0, bound), any bound >= 1."""
    if bound < 1:
        raise ValueError(f"bound must be >= 1, got {bound}.")
    nbytes = (bound.bit_length() + 7) // 8 + 8  # 64 spare bits: rejection is rare
    space = 1 << (8 * nbytes)
    floor = space % bound
    while True:
        r = int.from_bytes(rng.bytes(nbytes), "little")
        if r >= floor:
            return r % bound


def bernoulli_int(rng: Rng, num: int, den: int) -> bool:
    """True with probability num/den (0 <= num <= den)."""
    return uniform_below_int(rng, den) < num


def _bernoulli_exp_le1_int(rng: Rng, num: int, den: int, k: int = 1) -> bool:
    """exp(-num/den) for num <= den, continuing the k-loop from ``k``."""
    while bernoulli_int(rng, num, den * k):
        k += 1
    return k % 2 == 1


def bernoulli_exp_int(rng: Rng, num: int, den: int) -> bool:
    """True with probability exp(-num/den), for integers num >= 0, den >= 1."""
    if num < 0 or den < 1:
        raise ValueError(f"exp(-num/den) needs num >= 0 and den >= 1, got {num}/{den}.")
    whole, frac = divmod(num, den)
    for _ in range(whole):
        if not _bernoulli_exp_le1_int(rng, 1, 1):
            return False
    return _bernoulli_exp_le1_int(rng, frac, den)


def _u64(values: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    return np.ascontiguousarray(values, dtype=np.uint64)


def uniform_below(rng: Rng, bounds: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """Uniform integers in [0, bounds[i]) for a uint64 array of bounds >= 1."""
    bound_array = _u64(bounds)
    if bound_array.size and int(bound_array.min()) < 1:
        raise ValueError("every bound must be >= 1.")
    out = np.empty_like(bound_array)
    todo = np.arange(bound_array.size)
    while todo.size:
        r = np.frombuffer(rng.bytes(8 * todo.size), dtype="<u8").astype(np.uint64)
        b = bound_array[todo]
        floor = (np.uint64(0) - b) % b  # (2^64 - b) mod b == 2^64 mod b
        ok = r >= floor
        out[todo[ok]] = r[ok] % b[ok]
        todo = todo[~ok]
    return out


def bernoulli(rng: Rng, num: npt.ArrayLike, den: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Element-wise True with probability num[i]/den[i] (uint64 arrays, num <= den)."""
    return uniform_below(rng, den) < _u64(num)


def _bernoulli_exp_le1(rng: Rng, num: npt.NDArray[np.uint64], den: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Element-wise exp(-num/den) for num <= den <= 2^44."""
    k = np.ones(num.shape, dtype=np.uint64)
    alive = np.arange(num.size)
    while alive.size:
        big = den[alive] * k[alive] >= np.uint64(_TWO64 >> 1)
        for i in alive[big]:  # unreachable in practice (k > 2^19); kept exact
            k[i] = 1 if _bernoulli_exp_le1_int(rng, int(num[i]), int(den[i]), int(k[i])) else 2
        alive = alive[~big]
        hit = bernoulli(rng, num[alive], den[alive] * k[alive])
        k[alive[hit]] += np.uint64(1)
        alive = alive[hit]
    odd: npt.NDArray[np.bool_] = k % np.uint64(2) == np.uint64(1)
    return odd


def bernoulli_exp(rng: Rng, num: npt.ArrayLike, den: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Element-wise True with probability exp(-num[i]/den[i]).

    ``num`` and ``den`` are non-negative integer arrays (den >= 1); elements
    with den above 2^56 go through ``bernoulli_exp_int``.
    """
    num_a, den_a = _u64(num), _u64(den)
    if num_a.shape != den_a.shape:
        raise ValueError("num and den must have the same shape.")
    if den_a.size and int(den_a.min()) < 1:
        raise ValueError("every den must be >= 1.")
    result = np.ones(num_a.shape, dtype=bool)
    big = den_a > np.uint64(_ARRAY_DEN_LIMIT)
    for i in np.flatnonzero(big):
        result[i] = bernoulli_exp_int(rng, int(num_a[i]), int(den_a[i]))
    small = np.flatnonzero(~big)
    whole, frac = num_a[small] // den_a[small], num_a[small] % den_a[small]
    # floor(gamma) successes of exp(-1) first: stop an element at its first failure.
    done = np.zeros(small.size, dtype=np.uint64)
    alive = np.flatnonzero(whole > 0)
    while alive.size:
        ok = _bernoulli_exp_le1(rng, np.ones(alive.size, np.uint64), np.ones(alive.size, np.uint64))
        result[small[alive[~ok]]] = False
        done[alive] += np.uint64(1)
        alive = alive[ok & (done[alive] < whole[alive])]
    left = np.flatnonzero(result[small])
    result[small[left]] = _bernoulli_exp_le1(rng, frac[left], den_a[small[left]])
    return result
