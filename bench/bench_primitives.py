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


@pytest.mark.parametrize("form", ["Share", "tuple"])
def test_reconstruct_many_1000_secrets_differing_index_sets(benchmark, form):
    # The SecAgg+ server's unmasking round: each owner's shares are indexed by
    # position in its own neighbourhood (k + 1 = 41 here) and different holders
    # answer, so almost every list has its own index set; t = 19, 33 shares each.
    t, n, received = 19, 41, 33
    chooser = random.Random(1)
    secrets = [chooser.randbytes(32) for _ in range(1000)]
    lists = [chooser.sample(shares, received) for shares in shamir.split_many(secrets, n, t)]
    if form == "tuple":
        lists = [[(share.index, share.value) for share in shares] for shares in lists]
    assert len({tuple(sorted(s[0] if form == "tuple" else s.index for s in shares)) for shares in lists}) > 990
    assert benchmark(shamir.reconstruct_many, lists, t) == secrets


def _forged(shares, count, seed):
    """``shares`` with ``count`` of them given a wrong first limb, and their sorted indices."""
    chooser = random.Random(seed)
    shares = list(shares)
    victims = chooser.sample(range(len(shares)), count)
    for k in victims:
        value = shares[k].value
        limb = (int.from_bytes(value[2:6], "little") + chooser.randrange(1, shamir.PRIME)) % shamir.PRIME
        shares[k] = shamir.Share(shares[k].index, value[:2] + limb.to_bytes(4, "little") + value[6:])
    return shares, tuple(sorted(shares[k].index for k in victims))


@pytest.mark.parametrize(
    "n, t, received, errors",
    [(41, 19, 33, 0), (41, 19, 33, 1), (41, 19, 33, 7),
     (1000, 501, 1000, 0), (1000, 501, 1000, 1), (1000, 501, 1000, 10), (1000, 501, 1000, 249)],
)
def test_reconstruct_robust(benchmark, n, t, received, errors):
    # index set seen before (cached set-up), as for a server's second secret of a round
    shares = random.Random(n).sample(shamir.split(SECRET, n, t), received)
    given, wrong = _forged(shares, errors, seed=errors)
    assert shamir.reconstruct_robust(given, t) == (SECRET, wrong)
    result = benchmark.pedantic(shamir.reconstruct_robust, (given, t), rounds=20, warmup_rounds=1)
    assert result == (SECRET, wrong)


def test_reconstruct_many_robust_1000_secrets_differing_index_sets_10_corrupted(benchmark):
    # the unmasking round of test_reconstruct_many_1000_secrets_differing_index_sets,
    # with 10 lists holding one forged share each
    t, n, received = 19, 41, 33
    chooser = random.Random(1)
    secrets = [chooser.randbytes(32) for _ in range(1000)]
    lists = [chooser.sample(shares, received) for shares in shamir.split_many(secrets, n, t)]
    for k in range(0, 1000, 100):
        lists[k], _ = _forged(lists[k], 1, seed=k)
    recovered, wrong = benchmark(shamir.reconstruct_many_robust, lists, t)
    assert recovered == secrets and sum(map(len, wrong)) == 10
