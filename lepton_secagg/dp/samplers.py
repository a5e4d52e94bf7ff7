"""Exact integer noise: discrete Gaussian, Poisson and Skellam, in integer arithmetic only.

Theory of operation:

* Discrete Gaussian N_Z(0, sigma^2), P(x) proportional to exp(-x^2 / (2 sigma^2))
  over the integers, for a rational sigma^2 = num/den: Canonne, Kamath and
  Steinke, "The Discrete Gaussian for Differential Privacy" (NeurIPS 2020),
  Algorithms 2 and 3.  With t = floor(sigma) + 1, draw Y from the discrete
  Laplace of scale t (U uniform below t kept with probability exp(-U/t),
  V counting exp(-1) successes, X = U + tV, a fair sign, X = 0 with a
  negative sign rejected) and keep it with probability exp(-gamma), where
  gamma = (|Y| - sigma^2/t)^2 / (2 sigma^2) = (|Y| den t - num)^2 / (2 num den t^2),
  a ratio of integers.
* Poisson(lambda) for a rational lambda: split lambda into n = ceil(lambda)
  equal parts lambda0 <= 1 and add n Poisson(lambda0) draws.  Each comes by
  rejection from a geometric proposal K with ratio r = lambda0/2
  (P(K = k) = (1 - r) r^k, k Bernoulli(r) successes before a failure),
  accepted with probability 2^(K-1)/K!: the ratio of the Poisson pmf to the
  proposal is exp(-lambda0)/(1 - r) * 2^k/k!, whose largest value over k is
  at k = 1, 2 where 2^k/k! = 2, so the acceptance is rational and at most 1.
  The cost grows linearly with lambda (about 1.5 lambda draws per sample),
  so ``poisson`` uses it up to lambda = 64 and above that the constant-time
  exact method of ``dp.large_poisson`` (a block envelope with rational masses).
* Skellam(mu) = Poisson(mu) - Poisson(mu): variance 2 mu.

Every random bit comes from the ``rng`` passed in (``hazmat.rng``: the noise
must stay secret from the server), through ``draws``.  ``*_int`` functions
are the readable one-sample references on Python ints; the array functions
run the same algorithms vectorised.
"""
from __future__ import annotations

from fractions import Fraction
from math import factorial, isqrt
from typing import Any

import numpy as np
import numpy.typing as npt

from ..hazmat.rng import Rng
from .large_poisson import poisson_large
from .draws import (
    bernoulli,
    bernoulli_exp,
    bernoulli_exp_int,
    bernoulli_int,
    uniform_below,
    uniform_below_int,
)

__all__ = [
    "as_rational",
    "discrete_gaussian_int",
    "discrete_gaussian",
    "poisson_int",
    "poisson",
    "skellam",
]

_LARGE_MEAN = 64  # above this mean, Poisson draws use dp.large_poisson (constant expected time)
_MAX_ARRAY_FACTORIAL = 20  # 20! < 2^63: larger K go through Python ints
# Acceptance 2^(k-1)/k! of a proposal k (k = 0: 1/2), as tables for the array path.
_ACCEPT_NUM = np.array([1] + [1 << (k - 1) for k in range(1, _MAX_ARRAY_FACTORIAL + 1)], dtype=np.uint64)
_ACCEPT_DEN = np.array([2] + [factorial(k) for k in range(1, _MAX_ARRAY_FACTORIAL + 1)], dtype=np.uint64)


def as_rational(value: int | Fraction, name: str = "sigma2") -> Fraction:
    """``value`` as a positive Fraction; floats are refused (their exact binary form is unwieldy).

    Raises:
        TypeError: a float or a non-number (round it with ``Fraction(x).limit_denominator``).
        ValueError: not > 0.
    """
    if isinstance(value, bool) or not isinstance(value, (int, Fraction)):
        raise TypeError(f"{name} must be an int or a fractions.Fraction, not {type(value).__name__}.")
    rational = Fraction(value)
    if rational <= 0:
        raise ValueError(f"{name} must be > 0, got {rational}.")
    return rational


def _size(size: int | np.integer[Any]) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
        raise ValueError(f"size must be a non-negative int, got {size!r}.")
    return int(size)


# -- discrete Gaussian ---------------------------------------------------------


def _discrete_laplace_int(rng: Rng, t: int) -> int:
    while True:
        u = uniform_below_int(rng, t)
        if not bernoulli_exp_int(rng, u, t):
            continue
        v = 0
        while bernoulli_exp_int(rng, 1, 1):
            v += 1
        x = u + t * v
        negative = bernoulli_int(rng, 1, 2)
        if negative and x == 0:
            continue
        return -x if negative else x


def discrete_gaussian_int(rng: Rng, sigma2: int | Fraction) -> int:
    """One draw of N_Z(0, sigma2) (the reference: Python ints, any sigma2 = num/den)."""
    variance = as_rational(sigma2)
    num, den = variance.numerator, variance.denominator
    t = isqrt(num // den) + 1
    while True:
        y = _discrete_laplace_int(rng, t)
        if bernoulli_exp_int(rng, (abs(y) * den * t - num) ** 2, 2 * num * den * t * t):
            return y


def _count_exp1_successes(rng: Rng, n: int) -> npt.NDArray[np.uint64]:
    """For each of n elements, the number of exp(-1) successes before the first failure."""
    count = np.zeros(n, dtype=np.uint64)
    alive = np.arange(n)
    one = np.ones(n, dtype=np.uint64)
    while alive.size:
        ok = bernoulli_exp(rng, one[: alive.size], one[: alive.size])
        count[alive[ok]] += np.uint64(1)
        alive = alive[ok]
    return count


def _discrete_laplace(rng: Rng, t: int, n: int) -> npt.NDArray[np.int64]:
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    tt = np.full(n, t, dtype=np.uint64)
    while todo.size:
        m = todo.size
        u = uniform_below(rng, tt[:m])
        kept = np.flatnonzero(bernoulli_exp(rng, u, tt[:m]))
        x = u[kept] + np.uint64(t) * _count_exp1_successes(rng, kept.size)
        negative = bernoulli(rng, np.ones(kept.size, np.uint64), np.full(kept.size, 2, np.uint64))
        good = ~(negative & (x == 0))
        values = x.astype(np.int64)
        values[negative] *= -1
        out[todo[kept[good]]] = values[good]
        finished = np.zeros(m, dtype=bool)
        finished[kept[good]] = True
        todo = todo[~finished]
    return out


def discrete_gaussian(rng: Rng, sigma2: int | Fraction, size: int) -> npt.NDArray[np.int64]:
    """``size`` independent draws of N_Z(0, sigma2) as an int64 array.

    Args:
        rng: the secret randomness (``hazmat.rng``).
        sigma2: the variance parameter, an int or Fraction > 0.
        size: how many draws.
    """
    variance, n = as_rational(sigma2), _size(size)
    num, den = variance.numerator, variance.denominator
    t = isqrt(num // den) + 1
    b = 2 * num * den * t * t
    if b >= 1 << 63:
        return np.array([discrete_gaussian_int(rng, variance) for _ in range(n)], dtype=np.int64)
    # |Y| den t - num fits comfortably when |Y| < limit; a larger |Y| (far tail) uses Python ints.
    limit = ((1 << 31) - 1) // (den * t)
    out = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    while todo.size:
        y = _discrete_laplace(rng, t, todo.size)
        near = np.abs(y) < limit
        keep = np.zeros(todo.size, dtype=bool)
        for i in np.flatnonzero(~near):
            keep[i] = bernoulli_exp_int(rng, (abs(int(y[i])) * den * t - num) ** 2, b)
        idx = np.flatnonzero(near)
        a = np.abs(y[idx]) * np.int64(den * t) - np.int64(num)
        keep[idx] = bernoulli_exp(rng, (a * a).astype(np.uint64), np.full(idx.size, b, np.uint64))
        out[todo[keep]] = y[keep]
        todo = todo[~keep]
    return out


# -- Poisson and Skellam --------------------------------------------------------


def _poisson_part_int(rng: Rng, num: int, den: int) -> int:
    """One Poisson(num/den) draw for num/den <= 1 (geometric proposal, rational acceptance)."""
    while True:
        k = 0
        while bernoulli_int(rng, num, 2 * den):
            k += 1
        if k == 0:
            if bernoulli_int(rng, 1, 2):
                return 0
        elif bernoulli_int(rng, 1 << (k - 1), factorial(k)):
            return k


def _parts(lam: Fraction) -> tuple[int, int, int]:
    """(n, num, den): lam = n * num/den with num/den <= 1."""
    n = max(1, -(-lam.numerator // lam.denominator))
    part = lam / n
    return n, part.numerator, part.denominator


def poisson_int(rng: Rng, lam: int | Fraction) -> int:
    """One Poisson(lam) draw for a rational lam > 0 (the reference, Python ints)."""
    n, num, den = _parts(as_rational(lam, "lam"))
    return sum(_poisson_part_int(rng, num, den) for _ in range(n))


def _poisson_part(rng: Rng, num: int, den: int, m: int) -> npt.NDArray[np.int64]:
    out = np.empty(m, dtype=np.int64)
    todo = np.arange(m)
    r_num, r_den = np.full(m, num, np.uint64), np.full(m, 2 * den, np.uint64)
    while todo.size:
        size = todo.size
        k = np.zeros(size, dtype=np.int64)
        alive = np.arange(size)
        while alive.size:
            hit = bernoulli(rng, r_num[: alive.size], r_den[: alive.size])
            k[alive[hit]] += 1
            alive = alive[hit]
        accept = np.zeros(size, dtype=bool)
        small = np.flatnonzero(k <= _MAX_ARRAY_FACTORIAL)
        accept[small] = bernoulli(rng, _ACCEPT_NUM[k[small]], _ACCEPT_DEN[k[small]])
        for i in np.flatnonzero(k > _MAX_ARRAY_FACTORIAL):
            accept[i] = bernoulli_int(rng, 1 << (int(k[i]) - 1), factorial(int(k[i])))
        out[todo[accept]] = k[accept]
        todo = todo[~accept]
    return out


def poisson(rng: Rng, lam: int | Fraction, size: int, *, block: int = 1 << 20) -> npt.NDArray[np.int64]:
    """``size`` independent Poisson(lam) draws (rational lam > 0) as an int64 array.

    Up to lam = 64, work and memory grow with lam * size (``block`` caps the
    elements drawn at once); above, each draw costs a constant expected time.
    """
    mean, m = as_rational(lam, "lam"), _size(size)
    if mean > _LARGE_MEAN:
        return poisson_large(rng, mean, m)
    n_parts, num, den = _parts(mean)
    total = np.zeros(m, dtype=np.int64)
    per_block = max(1, block // max(m, 1))
    done = 0
    while done < n_parts:
        reps = min(per_block, n_parts - done)
        total += _poisson_part(rng, num, den, reps * m).reshape(reps, m).sum(axis=0)
        done += reps
    return total


def skellam(rng: Rng, mu: int | Fraction, size: int) -> npt.NDArray[np.int64]:
    """``size`` independent Skellam(mu) draws: Poisson(mu) - Poisson(mu), variance 2 mu."""
    return poisson(rng, mu, size) - poisson(rng, mu, size)
