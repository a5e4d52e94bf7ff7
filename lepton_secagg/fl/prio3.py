"""Federated averaging through Prio3 with the bounded-L2 circuit: a torch model, validated updates.

``Prio3FedAvg`` is the FL path of issue 15.  Each client trains locally and
turns its model delta (float tensors only) into a Prio3 report: the delta is
clipped to L2 norm ``bound`` (a standard FL step, and what the proof then
certifies), scaled into the unit ball and quantised to ``bits``-bit fixed
point.  ``aggregate`` verifies the reports with the two aggregators (in this
process, ``mpc.batch``; ``mpc.service`` runs the same steps over TCP), drops
every report whose proof fails, and applies the mean of the accepted deltas.
The server never sees an individual delta, and a delta over the bound cannot
get into the average.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..hazmat.rng import Rng, resolve
from ..mpc.batch import BatchResult, Report, aggregate_in_process, make_report
from ..mpc.l2 import L2_VDAF_ID, BoundedL2VecSum, norm_bound_sq
from ..mpc.prio3 import Prio3
from .model import ModelState

if TYPE_CHECKING:  # torch stays a lazy import at run time
    import torch

__all__ = ["Prio3FedAvg", "RoundResult", "local_sgd"]


@dataclass(frozen=True)
class RoundResult:
    """One round: the new global state and the batch (accepted and refused report ids)."""

    state: ModelState
    batch: BatchResult[list[int]]


class Prio3FedAvg:
    """Rounds of FedAvg whose updates are aggregated by Prio3 with proven L2-bounded deltas.

    Args:
        state: the initial global model (``ModelState.from_state_dict(model.state_dict())``).
        bound: the L2 bound on one client's delta (over all float tensors).
        bits: fixed-point bits per entry (entries are ``delta / bound`` in [-1, 1)).
        min_batch_size: the fewest accepted updates a round may average.
        ctx: the task context bound into every report.
        rng: the injectable randomness (reports, verify key); the OS CSPRNG by default.
    """

    def __init__(self, state: ModelState, *, bound: float, bits: int = 16, min_batch_size: int = 2,
                 ctx: bytes = b"lepton-secagg fl prio3", rng: Rng | None = None):
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound!r}.")
        self.state, self.bound, self.ctx, self.min_batch_size = state, float(bound), ctx, min_batch_size
        self.rng = resolve(rng)
        self.circuit = BoundedL2VecSum(state.num_float, bits, norm_bound_sq(1.0, bits))
        self.vdaf = Prio3(L2_VDAF_ID, self.circuit, 2)
        self.verify_key = self.rng.bytes(self.vdaf.VERIFY_KEY_SIZE)

    def client_report(self, trained: ModelState) -> Report:
        """A client's report for the delta from the current global state to ``trained``."""
        delta = trained.float_vector() - self.state.float_vector()
        norm = float(np.linalg.norm(delta))
        # 0.999: keep fixed-point rounding from lifting a clipped delta over the proven bound.
        if norm > 0.999 * self.bound:
            delta = delta * (0.999 * self.bound / norm)
        return make_report(self.vdaf, self.ctx, self.circuit.quantise(delta / self.bound), self.rng)

    def aggregate(self, reports: Iterable[Report]) -> RoundResult:
        """Verify, sum the valid reports, and move the global model by their mean delta."""
        batch = aggregate_in_process(self.vdaf, self.verify_key, self.ctx, list(reports),
                                     min_batch_size=self.min_batch_size)
        mean = np.array(batch.result, dtype=np.float64) / self.circuit.scale * self.bound / len(batch.accepted)
        self.state = self.state.with_float_vector(self.state.float_vector() + mean)
        return RoundResult(self.state, batch)


def local_sgd(model: torch.nn.Module, state: ModelState, x: npt.ArrayLike, y: npt.ArrayLike, *, epochs: int = 1, lr: float = 0.1,
              batch_size: int = 32, seed: int = 0) -> ModelState:
    """Train ``model`` (loaded with ``state``) with cross-entropy SGD on ``(x, y)``; return the new state."""
    import torch

    model.load_state_dict(state.to_state_dict())
    optimiser = torch.optim.SGD(model.parameters(), lr=lr)
    xs, ys = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    order = np.random.default_rng(seed)  # batch order only
    for _ in range(epochs):
        perm = order.permutation(len(ys))
        for start in range(0, len(ys), batch_size):
            idx = torch.as_tensor(perm[start : start + batch_size])
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
            optimiser.step()
    return ModelState.from_state_dict(model.state_dict())
