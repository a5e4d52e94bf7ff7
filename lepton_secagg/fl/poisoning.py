"""The poisoning demo: one malicious client among many, aggregated with SecAgg and with Prio3 + the L2 circuit.

Federated linear regression (numpy only, synthetic data): every round each
client sends ``-lr * gradient`` of its local squared loss, clipped to L2
norm ``bound``; the server adds the updates to the model.  Client 0 is
malicious: it sends ``-scale`` times its honest update (a boosted,
reversed update: ``scale = 10^6`` by default).

* **SecAgg** (``testing.simulate``, the real protocol in memory): the server
  sees only the sum.  Each coordinate of the attacker's update is clipped to
  the quantiser's range, as its own encoder allows, but nothing bounds the
  update's norm, so it is ``bound * sqrt(dim)`` and the model diverges.
* **Prio3 with BoundedL2VecSum** (two aggregators, in process): honest
  clients prove ``||update|| <= bound``; the attacker cannot encode its
  update honestly (the client-side check refuses it), so it forges the norm
  claim, and its report fails verification and is left out.  Training
  proceeds on the honest clients' updates.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..config import Config
from ..encoding import Quantizer
from ..hazmat.rng import DeterministicRng
from ..mpc.batch import aggregate_in_process, make_report
from ..mpc.field import FieldVec
from ..mpc.l2 import L2_VDAF_ID, BoundedL2VecSum, norm_bound_sq
from ..mpc.prio3 import Prio3
from ..testing import simulate

__all__ = ["PoisoningResult", "run"]

_CTX = b"lepton-secagg poisoning demo"


@dataclass(frozen=True)
class PoisoningResult:
    """Test loss per round (after each update) for each way of aggregating, and the refused reports.

    Attributes:
        clean: no attacker (the honest clients only, plain sum).
        secagg: the attacker in, SecAgg sums.
        prio3: the attacker in, Prio3 + L2 circuit.
        rejected: per round, how many Prio3 reports failed verification.
    """

    clean: list[float]
    secagg: list[float]
    prio3: list[float]
    rejected: list[int]


class _ForgedNorm(BoundedL2VecSum):
    """The attacker's encoder: its real (over-bound) entries, a norm claim at the bound."""

    def __init__(self, honest: BoundedL2VecSum):
        self.__dict__.update(honest.__dict__)

    def encode(self, measurement: npt.ArrayLike) -> FieldVec:
        q = np.asarray(measurement, dtype=np.int64)
        digits = [((int(v) + self.offset) >> i) & 1 for v in q for i in range(self.bits)]
        return np.array(digits + list(self.norm.encode([self.max_norm_sq])), dtype=object)


def _problem(num_clients: int, dim: int, seed: int) -> tuple[list[npt.NDArray[np.float64]], list[npt.NDArray[np.float64]]]:
    data = np.random.default_rng(seed)  # synthetic training data, not a secret
    w_true = data.normal(size=dim)
    xs = [data.normal(size=(40, dim)) for _ in range(num_clients)]
    ys = [x @ w_true + 0.1 * data.normal(size=40) for x in xs]
    return xs, ys


def _update(w: npt.NDArray[np.float64], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], lr: float, bound: float) -> npt.NDArray[np.float64]:
    u: npt.NDArray[np.float64] = -lr * 2 * x.T @ (x @ w - y) / len(y)
    norm = float(np.linalg.norm(u))
    # 0.999: leave room for fixed-point rounding under the proven bound.
    return u * min(1.0, 0.999 * bound / norm) if norm > 0 else u


def _loss(w: npt.NDArray[np.float64], xs: list[npt.NDArray[np.float64]], ys: list[npt.NDArray[np.float64]]) -> float:
    return float(np.mean([np.mean((x @ w - y) ** 2) for x, y in zip(xs, ys)]))


def run(num_clients: int = 10, rounds: int = 12, dim: int = 8, scale: float = 1e6, bound: float = 1.0,
        lr: float = 0.1, seed: int = 0) -> PoisoningResult:
    """Train three models side by side (clean, SecAgg under attack, Prio3 under attack)."""
    xs, ys = _problem(num_clients, dim, seed)
    quantizer = Quantizer(clip=bound, bits=32, num_clients=num_clients)
    cfg = Config(num_clients=num_clients, vector_length=dim)
    bits = 16
    circuit = BoundedL2VecSum(dim, bits, norm_bound_sq(1.0, bits))
    vdaf = Prio3(L2_VDAF_ID, circuit, 2)
    forger = Prio3(L2_VDAF_ID, _ForgedNorm(BoundedL2VecSum(dim, bits, norm_bound_sq(1.0, bits))), 2)
    rng = DeterministicRng(f"poisoning-{seed}")
    noise = np.random.default_rng(seed + 1)  # stochastic rounding only
    verify_key = rng.bytes(vdaf.VERIFY_KEY_SIZE)

    w_clean, w_secagg, w_prio3 = np.zeros(dim), np.zeros(dim), np.zeros(dim)
    out = PoisoningResult([], [], [], [])
    for _ in range(rounds):
        honest = [_update(w_clean, x, y, lr, bound) for x, y in zip(xs[1:], ys[1:])]
        w_clean = w_clean + np.sum(honest, axis=0) / len(honest)

        updates = [_update(w_secagg, x, y, lr, bound) for x, y in zip(xs, ys)]
        updates[0] = -scale * updates[0]
        encoded = [quantizer.encode(u, rng=noise)[0] for u in updates]  # the attacker's clipped per coordinate
        res = simulate(cfg, encoded, seed=int.from_bytes(rng.bytes(4), "big"))
        total = quantizer.decode(res.sum, len(res.included))
        assert not isinstance(total, tuple)  # an unweighted quantizer decodes to the sum alone
        w_secagg = w_secagg + total / len(res.included)

        updates = [_update(w_prio3, x, y, lr, bound) for x, y in zip(xs, ys)]
        reports = [make_report(vdaf, _CTX, circuit.quantise(u / bound), rng) for u in updates[1:]]
        attack = circuit.quantise(-scale * updates[0] / bound)
        reports.insert(0, make_report(forger, _CTX, attack, rng))
        batch = aggregate_in_process(vdaf, verify_key, _CTX, reports, min_batch_size=2)
        total = np.array(batch.result, dtype=np.float64) / circuit.scale * bound
        w_prio3 = w_prio3 + total / len(batch.accepted)

        out.clean.append(_loss(w_clean, xs, ys))
        out.secagg.append(_loss(w_secagg, xs, ys))
        out.prio3.append(_loss(w_prio3, xs, ys))
        out.rejected.append(len(batch.rejected))
    return out


def cmd_demo_poisoning(args: argparse.Namespace) -> int:
    """``lepton-secagg demo poisoning``: print the loss table; exit 0 iff Prio3 kept training on track."""
    import json

    from ..cli import EXIT_OK, EXIT_WRONG  # lazily: the demo also runs without the command line

    result = run(rounds=args.rounds, seed=0 if args.seed is None else args.seed)
    ok = (all(r == 1 for r in result.rejected) and abs(result.prio3[-1] - result.clean[-1]) <= 1e-3 * result.clean[-1]
          and result.secagg[-1] > 2 * result.clean[-1])
    if args.json:
        print(json.dumps({"ok": ok, "clean": result.clean, "secagg": result.secagg, "prio3": result.prio3,
                          "rejected": result.rejected}))
        return EXIT_OK if ok else EXIT_WRONG
    print("round   clean loss   SecAgg+attack   Prio3+L2+attack   reports refused")
    for i, row in enumerate(zip(result.clean, result.secagg, result.prio3, result.rejected), start=1):
        print(f"{i:5d}   {row[0]:10.4f}   {row[1]:13.4g}   {row[2]:15.4f}   {row[3]:15d}")
    print(f"Prio3 with the L2 circuit refused the attacker and trained as without it: {'yes' if ok else 'NO'}")
    return EXIT_OK if ok else EXIT_WRONG


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the poisoning demo")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    raise SystemExit(cmd_demo_poisoning(parser.parse_args()))
