"""Prio3 client and aggregator cost for SumVec and the bounded-L2 circuit, against a SecAgg round.

Run: python bench/mpc_prio3.py [--lengths 1000 10000] [--clients 10]

For each circuit and vector length it times, for one report: the client
(``shard``: encode, helper-share expansion, FLP proof) and the two
aggregators (``verify_init`` each, then ``verifier_shares_to_message``), and
splits the client time into encode / XOF / prove.  The baseline, measured in
the same run, is one SecAgg round (``testing.simulate``, full graph,
``--clients`` clients, same vector length) divided by the number of clients:
the ratio column says how many SecAgg client-rounds one Prio3 report costs.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import lepton_secagg as ls
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.mpc import prio3_sum_vec
from lepton_secagg.mpc.l2 import norm_bound_sq, prio3_bounded_l2_vec_sum

CTX = b"bench"


def clock(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def secagg_per_client(length: int, clients: int) -> float:
    cfg = ls.Config(num_clients=clients, vector_length=length)
    data = np.random.default_rng(0)  # benchmark inputs, not secrets
    inputs = [data.integers(0, 2**16, length, dtype=np.uint32) for _ in range(clients)]
    seconds, _ = clock(ls.testing.simulate, cfg, inputs, None, 1)
    return seconds / clients


def one_report(name: str, vdaf, measurement) -> dict:
    rng = DeterministicRng(name)
    key = rng.bytes(32)
    nonce, rand = rng.bytes(16), rng.bytes(vdaf.RAND_SIZE)
    t_shard, (public, shares) = clock(vdaf.shard, CTX, measurement, nonce, rand)
    t_init, results = clock(lambda: [vdaf.verify_init(key, CTX, a, nonce, public, shares[a]) for a in range(2)])
    t_decide, _ = clock(vdaf.verifier_shares_to_message, CTX, [share for _, share in results])
    # Where the client's time goes (the same calls shard makes, timed one by one).
    circuit, flp = vdaf.flp.circuit, vdaf.flp
    t_encode, meas = clock(circuit.encode, measurement)
    t_xof, _ = clock(vdaf._helper_meas_share, CTX, 1, rand[:32])
    t_xof2, _ = clock(vdaf._helper_proofs_share, CTX, 1, rand[:32])
    prove_rand = vdaf.field.vec(range(flp.PROVE_RAND_LEN))
    joint_rand = vdaf.field.vec(range(1, flp.JOINT_RAND_LEN + 1))
    t_prove, _ = clock(flp.prove, meas, prove_rand, joint_rand)
    return dict(shard=t_shard, verify=t_init + t_decide, encode=t_encode, xof=t_xof + t_xof2, prove=t_prove,
                upload=len(public) + sum(len(s) for s in shares), meas_len=flp.MEAS_LEN, proof_len=flp.PROOF_LEN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args()
    data = np.random.default_rng(1)
    print(f"{'circuit':<24}{'length':>8}{'meas':>9}{'shard s':>9}{'verify s':>10}{'reports/s':>10}"
          f"{'encode':>8}{'xof':>7}{'prove':>7}{'upload B':>11}{'secagg/cl s':>12}{'ratio':>7}")
    for length in args.lengths:
        base = secagg_per_client(length, args.clients)
        chunk = max(1, int((length * 8) ** 0.5))
        sumvec = prio3_sum_vec(2, length, 255, chunk)
        l2 = prio3_bounded_l2_vec_sum(2, length, 16, norm_bound_sq(1.0, 16))
        update = data.normal(size=length)
        update *= 0.9 / np.linalg.norm(update)
        cases = [(f"SumVec(max=255)", sumvec, [int(x) for x in data.integers(0, 256, length)]),
                 (f"BoundedL2VecSum(16 bit)", l2, l2.flp.circuit.quantise(update))]
        for name, vdaf, measurement in cases:
            r = one_report(f"{name}{length}", vdaf, measurement)
            print(f"{name:<24}{length:>8}{r['meas_len']:>9}{r['shard']:>9.3f}{r['verify']:>10.3f}"
                  f"{1 / r['verify']:>10.2f}{r['encode'] / r['shard']:>8.0%}{r['xof'] / r['shard']:>7.0%}"
                  f"{r['prove'] / r['shard']:>7.0%}{r['upload']:>11}{base:>12.4f}{r['shard'] / base:>7.0f}")


if __name__ == "__main__":
    main()
