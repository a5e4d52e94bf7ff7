"""Clients that lie: the server refuses each with an ``Abort`` for that client only.

Every scenario drives a whole session in which one client (the attacker)
replaces its honest reply of one round by a forged one.  The server must
answer the forgery with an ``Abort``, keep the session running, accept every
other client's reply, and end with the exact sum of the expected clients
(the attacker is out if it was refused before its masked input was summed,
in otherwise).  Forgeries that the strict wire decoder already refuses are
checked there too, and then handed to the server as objects (an integrator
may decode without the config, or not use our codec at all).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg import wire
from lepton_secagg._state import rounds_for
from lepton_secagg.hazmat import shamir

from .harness import Session

# The X25519 points of small order (libsodium's blacklist in
# crypto_scalarmult/curve25519/ref10/x25519_ref10.c), and their twins with the
# top bit set (X25519 ignores that bit).
SMALL_ORDER = [
    bytes(32),  # 0
    bytes([1]) + bytes(31),  # 1
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),  # order 8
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  # p - 1
    bytes.fromhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  # p
    bytes.fromhex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  # p + 1
]
SMALL_ORDER += [k[:31] + bytes([k[31] | 0x80]) for k in SMALL_ORDER]


def expected_sum(s: Session, included) -> list[int]:
    total = sum((s.inputs[c].astype(object) for c in included), np.zeros(s.cfg.vector_length, dtype=object))
    return [int(v) % (1 << s.cfg.bits) for v in total]


class Attack:
    """One forged reply: ``forge(session, honest_reply, request) -> list of messages`` sent in ``round``."""

    def __init__(self, round_name, forge, attacker=1, wire_refuses=False, raw=False):
        self.raw = raw  # hand the objects to the server without the codec
        self.round = round_name
        self.forge = forge
        self.attacker = attacker
        self.wire_refuses = wire_refuses


def run_attack(cfg, attack: Attack, *, skip=None, expect_included=None, seed=7):
    """Drive a session with one attacker; returns (session, result).

    ``skip`` maps a client to the round in which it silently drops (to make
    dropped peers exist).  The attacker's forged messages must each get an
    ``Abort`` (the last one at least; duplicates are refused on the second).
    """
    s = Session(cfg, seed=seed)
    server, a = s.server, attack.attacker
    skip = dict(skip or {})
    gone: set = set()
    requests = {}
    refused_at = None
    for rnd in rounds_for(cfg.mode):
        replies_for = requests if rnd != "advertise_keys" else {c: None for c in range(cfg.num_clients)}
        for cid, req in sorted(replies_for.items()):
            if cid in gone or isinstance(req, ls.Abort):
                gone.add(cid)
                continue
            if skip.get(cid) == rnd:
                gone.add(cid)
                continue
            client = s.clients[cid]
            honest = client.start() if req is None else client.receive(req)
            if cid == a and rnd == attack.round:
                forged = attack.forge(s, honest, req)
                answers = []
                for msg in forged:
                    data = wire.encode(msg) if _encodable(msg) and not attack.raw else None
                    if data is not None and attack.wire_refuses:
                        with pytest.raises(ls.DecodeError):
                            wire.decode(data, s.cfg)
                    elif data is not None:
                        msg = wire.decode(data, s.cfg)
                    live_before = set(server.live) - {a}
                    answers.append(server.receive(cid, msg))
                    assert server.round.value == rnd, "one client's forgery ended the round or the session"
                    assert set(server.live) - {a} == live_before, "the forgery affected other clients"
                assert isinstance(answers[-1], ls.Abort), f"the server accepted the forgery: {answers}"
                refused_at = rnd
                gone.add(cid)
                continue
            assert server.receive(cid, s.wire(honest)) is None, f"client {cid}'s honest reply was refused"
        requests = {c: s.wire(m) for c, m in server.advance().items()}
        if server.round is ls.Round.ABORTED:
            break
    assert refused_at == attack.round, "the attack never ran"
    res = server.result()
    if expect_included is None:
        early = {"advertise_keys", "share_keys", "masked_input"}
        expect_included = [
            c for c in range(cfg.num_clients)
            if skip.get(c) not in early and not (c == a and attack.round in early)
        ]
    assert list(res.included) == sorted(expect_included)
    assert [int(v) for v in res.sum] == expected_sum(s, res.included)
    return s, res


def _encodable(msg) -> bool:
    try:
        wire.encode(msg)
        return True
    except (TypeError, ValueError, AttributeError):
        return False


def cfg_(**kw):
    base = dict(num_clients=7, vector_length=6, threshold=4)
    base.update(kw)
    return ls.Config(**base)


ACTIVE = dict(num_clients=7, vector_length=6, threshold=5, mode="active", corrupt_fraction=0.0)
PLUS = dict(num_clients=12, vector_length=6, threshold=3, neighbors=4)

# --- masked input: length, dtype, canonical encoding -----------------------------------------------


def with_vector(vec):
    return lambda s, honest, req: [ls.MaskedInput(honest.sender, vec(s, honest.vector))]


VECTOR_FORGERIES = {
    "too-short": (with_vector(lambda s, v: v[:-1]), {}),
    "too-long": (with_vector(lambda s, v: np.concatenate([v, v[:1]])), {}),
    "empty": (with_vector(lambda s, v: v[:0]), {}),
    "uint64-in-32-bit-session": (with_vector(lambda s, v: v.astype(np.uint64)), {}),
    "uint32-in-64-bit-session": (with_vector(lambda s, v: v.astype(np.uint32)), dict(bits=64)),
    "uint32-in-48-bit-session": (with_vector(lambda s, v: (v & np.uint64(0xFFFFFFFF)).astype(np.uint32)), dict(bits=48)),
    "element-2^bits-16": (with_vector(lambda s, v: np.where(np.arange(v.size) == 2, np.uint32(1 << 16), v).astype(v.dtype)), dict(bits=16)),
    "element-max-20-bits": (with_vector(lambda s, v: np.full_like(v, 0xFFFFFFFF)), dict(bits=20)),
    "element-2^48": (with_vector(lambda s, v: np.where(np.arange(v.size) == 0, np.uint64(1 << 48), v).astype(v.dtype)), dict(bits=48)),
}


@pytest.mark.parametrize("name", sorted(VECTOR_FORGERIES))
def test_malformed_masked_input_is_refused(name):
    forge, extra = VECTOR_FORGERIES[name]
    run_attack(cfg_(**extra), Attack("masked_input", forge, wire_refuses=True))


@pytest.mark.parametrize("bad", ["float64", "int32", "2-d", "big-endian-uint32"])
def test_masked_input_of_a_foreign_dtype_is_refused_by_the_server(bad):
    """Objects the codec cannot produce, handed to the sans-I/O server directly."""
    def make(s, honest, req):
        v = honest.vector
        return [ls.MaskedInput(honest.sender, {
            "float64": v.astype(np.float64),
            "int32": v.astype(np.int32),
            "2-d": v.reshape(2, -1),
            "big-endian-uint32": v.astype(">u4"),
        }[bad])]
    run_attack(cfg_(), Attack("masked_input", make, raw=True))


def test_eight_byte_items_in_a_32_bit_session_are_refused_on_the_wire_and_by_the_server():
    cfg = cfg_()
    vec = np.arange(cfg.vector_length, dtype=np.uint64)
    data = wire.encode(ls.MaskedInput(1, vec))
    with pytest.raises(ls.DecodeError, match="packed at 32 bits, got 64"):
        wire.decode(data, cfg)
    loose = wire.decode(data)  # a transport that decodes without the config
    assert loose.vector.dtype == np.uint64
    run_attack(cfg, Attack("masked_input", lambda s, h, r: [loose], raw=True))


# --- keys ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["encryption_key", "mask_key"])
@pytest.mark.parametrize("point", range(len(SMALL_ORDER)), ids=lambda i: SMALL_ORDER[i][:2].hex() + SMALL_ORDER[i][-1:].hex())
def test_low_order_keys_are_refused(point, which):
    forge = lambda s, honest, req: [dataclasses.replace(honest, **{which: SMALL_ORDER[point]})]
    run_attack(cfg_(), Attack("advertise_keys", forge))


def test_low_order_key_with_a_valid_signature_is_refused_in_active_mode():
    from lepton_secagg import _session as S

    def forge(s, honest, req):
        key = SMALL_ORDER[2]
        sig = s.identities[1].sign(S.advertise_statement(s.cfg, 1, key, honest.mask_key, honest.seed_commitment))
        return [dataclasses.replace(honest, encryption_key=key, signature=sig)]
    run_attack(ls.Config(**ACTIVE), Attack("advertise_keys", forge))


# --- identity: forged sender, duplicate ids, answering twice --------------------------------------------


@pytest.mark.parametrize("mode", ["semi-honest", "active"])
@pytest.mark.parametrize("round_name", ["advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking"])
def test_a_message_claiming_another_sender_is_refused(round_name, mode):
    if mode == "semi-honest" and round_name == "consistency_check":
        pytest.skip("no consistency check in semi-honest mode")
    cfg = ls.Config(**ACTIVE) if mode == "active" else cfg_()
    run_attack(cfg, Attack(round_name, lambda s, honest, req: [dataclasses.replace(honest, sender=2)]))


@pytest.mark.parametrize("mode", ["semi-honest", "active"])
@pytest.mark.parametrize("round_name", ["advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking"])
def test_a_client_answering_twice_in_a_round_is_refused(round_name, mode):
    if mode == "semi-honest" and round_name == "consistency_check":
        pytest.skip("no consistency check in semi-honest mode")
    cfg = ls.Config(**ACTIVE) if mode == "active" else cfg_()
    # The first answer is honest; the second gets an Abort.  A masked input
    # already in the running sum stays there (docs/security.md): the client is
    # then a survivor that dropped, and its input is in the sum.
    included = list(range(cfg.num_clients)) if round_name == "masked_input" else None
    attack = Attack(round_name, lambda s, honest, req: [honest, honest])
    run_attack(cfg, attack, expect_included=included)


def test_two_connections_claiming_one_id_the_second_is_refused():
    """Sans-I/O: the server receives two different AdvertiseKeys for id 1."""
    def forge(s, honest, req):
        other = ls.Client(s.cfg, 1)  # another party that claims id 1, with its own keys
        return [honest, other.start()]
    run_attack(cfg_(), Attack("advertise_keys", forge))


@pytest.mark.parametrize("round_name", ["advertise_keys", "share_keys", "masked_input", "unmasking"])
def test_a_message_of_another_round_is_refused(round_name):
    wrong = {
        "advertise_keys": lambda s, h, r: [ls.ShareKeys(1, ())],
        "share_keys": lambda s, h, r: [ls.AdvertiseKeys(1, *[bytes(range(1, 33))] * 3)],
        "masked_input": lambda s, h, r: [ls.UnmaskingShares(1, (), ())],
        "unmasking": lambda s, h, r: [ls.MaskedInput(1, np.zeros(s.cfg.vector_length, s.cfg.dtype))],
    }[round_name]
    run_attack(cfg_(), Attack(round_name, wrong))


def test_a_join_or_a_non_message_is_refused():
    run_attack(cfg_(), Attack("share_keys", lambda s, h, r: [ls.Join(1)]))
    run_attack(cfg_(), Attack("masked_input", lambda s, h, r: ["not a message"]))


# --- share keys ------------------------------------------------------------------------------------------


def boxes(edit):
    return lambda s, honest, req: [ls.ShareKeys(honest.sender, tuple(edit(s, list(honest.boxes))))]


BOX_FORGERIES = {
    "missing-recipient": boxes(lambda s, b: b[1:]),
    "no-boxes": boxes(lambda s, b: []),
    "duplicate-recipient": boxes(lambda s, b: sorted(b + b[:1])),
    "box-to-itself": boxes(lambda s, b: sorted(b + [(1, b[0][1])])),
    "recipient-swapped-for-a-non-neighbour": boxes(
        lambda s, b: sorted(b[1:] + [(next(c for c in range(s.cfg.num_clients) if c not in s.cfg.graph.neighbors(1)), b[0][1])])),
    "extra-non-neighbour": boxes(
        lambda s, b: sorted(b + [(next(c for c in range(s.cfg.num_clients) if c not in s.cfg.graph.neighbors(1)), b[0][1])])),
    "oversized-box": boxes(lambda s, b: [(r, box * 100) if i == 0 else (r, box) for i, (r, box) in enumerate(b)]),
}


@pytest.mark.parametrize("name", sorted(BOX_FORGERIES))
def test_share_keys_with_wrong_recipients_is_refused(name):
    cfg = ls.Config(**PLUS)
    assert len(cfg.graph.neighbors(1)) == 5
    run_attack(cfg, Attack("share_keys", BOX_FORGERIES[name], wire_refuses=name in ("duplicate-recipient", "oversized-box")))


def test_share_keys_to_a_client_that_never_advertised_is_refused():
    cfg = cfg_()

    def forge(s, honest, req):
        return [ls.ShareKeys(1, tuple(sorted(honest.boxes + ((6, honest.boxes[0][1]),))))]
    run_attack(cfg, Attack("share_keys", forge), skip={6: "advertise_keys"})


# --- unmasking: the kind of each share ----------------------------------------------------------------------


def shares(edit):
    return lambda s, honest, req: [edit(s, honest)]


def _dropped(s):
    return 6  # see UNMASK_SKIP


UNMASK_SKIP = {6: "masked_input"}  # 6 shared its keys, then dropped: its mask key must be recovered

SHARE_FORGERIES = {
    # the self-mask share of the dropped peer instead of its key share
    "seed-share-of-dropped-peer": shares(lambda s, h: ls.UnmaskingShares(
        1, tuple(sorted(h.self_mask_shares + ((6, h.mask_key_shares[0][1]),))), ())),
    # both kinds for the dropped peer
    "both-kinds-for-dropped-peer": shares(lambda s, h: ls.UnmaskingShares(
        1, tuple(sorted(h.self_mask_shares + ((6, h.mask_key_shares[0][1]),))), h.mask_key_shares)),
    # both kinds for a surviving peer
    "both-kinds-for-survivor": shares(lambda s, h: ls.UnmaskingShares(
        1, h.self_mask_shares, tuple(sorted(h.mask_key_shares + ((2, h.self_mask_shares[2][1]),))))),
    "key-share-instead-of-seed-share": shares(lambda s, h: ls.UnmaskingShares(
        1, tuple(p for p in h.self_mask_shares if p[0] != 2), tuple(sorted(h.mask_key_shares + ((2, h.self_mask_shares[2][1]),))))),
    "missing-seed-share": shares(lambda s, h: ls.UnmaskingShares(1, h.self_mask_shares[1:], h.mask_key_shares)),
    "missing-key-share": shares(lambda s, h: ls.UnmaskingShares(1, h.self_mask_shares, ())),
    "nothing": shares(lambda s, h: ls.UnmaskingShares(1, (), ())),
    "oversized-share": shares(lambda s, h: ls.UnmaskingShares(
        1, ((h.self_mask_shares[0][0], h.self_mask_shares[0][1] * 40),) + h.self_mask_shares[1:], h.mask_key_shares)),
}


@pytest.mark.parametrize("name", sorted(SHARE_FORGERIES))
def test_unmasking_shares_of_the_wrong_kind_are_refused(name):
    run_attack(cfg_(), Attack("unmasking", SHARE_FORGERIES[name]), skip=UNMASK_SKIP)


def test_unmasking_shares_of_the_wrong_kind_are_refused_in_secagg_plus():
    cfg = ls.Config(**PLUS)
    attacker = 1
    dropped = next(v for v in cfg.graph.neighbors(attacker) if v != attacker)

    def forge(s, h, req):
        key = dict(h.mask_key_shares)[dropped]
        return [ls.UnmaskingShares(attacker, tuple(sorted(h.self_mask_shares + ((dropped, key),))), h.mask_key_shares)]
    run_attack(cfg, Attack("unmasking", forge, attacker=attacker), skip={dropped: "masked_input"})


# --- active mode: signatures -------------------------------------------------------------------------------------


def test_advertised_keys_with_a_bad_signature_are_refused():
    from lepton_secagg import _session as S
    cfg = ls.Config(**ACTIVE)
    forgeries = [
        lambda s, h, r: [dataclasses.replace(h, signature=bytes(64))],
        lambda s, h, r: [dataclasses.replace(h, signature=b"")],
        lambda s, h, r: [dataclasses.replace(h, signature=h.signature[:-1] + bytes([h.signature[-1] ^ 1]))],
        # client 2's identity signing client 1's keys
        lambda s, h, r: [dataclasses.replace(h, signature=s.identities[2].sign(S.advertise_statement(s.cfg, 1, h.encryption_key, h.mask_key, h.seed_commitment)))],
        # a valid signature over other keys
        lambda s, h, r: [dataclasses.replace(h, mask_key=bytes(range(1, 33)))],
    ]
    for forge in forgeries:
        run_attack(cfg, Attack("advertise_keys", forge))


def test_a_signature_in_semi_honest_mode_is_refused():
    run_attack(cfg_(), Attack("advertise_keys", lambda s, h, r: [dataclasses.replace(h, signature=bytes(64))]))


def test_consistency_signatures_that_do_not_verify_are_refused():
    from lepton_secagg import _session as S
    cfg = ls.Config(**ACTIVE)
    forgeries = [
        lambda s, h, r: [dataclasses.replace(h, signature=bytes(64))],
        lambda s, h, r: [dataclasses.replace(h, signature=b"")],
        lambda s, h, r: [dataclasses.replace(h, signature=h.signature[:10] + bytes([h.signature[10] ^ 4]) + h.signature[11:])],
        # signed by another identity
        lambda s, h, r: [dataclasses.replace(h, signature=s.identities[3].sign(S.survivors_statement(s.cfg, r.session_id, s.key_entry(1), r.survivors)))],
        # over another survivor set
        lambda s, h, r: [dataclasses.replace(h, signature=s.identities[1].sign(S.survivors_statement(s.cfg, r.session_id, s.key_entry(1), r.survivors[:-1])))],
        # over another session
        lambda s, h, r: [dataclasses.replace(h, signature=s.identities[1].sign(S.survivors_statement(s.cfg, bytes(32), s.key_entry(1), r.survivors)))],
    ]
    for forge in forgeries:
        run_attack(cfg, Attack("consistency_check", forge))


# --- invalid share values --------------------------------------------------------------------------------------


def corrupt(value: bytes, limb: int = 0) -> bytes:
    """The same share with one in-field limb changed (still a well-formed share)."""
    b = bytearray(value)
    pos = 2 + 4 * limb
    x = int.from_bytes(b[pos : pos + 4], "little")
    b[pos : pos + 4] = ((x + 1) % shamir.PRIME).to_bytes(4, "little")
    return bytes(b)


CORRUPTIONS = {
    "seed-share-value": lambda h: ls.UnmaskingShares(
        h.sender, tuple((o, corrupt(v)) if o == 2 else (o, v) for o, v in h.self_mask_shares), h.mask_key_shares),
    "own-seed-share-value": lambda h: ls.UnmaskingShares(
        h.sender, tuple((o, corrupt(v, 3)) if o == h.sender else (o, v) for o, v in h.self_mask_shares), h.mask_key_shares),
    "key-share-value": lambda h: ls.UnmaskingShares(
        h.sender, h.self_mask_shares, tuple((o, corrupt(v)) for o, v in h.mask_key_shares)),
    "truncated-share": lambda h: ls.UnmaskingShares(
        h.sender, tuple((o, v[:-4]) if o == 2 else (o, v) for o, v in h.self_mask_shares), h.mask_key_shares),
    "share-out-of-field": lambda h: ls.UnmaskingShares(
        h.sender, tuple((o, v[:2] + b"\xff\xff\xff\xff" + v[6:]) if o == 2 else (o, v) for o, v in h.self_mask_shares), h.mask_key_shares),
}


CORRUPT_CFG = dict(num_clients=9, vector_length=6, threshold=5)


def run_corrupted_shares(name):
    """Client 1 reveals the right kinds with a corrupted value.

    n = 9, t = 5; client 8 drops at masked_input (so mask-key shares travel),
    client 7 at unmasking: 7 holders answer, 6 of them honest, so every secret
    has t + 1 honest shares and 7 >= t + 2 shares in all: enough to both
    reconstruct and single out one wrong share.
    """
    cfg = ls.Config(**CORRUPT_CFG)
    s = Session(cfg, seed=11)
    s.run_to("masked_input")
    s.answer(skip={8})
    s.advance()
    server = s.server
    for cid, req in sorted(s.requests.items()):
        if cid == 7:
            continue  # 7 dropped at unmasking: its input is in the sum
        honest = s.clients[cid].receive(req)
        msg = CORRUPTIONS[name](honest) if cid == 1 else honest
        answer = server.receive(cid, s.wire(msg))
        if cid != 1:
            assert answer is None
    server.advance()
    return s, server


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_share_values_are_detected(name):
    """What holds today: a corrupted share never yields a wrong sum (5 honest holders > t)."""
    s, server = run_corrupted_shares(name)
    try:
        res = server.result()
    except ls.Aborted as exc:
        assert not isinstance(exc, ls.TooFewSurvivors)
        return
    assert [int(v) for v in res.sum] == expected_sum(s, res.included)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupted_share_excludes_its_sender_and_the_session_completes(name):
    s, server = run_corrupted_shares(name)
    res = server.result()  # desired: no abort
    assert res.included == tuple(range(8))
    assert [int(v) for v in res.sum] == expected_sum(s, res.included)
    # the culprit is named, and counted as refused in unmasking
    assert res.culprits == (1,)
    assert 1 in res.dropped.get("unmasking", ())
