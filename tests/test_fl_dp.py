"""fl.Server(dp=...) over loopback TCP: noisy rounds, epsilon in the round log, audit log and plot."""
from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_secagg.dp import Plan  # noqa: E402
from lepton_secagg.fl import Client, ModelState, Server, build_model, verify_log  # noqa: E402
from lepton_secagg.hazmat.rng import DeterministicRng  # noqa: E402

ARCH = "mlp:4,3,2"  # 23 float parameters
N, ROUNDS = 3, 2


def _delta(i, r, size):
    return np.random.default_rng(10 * r + i).uniform(-0.1, 0.1, size)


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("fldp")
    torch.manual_seed(0)
    model = build_model(ARCH)
    size = ModelState.from_state_dict(model.state_dict()).num_float
    plan = Plan("gaussian", clients=N, rounds=ROUNDS, delta=1e-5, clip=1.0, bits=20, length=size, min_clients=2)
    enc = plan.encoding(0.05)
    srv = Server(model=model, architecture=ARCH, name="toy", clients=N, rounds=ROUNDS, dp=enc, dp_delta=1e-5,
                 audit_log=tmp / "audit.jsonl", plot=tmp / "progress.png", join_timeout=20, round_timeout=20,
                 rng=DeterministicRng("fl-dp-server")).start()
    errors = []

    def org(i):
        try:
            c = Client(srv.address, organisation=f"org-{i}", timeout=60, dp=enc, rng=DeterministicRng(f"fl-dp-{i}"))
            c.register()
            c.evaluate(data=(np.zeros((4, 4), np.float32), np.zeros(4, np.int64)))
            for r in range(1, ROUNDS + 1):
                m = c.load_model("toy")

                def train_fn(module, r=r):
                    state = ModelState.from_state_dict(module.state_dict())
                    module.load_state_dict(state.with_float_vector(state.float_vector() + _delta(c.client_id, r, size)).to_state_dict())
                    return 1

                c.train(m, train_fn=train_fn)
                c.send_update(m)
                c.evaluate(data=(np.zeros((4, 4), np.float32), np.zeros(4, np.int64)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=org, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return srv, srv.join(60), plan, enc, size, tmp


def test_each_round_moves_the_model_by_the_noisy_mean(dp_run):
    srv, result, plan, enc, size, _ = dp_run
    versions = [srv.registry.get("toy", v).state.float_vector() for v in range(ROUNDS + 1)]
    for r in range(1, ROUNDS + 1):
        assert result.rounds[r - 1]["included"] == list(range(N))
        step = versions[r] - versions[r - 1]
        truth = np.mean([_delta(i, r, size) for i in range(N)], axis=0)
        predicted = math.sqrt(enc.expected_error_sq(N)) / N
        error = float(np.linalg.norm(step - truth))
        assert 0.3 * predicted < error < 2.0 * predicted, (error, predicted)


def test_epsilon_is_recorded_for_the_clients_included(dp_run):
    srv, result, plan, enc, _, tmp = dp_run
    eps = [r["dp"]["epsilon"] for r in result.rounds]
    assert eps[0] < eps[1]
    # Three survivors, not the minimum of two: less than the plan's worst case.
    assert math.isclose(eps[1], Plan("gaussian", clients=N, rounds=2, delta=1e-5, clip=1.0, bits=20,
                                     length=enc.length).epsilon(enc, survivors=N), rel_tol=1e-9)
    assert eps[1] < plan.epsilon(enc)
    assert [h.get("epsilon") for h in result.history] == [0.0, *eps]
    lines = [json.loads(line) for line in (tmp / "audit.jsonl").read_text().splitlines()]
    train_ends = [e["data"] for e in lines if e["event"] == "round_end" and e["data"].get("phase") == "train"]
    assert [d["dp"]["epsilon"] for d in train_ends] == eps
    assert train_ends[0]["dp"]["bits"] == 20 and train_ends[0]["dp"]["delta"] == 1e-5
    assert train_ends[0]["dp"]["noise_variance"] == str(enc.noise)
    assert verify_log(tmp / "audit.jsonl", key=srv.public_key).complete
    assert (tmp / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_server_refuses_an_encoding_of_the_wrong_length():
    from lepton_secagg.dp import DdpEncoding

    enc = DdpEncoding.calibrate("gaussian", length=5, bits=16, clip=1.0, noise_multiplier=1.0, clients=3)
    with pytest.raises(ValueError, match="length 23"):
        Server(model=build_model(ARCH), architecture=ARCH, name="toy", clients=3, rounds=1, dp=enc)
