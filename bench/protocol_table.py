"""Whole-session benchmark of the in-memory protocol: prints a table.

Usage:
    .venv/bin/python bench/protocol_table.py [--quick] [--clients 10,100,500]
        [--lengths 10000,1000000] [--dropouts 0,0.1,0.3] [--graphs full,plus] [--json]

Each cell runs ``lepton_secagg.testing.simulate`` once (every client and the
server in this process, one after the other, through the wire codec) with
random inputs and a random dropout pattern (dropouts spread over the rounds),
checks the sum, and reports: total seconds, seconds per client in the
masking round, server unmasking seconds, bytes sent per client.  The kernel
backend in use is printed first.  ``--quick`` runs a small grid for smoke
tests.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import lepton_secagg as ls
from lepton_secagg import _kernels
from lepton_secagg.testing import simulate

ROUNDS = ("advertise_keys", "share_keys", "masked_input", "unmasking")


def make_config(n, m, graph):
    if graph == "full":
        return ls.Config(num_clients=n, vector_length=m)
    return ls.Config.secagg_plus(num_clients=n, vector_length=m, corrupt_fraction=0.05, dropout_fraction=0.1)


def run_cell(n, m, dropout, graph, seed=1):
    cfg = make_config(n, m, graph)
    rs = np.random.default_rng(seed)
    inputs = [rs.integers(0, 1 << 20, m, dtype=np.uint32) for _ in range(n)]
    victims = rs.choice(n, size=int(round(dropout * n)), replace=False)
    dropouts = {int(c): ROUNDS[i % len(ROUNDS)] for i, c in enumerate(victims)}
    started = time.perf_counter()
    res = simulate(cfg, inputs, dropouts, seed=seed)
    total = time.perf_counter() - started
    expected = np.zeros(m, dtype=np.uint32)
    for c in res.included:
        expected += inputs[c]
    ok = bool(np.array_equal(res.sum, expected))
    masked = n - sum(1 for r in dropouts.values() if r in ROUNDS[:3])
    return {
        "clients": n,
        "length": m,
        "dropout": dropout,
        "graph": "full" if cfg.neighbors is None else f"k={cfg.neighbors}",
        "threshold": cfg.threshold,
        "ok": ok,
        "seconds": round(total, 4),
        "client_mask_ms": round(1000 * res.seconds["masked_input"] / max(1, masked), 3),
        "server_unmask_s": round(res.seconds["unmasking"], 4),
        "bytes_per_client": int(sum(res.bytes_up.values()) / n + sum(res.bytes_down.values()) / n),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--clients", default="10,100,500")
    ap.add_argument("--lengths", default="10000,1000000")
    ap.add_argument("--dropouts", default="0,0.1,0.3")
    ap.add_argument("--graphs", default="full,plus")
    ap.add_argument("--skip-over", type=float, default=2e11,
                    help="skip full-graph cells whose client keystream n*n*m*4 exceeds this many bytes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.clients, args.lengths, args.dropouts = "10,50", "1000", "0,0.1"
    print(f"# kernel backend: {_kernels.BACKEND}", file=sys.stderr)
    rows = []
    header = f"{'n':>5} {'m':>8} {'drop':>5} {'graph':>6} {'t':>4} {'ok':>3} {'total s':>9} {'mask ms/cl':>10} {'unmask s':>9} {'bytes/cl':>11}"
    print(header)
    for graph in args.graphs.split(","):
        for n in map(int, args.clients.split(",")):
            for m in map(int, map(float, args.lengths.split(","))):
                if graph == "full" and n * n * m * 4 > args.skip_over:
                    print(f"{n:>5} {m:>8} {'':>5} {'full':>6}  skipped (client keystream {n * n * m * 4 / 1e9:.0f} GB)")
                    continue
                for d in map(float, args.dropouts.split(",")):
                    row = run_cell(n, m, d, graph)
                    rows.append(row)
                    print(f"{n:>5} {m:>8} {d:>5} {row['graph']:>6} {row['threshold']:>4} {'yes' if row['ok'] else 'NO':>3} "
                          f"{row['seconds']:>9.3f} {row['client_mask_ms']:>10.2f} {row['server_unmask_s']:>9.3f} {row['bytes_per_client']:>11}",
                          flush=True)
    if args.json:
        print(json.dumps({"backend": _kernels.BACKEND, "rows": rows}))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
