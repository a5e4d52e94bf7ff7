"""Accuracy against epsilon on scikit-learn's digits: no privacy, central DP, and distributed DP.

Usage:
    .venv/bin/python bench/dp_study.py [--clients 200] [--rounds 25] [--epsilons 1,2,4,8]
        [--bits 12,14,16,18,20] [--seeds 1] [--plot docs/img/dp_study.png] [--json]

Setting: softmax regression (64 pixels -> 10 digits, 650 parameters) trained
by DP-FedAvg with one local gradient step.  The training split (1347 images)
is dealt round-robin to ``--clients`` clients, all of whom take part in every
round (sampling rate 1, so every mechanism is accounted by plain RDP
composition over ``--rounds`` rounds at delta = 1e-5).  Each client's update
is clipped to L2 norm ``--clip``.

* none: the plain mean of the clipped updates.
* central: a trusted server adds continuous Gaussian noise to the sum, with
  the noise multiplier dp-accounting calibrates for the epsilon.
* gaussian-b / skellam-b: the library's DDP encoding in a b-bit ring
  (``lepton_secagg.dp``: rotation, scaling, conditional rounding, per-client
  noise from ``Plan.noise_for(epsilon)``); the ring sum (what SecAgg
  outputs: tests/test_dp_mechanism.py runs it through real sessions) is
  decoded by ``dp.decode``.  Both noises come from the library's exact
  samplers, drawn from a DeterministicRng so a run can be replayed.  (The
  central baseline's continuous Gaussian is numpy's: it stands for a
  trusted server.)

Prints one markdown table (test accuracy after the last round, mean over
seeds) and writes the plot.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
from dp_accounting import GaussianDpEvent, SelfComposedDpEvent
from dp_accounting.rdp import RdpAccountant
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from lepton_secagg.dp import accounting, samplers
from lepton_secagg.dp.mechanism import decode
from lepton_secagg.dp.rotation import rotate
from lepton_secagg.dp.rounding import conditional_round
from lepton_secagg.hazmat.rng import DeterministicRng

DELTA = 1e-5
SEED32 = bytes(range(32))


def load(num_clients: int):
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    owner = np.arange(len(ytr)) % num_clients
    return xtr, ytr, xte, yte, owner


def client_updates(theta, x, y, owner, num_clients, lr):
    """One local gradient step per client on its own examples, as a (clients, 650) array."""
    w, b = theta[:640].reshape(10, 64), theta[640:]
    logits = x @ w.T + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    counts = np.bincount(owner, minlength=num_clients)[:, None]
    gw = np.zeros((num_clients, 10, 64))
    np.add.at(gw, owner, p[:, :, None] * x[:, None, :])
    gb = np.zeros((num_clients, 10))
    np.add.at(gb, owner, p)
    grads = np.concatenate([gw.reshape(num_clients, 640), gb], axis=1) / counts
    return -lr * grads


def clip_rows(u, clip):
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    return u * np.minimum(1.0, clip / np.maximum(norms, 1e-12))


def accuracy(theta, x, y):
    w, b = theta[:640].reshape(10, 64), theta[640:]
    return float(((x @ w.T + b).argmax(axis=1) == y).mean())


def central_z(epsilon, rounds):
    """The Gaussian noise multiplier dp-accounting gives for ``epsilon`` after ``rounds`` full-participation rounds."""
    def eps(z):
        acc = RdpAccountant(list(accounting.ORDERS))
        acc.compose(SelfComposedDpEvent(GaussianDpEvent(z), rounds))
        return acc.get_epsilon(DELTA)

    low, high = 0.01, 1.0
    while eps(high) > epsilon:
        low, high = high, high * 2
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if eps(mid) > epsilon else (low, mid)
    return high


def ddp_sum(enc, clipped, rng):
    """The decoded noisy sum of the clients' DDP encodings (ring sum mod 2^bits, then dp.decode)."""
    n, d = clipped.shape[0], enc.padded_length
    scaled = rotate(clipped, SEED32) * enc.scale
    rounded = np.stack([conditional_round(row, enc.sensitivity, rng) for row in scaled])
    if enc.mechanism == "gaussian":
        noise = samplers.discrete_gaussian(rng, enc.noise, n * d).reshape(n, d)
    else:
        noise = samplers.skellam(rng, enc.noise / 2, n * d).reshape(n, d)
    mask = np.uint64((1 << enc.bits) - 1)
    ring = (rounded + noise).astype(np.uint64) & mask
    total = ring.sum(axis=0, dtype=np.uint64) & mask  # what SecAgg's unmasking outputs
    return decode(enc, total, SEED32)


def train(method, epsilon, bits, args, seed, data):
    xtr, ytr, xte, yte, owner = data
    n = args.clients
    theta = np.zeros(650)
    rng = DeterministicRng(f"study/{method}/{epsilon}/{bits}/{seed}")
    numpy_rng = np.random.default_rng(seed)
    enc, spent = None, 0.0
    if method == "central":
        z = central_z(epsilon, args.rounds)
        spent = epsilon
    elif method in ("gaussian", "skellam"):
        plan = accounting.Plan(method, clients=n, rounds=args.rounds, delta=DELTA, clip=args.clip, bits=bits, length=650)
        enc = plan.noise_for(epsilon)
        spent = plan.epsilon(enc)
    for _ in range(args.rounds):
        clipped = clip_rows(client_updates(theta, xtr, ytr, owner, n, args.lr), args.clip)
        if method == "none":
            total = clipped.sum(axis=0)
        elif method == "central":
            total = clipped.sum(axis=0) + numpy_rng.normal(0, z * args.clip, 650)
        else:
            total = ddp_sum(enc, clipped, rng)
        theta = theta + args.server_lr * total / n
    return accuracy(theta, xte, yte), spent, enc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--epsilons", default="1,2,4,8")
    ap.add_argument("--bits", default="12,14,16,18,20")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1.0)
    ap.add_argument("--server-lr", type=float, default=2.0)
    ap.add_argument("--plot", default="docs/img/dp_study.png")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    bit_list = [int(b) for b in args.bits.split(",")]
    data = load(args.clients)
    t0 = time.perf_counter()
    rows = []

    def run(method, eps, bits):
        accs, spent, enc = [], 0.0, None
        for seed in range(args.seeds):
            acc, spent, enc = train(method, eps, bits, args, seed, data)
            accs.append(acc)
        row = {"method": method, "bits": bits, "epsilon_target": eps, "epsilon": spent, "accuracy": float(np.mean(accs)),
               "noise_var": float(enc.noise) if enc else None, "scale": enc.scale if enc else None}
        rows.append(row)
        print(f"  {method:8s} bits={bits!s:4s} eps={eps:<5g} -> acc {row['accuracy']:.4f} (eps spent {spent:.3f}) "
              f"[{time.perf_counter() - t0:.0f}s]", file=sys.stderr)

    run("none", math.inf, None)
    for eps in epsilons:
        run("central", eps, None)
        for method in ("gaussian", "skellam"):
            for bits in bit_list:
                try:
                    run(method, eps, bits)
                except ValueError as exc:  # the ring cannot hold enough noise for this epsilon
                    rows.append({"method": method, "bits": bits, "epsilon_target": eps, "epsilon": None, "accuracy": None, "error": str(exc)})
    print_table(rows, epsilons, bit_list)
    if args.plot:
        plot(rows, epsilons, bit_list, args.plot)
        print(f"\nplot: {args.plot}; {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(rows))


def cell(rows, method, eps, bits=None):
    for r in rows:
        if r["method"] == method and r["epsilon_target"] == eps and r["bits"] == bits:
            return "n/a" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
    return ""


def print_table(rows, epsilons, bit_list):
    none = next(r for r in rows if r["method"] == "none")
    print(f"| mechanism | " + " | ".join(f"eps = {e:g}" for e in epsilons) + " |")
    print("|---|" + "---|" * len(epsilons))
    print(f"| no privacy | " + " | ".join(f"{none['accuracy']:.3f}" for _ in epsilons) + " |")
    print(f"| central Gaussian | " + " | ".join(cell(rows, "central", e) for e in epsilons) + " |")
    for method in ("gaussian", "skellam"):
        for bits in bit_list:
            name = "DDP discrete Gaussian" if method == "gaussian" else "DDP Skellam"
            print(f"| {name}, b = {bits} | " + " | ".join(cell(rows, method, e, bits) for e in epsilons) + " |")


def plot(rows, epsilons, bit_list, path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    none = next(r for r in rows if r["method"] == "none")["accuracy"]
    for ax, method, title in ((axes[0], "gaussian", "distributed discrete Gaussian"), (axes[1], "skellam", "distributed Skellam")):
        ax.axhline(none, color="grey", linestyle=":", label="no privacy")
        ax.plot(epsilons, [float(cell(rows, "central", e)) for e in epsilons], "k-o", label="central Gaussian")
        for i, bits in enumerate(bit_list):
            pts = [(e, r["accuracy"]) for e in epsilons for r in rows
                   if r["method"] == method and r["epsilon_target"] == e and r["bits"] == bits and r["accuracy"] is not None]
            if pts:
                ax.plot(*zip(*pts), "--s", color=f"C{i}", label=f"b = {bits}", markersize=4)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("epsilon (delta = 1e-5)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("test accuracy (digits)")
    fig.suptitle("DP-FedAvg on scikit-learn digits: test accuracy against epsilon", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
