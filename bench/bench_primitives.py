"""pytest-benchmark of Shamir sharing at t = n/2 + 1.

Run with ``pytest bench/bench_primitives.py``.  "cached" reconstructions reuse
the Lagrange coefficients (and the consistency matrix) of an index set seen
before, as the server does for every secret after the first of a round;
"fresh" ones clear the caches first.
"""
from __future__ import annotations

import random

import pytest

from lepton_secagg.hazmat import shamir

SECRET = bytes(range(32))
SIZES = [100, 1000]


def _clear_caches():
    shamir._lagrange_at_zero.cache_clear()
    shamir._extension.cache_clear()


@pytest.mark.parametrize("n", SIZES)
def test_split(benchmark, n):
    benchmark(shamir.split, SECRET, n, n // 2 + 1)


@pytest.mark.parametrize("n", SIZES)
def test_split_many_two_secrets(benchmark, n):
    # a client shares two secrets per round (its mask seed and its key)
    benchmark(shamir.split_many, [SECRET, SECRET], n, n // 2 + 1)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("received", ["t", "n"])
@pytest.mark.parametrize("cache", ["fresh", "cached"])
def test_reconstruct(benchmark, n, received, cache):
    t = n // 2 + 1
    shares = shamir.split(SECRET, n, t)
    subset = random.Random(n).sample(shares, t if received == "t" else n)
    shamir.reconstruct(subset, t)
    setup = _clear_caches if cache == "fresh" else None
    result = benchmark.pedantic(shamir.reconstruct, (subset, t), setup=setup, rounds=30, warmup_rounds=1)
    assert result == SECRET


@pytest.mark.parametrize("n", SIZES)
def test_reconstruct_many_100_secrets_cached(benchmark, n):
    t = n // 2 + 1
    batches = shamir.split_many([SECRET] * 100, n, t)
    chosen = sorted(random.Random(0).sample(range(n), t))
    lists = [[shares[i] for i in chosen] for shares in batches]
    shamir.reconstruct_many(lists, t)
    assert benchmark(shamir.reconstruct_many, lists, t) == [SECRET] * 100
