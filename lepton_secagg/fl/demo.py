"""``lepton-secagg demo fedavg``: three hospitals, breast-cancer data, FedAvg with secure aggregation.

* Data: ``sklearn.datasets.load_breast_cancer`` (569 tumours, 30 features,
  shipped inside scikit-learn).  25 % is a held-out test set (stratified);
  the rest is split between three hospitals with strong label skew (hospital
  A gets 90 % of the malignant cases and 2 % of the benign ones, B 8 % / 18 %,
  C 2 % / 80 %).  Each hospital keeps 20 % of its share for local validation
  (the federated evaluation).
* Standardisation: the pooled mean and standard deviation of every feature
  come from **one secure sum** before training: each hospital sends
  ``[n, sum x, sum x^2]`` in 64-bit fixed point (2^-16) through an ordinary
  aggregation over loopback TCP, so the server learns only pooled sums.  They
  become the ``Standardize`` buffers of the initial model.
* Model: ``std+mlp:30,16,2`` (Standardize, Linear 30-16, ReLU, Linear 16-2),
  SGD with momentum 0.9, lr 0.05, batch 32, ``epochs`` local epochs per round.
* Baselines with the same model, the same initial weights and the same
  budget of ``rounds * epochs`` epochs: centralised training on the pooled
  training data, and each hospital alone on its own data (mean accuracy).
  All accuracies are on the held-out test set.
"""
from __future__ import annotations

import asyncio
import copy
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsFloat, SupportsInt, TextIO

import numpy as np
import numpy.typing as npt

from ..config import Config
from ..server import AggregationResult
from ..transport.client import run_client
from ..transport.server import AggregationServer
from .client import Client, evaluate_model, train_model
from .data import hospital_split
from .model import build_model
from .registry import ModelVersion
from .server import Server

if TYPE_CHECKING:  # torch stays a lazy import at run time
    import torch

__all__ = ["run_demo", "secure_feature_stats", "SHARES", "ARCHITECTURE"]

SHARES = [[0.9, 0.02], [0.08, 0.18], [0.02, 0.8]]  # hospital x class (malignant, benign)
HOSPITALS = ("hospital-a", "hospital-b", "hospital-c")
ARCHITECTURE = "std+mlp:30,16,2"
_FIXED = 1 << 16
_MASK = (1 << 64) - 1


def _fixed(values: Iterable[SupportsFloat]) -> npt.NDArray[np.uint64]:
    return np.array([int(round(float(v) * _FIXED)) & _MASK for v in values], dtype=np.uint64)


def _unfixed(values: Iterable[SupportsInt]) -> npt.NDArray[np.float64]:
    return np.array([((int(v) ^ (1 << 63)) - (1 << 63)) / _FIXED for v in values])


def secure_feature_stats(datasets: Sequence[npt.ArrayLike], *, label: bytes = b"lepton-fl/demo/feature-stats",
                         timeout: float = 30.0) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Pooled per-feature mean and std of ``datasets`` (a list of X arrays) from one secure sum over loopback TCP.

    Each party's vector is ``[n, sum x_j, sum x_j^2]`` in 64-bit two's-complement fixed point (2^-16).
    """
    arrays = [np.asarray(X, dtype=np.float64) for X in datasets]
    d = arrays[0].shape[1]
    vectors = []
    for X in arrays:
        vectors.append(np.concatenate([_fixed([len(X)]), _fixed(X.sum(0)), _fixed((X**2).sum(0))]))
    cfg = Config(num_clients=len(datasets), vector_length=1 + 2 * d, bits=64, session_label=label)

    async def go() -> AggregationResult:
        srv = AggregationServer(cfg, "127.0.0.1", 0, round_timeout=timeout, join_timeout=timeout)
        await srv.start()
        clients = asyncio.gather(*(run_client("127.0.0.1", srv.port, i, v, timeout=timeout) for i, v in enumerate(vectors)))
        res, _ = await asyncio.gather(srv.run(), clients)
        return res

    res = asyncio.run(go())
    if len(res.included) != len(datasets):
        raise RuntimeError("a hospital dropped out of the statistics round.")
    total = _unfixed(res.sum)
    n = total[0]
    mean = total[1 : 1 + d] / n
    var = np.maximum(total[1 + d :] / n - mean**2, 1e-12)
    return mean, np.sqrt(var)


def _fit(model: torch.nn.Module, X: npt.ArrayLike, y: npt.ArrayLike, epochs: int, seed: int,
         lr: float = 0.05) -> torch.nn.Module:
    train_model(model, X, y, epochs=epochs, seed=seed, lr=lr)
    return model


def _accuracy(model: torch.nn.Module, X: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float]:
    correct, total, loss = evaluate_model(model, X, y)
    return correct / total, loss / total


def run_demo(rounds: int = 10, *, epochs: int = 2, seed: int = 3, plot: str | Path | None = "fedavg_progress.png",
             audit_log: str | Path | None = None, crash: bool = False, quiet: bool = False, host: str = "127.0.0.1",
             stream: TextIO | None = None) -> dict[str, Any]:
    """Run the demo; returns the figures (see the module docstring), values of mixed types.

    ``crash=True`` makes hospital C drop out in the middle of round 1's
    aggregation.  Progress (one line per round, as each evaluation completes)
    goes to ``stream`` (default stdout) unless ``quiet``.
    """
    import torch
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    sink = sys.stdout if stream is None else stream

    def say(*parts: object) -> None:
        if not quiet:
            print(*parts, file=sink, flush=True)

    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)
    parts = hospital_split(y_pool, SHARES, seed)
    train, val = [], []
    for h, idx in enumerate(parts):
        tr, va = train_test_split(idx, test_size=0.2, stratify=y_pool[idx], random_state=seed + h)
        train.append((X_pool[tr], y_pool[tr]))
        val.append((X_pool[va], y_pool[va]))
        say(f"{HOSPITALS[h]}: {len(tr)} training / {len(va)} validation examples, "
            f"{(y_pool[tr] == 0).mean():.0%} malignant")
    say(f"held-out test set: {len(y_test)} examples")

    mean, std = secure_feature_stats([Xh for Xh, _ in train])
    say("standardisation statistics: pooled from one secure sum over loopback TCP")
    torch.manual_seed(seed)
    init = build_model(ARCHITECTURE)
    init.get_buffer("0.mean").copy_(torch.from_numpy(mean.astype(np.float32)))
    init.get_buffer("0.std").copy_(torch.from_numpy(std.astype(np.float32)))

    def test_metrics(version: ModelVersion) -> dict[str, float]:
        model = build_model(ARCHITECTURE)
        model.load_state_dict(version.state.to_state_dict())
        acc, loss = _accuracy(model, X_test, y_test)
        return {"test_accuracy": acc, "test_loss": loss}

    def progress(h: dict[str, float]) -> None:
        say(f"round {h['round']:>2}: federated eval accuracy {h['accuracy']:.3f} loss {h['loss']:.3f} "
            f"| test accuracy {h['test_accuracy']:.3f} ({h['contributors']} hospitals)")

    server = Server(host, 0, model=init, name="breast-cancer", architecture=ARCHITECTURE, clients=len(HOSPITALS),
                    rounds=rounds, clip=1.0, max_weight=10_000, audit_log=audit_log, plot=None,
                    evaluate_fn=test_metrics, join_timeout=30, round_timeout=30, on_evaluation=progress).start()
    say(f"FL server on {server.address}; {rounds} rounds x {epochs} local epoch(s); audit key {server.public_key[:16]}...")
    errors: list[str] = []

    def hospital(h: int) -> None:
        try:
            client = Client(server.address, organisation=HOSPITALS[h], timeout=120)
            client.run(data=train[h], eval_data=val[h], epochs=epochs, seed=seed * 10 + h,
                       drop_in={1: "masked_input"} if crash and h == 2 else None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(f"{HOSPITALS[h]}: {exc!r}")

    threads = [threading.Thread(target=hospital, args=(h,)) for h in range(len(HOSPITALS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = server.join()
    if errors:
        raise RuntimeError("; ".join(errors))

    budget = rounds * epochs
    Xc = np.concatenate([Xh for Xh, _ in train])
    yc = np.concatenate([yh for _, yh in train])
    central = _fit(copy.deepcopy(init), Xc, yc, budget, seed)
    central_acc, _ = _accuracy(central, X_test, y_test)
    local_accs = [_accuracy(_fit(copy.deepcopy(init), Xh, yh, budget, seed + h), X_test, y_test)[0] for h, (Xh, yh) in enumerate(train)]
    global_acc = result.history[-1]["test_accuracy"]
    history = [dict(h) for h in result.history]
    history[-1].update(centralized_accuracy=central_acc, local_accuracy=float(np.mean(local_accs)))
    plot_path = None
    if plot is not None:
        from .plot import plot_progress

        plot_path = str(plot_progress(history, plot, title=f"FedAvg + secure aggregation, 3 hospitals, breast cancer ({rounds} rounds)"))
    out = {
        "global_accuracy": global_acc,
        "centralized_accuracy": central_acc,
        "local_accuracy": float(np.mean(local_accs)),
        "local_accuracies": [float(a) for a in local_accs],
        "federated_eval_accuracy": result.history[-1]["accuracy"],
        "rounds": rounds,
        "epochs": epochs,
        "plot": plot_path,
        "audit_log": result.audit_log,
        "audit_key": result.public_key,
        "model_sha256": result.model.sha256,
        "contributors": [r.get("included") for r in result.rounds],
        "seconds": time.perf_counter() - t0,
    }
    say(f"global (federated) accuracy {global_acc:.3f} | centralised {central_acc:.3f} | "
        f"local only {out['local_accuracy']:.3f} (per hospital {', '.join(f'{a:.3f}' for a in local_accs)})")
    return out
