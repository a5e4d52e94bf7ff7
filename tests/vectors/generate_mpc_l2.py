"""Regenerate our bounded-L2 Prio3 vectors in tests/vectors/mpc-l2/ (same JSON layout as the draft's).

Run: .venv/bin/python tests/vectors/generate_mpc_l2.py
Good vectors are honest runs; each bad_* vector is one report from a client
that cheats (an over-bound update with a false norm claim, or a scaled
digit), which must be refused at ``verifier_shares_to_message``.
tests/test_mpc_l2.py replays every file with the library and with the slow
reference in tests/mpc_reference.py.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np

from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.mpc.l2 import BoundedL2VecSum, prio3_bounded_l2_vec_sum

OUT = pathlib.Path(__file__).parent / "mpc-l2"
CTX = b"lepton-secagg l2 vectors"

CASES = {
    "0": dict(shares=2, length=4, bits=4, max_norm_sq=40, chunk_length=3, norm_chunk_length=2,
              measurements=[[1, -2, 3, -4], [3, 0, 0, -4]]),
    "1": dict(shares=3, length=5, bits=6, max_norm_sq=900, chunk_length=None, norm_chunk_length=None,
              measurements=[[-20, 0, 21, 5, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]]),
}


class Cheater(BoundedL2VecSum):
    """Encodes whatever digits it is given, valid or not (a malicious client)."""

    def __init__(self, honest: BoundedL2VecSum, digits):
        self.__dict__.update(honest.__dict__)
        self.digits = digits

    def encode(self, measurement):
        return np.array(self.digits, dtype=object)


def params(case):
    return {k: case[k] for k in ("shares", "length", "bits", "max_norm_sq", "chunk_length", "norm_chunk_length")}


def honest(name, case):
    vdaf = prio3_bounded_l2_vec_sum(case["shares"], case["length"], case["bits"], case["max_norm_sq"],
                                    chunk_length=case["chunk_length"], norm_chunk_length=case["norm_chunk_length"])
    rng = DeterministicRng(f"mpc-l2-{name}")
    key = rng.bytes(32)
    reports, outs, ops = [], [[] for _ in range(vdaf.SHARES)], []
    for i, m in enumerate(case["measurements"]):
        nonce, rand = rng.bytes(16), rng.bytes(vdaf.RAND_SIZE)
        public, shares = vdaf.shard(CTX, np.array(m), nonce, rand)
        states, vshares = zip(*[vdaf.verify_init(key, CTX, a, nonce, public, shares[a]) for a in range(vdaf.SHARES)])
        msg = vdaf.verifier_shares_to_message(CTX, list(vshares))
        out = [vdaf.verify_next(CTX, s, msg) for s in states]
        for a in range(vdaf.SHARES):
            outs[a].append(out[a])
        reports.append(dict(measurement=m, nonce=nonce.hex(), rand=rand.hex(), public_share=public.hex(),
                            input_shares=[s.hex() for s in shares], verifier_shares=[[v.hex() for v in vshares]],
                            verifier_messages=[msg.hex()], out_shares=[vdaf.field.encode_vec(o).hex() for o in out]))
        ops += [dict(operation="shard", report_index=i, success=True)]
        ops += [dict(operation="verify_init", report_index=i, aggregator_id=a, success=True) for a in range(vdaf.SHARES)]
        ops += [dict(operation="verifier_shares_to_message", report_index=i, round=0, success=True)]
        ops += [dict(operation="verify_next", report_index=i, aggregator_id=a, round=1, success=True)
                for a in range(vdaf.SHARES)]
    aggs = [vdaf.encode_agg_share(vdaf.aggregate(o)) for o in outs]
    ops += [dict(operation="aggregate", aggregator_id=a, success=True) for a in range(vdaf.SHARES)]
    ops += [dict(operation="unshard", success=True)]
    return dict(params(case), ctx=CTX.hex(), verify_key=key.hex(), agg_param="", reports=reports,
                agg_shares=[a.hex() for a in aggs], agg_result=vdaf.unshard(aggs, len(reports)), operations=ops)


def cheating(name, case, digits_of):
    vdaf = prio3_bounded_l2_vec_sum(case["shares"], case["length"], case["bits"], case["max_norm_sq"],
                                    chunk_length=case["chunk_length"], norm_chunk_length=case["norm_chunk_length"])
    circuit = vdaf.flp.circuit
    vdaf.flp.circuit = Cheater(circuit, digits_of(circuit))
    rng = DeterministicRng(f"mpc-l2-{name}")
    key, nonce, rand = rng.bytes(32), rng.bytes(16), rng.bytes(vdaf.RAND_SIZE)
    public, shares = vdaf.shard(CTX, None, nonce, rand)
    vshares = [vdaf.verify_init(key, CTX, a, nonce, public, shares[a])[1] for a in range(vdaf.SHARES)]
    ops = [dict(operation="verify_init", report_index=0, aggregator_id=a, success=True) for a in range(vdaf.SHARES)]
    ops += [dict(operation="verifier_shares_to_message", report_index=0, round=0, success=False)]
    report = dict(measurement=None, nonce=nonce.hex(), rand=rand.hex(), public_share=public.hex(),
                  input_shares=[s.hex() for s in shares], verifier_shares=[[v.hex() for v in vshares]],
                  verifier_messages=[], out_shares=[])
    return dict(params(case), ctx=CTX.hex(), verify_key=key.hex(), agg_param="", reports=[report], agg_shares=[],
                agg_result=None, operations=ops)


def over_bound_false_claim(c):
    """Entries (7, 7, 7, -8): squared norm 211 > 40, but the norm digits claim 40."""
    digits = [((v + c.offset) >> i) & 1 for v in (7, 7, 7, -8) for i in range(c.bits)]
    return digits + list(c.norm.encode([40]))


def scaled_digit(c):
    """An honest encoding of (1, 0, 0, 0) whose top digit of entry 0 is 10^6: a poisoned, scaled entry."""
    digits = [((v + c.offset) >> i) & 1 for v in (1, 0, 0, 0) for i in range(c.bits)]
    digits[c.bits - 1] = 10**6
    return digits + list(c.norm.encode([1]))


def main():
    OUT.mkdir(exist_ok=True)
    files = {f"Prio3BoundedL2VecSum_{k}.json": honest(k, case) for k, case in CASES.items()}
    files["Prio3BoundedL2VecSum_bad_norm_claim.json"] = cheating("bad-norm", CASES["0"], over_bound_false_claim)
    files["Prio3BoundedL2VecSum_bad_scaled_digit.json"] = cheating("bad-scaled", CASES["0"], scaled_digit)
    for name, body in files.items():
        (OUT / name).write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
        print("wrote", OUT / name)


if __name__ == "__main__":
    main()
