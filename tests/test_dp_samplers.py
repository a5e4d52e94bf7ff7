"""The exact DP samplers against their exact pmfs.

Each statistical test uses a fixed DeterministicRng seed, so it is a fixed
computation; its power is shown by the same test rejecting a neighbouring
distribution (a variance 10% off) on the same samples.
"""
from __future__ import annotations

import ast
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from lepton_secagg.dp import draws, samplers
from lepton_secagg.hazmat.rng import DeterministicRng

ALPHA = 1e-3  # reject the sampler when the chi-square p-value falls below this


def dg_pmf(sigma2: float, support: np.ndarray) -> np.ndarray:
    """N_Z(0, sigma2) on ``support``, normalised over +-(60 sigma + 60)."""
    wide = np.arange(-int(60 * math.sqrt(sigma2)) - 60, int(60 * math.sqrt(sigma2)) + 61)
    z = np.exp(-(wide.astype(float) ** 2) / (2 * sigma2)).sum()
    return np.exp(-(support.astype(float) ** 2) / (2 * sigma2)) / z


def chi_square_p(samples: np.ndarray, pmf) -> float:
    """Chi-square p-value of integer samples against ``pmf(support)``; cells with expectation < 5 pooled."""
    samples = np.asarray(samples)
    lo, hi = int(samples.min()), int(samples.max())
    support = np.arange(lo, hi + 1)
    expected = pmf(support) * samples.size
    observed = np.bincount(samples - lo, minlength=support.size).astype(float)
    # Pool the tails beyond the observed range into the end cells.
    expected[0] += samples.size * max(0.0, 1 - pmf(support).sum()) / 2
    expected[-1] += samples.size * max(0.0, 1 - pmf(support).sum()) / 2
    obs_cells, exp_cells, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        acc_o += o
        acc_e += e
        if acc_e >= 5:
            obs_cells.append(acc_o)
            exp_cells.append(acc_e)
            acc_o = acc_e = 0.0
    obs_cells[-1] += acc_o
    exp_cells[-1] += acc_e
    exp_cells = np.array(exp_cells) * (sum(obs_cells) / sum(exp_cells))
    return stats.chisquare(obs_cells, exp_cells).pvalue


@pytest.mark.parametrize("sigma2", [Fraction(1, 4), 2, Fraction(49, 4), 150])
def test_discrete_gaussian_matches_its_pmf(sigma2):
    x = samplers.discrete_gaussian(DeterministicRng(f"dg{sigma2}"), sigma2, 20_000)
    assert x.dtype == np.int64
    assert chi_square_p(x, lambda s: dg_pmf(float(sigma2), s)) > ALPHA
    # Power: the same samples against a 10% wider discrete Gaussian are rejected.
    assert chi_square_p(x, lambda s: dg_pmf(1.1 * float(sigma2), s)) < ALPHA


def test_discrete_gaussian_reference_matches_its_pmf():
    rng = DeterministicRng("dg-int")
    x = np.array([samplers.discrete_gaussian_int(rng, Fraction(9, 2)) for _ in range(4000)])
    assert chi_square_p(x, lambda s: dg_pmf(4.5, s)) > ALPHA
    assert chi_square_p(x, lambda s: dg_pmf(6.0, s)) < ALPHA


def test_discrete_gaussian_exact_moments():
    """Mean 0 and the exact variance of N_Z(0, 1/4) (0.2155, not 1/4: the lattice shrinks it), within 4 s.e."""
    sigma2, n = Fraction(1, 4), 40_000
    x = samplers.discrete_gaussian(DeterministicRng("moments"), sigma2, n).astype(float)
    support = np.arange(-40, 41)
    pmf = dg_pmf(0.25, support)
    var = float((pmf * support**2).sum())
    fourth = float((pmf * support**4).sum())
    assert var < 0.25 - 0.02  # the continuous value would be wrong here
    assert abs(x.mean()) < 4 * math.sqrt(var / n)
    assert abs((x**2).mean() - var) < 4 * math.sqrt((fourth - var**2) / n)


def test_discrete_gaussian_far_tail_path_is_exact():
    """sigma2 so large that 2 num den t^2 >= 2^63: every draw goes through Python ints."""
    sigma2 = Fraction(10**10 + 1, 3)
    x = samplers.discrete_gaussian(DeterministicRng("huge"), sigma2, 300)
    sd = math.sqrt(float(sigma2))
    assert abs(x.mean()) < 4 * sd / math.sqrt(300)
    assert 0.7 < x.std() / sd < 1.3


@pytest.mark.parametrize("lam", [Fraction(1, 3), Fraction(7, 2), 12])
def test_poisson_matches_its_pmf(lam):
    x = samplers.poisson(DeterministicRng(f"po{lam}"), lam, 20_000)
    assert chi_square_p(x, lambda s: stats.poisson.pmf(s, float(lam))) > ALPHA
    assert chi_square_p(x, lambda s: stats.poisson.pmf(s, 1.1 * float(lam))) < ALPHA


def test_poisson_reference_matches_its_pmf():
    rng = DeterministicRng("po-int")
    x = np.array([samplers.poisson_int(rng, Fraction(5, 2)) for _ in range(4000)])
    assert chi_square_p(x, lambda s: stats.poisson.pmf(s, 2.5)) > ALPHA
    assert chi_square_p(x, lambda s: stats.poisson.pmf(s, 3.0)) < ALPHA


@pytest.mark.parametrize("mu", [Fraction(3, 2), 10])
def test_skellam_matches_its_pmf(mu):
    x = samplers.skellam(DeterministicRng(f"sk{mu}"), mu, 20_000)
    assert chi_square_p(x, lambda s: stats.skellam.pmf(s, float(mu), float(mu))) > ALPHA
    assert chi_square_p(x, lambda s: stats.skellam.pmf(s, 1.1 * float(mu), 1.1 * float(mu))) < ALPHA


def test_uniform_below_is_uniform_and_rejects_the_top_block():
    rng = DeterministicRng("uniform")
    x = draws.uniform_below(rng, np.full(30_000, 3, np.uint64))
    assert stats.chisquare(np.bincount(x.astype(int), minlength=3)).pvalue > ALPHA
    # A bound just above 2^63 rejects about half the 64-bit words: outputs stay below it.
    bound = (1 << 63) + 1
    big = draws.uniform_below(rng, np.full(4000, bound, np.uint64))
    assert int(big.max()) < bound
    assert abs(big.astype(float).mean() / bound - 0.5) < 4 * math.sqrt(1 / 12 / 4000)
    assert 0.5 < sum(draws.uniform_below_int(rng, 7) == 0 for _ in range(7000)) / 1000 < 1.5


@pytest.mark.parametrize("num,den", [(0, 1), (1, 3), (1, 1), (5, 2), (7, 1 << 50)])
def test_bernoulli_exp_has_probability_exp_minus_gamma(num, den):
    n = 20_000
    p = math.exp(-num / den)
    hits = draws.bernoulli_exp(DeterministicRng(f"be{num}/{den}"), np.full(n, num), np.full(n, den)).sum()
    assert abs(hits - n * p) <= 4 * math.sqrt(n * p * (1 - p)) + 1e-9
    ref = DeterministicRng(f"be-int{num}/{den}")
    hits_int = sum(draws.bernoulli_exp_int(ref, num, den) for _ in range(2000))
    assert abs(hits_int - 2000 * p) <= 4 * math.sqrt(2000 * p * (1 - p)) + 1e-9


def test_samplers_are_replayable_and_draw_from_the_given_rng():
    class Counting:
        def __init__(self):
            self.inner, self.used = DeterministicRng(5), 0

        def bytes(self, n):
            self.used += n
            return self.inner.bytes(n)

    rng = Counting()
    a = samplers.discrete_gaussian(rng, 7, 100)
    assert rng.used > 0
    assert np.array_equal(a, samplers.discrete_gaussian(DeterministicRng(5), 7, 100))
    assert not np.array_equal(a, samplers.discrete_gaussian(DeterministicRng(6), 7, 100))


def test_sampler_arguments_are_checked():
    rng = DeterministicRng(0)
    with pytest.raises(TypeError, match="sigma2"):
        samplers.discrete_gaussian(rng, 2.5, 3)  # a float is refused: integer arithmetic only
    with pytest.raises(ValueError, match="sigma2"):
        samplers.discrete_gaussian(rng, 0, 3)
    with pytest.raises(ValueError, match="size"):
        samplers.discrete_gaussian(rng, 1, -1)
    with pytest.raises(ValueError, match="lam"):
        samplers.poisson(rng, Fraction(-1, 2), 3)
    with pytest.raises(ValueError):
        draws.uniform_below(rng, np.array([0], np.uint64))


FLOAT_CALLS = {"float", "exp", "log", "sqrt", "expm1", "log1p", "pow", "isclose"}


def float_uses(source: str) -> list[str]:
    """Float literals, true division and float functions in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            found.append(f"float literal {node.value}")
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            found.append("true division")
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in FLOAT_CALLS:
                found.append(f"call {name}()")
    return found


def test_samplers_use_integer_arithmetic_only():
    dp = Path(samplers.__file__).parent
    for name in ("draws.py", "samplers.py"):
        source = (dp / name).read_text(encoding="utf-8")
        # ``lam / n`` splits a Fraction (exact); it is the one division allowed.
        uses = [u for u in float_uses(source.replace("part = lam / n", "part = lam"))]
        assert uses == [], f"{name}: {uses}"
        assert "np.random" not in source and "default_rng" not in source
    # The check can fail:
    assert sorted(float_uses("x = 1 / 2\ny = math.exp(0.5)")) == ["call exp()", "float literal 0.5", "true division"]


@pytest.mark.parametrize("lam", [65, Fraction(3001, 3), 10**5])
def test_large_mean_poisson_matches_its_pmf(lam):
    x = samplers.poisson(DeterministicRng(f"big{lam}"), lam, 20_000)
    assert chi_square_p(x, lambda s: stats.poisson.pmf(s, float(lam))) > ALPHA
    assert chi_square_p(x, lambda s: stats.poisson.pmf(s, 1.03 * float(lam))) < ALPHA


def test_large_mean_poisson_exact_fallback_alone_matches_the_pmf(monkeypatch):
    """A huge float margin sends every accept/reject decision through exact rational arithmetic."""
    from lepton_secagg.dp import large_poisson as poisson

    monkeypatch.setattr(poisson, "_SLACK_ABS", 1e6)
    x = poisson.poisson_large(DeterministicRng("fallback"), Fraction(200), 3000)
    assert chi_square_p(x, lambda s: stats.poisson.pmf(s, 200.0)) > ALPHA
    assert chi_square_p(x, lambda s: stats.poisson.pmf(s, 215.0)) < ALPHA


@pytest.mark.parametrize("lam", [Fraction(129, 2), Fraction(10001, 7)])
def test_poisson_envelope_covers_the_pmf_everywhere(lam):
    """w(k) <= 2^-g at every k of blocks 0..7 on both sides (exact fractions), not only where _Envelope checks."""
    from lepton_secagg.dp import large_poisson as poisson

    env = poisson._Envelope(lam)
    c, s = env.c, env.width
    for g in range(8):
        for k in list(range(c + g * s, c + (g + 1) * s)) + list(range(c - (g + 1) * s, c - g * s)):
            assert poisson._w(lam, c, k) <= Fraction(1, 2**g), (k, g)


def test_skellam_with_a_large_mean_matches_its_pmf():
    x = samplers.skellam(DeterministicRng("sk-big"), 500, 20_000)
    assert chi_square_p(x, lambda s: stats.skellam.pmf(s, 500.0, 500.0)) > ALPHA
    assert chi_square_p(x, lambda s: stats.skellam.pmf(s, 550.0, 550.0)) < ALPHA
