"""Where a client's masked-input time goes, against the keystream-only floor (issue 16).

Usage: .venv/bin/python bench/client_pipeline.py [--lengths 100000,1000000,10000000]
           [--neighbourhoods 8,16,36] [--repeats 5] [--bits 32] [--json]

For each (m, s) one real client of a full-graph session of s + 1 clients
(so s peers and s + 1 mask streams, as a SecAgg+ neighbourhood of s) is run
up to its masked-input request; then, in the same run, per repetition:

* floor: ``_kernels.add_masks`` of the s + 1 keystreams onto a zero vector of
  m + 1 words (the weight slot), the same threads: nothing but keystream;
* unfused (the path of main before issue 16): ``Quantizer.encode``
  (quantise: numpy PCG64 uniforms + the quantisation kernel), ``set_input``
  (checks and copies), the masked-input round (``Client.receive``), split
  into its mask kernel (mask, the same call timed alone) and the rest
  (other: the box openings, key agreement, the input copy), and ``wire.encode``
  (encode: msgpack copies the vector);
* fused: ``set_float_input`` and the masked-input round, whose quantise + mask
  is one ``hazmat.pipeline.encode_masked`` call (timed alone: fused), the rest
  of the round (other; the box openings run while the kernel's threads work,
  so other is what they and the rest add to the round, not their cost), and
  ``wire.encode_parts`` (encode: a header and a view).

Each figure is the median over the repetitions; ``ratio`` is the median over
the repetitions of a path's total over the floor measured just before and
just after it (the mean of the two), so slow changes in the machine's load
cancel.  The round is replayed by restoring
the client's (immutable) state before each repetition.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

import lepton_secagg as ls
from lepton_secagg import _kernels, wire
from lepton_secagg.encoding import Quantizer
from lepton_secagg.hazmat import pipeline
from lepton_secagg.hazmat.masking import add_masks
from lepton_secagg.hazmat.rng import DeterministicRng


def ready_client(m: int, s: int, bits: int, q: Quantizer):
    """Client 0 of an (s + 1)-client full-graph session, waiting for its masked-input request."""
    n = s + 1
    cfg = ls.Config(num_clients=n, vector_length=m + 1, threshold=n // 2 + 1, bits=bits)
    clients = [ls.Client(cfg, cid, rng=DeterministicRng(b"bench-%d" % cid)) for cid in range(n)]
    server = ls.Server(cfg, rng=DeterministicRng(b"bench-server"))
    for cid, c in enumerate(clients):
        server.receive(cid, c.start())
    requests = server.advance()
    for cid, c in enumerate(clients):
        server.receive(cid, c.receive(requests[cid]))
    return cfg, clients[0], server.advance()[0]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure(m: int, s: int, bits: int, repeats: int) -> dict:
    q = Quantizer(clip=8.0, bits=bits, num_clients=s + 1, max_weight=1000)
    cfg, client, request = ready_client(m, s, bits, q)
    values = np.random.default_rng(m + s).uniform(-1, 1, m).astype(np.float32)
    keys = [bytes([k]) * 16 for k in range(s + 1)]
    signs = [1] + [(-1) ** k for k in range(s)]
    saved = client._state, client._round
    zeros = np.zeros(m + 1, dtype=q.dtype)
    threads = _threads(zeros)

    def floor():
        return timed(lambda: _kernels.add_masks(zeros, keys, signs, cfg.prg, 0, threads))[0]

    rows = {k: [] for k in ("floor", "quantise", "set_input", "round", "mask", "encode", "f_set", "f_round", "fused", "f_encode",
                            "ratio_unfused", "ratio_fused")}
    for _ in range(repeats):
        before = floor()
        # fused
        client._state, client._round = saved
        f_set = timed(lambda: client.set_float_input(values, q, weight=7))[0]
        f_round, fmsg = timed(lambda: client.receive(request))
        f_encode = timed(lambda: wire.encode_parts(fmsg))[0]
        rows["fused"].append(timed(lambda: pipeline.encode_masked(q, values, weight=7, round_key=bytes(16), keys=keys, signs=signs, suite=cfg.prg))[0])
        # unfused
        quantise, (vec, _) = timed(lambda: q.encode(values, weight=7))
        client._state, client._round = saved
        set_input = timed(lambda: client.set_input(vec))[0]
        round_, msg = timed(lambda: client.receive(request))
        encode = timed(lambda: wire.encode(msg))[0]
        work = vec.copy()
        rows["mask"].append(timed(lambda: add_masks(work, keys, signs, cfg.prg))[0])
        after = floor()
        base = (before + after) / 2  # the floor around this repetition: load changes slowly next to it
        for k, v in (("floor", base), ("quantise", quantise), ("set_input", set_input), ("round", round_), ("encode", encode),
                     ("f_set", f_set), ("f_round", f_round), ("f_encode", f_encode)):
            rows[k].append(v)
        rows["ratio_unfused"].append((quantise + set_input + round_ + encode) / base)
        rows["ratio_fused"].append((f_set + f_round + f_encode) / base)
    med = {k: 1000 * statistics.median(v) for k, v in rows.items()}
    unfused_total = med["quantise"] + med["set_input"] + med["round"] + med["encode"]
    fused_total = med["f_set"] + med["f_round"] + med["f_encode"]
    return {
        "m": m, "s": s, "bits": bits, "streams": s + 1, "floor_ms": med["floor"],
        "unfused": {"quantise": med["quantise"], "mask": med["mask"], "encode": med["encode"],
                    "other": unfused_total - med["quantise"] - med["mask"] - med["encode"], "total": unfused_total,
                    "ratio": med["ratio_unfused"] / 1000},
        "fused": {"quantise+mask": med["fused"], "encode": med["f_encode"],
                  "other": fused_total - med["fused"] - med["f_encode"], "total": fused_total,
                  "ratio": med["ratio_fused"] / 1000},
    }


def _threads(vector) -> int:
    import os
    return min(os.cpu_count() or 1, 8) if vector.nbytes >= (1 << 20) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="100000,1000000,10000000")
    ap.add_argument("--neighbourhoods", default="8,16,36")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bits", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    print(f"# lepton_secagg {ls.__version__}, kernel backend {_kernels.BACKEND}, {args.bits}-bit ring, "
          f"weighted (m + 1 words), median of {args.repeats}; times in ms per client")
    print(f"{'m':>9} {'s':>3} {'floor':>7} | {'quant':>7} {'mask':>7} {'encode':>7} {'other':>7} {'total':>7} {'ratio':>6} "
          f"| {'q+mask':>7} {'encode':>7} {'other':>7} {'total':>7} {'ratio':>6}")
    results = []
    for m in (int(x) for x in args.lengths.split(",")):
        for s in (int(x) for x in args.neighbourhoods.split(",")):
            r = measure(m, s, args.bits, args.repeats)
            results.append(r)
            u, f = r["unfused"], r["fused"]
            print(f"{m:>9} {s:>3} {r['floor_ms']:>7.2f} | {u['quantise']:>7.2f} {u['mask']:>7.2f} {u['encode']:>7.2f} "
                  f"{u['other']:>7.2f} {u['total']:>7.2f} {u['ratio']:>5.2f}x | {f['quantise+mask']:>7.2f} "
                  f"{f['encode']:>7.2f} {f['other']:>7.2f} {f['total']:>7.2f} {f['ratio']:>5.2f}x", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
