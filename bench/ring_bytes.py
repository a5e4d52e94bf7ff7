"""Masked-input bytes per client for rings of b bits, against the limit ceil(b m / 8).

Usage: .venv/bin/python bench/ring_bytes.py [--length 100000] [--bits 8,12,16,20,24,31,32,40,48,64]

Runs ``testing.simulate`` (3 clients, the wire codec included) once per b on
random inputs below 2^b, checks the sum against the plaintext sum mod 2^b,
and prints a markdown table of the masked-input bytes each client sent.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import lepton_secagg as ls
from lepton_secagg.testing import simulate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=100_000)
    ap.add_argument("--bits", default="8,12,16,20,24,31,32,40,48,64")
    args = ap.parse_args(argv)
    m, n = args.length, 3
    print("| b | ceil(b·m/8) | masked-input bytes per client | over the limit |")
    print("|---|---|---|---|")
    for b in (int(x) for x in args.bits.split(",")):
        cfg = ls.Config(num_clients=n, vector_length=m, threshold=2, bits=b)
        rs = np.random.default_rng(b)
        inputs = [rs.integers(0, 1 << b, m, dtype=np.uint64).astype(cfg.dtype) for _ in range(n)]
        res = simulate(cfg, inputs, seed=b)
        expected = sum(x.astype(object) for x in inputs) % (1 << b)
        if [int(v) for v in res.sum] != [int(v) for v in expected]:
            raise SystemExit(f"b = {b}: the sum is wrong")
        per = res.bytes_up["masked_input"] / n
        limit = -(-b * m // 8)
        print(f"| {b} | {limit} | {per:.0f} | +{per - limit:.0f} B ({100 * (per - limit) / limit:.3f} %) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
