"""Dropouts at every round, in every number: the exact sum of the expected clients, or TooFewSurvivors.

The matrix: for each mode (semi-honest, active), each graph (full: n = 7,
t = 4; SecAgg+: n = 14, k = 4, t = 3), each round of the mode and each
number d of clients dropping in that round, 0 <= d <= n - t + 1, the session
either produces exactly the sum of the inputs of the expected clients (those
that did not drop before their masked input was summed) or raises
``TooFewSurvivors``; never a wrong sum, never another error.  With the full
graph the outcome is fixed: a sum exactly when n - d >= t.  With SecAgg+ the
dropping clients are chosen twice, clustered around one client and spread
over the graph; the server may additionally prune clients whose live
neighbourhood fell below t before they masked, and these must be reported as
dropped.  Random mixed patterns across rounds follow (hypothesis).
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lepton_secagg as ls
from lepton_secagg._state import rounds_for
from lepton_secagg.testing import simulate

EARLY = ("advertise_keys", "share_keys", "masked_input")

GRAPHS = {
    "full": dict(num_clients=7, vector_length=5, threshold=4),
    "plus": dict(num_clients=14, vector_length=5, threshold=3, neighbors=4),
}


def make_cfg(graph: str, mode: str) -> ls.Config:
    return ls.Config(mode=mode, corrupt_fraction=0.0, **GRAPHS[graph])


def inputs_for(cfg: ls.Config, seed: int = 0) -> list[np.ndarray]:
    gen = np.random.default_rng(seed)
    return [gen.integers(0, 1 << 32, cfg.vector_length, dtype=np.uint64).astype(cfg.dtype) for _ in range(cfg.num_clients)]


def exact_sum(cfg, inputs, ids) -> list[int]:
    return [int(sum(int(inputs[c][j]) for c in ids) % (1 << cfg.bits)) for j in range(cfg.vector_length)]


def droppers(cfg: ls.Config, d: int, pattern: str) -> list[int]:
    """d client ids: 'spread' (a seeded sample) or 'clustered' (client 0's neighbourhood first)."""
    n = cfg.num_clients
    if pattern == "spread":
        return sorted(random.Random(f"{n}-{d}").sample(range(n), d))
    order = list(cfg.graph.neighbors(0)) + [c for c in range(n) if c not in cfg.graph.neighbors(0)]
    return sorted(order[:d])


def check(cfg: ls.Config, dropouts: dict, seed: int = 3) -> str:
    """Run one session; returns "sum" or "too-few"; fails on anything else."""
    inputs = inputs_for(cfg, seed)
    try:
        res = simulate(cfg, inputs, dropouts=dropouts, seed=seed)
    except ls.TooFewSurvivors as exc:
        assert exc.survivors < exc.threshold == cfg.threshold
        return "too-few"
    expected = {c for c in range(cfg.num_clients) if dropouts.get(c) not in EARLY}
    included = set(res.included)
    assert included <= expected, f"clients {sorted(included - expected)} are in the sum although they dropped early"
    pruned = expected - included
    if pruned:
        # only the server's pruning (too few live neighbours before masking) may remove more clients
        assert cfg.neighbors is not None, f"full graph: clients {sorted(pruned)} are missing from the sum"
        reported = {c for rnd in ("advertise_keys", "share_keys") for c in res.dropped.get(rnd, ())}
        assert pruned <= reported, f"clients {sorted(pruned)} vanished from the sum without being reported"
    assert [int(v) for v in res.sum] == exact_sum(cfg, inputs, sorted(included)), "a wrong sum"
    return "sum"


def matrix():
    cases = []
    for mode in ("semi-honest", "active"):
        for graph in GRAPHS:
            cfg = make_cfg(graph, mode)
            n, t = cfg.num_clients, cfg.threshold
            for rnd in rounds_for(mode):
                for d in range(0, n - t + 2):
                    for pattern in (("spread",) if graph == "full" else ("spread", "clustered")):
                        cases.append(pytest.param(graph, mode, rnd, d, pattern, id=f"{graph}-{mode}-{rnd}-d{d}-{pattern}"))
    return cases


CASES = matrix()


@pytest.mark.parametrize("graph,mode,round_name,d,pattern", CASES)
def test_dropouts_in_one_round(graph, mode, round_name, d, pattern):
    cfg = make_cfg(graph, mode)
    ids = droppers(cfg, d, pattern)
    outcome = check(cfg, {c: round_name for c in ids})
    if graph == "full":
        assert outcome == ("sum" if cfg.num_clients - d >= cfg.threshold else "too-few")
    elif d == 0:
        assert outcome == "sum"
    elif d > cfg.num_clients - cfg.threshold:
        assert outcome == "too-few"


def test_the_matrix_is_complete():
    # full: (4 + 5 rounds) x 5 values of d; plus: (4 + 5 rounds) x 13 values of d x 2 patterns
    assert len(CASES) == 9 * 5 + 9 * 13 * 2 == 279


def dropout_patterns(graph: str, mode: str):
    n = GRAPHS[graph]["num_clients"]
    rounds = rounds_for(mode)
    return st.dictionaries(st.integers(0, n - 1), st.sampled_from(rounds), max_size=n)


@pytest.mark.parametrize("mode", ["semi-honest", "active"])
@settings(max_examples=25)
@given(data=st.data())
def test_random_mixed_patterns_full_graph(mode, data):
    cfg = make_cfg("full", mode)
    dropouts = data.draw(dropout_patterns("full", mode))
    outcome = check(cfg, dropouts)
    # full graph: every round closes with the clients that have not dropped so far
    assert outcome == ("sum" if cfg.num_clients - len(dropouts) >= cfg.threshold else "too-few")


@pytest.mark.parametrize("mode", ["semi-honest", "active"])
@settings(max_examples=25)
@given(data=st.data())
def test_random_mixed_patterns_secagg_plus(mode, data):
    cfg = make_cfg("plus", mode)
    dropouts = data.draw(dropout_patterns("plus", mode))
    outcome = check(cfg, dropouts)
    if not dropouts:
        assert outcome == "sum"
