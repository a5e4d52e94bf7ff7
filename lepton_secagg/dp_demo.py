"""``lepton-secagg demo dp``: one distributed-DP aggregation over loopback TCP.

Each client clips, rotates, rounds and noises a random float update
(``lepton_secagg.dp``), then takes part in a real SecAgg session over TCP;
some clients crash before sending their masked input.  The server decodes the
noisy sum and the demo reports the epsilon spent for the clients actually
included, the decoded mean's error against the plaintext mean of the clipped
updates, and the error the encoding predicts (noise + rounding).
"""
from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np

from .config import Config
from .dp.accounting import Plan
from .dp.mechanism import decode, encode
from .dp.rotation import round_seed
from .hazmat.rng import DeterministicRng, Rng, SystemRng
from .server import AggregationResult
from .transport.client import run_client
from .transport.server import AggregationServer

__all__ = ["run_dp_demo"]


def run_dp_demo(*, clients: int = 20, length: int = 1000, bits: int = 16, mechanism: str = "gaussian", epsilon: float = 1.0,
                delta: float = 1e-5, crashes: int = 2, seed: int | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """Run the demo; return its report as a dict (``ok``: the error is within twice the prediction).

    The report's values are of mixed types (numbers, a list of client ids),
    hence ``Any``: the CLI formats each one and emits the whole as JSON.
    """
    if not 0 <= crashes <= clients - 2:
        raise ValueError(f"crashes must lie in 0..{clients - 2} (the threshold needs a majority), got {crashes}.")
    data = np.random.default_rng(seed)
    updates = data.normal(0.02, 0.03, size=(clients, length))
    plan = Plan(mechanism, clients=clients, rounds=1, delta=delta, clip=1.0, bits=bits, length=length, min_clients=clients - crashes)
    enc = plan.noise_for(epsilon)
    label = b"lepton-secagg/demo/dp"
    cfg = Config(num_clients=clients, vector_length=enc.padded_length, bits=bits, session_label=label)
    secret: Rng = SystemRng() if seed is None else DeterministicRng(seed)
    vectors = [encode(enc, u, round_seed(label), secret)[0] for u in updates]
    crashed = {cid: "masked_input" for cid in data.choice(clients, size=crashes, replace=False).tolist()}

    async def go() -> tuple[AggregationServer, AggregationResult]:
        srv = AggregationServer(cfg, "127.0.0.1", 0, round_timeout=timeout, join_timeout=timeout)
        await srv.start()
        runs = [run_client("127.0.0.1", srv.port, cid, vectors[cid], drop_in=crashed.get(cid), timeout=timeout * 4)
                for cid in range(clients)]
        res, _ = await asyncio.gather(srv.run(), asyncio.gather(*runs))
        return srv, res

    srv, res = asyncio.run(go())
    included = list(res.included)
    mean = decode(enc, res.sum, round_seed(label)) / len(included)
    norms = np.linalg.norm(updates[included], axis=1, keepdims=True)
    truth = (updates[included] * np.minimum(1.0, enc.clip / norms)).mean(axis=0)
    error = float(np.linalg.norm(mean - truth))
    predicted = math.sqrt(enc.expected_error_sq(len(included))) / len(included)
    masked = srv.stats["masked_input"].bytes_up / len(included)
    return {
        "ok": error <= 2 * predicted, "mechanism": mechanism, "bits": bits, "clients": clients, "included": included,
        "epsilon": plan.epsilon(enc, survivors=len(included)), "epsilon_target": epsilon, "delta": delta,
        "noise_variance": float(enc.noise), "scale": enc.scale, "error": error, "predicted_error": predicted,
        "signal_norm": float(np.linalg.norm(truth)), "masked_input_bytes_per_client": masked,
        "ring_bytes_per_client": math.ceil(bits * enc.padded_length / 8), "seconds": srv.seconds,
    }
