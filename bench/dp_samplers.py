"""Cost of the exact DP samplers against numpy's (inexact, non-secret) ones, same run.

Usage:
    .venv/bin/python bench/dp_samplers.py [--size 204800]

Prints microseconds per draw for the library's discrete Gaussian, Poisson
(small and large mean) and Skellam samplers (secret bytes from a
DeterministicRng, AES-128-CTR), the same for numpy's normal/poisson, and
the ratio.  numpy is the baseline only: it has no exact discrete Gaussian and
draws from a generator the server could predict.
"""
from __future__ import annotations

import argparse
import time
from fractions import Fraction

import numpy as np

from lepton_secagg.dp import samplers
from lepton_secagg.hazmat.rng import DeterministicRng


def per_draw(fn, size):
    t = time.perf_counter()
    fn(size)
    return (time.perf_counter() - t) / size * 1e6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=200 * 1024)
    args = ap.parse_args(argv)
    rng, ref = DeterministicRng("bench"), np.random.default_rng(0)
    cases = [
        ("discrete Gaussian, sigma^2 = 2180", lambda n: samplers.discrete_gaussian(rng, 2180, n), lambda n: ref.normal(0, 46.7, n)),
        ("discrete Gaussian, sigma^2 = 2^24", lambda n: samplers.discrete_gaussian(rng, 1 << 24, n), lambda n: ref.normal(0, 4096, n)),
        ("Poisson, lambda = 7/2", lambda n: samplers.poisson(rng, Fraction(7, 2), n), lambda n: ref.poisson(3.5, n)),
        ("Poisson, lambda = 2^23", lambda n: samplers.poisson(rng, 1 << 23, n), lambda n: ref.poisson(1 << 23, n)),
        ("Skellam, mu = 2^23", lambda n: samplers.skellam(rng, 1 << 23, n), lambda n: ref.poisson(1 << 23, n) - ref.poisson(1 << 23, n)),
    ]
    print(f"{'sampler':36s} {'exact us/draw':>14s} {'numpy us/draw':>14s} {'ratio':>7s}")
    for name, ours, theirs in cases:
        a, b = per_draw(ours, args.size), per_draw(theirs, args.size)
        print(f"{name:36s} {a:14.3f} {b:14.4f} {a / b:7.0f}")


if __name__ == "__main__":
    main()
