"""Flower 1.42 SecAgg+ against lepton_secagg on the same cells, in one run.

Usage:
    .venv/bin/python bench/compare_flower.py [--quick] [--clients 10,50,100]
        [--lengths 100000,1000000] [--dropouts 0,0.1] [--graphs full,sparse]
        [--sample 3] [--json] [--plot docs/img/compare_flower.png]

What is measured, per cell (n clients, m parameters, dropout fraction d,
graph), both sides in this one process, one after the other, no transport:

* Flower: its own client code, the stage functions of
  ``flwr.client.mod.secure_aggregation.secaggplus_mod`` (``_setup``,
  ``_share_keys``, ``_collect_masked_vectors``, ``_unmask``) called on
  ``SecAggPlusState`` objects with the same ConfigRecord contents
  ``SecAggPlusWorkflow`` sends, and the server computations of
  ``SecAggPlusWorkflow`` (neighbour lists, forwarding, summing the masked
  vectors, ``combine_shares``, ``pseudo_rand_gen`` and
  ``generate_shared_key`` in ``unmask_stage``), copied call for call; the
  workflow's defaults: clipping 8.0, 2^22 levels, modulus 2^32, max_weight 1000.
  When the cell is large (n * m > ``--full-limit``), only ``--sample`` clients
  run ``_collect_masked_vectors`` (the masking stage) and the others reuse the
  first sampled client's masked vector: the server's work is the same, the
  round's client masking total is extrapolated as mean x clients, and the sum is
  not checked (``exact`` = "sampled").  Otherwise every client masks and the
  unmasked average is checked against the plaintext one.
* lepton_secagg: ``testing.simulate`` (every client and the server, through
  the wire codec) on the same n, m + 1 (the weight slot), the same
  neighbourhood size and threshold, every client handing its float update to
  ``Client.set_float_input`` (quantised and masked in one fused pass, inside
  the masked-input round's client time); the sum is decoded with
  ``encoding.Quantizer`` and checked against the plaintext weighted average.

Dropouts: ``round(d n)`` clients stop after sharing their keys, before sending
their masked vector (``masked_input``): the case where the server must remove
the dropped clients' pairwise masks.  (Flower cannot survive a dropout in its
setup stage: the dropped node has no shares and ``unmask_stage`` halts.)

Columns: ``round s`` = the whole round, every client and the server summed
(single process); ``mask ms/client`` = a client's masking stage (Flower's
``_collect_masked_vectors``, our ``masked_input``); ``unmask s`` = the
server's unmasking; ``KiB/client`` = bytes each client sends and receives
(Flower: the byte and number values of its ConfigRecords; ours: wire bytes).
Graphs: ``full``: every client shares with every other (Flower
num_shares = n); ``sparse``: neighbourhood s = min(the largest odd number below n, 2 ceil(log2 n) + 1)
(Flower num_shares = s, ours a Harary graph of degree s - 1), threshold
s // 2 + 1 on both sides.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np

import lepton_secagg as ls
from lepton_secagg import _kernels
from lepton_secagg.encoding import Quantizer
from lepton_secagg.testing import simulate

CLIP, TARGET, MOD, MAX_WEIGHT = 8.0, 1 << 22, 1 << 32, 1000


def neighbourhood(n: int, graph: str) -> int:
    if graph == "full":
        return n
    largest_odd = n - 1 if (n - 1) % 2 else n - 2  # odd: Flower's ring needs it, ours is a Harary graph of even degree
    return min(largest_odd, 2 * math.ceil(math.log2(n)) + 1)


def updates(n: int, m: int, seed: int):
    rs = np.random.default_rng(seed)
    return [rs.uniform(-1, 1, m).astype(np.float32) for _ in range(n)], [int(x) for x in rs.integers(1, 100, n)]


def plain_average(params, weights, ids):
    total = sum(weights[i] for i in ids)
    return sum(weights[i] * params[i].astype(np.float64) for i in ids) / total


def _size(values) -> int:
    total = 0
    for v in values:
        if isinstance(v, (bytes, bytearray)):
            total += len(v)
        elif isinstance(v, (list, tuple)):
            total += _size(v)
        else:
            total += 8
    return total


# --- Flower -----------------------------------------------------------------------------


def run_flower(n, m, dropout, graph, seed, sample, full_limit):
    import importlib

    mod = importlib.import_module("flwr.client.mod.secure_aggregation.secaggplus_mod")
    from flwr.common import bytes_to_ndarray
    from flwr.common import ndarrays_to_parameters
    from flwr.common.secure_aggregation.crypto.shamir import combine_shares
    from flwr.common.secure_aggregation.crypto.symmetric_encryption import generate_shared_key
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        factor_extract, get_parameters_shape, parameters_addition, parameters_mod, parameters_subtraction)
    from flwr.common.secure_aggregation.quantization import dequantize
    from flwr.common.secure_aggregation.secaggplus_constants import Key
    from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
    from flwr.supercore.primitives.asymmetric import bytes_to_private_key, bytes_to_public_key

    params, weights = updates(n, m, seed)
    rnd = random.Random(seed)
    nids = rnd.sample(range(1, 1 << 62), n)
    pid = {nid: i for i, nid in enumerate(nids)}
    shares = n if graph == "full" else neighbourhood(n, graph)
    threshold = shares // 2 + 1
    dropped = set(rnd.sample(nids, round(dropout * n)))
    sampled_mode = n * m > full_limit
    up = dict.fromkeys(nids, 0)
    down = dict.fromkeys(nids, 0)
    t = {"setup": 0.0, "share_keys": 0.0, "masked": 0.0, "unmask_clients": 0.0, "server": 0.0}

    # Server: setup (as SecAggPlusWorkflow.setup_stage)
    t0 = time.perf_counter()
    order = list(nids)
    rnd.shuffle(order)
    half = shares >> 1
    neighbours = {nid: {order[(i + o) % n] for o in range(-half, half + 1)} for i, nid in enumerate(order)}
    setup_cfg = {Key.SAMPLE_NUMBER: n, Key.SHARE_NUMBER: shares, Key.THRESHOLD: threshold, Key.CLIPPING_RANGE: CLIP,
                 Key.TARGET_RANGE: TARGET, Key.MOD_RANGE: MOD, Key.MAX_WEIGHT: float(MAX_WEIGHT)}
    t["server"] += time.perf_counter() - t0
    states, pks = {}, {}
    t0 = time.perf_counter()
    for nid in nids:
        st = mod.SecAggPlusState()
        st.nid = nid
        res = mod._setup(st, dict(setup_cfg))
        states[nid] = st
        pks[nid] = [res[Key.PUBLIC_KEY_1], res[Key.PUBLIC_KEY_2]]
        down[nid] += _size(setup_cfg.values())
        up[nid] += _size(res.values())
    t["setup"] = time.perf_counter() - t0

    # Stage 1: share keys
    fwd_ct = {nid: [] for nid in nids}
    fwd_src = {nid: [] for nid in nids}
    for nid in nids:
        t0 = time.perf_counter()
        cfg = {str(v): pks[v] for v in neighbours[nid]}
        t["server"] += time.perf_counter() - t0
        down[nid] += _size(cfg.values())
        t0 = time.perf_counter()
        res = mod._share_keys(states[nid], cfg)
        t["share_keys"] += time.perf_counter() - t0
        up[nid] += _size(res.values())
        t0 = time.perf_counter()
        for dst, ct in zip(res[Key.DESTINATION_LIST], res[Key.CIPHERTEXT_LIST]):
            fwd_ct[dst].append(ct)
            fwd_src[dst].append(nid)
        t["server"] += time.perf_counter() - t0

    # Stage 2: collect masked vectors (dropped clients never answer)
    active = [nid for nid in nids if nid not in dropped]
    masked_sum, first, mask_times = None, None, []
    for i, nid in enumerate(active):
        cfg = {Key.CIPHERTEXT_LIST: fwd_ct[nid], Key.SOURCE_LIST: fwd_src[nid]}
        down[nid] += _size(cfg.values()) + 4 * m  # + the FitIns parameters (float32)
        if not sampled_mode or i < sample:
            t0 = time.perf_counter()
            res = mod._collect_masked_vectors(states[nid], cfg, weights[pid[nid]], ndarrays_to_parameters([params[pid[nid]]]))
            mask_times.append(time.perf_counter() - t0)
            vec = res[Key.MASKED_PARAMETERS]
            first = first or vec
        else:
            # Timing only: the shares are stored as _collect_masked_vectors does (untimed), and the
            # first sampled client's masked vector stands in (the server's work does not depend on it).
            st = states[nid]
            for ct, src in zip(cfg[Key.CIPHERTEXT_LIST], cfg[Key.SOURCE_LIST]):
                _, _, rd_share, sk1_share = mod.share_keys_plaintext_separate(mod.decrypt(st.ss2_dict[src], ct))
                st.rd_seed_share_dict[src], st.sk1_share_dict[src] = rd_share, sk1_share
            vec = first
        up[nid] += _size(vec)
        t0 = time.perf_counter()
        arrays = [bytes_to_ndarray(b) for b in vec]
        masked_sum = arrays if masked_sum is None else parameters_addition(masked_sum, arrays)
        t["server"] += time.perf_counter() - t0
    t["masked"] = float(np.mean(mask_times)) * len(active)
    t0 = time.perf_counter()
    masked_sum = parameters_mod(masked_sum, MOD)
    t["server"] += time.perf_counter() - t0

    # Stage 3: unmask
    active_set = set(active)
    dead = set(nids) - active_set
    collected = {nid: [] for nid in nids}
    for nid in active:
        cfg = {Key.ACTIVE_NODE_ID_LIST: list(neighbours[nid] & active_set), Key.DEAD_NODE_ID_LIST: list(neighbours[nid] & dead)}
        down[nid] += _size(cfg.values())
        t0 = time.perf_counter()
        res = mod._unmask(states[nid], cfg)
        t["unmask_clients"] += time.perf_counter() - t0
        up[nid] += _size(res.values())
        for owner, share in zip(res[Key.NODE_ID_LIST], res[Key.SHARE_LIST]):
            collected[owner].append(share)
    t0 = time.perf_counter()
    vec = masked_sum
    for nid, share_list in collected.items():
        if len(share_list) < threshold:
            raise RuntimeError("Flower: not enough shares to unmask")
        secret = combine_shares(share_list)
        if nid in active_set:
            vec = parameters_subtraction(vec, pseudo_rand_gen(secret, MOD, get_parameters_shape(vec)))
        else:
            for other in neighbours[nid] - {nid}:
                key = generate_shared_key(bytes_to_private_key(secret), bytes_to_public_key(pks[other][0]))
                mask = pseudo_rand_gen(key, MOD, get_parameters_shape(vec))
                vec = parameters_addition(vec, mask) if nid > other else parameters_subtraction(vec, mask)
    vec = parameters_mod(vec, MOD)
    q_total, vec = factor_extract(vec)
    agg = dequantize(vec, CLIP, TARGET)
    agg = [(a - (len(active) - 1) * CLIP) * (TARGET / q_total) for a in agg]
    unmask_server = time.perf_counter() - t0
    t["server"] += unmask_server

    if sampled_mode:
        exact = "sampled"
    else:
        want = plain_average(params, weights, [pid[x] for x in active])
        err = float(np.max(np.abs(agg[0] - want)))
        exact = f"{err:.1e}"
    total = t["setup"] + t["share_keys"] + t["masked"] + t["unmask_clients"] + t["server"]
    return {
        "round_s": total,
        "mask_ms": 1000 * float(np.mean(mask_times)),
        "unmask_s": unmask_server,
        "kib": sum(up.values()) / n / 1024 + sum(down.values()) / n / 1024,
        "check": exact,
        "masked_clients": len(mask_times),
    }


# --- lepton_secagg ---------------------------------------------------------------------


def run_ours(n, m, dropout, graph, seed):
    params, weights = updates(n, m, seed)
    rnd = random.Random(seed)
    dropped = set(rnd.sample(range(n), round(dropout * n)))
    s = neighbourhood(n, graph)
    if graph == "full":
        cfg = ls.Config(num_clients=n, vector_length=m + 1, threshold=n // 2 + 1)
    else:
        cfg = ls.Config(num_clients=n, vector_length=m + 1, threshold=s // 2 + 1, neighbors=s - 1)
    q = Quantizer(clip=CLIP, bits=32, num_clients=n, max_weight=MAX_WEIGHT)
    t0 = time.perf_counter()
    res = simulate(cfg, params, {c: "masked_input" for c in dropped}, quantizer=q, weights=weights)
    whole = time.perf_counter() - t0
    mean, _ = q.decode(res.sum, len(res.included))
    err = float(np.max(np.abs(mean - plain_average(params, weights, res.included))))
    live = n - len(dropped)
    return {
        "round_s": whole,
        "mask_ms": 1000 * res.seconds["masked_input"] / live,
        "unmask_s": res.server_seconds["unmasking"],
        "kib": (sum(res.bytes_up.values()) + sum(res.bytes_down.values())) / n / 1024,
        "check": f"{err:.1e}",
        "graph": "full" if cfg.neighbors is None else f"k={cfg.neighbors}",
        "threshold": cfg.threshold,
    }


# --- end to end, in Flower's simulation engine -------------------------------------------------


def run_e2e(n, m, dropout, which, seed, rounds=2):
    """Both workflows inside ``flwr.simulation.run_simulation`` (ray, 2 CPUs): seconds of each fit round.

    ``which`` is "flower" (``SecAggPlusWorkflow(num_shares=n, reconstruction_threshold=n // 2 + 1)``
    with ``secaggplus_mod``) or "ours" (``LeptonSecAggWorkflow`` with the same neighbourhood and
    threshold, with ``lepton_secagg_mod``).  The dropped partitions raise in the masking stage of
    every round (Flower's ``collect_masked_vectors``, our ``masked_input``).  Round 1 includes
    ray's start of the ClientApp actors; round 2 is warm.
    """
    from flwr.client import NumPyClient
    from flwr.client.mod import secaggplus_mod
    from flwr.clientapp import ClientApp
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.simulation import run_simulation

    from lepton_secagg.integrations.flower import RECORD_KEY, LeptonSecAggWorkflow, lepton_secagg_mod

    drop = set(random.Random(seed).sample(range(n), round(dropout * n)))
    record_key, stage = (("secaggplus_configs", "collect_masked_vectors") if which == "flower" else (RECORD_KEY, "masked_input"))

    class Delta(NumPyClient):
        def __init__(self, pid):
            self.pid = pid

        def fit(self, parameters, config):
            rs = np.random.default_rng(self.pid)
            return [parameters[0] + rs.uniform(-0.1, 0.1, m).astype(np.float32)], 1 + self.pid % 50, {}

    def client_fn(context):
        return Delta(int(context.node_config["partition-id"])).to_client()

    def dropper(msg, ctxt, call_next):
        rec = msg.content.config_records.get(record_key)
        if rec is not None and rec.get("stage") == stage and int(ctxt.node_config["partition-id"]) in drop:
            raise RuntimeError("dropped")
        return call_next(msg, ctxt)

    mods = [dropper, secaggplus_mod if which == "flower" else lepton_secagg_mod]
    client_app = ClientApp(client_fn=client_fn, mods=mods)
    if which == "flower":
        inner = SecAggPlusWorkflow(num_shares=n, reconstruction_threshold=n // 2 + 1)
    else:
        inner = LeptonSecAggWorkflow(num_shares=n, reconstruction_threshold=n // 2 + 1)
    times = []

    def timed(grid, context):
        t0 = time.perf_counter()
        inner(grid, context)
        times.append(time.perf_counter() - t0)

    server_app = ServerApp()

    @server_app.main()
    def _main(grid, context):
        strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n, min_available_clients=n,
                          initial_parameters=ndarrays_to_parameters([np.zeros(m, np.float32)]))
        DefaultWorkflow(fit_workflow=timed)(grid, LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy))

    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=n,
                   backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": 2}})
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", default="10,50,100")
    ap.add_argument("--lengths", default="100000,1000000")
    ap.add_argument("--dropouts", default="0,0.1")
    ap.add_argument("--graphs", default="full,sparse")
    ap.add_argument("--sample", type=int, default=3, help="clients that run Flower's masking stage in large cells")
    ap.add_argument("--full-limit", type=float, default=5e6, help="n*m above which Flower's masking stage is sampled")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="a tiny grid (smoke test)")
    ap.add_argument("--json", action="store_true", help="print one JSON line per cell")
    ap.add_argument("--plot", default=None, help="write a PNG of the whole-round times here")
    ap.add_argument("--e2e", default=None, metavar="N,M,DROPOUT",
                    help="instead of the grid: both workflows end to end in Flower's simulation engine, full graph")
    args = ap.parse_args(argv)
    if args.e2e:
        n, m, d = args.e2e.split(",")
        n, m, d = int(n), int(float(m)), float(d)
        for which in ("ours", "flower"):
            times = run_e2e(n, m, d, which, args.seed)
            print(json.dumps({"e2e": which, "n": n, "m": m, "dropout": d, "round_seconds": [round(t, 2) for t in times]}), flush=True)
        return 0
    if args.quick:
        args.clients, args.lengths, args.dropouts, args.graphs = "5,10", "1000", "0,0.2", "full,sparse"
    import flwr

    print(f"# flwr {flwr.__version__}, lepton_secagg {ls.__version__} (kernel backend {_kernels.BACKEND}), "
          f"{os.cpu_count()} CPUs, one process", flush=True)
    header = ("| n | m | dropout | graph (ours), t | Flower round s | ours round s | ratio | Flower mask ms/client | "
              "ours mask ms/client | ratio | Flower unmask s | ours unmask s | ratio | Flower KiB/client | "
              "ours KiB/client | Flower check | ours check |")
    if not args.json:
        print(header)
        print("|---" * (header.count("|") - 1) + "|")
    rows = []
    for graph in args.graphs.split(","):
        for m in (int(float(x)) for x in args.lengths.split(",")):
            for n in (int(x) for x in args.clients.split(",")):
                for d in (float(x) for x in args.dropouts.split(",")):
                    ours = run_ours(n, m, d, graph, args.seed)
                    fl = run_flower(n, m, d, graph, args.seed, args.sample, args.full_limit)
                    row = {"n": n, "m": m, "dropout": d, "graph": graph, "ours": ours, "flower": fl}
                    rows.append(row)
                    if args.json:
                        print(json.dumps(row), flush=True)
                    else:
                        r = lambda a, b: f"{a / b:.0f}x" if b > 0 else "-"  # noqa: E731
                        print(f"| {n} | {m:.0e} | {d:g} | {ours['graph']}, t={ours['threshold']} | "
                              f"{fl['round_s']:.2f} | {ours['round_s']:.2f} | **{r(fl['round_s'], ours['round_s'])}** | "
                              f"{fl['mask_ms']:.0f} | {ours['mask_ms']:.1f} | {r(fl['mask_ms'], ours['mask_ms'])} | "
                              f"{fl['unmask_s']:.2f} | {ours['unmask_s']:.3f} | {r(fl['unmask_s'], ours['unmask_s'])} | "
                              f"{fl['kib']:.0f} | {ours['kib']:.0f} | {fl['check']} | {ours['check']} |", flush=True)
    if args.plot:
        plot(rows, args.plot)
    return 0


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graphs = sorted({r["graph"] for r in rows})
    lengths = sorted({r["m"] for r in rows})
    fig, axes = plt.subplots(len(graphs), len(lengths), figsize=(5 * len(lengths), 3.6 * len(graphs)), squeeze=False)
    for gi, g in enumerate(graphs):
        for li, m in enumerate(lengths):
            ax = axes[gi][li]
            for d, style in ((0.0, "-"), (0.1, "--")):
                sel = sorted((r for r in rows if r["graph"] == g and r["m"] == m and r["dropout"] == d), key=lambda r: r["n"])
                if not sel:
                    continue
                ns = [r["n"] for r in sel]
                ax.plot(ns, [r["flower"]["round_s"] for r in sel], "o" + style, color="tab:red", label=f"Flower 1.42, dropout {d:g}")
                ax.plot(ns, [r["ours"]["round_s"] for r in sel], "s" + style, color="tab:blue", label=f"lepton_secagg, dropout {d:g}")
            ax.set_yscale("log")
            ax.set_xlabel("clients n")
            ax.set_ylabel("whole round, s (one process)")
            ax.set_title(f"{g} graph, m = {m:.0e}")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"# plot written to {path}")


if __name__ == "__main__":
    sys.exit(main())
