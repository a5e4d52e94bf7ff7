"""The FL client's device path (issue 13) on CPU tensors: one organisation sends through the seam.

``fl.device.on_accelerator`` is what sends a CUDA model's update through
``adapters.torch.device_float_input``; here it is made to say yes for one
organisation's thread, so its update is formed as a torch tensor and set with
``Client.set_input`` while the other two take the numpy path.  The round must
still give the plaintext weighted average (within one quantisation step).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_secagg.fl import Client, ModelState, Server, build_model  # noqa: E402
from lepton_secagg.fl import device as fl_device  # noqa: E402

ARCH = "mlp:4,3,2"
WEIGHTS = {0: 40, 1: 25, 2: 60}
DEVICE_ORG = "org-1"
DATA = (np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32), np.arange(8) % 2)


def _delta(i, size):
    return np.random.default_rng(7 + i).uniform(-0.5, 0.5, size)


def test_one_device_client_in_a_round_gives_the_weighted_average(monkeypatch):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    monkeypatch.setattr(fl_device, "on_accelerator", lambda model: threading.current_thread().name == DEVICE_ORG)
    sent = []
    real_update = fl_device.device_update
    monkeypatch.setattr(fl_device, "device_update", lambda *a: sent.append(threading.current_thread().name) or real_update(*a))
    srv = Server(model=build_model(ARCH), architecture=ARCH, name="toy", clients=3, rounds=1, clip=1.0, max_weight=100,
                 join_timeout=20, round_timeout=20, linger=0.5).start()
    errors, outcomes = [], {}

    def org(i):
        try:
            c = Client(srv.address, organisation=f"org-{i}", timeout=60)
            c.register()
            c.evaluate(data=DATA)  # the server evaluates before and after each round
            m = c.load_model("toy")

            def train_fn(module):  # a known update: global + delta, declared weight
                state = ModelState.from_state_dict(module.state_dict())
                module.load_state_dict(state.with_float_vector(state.float_vector() + _delta(c.client_id, state.num_float)).to_state_dict())
                return WEIGHTS[c.client_id]

            c.train(m, train_fn=train_fn)
            outcomes[c.client_id] = c.send_update(m)
            c.evaluate(data=DATA)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=org, args=(i,), name=f"org-{i}") for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    result = srv.join(60)
    assert not errors, errors
    assert sent == [DEVICE_ORG]  # exactly one update went through the seam
    assert all(o.ok for o in outcomes.values())
    versions = srv.registry.versions("toy")
    included = result.rounds[0]["included"]
    assert included == [0, 1, 2]
    base = versions[0].state.float_vector()
    total = sum(WEIGHTS[i] for i in included)
    expected = base + sum(WEIGHTS[i] * _delta(i, base.size) for i in included) / total
    got = versions[1].state.float_vector()
    assert np.max(np.abs(got - expected)) <= srv.quantizer.step + 1e-6
    assert np.max(np.abs(got - base)) > 100 * srv.quantizer.step


def test_device_delta_equals_the_numpy_update_and_checks_the_structure():
    torch.manual_seed(1)
    model = build_model(ARCH)
    base = ModelState.from_state_dict(model.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.25)
    new = ModelState.from_state_dict(model.state_dict())
    np.testing.assert_array_equal(fl_device.device_delta(model, base).numpy(), new.float_vector() - base.float_vector())
    assert not fl_device.on_accelerator(model)  # a CPU model keeps the numpy path
    with pytest.raises(ValueError, match="differ in name, dtype or shape"):
        fl_device.device_delta(build_model("mlp:4,5,2"), base)
