"""Mutation fuzzing of the wire codec and of both parties' message handlers.

The corpus is made of REAL messages: whole sessions recorded with
``simulate(..., transcript=...)`` for several configurations (full graph,
SecAgg+, active mode, 16/32/48/64-bit rings, with a dropout so that every
share kind travels).  Each recorded session is replayed once, message by
message, with the same deterministic seed; before every message the
receiving party is snapshotted (client before a "down" message, server before
an "up" message), and the replay checks that it reproduces the recorded
bytes, so the snapshots are the parties' true states.

A mutation (bit flips, byte changes, truncation, insertion, deletion,
duplicated chunks, msgpack type swaps, field splices, wrong envelope
lengths, stacked) is then checked for:

* ``wire.decode(data, cfg)`` and ``wire.decode(data)`` return a message or
  raise ``DecodeError``, nothing else;
* a decoded mutation handed to the client at the right round is accepted or
  raises a ``SecAggError`` subclass that leaves the client unchanged;
* a decoded mutation handed to the server is accepted or gets an ``Abort``
  for that one client: the session is not aborted, the other clients' real
  replies of the round are still accepted and ``advance()`` does not raise.

Run outside pytest for a tally::

    python tests/test_fuzz_wire.py --count 100000 [--seed S]
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import random
import struct
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import msgpack
import numpy as np

if __name__ == "__main__":  # script mode: make ``lepton_secagg`` importable without pytest
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lepton_secagg as ls
from lepton_secagg import wire
from lepton_secagg._state import Round
from lepton_secagg.exceptions import DecodeError, SecAggError
from lepton_secagg.hazmat.rng import DeterministicRng
from lepton_secagg.messages import Abort
from lepton_secagg.testing import make_identities, simulate

# --- the corpus ---------------------------------------------------------------------------

SEED = 20240611

# name -> (config, dropouts)
CORPUS_CONFIGS = {
    "full32": (ls.Config(num_clients=5, vector_length=6, threshold=3), {4: "masked_input"}),
    "plus12": (ls.Config(num_clients=12, vector_length=5, threshold=3, neighbors=4), {5: "masked_input", 9: "unmasking"}),
    "active": (ls.Config(num_clients=5, vector_length=4, threshold=4, mode="active", corrupt_fraction=0.0), {4: "masked_input"}),
    "bits16": (ls.Config(num_clients=4, vector_length=7, threshold=3, bits=16), {3: "masked_input"}),
    "bits48": (ls.Config(num_clients=4, vector_length=7, threshold=3, bits=48, prg="chacha20"), {3: "masked_input"}),
    "bits64": (ls.Config(num_clients=4, vector_length=7, threshold=3, bits=64), {3: "masked_input"}),
}


def corpus_inputs(cfg: ls.Config) -> list[np.ndarray]:
    gen = np.random.default_rng(cfg.bits * 1000 + cfg.num_clients)
    top = (1 << cfg.bits) - 1
    return [
        (gen.integers(0, 1 << 62, cfg.vector_length, dtype=np.uint64) & np.uint64(top)).astype(cfg.dtype)
        for _ in range(cfg.num_clients)
    ]


@dataclasses.dataclass
class Snapshot:
    """The receiving party just before one recorded message."""

    name: str
    index: int
    round: str
    direction: str
    client_id: int
    data: bytes
    cfg: ls.Config
    party: object = None  # a Client or a Server, restored by copy
    later: tuple = ()  # server: the other clients' real messages of the same round, decoded

    def fresh(self):
        if self.direction == "down":
            client = copy.copy(self.party)  # handlers are pure: sharing the frozen state is safe
            return client
        server = copy.copy(self.party)
        server._state = copy.deepcopy(self.party._state)
        return server


@dataclasses.dataclass
class Corpus:
    name: str
    cfg: ls.Config
    transcript: list
    snapshots: list  # every message whose receiver is live


@functools.lru_cache(maxsize=None)
def corpus(name: str) -> Corpus:
    """Record one session, then replay it to snapshot the receiver of every message."""
    cfg, dropouts = CORPUS_CONFIGS[name]
    inputs = corpus_inputs(cfg)
    transcript: list = []
    res = simulate(cfg, inputs, dropouts=dropouts, seed=SEED, transcript=transcript)
    cfg = res.config  # with the identities in active mode
    # Rebuild every party exactly as simulate() does (same forks, same order).
    root = DeterministicRng(SEED)
    root.fork("server")
    ids = make_identities(cfg.num_clients, SEED) if cfg.mode == "active" else [None] * cfg.num_clients
    clients = []
    for cid in range(cfg.num_clients):
        c = ls.Client(cfg, cid, rng=root.fork(f"client-{cid}"), identity=ids[cid])
        c.set_input(inputs[cid])
        clients.append(c)
    server = ls.Server(cfg)  # the server draws no secrets; the default rng copies cheaply
    gone: set = set()
    pending: dict = {}
    snapshots = []
    for index, (rnd, direction, cid, data) in enumerate(transcript):
        if direction == "up":
            snap = Snapshot(name, index, rnd, direction, cid, data, cfg, copy.copy(server))
            snap.party._state = copy.deepcopy(server._state)
            snap.later = tuple(
                (c2, wire.decode(d2, cfg)) for r2, dir2, c2, d2 in transcript[index + 1 :] if r2 == rnd and dir2 == "up"
            )
            snapshots.append(snap)
            reply = clients[cid].start() if rnd == "advertise_keys" else pending.pop(cid)
            assert wire.encode(reply) == data, f"{name}: replay differs at message {index}"
            if server.receive(cid, wire.decode(data, cfg)) is not None:
                gone.add(cid)
            continue
        if server.round.value != rnd:  # the first request of a round: the server closes the last one
            out = server.advance()
            expected = {c2: d2 for r2, dir2, c2, d2 in transcript if r2 == rnd and dir2 == "down"}
            assert {c2: wire.encode(m) for c2, m in out.items()} == expected, f"{name}: requests differ in {rnd}"
        if cid in gone:
            continue
        msg = wire.decode(data, cfg)
        snapshots.append(Snapshot(name, index, rnd, direction, cid, data, cfg, copy.copy(clients[cid])))
        if isinstance(msg, Abort):
            clients[cid].receive(msg)
            gone.add(cid)
            continue
        if dropouts.get(cid) == rnd:
            gone.add(cid)
            continue
        pending[cid] = clients[cid].receive(msg)
    server.advance()
    assert [int(v) for v in server.result().sum] == [int(v) for v in res.sum]
    return Corpus(name, cfg, transcript, snapshots)


def all_snapshots() -> list[Snapshot]:
    return [s for name in CORPUS_CONFIGS for s in corpus(name).snapshots]


# --- mutations ------------------------------------------------------------------------------

_INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xCA, 0xCB,
                      0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD3, 0xD4, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0x90, 0x9F, 0xE0]


def _bitflip(rnd: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        pos = rnd.randrange(len(b))
        b[pos] ^= 1 << rnd.randrange(8)
    return bytes(b)


def _byteset(rnd, data):
    if not data:
        return data
    b = bytearray(data)
    # msgpack headers sit mostly in the first bytes: favour them
    pos = rnd.randrange(min(len(b), 48)) if rnd.random() < 0.6 else rnd.randrange(len(b))
    b[pos] = rnd.choice(_INTERESTING_BYTES) if rnd.random() < 0.5 else rnd.randrange(256)
    return bytes(b)


def _truncate(rnd, data):
    return data[: rnd.randrange(len(data))] if data else data


def _insert(rnd, data):
    pos = rnd.randrange(len(data) + 1)
    return data[:pos] + bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16))) + data[pos:]


def _delete(rnd, data):
    if len(data) < 2:
        return b""
    a = rnd.randrange(len(data))
    b = min(len(data), a + rnd.randint(1, 32))
    return data[:a] + data[b:]


def _duplicate(rnd, data):
    if not data:
        return data
    a = rnd.randrange(len(data))
    b = min(len(data), a + rnd.randint(1, 64))
    pos = rnd.randrange(len(data) + 1)
    return data[:pos] + data[a:b] + data[pos:]


def _paths(obj, prefix=()):
    """Every position in a decoded msgpack tree, as index paths."""
    out = [prefix]
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            out.extend(_paths(item, prefix + (i,)))
    return out


def _get(obj, path):
    for i in path:
        obj = obj[i]
    return obj


def _set(obj, path, value):
    if not path:
        return value
    _get(obj, path[:-1])[path[-1]] = value
    return obj


def _other_value(rnd, old):
    """A value of another msgpack type than ``old`` (or the same type, subtly wrong)."""
    choices = [
        lambda: rnd.choice([0, 1, 4, 8, -1, 2**31, 2**32, 2**63, -(2**63), 2**64 - 1, 255, 65536]),
        lambda: bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 1, 31, 32, 33, 63, 64, 65, 38]))),
        lambda: rnd.choice(["", "x", "\u00e9" * 5, "a" * 2000]),
        lambda: rnd.choice([0.0, 1.0, 4.0, float("nan"), float("inf"), -0.0]),
        lambda: rnd.choice([None, True, False]),
        lambda: [],
        lambda: [old],
        lambda: [old, old],
        lambda: [[1, b"x" * 38]],
    ]
    if isinstance(old, bytes) and old:
        choices.append(lambda: old[:-1])
        choices.append(lambda: old + b"\x00")
        choices.append(lambda: bytes(rnd.randrange(256) for _ in old))  # same length, other content
        choices.append(lambda: old.decode("latin-1"))  # bin -> str
    if isinstance(old, int) and not isinstance(old, bool):
        choices.append(lambda: old + rnd.choice([-1, 1, 2, 100]))
        choices.append(lambda: float(old))
        choices.append(lambda: bool(old & 1))
    if isinstance(old, list):
        choices.append(lambda: old[:-1])
        choices.append(lambda: old + old[-1:])
        choices.append(lambda: list(reversed(old)))
        choices.append(lambda: tuple_of_bytes(old))
    return rnd.choice(choices)()


def tuple_of_bytes(old):
    return msgpack.packb(old, use_bin_type=True)


def _unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def _typeswap(rnd, data):
    """Re-encode one field (at any depth) as a value of another type."""
    try:
        obj = _unpack(data)
    except Exception:
        return _bitflip(rnd, data)
    path = rnd.choice(_paths(obj))
    obj = _set(obj, path, _other_value(rnd, _get(obj, path)))
    return _pack(obj)


def _envelope(rnd, data):
    """Wrong envelope length, tag or version."""
    try:
        obj = _unpack(data)
    except Exception:
        return _truncate(rnd, data)
    if not isinstance(obj, list) or not obj:
        return data
    kind = rnd.randrange(5)
    if kind == 0 and len(obj) > 1:
        obj = obj[:-1]
    elif kind == 1:
        obj = obj + [rnd.choice([0, b"", [], obj[-1]])]
    elif kind == 2 and len(obj) > 1:
        obj[1] = rnd.choice([t for t in list(wire.TAGS) + [0, 10, 32, 255] if t != obj[1]])
    elif kind == 3:
        obj[0] = rnd.choice([0, 2, -1, 255, "1", 1.0])
    else:  # the array header claims one element more or less than it holds
        raw = _pack(obj)
        if raw[0] & 0xF0 == 0x90:
            delta = rnd.choice([-1, 1])
            return bytes([0x90 | ((raw[0] & 0x0F) + delta) % 16]) + raw[1:]
        return raw
    return _pack(obj)


def _splice(rnd, data, donors=()):
    """Replace one leaf with the leaf at the same path of another real message (ids, keys, shares)."""
    try:
        obj = _unpack(data)
        donor = _unpack(rnd.choice(donors)) if donors else None
    except Exception:
        return _bitflip(rnd, data)
    if donor is None:
        return data
    common = [p for p in _paths(obj) if p and _exists(donor, p)]
    if not common:
        return data
    path = rnd.choice(common)
    return _pack(_set(obj, path, copy.deepcopy(_get(donor, path))))


def _exists(obj, path):
    try:
        for i in path:
            if not isinstance(obj, list) or i >= len(obj):
                return False
            obj = obj[i]
        return True
    except Exception:
        return False


def _semantic(rnd, data):
    """Keep the message decodable, change one value: an id, a byte, a list's order or length."""
    try:
        obj = _unpack(data)
    except Exception:
        return _bitflip(rnd, data)
    leaves = [p for p in _paths(obj) if len(p) >= 1 and p[0] >= 2 and not isinstance(_get(obj, p), list)]
    if not leaves:
        return data
    path = rnd.choice(leaves)
    old = _get(obj, path)
    if isinstance(old, int) and not isinstance(old, bool):
        new = max(0, old + rnd.choice([-2, -1, 1, 2]))
    elif isinstance(old, bytes) and old:
        b = bytearray(old)
        b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        new = bytes(b)
    else:
        new = old
    return _pack(_set(obj, path, new))


MUTATORS = {
    "bitflip": _bitflip,
    "byteset": _byteset,
    "truncate": _truncate,
    "insert": _insert,
    "delete": _delete,
    "duplicate": _duplicate,
    "typeswap": _typeswap,
    "envelope": _envelope,
    "semantic": _semantic,
    "splice": _splice,
}


def mutate(rnd: random.Random, data: bytes, donors=()) -> tuple[bytes, tuple[str, ...]]:
    """Apply one to three stacked mutations; returns the bytes and the mutation names."""
    names = []
    for _ in range(rnd.choice([1, 1, 1, 2, 3])):
        name = rnd.choice(list(MUTATORS))
        names.append(name)
        try:
            data = MUTATORS[name](rnd, data, donors) if name == "splice" else MUTATORS[name](rnd, data)
        except (OverflowError, TypeError, ValueError):  # msgpack cannot pack the mutated tree (int >= 2^64)
            data = _bitflip(rnd, data)
    return data, tuple(names)


# --- the properties ----------------------------------------------------------------------------


def check_decode(data: bytes, cfg: ls.Config):
    """Both decoders return a message or raise DecodeError; returns the strict result or None."""
    try:
        loose = wire.decode(data)
    except DecodeError:
        loose = None
    else:
        assert type(loose) in {cls for cls, _ in wire.TAGS.values()}
        again = wire.decode(wire.encode(loose))  # what decodes re-encodes to the same message
        assert again == loose
    try:
        strict = wire.decode(data, cfg)
    except DecodeError:
        return None
    assert loose is not None, "a message valid under the config must be valid without it"
    assert strict == loose
    return strict


def check_client(snap: Snapshot, msg) -> str:
    client = snap.fresh()
    before = (client.round, client._state)
    try:
        client.receive(msg)
    except SecAggError:
        assert client.round is before[0] and client._state is before[1], "a refused message changed the client"
        return "client-refused"
    return "client-accepted"


def check_server(snap: Snapshot, msg) -> str:
    server = snap.fresh()
    cid = snap.client_id
    live_before = set(server.live)
    reply = server.receive(cid, msg)  # must not raise
    assert server.round.value == snap.round, "one client's message changed the server's round"
    if reply is None:
        outcome = "server-accepted"
    else:
        assert isinstance(reply, Abort)
        assert cid not in server.live
        outcome = "server-refused"
    assert set(server.live) - {cid} == live_before - {cid}, "other clients were affected"
    for other, real in snap.later:
        if other != cid:
            assert server.receive(other, real) is None, f"client {other}'s real reply was refused after the mutation"
    out = server.advance()  # never raises: errors end the session with typed aborts
    assert isinstance(out, dict)
    if server.round is Round.ABORTED:
        error = server._state.error
        assert isinstance(error, ls.Aborted)
        outcome += "+then-too-few-survivors" if isinstance(error, ls.TooFewSurvivors) else "+then-session-aborted"
    return outcome


def check_one(snap: Snapshot, data: bytes) -> str:
    msg = check_decode(data, snap.cfg)
    if msg is None:
        return "decode-refused"
    return check_client(snap, msg) if snap.direction == "down" else check_server(snap, msg)


def donors_for(snap: Snapshot) -> list[bytes]:
    return [d for r, dr, c, d in corpus(snap.name).transcript if r == snap.round and dr == snap.direction and c != snap.client_id]


# --- length bombs -----------------------------------------------------------------------------------

BIG = ls.Config(num_clients=5, vector_length=1_000_000, threshold=3)
SMALL = ls.Config(num_clients=5, vector_length=8, threshold=3)

LENGTH_BOMBS = {
    "bin32-4GiB-vector": b"\x94\x01\x05\x00\x92\x04\xc6\xff\xff\xff\xff",
    "bin32-4GiB-top": b"\xc6\xff\xff\xff\xff",
    "str32-4GiB-reason": b"\x93\x01\x0f\xdb\xff\xff\xff\xff",
    "array32-2^32-1": b"\xdd\xff\xff\xff\xff",
    "array32-2^28-1": b"\xdd" + struct.pack(">I", (1 << 28) - 1),
    "array32-keys-2^32-1": b"\x94\x01\x02\xc4\x20" + bytes(32) + b"\xdd\xff\xff\xff\xff",
    "map32-2^32-1": b"\xdf\xff\xff\xff\xff",
    "ext32-4GiB": b"\xc9\xff\xff\xff\xff\x01",
    "nested-fixarray-x100000": b"\x91" * 100_000,
}
# Nested array headers that each claim many elements: every level makes msgpack
# preallocate its list before the first element is read.
NESTED_BOMBS = {
    "nested-array16-65535-x2000": b"\xdc\xff\xff" * 2000,
    "nested-array32-4096-x1000": (b"\xdd" + struct.pack(">I", 4096)) * 1000,
    "nested-array32-65536-x1000": (b"\xdd" + struct.pack(">I", 65536)) * 1000,
}


def measure(data: bytes, cfg) -> tuple[int, float]:
    """Peak traced allocation (bytes) and seconds of one refused decode."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        try:
            wire.decode(data, cfg)
        except DecodeError:
            pass
        else:
            raise AssertionError("a length bomb decoded")
        return tracemalloc.get_traced_memory()[1], time.perf_counter() - t0
    finally:
        tracemalloc.stop()


# --- pytest -------------------------------------------------------------------------------------------

if __name__ != "__main__":
    import pytest
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @functools.lru_cache(maxsize=None)
    def _snapshots():
        return all_snapshots()

    snapshot_index = st.integers(min_value=0, max_value=10_000)

    def test_corpus_covers_every_message_kind_and_config():
        kinds = Counter()
        for name in CORPUS_CONFIGS:
            for rnd, direction, cid, data in corpus(name).transcript:
                kinds[type(wire.decode(data)).__name__] += 1
        assert set(kinds) >= {
            "AdvertiseKeys", "ShareKeysRequest", "ShareKeys", "MaskedInputRequest", "MaskedInput",
            "ConsistencyCheckRequest", "ConsistencySignature", "UnmaskingRequest", "UnmaskingShares",
        }
        snaps = _snapshots()
        assert {s.direction for s in snaps} == {"up", "down"}
        assert {s.cfg.bits for s in snaps} == {16, 32, 48, 64}
        # share kinds: mask-key shares of a dropped client travel in every corpus
        for name in CORPUS_CONFIGS:
            shares = [wire.decode(d) for r, dr, c, d in corpus(name).transcript if r == "unmasking" and dr == "up"]
            assert any(isinstance(m, ls.UnmaskingShares) and m.mask_key_shares for m in shares), name

    def test_unmutated_messages_are_accepted():
        """The oracle itself: every real message is accepted by its receiver (so the checks can fail)."""
        outcomes = Counter(check_one(s, s.data) for s in _snapshots())
        assert set(outcomes) <= {"client-accepted", "server-accepted"}, outcomes

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(i=snapshot_index, rnd=st.randoms(use_true_random=False))
    def test_mutated_messages_decode_or_raise_decode_error_and_parties_refuse_cleanly(i, rnd):
        snaps = _snapshots()
        snap = snaps[i % len(snaps)]
        data, _ = mutate(rnd, snap.data, donors_for(snap))
        check_one(snap, data)

    @pytest.mark.parametrize("mutator", sorted(MUTATORS))
    def test_each_mutator_on_every_message_kind(mutator):
        """One deterministic pass: every mutator on every snapshot of one corpus per config."""
        rnd = random.Random(f"mutator-{mutator}")
        tally = Counter()
        for snap in _snapshots()[:: 3]:
            data = snap.data
            for _ in range(2):
                try:
                    data = MUTATORS[mutator](rnd, snap.data, donors_for(snap)) if mutator == "splice" else MUTATORS[mutator](rnd, snap.data)
                except (OverflowError, TypeError, ValueError):
                    continue
                tally[check_one(snap, data)] += 1
        assert sum(tally.values()) > 0

    @given(data=st.binary(max_size=300))
    def test_random_bytes_only_raise_decode_error(data):
        check_decode(data, SMALL)

    @given(obj=st.recursive(
        st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats()
        | st.binary(max_size=70) | st.text(max_size=10),
        lambda children: st.lists(children, max_size=5),
        max_leaves=20,
    ), tag=st.sampled_from(sorted(wire.TAGS)))
    def test_well_formed_msgpack_of_any_shape_only_raises_decode_error(obj, tag):
        """Valid msgpack, right version and tag, arbitrary fields: strict typing, no crash."""
        fields = obj if isinstance(obj, list) else [obj]
        check_decode(_pack([1, tag, *fields]), SMALL)
        check_decode(_pack(obj), SMALL)

    def test_type_swaps_of_every_field_are_refused_or_harmless():
        """Exhaustive: every position of every real message of one corpus re-encoded as each other type."""
        for name in ("full32", "active"):
            cfg = corpus(name).cfg
            for rnd_name, direction, cid, data in corpus(name).transcript[:: 2]:
                obj = _unpack(data)
                for path in _paths(obj):
                    if not path:
                        continue
                    for new in (0, -1, 2**64 - 1, 1.5, None, True, "s", b"", b"\x00" * 33, [], [0]):
                        check_decode(_pack(_set(copy.deepcopy(obj), path, new)), cfg)

    @pytest.mark.parametrize("name", sorted(LENGTH_BOMBS))
    @pytest.mark.parametrize("cfg", [None, SMALL, BIG], ids=["no-config", "small-config", "1M-config"])
    def test_length_bombs_are_refused_quickly_without_allocating(name, cfg):
        data = LENGTH_BOMBS[name]
        peak, seconds = measure(data, cfg)
        assert peak < len(data) + (1 << 20), f"{name}: peak allocation {peak} bytes"
        assert seconds < 0.5

    @pytest.mark.parametrize("name", sorted(NESTED_BOMBS))
    def test_nested_array_bombs_with_a_small_config_are_cheap(name):
        peak, seconds = measure(NESTED_BOMBS[name], SMALL)
        assert peak < len(NESTED_BOMBS[name]) + (1 << 20)
        assert seconds < 0.5

    @pytest.mark.parametrize("name", sorted(NESTED_BOMBS))
    @pytest.mark.parametrize("cfg", [None, BIG], ids=["no-config", "1M-config"])
    def test_nested_array_bombs_are_refused_without_allocating(name, cfg):
        data = NESTED_BOMBS[name]
        peak, seconds = measure(data, cfg)
        assert seconds < 0.5
        assert peak < len(data) + (1 << 20), f"{name}: peak allocation {peak / 2**20:.1f} MiB for {len(data)} bytes"

    def test_a_valid_length_header_is_not_mistaken_for_a_bomb():
        """The bomb checks can fail: a real 1M-element vector does allocate, and decodes.

        A version-1 message, read by the general path (a version-2 one is decoded
        as a view of the received bytes: tests/test_packing.py).
        """
        vec = np.zeros(BIG.vector_length, dtype=np.uint32)
        data = msgpack.packb([1, 5, 1, [4, vec.tobytes()]], use_bin_type=True)
        tracemalloc.start()
        try:
            assert wire.decode(data, BIG) == ls.MaskedInput(1, vec)
            assert tracemalloc.get_traced_memory()[1] >= 4 * BIG.vector_length
        finally:
            tracemalloc.stop()


# --- script mode ---------------------------------------------------------------------------------------


def run(count: int, seed: int = 0) -> Counter:
    rnd = random.Random(seed)
    snaps = all_snapshots()
    donors = {id(s): donors_for(s) for s in snaps}
    tally: Counter = Counter()
    by_kind: Counter = Counter()
    for n in range(count):
        snap = snaps[n % len(snaps)]
        data, names = mutate(rnd, snap.data, donors[id(snap)])
        outcome = check_one(snap, data)
        tally[outcome] += 1
        by_kind[type(wire.decode(snap.data)).__name__] += 1
    tally.update({f"kind:{k}": v for k, v in by_kind.items()})
    return tally


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="mutated messages to check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    snaps = all_snapshots()
    setup = time.perf_counter() - t0
    tally = run(args.count, args.seed)
    seconds = time.perf_counter() - t0
    checked = sum(v for k, v in tally.items() if not k.startswith("kind:"))
    print(f"configs: {', '.join(CORPUS_CONFIGS)}; snapshots (real messages with a live receiver): {len(snaps)}; replay {setup:.1f}s")
    for key in sorted(tally):
        print(f"  {key}: {tally[key]}")
    print(f"checked {checked} mutated messages in {seconds:.1f}s; failures: 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
