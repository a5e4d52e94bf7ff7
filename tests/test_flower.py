"""The Flower integration: our mod and workflow inside Flower's own simulation engine.

Runs only where flwr (and ray, for ``run_simulation``) is installed; see
``docs/integrations/flower.md``.  Each simulation starts ray (about 10 s), so
the simulations run once per session, not once per kernel backend: the
ClientApps run in ray worker processes, which pick their kernel backend at
import and do not see the ``kernel_backend`` patch anyway.
"""
from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

flwr = pytest.importorskip("flwr")
pytest.importorskip("ray")

import lepton_secagg._kernels as kernels  # noqa: E402
from lepton_secagg._kernels import _native  # noqa: E402
from lepton_secagg.integrations.flower import RECORD_KEY, LeptonSecAggWorkflow, lepton_secagg_mod  # noqa: E402

SHAPES = [(3, 4), (5,)]


@pytest.fixture
def once(kernel_backend):
    """Skip the second pass of the suite: run with the C backend when there is one, else with numpy."""
    if kernel_backend is _native and kernels.BACKEND == "c":
        pytest.skip("Flower simulations run once per session (with the C backend pass).")


def delta(pid: int):
    rng = np.random.default_rng(1000 + pid)
    return [rng.uniform(-1, 1, s).astype(np.float32) for s in SHAPES]


def examples(pid: int) -> int:
    return 10 * (pid + 1)


def weighted_average(pids, base):
    total = sum(examples(p) for p in pids)
    return [b.astype(np.float64) + sum(examples(p) * delta(p)[i].astype(np.float64) for p in pids) / total
            for i, b in enumerate(base)]


def make_client_app(drops: dict, sleeps: dict | None = None, mod=lepton_secagg_mod, before=()):
    """A ClientApp whose fit adds a fixed delta; ``drops`` maps (server round, stage) -> partition ids that raise."""
    from flwr.client import NumPyClient
    from flwr.clientapp import ClientApp

    sleeps = sleeps or {}

    class DeltaClient(NumPyClient):
        def __init__(self, pid):
            self.pid = pid

        def fit(self, parameters, config):
            return [p + d for p, d in zip(parameters, delta(self.pid))], examples(self.pid), {"pid": self.pid}

    def client_fn(context):
        return DeltaClient(int(context.node_config["partition-id"])).to_client()

    def dropper(msg, ctxt, call_next):
        """An outer mod: some nodes fail (or stall) in chosen rounds, like a crashed or unreachable client."""
        record = msg.content.config_records.get(RECORD_KEY)
        if record is not None:
            key = (int(msg.metadata.group_id), record["stage"])
            pid = int(ctxt.node_config["partition-id"])
            if pid in drops.get(key, ()):
                raise RuntimeError(f"partition {pid} drops out at {key}")
            if pid in sleeps.get(key, ()):
                time.sleep(sleeps["seconds"])
        return call_next(msg, ctxt)

    return ClientApp(client_fn=client_fn, mods=[dropper, *before, mod])


def run(workflow, client_app, num_supernodes: int, num_rounds: int):
    """Run Flower's simulation; returns the global parameters after each round."""
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import LegacyContext, ServerApp, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow
    from flwr.simulation import run_simulation

    history = []

    class Recording(FedAvg):
        def aggregate_fit(self, server_round, results, failures):
            params, metrics = super().aggregate_fit(server_round, results, failures)
            history.append(parameters_to_ndarrays(params))
            return params, metrics

    server_app = ServerApp()

    @server_app.main()
    def main(grid, context):
        strategy = Recording(
            fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=num_supernodes, min_available_clients=num_supernodes,
            initial_parameters=ndarrays_to_parameters([np.zeros(s, np.float32) for s in SHAPES]),
        )
        ctx = LegacyContext(context=context, config=ServerConfig(num_rounds=num_rounds), strategy=strategy)
        DefaultWorkflow(fit_workflow=workflow)(grid, ctx)

    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=num_supernodes,
                   backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": 2}})
    return history


def test_flower_simulation_weighted_average_with_dropouts(once):
    """Round 1: all 9 clients; round 2: one client drops in each protocol round and the round completes."""
    n = 9
    drops = {(2, "advertise_keys"): {0}, (2, "share_keys"): {1}, (2, "masked_input"): {2}, (2, "unmasking"): {3}}
    wf = LeptonSecAggWorkflow(reconstruction_threshold=5, clipping_range=4.0, timeout=120)
    history = run(wf, make_client_app(drops), n, num_rounds=2)
    assert len(history) == 2 and len(wf.reports) == 2

    r1, r2 = wf.reports
    assert r1.error is None and len(r1.included) == n and r1.dropped == {}
    step = r1.quantizer.step
    expected1 = weighted_average(range(n), [np.zeros(s) for s in SHAPES])
    for got, want in zip(history[0], expected1):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=step + 1e-6)
    assert r1.total_weight == sum(examples(p) for p in range(n))

    # Round 2: partitions 0..2 are not in the sum; 3 dropped at unmasking, so it is.
    assert r2.error is None
    assert sorted(r2.dropped.values()) == ["advertise_keys", "masked_input", "share_keys", "unmasking"]
    assert len(r2.included) == n - 3
    assert r2.total_weight == sum(examples(p) for p in range(3, n))
    expected2 = weighted_average(range(3, n), history[0])
    for got, want in zip(history[1], expected2):
        np.testing.assert_allclose(got, want, rtol=0, atol=r2.quantizer.step + 1e-6)


@pytest.mark.slow
def test_flower_simulation_silent_node_is_dropped_at_timeout(once):
    """A node that never answers within ``timeout`` is dropped; the others' weighted average is exact."""
    n = 5

    class WarmUp(LeptonSecAggWorkflow):
        """Round 1 waits for every reply (ray starts its workers); round 2 has a 5 s timeout."""

        def __call__(self, grid, context):
            self.timeout = None if not self.reports else 5.0
            super().__call__(grid, context)

    sleeps = {(2, "share_keys"): {4}, "seconds": 15}
    wf = WarmUp(reconstruction_threshold=3)
    history = run(wf, make_client_app({}, sleeps), n, num_rounds=2)
    report = wf.reports[1]
    assert report.error is None
    assert list(report.dropped.values()) == ["share_keys"] and len(report.included) == n - 1
    expected = weighted_average(range(n - 1), history[0])
    for got, want in zip(history[1], expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=report.quantizer.step + 1e-6)


# --- no simulation needed ------------------------------------------------------------------


def test_flower_knobs_map_to_config():
    wf = LeptonSecAggWorkflow(num_shares=5, reconstruction_threshold=3)
    cfg = wf.make_config(100, 10)
    assert (cfg.neighbors, cfg.threshold, cfg.neighborhood_size) == (4, 3, 5)
    assert LeptonSecAggWorkflow(num_shares=6, reconstruction_threshold=4).make_config(100, 10).neighbors == 6  # odd, as Flower
    full = LeptonSecAggWorkflow(num_shares=1.0, reconstruction_threshold=0.6).make_config(10, 10)
    assert (full.neighbors, full.threshold) == (None, 6)
    finder = LeptonSecAggWorkflow(corrupt_fraction=0.05, dropout_fraction=0.1).make_config(1000, 10)
    assert finder.neighbors is not None and finder.neighbors < 999


def test_flower_refuses_a_quantisation_that_could_wrap():
    # Flower's defaults (2^22 levels, max_weight 1000, 32-bit ring) wrap a sum of 10 clients silently; we refuse.
    with pytest.raises(ValueError, match="could wrap"):
        LeptonSecAggWorkflow(quantization_range=2**22, max_weight=1000, bits=32)
    wf = LeptonSecAggWorkflow(quantization_range=2**12, max_weight=100, bits=32)
    wf.make_quantizer(1000)
    with pytest.raises(ValueError, match="could wrap"):
        wf.make_quantizer(20000)
    assert LeptonSecAggWorkflow(quantization_range=2**22, max_weight=1000, bits=64).make_quantizer(10).levels == 2**22 - 1


def test_flower_mod_refuses_a_plain_train_message():
    from types import SimpleNamespace

    from flwr.app import Context, RecordDict
    from flwr.app.message_type import MessageType

    # A stand-in: a real Message needs a running Flower task identity.
    msg = SimpleNamespace(metadata=SimpleNamespace(message_type=MessageType.TRAIN), content=RecordDict())
    ctxt = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    with pytest.raises(ValueError, match="in the clear"):
        lepton_secagg_mod(msg, ctxt, lambda m, c: pytest.fail("the fit ran without secure aggregation"))


def test_flower_is_imported_only_by_the_integration():
    code = "import sys, lepton_secagg, lepton_secagg.integrations.flower; assert 'flwr' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_flower_nodes_refuse_what_their_own_policy_does_not_accept(once):
    """The workflow proposes a 32-bit ring; every node's policy (set on the node, not by the server) demands 64."""
    from lepton_secagg import Policy
    from lepton_secagg.integrations.flower import lepton_secagg_mod_with

    wf = LeptonSecAggWorkflow(clipping_range=4.0, timeout=60)
    history = run(wf, make_client_app({}, mod=lepton_secagg_mod_with(Policy(bits=64))), 5, num_rounds=1)
    assert history == [] and wf.reports[0].error is not None  # nothing was aggregated
    assert wf.reports[0].dropped == {nid: "advertise_keys" for nid in wf.reports[0].node_ids}


def test_node_policy_reads_the_node_config_and_names_a_bad_key():
    from lepton_secagg import Policy
    from lepton_secagg.integrations.flower import node_policy

    policy = node_policy({"lepton-secagg-min-corrupt": "0.2", "lepton-secagg-bits": 64, "partition-id": 3})
    assert policy == Policy(corrupt_fraction=0.2, bits=64)
    assert node_policy({}, Policy(mode="active")) == Policy(mode="active")
    with pytest.raises(ValueError, match="lepton-secagg-min-corrupt"):
        node_policy({"lepton-secagg-min-corrupt": "1.5"})


@pytest.mark.parametrize("n", [5, 20])
def test_flower_example_settings_at_flowers_precision(once, n):
    """Flower's secure-aggregation example: num-shares 3, reconstruction-threshold 2, max-weight 9000.

    The ring is chosen for Flower's default step (16 / 2^22 with clipping range 8) and the global model
    equals the weighted average within that step; with 20 clients one node drops out in share_keys
    through ``demo_dropout_mod``, as the example's demo mode does, with no workflow subclass.
    """
    from lepton_secagg.integrations.flower import demo_dropout_mod

    wf = LeptonSecAggWorkflow(num_shares=3, reconstruction_threshold=2, max_weight=9000, timeout=120)
    dropped = {3} if n == 20 else set()
    app = make_client_app({}, before=[demo_dropout_mod("share_keys", dropped)] if dropped else [])
    history = run(wf, app, n, num_rounds=1)
    report = wf.reports[0]
    flower_step = 2 * 8.0 / 2**22
    assert report.error is None and report.quantizer.step <= flower_step
    assert report.config.bits == (n * 9000 * math.ceil(16 / flower_step)).bit_length()  # the smallest ring that cannot wrap
    pids = sorted(set(range(n)) - dropped)
    assert len(report.included) == len(pids)
    for got, want in zip(history[0], weighted_average(pids, [np.zeros(s) for s in SHAPES])):
        np.testing.assert_allclose(got, want, rtol=0, atol=flower_step + 1e-6)  # float32 output
