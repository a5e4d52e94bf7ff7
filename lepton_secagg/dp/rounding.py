"""Conditional randomized rounding (Kairouz, Liu, Steinke 2021, Section 4.1).

Theory of operation: each coordinate y of a scaled vector goes to floor(y) or
floor(y) + 1, the upper one with probability y - floor(y), so the rounded
vector is unbiased.  Its norm can exceed ||y||, which would raise the
sensitivity the noise must cover; the client therefore re-draws the whole
rounding until the rounded norm is at most ``rounded_l2_bound(||y|| bound,
beta, d)``.  With that bound a draw is accepted with probability at least
1 - beta, so the loop is short, and the sensitivity used by the accountant is
this bound, not the unrounded clip.

The rounding draws come from the injectable ``rng`` (they are part of what
keeps one client's input hidden in the noisy sum): a coordinate rounds up
when a 53-bit uniform integer u satisfies u < frac * 2^53, which is exact for
the double frac.
"""
from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ..exceptions import SecAggError
from ..hazmat.rng import Rng

__all__ = ["rounded_l2_bound", "rounded_l1_bound", "randomized_round", "conditional_round"]

_MAX_TRIES = 1000  # acceptance is >= 1 - beta per try; 1000 failures means a wrong bound


def rounded_l2_bound(l2: float, beta: float, dim: int) -> float:
    """The L2 norm a conditionally rounded vector stays under (DDG paper, Theorem 23).

    min(l2 + sqrt(d), sqrt(l2^2 + d/4 + sqrt(2 ln(1/beta)) (l2 + sqrt(d)/2))); beta = 0 gives
    the unconditional bound l2 + sqrt(d).
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must lie in [0, 1), got {beta}.")
    plain = l2 + math.sqrt(dim)
    if beta == 0:
        return plain
    squared = l2 * l2 + dim / 4 + math.sqrt(2 * math.log(1 / beta)) * (l2 + math.sqrt(dim) / 2)
    return min(plain, math.sqrt(squared))


def rounded_l1_bound(l2_rounded: float, dim: int) -> float:
    """An L1 bound on an integer vector of L2 norm ``l2_rounded``: L1 <= sqrt(d) L2 and L1 <= L2^2."""
    return l2_rounded * min(math.sqrt(dim), l2_rounded)


def randomized_round(values: npt.ArrayLike, rng: Rng) -> npt.NDArray[np.int64]:
    """Unbiased rounding of ``values`` to int64, each coordinate up with its fractional part."""
    y = np.asarray(values, dtype=np.float64)
    low = np.floor(y)
    frac = y - low
    u = np.frombuffer(rng.bytes(8 * y.size), dtype="<u8") >> np.uint64(11)
    up = u.astype(np.float64) < np.ldexp(frac.reshape(-1), 53)
    return low.astype(np.int64) + up.reshape(y.shape)


def conditional_round(values: npt.ArrayLike, bound: float, rng: Rng) -> npt.NDArray[np.int64]:
    """Randomized rounding re-drawn until the rounded vector's L2 norm is <= ``bound``.

    Raises:
        SecAggError: no draw met the bound in 1000 tries (the bound is below
            what ``rounded_l2_bound`` gives for this vector).
    """
    squared = bound * bound
    for _ in range(_MAX_TRIES):
        rounded = randomized_round(values, rng)
        if float(np.dot(rounded, rounded)) <= squared:
            return rounded
    raise SecAggError(f"conditional rounding: no draw within the L2 bound {bound} in {_MAX_TRIES} tries.")
