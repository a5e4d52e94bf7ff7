"""pytest-benchmark for the masking kernels (C and numpy backends).

Run:  .venv/bin/python -m pytest bench/bench_kernels.py --benchmark-only
      (add  -k "m10000 or m1000000"  to skip the 1e7 cases)

One call = 4 keys (mixed signs) applied to a vector of m elements.
"""
from __future__ import annotations

import numpy as np
import pytest

from lepton_secagg._kernels import _native

try:
    from lepton_secagg._kernels import _speedups
except ImportError:
    _speedups = None

KEYS = 4
SUITE_KEY = {"aes128ctr": 16, "chacha20": 32}


def _backends():
    yield pytest.param(_native.add_masks, id="python")
    yield pytest.param(
        _speedups.add_masks if _speedups else None,
        id="c",
        marks=pytest.mark.skipif(_speedups is None, reason="C extension not built"),
    )


@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("backend", list(_backends()))
@pytest.mark.parametrize("dtype", [np.uint32, np.uint64], ids=["u32", "u64"])
@pytest.mark.parametrize("suite", sorted(SUITE_KEY))
@pytest.mark.parametrize("m", [10_000, 1_000_000, 10_000_000], ids=lambda m: f"m{m}")
def test_add_masks(benchmark, m, suite, dtype, backend, threads):
    if backend is _native.add_masks and threads > 1:
        pytest.skip("the numpy kernel ignores threads")
    rng = np.random.default_rng(0)
    keys = [rng.bytes(SUITE_KEY[suite]) for _ in range(KEYS)]
    signs = [1, -1] * (KEYS // 2)
    vector = np.zeros(m, dtype=dtype)
    benchmark.extra_info["keystream_bytes"] = KEYS * m * vector.itemsize
    rounds = 3 if (m >= 10_000_000 and backend is _native.add_masks) else None
    if rounds:
        benchmark.pedantic(backend, args=(vector, keys, signs, suite, 0, threads), rounds=rounds, iterations=1)
    else:
        benchmark(backend, vector, keys, signs, suite, 0, threads)
