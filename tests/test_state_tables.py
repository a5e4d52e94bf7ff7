"""Every (round, message type) pair of both roles either advances or raises, leaving state unchanged."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import lepton_secagg as ls
from lepton_secagg import _state
from lepton_secagg.messages import CLIENT_MESSAGES, SERVER_MESSAGES, Join, KeyEntry

from .harness import Session

CLIENT_ROUNDS = ["share_keys", "masked_input", "consistency_check", "unmasking"]


def sample(cls, session_id=bytes(32)):
    """A well-formed but meaningless instance of each message class."""
    return {
        ls.AdvertiseKeys: ls.AdvertiseKeys(0, bytes(32), bytes(32), bytes(32)),  # low-order keys
        ls.ShareKeysRequest: ls.ShareKeysRequest(session_id, (KeyEntry(0, bytes(32), bytes(32), bytes(32)),)),
        ls.ShareKeys: ls.ShareKeys(0, ((1, b"x" * 50),)),
        ls.MaskedInputRequest: ls.MaskedInputRequest(session_id, ((1, b"x" * 50),)),
        ls.MaskedInput: ls.MaskedInput(0, np.zeros(3, dtype=np.uint32)),  # wrong length
        ls.ConsistencyCheckRequest: ls.ConsistencyCheckRequest(session_id, (0, 1, 2)),
        ls.ConsistencySignature: ls.ConsistencySignature(0, bytes(64)),
        ls.UnmaskingRequest: ls.UnmaskingRequest(session_id, (0, 1, 2)),
        ls.UnmaskingShares: ls.UnmaskingShares(0, (), ()),
        ls.Abort: ls.Abort("test"),
        Join: Join(0),
    }[cls]


def client_snapshot(client):
    return client.round, client._state


@pytest.mark.parametrize("mode", ["semi-honest", "active"])
@pytest.mark.parametrize("round_name", CLIENT_ROUNDS)
@pytest.mark.parametrize("cls", [*SERVER_MESSAGES, *CLIENT_MESSAGES, Join], ids=lambda c: c.__name__)
def test_client_every_pair(mode, round_name, cls):
    if mode == "semi-honest" and round_name == "consistency_check":
        pytest.skip("no consistency check in semi-honest mode")
    cfg = ls.Config(num_clients=4, vector_length=4, threshold=3, mode=mode, corrupt_fraction=0.0)
    s = Session(cfg)
    requests = s.run_to(round_name)
    client = s.clients[0]
    before = client_snapshot(client)
    table = _state.CLIENT_TRANSITIONS[mode]
    real = requests[0]
    if (client.round, cls) in table:
        if cls is ls.Abort:
            assert client.receive(ls.Abort("bye")) is None
            assert client.round is ls.Round.ABORTED
            return
        # The real request advances; a meaningless one of the same type is refused.
        with pytest.raises(ls.SecAggError):
            client.receive(sample(cls))
        assert client_snapshot(client) == before
        assert type(real) is cls
        client.receive(real)
        assert client.round is table[(before[0], cls)][1]
    else:
        with pytest.raises(ls.RemoteProtocolError):
            client.receive(sample(cls))
        assert client_snapshot(client) == before


def test_client_start_only_once():
    cfg = ls.Config(num_clients=3, vector_length=2, threshold=2)
    c = ls.Client(cfg, 0)
    c.start()
    with pytest.raises(ls.LocalProtocolError):
        c.start()
    with pytest.raises(ls.LocalProtocolError):
        c.receive(_state.Start())


def test_client_input_required_before_masking_and_retry_works():
    cfg = ls.Config(num_clients=3, vector_length=2, threshold=2)
    s = Session(cfg, without_input={1})
    s.run_to("masked_input")
    c = s.clients[1]
    snap = client_snapshot(c)
    with pytest.raises(ls.LocalProtocolError):
        c.receive(s.requests[1])
    assert client_snapshot(c) == snap
    c.set_input(np.ones(2, dtype=np.uint32))
    assert isinstance(c.receive(s.requests[1]), ls.MaskedInput)
    with pytest.raises(ls.LocalProtocolError):
        c.set_input(np.ones(2, dtype=np.uint32))


def server_snapshot(server):
    st = server._state
    return server.round, copy.deepcopy({k: v for k, v in st.__dict__.items() if k != "total"}), None if st.total is None else st.total.copy()


def snapshots_equal(a, b):
    return a[0] == b[0] and a[1] == b[1] and ((a[2] is None and b[2] is None) or np.array_equal(a[2], b[2]))


SERVER_ROUNDS = ["advertise_keys", "share_keys", "masked_input", "consistency_check", "unmasking"]


@pytest.mark.parametrize("mode", ["semi-honest", "active"])
@pytest.mark.parametrize("round_name", SERVER_ROUNDS)
@pytest.mark.parametrize("cls", [*CLIENT_MESSAGES, *SERVER_MESSAGES, Join], ids=lambda c: c.__name__)
def test_server_every_pair(mode, round_name, cls):
    if mode == "semi-honest" and round_name == "consistency_check":
        pytest.skip("no consistency check in semi-honest mode")
    cfg = ls.Config(num_clients=4, vector_length=4, threshold=3, mode=mode, corrupt_fraction=0.0)
    s = Session(cfg)
    if round_name != "advertise_keys":
        s.run_to(round_name)
    assert s.server.round.value == round_name
    table = _state.SERVER_RECEIVE
    if cls is ls.Abort:
        assert s.server.receive(0, ls.Abort("bye")) is None
        assert 0 not in s.server.live
        return
    before = server_snapshot(s.server)
    reply = s.server.receive(0, sample(cls))
    # Any meaningless message costs client 0 its place, and nothing else changes.
    assert isinstance(reply, ls.Abort)
    after = server_snapshot(s.server)
    assert 0 not in s.server.live and after[1]["dropped"] == {0: round_name}
    after[1]["dropped"] = before[1]["dropped"]
    after[1]["live"] = before[1]["live"]
    assert snapshots_equal(before, after)
    if (s.server.round, cls) in table:
        # The genuine message of client 1 is accepted.
        if round_name == "advertise_keys":
            msg = s.wire(s.clients[1].start())
        else:
            msg = s.wire(s.clients[1].receive(s.requests[1]))
        assert type(msg) is cls
        assert s.server.receive(1, msg) is None


def test_server_refuses_a_second_answer_and_a_forged_sender():
    cfg = ls.Config(num_clients=4, vector_length=4, threshold=3)
    s = Session(cfg)
    msg = s.wire(s.clients[0].start())
    assert s.server.receive(0, msg) is None
    assert isinstance(s.server.receive(0, msg), ls.Abort)
    assert isinstance(s.server.receive(2, s.wire(s.clients[1].start())), ls.Abort)
    assert s.server.live == {1, 3}


def test_server_over_is_over():
    cfg = ls.Config(num_clients=3, vector_length=2, threshold=2)
    s = Session(cfg)
    s.start()
    for _ in range(3):
        s.answer()
        s.advance()
    assert s.server.round is ls.Round.COMPLETED
    with pytest.raises(ls.LocalProtocolError):
        s.server.advance()
    with pytest.raises(ls.LocalProtocolError):
        s.server.receive(0, ls.Abort("late"))
    res = s.server.result()
    assert res.included == (0, 1, 2)


def test_server_result_before_the_end():
    s = Session(ls.Config(num_clients=3, vector_length=2, threshold=2))
    with pytest.raises(ls.LocalProtocolError):
        s.server.result()


def test_tables_cover_every_round():
    for mode in ("semi-honest", "active"):
        rounds = _state.rounds_for(mode)
        assert rounds[0] == "advertise_keys" and rounds[-1] == "unmasking"
        assert ("consistency_check" in rounds) == (mode == "active")


@pytest.mark.parametrize("late", ["duplicate", "abort"])
def test_a_summed_masked_input_stays_in_the_sum(late):
    """A client that misbehaves after its masked input was summed stays a survivor (never a wrong sum)."""
    s = Session(ls.Config(num_clients=5, vector_length=4, threshold=3))
    s.run_to("masked_input")
    for cid, req in sorted(s.requests.items()):
        reply = s.wire(s.clients[cid].receive(req))
        assert s.server.receive(cid, reply) is None
        if cid == 2:
            again = s.server.receive(2, reply if late == "duplicate" else ls.Abort("bye"))
            assert (again is None) == (late == "abort")
    s.advance()
    s.answer(skip={2})
    s.advance()
    res = s.server.result()
    assert 2 in res.included
    expected = sum(s.inputs[i].astype(np.uint64) for i in res.included) % 2**32
    assert np.array_equal(res.sum.astype(np.uint64), expected)


def test_equal_configs_have_equal_digests():
    a = ls.Config(num_clients=4, vector_length=2, threshold=3, corrupt_fraction=0)
    b = ls.Config(num_clients=4, vector_length=2, threshold=3, corrupt_fraction=0.0)
    assert a == b and a.digest == b.digest
