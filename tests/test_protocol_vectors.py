"""Replay the transcript vectors in tests/vectors/v1/protocol/ on both roles.

Good vectors: fresh clients (same deterministic rng) fed the recorded server
messages must produce the recorded replies byte for byte, and a fresh server
fed the recorded replies must produce the recorded requests and the sum.
Bad vectors: the one mutated message must make its receiver raise the named
error.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.testing import make_identities
from lepton_secagg.wire import decode_config

FOLDER = pathlib.Path(__file__).parent / "vectors" / "v1" / "protocol"
GOOD = sorted(p for p in FOLDER.glob("*.json") if not p.name.startswith("bad_"))
BAD = sorted(FOLDER.glob("bad_*.json"))


def load(path):
    vec = json.loads(path.read_text())
    assert vec["source"]
    return vec, decode_config(bytes.fromhex(vec["config"]))


def make_clients(vec, cfg):
    root = DeterministicRng(vec["seed"])
    root.fork("server")  # simulate() forks the server's stream first
    ids = make_identities(cfg.num_clients, vec["seed"]) if cfg.mode == "active" else [None] * cfg.num_clients
    clients = []
    for cid in range(cfg.num_clients):
        c = ls.Client(cfg, cid, rng=root.fork(f"client-{cid}"), identity=ids[cid])
        c.set_input(np.array(vec["inputs"][cid], dtype=np.uint64).astype(cfg.dtype))
        clients.append(c)
    return clients


def replay_clients(vec, cfg, mutation=None):
    clients = make_clients(vec, cfg)
    pending = {}
    for index, m in enumerate(vec["messages"]):
        data = bytes.fromhex(mutation["hex"] if mutation and mutation["index"] == index else m["hex"])
        cid = m["client"]
        if m["direction"] == "down":
            pending[cid] = ls.decode(data, cfg)
            continue
        if m["round"] == "advertise_keys":
            reply = clients[cid].start()
        else:
            reply = clients[cid].receive(pending.pop(cid))
        if mutation and mutation["index"] == index:
            ls.decode(data, cfg)  # the mutated reply must not even decode
        assert ls.encode(reply) == data, f"message {index} differs"


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_clients_reproduce_every_reply(path):
    vec, cfg = load(path)
    replay_clients(vec, cfg)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_server_reproduces_every_request_and_the_sum(path):
    vec, cfg = load(path)
    server = ls.Server(cfg)
    by_round: dict = {}
    for m in vec["messages"]:
        by_round.setdefault(m["round"], {"up": {}, "down": {}})[m["direction"]][m["client"]] = bytes.fromhex(m["hex"])
    rounds = list(by_round)
    for i, rnd in enumerate(rounds):
        for cid, data in sorted(by_round[rnd]["up"].items()):
            assert server.receive(cid, ls.decode(data, cfg)) is None
        out = server.advance()
        expected = by_round[rounds[i + 1]]["down"] if i + 1 < len(rounds) else {}
        assert {c: ls.encode(msg) for c, msg in out.items()} == expected
    res = server.result()
    assert list(res.included) == vec["included"]
    assert [int(v) for v in res.sum] == vec["sum"]
    total = sum(np.array(vec["inputs"][c], dtype=object) for c in vec["included"]) % (1 << cfg.bits)
    assert [int(v) for v in total] == vec["sum"]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_vectors_raise_the_named_error(path):
    vec, cfg = load(path)
    mutation = vec["mutation"]
    error = getattr(ls, mutation["error"])
    with pytest.raises(error):
        replay_clients(vec, cfg, mutation)


def test_vectors_exist():
    assert len(GOOD) >= 3 and len(BAD) >= 4
