"""Client.export_state / Client.restore: a session survives being turned into bytes at every round."""
from __future__ import annotations

import numpy as np
import pytest

import lepton_secagg as ls

from .harness import Session


@pytest.mark.parametrize("mode", ["semi-honest", "active"])
@pytest.mark.parametrize("neighbors", [None, 4])
def test_restored_clients_finish_with_the_exact_sum(mode, neighbors):
    n = 12 if neighbors else 5
    threshold = 4 if mode == "active" and neighbors else 3 if neighbors else 4
    cfg = ls.Config(num_clients=n, vector_length=16, threshold=threshold, neighbors=neighbors, mode=mode, bits=40, corrupt_fraction=0.0)
    s = Session(cfg)
    s.start()
    while s.server.round not in (ls.Round.COMPLETED, ls.Round.ABORTED):
        for cid in sorted(s.requests):
            old = s.clients[cid]
            data = old.export_state()
            s.clients[cid] = ls.Client.restore(s.cfg, data, rng=old._ctx.rng, identity=s.identities[cid])
            assert s.clients[cid].round is old.round
            assert s.clients[cid].export_state() == data
        s.answer()
        s.advance()
    res = s.server.result()
    assert res.included == tuple(range(n))
    expected = sum(x.astype(np.uint64) for x in s.inputs) % 2**40
    assert np.array_equal(res.sum, expected)


def test_fresh_client_round_trips():
    cfg = ls.Config(num_clients=3, vector_length=2, threshold=2)
    c = ls.Client(cfg, 1)
    again = ls.Client.restore(cfg, c.export_state())
    assert again.round is ls.Round.ADVERTISE_KEYS and again.client_id == 1
    again.set_input(np.ones(2, dtype=np.uint32))
    assert isinstance(again.start(), ls.AdvertiseKeys)


def test_bad_state_bytes_are_refused():
    cfg = ls.Config(num_clients=3, vector_length=2, threshold=2)
    data = ls.Client(cfg, 1).export_state()
    for bad in (b"", b"\x00", data[:-1], data + b"\x00", ls.encode(ls.Abort("x"))):
        with pytest.raises(ls.DecodeError):
            ls.Client.restore(cfg, bad)
    other = ls.Config(num_clients=2, vector_length=2, threshold=2)
    with pytest.raises(ls.DecodeError):
        ls.Client.restore(other, ls.Client(cfg, 2).export_state())


def test_state_bytes_are_not_in_any_repr():
    cfg = ls.Config(num_clients=3, vector_length=2, threshold=2)
    c = ls.Client(cfg, 0)
    c.set_input(np.ones(2, dtype=np.uint32))
    c.start()
    assert c._state.masking.private.hex() not in repr(c) + repr(c._state)


def test_masked_input_without_derived_mask_keys_is_a_local_error():
    """A state that reached masked_input without its mask keys (they are derived at share_keys) is refused clearly."""
    from dataclasses import replace

    cfg = ls.Config(num_clients=4, vector_length=3, threshold=3)
    s = Session(cfg)
    s.start()
    s.answer()
    s.advance()
    client = s.clients[0]
    assert client.round is ls.Round.MASKED_INPUT and 0 in client._state.mask_keys
    client._state = replace(client._state, mask_keys={})
    with pytest.raises(ls.LocalProtocolError, match="mask keys are not derived yet; share_keys comes first"):
        client.receive(s.requests[0])
    assert client.round is ls.Round.MASKED_INPUT
