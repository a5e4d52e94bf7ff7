"""pytest-benchmark: whole in-memory sessions (run: .venv/bin/python -m pytest bench/bench_protocol.py).

The kernel backend is the one selected at import (set LEPTON_SECAGG_PUREPYTHON=1
for the numpy kernel); ``bench/protocol_table.py`` prints the full grid.
"""
from __future__ import annotations

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg.testing import simulate


@pytest.mark.parametrize("n,m,dropout", [(10, 10_000, 0.0), (50, 100_000, 0.1), (100, 10_000, 0.3)])
def test_full_graph_session(benchmark, n, m, dropout):
    cfg = ls.Config(num_clients=n, vector_length=m)
    rs = np.random.default_rng(0)
    inputs = [rs.integers(0, 1 << 20, m, dtype=np.uint32) for _ in range(n)]
    drops = {c: "masked_input" for c in range(int(dropout * n))}
    res = benchmark.pedantic(simulate, args=(cfg, inputs, drops), kwargs={"seed": 1}, rounds=1, iterations=1)
    assert len(res.included) == n - len(drops)


@pytest.mark.parametrize("n,m", [(200, 10_000)])
def test_secagg_plus_session(benchmark, n, m):
    cfg = ls.Config.secagg_plus(num_clients=n, vector_length=m, corrupt_fraction=0.05, dropout_fraction=0.1)
    rs = np.random.default_rng(0)
    inputs = [rs.integers(0, 1 << 20, m, dtype=np.uint32) for _ in range(n)]
    drops = {c: "masked_input" for c in range(0, n, 10)}
    res = benchmark.pedantic(simulate, args=(cfg, inputs, drops), kwargs={"seed": 1}, rounds=1, iterations=1)
    assert len(res.included) == n - len(drops)
