"""LeptonSecAggWorkflow(dp=...) inside Flower's simulation: a noisy mean of clipped updates, epsilon per round."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")

from lepton_secagg.dp import DdpEncoding  # noqa: E402
from lepton_secagg.dp.accounting import Accountant  # noqa: E402
from lepton_secagg.integrations.flower import LeptonSecAggWorkflow  # noqa: E402
from tests.test_flower import SHAPES, delta, make_client_app, once, run  # noqa: E402,F401

SIZE = sum(math.prod(s) for s in SHAPES)


def test_flower_workflow_with_distributed_dp(once):  # noqa: F811
    n = 5
    enc = DdpEncoding.calibrate("gaussian", length=SIZE, bits=20, clip=4.0, noise_multiplier=0.05, clients=n, min_clients=n - 1)
    wf = LeptonSecAggWorkflow(reconstruction_threshold=3, timeout=120, dp=enc, dp_delta=1e-5)
    history = run(wf, make_client_app({(1, "masked_input"): {2}}), n, num_rounds=1)
    (report,) = wf.reports
    assert report.error is None and len(report.included) == n - 1 and report.config.bits == 20
    assert report.config.vector_length == enc.padded_length
    pids = [p for p in range(n) if p != 2]  # node ids sort like partition ids in the simulation
    truth = np.concatenate([sum(delta(p)[i].astype(np.float64) for p in pids).ravel() / len(pids) for i in range(len(SHAPES))])
    got = np.concatenate([a.astype(np.float64).ravel() for a in history[0]])
    predicted = math.sqrt(enc.expected_error_sq(n - 1)) / (n - 1)
    assert 0.3 * predicted < float(np.linalg.norm(got - truth)) < 2.5 * predicted
    reference = Accountant(1e-5)
    assert math.isclose(report.epsilon, reference.record(enc, n - 1), rel_tol=1e-12)


def test_flower_workflow_refuses_a_dp_that_is_not_an_encoding():
    with pytest.raises(ValueError, match="DdpEncoding"):
        LeptonSecAggWorkflow(dp="gaussian")
