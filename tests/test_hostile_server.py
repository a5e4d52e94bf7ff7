"""A server that lies: every scenario is refused by the client with a typed error."""
from __future__ import annotations

import dataclasses

import pytest

import lepton_secagg as ls
from lepton_secagg.hazmat.agreement import generate_keypair
from lepton_secagg.messages import KeyEntry
from lepton_secagg import _session as S

from .harness import Session


def cfg_(mode="semi-honest", **kw):
    base = dict(num_clients=5, vector_length=6, threshold=3, mode=mode, corrupt_fraction=0.0)
    base.update(kw)
    return ls.Config(**base)


def refused(client, msg, error=ls.RemoteProtocolError):
    before = (client.round, client._state)
    with pytest.raises(error):
        client.receive(msg)
    assert (client.round, client._state) == before


def test_asking_twice_for_shares_never_reveals_both_kinds():
    s = Session(cfg_())
    s.run_to("unmasking")
    req = s.requests[0]
    first = s.clients[0].receive(req)
    seed_owners = {o for o, _ in first.self_mask_shares}
    key_owners = {o for o, _ in first.mask_key_shares}
    assert not seed_owners & key_owners
    # The server now claims client 3 dropped, to get its key share too.
    second = ls.UnmaskingRequest(req.session_id, tuple(c for c in req.survivors if c != 3))
    refused(s.clients[0], second)


def test_each_answer_holds_one_kind_per_peer_under_a_lying_survivor_set():
    s = Session(cfg_(num_clients=6, threshold=4))
    s.run_to("unmasking", skip={5})
    req = s.requests[1]
    # Claim 4 dropped although it sent its masked input: client 1 reveals 4's key share, but then not its seed share.
    answer = s.clients[1].receive(ls.UnmaskingRequest(req.session_id, tuple(c for c in req.survivors if c != 4)))
    assert 4 in {o for o, _ in answer.mask_key_shares}
    assert 4 not in {o for o, _ in answer.self_mask_shares}


def test_active_different_survivor_sets_are_refused():
    s = Session(cfg_("active", num_clients=5, threshold=4))
    s.run_to("consistency_check")
    s.answer()
    reqs = s.advance()
    req = reqs[0]
    assert isinstance(req, ls.UnmaskingRequest)
    other = ls.UnmaskingRequest(req.session_id, req.survivors[:-1], tuple(p for p in req.signatures if p[0] != req.survivors[-1]))
    refused(s.clients[0], other)


def test_active_substituted_keys_are_detected():
    s = Session(cfg_("active", num_clients=5, threshold=4))
    req = s.start()[0]
    fake = generate_keypair()
    keys = tuple(dataclasses.replace(e, mask_key=fake.public) if e.client_id == 2 else e for e in req.keys)
    refused(s.clients[0], ls.ShareKeysRequest(req.session_id, keys), ls.SignatureError)


def test_active_unmasking_needs_enough_valid_signatures():
    s = Session(cfg_("active", num_clients=5, threshold=4))
    s.run_to("consistency_check")
    s.answer()
    req = s.advance()[0]
    too_few = dataclasses.replace(req, signatures=req.signatures[:2])
    refused(s.clients[0], too_few)
    forged = dataclasses.replace(req, signatures=tuple((i, bytes(64)) if i == 1 else (i, sig) for i, sig in req.signatures))
    refused(s.clients[0], forged, ls.SignatureError)


def test_replay_from_another_session_is_refused():
    a, b = Session(cfg_(), seed=1), Session(cfg_(), seed=2)
    a.run_to("masked_input")
    b.run_to("masked_input")
    refused(a.clients[0], b.requests[0])
    # An old key list does not carry the client's fresh keys.
    c = Session(cfg_(), seed=3)
    c.start()
    refused(c.clients[0], a.history[0][0])


def test_replay_from_another_round_is_refused():
    s = Session(cfg_())
    share_req = s.start()[0]
    s.answer()
    s.advance()
    refused(s.clients[0], share_req)


def test_reordered_rounds_are_refused():
    s = Session(cfg_())
    req = s.start()[0]
    refused(s.clients[0], ls.UnmaskingRequest(req.session_id, (0, 1, 2, 3, 4)))
    refused(s.clients[0], ls.MaskedInputRequest(req.session_id, ()))


def test_forged_box_sender_is_refused():
    s = Session(cfg_())
    req = s.run_to("masked_input")[0]
    boxes = dict(req.boxes)
    relabelled = tuple(sorted((3 if i == 2 else 2 if i == 3 else i, box) for i, box in boxes.items()))
    refused(s.clients[0], ls.MaskedInputRequest(req.session_id, relabelled), ls.DecryptionError)


def test_tampered_ciphertext_is_refused():
    s = Session(cfg_())
    req = s.run_to("masked_input")[0]
    sender, box = req.boxes[0]
    bad = box[:30] + bytes([box[30] ^ 1]) + box[31:]
    refused(s.clients[0], ls.MaskedInputRequest(req.session_id, ((sender, bad),) + req.boxes[1:]), ls.DecryptionError)


def test_unsafe_thresholds_are_refused_by_config():
    with pytest.raises(ValueError, match="smallest sound threshold is 6"):
        ls.Config(num_clients=10, vector_length=1, threshold=5)
    with pytest.raises(ValueError, match="active"):
        ls.Config(num_clients=10, vector_length=1, threshold=6, mode="active", corrupt_fraction=0.2)
    with pytest.raises(ValueError):
        ls.Config(num_clients=10, vector_length=1, threshold=1)


def test_too_few_keys_or_survivors_are_refused():
    s = Session(cfg_())
    req = s.start()[0]
    refused(s.clients[0], ls.ShareKeysRequest(req.session_id, req.keys[:2]))
    s2 = Session(cfg_())
    req2 = s2.run_to("unmasking")[0]
    refused(s2.clients[0], ls.UnmaskingRequest(req2.session_id, (0, 1)))


def test_claiming_this_live_client_dropped_is_refused():
    s = Session(cfg_())
    req = s.run_to("unmasking")[0]
    refused(s.clients[0], ls.UnmaskingRequest(req.session_id, tuple(c for c in req.survivors if c != 0)))


def test_survivors_that_never_shared_are_refused():
    s = Session(cfg_(num_clients=6, threshold=4))
    s.run_to("unmasking", skip={5})  # 5 never advertised
    req = s.requests[0]
    refused(s.clients[0], ls.UnmaskingRequest(req.session_id, tuple(sorted(req.survivors + (5,)))))


def test_lists_naming_non_neighbours_are_refused():
    cfg = ls.Config(num_clients=12, vector_length=4, threshold=3, neighbors=4)
    s = Session(cfg)
    req = s.start()[0]
    outsider = next(c for c in range(12) if c not in cfg.graph.neighbors(0))
    extra = KeyEntry(outsider, *[bytes(range(1, 33))] * 3)
    refused(s.clients[0], ls.ShareKeysRequest(req.session_id, tuple(sorted(req.keys + (extra,), key=lambda e: e.client_id))))


def test_low_order_peer_key_is_refused():
    s = Session(cfg_())
    req = s.start()[0]
    keys = tuple(dataclasses.replace(e, encryption_key=bytes(32)) if e.client_id == 1 else e for e in req.keys)
    refused(s.clients[0], ls.ShareKeysRequest(req.session_id, keys))


def test_low_order_peer_mask_key_is_refused_before_any_box_is_sent():
    # The pairwise mask keys are agreed at share_keys (issue 16), so an unusable
    # mask key is refused there, naming the peer, not one round later.
    s = Session(cfg_())
    req = s.start()[0]
    keys = tuple(dataclasses.replace(e, mask_key=bytes(32)) if e.client_id == 2 else e for e in req.keys)
    before = (s.clients[0].round, s.clients[0]._state)
    with pytest.raises(ls.RemoteProtocolError, match="client 2's mask key is unusable"):
        s.clients[0].receive(ls.ShareKeysRequest(S.session_id(s.cfg, keys), keys))
    assert (s.clients[0].round, s.clients[0]._state) == before


def test_own_keys_changed_is_refused():
    s = Session(cfg_())
    req = s.start()[0]
    keys = tuple(dataclasses.replace(e, mask_key=bytes(range(1, 33))) if e.client_id == 0 else e for e in req.keys)
    refused(s.clients[0], ls.ShareKeysRequest(req.session_id, keys))


def test_full_graph_session_id_must_match_keys():
    s = Session(cfg_())
    req = s.start()[0]
    refused(s.clients[0], ls.ShareKeysRequest(bytes(32), req.keys))
