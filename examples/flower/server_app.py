"""The ServerApp: FedAvg whose fit rounds aggregate with lepton_secagg."""
from __future__ import annotations

import numpy as np
from flwr.app import Context
from flwr.common import ndarrays_to_parameters
from flwr.server import Grid, LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow

from lepton_secagg.integrations.flower import LeptonSecAggWorkflow

from client_app import SHAPES

NUM_ROUNDS = 3
workflow = LeptonSecAggWorkflow(  # Flower's version: SecAggPlusWorkflow(num_shares=..., reconstruction_threshold=...)
    num_shares=None,               # None + None: Bell et al.'s finder picks the graph and threshold
    reconstruction_threshold=None,
    dropout_fraction=0.2,
    clipping_range=2.0,
    timeout=60,
)
app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    strategy = FedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=5, min_available_clients=5,
        initial_parameters=ndarrays_to_parameters([np.zeros(s, np.float32) for s in SHAPES]),
    )
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=NUM_ROUNDS), strategy=strategy)
    DefaultWorkflow(fit_workflow=workflow)(grid, legacy)
    for report in workflow.reports:
        print(f"round {report.server_round}: {len(report.included)} of {len(report.node_ids)} clients in the average, "
              f"total weight {report.total_weight}, dropped {sorted(report.dropped.values())}, "
              f"{sum(report.seconds.values()):.2f} s")
