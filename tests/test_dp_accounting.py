"""DDP accounting: our mechanism curves against dp-accounting where they must agree."""
from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting import GaussianDpEvent, PoissonSampledDpEvent, SelfComposedDpEvent
from dp_accounting.rdp import RdpAccountant

from lepton_secagg.dp import accounting
from lepton_secagg.dp.accounting import ORDERS, Accountant, Plan


def gaussian_epsilon(z: float, rounds: int, delta: float, q: float = 1.0) -> float:
    acc = RdpAccountant(list(ORDERS))
    event = GaussianDpEvent(z) if q == 1 else PoissonSampledDpEvent(q, GaussianDpEvent(z))
    acc.compose(SelfComposedDpEvent(event, rounds))
    return acc.get_epsilon(delta)


def test_ddg_meets_the_gaussian_when_tau_vanishes():
    """With s^2 = 50 per client tau is ~1e-200: the DDG bound is the Gaussian's with z = sqrt(n s^2)/Delta_2."""
    l2, n, v, d = 40.0, 100, 50.0, 1024
    rdp = accounting.ddg_rdp(ORDERS, l2=l2, l1=l2 * 32, client_variance=v, clients=n, dim=d)
    z = math.sqrt(n * v) / l2
    ours = accounting.epsilon_from_rdp(20 * rdp, 1e-5)
    assert math.isclose(ours, gaussian_epsilon(z, 20, 1e-5), rel_tol=1e-9)


def test_ddg_pays_for_small_noise_through_tau():
    """Two clients with s^2 = 1/4: tau = 10 exp(-2 pi^2 / 4 / 2) by hand, and the bound exceeds the Gaussian."""
    v, d, l2 = 0.25, 16, 2.0
    tau = 10 * math.exp(-2 * math.pi**2 * v * 1 / 2)
    rdp = accounting.ddg_rdp([2, 8], l2=l2, l1=l2 * 4, client_variance=v, clients=2, dim=d)
    l2s, l1s = l2 / math.sqrt(2 * v), l2 * 4 / math.sqrt(2 * v)
    expected = [min(a * l2s**2 / 2 + tau * d, a / 2 * (l2s**2 + 2 * l1s * tau + tau**2 * d), a / 2 * (l2s + 4 * tau) ** 2) for a in (2, 8)]
    assert np.allclose(rdp, expected, rtol=1e-12)
    assert np.all(rdp > np.array([2, 8]) * l2s**2 / 2 * 1.01)


def test_skellam_tends_to_the_gaussian_from_above():
    l2, l1 = 10.0, 10.0 * 8
    for variance, tol in ((1e3, 0.5), (1e6, 0.01)):
        rdp = accounting.skellam_rdp(ORDERS, l2=l2, l1=l1, variance=variance)
        gaussian = np.array(ORDERS) * l2**2 / (2 * variance)
        assert np.all(rdp >= gaussian)
        eps = accounting.epsilon_from_rdp(rdp, 1e-5)
        ref = gaussian_epsilon(math.sqrt(variance) / l2, 1, 1e-5)
        assert ref <= eps <= ref * (1 + tol)


def test_subsampling_bound_is_sound_against_the_tight_gaussian_one():
    """Zhu-Wang's general bound on a Gaussian curve: never below dp-accounting's exact SGM RDP, equal at alpha = 2."""
    orders = list(range(2, 65))
    for z, q in ((1.0, 0.01), (2.0, 0.3), (0.8, 0.5)):
        ours = accounting.subsampled_rdp(orders, np.array(orders) / (2 * z * z), q)
        acc = RdpAccountant(orders)
        acc.compose(PoissonSampledDpEvent(q, GaussianDpEvent(z)))
        tight = np.asarray(acc._rdp)  # dp-accounting's per-order RDP
        assert np.all(ours >= tight * (1 - 1e-9))
        assert math.isclose(ours[0], tight[0], rel_tol=1e-9)
    with pytest.raises(ValueError, match="missing"):
        accounting.subsampled_rdp([2, 4], [0.1, 0.2], 0.5)


def test_plan_answers_both_directions():
    plan = Plan("gaussian", clients=200, rounds=40, delta=1e-5, clip=1.0, bits=16, length=300, min_clients=180)
    enc = plan.noise_for(2.0)
    eps = plan.epsilon(enc)
    assert 1.98 < eps <= 2.0
    # A 5% smaller noise multiplier spends more than the target.
    z = math.sqrt(float(enc.noise) * 180) / enc.sensitivity
    assert plan.epsilon(plan.encoding(0.95 * z)) > 2.0
    # More survivors than the minimum add noise: epsilon drops.
    assert plan.epsilon(enc, survivors=200) < eps
    # At 16 bits the DDG spends what the Gaussian with the same z spends (tau ~ 0 at this noise).
    assert math.isclose(eps, gaussian_epsilon(z, 40, 1e-5), rel_tol=1e-3)
    with pytest.raises(ValueError, match="bits = 8"):
        Plan("gaussian", clients=10**4, rounds=10**4, delta=1e-9, clip=1.0, bits=8, length=4096).noise_for(0.01)


def test_sampled_plan_and_accountant_record_actual_survivors():
    plan = Plan("skellam", clients=100, rounds=5, delta=1e-5, clip=1.0, bits=14, length=100, sampling_rate=0.2, min_clients=80)
    enc = plan.encoding(1.0)
    acc = Accountant(delta=1e-5, sampling_rate=0.2)
    for _ in range(5):
        acc.record(enc, 80)
    assert math.isclose(acc.epsilon, plan.epsilon(enc), rel_tol=1e-12)
    assert acc.rounds[-1][:3] == ("skellam", 14, 80)
    fuller = Accountant(delta=1e-5, sampling_rate=0.2)
    for _ in range(5):
        fuller.record(enc, 100)
    assert fuller.epsilon < acc.epsilon
    assert Accountant(delta=1e-5).epsilon == 0.0


# Epsilons computed by the papers' own accounting code, run by us: google-research/federated,
# distributed_dp/accounting_utils.py at commit 5e27a86323a35c2018fb97fbbe755c7ade9370ab,
# `ddgauss_epsilon(gamma, local_stddev, num_clients, l2_sens, beta, dim, q, steps, delta)` and
# `skellam_epsilon(1 / gamma, local_stddev * sqrt(num_clients), l2_sens, beta, dim, q, steps, delta)`
# with their RDP_ORDERS (2..128 and 256), `tfp.get_privacy_spent` replaced by dp-accounting's
# `compute_epsilon` (its maintained successor; the conversion is the same).  That code is
# the authors' implementation of DDG Proposition 14 with the rounding bound of Theorem 23,
# Skellam Theorem 3.5 and the subsampling bound: an independent implementation of the
# formulas lepton_secagg.dp.accounting writes down again.  (No number printed in either
# paper could be read: the stored copies hold only each paper's opening; see docs/dp.md.)
# Columns: mechanism, gamma (1 / scale), local noise stddev before scaling, clients, L2 clip,
# beta, padded dimension, sampling rate, rounds, delta, the authors' epsilon.
AUTHORS_EPSILONS = [
    ("gaussian", 2e-05, 0.003, 100, 0.03, math.exp(-0.5), 2**20, 100 / 3400, 1500, 1 / 3400**2, 12.658611345253805),
    ("gaussian", 0.0002, 0.004, 100, 0.03, math.exp(-0.5), 2**20, 100 / 3400, 1500, 1 / 3400**2, 1115.1187981430082),
    ("gaussian", 0.002, 0.0012, 100, 0.03, math.exp(-0.5), 1024, 1.0, 20, 1e-05, 29997.341172768512),
    ("gaussian", 0.001, 0.3, 10, 1.0, math.exp(-0.5), 4096, 1.0, 1, 1e-05, 5.036217225708711),
    ("gaussian", 1.0, 0.8, 1000, 8.0, math.exp(-0.5), 256, 1.0, 1, 1e-05, 6.4821735352511825),
    ("skellam", 2e-05, 0.003, 100, 0.03, math.exp(-0.5), 2**20, 100 / 3400, 1500, 1 / 3400**2, 12.658619815977094),
    ("skellam", 0.002, 0.0012, 100, 0.03, math.exp(-0.5), 1024, 1.0, 20, 1e-05, 312.3488533260727),
    ("skellam", 0.001, 0.3, 10, 1.0, 0.0, 4096, 1.0, 1, 1e-05, 5.397442718745749),
]


@pytest.mark.parametrize("case", AUTHORS_EPSILONS, ids=lambda c: f"{c[0]}-n{c[3]}-d{c[6]}-q{c[7]:.3g}-T{c[8]}")
def test_epsilon_matches_the_papers_reference_code(case):
    """Our whole accounting path (rounded sensitivity, curve, subsampling, composition, conversion) gives the authors' epsilon.

    The cases cover sampled and unsampled rounds, a rounding-dominated scale, and small per-client noise
    (local sd 0.6 and 0.8 ring units) where DDG's tau term decides epsilon; a wrong constant in tau,
    the rounding bound, the Skellam correction or the subsampling sum moves epsilon far beyond 1e-12.
    """
    from fractions import Fraction

    from lepton_secagg.dp.mechanism import DdpEncoding

    mechanism, gamma, local_sd, n, clip, beta, dim, q, steps, delta, expected = case
    orders = tuple(range(2, 129)) + (256,)
    enc = DdpEncoding(mechanism, length=dim, bits=32, clip=clip, scale=1 / gamma, noise=Fraction((local_sd / gamma) ** 2), beta=beta)
    ours = accounting.epsilon_from_rdp(steps * accounting.round_rdp(enc, n, orders, q), delta, orders)
    assert math.isclose(ours, expected, rel_tol=1e-12)
