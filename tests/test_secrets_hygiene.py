"""No secret ever shows up in a repr, a log record or an error message.

Sessions run with a deterministic rng, so every secret can be collected (read
from the clients' states round by round, or re-derived): X25519 private keys,
their shared secrets, self-mask seeds, Shamir share values, share-box (AEAD)
keys, PRG keys of the self and pairwise masks, Ed25519 identity seeds.  Each
is searched for raw (as ``repr`` escapes it), in hex, and by the hex of its
first 8 bytes, in:

* ``repr()`` of every object involved: clients and their states and
  contexts, the server and its state, configs, every message, results, key
  pairs, identities, shares, rngs;
* every log record of the ``lepton_secagg`` loggers at DEBUG level, from the
  sans-I/O sessions and from a whole aggregation over the in-memory
  transport (with a client that drops and a client that sends garbage);
* the message of every exception raised in hostile scenarios (a lying server,
  lying clients, corrupted shares).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg import _session as S
from lepton_secagg import wire
from lepton_secagg.hazmat import shamir
from lepton_secagg.hazmat.agreement import keypair_from_private, shared_secret
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.hazmat.sign import Identity

from .harness import Session

SEED = 4242


class Secrets:
    def __init__(self):
        self.items: dict[bytes, str] = {}

    def add(self, value: bytes | None, what: str) -> None:
        if value and len(value) >= 8:
            self.items.setdefault(bytes(value), what)

    def forms(self):
        for value, what in self.items.items():
            yield what, value.hex(), value.hex()
            yield what, value[:8].hex(), "first 8 bytes in hex of " + value.hex()[:16]
            yield what, repr(value)[2:-1], "raw"
            yield what, value.hex().upper()[:16], "upper-case hex"

    def find_in(self, text: str) -> list[str]:
        return [f"{what} ({form})" for what, needle, form in self.forms() if needle and needle in text]


def collect_client(secrets: Secrets, client: ls.Client, cfg) -> None:
    st = client._state
    me = client.client_id
    for kp, name in ((st.encryption, "encryption private key"), (st.masking, "mask private key")):
        if kp is not None:
            secrets.add(kp.private, f"client {me} {name}")
    secrets.add(st.seed, f"client {me} self-mask seed")
    for owner, pair in st.shares.items():
        if pair:
            secrets.add(pair[0], f"client {me}'s share of {owner}'s seed")
            secrets.add(pair[1], f"client {me}'s share of {owner}'s mask key")
    for peer, key in st.box_keys.items():
        secrets.add(key, f"box key {me}-{peer}")
    if st.seed is not None and st.session_id:
        secrets.add(S.self_mask_key(cfg, st.seed, st.session_id, me), f"client {me} self-mask PRG key")
    for peer, entry in st.peers.items():
        if peer == me or st.masking is None:
            continue
        secrets.add(shared_secret(st.masking.private, entry.mask_key), f"mask shared secret {me}-{peer}")
        secrets.add(shared_secret(st.encryption.private, entry.encryption_key), f"encryption shared secret {me}-{peer}")
        secrets.add(S.pairwise_mask_key(cfg, st.masking.private, entry.mask_key, st.session_id, me, peer), f"pairwise PRG key {me}-{peer}")


def identity_seeds(n: int, seed) -> list[bytes]:
    rng = DeterministicRng(seed).fork("identities")  # as testing.make_identities
    return [rng.bytes(32) for _ in range(n)]


@dataclasses.dataclass
class Run:
    secrets: Secrets
    objects: list
    errors: list


def run_session(mode: str, neighbors=None) -> Run:
    """A whole session with one drop at masked_input; collects secrets, objects and messages."""
    n = 12 if neighbors else 6
    cfg = ls.Config(num_clients=n, vector_length=5, threshold=3 if neighbors else (5 if mode == "active" else 4), neighbors=neighbors, mode=mode, corrupt_fraction=0.0)
    s = Session(cfg, seed=SEED)
    secrets, objects = Secrets(), [s.cfg, s.server, *s.clients, *[c._ctx for c in s.clients]]
    if mode == "active":
        for i, seed in enumerate(identity_seeds(n, SEED)):
            assert Identity(seed).verify_key == s.cfg.identities[i]
            secrets.add(seed, f"identity seed {i}")
            objects.append(s.identities[i])
    gone = {n - 1}
    replies = {}
    objects.extend(s.start().values())
    while s.server.round not in (ls.Round.COMPLETED, ls.Round.ABORTED):
        for cid, req in sorted(s.requests.items()):
            if cid in gone or isinstance(req, ls.Abort):
                continue
            if s.clients[cid].round.value == "masked_input" and cid == n - 1:
                continue
            collect_client(secrets, s.clients[cid], s.cfg)
            objects.append(s.clients[cid]._state)
            replies[cid] = s.wire(s.clients[cid].receive(req))
            collect_client(secrets, s.clients[cid], s.cfg)
            objects.extend([s.clients[cid]._state, replies[cid]])
            assert s.server.receive(cid, replies[cid]) is None
        objects.append(s.server._state)
        objects.extend(s.advance().values())
    for c in s.clients:
        collect_client(secrets, c, s.cfg)
        objects.extend([c, c._state, c._state.encryption, c._state.masking, c._ctx.rng])
    res = s.server.result()
    objects.extend([res, s.server, s.server._state])
    # Shamir objects: the shares of one seed, rebuilt
    c0 = s.clients[0]
    objects.extend(shamir.split(c0._state.seed, 3, 2, DeterministicRng(1)))
    assert len(secrets.items) > 20 * n
    return Run(secrets, objects, [])


RUNS = {
    "semi-honest": lambda: run_session("semi-honest"),
    "active": lambda: run_session("active"),
    "secagg-plus": lambda: run_session("semi-honest", neighbors=4),
}


def leaks(run: Run, objects) -> list[str]:
    found = []
    for obj in objects:
        text = repr(obj)
        for hit in run.secrets.find_in(text):
            found.append(f"{type(obj).__name__}: {hit}")
    return found


# Objects that carry share values, checked in their own tests below.
SHARE_CARRIERS = (ls.UnmaskingShares,)


def is_server_state(obj) -> bool:
    return type(obj).__name__ == "ServerState"


@pytest.mark.parametrize("name", sorted(RUNS))
def test_no_secret_in_any_repr(name):
    run = RUNS[name]()
    objects = [o for o in run.objects if not isinstance(o, SHARE_CARRIERS) and not is_server_state(o)]
    assert len(objects) > 50
    assert leaks(run, objects) == []


def test_the_detector_finds_a_leak():
    """The check can fail: a repr that prints a private key is caught in every form."""
    run = RUNS["semi-honest"]()
    value, what = next(iter(run.secrets.items.items()))

    class Leaky:
        def __init__(self, text):
            self.text = text

        def __repr__(self):
            return self.text

    for text in (repr(value), value.hex(), value[:8].hex(), f"key={value[:8].hex().upper()}"):
        assert leaks(run, [Leaky(text)]), text


@pytest.mark.parametrize("name", sorted(RUNS))
def test_no_share_value_in_the_repr_of_unmasking_shares(name):
    run = RUNS[name]()
    assert leaks(run, [o for o in run.objects if isinstance(o, SHARE_CARRIERS)]) == []


@pytest.mark.parametrize("name", sorted(RUNS))
def test_no_share_value_in_the_repr_of_the_server_state(name):
    run = RUNS[name]()
    states = [o for o in run.objects if is_server_state(o)]
    assert states
    assert leaks(run, states) == []


# --- errors in hostile scenarios ------------------------------------------------------------------


def hostile_errors(run_secrets: Secrets, s: Session) -> list[str]:
    """Messages of every error a lying server and lying clients provoke."""
    messages = []

    def expect_error(call):
        try:
            call()
        except ls.SecAggError as exc:
            messages.append(str(exc))
            messages.append(repr(exc))
        else:
            raise AssertionError("the hostile message was accepted")

    cfg = s.cfg
    req = s.requests[0]
    # a lying server at masked_input: tampered box, forged sender, wrong session
    sender, box = req.boxes[0]
    expect_error(lambda: s.clients[0].receive(ls.MaskedInputRequest(req.session_id, ((sender, box[:-1] + bytes([box[-1] ^ 1])),) + req.boxes[1:])))
    expect_error(lambda: s.clients[0].receive(ls.MaskedInputRequest(bytes(32), req.boxes)))
    expect_error(lambda: s.clients[0].receive(ls.UnmaskingRequest(req.session_id, (0, 1, 2, 3))))
    expect_error(lambda: wire.decode(wire.encode(req)[:-3], cfg))
    for c in s.clients:
        collect_client(run_secrets, c, cfg)
    return messages


def test_no_secret_in_error_messages_of_hostile_scenarios(caplog):
    caplog.set_level(logging.DEBUG, logger="lepton_secagg")
    cfg = ls.Config(num_clients=7, vector_length=4, threshold=4)
    s = Session(cfg, seed=SEED)
    secrets = Secrets()
    s.run_to("masked_input")
    messages = hostile_errors(secrets, s)
    # lying clients: the server's Abort reasons
    replies = {cid: s.clients[cid].receive(r) for cid, r in sorted(s.requests.items())}
    for c in s.clients:
        collect_client(secrets, c, cfg)
    bad = ls.MaskedInput(1, np.full(cfg.vector_length + 1, 7, dtype=np.uint32))
    messages.append(s.server.receive(1, bad).reason)
    for cid, m in replies.items():
        if cid != 1:
            assert s.server.receive(cid, m) is None
    reqs = s.advance()
    unmask = {cid: s.clients[cid].receive(r) for cid, r in sorted(reqs.items()) if cid != 1}
    for c in s.clients:
        collect_client(secrets, c, cfg)
    # corrupted shares from every holder, beyond what decoding corrects: the session abort message
    for cid, m in unmask.items():
        m = ls.UnmaskingShares(cid, tuple((o, v[:2] + bytes([v[2] ^ 1]) + v[3:]) for o, v in m.self_mask_shares), m.mask_key_shares)
        s.server.receive(cid, m)
    for msg in s.server.advance().values():
        messages.append(msg.reason)
    with pytest.raises(ls.Aborted) as info:
        s.server.result()
    messages.extend([str(info.value), repr(info.value)])
    # a client asked twice, or handed a bad share box after completing
    expect = []
    try:
        s.clients[0].receive(reqs[0])
    except ls.SecAggError as exc:
        expect.append(str(exc))
    messages.extend(expect)
    assert len(messages) >= 10 and len(secrets.items) > 100
    hits = [(m, secrets.find_in(m)) for m in messages + [r.getMessage() for r in caplog.records]]
    assert [h for h in hits if h[1]] == []


# --- log records over the in-memory transport -------------------------------------------------------


def test_no_secret_in_debug_logs_of_a_transport_session(caplog):
    from lepton_secagg.transport.memory import MemoryNetwork
    from lepton_secagg.transport.server import AggregationServer

    caplog.set_level(logging.DEBUG, logger="lepton_secagg")
    cfg = ls.Config(num_clients=5, vector_length=4, threshold=3)
    labels = [f"transport-client-{i}" for i in range(cfg.num_clients)]
    secrets = Secrets()
    for i, label in enumerate(labels):
        rng = DeterministicRng(label)
        enc, mask, seed = (rng.bytes(32) for _ in range(3))  # the first draws of advertise_keys
        secrets.add(enc, f"client {i} encryption private key")
        secrets.add(mask, f"client {i} mask private key")
        secrets.add(seed, f"client {i} self-mask seed")
        secrets.add(keypair_from_private(mask).private, f"client {i} mask key")

    async def main():
        srv = AggregationServer(cfg, host=None, round_timeout=5.0, join_timeout=5.0)
        net = MemoryNetwork(srv)
        inputs = [np.full(cfg.vector_length, i + 1, dtype=np.uint32) for i in range(cfg.num_clients)]
        clients = [
            net.run_client(i, inputs[i], rng=DeterministicRng(labels[i]), drop_in="masked_input" if i == 4 else None, timeout=20.0)
            for i in range(cfg.num_clients)
        ]
        return await asyncio.gather(srv.run(), *clients, return_exceptions=True)

    result, *outcomes = asyncio.run(main())
    assert not isinstance(result, BaseException), result
    assert [int(v) for v in result.sum] == [1 + 2 + 3 + 4] * cfg.vector_length
    records = [r.getMessage() for r in caplog.records if r.name.startswith("lepton_secagg")]
    assert records, "the transport logs nothing at DEBUG: the check would be vacuous"
    texts = records + [repr(o) for o in outcomes] + [repr(result)]
    assert [(t, secrets.find_in(t)) for t in texts if secrets.find_in(t)] == []
