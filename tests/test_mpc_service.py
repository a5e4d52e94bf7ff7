"""The Prio3 services: leader and helper over loopback TCP, in process and as separate processes."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lepton_secagg.exceptions import SignatureError
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.mpc.batch import make_report
from lepton_secagg.mpc.keys import AggregatorKeys, open_share, seal_share
from lepton_secagg.mpc.l2 import norm_bound_sq, prio3_bounded_l2_vec_sum
from lepton_secagg.mpc.service import HelperService, LeaderService, submit, upload_frame

from .mpc_hostile_client import ForgedNorm

ROOT = Path(__file__).resolve().parents[1]
CTX = b"service tests"


def _keys(seed):
    rng = DeterministicRng(seed)
    return AggregatorKeys.generate(rng), AggregatorKeys.generate(rng)


def test_sealed_shares_open_only_for_their_aggregator_and_context():
    leader, helper = _keys("seal")
    sealed = seal_share(helper.public, b"share", b"ctx|id|1", DeterministicRng(1))
    assert open_share(helper, sealed, b"ctx|id|1") == b"share"
    for keys, aad in ((leader, b"ctx|id|1"), (helper, b"ctx|id|0")):
        with pytest.raises(Exception) as info:
            open_share(keys, sealed, aad)
        assert "authentication" in str(info.value)


async def _batch(leader_keys, helper_keys, helper_expects, uploads, expected, min_batch=2):
    vdaf = prio3_bounded_l2_vec_sum(2, 4, 8, norm_bound_sq(1.0, 8))
    loop = asyncio.get_running_loop()
    helper_ready, leader_ready = loop.create_future(), loop.create_future()
    helper = HelperService(vdaf, CTX, helper_keys, helper_expects, min_batch_size=min_batch)
    helper_task = asyncio.create_task(helper.serve("127.0.0.1", 0, helper_ready))
    leader = LeaderService(vdaf, CTX, leader_keys, helper_keys.public, expected_reports=expected,
                           min_batch_size=min_batch)
    leader_task = asyncio.create_task(leader.run("127.0.0.1", 0, "127.0.0.1", await helper_ready, leader_ready))
    port = await asyncio.wait_for(leader_ready, 10)
    answers = [await upload(vdaf, port) for upload in uploads]
    outcome = await asyncio.wait_for(leader_task, 20)
    await asyncio.wait_for(helper_task, 20)
    return answers, outcome


def test_in_process_batch_sums_valid_reports_and_refuses_forged_and_replayed_ones():
    leader, helper = _keys("batch")
    rng = DeterministicRng("clients")
    replayed = {}

    def honest(values):
        return lambda vdaf, port: submit("127.0.0.1", port, vdaf, CTX, np.array(values), leader.public, helper.public, rng)

    def forged(vdaf, port):
        bad = prio3_bounded_l2_vec_sum(2, 4, 8, norm_bound_sq(1.0, 8))
        bad.flp.circuit = ForgedNorm(bad.flp.circuit)
        return submit("127.0.0.1", port, bad, CTX, np.array([127, 127, 127, 127]), leader.public, helper.public, rng)

    async def replay(vdaf, port):
        if not replayed:
            replayed["frame"] = upload_frame(vdaf, CTX, make_report(vdaf, CTX, np.array([1, 1, 1, 1]), rng),
                                             leader.public, helper.public, rng)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(len(replayed["frame"]).to_bytes(4, "big") + replayed["frame"])
        await writer.drain()
        header = await reader.readexactly(4)
        body = await reader.readexactly(int.from_bytes(header, "big"))
        writer.close()
        return b"accepted" in body, body

    uploads = [honest([10, -20, 30, 0]), forged, replay, honest([-5, 5, 0, 7]), replay]
    answers, outcome = asyncio.run(_batch(leader, helper, leader.public, uploads, expected=5))
    assert [a[0] for a in answers] == [True, False, True, True, False]
    assert outcome.result == [10 - 5 + 1, -20 + 5 + 1, 30 + 1, 7 + 1]
    assert len(outcome.accepted) == 3 and len(outcome.rejected) == 2
    assert any("proof 0 does not verify" in r for r in outcome.rejected.values())
    assert any("replay" in r for r in outcome.rejected.values())


def test_the_helper_refuses_a_leader_it_was_not_configured_with():
    leader, helper = _keys("auth")
    impostor, _ = _keys("impostor")

    async def run():
        vdaf = prio3_bounded_l2_vec_sum(2, 4, 8, 100)
        ready = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(HelperService(vdaf, CTX, helper, leader.public).serve("127.0.0.1", 0, ready))
        port = await ready
        try:
            with pytest.raises(SignatureError):  # the helper signs; the impostor expects another helper key
                await LeaderService(vdaf, CTX, impostor, impostor.public, expected_reports=1).run(
                    "127.0.0.1", 0, "127.0.0.1", port)
            # The right helper key but the wrong leader identity: the helper hangs up before "ready".
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                await asyncio.wait_for(LeaderService(vdaf, CTX, impostor, helper.public, expected_reports=1).run(
                    "127.0.0.1", 0, "127.0.0.1", port), 20)
        finally:
            task.cancel()

    asyncio.run(run())


def _python():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return [sys.executable], env


def _start(args, env):
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, int(line.split()[-1])


@pytest.mark.slow
def test_leader_helper_and_twenty_clients_as_processes_with_one_hostile(tmp_path, kernel_backend):
    if kernel_backend.__name__.endswith("_native") and not os.environ.get("LEPTON_SECAGG_PUREPYTHON"):
        pytest.skip("the processes pick their own kernels: run once, in the C backend pass")
    py, env = _python()
    leader, helper = _keys("processes")
    for name, keys in (("leader", leader), ("helper", helper)):
        (tmp_path / name).write_text(keys.seed.hex())
        (tmp_path / f"{name}.pub").write_text(keys.public.hex())
    task = ["--task", "loopback test", "--vdaf", "l2", "--length", "6", "--bits", "12", "--bound", "2.0"]
    helper_proc, helper_port = _start(py + ["-m", "lepton_secagg", "mpc", "serve", "--role", "helper", "--key",
                                            str(tmp_path / "helper"), "--peer-key", str(tmp_path / "leader.pub"),
                                            "--min-batch-size", "10", *task], env)
    leader_proc, port = _start(py + ["-m", "lepton_secagg", "mpc", "serve", "--role", "leader", "--key",
                                     str(tmp_path / "leader"), "--peer-key", str(tmp_path / "helper.pub"),
                                     "--helper", f"127.0.0.1:{helper_port}", "--reports", "21",
                                     "--min-batch-size", "10", "--json", *task], env)
    data = np.random.default_rng(7)  # test inputs
    updates = [data.normal(size=6) for _ in range(20)]
    updates = [u * (1.5 / np.linalg.norm(u)) * data.uniform(0.1, 1.0) for u in updates]
    keys = ["--leader-key", str(tmp_path / "leader.pub"), "--helper-key", str(tmp_path / "helper.pub")]
    clients = [subprocess.Popen(py + ["-m", "lepton_secagg", "mpc", "submit", "--leader", f"127.0.0.1:{port}", *keys,
                                      "--values=" + ",".join(repr(float(x)) for x in u), *task],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for u in updates]
    clients.append(subprocess.Popen(py + ["-m", "tests.mpc_hostile_client", f"127.0.0.1:{port}",
                                          str(tmp_path / "leader.pub"), str(tmp_path / "helper.pub"),
                                          "loopback test", "6", "12"],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [c.communicate(timeout=240) for c in clients]
        try:
            leader_out, leader_err = leader_proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            leader_proc.kill()
            raise AssertionError(f"the leader did not finish; clients said {outputs}") from None
        helper_proc.communicate(timeout=60)
    finally:
        for p in [helper_proc, leader_proc, *clients]:
            if p.poll() is None:
                p.kill()
    assert [c.returncode for c in clients] == [0] * 21, outputs
    assert outputs[-1][0].startswith("rejected: ")
    summary = json.loads(leader_out.strip().splitlines()[-1])
    assert summary["accepted"] == 20 and summary["rejected"] == 1, summary
    scale = 2 ** 11
    expected = np.sum([np.clip(np.rint(u / 2.0 * scale), -scale, scale - 1) for u in updates], axis=0)
    assert summary["raw_sum"] == [int(x) for x in expected]
    assert np.allclose(summary["sum"], np.sum(updates, axis=0), atol=20 * 2.0 / scale)


def test_service_frames_are_strict():
    import msgpack

    from lepton_secagg.exceptions import DecodeError
    from lepton_secagg.wire import WIRE_VERSION, decode_mpc, encode_mpc

    assert decode_mpc(encode_mpc("report", [b"id", 3, None, [b"x", ["y"]]])) == ("report", [b"id", 3, None, [b"x", ["y"]]])
    v = WIRE_VERSION
    for bad in (msgpack.packb({"a": 1}), msgpack.packb([v, "mpc", "k", [1.5]]), msgpack.packb([v + 1, "mpc", "k", []]),
                msgpack.packb([v, "mpc", "k", [[[[b"deep"]]]]]), b"\xc1", encode_mpc("k", [])[:-1]):
        with pytest.raises(DecodeError):
            decode_mpc(bad)
    with pytest.raises(DecodeError, match="limit"):
        decode_mpc(encode_mpc("k", [bytes(100)]), limit=50)


def test_cli_keygen_and_bad_key_files(tmp_path, capsys):
    from lepton_secagg.cli import main

    key = tmp_path / "leader.key"
    assert main(["mpc", "keygen", "--out", str(key), "--json"]) == 0
    public = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["public"]
    assert (tmp_path / "leader.key.pub").read_text().strip() == public
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert AggregatorKeys(bytes.fromhex(key.read_text().strip())).public.hex() == public
    assert main(["mpc", "keygen", "--out", str(key)]) != 0  # never overwrites a key
    (tmp_path / "bad.pub").write_text("zz")
    assert main(["mpc", "serve", "--role", "helper", "--key", str(key), "--peer-key", str(tmp_path / "bad.pub"),
                 "--length", "4"]) != 0
    err = capsys.readouterr().err
    assert "File exists" in err and "bad.pub: an aggregator public key" in err and "must be 64 bytes" in err
