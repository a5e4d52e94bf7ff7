"""End to end: exact sums and included sets under random dropouts, or TooFewSurvivors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lepton_secagg as ls
from lepton_secagg.testing import simulate

ROUNDS = {
    "semi-honest": ["advertise_keys", "share_keys", "masked_input", "unmasking"],
    "active": ["advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking"],
}
NOT_IN_SUM = {"advertise_keys", "share_keys", "masked_input"}


def random_inputs(cfg, seed):
    rs = np.random.default_rng(seed)
    top = (1 << cfg.bits) - 1
    return [rs.integers(0, top, cfg.vector_length, dtype=np.uint64, endpoint=True).astype(cfg.dtype) for _ in range(cfg.num_clients)]


def plain_sum(cfg, inputs, ids):
    acc = np.zeros(cfg.vector_length, dtype=object)
    for i in ids:
        acc += inputs[i].astype(object)
    return (acc % (1 << cfg.bits)).astype(np.uint64)


def predicted_full_graph(cfg, dropouts):
    """Included set for the full graph, or None when the session must abort."""
    live = set(range(cfg.num_clients))
    for rnd in ROUNDS[cfg.mode]:
        live -= {c for c, r in dropouts.items() if r == rnd}
        if len(live) < cfg.threshold:
            return None
    return sorted(c for c in range(cfg.num_clients) if dropouts.get(c) not in NOT_IN_SUM)


@st.composite
def sessions(draw, sparse=False):
    mode = draw(st.sampled_from(["semi-honest", "active"]))
    bits = draw(st.sampled_from([16, 32, 48, 64]))
    prg = draw(st.sampled_from(["aes128ctr", "chacha20"]))
    if sparse:
        n = draw(st.integers(8, 16))
        k = draw(st.sampled_from([k for k in (4, 6) if k < n - 2]))
        s = k + 1
        t = s // 2 + 1 if mode == "semi-honest" else s // 2 + 1
        cfg = ls.Config(num_clients=n, vector_length=draw(st.integers(1, 40)), threshold=t, neighbors=k, mode=mode, bits=bits, prg=prg, corrupt_fraction=0.0)
    else:
        n = draw(st.integers(3, 9))
        t = draw(st.integers(n // 2 + 1, n))
        cfg = ls.Config(num_clients=n, vector_length=draw(st.integers(1, 40)), threshold=t, mode=mode, corrupt_fraction=0.0, bits=bits, prg=prg)
    ids = draw(st.lists(st.integers(0, cfg.num_clients - 1), unique=True, max_size=cfg.num_clients))
    dropouts = {c: draw(st.sampled_from(ROUNDS[mode])) for c in ids}
    return cfg, dropouts, draw(st.integers(0, 2**32))


@given(sessions())
def test_full_graph_exact_sum_or_too_few(case):
    cfg, dropouts, seed = case
    inputs = random_inputs(cfg, seed)
    expected = predicted_full_graph(cfg, dropouts)
    if expected is None:
        with pytest.raises(ls.TooFewSurvivors):
            simulate(cfg, inputs, dropouts, seed=seed)
        return
    res = simulate(cfg, inputs, dropouts, seed=seed)
    assert list(res.included) == expected
    assert res.sum.dtype == cfg.dtype
    assert np.array_equal(res.sum.astype(np.uint64), plain_sum(cfg, inputs, expected))


@given(sessions(sparse=True))
def test_sparse_graph_exact_sum_or_too_few(case):
    cfg, dropouts, seed = case
    inputs = random_inputs(cfg, seed)
    try:
        res = simulate(cfg, inputs, dropouts, seed=seed)
    except ls.TooFewSurvivors as exc:
        assert exc.survivors < exc.threshold
        return
    # Included: never a client that stopped before sending its masked input.
    assert not any(dropouts.get(c) in NOT_IN_SUM for c in res.included)
    # A client that sent its masked input is always included.
    assert all(c in res.included for c in range(cfg.num_clients) if c not in dropouts or dropouts[c] not in NOT_IN_SUM
               if c not in res.dropped.get("advertise_keys", ()) + res.dropped.get("share_keys", ()))
    assert np.array_equal(res.sum.astype(np.uint64), plain_sum(cfg, inputs, res.included))


def test_no_dropouts_sum_everyone():
    cfg = ls.Config(num_clients=20, vector_length=1000, threshold=11)
    inputs = random_inputs(cfg, 5)
    res = simulate(cfg, inputs, seed=5)
    assert res.included == tuple(range(20))
    assert np.array_equal(res.sum.astype(np.uint64), plain_sum(cfg, inputs, range(20)))


def test_design_example_dropouts():
    cfg = ls.Config(num_clients=20, vector_length=100, threshold=11)
    inputs = random_inputs(cfg, 1)
    res = ls.testing.simulate(cfg, inputs, dropouts={4: "share_keys", 7: "unmasking"}, seed=1)
    assert 4 not in res.included and 7 in res.included
    assert np.array_equal(res.sum.astype(np.uint64), plain_sum(cfg, inputs, res.included))


def test_secagg_plus_config_runs():
    cfg = ls.Config.secagg_plus(num_clients=120, vector_length=64, corrupt_fraction=0.05, dropout_fraction=0.1)
    assert cfg.neighbors is not None and cfg.neighbors < 119
    inputs = random_inputs(cfg, 3)
    drops = {c: ROUNDS["semi-honest"][c % 4] for c in range(0, 120, 13)}
    res = simulate(cfg, inputs, drops, seed=3)
    assert np.array_equal(res.sum.astype(np.uint64), plain_sum(cfg, inputs, res.included))
    assert set(res.included) == {c for c in range(120) if drops.get(c) not in NOT_IN_SUM}


@pytest.mark.parametrize("rnd", ["advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking"])
def test_too_many_dropouts_in_each_round_abort(rnd):
    cfg = ls.Config(num_clients=7, vector_length=10, threshold=5, mode="active", corrupt_fraction=0.0)
    inputs = random_inputs(cfg, 2)
    with pytest.raises(ls.TooFewSurvivors) as info:
        simulate(cfg, inputs, {0: rnd, 1: rnd, 2: rnd}, seed=2)
    assert info.value.threshold == 5 and info.value.survivors == 4


def test_deterministic_seed_reproduces_transcript():
    cfg = ls.Config(num_clients=5, vector_length=8, threshold=3)
    inputs = random_inputs(cfg, 9)
    t1, t2 = [], []
    simulate(cfg, inputs, {1: "masked_input"}, seed=42, transcript=t1)
    simulate(cfg, inputs, {1: "masked_input"}, seed=42, transcript=t2)
    assert t1 == t2 and len(t1) > 10
    t3 = []
    simulate(cfg, inputs, {1: "masked_input"}, seed=43, transcript=t3)
    assert [m for *_, m in t3] != [m for *_, m in t1]


def test_masked_inputs_hide_the_input():
    """The server sees y = x + masks: for an all-zero input it must not be zero."""
    cfg = ls.Config(num_clients=4, vector_length=256, threshold=3)
    transcript = []
    simulate(cfg, [np.zeros(256, dtype=np.uint32)] * 4, seed=1, transcript=transcript)
    masked = [ls.decode(m, cfg) for r, d, _, m in transcript if r == "masked_input" and d == "up"]
    assert len(masked) == 4
    for msg in masked:
        assert np.count_nonzero(msg.vector) > 250


def test_simulate_bad_arguments():
    cfg = ls.Config(num_clients=4, vector_length=3, threshold=3)
    ok = [np.zeros(3, dtype=np.uint32)] * 4
    with pytest.raises(ValueError):
        simulate(cfg, ok[:3])
    with pytest.raises(ValueError):
        simulate(cfg, ok, {9: "share_keys"})
    with pytest.raises(ValueError):
        simulate(cfg, ok, {1: "consistency_check"})
    with pytest.raises(ValueError):
        simulate(cfg, [np.full(3, 2**32, dtype=np.uint64)] * 4)
    with pytest.raises(TypeError):
        simulate("cfg", ok)


@settings(max_examples=10)
@given(st.integers(0, 2**32))
def test_bits_boundary_values_wrap_correctly(seed):
    cfg = ls.Config(num_clients=3, vector_length=5, threshold=2, bits=64)
    inputs = [np.full(5, 2**64 - 1, dtype=np.uint64)] * 3
    res = simulate(cfg, inputs, seed=seed)
    assert (res.sum == np.uint64(2**64 - 3)).all()
