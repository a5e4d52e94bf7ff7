"""The FL path: FedAvg of a torch model through Prio3 with L2-bounded deltas, with and without an attacker."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_secagg.fl.model import ModelState, build_model  # noqa: E402
from lepton_secagg.fl.prio3 import Prio3FedAvg, local_sgd  # noqa: E402
from lepton_secagg.hazmat.rng import DeterministicRng  # noqa: E402
from lepton_secagg.mpc.batch import make_report  # noqa: E402
from lepton_secagg.mpc.l2 import BoundedL2VecSum, prio3_bounded_l2_vec_sum  # noqa: E402


def _data(seed=0, clients=5, n=60, features=4):
    data = np.random.default_rng(seed)  # synthetic training data
    w = data.normal(size=features)
    parts = []
    for _ in range(clients):
        x = data.normal(size=(n, features))
        parts.append((x, (x @ w > 0).astype(np.int64)))
    return parts


def _accuracy(model, state, parts):
    model.load_state_dict(state.to_state_dict())
    with torch.no_grad():
        return float(np.mean([(model(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy() == y).mean()
                              for x, y in parts]))


class _Forged(BoundedL2VecSum):
    def __init__(self, honest):
        self.__dict__.update(honest.__dict__)

    def encode(self, measurement):
        digits = [((int(v) + self.offset) >> i) & 1 for v in measurement for i in range(self.bits)]
        return np.array(digits + list(self.norm.encode([self.max_norm_sq])), dtype=object)


@pytest.mark.parametrize("attack", [False, True])
def test_fedavg_through_prio3_trains_and_drops_the_attacker(attack):
    torch.manual_seed(0)
    model = build_model("logreg:4,2")
    parts = _data()
    fed = Prio3FedAvg(ModelState.from_state_dict(model.state_dict()), bound=2.0, rng=DeterministicRng(1))
    before = _accuracy(model, fed.state, parts)
    for rnd in range(4):
        reports = [fed.client_report(local_sgd(model, fed.state, x, y, lr=0.5, seed=rnd)) for x, y in parts]
        if attack:
            forger = prio3_bounded_l2_vec_sum(2, fed.state.num_float, 16, fed.circuit.max_norm_sq)
            forger.flp.circuit = _Forged(forger.flp.circuit)
            poison = np.full(fed.state.num_float, -(2**15))  # every weight pushed to the bottom of its range
            reports.append(make_report(forger, fed.ctx, poison, DeterministicRng(rnd)))
        result = fed.aggregate(reports)
        assert len(result.batch.accepted) == len(parts)
        assert len(result.batch.rejected) == int(attack)
    after = _accuracy(model, fed.state, parts)
    assert after > 0.9 and after > before
