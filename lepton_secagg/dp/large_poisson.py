"""Exact Poisson draws for a large rational mean, in constant expected time.

Theory of operation: with c = floor(lambda) (the mode) the Poisson pmf is
proportional to w(k) = lambda^(k-c) c!/k! <= 1.  Cut the integers into
blocks of width S from c outwards, block g >= 0 on either side, and propose
from the envelope that is 2^-g on block g: a fair side bit, a block
G ~ Geometric(1/2) and a uniform offset J in [0, S).  Accept k with
probability a(k) = w(k) 2^g (k < 0: reject).  This is a valid envelope when
w(k) <= 2^-g on block g; since w decreases away from the mode and the ratio
of w between consecutive block starts decreases with g, it suffices that
w <= 1/2 at the nearest point of block 1 and that the ratio from block 1 to
block 2 is <= 1/2 on each side.  ``_Envelope`` checks exactly that, in exact
rational arithmetic, widening S until it holds (S starts at 1.2 sqrt(lambda);
about half the proposals are accepted).

The test U < a(k) is exact: a 53-bit uniform u decides at once when
[u, u + 1) / 2^53 lies clear of a(k) by a margin far larger than the
floating-point error of log a(k) (computed with ``scipy.special.gammaln``,
margin 1e-9 + 1e-14 times the magnitudes summed, about 100 times its
rounding error); otherwise the comparison is
redone with a(k) as an exact fraction of Python ints, extending U by 64
random bits at a time until it is decided.  Every random bit comes from the
``rng`` passed in.
"""
from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.special import gammaln

from ..hazmat.rng import Rng
from .draws import uniform_below

__all__ = ["poisson_large"]

# gammaln's relative error is a few units in the last place (~1e-16): the margin is ~100 times that.
_SLACK_ABS, _SLACK_REL = 1e-9, 1e-14
_TWO53 = float(1 << 53)


def _w(lam: Fraction, c: int, k: int) -> Fraction:
    """lambda^(k-c) c!/k! exactly (0 for k < 0)."""
    if k < 0:
        return Fraction(0)
    p, q = lam.numerator, lam.denominator
    if k >= c:
        d = k - c
        return Fraction(p**d, q**d * math.prod(range(c + 1, k + 1)))
    d = c - k
    return Fraction(math.prod(range(k + 1, c + 1)) * q**d, p**d)


class _Envelope:
    """Block width S for ``lam``, with the envelope conditions checked exactly."""

    def __init__(self, lam: Fraction):
        self.lam, self.c = lam, lam.numerator // lam.denominator
        width = math.ceil(1.2 * math.sqrt(float(lam)))
        while not self._valid(width):
            width = math.ceil(width * 1.1) + 1
        self.width = width

    def _valid(self, s: int) -> bool:
        lam, c, half = self.lam, self.c, Fraction(1, 2)
        right1, right2 = _w(lam, c, c + s), _w(lam, c, c + 2 * s)
        left1, left2 = _w(lam, c, c - s - 1), _w(lam, c, c - 2 * s - 1)
        right_ok = right1 <= half and right2 <= right1 * half
        left_ok = left1 <= half and left2 <= left1 * half
        return right_ok and left_ok


def _geometric_half(rng: Rng, n: int) -> npt.NDArray[np.int64]:
    """n draws of G with P(G = g) = 2^-(g+1): the number of leading one bits."""
    out = np.zeros(n, dtype=np.int64)
    alive = np.arange(n)
    while alive.size:
        word = np.frombuffer(rng.bytes(8 * alive.size), dtype="<u8").astype(np.uint64)
        ones = np.zeros(alive.size, dtype=np.int64)
        run = np.ones(alive.size, dtype=bool)
        for bit in range(64):  # count the trailing ones of each word
            run &= ((word >> np.uint64(bit)) & np.uint64(1)).astype(bool)
            ones += run
        out[alive] += ones
        alive = alive[ones == 64]  # 64 ones: the run continues into the next word
    return out


def _exact_accept(rng: Rng, u: int, a: Fraction) -> bool:
    """Whether U < a for U uniform in [u, u + 1) / 2^53, extending U with fresh bits until decided."""
    num, den = a.numerator, a.denominator
    r, bits = u, 53
    while True:
        if (r + 1) * den <= num << bits:
            return True
        if r * den >= num << bits:
            return False
        r = (r << 64) | int.from_bytes(rng.bytes(8), "little")
        bits += 64


@lru_cache(maxsize=64)
def _envelope(lam: Fraction) -> _Envelope:
    return _Envelope(lam)


def poisson_large(rng: Rng, lam: Fraction, size: int) -> npt.NDArray[np.int64]:
    """``size`` exact Poisson(lam) draws (lam a Fraction, best for lam >= 64) as int64."""
    env = _envelope(lam)
    c, s = env.c, env.width
    log_lam = math.log(lam.numerator) - math.log(lam.denominator)
    log_c_fact = float(gammaln(c + 1))
    out = np.empty(size, dtype=np.int64)
    todo = np.arange(size)
    while todo.size:
        n = todo.size
        side = np.frombuffer(rng.bytes(n), dtype=np.uint8) & 1
        g = _geometric_half(rng, n)
        j = uniform_below(rng, np.full(n, s, np.uint64)).astype(np.int64)
        k = np.where(side == 1, c + g * s + j, c - (g + 1) * s + j)
        u = (np.frombuffer(rng.bytes(8 * n), dtype="<u8") >> np.uint64(11)).astype(np.int64)
        accept = np.zeros(n, dtype=bool)
        valid = np.flatnonzero(k >= 0)
        kv, gv = k[valid], g[valid]
        log_k_fact = gammaln(kv + 1.0)
        log_a = (kv - c) * log_lam + log_c_fact - log_k_fact + gv * math.log(2)
        slack = _SLACK_ABS + _SLACK_REL * (np.abs((kv - c) * log_lam) + log_c_fact + log_k_fact + gv)
        uv = u[valid].astype(np.float64)
        with np.errstate(over="ignore"):  # exp(large) = inf only makes "reject" false, as it should
            yes = (uv + 1) / _TWO53 <= np.exp(log_a - slack)
            no = uv / _TWO53 >= np.exp(log_a + slack)
        accept[valid[yes]] = True
        for i in valid[~yes & ~no]:  # too close to call in floating point
            accept[i] = _exact_accept(rng, int(u[i]), _w(lam, c, int(k[i])) * (1 << int(g[i])))
        out[todo[accept]] = k[accept]
        todo = todo[~accept]
    return out
