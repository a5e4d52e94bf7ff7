"""Federated learning over secure aggregation (lepton_secagg.fl): end to end over loopback TCP.

One run (3 organisations, 2 rounds, organisation 2 crashing in the middle of
round 1's aggregation) is shared by the checks of the aggregated model, the
registry, federated evaluation and the audit log.
"""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lepton_secagg import cli, wire  # noqa: E402
from lepton_secagg.exceptions import DecodeError  # noqa: E402
from lepton_secagg.fl import AuditError, Client, FLError, ModelState, Server, build_model, verify_log  # noqa: E402
from lepton_secagg.fl import protocol as P  # noqa: E402
from lepton_secagg.fl.client import evaluate_model  # noqa: E402
from lepton_secagg.fl.data import load_csv, write_csv  # noqa: E402
from lepton_secagg.fl.plot import plot_progress  # noqa: E402
from lepton_secagg.messages import ModelReply, PhaseOpen, PhaseRequest, TensorBlob  # noqa: E402

ARCH = "mlp:4,3,2"
N, ROUNDS = 3, 2
WEIGHTS = {0: 40, 1: 25, 2: 60}  # examples per organisation (the masked weights)
LIVE = []  # (history entry, training rounds finished) as Server(on_evaluation=...) reported them
CRASH = {(2, 1): "masked_input"}  # organisation 2 drops out in masked_input in round 1 (after sharing keys): not in that sum


def _data(i):
    rng = np.random.default_rng(100 + i)
    X = rng.normal(size=(30 + 5 * i, 4)).astype(np.float32)
    return X, (X[:, 0] + 0.3 * i > 0).astype(np.int64)


def _delta(i, r, size):
    return np.random.default_rng(1000 * r + i).uniform(-0.5, 0.5, size)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    LIVE.clear()  # one run per kernel backend
    tmp = tmp_path_factory.mktemp("fl")
    torch.manual_seed(0)
    srv = Server(model=build_model(ARCH), architecture=ARCH, name="toy", clients=N, rounds=ROUNDS, clip=1.0,
                 max_weight=100, audit_log=tmp / "audit.jsonl", plot=tmp / "progress.png", join_timeout=20, round_timeout=20,
                 linger=3.0, on_evaluation=lambda metrics: LIVE.append((dict(metrics), len(srv.round_log)))).start()
    outcomes, errors = {}, []

    def org(i):
        try:
            c = Client(srv.address, organisation=f"org-{i}", timeout=60)
            c.register()
            c.evaluate(data=_data(i))
            for r in range(1, ROUNDS + 1):
                m = c.load_model("toy")

                def train_fn(module, r=r):  # a known update: global + delta, declared weight
                    state = ModelState.from_state_dict(module.state_dict())
                    new = state.with_float_vector(state.float_vector() + _delta(c.client_id, r, state.num_float))
                    module.load_state_dict(new.to_state_dict())
                    return WEIGHTS[c.client_id]

                c.train(m, train_fn=train_fn)
                outcomes[(c.client_id, r)] = c.send_update(m, drop_in=CRASH.get((c.client_id, r)))
                c.evaluate(data=_data(c.client_id))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=org, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    downloads = _downloads(srv.address)  # the server lingers a few seconds after the last phase
    result = srv.join(60)
    return srv, result, outcomes, tmp, downloads


def _downloads(address):
    c = Client(address, organisation="org-0")
    out = {"v1": c.load_model("toy", version=1)}
    out["v1_info"] = c.model_info(out["v1"])
    out["latest_info"] = c.model_info(c.load_model("toy"))
    for key, name, version in (("missing_version", "toy", 7), ("missing_name", "other", -1)):
        with pytest.raises(FLError) as info:
            c.load_model(name, version=version)
        out[key] = str(info.value)
    return out


def test_each_evaluation_is_reported_as_it_is_recorded(run):
    _, result, *_ = run
    assert [metrics for metrics, _ in LIVE] == result.history
    assert [finished for _, finished in LIVE] == [0, 1, 2]  # live: before the later training rounds ran


def test_round_completes_despite_a_crash_and_equals_the_plaintext_weighted_average(run):
    srv, result, outcomes, _, _ = run
    assert outcomes[(2, 1)].status == "crashed"
    assert [r["included"] for r in result.rounds] == [[0, 1], [0, 1, 2]]
    versions = srv.registry.versions("toy")
    assert [v.contributors for v in versions] == [0, 2, 3]
    for r, included in ((1, [0, 1]), (2, [0, 1, 2])):
        base = versions[r - 1].state.float_vector()
        total = sum(WEIGHTS[i] for i in included)
        expected = base + sum(WEIGHTS[i] * _delta(i, r, base.size) for i in included) / total
        got = versions[r].state.float_vector()
        assert result.rounds[r - 1]["total_weight"] == total
        # quantisation error below one step, plus float32 storage of the tensors
        assert np.max(np.abs(got - expected)) <= srv.quantizer.step + 1e-6
        assert np.max(np.abs(got - base)) > 100 * srv.quantizer.step  # the update did move the model


def test_registry_versions_and_hashes(run):
    srv, result, _, _, downloads = run
    versions = srv.registry.versions("toy")
    assert [v.version for v in versions] == [0, 1, 2] and [v.round for v in versions] == [0, 1, 2]
    assert len({v.sha256 for v in versions}) == 3
    for v in versions:
        assert v.digest == ModelState.from_blobs(v.state.to_blobs()).digest
    assert result.model.sha256 == versions[-1].sha256
    assert [s["sha256"] for s in result.versions] == [v.sha256 for v in versions]
    # a client downloads any version by name and number, with its hash checked
    assert downloads["v1_info"].digest == versions[1].digest and downloads["v1_info"].version == 1
    assert ModelState.from_state_dict(downloads["v1"].state_dict()).digest == versions[1].digest
    assert downloads["latest_info"].version == 2
    assert "versions 0..2" in downloads["missing_version"]
    assert "no model named" in downloads["missing_name"]


def test_canonical_hash_is_stable_and_sensitive():
    a = ModelState((("w", np.arange(6, dtype=np.float32).reshape(2, 3)), ("n", np.array(3, dtype=np.int64))))
    assert a.digest == ModelState.from_blobs(a.to_blobs()).digest
    b = ModelState((("w", np.arange(6, dtype=np.float32).reshape(2, 3) + np.float32(1e-6)), ("n", np.array(3, dtype=np.int64))))
    c = ModelState((("w", np.arange(6, dtype=np.float32).reshape(3, 2)), ("n", np.array(3, dtype=np.int64))))
    d = ModelState((("n", np.array(3, dtype=np.int64)), ("w", np.arange(6, dtype=np.float32).reshape(2, 3))))
    assert len({a.digest, b.digest, c.digest, d.digest}) == 4


def test_federated_evaluation_equals_the_plaintext_counts(run):
    srv, result, _, _, _ = run
    assert [h["round"] for h in result.history] == [0, 1, 2]
    for h in result.history:
        model = build_model(ARCH)
        model.load_state_dict(srv.registry.get("toy", h["version"]).state.to_state_dict())
        counts = [evaluate_model(model, *_data(i)) for i in range(N)]
        assert h["correct"] == sum(c for c, _, _ in counts)
        assert h["total"] == sum(t for _, t, _ in counts)
        assert h["loss"] * h["total"] == pytest.approx(sum(loss for _, _, loss in counts), abs=N / P.LOSS_SCALE + 1e-4)
        assert h["contributors"] == N


def test_audit_log_verifies(run, capsys):
    srv, result, _, tmp, _ = run
    log = tmp / "audit.jsonl"
    res = verify_log(log, key=srv.public_key)
    assert res.complete and res.pinned and res.head == result.audit_head
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events[0] == "log_start" and events[-1] == "run_end"
    assert events.count("evaluation") == ROUNDS + 1 and events.count("model_registered") == ROUNDS + 1
    assert cli.main(["audit", "verify", str(log), "--key", srv.public_key, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ok"] is True


def _tampered(log, tmp, name, edit):
    lines = log.read_text().splitlines()
    edit(lines)
    out = tmp / name
    out.write_text("\n".join(lines) + "\n")
    return out


def _change_metric(lines):
    i = next(k for k, line in enumerate(lines) if '"event":"evaluation"' in line)
    entry = json.loads(lines[i])
    entry["data"]["accuracy"] = 0.999
    lines[i] = json.dumps(entry, sort_keys=True, separators=(",", ":"))


def _forge_signature(lines):
    from lepton_secagg.fl.audit import AUDIT_LABEL, _canonical
    from lepton_secagg.hazmat.sign import Identity

    entry = json.loads(lines[3])
    body = {k: v for k, v in entry.items() if k != "sig"}
    entry["sig"] = Identity(bytes(32)).sign(AUDIT_LABEL + _canonical(body)).hex()
    lines[3] = json.dumps(entry, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    "name, edit, message",
    [
        ("metric", _change_metric, "signature"),
        ("deleted", lambda lines: lines.pop(4), "sequence"),
        ("reordered", lambda lines: lines.insert(5, lines.pop(4)), "sequence"),
        ("forged", _forge_signature, "signature"),
        ("truncated_line", lambda lines: lines.__setitem__(-1, lines[-1][:-5]), "JSON"),
    ],
)
def test_tampering_fails_verification(run, capsys, name, edit, message):
    srv, _, _, tmp, _ = run
    bad = _tampered(tmp / "audit.jsonl", tmp, f"{name}.jsonl", edit)
    with pytest.raises(AuditError, match=message):
        verify_log(bad, key=srv.public_key)
    with pytest.raises(AuditError):
        verify_log(bad)  # the key in the log does not help either
    assert cli.main(["audit", "verify", str(bad), "--key", srv.public_key]) == cli.EXIT_WRONG == 4
    assert "FAILED" in capsys.readouterr().err


def test_audit_log_rejects_another_key(run, capsys):
    _, _, _, tmp, _ = run
    with pytest.raises(AuditError, match="different key"):
        verify_log(tmp / "audit.jsonl", key="11" * 32)


def test_progress_plot_is_a_png(run, tmp_path):
    _, result, _, _, _ = run
    data = open(result.plot, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    out = plot_progress([{"round": 0, "accuracy": 0.5, "loss": 1.0}, {"round": 1, "accuracy": 0.8, "loss": 0.4}], tmp_path / "p.png")
    import matplotlib.image

    assert matplotlib.image.imread(out).shape[2] in (3, 4)


def test_stale_update_is_refused_and_a_run_without_quorum_ends_cleanly(tmp_path):
    srv = Server(model=build_model(ARCH), architecture=ARCH, name="toy", clients=2, rounds=1, join_timeout=2, round_timeout=2,
                 audit_log=tmp_path / "a.jsonl").start()
    try:
        c = Client(srv.address, organisation="a", timeout=20)
        c.register()
        m = c.load_model()
        c._loaded[id(m)].version = 5  # pretend it was trained from another version
        c.train(m, data=_data(0))
        with pytest.raises(FLError, match="relative to version 5"):
            c.send_update(m)
        with pytest.raises(FLError, match="model"):
            c.load_model("nope")
    finally:
        result = srv.join(30)
    # nobody took part: every phase fails (logged), the model stays at version 0, the run still ends
    assert result.history == [] and result.rounds[0]["error"] and result.model.version == 0
    events = [json.loads(line)["event"] for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert events.count("round_failed") == 3 and verify_log(tmp_path / "a.jsonl").complete


def test_csv_round_trip(tmp_path):
    X, y = _data(1)
    path = write_csv(tmp_path / "d.csv", X, y, label="diagnosis")
    X2, y2 = load_csv(path, label="diagnosis")
    assert np.allclose(X, X2) and np.array_equal(y, y2)
    with pytest.raises(ValueError, match="no column named 'label'"):
        load_csv(path)


def test_fl_messages_round_trip_and_strict_decoding():
    blob = TensorBlob("w", "float32", (2, 2), np.ones(4, "<f4").tobytes())
    msgs = [ModelReply("m", 1, 1, 3, b"\x01" * 32, "mlp:2,2", (blob,)), PhaseRequest("m", "train", -1, 0, 1),
            PhaseOpen("m", "eval", 2, 2, 3, 2, 64, 3, b"lepton-fl/v1/x/m/r2/eval", 0.0, 0)]
    for msg in msgs:
        assert wire.decode(wire.encode(msg)) == msg
    for bad in (
        ModelReply("m", 1, 1, 3, b"\x01" * 32, "", (TensorBlob("w", "float32", (2, 3), blob.data),)),  # length mismatch
        ModelReply("m", 1, 1, 3, b"\x01" * 32, "", (TensorBlob("w", "complex64", (2, 2), blob.data),)),  # dtype
        ModelReply("m", 1, 1, 3, b"\x01" * 32, "", (blob, blob)),  # duplicate names
        ModelReply("m", 1, 1, 3, b"\x01" * 31, "", (blob,)),  # digest size
        PhaseRequest("m", "steal", -1, 0, 1),
        PhaseRequest("m", "train", -2, 0, 1),
        PhaseRequest("", "train", -1, 0, 1),
    ):
        with pytest.raises(DecodeError):
            wire.decode(wire.encode(bad))


def test_client_checks_the_session_label():
    assert P.label_matches(P.session_label("run", "m", 3, "train"), "m", 3, "train")
    assert not P.label_matches(P.session_label("run", "m", 3, "train"), "m", 3, "eval")
    assert not P.label_matches(P.session_label("run", "other", 3, "train"), "m", 3, "train")
    assert P.decode_eval(P.encode_eval(3, 4, -1.5) + P.encode_eval(1, 2, 0.25)) == (4, 6, -1.25)


def test_demo_fedavg_json_and_accuracy_relations(tmp_path, capsys):
    plot = tmp_path / "fedavg.png"
    rc = cli.main(["demo", "fedavg", "--json", "--plot", str(plot), "--audit-log", str(tmp_path / "a.jsonl")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"global_accuracy", "centralized_accuracy", "local_accuracy", "rounds", "plot"} <= out.keys()
    assert out["rounds"] == 10 and out["plot"] == str(plot) and plot.read_bytes()[:4] == b"\x89PNG"
    assert out["centralized_accuracy"] - out["global_accuracy"] <= 0.03
    assert out["global_accuracy"] > out["local_accuracy"]
    assert out["global_accuracy"] >= 0.93
    assert verify_log(tmp_path / "a.jsonl", key=out["audit_key"]).complete
