"""Distributed-DP encoding: rotation, rounding, calibration, and whole SecAgg sessions."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import hadamard

import lepton_secagg as ls
from lepton_secagg.dp import rotation, rounding
from lepton_secagg.dp.mechanism import DdpEncoding, decode, encode
from lepton_secagg.hazmat.rng import DeterministicRng

SEED = bytes(range(32))


def test_fwht_matches_the_hadamard_matrix():
    x = np.random.default_rng(0).normal(size=(3, 64))
    assert np.allclose(rotation.fwht(x), x @ hadamard(64).T)
    with pytest.raises(ValueError, match="power-of-two"):
        rotation.fwht(np.ones(6))


def test_rotation_is_orthogonal_and_inverted_exactly():
    x = np.random.default_rng(1).normal(size=650)
    y = rotation.rotate(x, SEED)
    assert y.shape == (1024,)
    assert math.isclose(np.linalg.norm(y), np.linalg.norm(x), rel_tol=1e-12)
    assert np.allclose(rotation.unrotate(y, SEED, 650), x, atol=1e-12)
    # A spike is flattened: every rotated coordinate is 1/sqrt(d) in magnitude.
    spike = np.zeros(1000)
    spike[7] = 1.0
    assert np.allclose(np.abs(rotation.rotate(spike, SEED)), 1 / 32)


def test_rotation_signs_come_from_the_seed():
    a = rotation.rotation_signs(SEED, 256)
    assert set(np.unique(a)) == {-1.0, 1.0}
    assert 96 < (a > 0).sum() < 160
    assert np.array_equal(a, rotation.rotation_signs(SEED, 256))
    assert not np.array_equal(a, rotation.rotation_signs(bytes(32), 256))
    assert np.array_equal(rotation.rotation_signs(SEED, 1000)[:256], a)  # a prefix of one stream


def test_randomized_rounding_is_unbiased_and_conditional_rounding_keeps_the_bound():
    rng = DeterministicRng("round")
    y = np.array([0.25, -1.5, 3.9, 2.0])
    draws = np.array([rounding.randomized_round(y, rng) for _ in range(4000)])
    assert np.all(draws - np.floor(y) >= 0) and np.all(draws - np.floor(y) <= 1)
    assert np.allclose(draws.mean(axis=0), y, atol=4 * 0.5 / math.sqrt(4000))
    assert np.all(draws[:, 3] == 2)
    v = np.random.default_rng(2).normal(size=256) * 3
    bound = rounding.rounded_l2_bound(float(np.linalg.norm(v)), math.exp(-0.5), 256)
    # DDG Theorem 23 by hand for this norm: sqrt(l2^2 + d/4 + sqrt(2 ln(1/beta)) (l2 + sqrt(d)/2)).
    l2 = float(np.linalg.norm(v))
    assert math.isclose(bound, math.sqrt(l2**2 + 64 + 1.0 * (l2 + 8)))
    for _ in range(50):
        assert np.linalg.norm(rounding.conditional_round(v, bound, rng)) <= bound
    with pytest.raises(ls.SecAggError, match="conditional rounding"):
        rounding.conditional_round(np.full(16, 0.5), 1.0, rng)


def test_calibration_fills_the_ring_and_refuses_too_few_bits():
    enc = DdpEncoding.calibrate("gaussian", length=100, bits=16, clip=2.0, noise_multiplier=1.0, clients=50, k_stddevs=3)

    def spread(scale):
        return 3 * math.sqrt((scale * 2.0 * 50) ** 2 / 128 + (0.25 + float(enc.noise)) * 50)

    assert spread(enc.scale) <= 2**15
    assert spread(enc.scale * 1.01) > 2**15  # the largest scale that fits
    assert math.isclose(float(enc.noise) * 50, enc.sensitivity**2, rel_tol=1e-3)
    fewer = DdpEncoding.calibrate("gaussian", length=100, bits=16, clip=2.0, noise_multiplier=1.0, clients=50, min_clients=25)
    assert float(fewer.noise) * 25 >= fewer.sensitivity**2  # enough noise when only 25 survive
    # Wide rings stop growing the scale once a client's noise reaches 2^24 ring units.
    wide = [DdpEncoding.calibrate("gaussian", length=100, bits=b, clip=2.0, noise_multiplier=1.0, clients=50) for b in (40, 48)]
    assert wide[0].scale == wide[1].scale and 2**23 < float(wide[0].noise) <= 2**24
    with pytest.raises(ValueError, match="bits = 8"):
        DdpEncoding.calibrate("gaussian", length=1 << 16, bits=8, clip=1.0, noise_multiplier=1.0, clients=10**6)
    with pytest.raises(ValueError, match="mechanism"):
        DdpEncoding("laplace", 10, 16, 1.0, 1.0, 1)
    with pytest.raises(ValueError, match="bits"):
        DdpEncoding("gaussian", 10, 7, 1.0, 1.0, 1)


def test_encode_reports_clipping_and_checks_its_input():
    enc = DdpEncoding.calibrate("gaussian", length=10, bits=16, clip=1.0, noise_multiplier=0.1, clients=4)
    rng = DeterministicRng(3)
    vec, clipped = encode(enc, np.full(10, 1.0), SEED, rng)
    assert clipped and vec.shape == (16,) and vec.dtype == np.uint32 and int(vec.max()) < 2**16
    assert not encode(enc, np.full(10, 0.1), SEED, rng)[1]
    with pytest.raises(ValueError, match="shape"):
        encode(enc, np.ones(11), SEED, rng)
    with pytest.raises(ValueError, match="NaN"):
        encode(enc, np.full(10, np.nan), SEED, rng)


CASES = [("gaussian", b) for b in (10, 14, 16, 24, 40)] + [("skellam", 10), ("skellam", 12)]


@pytest.mark.parametrize("mechanism,bits", CASES)
def test_session_decodes_within_the_predicted_error(mechanism, bits):
    """A SecAgg session over DDP-encoded updates: the decoded mean is the clipped mean plus noise of the predicted size."""
    n, m = 10, 60
    enc = DdpEncoding.calibrate(mechanism, length=m, bits=bits, clip=1.0, noise_multiplier=0.1, clients=n, min_clients=n - 1)
    data = np.random.default_rng(bits)
    updates = [data.normal(size=m) * 0.05 + 0.1 for _ in range(n)]
    vectors = [encode(enc, u, SEED, DeterministicRng(f"{mechanism}{bits}/{i}"))[0] for i, u in enumerate(updates)]
    cfg = ls.Config(num_clients=n, vector_length=enc.padded_length, bits=bits)
    res = ls.testing.simulate(cfg, vectors, dropouts={4: "masked_input"}, seed=bits)
    assert res.included == tuple(i for i in range(n) if i != 4)
    count = len(res.included)
    mean = decode(enc, res.sum, SEED) / count
    truth = np.mean([updates[i] for i in res.included], axis=0)
    predicted = math.sqrt(enc.expected_error_sq(count)) / count
    error = float(np.linalg.norm(mean - truth))
    # ||error||^2 sums d independent coordinates: it concentrates around its mean.
    assert 0.5 * predicted < error < 1.5 * predicted, (error, predicted)
    assert error < 0.3 * float(np.linalg.norm(truth))  # the signal survives the noise


def test_rotation_seed_and_signs_known_answer():
    """The public rotation stream, pinned (so another implementation can match it) and restated from its spec."""
    import hashlib

    from lepton_secagg.hazmat.prg import derive_prg_key, keystream

    seed = rotation.round_seed(b"lepton")
    assert seed.hex() == "019c81471b2fe3221e2e4bbaf3562d8650566cd2a18e59f51ce48a6b14a04810"
    assert seed == hashlib.sha256(b"lepton-secagg/v1/dp-rotation-seed" + b"lepton").digest()
    signs = rotation.rotation_signs(SEED, 32)
    assert "".join("+" if s > 0 else "-" for s in signs) == "----++--++--+---+----+-+-++-+--+"
    stream = keystream("aes128ctr", derive_prg_key(SEED, "aes128ctr", "dp-rotation"), 4)
    bits = [(byte >> i) & 1 for byte in stream for i in range(8)]  # least significant bit first; 1 = minus
    assert [1.0 - 2.0 * b for b in bits] == list(signs)
