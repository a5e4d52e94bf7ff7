"""The ClientApp: a toy NumPy "model" trained locally, aggregated with lepton_secagg.

Compared with Flower's secure-aggregation example, one line differs: the mod.
"""
from __future__ import annotations

import numpy as np
from flwr.app import Context
from flwr.client import Client, NumPyClient
from flwr.clientapp import ClientApp
from flwr.common import NDArrays, Scalar

from lepton_secagg.integrations.flower import lepton_secagg_mod

SHAPES = [(20, 10), (10,)]  # a tiny linear layer


class ToyClient(NumPyClient):
    def __init__(self, partition_id: int):
        self.partition_id = partition_id
        self.num_examples = 20 + 10 * partition_id  # the weight; it travels masked, inside the vector
        self.rng = np.random.default_rng(partition_id)

    def fit(self, parameters: NDArrays, config: dict[str, Scalar]) -> tuple[NDArrays, int, dict[str, Scalar]]:
        # "Training": a small step towards this client's own target.
        target = [np.full(s, 0.1 * self.partition_id, dtype=np.float32) for s in SHAPES]
        updated = [p + 0.5 * (t - p) + self.rng.normal(0, 0.01, p.shape).astype(np.float32)
                   for p, t in zip(parameters, target)]
        return updated, self.num_examples, {}


def client_fn(context: Context) -> Client:
    return ToyClient(int(context.node_config["partition-id"])).to_client()


app = ClientApp(client_fn=client_fn, mods=[lepton_secagg_mod])  # Flower's version: mods=[secaggplus_mod]
