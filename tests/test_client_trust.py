"""The client decides what it accepts: the attacks of issue #11 as regression tests.

Each test drives a hostile server written on the sans-I/O objects (or over
the transport) and fails on the code before the fix: there the attack
completed (an honest input or self-mask share reached the server, a wrong
sum was accepted, a re-cased audit log verified).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json

import msgpack
import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg import wire
from lepton_secagg.fl.audit import AuditError, AuditLog, verify_log
from lepton_secagg.hazmat import shamir
from lepton_secagg.hazmat.quantize import Quantizer
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.hazmat.sign import Identity
from lepton_secagg.testing import make_identities
from lepton_secagg.transport.client import run_session
from lepton_secagg.transport.memory import memory_pair

from .harness import Session


def _active(n=5, **kw):
    ids = make_identities(n, 3)
    base = dict(num_clients=n, vector_length=4, mode="active", corrupt_fraction=0.0, identities=tuple(i.verify_key for i in ids))
    base.update(kw)
    return ls.Config(**base), ids


async def _hostile_join(cfg_sent, client_id, vector, **kw):
    """A server that answers the join with ``cfg_sent`` and records what the client sends next."""
    client_end, server_end = memory_pair()

    async def server():
        await server_end.recv(1 << 16)  # the Join
        await server_end.send(wire.encode_config(cfg_sent))
        try:
            return ls.decode(await asyncio.wait_for(server_end.recv(1 << 20), 5))
        except Exception:  # the client closed without a message
            return None

    outcome, first = await asyncio.gather(run_session(client_end, client_id, vector, timeout=5, **kw), server())
    return outcome, first


# --- 1. pinning at every entry point --------------------------------------------------------------


def test_a_client_with_an_identity_refuses_a_semi_honest_downgrade():
    cfg, ids = _active()
    downgraded = dataclasses.replace(cfg, mode="semi-honest", identities=None)
    with pytest.raises(ls.ConfigRefused, match="mode"):
        ls.Client(downgraded, 1, identity=ids[1])
    outcome, first = asyncio.run(_hostile_join(downgraded, 1, np.zeros(4, np.uint32), identity=ids[1], policy=ls.Policy(config=cfg)))
    assert not outcome.ok and "mode" in outcome.reason
    assert not isinstance(first, ls.AdvertiseKeys)  # no key ever left the client


def test_a_client_refuses_swapped_identities():
    """The server keeps active mode and the victim's key but swaps every other identity for its own clients'."""
    cfg, ids = _active()
    evil = make_identities(5, 99)
    swapped = dataclasses.replace(cfg, identities=tuple(ids[1].verify_key if i == 1 else evil[i].verify_key for i in range(5)))
    for policy in (ls.Policy(config=cfg), ls.Policy(config_digest=cfg.digest), ls.Policy(identities=cfg.identities)):
        outcome, first = asyncio.run(_hostile_join(swapped, 1, np.zeros(4, np.uint32), identity=ids[1], policy=policy))
        assert not outcome.ok and ("identities" in outcome.reason or "digest" in outcome.reason), outcome.reason
        assert not isinstance(first, ls.AdvertiseKeys)
    # without any pin the client cannot tell, so it refuses to take part at all
    outcome, first = asyncio.run(_hostile_join(swapped, 1, np.zeros(4, np.uint32), identity=ids[1]))
    assert not outcome.ok and "pins neither" in outcome.reason and not isinstance(first, ls.AdvertiseKeys)


def test_the_right_pinned_config_completes():
    cfg, ids = _active()
    inputs = [np.arange(4, dtype=np.uint32) * (i + 1) for i in range(5)]
    srv, res, outcomes = asyncio.run(ls.transport.run_memory_aggregation(cfg, inputs, identities=ids))
    assert all(o.ok for o in outcomes), [o.reason for o in outcomes]
    assert list(res.sum) == list(sum(x.astype(np.uint64) for x in inputs).astype(np.uint32))


def test_refusals_name_the_field_and_both_values():
    cfg, _ = _active()
    weaker = dataclasses.replace(cfg, bits=16)
    with pytest.raises(ls.ConfigRefused, match=r"bits = 16.*32"):
        ls.Policy(config=cfg).check(weaker, 0)
    with pytest.raises(ls.ConfigRefused, match=r"prg = 'aes128ctr'.*'chacha20'"):
        ls.Policy(prg="chacha20").check(cfg, 0)
    # a threshold sound for 0 colluders, not for the 40% this client assumes: 2t > 5 + 2 needs t = 4
    with pytest.raises(ls.ConfigRefused, match=r"threshold = 3.*at least 4"):
        ls.Policy(corrupt_fraction=0.4).check(dataclasses.replace(cfg, threshold=3), 0)
    ls.Policy(corrupt_fraction=0.4).check(dataclasses.replace(cfg, threshold=4), 0)


def test_a_client_with_an_identity_never_runs_semi_honest():
    """Before: Client silently ignored an identity under a semi-honest config."""
    ident = Identity.generate(DeterministicRng(1))
    with pytest.raises(ls.ConfigRefused, match="mode"):
        ls.Client(ls.Config(num_clients=3, vector_length=2), 0, identity=ident)


# --- 2, 3. one sound threshold rule -------------------------------------------------------------


@pytest.mark.parametrize("kw,smallest", [
    # sparse graph, colluders counted globally: 13 of a 21-neighbourhood fell to 20 random colluders
    (dict(num_clients=200, neighbors=20, threshold=13, corrupt_fraction=0.1, mode="active"), 18),
    # full graph, n = 5, one colluder: 2t > n + c
    (dict(num_clients=5, threshold=3, corrupt_fraction=0.2, mode="active"), 4),
    # dropout_fraction (even 0.0) used to skip the majority rule
    (dict(num_clients=10, threshold=2, dropout_fraction=0.1), 6),
    (dict(num_clients=10, threshold=2, dropout_fraction=0.0), 6),
])
def test_unsound_thresholds_are_refused_with_the_smallest_sound_one(kw, smallest):
    with pytest.raises(ValueError, match=f"smallest sound threshold is {smallest}"):
        ls.Config(vector_length=1, **kw)
    ls.Config(vector_length=1, **{**kw, "threshold": smallest})  # and that one is accepted
    # a server cannot send it either: the client's decoder builds the Config, which refuses it
    version, tag, values = msgpack.unpackb(wire.encode_config(ls.Config(vector_length=1, **{**kw, "threshold": smallest})))
    values[[f.name for f in dataclasses.fields(ls.Config)].index("threshold")] = kw["threshold"]
    with pytest.raises(ls.DecodeError, match="smallest sound threshold"):
        wire.decode_config(msgpack.packb([version, tag, values], use_bin_type=True))


def test_active_mode_needs_an_explicit_corrupt_fraction():
    with pytest.raises(ValueError, match="corrupt_fraction"):
        ls.Config(num_clients=5, vector_length=1, mode="active")


def test_secagg_plus_parameters_meet_the_rule_and_one_less_does_not():
    for n, gamma, delta, mode in [(200, 0.1, 0.1, "active"), (1000, 0.05, 0.1, "semi-honest"), (500, 0.05, 0.05, "active")]:
        cfg = ls.Config.secagg_plus(n, 1, gamma, delta, mode=mode)
        assert cfg.neighbors is not None and cfg.threshold == cfg.min_threshold
        if cfg.threshold > 2:
            with pytest.raises(ValueError, match="smallest sound threshold"):
                dataclasses.replace(cfg, threshold=cfg.threshold - 1)


def test_the_sparse_bound_holds_by_simulation():
    """n = 200, k = 20, 20 random colluders: the split-view attack needs 2t <= k + 1 + (corrupt neighbours)."""
    n, k, corrupt = 200, 20, 20
    t = ls.Config(num_clients=n, vector_length=1, neighbors=k, corrupt_fraction=corrupt / n, mode="active").threshold
    neighbours = np.random.default_rng(0).hypergeometric(corrupt, n - corrupt, k, size=200_000)
    assert (2 * 13 <= k + 1 + neighbours).mean() > 1e-3  # the threshold the old rule accepted falls often
    assert not (2 * t <= k + 1 + neighbours).any()  # the smallest sound one never did in 200,000 placements


# --- 4. consistency signatures bound to this session ---------------------------------------------------


class _Relay:
    """A hostile SecAgg+ server on the sans-I/O clients: it chooses the session id and every request."""

    def __init__(self, cfg, ids, seed):
        root = DeterministicRng(seed)
        self.cfg = cfg
        self.clients = [ls.Client(cfg, i, rng=root.fork(f"c{i}"), identity=ids[i]) for i in range(cfg.num_clients)]
        for i, c in enumerate(self.clients):
            c.set_input(np.full(cfg.vector_length, i + 1, dtype=cfg.dtype))

    def run_to_consistency(self, sid):
        cfg, n = self.cfg, self.cfg.num_clients
        adv = {i: c.start() for i, c in enumerate(self.clients)}
        # KeyEntry is AdvertiseKeys without the sender (written so, the test also runs on the code before the fix)
        entries = {i: ls.KeyEntry(i, *(getattr(a, f.name) for f in dataclasses.fields(a)[1:])) for i, a in adv.items()}
        boxes = {i: [] for i in range(n)}
        for i, c in enumerate(self.clients):
            nb = cfg.graph.neighbors(i)
            reply = c.receive(ls.ShareKeysRequest(sid, tuple(entries[v] for v in nb)))
            for recipient, box in reply.boxes:
                boxes[recipient].append((i, box))
        for i, c in enumerate(self.clients):
            c.receive(ls.MaskedInputRequest(sid, tuple(sorted(boxes[i]))))

    def sign(self, sid, views):
        """Each client signs the survivor set the server shows it; returns id -> signature."""
        return {i: self.clients[i].receive(ls.ConsistencyCheckRequest(sid, views[i])).signature for i in views}


def test_consistency_signatures_do_not_replay_across_sessions():
    """Session 1: neighbours sign "everyone survived".  Session 2, same server-chosen session id: the
    server tells the neighbours that P dropped (they reveal P's mask-key shares) and shows the victim
    session 1's signatures on "everyone survived" so that it reveals P's self-mask share too."""
    n, k = 12, 4
    ids = make_identities(n, 5)
    cfg = ls.Config(num_clients=n, vector_length=3, neighbors=k, threshold=3, mode="active", corrupt_fraction=0.0,
                    identities=tuple(i.verify_key for i in ids))
    sid = bytes(range(32))
    everyone = tuple(range(n))
    one = _Relay(cfg, ids, 1)
    one.run_to_consistency(sid)
    old = one.sign(sid, {i: everyone for i in range(n)})

    victim = 0
    nbhd = cfg.graph.neighbors(victim)
    p = next(v for v in nbhd if v != victim)
    two = _Relay(cfg, ids, 2)
    two.run_to_consistency(sid)
    views = {i: everyone if i in (victim, p) else tuple(v for v in everyone if v != p) for i in range(n)}
    two.sign(sid, views)
    replayed = tuple((v, old[v]) for v in nbhd if v not in (victim, p))
    with pytest.raises(ls.SignatureError):
        two.clients[victim].receive(ls.UnmaskingRequest(sid, everyone, replayed))


# --- 5. reconstructed seeds checked against a commitment ---------------------------------------------


def _forge(value: bytes, delta: int) -> bytes:
    """A share whose first limb's evaluation is shifted by ``delta`` (mod p)."""
    limbs = np.frombuffer(value[2:], dtype="<u4").astype(np.int64)
    limbs[0] = (limbs[0] + delta) % shamir.PRIME
    return value[:2] + limbs.astype("<u4").tobytes()


def test_two_colluders_cannot_frame_an_honest_client():
    """n = 5, t = 3: colluders 3 and 4 add g(x) = c (x - 2)(x - 3) to their shares of client 0's seed.

    Robust decoding (radius 1) then prefers f + g, which disagrees only with the owner's own share, so
    before the fix the round completed with a wrong sum and client 0 named as the culprit.
    """
    p = shamir.PRIME
    c = pow(6, -1, p)  # g(0) = 6c = 1: the wrong seed differs in one limb by one
    g = lambda x: c * (x - 2) * (x - 3) % p  # noqa: E731
    s = Session(ls.Config(num_clients=5, vector_length=4, threshold=3))
    s.run_to("unmasking")
    for cid, req in sorted(s.requests.items()):
        reply = s.clients[cid].receive(req)
        if cid in (3, 4):
            x = cid + 1  # the full graph's Shamir x-coordinate of holder cid
            forged = tuple((o, _forge(v, g(x)) if o == 0 else v) for o, v in reply.self_mask_shares)
            reply = dataclasses.replace(reply, self_mask_shares=forged)
        assert s.server.receive(cid, s.wire(reply)) is None
    s.server.advance()
    with pytest.raises(ls.Aborted, match="commitment") as err:
        s.server.result()
    assert "client 0's" not in str(err.value) or "without naming anyone" in str(err.value)


def test_a_single_wrong_share_is_still_corrected_and_named():
    s = Session(ls.Config(num_clients=5, vector_length=4, threshold=3))
    s.run_to("unmasking")
    for cid, req in sorted(s.requests.items()):
        reply = s.clients[cid].receive(req)
        if cid == 4:
            reply = dataclasses.replace(reply, self_mask_shares=tuple((o, _forge(v, 5)) for o, v in reply.self_mask_shares))
        assert s.server.receive(cid, s.wire(reply)) is None
    s.server.advance()
    res = s.server.result()
    assert res.culprits == (4,)
    assert [int(v) for v in res.sum] == [int(v) % (1 << 32) for v in sum(x.astype(np.uint64) for x in s.inputs)]


# --- 6. no silent wrap in the quantiser ---------------------------------------------------------------


def test_the_reported_wrap_is_gone():
    q = Quantizer(clip=1.0, bits=60, num_clients=135)
    total = sum(q.encode(np.ones(3), rng=np.random.default_rng(i))[0].astype(object) for i in range(135))
    total = np.array([int(v) % (1 << 60) for v in total], dtype=np.uint64)
    assert np.allclose(q.decode(total, 135), 135.0)


@pytest.mark.parametrize("bits", [8, 16, 31, 32, 33, 48, 52, 53, 54, 58, 60, 62, 63, 64])
def test_the_worst_case_sum_fits_the_ring(bits):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(clip=st.floats(1e-3, 1e6), n=st.integers(1, 20000), w=st.one_of(st.none(), st.integers(1, 20000)))
    def check(clip, n, w):
        if n * (w or 1) >= 1 << bits:
            return
        q = Quantizer(clip=clip, bits=bits, num_clients=n, max_weight=w)
        top, _ = q.encode(np.full(64, clip), weight=w)  # every value at +clip: the largest encoding
        assert int(top[:64].max()) <= (w or 1) * q.levels  # what the bit budget was checked with
        assert n * (w or 1) * q.levels < 1 << bits  # so the worst-case sum stays in the ring
        worst = np.array([n * (w or 1) * q.levels] * 64 + ([n * w] if w else []), dtype=q.dtype)
        decoded = q.decode(worst, n)
        mean = decoded[0] if w else decoded / n
        assert np.allclose(mean, clip, rtol=1e-9)  # decoded as +clip, not wrapped to -clip

    check()


# --- 7. one canonical encoding in the audit log ---------------------------------------------------------------


def test_a_recased_audit_signature_is_refused(tmp_path):
    ident = Identity.generate(DeterministicRng(7))
    log = AuditLog(tmp_path / "a.jsonl", ident)
    log.append("log_start", {"public_key": ident.verify_key.hex()})
    log.append("round", {"r": 1})
    verify_log(log.path, ident.verify_key)
    lines = log.path.read_bytes().splitlines()
    entry = json.loads(lines[1])
    entry["sig"] = entry["sig"].upper()
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
    log.path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(AuditError, match="lower-case hex"):
        verify_log(log.path, ident.verify_key)
